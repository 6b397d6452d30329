//! Text a module wrote (log lines, its error from `run`, console output), made safe to show.
//!
//! A module is untrusted: its text must not grow the audit log without bound, and must not steer
//! the holder's terminal (escape sequences, carriage returns that overwrite a line, newlines that
//! forge a "job …: released" line). [`bounded`] is the one way such text reaches a log, a job
//! status, an audit entry or a terminal.

/// Most characters of one module error or refusal text that are kept.
pub const MAX_MODULE_ERROR_CHARS: usize = 1024;

/// `text` with every control character (C0, DEL, C1, and the Unicode line and paragraph
/// separators) written as a visible escape (`\n`, `\r`, `\t`, `\u{1b}`), cut to at most `max`
/// characters of output with `…` marking the cut.
///
/// The result is a single line: nothing in it can move the cursor, clear the screen or start a
/// new log line.
pub fn bounded(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 4);
    let mut count = 0;
    for c in text.chars() {
        let escaped: std::borrow::Cow<'static, str> = match c {
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            '\\' => "\\\\".into(),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' || is_bidi_control(c) => {
                format!("\\u{{{:x}}}", c as u32).into()
            }
            c => String::from(c).into(),
        };
        let len = escaped.chars().count();
        if count + len > max {
            out.push('…');
            return out;
        }
        count += len;
        out.push_str(&escaped);
    }
    out
}

/// Bidirectional-override characters, which can make text display in another order than it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_is_cut() {
        let forged = "ok\r\x1b[2Kjob 1: released 3 table(s)\nmore\u{202e}";
        let safe = bounded(forged, 1000);
        assert!(!safe.chars().any(|c| c.is_control()), "{safe}");
        assert!(safe.contains("\\r") && safe.contains("\\n") && safe.contains("\\u{1b}"));
        assert!(safe.contains("\\u{202e}"));
        let long = "x".repeat(10_000);
        let cut = bounded(&long, 100);
        assert_eq!(cut.chars().count(), 101);
        assert!(cut.ends_with('…'));
        assert_eq!(bounded("plain text", 100), "plain text");
    }
}
