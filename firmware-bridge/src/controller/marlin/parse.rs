//! Marlin responses, parsed without I/O: one line (without its newline) in, one value out.
//! Whatever arrives (garbage, a cut line, invalid UTF-8) gives a value, never a panic.

/// One line Marlin sent.
#[derive(Debug, Clone, PartialEq)]
pub enum MarlinLine {
    /// `ok`, optionally `ok N12 P15 B3` (ADVANCED_OK) and/or temperatures (the answer to M105).
    Ok {
        line: Option<u32>,
        planner: Option<u32>,
        buffer: Option<u32>,
        temps: Option<TempReport>,
    },
    /// A temperature report on its own line (M155 auto-report, or M109/M190 while heating).
    Temperatures(TempReport),
    /// `echo:busy: processing` / `echo:busy: paused for user`: a long command is still running.
    Busy(String),
    /// `Resend: N` (or Repetier's `rs N`): send again from line N.
    Resend {
        line: u32,
    },
    /// `Error:…`; `communication` is true for the line-number and checksum errors that a
    /// `Resend:` follows (they are not alarms).
    Error {
        text: String,
        communication: bool,
    },
    /// `SD printing byte 123/456` (M27).
    SdProgress {
        done: u64,
        total: u64,
    },
    /// `Not SD printing` (M27).
    NotSdPrinting,
    /// `start`: the printer (re)started; its line numbers are back to 0.
    Start,
    /// Any other `echo:` line.
    Echo(String),
    Other(String),
}

/// Temperatures from `T:210.0 /210.0 B:60.0 /60.0 @:0 B@:0` and its variants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TempReport {
    pub nozzle: Option<f64>,
    pub nozzle_target: Option<f64>,
    pub bed: Option<f64>,
    pub bed_target: Option<f64>,
    pub chamber: Option<f64>,
    pub chamber_target: Option<f64>,
}

/// Parses one line from Marlin.
pub fn parse_line(bytes: &[u8]) -> MarlinLine {
    let text = String::from_utf8_lossy(bytes);
    let line = text.trim();
    if line == "ok" || line.starts_with("ok ") {
        return parse_ok(&line[2..]);
    }
    if let Some(rest) = line.strip_prefix("echo:busy:") {
        return MarlinLine::Busy(rest.trim().to_string());
    }
    if let Some(rest) = line.strip_prefix("Resend:").or_else(|| line.strip_prefix("rs ")) {
        let number = rest.trim().trim_start_matches('N');
        return match number.parse() {
            Ok(line) => MarlinLine::Resend { line },
            Err(_) => MarlinLine::Other(line.to_string()),
        };
    }
    if let Some(rest) = line.strip_prefix("Error:").or_else(|| line.strip_prefix("!!")) {
        let text = rest.trim().to_string();
        let lower = text.to_ascii_lowercase();
        let communication = lower.contains("line number") || lower.contains("checksum");
        return MarlinLine::Error { text, communication };
    }
    if let Some(rest) = line.strip_prefix("SD printing byte ") {
        if let Some((done, total)) = rest.split_once('/') {
            if let (Ok(done), Ok(total)) = (done.trim().parse(), total.trim().parse()) {
                return MarlinLine::SdProgress { done, total };
            }
        }
        return MarlinLine::Other(line.to_string());
    }
    if line == "Not SD printing" {
        return MarlinLine::NotSdPrinting;
    }
    if line == "start" {
        return MarlinLine::Start;
    }
    if let Some(rest) = line.strip_prefix("echo:") {
        return MarlinLine::Echo(rest.to_string());
    }
    if let Some(temps) = parse_temps(line) {
        return MarlinLine::Temperatures(temps);
    }
    MarlinLine::Other(line.to_string())
}

fn parse_ok(rest: &str) -> MarlinLine {
    let (mut line, mut planner, mut buffer) = (None, None, None);
    for word in rest.split_whitespace() {
        // ADVANCED_OK words are a letter then digits; temperature words have a colon.
        let value = word.get(1..).and_then(|v| v.parse::<u32>().ok());
        match word.as_bytes().first() {
            Some(b'N') if value.is_some() => line = value,
            Some(b'P') if value.is_some() => planner = value,
            Some(b'B') if value.is_some() => buffer = value,
            _ => {}
        }
    }
    MarlinLine::Ok { line, planner, buffer, temps: parse_temps(rest) }
}

