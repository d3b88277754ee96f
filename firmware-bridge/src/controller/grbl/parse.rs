//! GRBL 1.1 responses, parsed without I/O: one line (without its newline) in, one value out.
//! Whatever arrives (garbage, a cut line, invalid UTF-8) gives a value, never a panic.

/// One line GRBL sent.
#[derive(Debug, Clone, PartialEq)]
pub enum GrblLine {
    /// The oldest line in the RX buffer was accepted.
    Ok,
    /// The oldest line in the RX buffer was refused (`error:n`).
    Error {
        code: u16,
    },
    /// `ALARM:n`: GRBL stopped; it needs a reset or `$X`.
    Alarm {
        code: u16,
    },
    Status(StatusReport),
    /// `[MSG:…]`.
    Message(String),
    /// `[GC:…]`: the parser state.
    ParserState(String),
    /// Any other `[KIND:…]` feedback (`[VER:`, `[OPT:`, `[PRB:`, `[G54:`, `[HLP:`, `[echo:` …).
    Feedback {
        kind: String,
        body: String,
    },
    /// `Grbl 1.1h ['$' for help]`: the controller (re)started, its buffers are empty.
    Welcome {
        version: String,
    },
    /// Anything else (`$0=10` settings, `>G54:ok` start-up lines, noise).
    Other(String),
}

/// GRBL's machine state in a status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrblState {
    Idle,
    Run,
    /// `Hold:0` is a completed hold, `Hold:1` a hold still decelerating.
    Hold(Option<u8>),
    Jog,
    Alarm,
    /// `Door:0` closed and ready to resume … `Door:3` restoring.
    Door(Option<u8>),
    Check,
    Home,
    Sleep,
    Unknown(String),
}

/// A status report `<State|MPos:…|WPos:…|WCO:…|FS:…|Ov:…|Bf:…|Ln:…|Pn:…|A:…>`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub state: GrblState,
    pub machine_position: Option<Vec<f64>>,
    pub work_position: Option<Vec<f64>>,
    pub work_offset: Option<Vec<f64>>,
    /// Feed rate (mm/min) from `FS:` or `F:`.
    pub feed: Option<f64>,
    /// Spindle speed or laser power from `FS:`.
    pub spindle: Option<f64>,
    /// Feed, rapid and spindle overrides in percent.
    pub overrides: Option<[u32; 3]>,
    /// Free planner blocks and free RX buffer bytes (`Bf:15,128`).
    pub buffer: Option<(u32, u32)>,
    pub line_number: Option<u32>,
    /// Input pins that are on (`Pn:XYZPDHRS`).
    pub pins: Option<String>,
    /// Accessories that are on (`A:SFM`).
    pub accessories: Option<String>,
}

/// Parses one line from GRBL (the bytes without `\n`; a trailing `\r` is ignored).
pub fn parse_line(bytes: &[u8]) -> GrblLine {
    let text = String::from_utf8_lossy(bytes);
    let line = text.trim();
    if line == "ok" {
        return GrblLine::Ok;
    }
    if let Some(code) = line.strip_prefix("error:") {
        return match code.trim().parse() {
            Ok(code) => GrblLine::Error { code },
            Err(_) => GrblLine::Other(line.to_string()),
        };
    }
    if let Some(code) = line.strip_prefix("ALARM:") {
        return match code.trim().parse() {
            Ok(code) => GrblLine::Alarm { code },
            Err(_) => GrblLine::Other(line.to_string()),
        };
    }
    if let Some(body) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) {
        return GrblLine::Status(parse_status(body));
    }
    if let Some(body) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
        return match body.split_once(':') {
            Some(("MSG", message)) => GrblLine::Message(message.to_string()),
            Some(("GC", state)) => GrblLine::ParserState(state.to_string()),
            Some((kind, body)) => GrblLine::Feedback { kind: kind.to_string(), body: body.to_string() },
            None => GrblLine::Feedback { kind: String::new(), body: body.to_string() },
        };
    }
    if let Some(rest) = line.strip_prefix("Grbl ") {
        let version = rest.split_whitespace().next().unwrap_or_default();
        return GrblLine::Welcome { version: version.to_string() };
    }
    GrblLine::Other(line.to_string())
}

