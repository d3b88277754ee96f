//! G-code lines as they leave the file: comments and blank lines stripped before sending.

/// Strips a `;` comment and, when `parentheses` is set (GRBL), `( … )` comments; trims the
/// rest. `None` when nothing is left to send. Both firmwares ignore comments, but every
/// byte sent costs buffer room (GRBL counts them) and serial time.
pub fn clean_line(raw: &str, parentheses: bool) -> Option<String> {
    let code = raw.split(';').next().unwrap_or_default();
    let code = if parentheses { strip_parentheses(code) } else { code.to_string() };
    let code = code.trim();
    (!code.is_empty()).then(|| code.to_string())
}

/// Removes `( … )` comments; an unclosed `(` comments out the rest of the line.
fn strip_parentheses(code: &str) -> String {
    let mut kept = String::with_capacity(code.len());
    let mut in_comment = false;
    for c in code.chars() {
        match (in_comment, c) {
            (false, '(') => in_comment = true,
            (true, ')') => in_comment = false,
            (false, c) => kept.push(c),
            (true, _) => {}
        }
    }
    kept
}

/// Marlin's checksum: the XOR of every byte of `N<n> <line>`.
pub fn marlin_checksum(numbered: &str) -> u8 {
    numbered.bytes().fold(0, |sum, byte| sum ^ byte)
}

/// `N<n> <line>*<checksum>` as Marlin expects it.
pub fn marlin_numbered(number: u32, line: &str) -> String {
    let numbered = format!("N{number} {line}");
    let checksum = marlin_checksum(&numbered);
    format!("{numbered}*{checksum}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strips_comments_and_blank_lines() {
        assert_eq!(clean_line("G1 X10 ; move", false).as_deref(), Some("G1 X10"));
        assert_eq!(clean_line("  ; only a comment", false), None);
        assert_eq!(clean_line("\r", false), None);
        assert_eq!(clean_line("G0 (rapid) X5 (to five)\r", true).as_deref(), Some("G0  X5"));
        assert_eq!(clean_line("(header", true), None);
        assert_eq!(clean_line("M117 Hi (you)", false).as_deref(), Some("M117 Hi (you)"));
    }

    #[test]
    fn numbers_lines_like_marlin_hosts_do() {
        // The line OctoPrint and Pronterface send to start numbering.
        assert_eq!(marlin_numbered(0, "M110 N0"), "N0 M110 N0*125");
        assert_eq!(marlin_numbered(1, "G28"), format!("N1 G28*{}", marlin_checksum("N1 G28")));
    }

    proptest! {
        #[test]
        fn cleaned_lines_carry_no_comment_and_are_never_blank(raw in "\\PC{0,80}", parens in any::<bool>()) {
            if let Some(line) = clean_line(&raw, parens) {
                prop_assert!(!line.contains(';'));
                prop_assert!(!line.trim().is_empty());
                prop_assert_eq!(line.trim(), line.as_str());
            }
        }
    }
}
