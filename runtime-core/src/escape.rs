//! Text a guest chose, made safe for a terminal and a log line: the one escaper every guest line
//! goes through (stdio and `wasi:logging`) before it becomes a log event, so no guest can forge
//! another component's line, move the cursor, clear the screen, or reorder what a reader sees.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal or a log line as it is: C0 controls but tab, DEL, C1
/// controls, Unicode's line and paragraph separators, and the bidirectional formatting
/// characters (embeddings, overrides, isolates and marks, as in "Trojan Source").
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character written as an escape (`\n`, `\r`, `\u{1b}`, `\u{202e}`)
/// and backslashes doubled wherever something was escaped, so an escape reads unambiguously.
/// Text with nothing to escape is returned as it is, without copying.
pub fn escape_guest_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\\' => escaped.push_str("\\\\"),
            c if is_unsafe(c) => {
                let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        for (text, shown) in [
            ("plain text, tabs\tand é", "plain text, tabs\tand é"),
            ("a\r\n[other 0000] forged", "a\\r\\n[other 0000] forged"),
            ("\u{1b}[2Jcleared", "\\u{1b}[2Jcleared"),
            ("price \u{202e}txt.exe", "price \\u{202e}txt.exe"),
            ("c1 \u{9b}31m", "c1 \\u{9b}31m"),
            ("back\\slash \u{7}", "back\\\\slash \\u{7}"),
            ("sep\u{2028}line", "sep\\u{2028}line"),
        ] {
            assert_eq!(escape_guest_text(text), shown, "{text:?}");
        }
        assert!(matches!(escape_guest_text("clean"), Cow::Borrowed(_)));
    }

    proptest! {
        /// Whatever a guest writes, what comes out is one line with no character a terminal
        /// acts on.
        #[test]
        fn nothing_unsafe_survives(text in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}\\u{2028}-\\u{2069}a\\\\]{0,16}") {
            let escaped = escape_guest_text(&text);
            prop_assert!(!escaped.chars().any(is_unsafe), "{:?}", escaped);
        }
    }
}