fn parse_status(body: &str) -> StatusReport {
    let mut fields = body.split('|');
    let state = parse_state(fields.next().unwrap_or_default());
    let mut report = StatusReport {
        state,
        machine_position: None,
        work_position: None,
        work_offset: None,
        feed: None,
        spindle: None,
        overrides: None,
        buffer: None,
        line_number: None,
        pins: None,
        accessories: None,
    };
    for field in fields {
        let Some((name, value)) = field.split_once(':') else { continue };
        match name {
            "MPos" => report.machine_position = numbers(value),
            "WPos" => report.work_position = numbers(value),
            "WCO" => report.work_offset = numbers(value),
            "FS" => {
                let values = numbers(value).unwrap_or_default();
                report.feed = values.first().copied();
                report.spindle = values.get(1).copied();
            }
            "F" => report.feed = value.trim().parse().ok(),
            "Ov" => {
                let values: Vec<u32> = value.split(',').filter_map(|v| v.trim().parse().ok()).collect();
                if let [feed, rapid, spindle] = values[..] {
                    report.overrides = Some([feed, rapid, spindle]);
                }
            }
            "Bf" => {
                let values: Vec<u32> = value.split(',').filter_map(|v| v.trim().parse().ok()).collect();
                if let [blocks, bytes] = values[..] {
                    report.buffer = Some((blocks, bytes));
                }
            }
            "Ln" => report.line_number = value.trim().parse().ok(),
            "Pn" => report.pins = Some(value.to_string()),
            "A" => report.accessories = Some(value.to_string()),
            _ => {}
        }
    }
    report
}

fn parse_state(text: &str) -> GrblState {
    let (name, sub) = match text.split_once(':') {
        Some((name, sub)) => (name, sub.trim().parse::<u8>().ok()),
        None => (text, None),
    };
    match name {
        "Idle" => GrblState::Idle,
        "Run" => GrblState::Run,
        "Hold" => GrblState::Hold(sub),
        "Jog" => GrblState::Jog,
        "Alarm" => GrblState::Alarm,
        "Door" => GrblState::Door(sub),
        "Check" => GrblState::Check,
        "Home" => GrblState::Home,
        "Sleep" => GrblState::Sleep,
        other => GrblState::Unknown(other.to_string()),
    }
}

/// Comma-separated numbers; `None` when any is not a number (a cut report).
fn numbers(value: &str) -> Option<Vec<f64>> {
    value.split(',').map(|v| v.trim().parse::<f64>().ok().filter(|n| n.is_finite())).collect()
}

/// The meaning of `error:n` (GRBL 1.1 `doc/csv/error_codes_en_US.csv`).
pub fn error_text(code: u16) -> &'static str {
    match code {
        1 => "Expected command letter",
        2 => "Bad number format",
        3 => "Invalid statement",
        4 => "Value < 0",
        5 => "Setting disabled (homing not enabled)",
        6 => "Value < 3 usec",
        7 => "EEPROM read fail. Using defaults",
        8 => "Not idle",
        9 => "G-code lock (alarm or jog state)",
        10 => "Homing not enabled",
        11 => "Line overflow",
        12 => "Step rate > 30kHz",
        13 => "Check Door",
        14 => "Line length exceeded",
        15 => "Travel exceeded",
        16 => "Invalid jog command",
        17 => "Setting disabled (laser mode requires PWM output)",
        20 => "Unsupported command",
        21 => "Modal group violation",
        22 => "Undefined feed rate",
        23 => "Invalid gcode ID:23 (integer value required)",
        24 => "Invalid gcode ID:24 (more than one command requiring axis words)",
        25 => "Invalid gcode ID:25 (repeated word)",
        26 => "Invalid gcode ID:26 (no axis words)",
        27 => "Invalid gcode ID:27 (invalid line number)",
        28 => "Invalid gcode ID:28 (missing value word)",
        29 => "Invalid gcode ID:29 (G59.x not supported)",
        30 => "Invalid gcode ID:30 (G53 only with G0 and G1)",
        31 => "Invalid gcode ID:31 (unused axis words)",
        32 => "Invalid gcode ID:32 (arc without in-plane axis word)",
        33 => "Invalid gcode ID:33 (invalid motion target)",
        34 => "Invalid gcode ID:34 (invalid arc radius)",
        35 => "Invalid gcode ID:35 (arc without in-plane offset)",
        36 => "Invalid gcode ID:36 (unused value words)",
        37 => "Invalid gcode ID:37 (tool length offset axis)",
        38 => "Invalid gcode ID:38 (tool number too large)",
        _ => "Unknown error",
    }
}