/// Reads `T:21.5 /0.0 B:21.3 /0.0 T0:21.5 /0.0 C:30 /0 @:0 B@:0`, `T:21.5/0.0`, or `T:21.5 B:21.3`
/// (no targets). `None` when neither a hotend nor a bed temperature is there.
pub fn parse_temps(text: &str) -> Option<TempReport> {
    let mut report = TempReport::default();
    let mut hotend_t0 = (None, None);
    // The sensor whose target a following `/210.0` word belongs to.
    let mut last: Option<&str> = None;
    for word in text.split_whitespace() {
        if let Some(target) = word.strip_prefix('/') {
            if let (Some(sensor), Some(value)) = (last.take(), number(target)) {
                set_target(&mut report, &mut hotend_t0, sensor, value);
            }
            continue;
        }
        let Some((sensor, value)) = word.split_once(':') else {
            last = None;
            continue;
        };
        let (current, target) = match value.split_once('/') {
            Some((current, target)) => (current, Some(target)),
            None => (value, None),
        };
        let Some(current) = number(current) else {
            last = None;
            continue;
        };
        match sensor {
            "T" => report.nozzle = Some(current),
            "T0" => hotend_t0.0 = Some(current),
            "B" => report.bed = Some(current),
            "C" => report.chamber = Some(current),
            _ => {
                last = None;
                continue;
            }
        }
        last = Some(sensor);
        if let Some(value) = target.and_then(number) {
            set_target(&mut report, &mut hotend_t0, sensor, value);
            last = None;
        }
    }
    // Multi-extruder printers report `T:` for the active one; `T0:` alone is the first.
    if report.nozzle.is_none() {
        report.nozzle = hotend_t0.0;
        report.nozzle_target = report.nozzle_target.or(hotend_t0.1);
    }
    (report.nozzle.is_some() || report.bed.is_some()).then_some(report)
}

