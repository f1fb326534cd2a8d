//! Text from outside the process, made safe to put in a log line.
//!
//! Request paths, header values, a backend's error text, registration names
//! and URLs are chosen by clients, backends or whoever calls the admin API.
//! Written raw, a line feed in one of them would end the log line and forge
//! the next, and escape sequences would reach the terminal of whoever reads
//! the log. `tracing`'s `?` (Debug) formatting escapes them, but `%`
//! (Display) fields and values interpolated into a message are written as
//! they are; [`Escaped`] wraps such a value so that control characters
//! (C0, DEL, C1) and the Unicode characters that break lines or reorder text
//! (U+2028, U+2029 and the bidirectional controls) come out as Rust escapes
//! (`\n`, `\u{1b}`, `\u{202e}`), and everything else unchanged.
//!
//! String fields (`path = value`) are written with `Debug` escapes in text
//! lines, but as JSON strings in JSON lines, and JSON leaves C1 controls,
//! U+2028 and the bidirectional controls raw: such values go in through
//! [`escape_str`].
//!
//! Depends on nothing else in the crate.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Whether `c` is written as an escape.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `value`'s `Display` text with [`needs_escape`] characters escaped; use as
/// `tracing::warn!(error = %Escaped(&e), ...)` or in a message's arguments.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

/// Writes through to `W`, escaping as it goes (no copy of the whole text).
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            self.0.write_str(&rest[..at])?;
            write!(self.0, "{}", c.escape_debug())?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// `s` with [`needs_escape`] characters escaped; borrowed (no copy) when
/// there are none, as for nearly every value.
pub fn escape_str(s: &str) -> Cow<'_, str> {
    // Printable ASCII needs nothing: one pass without a branch per byte.
    let printable = s.bytes().fold(true, |ok, b| ok & (0x20..0x7f).contains(&b));
    if printable || !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = Escaping(&mut out).write_str(s);
    Cow::Owned(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn control_and_line_breaking_characters_are_escaped_and_the_rest_kept() {
        for (raw, shown) in [
            ("plain /path?a=b", "plain /path?a=b"),
            ("a\nb\r\nc\td", "a\\nb\\r\\nc\\td"),
            ("\u{1b}[31mred\u{7}", "\\u{1b}[31mred\\u{7}"),
            ("\u{85}\u{9b}\u{7f}\0", "\\u{85}\\u{9b}\\u{7f}\\0"),
            (
                "x\u{2028}y\u{202e}z\u{2066}",
                "x\\u{2028}y\\u{202e}z\\u{2066}",
            ),
            (
                "caf\u{e9} \"q\" \\ \u{1f600}",
                "caf\u{e9} \"q\" \\ \u{1f600}",
            ),
            ("", ""),
        ] {
            assert_eq!(Escaped(raw).to_string(), shown, "{raw:?}");
            assert_eq!(escape_str(raw), shown);
            assert_eq!(matches!(escape_str(raw), Cow::Borrowed(_)), raw == shown);
        }
        let error = std::io::Error::other("backend said:\nFAKE LINE");
        assert_eq!(Escaped(&error).to_string(), "backend said:\\nFAKE LINE");
    }
}