/// The meaning of `ALARM:n` (GRBL 1.1 `doc/csv/alarm_codes_en_US.csv`).
pub fn alarm_text(code: u16) -> &'static str {
    match code {
        1 => "Hard limit triggered",
        2 => "Soft limit: motion target exceeds machine travel",
        3 => "Reset while in motion: position lost",
        4 => "Probe fail: probe not in the expected initial state",
        5 => "Probe fail: probe did not contact the workpiece",
        6 => "Homing fail: reset during homing",
        7 => "Homing fail: safety door opened during homing",
        8 => "Homing fail: pull off did not clear the limit switch",
        9 => "Homing fail: limit switch not found",
        10 => "Homing fail: second limit switch not found (dual axis)",
        _ => "Unknown alarm",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_full_status_report() {
        let line = b"<Run|MPos:10.000,-2.500,0.000|WPos:1.000,2.000,3.000|WCO:9.000,-4.500,-3.000|FS:500,8000|Ov:100,90,110|Bf:15,128|Ln:99|Pn:XZ|A:SF>\r";
        let GrblLine::Status(report) = parse_line(line) else { panic!("not a status") };
        assert_eq!(report.state, GrblState::Run);
        assert_eq!(report.machine_position, Some(vec![10.0, -2.5, 0.0]));
        assert_eq!(report.work_position, Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(report.work_offset, Some(vec![9.0, -4.5, -3.0]));
        assert_eq!((report.feed, report.spindle), (Some(500.0), Some(8000.0)));
        assert_eq!(report.overrides, Some([100, 90, 110]));
        assert_eq!(report.buffer, Some((15, 128)));
        assert_eq!(report.line_number, Some(99));
        assert_eq!(report.pins.as_deref(), Some("XZ"));
        assert_eq!(report.accessories.as_deref(), Some("SF"));
    }

    #[test]
    fn parses_every_state() {
        let cases = [
            ("<Idle|MPos:0,0,0>", GrblState::Idle),
            ("<Hold:0|MPos:0,0,0>", GrblState::Hold(Some(0))),
            ("<Hold:1|MPos:0,0,0>", GrblState::Hold(Some(1))),
            ("<Jog|MPos:0,0,0>", GrblState::Jog),
            ("<Alarm|MPos:0,0,0>", GrblState::Alarm),
            ("<Door:2|MPos:0,0,0>", GrblState::Door(Some(2))),
            ("<Check|MPos:0,0,0>", GrblState::Check),
            ("<Home|MPos:0,0,0>", GrblState::Home),
            ("<Sleep|MPos:0,0,0>", GrblState::Sleep),
            ("<Dance|MPos:0,0,0>", GrblState::Unknown("Dance".into())),
        ];
        for (line, state) in cases {
            let GrblLine::Status(report) = parse_line(line.as_bytes()) else { panic!("{line}") };
            assert_eq!(report.state, state, "{line}");
        }
    }

    #[test]
    fn parses_responses_feedback_and_the_banner() {
        assert_eq!(parse_line(b"ok\r"), GrblLine::Ok);
        assert_eq!(parse_line(b"error:20"), GrblLine::Error { code: 20 });
        assert_eq!(parse_line(b"ALARM:1"), GrblLine::Alarm { code: 1 });
        assert_eq!(parse_line(b"[MSG:Reset to continue]"), GrblLine::Message("Reset to continue".into()));
        assert_eq!(
            parse_line(b"[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]"),
            GrblLine::ParserState("G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0".into())
        );
        assert_eq!(
            parse_line(b"[VER:1.1h.20190830:]"),
            GrblLine::Feedback { kind: "VER".into(), body: "1.1h.20190830:".into() }
        );
        assert_eq!(parse_line(b"Grbl 1.1h ['$' for help]"), GrblLine::Welcome { version: "1.1h".into() });
        assert_eq!(parse_line(b"$0=10"), GrblLine::Other("$0=10".into()));
        assert_eq!(error_text(9), "G-code lock (alarm or jog state)");
        assert_eq!(alarm_text(1), "Hard limit triggered");
    }

    #[test]
    fn cut_lines_are_not_mistaken_for_reports() {
        assert!(matches!(parse_line(b"<Run|MPos:10.0"), GrblLine::Other(_)));
        assert!(matches!(parse_line(b"erro"), GrblLine::Other(_)));
        assert!(matches!(parse_line(b"error:"), GrblLine::Other(_)));
        let GrblLine::Status(report) = parse_line(b"<Idle|MPos:1.0,2|FS:5>") else { panic!() };
        assert_eq!(report.machine_position, Some(vec![1.0, 2.0]));
        assert_eq!(report.spindle, None);
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn never_panics_on_cut_or_corrupted_reports(cut in 0usize..140, flip in 0usize..140, byte in any::<u8>()) {
            let mut line = b"<Hold:1|MPos:10.000,-2.500,0.000|WCO:9.000,-4.500,-3.000|FS:500,8000|Ov:100,90,110|Bf:15,128|Ln:99|Pn:XZ|A:SF>".to_vec();
            if flip < line.len() { line[flip] = byte; }
            line.truncate(cut);
            let _ = parse_line(&line);
        }
    }
}