fn set_target(report: &mut TempReport, hotend_t0: &mut (Option<f64>, Option<f64>), sensor: &str, value: f64) {
    match sensor {
        "T" => report.nozzle_target = Some(value),
        "T0" => hotend_t0.1 = Some(value),
        "B" => report.bed_target = Some(value),
        "C" => report.chamber_target = Some(value),
        _ => {}
    }
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `M73 P42 R10` in a G-code file: progress in percent and the minutes remaining.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressHint {
    pub percent: Option<f64>,
    pub remaining_minutes: Option<u64>,
}

/// Reads an `M73` line (already stripped of comments). `None` for any other line.
pub fn parse_m73(line: &str) -> Option<ProgressHint> {
    let mut words = line.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("M73") {
        return None;
    }
    let mut hint = ProgressHint { percent: None, remaining_minutes: None };
    for word in words {
        let value = word.get(1..).unwrap_or_default();
        match word.as_bytes().first() {
            Some(b'P' | b'p') => hint.percent = number(value).filter(|p| (0.0..=100.0).contains(p)),
            Some(b'R' | b'r') => hint.remaining_minutes = value.parse().ok(),
            _ => {}
        }
    }
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn temps(nozzle: f64, nozzle_target: Option<f64>, bed: f64, bed_target: Option<f64>) -> TempReport {
        TempReport { nozzle: Some(nozzle), nozzle_target, bed: Some(bed), bed_target, ..TempReport::default() }
    }

    #[test]
    fn parses_ok_variants() {
        assert_eq!(parse_line(b"ok\r"), MarlinLine::Ok { line: None, planner: None, buffer: None, temps: None });
        assert_eq!(
            parse_line(b"ok N12 P15 B3"),
            MarlinLine::Ok { line: Some(12), planner: Some(15), buffer: Some(3), temps: None }
        );
        assert_eq!(
            parse_line(b"ok T:210.0 /210.0 B:60.0 /60.0 @:0 B@:0"),
            MarlinLine::Ok {
                line: None,
                planner: None,
                buffer: None,
                temps: Some(temps(210.0, Some(210.0), 60.0, Some(60.0)))
            }
        );
    }

    #[test]
    fn parses_temperature_variants() {
        assert_eq!(
            parse_line(b" T:21.64 /0.00 B:21.29 /0.00 @:0 B@:0"),
            MarlinLine::Temperatures(temps(21.64, Some(0.0), 21.29, Some(0.0)))
        );
        assert_eq!(
            parse_line(b"T:205.1/210.0 B:59.0/60.0"),
            MarlinLine::Temperatures(temps(205.1, Some(210.0), 59.0, Some(60.0)))
        );
        assert_eq!(parse_line(b"T:21.5 B:21.3"), MarlinLine::Temperatures(temps(21.5, None, 21.3, None)));
        let MarlinLine::Temperatures(t0) =
            parse_line(b"T0:200.0 /200.0 T1:25.0 /0.0 B:60.0 /60.0 C:35.0 /40.0 @:0 B@:0")
        else {
            panic!()
        };
        assert_eq!(
            (t0.nozzle, t0.nozzle_target, t0.chamber, t0.chamber_target),
            (Some(200.0), Some(200.0), Some(35.0), Some(40.0))
        );
        assert_eq!(parse_line(b"T:nan B:x"), MarlinLine::Other("T:nan B:x".into()));
    }

    #[test]
    fn parses_flow_control_and_errors() {
        assert_eq!(parse_line(b"echo:busy: processing"), MarlinLine::Busy("processing".into()));
        assert_eq!(parse_line(b"Resend: 6"), MarlinLine::Resend { line: 6 });
        assert_eq!(parse_line(b"rs N6"), MarlinLine::Resend { line: 6 });
        assert_eq!(
            parse_line(b"Error:Line Number is not Last Line Number+1, Last Line: 5"),
            MarlinLine::Error {
                text: "Line Number is not Last Line Number+1, Last Line: 5".into(),
                communication: true
            }
        );
        assert_eq!(
            parse_line(b"Error:checksum mismatch, Last Line: 5"),
            MarlinLine::Error { text: "checksum mismatch, Last Line: 5".into(), communication: true }
        );
        assert_eq!(
            parse_line(b"Error:Printer halted. kill() called!"),
            MarlinLine::Error { text: "Printer halted. kill() called!".into(), communication: false }
        );
        assert_eq!(parse_line(b"SD printing byte 123/456"), MarlinLine::SdProgress { done: 123, total: 456 });
        assert_eq!(parse_line(b"Not SD printing"), MarlinLine::NotSdPrinting);
        assert_eq!(parse_line(b"start"), MarlinLine::Start);
        assert_eq!(parse_line(b"echo:Unknown command: \"M999\""), MarlinLine::Echo("Unknown command: \"M999\"".into()));
    }

    #[test]
    fn reads_m73_hints() {
        assert_eq!(parse_m73("M73 P42 R10"), Some(ProgressHint { percent: Some(42.0), remaining_minutes: Some(10) }));
        assert_eq!(parse_m73("M73 P142"), Some(ProgressHint { percent: None, remaining_minutes: None }));
        assert_eq!(parse_m73("G1 X1"), None);
        assert_eq!(parse_m73(""), None);
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&bytes);
            let _ = parse_m73(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_cut_or_corrupted_lines(which in 0usize..6, cut in 0usize..60, flip in 0usize..60, byte in any::<u8>()) {
            let lines: [&[u8]; 6] = [b"ok T:210.0 /210.0 B:60.0 /60.0 @:0 B@:0", b"ok N12 P15 B3", b"Resend: 6",
                b"SD printing byte 123/456", b"Error:checksum mismatch, Last Line: 5", b"T0:200.0 /200.0 T1:25.0 /0.0 B:60.0 C:35.0"];
            let mut line = lines[which].to_vec();
            if flip < line.len() { line[flip] = byte; }
            line.truncate(cut);
            let _ = parse_line(&line);
        }
    }
}
