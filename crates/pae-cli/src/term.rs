//! Writing to the terminal safely.
//!
//! - Write errors (a closed pipe, `> /dev/full`, stderr piped into
//!   `head -c 20`) are not run errors: the run goes on, its transcript and
//!   store records are still written, and nothing panics.
//! - Text from models, tools and files never reaches the terminal with
//!   control characters in it: escape sequences could clear the screen, set
//!   the window title or fake progress lines. They are shown as visible
//!   escapes (`\x1b`) instead.
//! - What is echoed is bounded: a 10 MiB tool name prints as its first
//!   characters and a count.

use std::borrow::Cow;
use std::io::Write;

/// Writes a line to stdout; a failed write is ignored.
pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", clean(text));
    let _ = stdout.flush();
}

/// Writes a line to stderr; a failed write is ignored.
pub(crate) fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", clean(text));
}

/// Whether a character may reach the terminal as it is.
fn is_safe(c: char) -> bool {
    match c {
        '\n' | '\t' => true,
        // C0 controls, DEL and C1 controls (0x9b is a one-byte CSI).
        c if c.is_control() => false,
        // Bidirectional overrides and isolates reorder what is shown.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => false,
        _ => true,
    }
}

/// `text` with every control character but newline and tab replaced by a
/// visible escape (`\x1b`, `\r`, `\u{202e}`).
pub(crate) fn clean(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_safe) {
        return Cow::Borrowed(text);
    }
    let mut cleaned = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if is_safe(c) {
            cleaned.push(c);
        } else if c == '\r' && chars.peek() == Some(&'\n') {
            // A Windows line end is a line end.
        } else if (c as u32) < 0x100 {
            cleaned.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            cleaned.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(cleaned)
}

/// At most `max` characters of `text`; a longer text ends with a note of
/// how much was left out.
pub(crate) fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    let count = text.chars().count();
    if count <= max {
        return Cow::Borrowed(text);
    }
    let kept: String = text.chars().take(max).collect();
    Cow::Owned(format!("{kept}… ({} more characters)", count - max))
}

/// Cuts text to one line of at most `max` characters, with control
/// characters shown as escapes.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    // Only the first few screens of a huge text can show.
    let head: String = text.chars().take(max.saturating_mul(4).max(64)).collect();
    let flat: String = clean(&head)
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        return flat.to_owned();
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line(" a\nb ", 10), "a b");
        assert_eq!(one_line("abcdefghij", 5), "abcd…");
        assert_eq!(one_line("äöü", 3), "äöü");
        assert_eq!(one_line("\u{1b}[2Jx", 20), "\\x1b[2Jx");
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(clean("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            clean("\u{1b}[2J\u{1b}]0;owned\u{7}"),
            "\\x1b[2J\\x1b]0;owned\\x07"
        );
        assert_eq!(clean("fake\rline"), "fake\\x0dline");
        assert_eq!(clean("windows\r\nline"), "windows\nline");
        assert_eq!(clean("csi\u{9b}31m"), "csi\\x9b31m");
        assert_eq!(clean("rtl\u{202e}txt"), "rtl\\u{202e}txt");
        assert!(matches!(clean("ok"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_text_is_bounded() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcdef", 3), "abc… (3 more characters)");
        let huge = "x".repeat(10 << 20);
        assert!(bounded(&huge, 200).len() < 300);
    }
}
