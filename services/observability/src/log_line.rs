//! Log lines formatted by hand, for the one line written per request.
//!
//! The gateway's access log runs for every proxied request, and going
//! through `tracing`'s formatter (dispatch, per-layer filters, a visitor per
//! field, `Debug`-escaping every string a character at a time) cost about
//! 1.7 µs of CPU per request in the benchmark. [`Line`] writes the same
//! bytes directly: the timestamp prefix is formatted once per second and
//! plain strings are copied as they are. Its output is byte-for-byte what
//! the subscriber set up by [`crate::telemetry::init`] would write for the
//! same event (tested against it, text and JSON), and it honours the same
//! filter (`RUST_LOG` or `log.level`), decided once per [`Target`].
//! Whatever it cannot match (ANSI colours on a terminal, events inside
//! exported trace spans, span-dependent filters, logging not set up) it
//! declines, and the caller logs through `tracing` instead.
//!
//! Depends on `log_settings` (the format and filters), `log_writer` and
//! `escape`; `telemetry` tells it the format in use.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::MakeWriter;

use crate::log_settings::LogFormat;
use crate::log_writer::BatchedStdout;

/// 0: declined; 1: text; 2: JSON. Set by `telemetry::init`.
static MODE: AtomicU8 = AtomicU8::new(0);

/// The filter directives in force, to decide per [`Target`] (once) whether
/// its INFO lines pass.
static DIRECTIVES: OnceLock<String> = OnceLock::new();

/// Lets [`Line::start`] write lines in `format` (`None`: never), filtered by
/// `directives` (`RUST_LOG` syntax) as the subscriber filters.
pub(crate) fn set_format(format: Option<LogFormat>, directives: &str) {
    let mode = match format {
        None => 0,
        Some(LogFormat::Text) => 1,
        Some(LogFormat::Json) => 2,
    };
    if DIRECTIVES.set(directives.to_owned()).is_ok() {
        MODE.store(mode, Ordering::Relaxed);
    }
}

/// A log target whose INFO lines may be written by hand. Whether the filter
/// lets them through is worked out once, by sending `probe` (an INFO event
/// of that target, e.g. `|| tracing::info!(target: "access", "probe")`)
/// through a throwaway subscriber with the same filter. Asking `tracing`
/// per line (`tracing::enabled!`) does not work here: the log layer's
/// filter is a per-layer filter, and the subscriber as a whole answered
/// "enabled" even for `RUST_LOG=info,access=off` (seen by hand).
#[derive(Debug)]
pub struct Target {
    probe: fn(),
    enabled: OnceLock<bool>,
}

impl Target {
    /// A target identified by the event `probe` sends.
    pub const fn new(probe: fn()) -> Target {
        Target {
            probe,
            enabled: OnceLock::new(),
        }
    }

    fn enabled(&self) -> bool {
        *self.enabled.get_or_init(|| match DIRECTIVES.get() {
            Some(directives) => passes(directives, self.probe),
            None => false,
        })
    }
}

/// Whether `directives` let the event `probe` sends through. Directives
/// that depend on spans (`[...]`) are left to `tracing`: no.
fn passes(directives: &str, probe: fn()) -> bool {
    use tracing_subscriber::prelude::*;
    if directives.contains('[') {
        return false;
    }
    let Ok(filter) = crate::log_settings::parse_filter(directives) else {
        return false;
    };
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let layer = Seen(seen.clone()).with_filter(filter);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, probe);
    seen.load(Ordering::Relaxed)
}

/// Notes that an event got through its filter.
struct Seen(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One INFO line being built; [`Line::finish`] writes it.
#[derive(Debug)]
pub struct Line {
    json: bool,
    buf: Vec<u8>,
}

impl Line {
    /// Starts an INFO line of `target` with `message`; `None` when lines
    /// must go through `tracing` (see the module docs) or when the filter
    /// drops this target's INFO lines (then `tracing` drops them too).
    pub fn start(target: &Target, message: &str) -> Option<Line> {
        let json = match MODE.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => return None,
        };
        target.enabled().then(|| Line::begin(json, message))
    }

    fn begin(json: bool, message: &str) -> Line {
        let mut buf = SPARE
            .with(|spare| spare.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)))
            .unwrap_or_default();
        buf.reserve(256);
        let mut line = Line { json, buf };
        if json {
            line.buf.extend_from_slice(b"{\"timestamp\":\"");
            push_timestamp(&mut line.buf);
            line.buf
                .extend_from_slice(b"\",\"level\":\"INFO\",\"message\":");
            push_json_str(&mut line.buf, message);
        } else {
            push_timestamp(&mut line.buf);
            line.buf.extend_from_slice(b"  INFO ");
            line.buf.extend_from_slice(message.as_bytes());
        }
        line
    }

    /// A field logged with `%Escaped(value)` ([`crate::escape`]): bare in
    /// text, a string in JSON, control characters escaped in both.
    pub fn display(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        let value = crate::escape::escape_str(value);
        if self.json {
            push_json_str(&mut self.buf, &value);
        } else {
            self.buf.extend_from_slice(value.as_bytes());
        }
        self
    }

    /// A string field: quoted and escaped as `Debug` (text) or JSON does.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        if self.json {
            push_json_str(&mut self.buf, value);
        } else if is_plain(value) {
            self.buf.push(b'"');
            self.buf.extend_from_slice(value.as_bytes());
            self.buf.push(b'"');
        } else {
            let _ = write!(self.buf, "{value:?}");
        }
        self
    }

    /// An integer field.
    pub fn u64(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        push_digits(&mut self.buf, value, 1);
        self
    }

    /// A duration in milliseconds with microsecond resolution, written as
    /// the `f64` `micros / 1000.0` is (`7.0`, `0.125`, `6.86`).
    pub fn millis(mut self, key: &str, micros: u64) -> Self {
        self.key(key);
        let (whole, mut frac) = (micros / 1000, micros % 1000);
        push_digits(&mut self.buf, whole, 1);
        self.buf.push(b'.');
        if frac == 0 {
            self.buf.push(b'0');
        } else {
            let mut digits = 3;
            while frac % 10 == 0 {
                frac /= 10;
                digits -= 1;
            }
            push_digits(&mut self.buf, frac, digits);
        }
        self
    }

    /// Ends the line and hands it to the log writer.
    pub fn finish(self, target: &str) {
        let mut line = self.into_text(target);
        let _ = BatchedStdout.make_writer().write_all(&line);
        // A rare huge line (a long path) is not kept for good.
        if line.capacity() > SPARE_MAX_BYTES {
            return;
        }
        line.clear();
        SPARE.with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                *spare = line;
            }
        });
    }

    /// The whole line; JSON names `target` last, as the subscriber does.
    fn into_text(mut self, target: &str) -> Vec<u8> {
        if self.json {
            self.buf.extend_from_slice(b",\"target\":");
            push_json_str(&mut self.buf, target);
            self.buf.push(b'}');
        }
        self.buf.push(b'\n');
        self.buf
    }

    fn key(&mut self, key: &str) {
        if self.json {
            self.buf.push(b',');
            push_json_str(&mut self.buf, key);
            self.buf.push(b':');
        } else {
            self.buf.push(b' ');
            self.buf.extend_from_slice(key.as_bytes());
            self.buf.push(b'=');
        }
    }
}

/// Printable ASCII without quotes or backslashes: what both `Debug` and
/// JSON leave as it is.
fn is_plain(s: &str) -> bool {
    // Every byte checked without stopping early: the loop has no branch per
    // byte and vectorises, which beats stopping early on the plain values
    // nearly every line has.
    s.bytes().fold(true, |plain, b| {
        plain & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    })
}

fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    if is_plain(s) {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        buf.extend_from_slice(
            serde_json::to_string(s)
                .unwrap_or_else(|_| "\"\"".into())
                .as_bytes(),
        );
    }
}

/// Largest line buffer kept for the next line.
const SPARE_MAX_BYTES: usize = 4096;

thread_local! {
    /// The last finished line's buffer, cleared: the next line on this
    /// thread is written into it instead of a fresh allocation.
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The second last formatted, and `YYYY-MM-DDTHH:MM:SS.` for it.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The time now as the subscriber writes it: RFC 3339, UTC, microseconds.
fn push_timestamp(buf: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let (days, rem) = (secs / 86_400, secs % 86_400);
            let (y, m, d) = civil_from_days(days);
            cached.1.clear();
            let _ = write!(
                cached.1,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
                rem / 3600,
                rem / 60 % 60,
                rem % 60
            );
            cached.0 = secs;
        }
        buf.extend_from_slice(cached.1.as_bytes());
    });
    push_digits(buf, u64::from(now.subsec_micros()), 6);
    buf.push(b'Z');
}

/// `n` in decimal, zero-padded to at least `width` (at most 20) digits: what
/// `{n:0width$}` writes, without the formatting machinery (several of these
/// go into every access-log line).
fn push_digits(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    start = start.min(digits.len().saturating_sub(width));
    buf.extend_from_slice(&digits[start..]);
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's
/// algorithm, for dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_a_calendar() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (20_783, (2026, 11, 26)),
            (47_541, (2100, 3, 1)),
        ] {
            assert_eq!(civil_from_days(days), date, "{days}");
        }
    }

    /// What the subscriber's layer writes, one line per event.
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// The same event through `tracing` and through [`Line`].
    fn both(json: bool, strings: [&str; 3], status: u16, micros: u64) -> (String, String) {
        use tracing_subscriber::prelude::*;
        let capture = Capture::default();
        let registry = tracing_subscriber::registry();
        let dispatch = if json {
            tracing::Dispatch::new(registry.with(crate::telemetry::json_layer(capture.clone())))
        } else {
            tracing::Dispatch::new(
                registry.with(crate::telemetry::text_layer(capture.clone(), false)),
            )
        };
        let latency_ms = (micros as f64) / 1000.0;
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(
                target: "access",
                method = %crate::escape::Escaped(strings[0]),
                path = strings[1],
                status,
                latency_ms,
                request_id = strings[2],
                "request"
            );
        });
        let ours = Line::begin(json, "request")
            .display("method", strings[0])
            .str("path", strings[1])
            .u64("status", u64::from(status))
            .millis("latency_ms", micros)
            .str("request_id", strings[2])
            .into_text("access");
        let ours = String::from_utf8(ours).unwrap();
        let theirs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        (theirs, ours)
    }

    /// `2026-11-26T23:36:23.926594Z`: the subscriber's timestamp shape.
    fn is_timestamp(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 27
            && b.iter().enumerate().all(|(i, &c)| match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                19 => c == b'.',
                26 => c == b'Z',
                _ => c.is_ascii_digit(),
            })
    }

    const CASES: [([&str; 3], u16, u64); 5] = [
        (
            ["GET", "/api/data", "d06c3fa3233144d20e1e9f63ec5bb8e1"],
            200,
            6860,
        ),
        (["POST", "/a?b=c&d=%20", "id-1"], 503, 7000),
        (["BREW", "/q\"uote\\back", "tab\there"], 418, 0),
        (["DELETE", "/caf\u{e9}/\u{1}", "\u{7f}"], 204, 600_000_000),
        (["GET", "", ""], 101, 1),
    ];

    #[test]
    fn hostile_values_make_one_line_with_their_control_characters_escaped() {
        use crate::escape::{escape_str, needs_escape};
        // Each tries to end the line and forge the next, to clear or colour
        // the terminal, or to reorder what the reader sees. JSON leaves C1
        // controls, U+2028 and bidirectional controls raw, so `str` fields
        // from outside go in through `escape_str`.
        let method = "GET\n2026-01-01T00:00:00.000000Z  INFO forged";
        let path = escape_str("/x\r\n\u{1b}[2J\u{2028}\u{85}");
        let id = escape_str("id\n\u{202e}");
        for json in [false, true] {
            let (theirs, ours) = both(json, [method, &path, &id], 200, 5);
            let at = if json { "{\"timestamp\":\"".len() } else { 0 };
            assert_eq!(theirs[..at], ours[..at]);
            assert_eq!(theirs[at + 27..], ours[at + 27..]);
            assert_eq!(ours.matches('\n').count(), 1, "{ours}");
            assert!(ours.ends_with('\n'), "{ours}");
            assert!(
                !ours[..ours.len() - 1].chars().any(needs_escape),
                "{ours:?}"
            );
            for shown in ["u{1b}[2J", "u{2028}", "u{85}", "u{202e}", "forged"] {
                assert!(ours.contains(shown), "{shown} in {ours}");
            }
        }
        let (_, text) = both(false, [method, &path, &id], 200, 5);
        assert!(
            text.contains(" method=GET\\n2026-01-01T00:00:00.000000Z  INFO forged path="),
            "{text}"
        );
    }

    #[test]
    fn text_lines_match_the_subscribers_byte_for_byte() {
        for (strings, status, micros) in CASES {
            let (theirs, ours) = both(false, strings, status, micros);
            assert!(is_timestamp(&ours[..27]), "{ours}");
            assert_eq!(theirs[27..], ours[27..], "{strings:?}");
        }
    }

    #[test]
    fn json_lines_match_the_subscribers_byte_for_byte() {
        for (strings, status, micros) in CASES {
            let (theirs, ours) = both(true, strings, status, micros);
            let at = "{\"timestamp\":\"".len();
            assert!(is_timestamp(&ours[at..at + 27]), "{ours}");
            assert_eq!(theirs[..at], ours[..at]);
            assert_eq!(theirs[at + 27..], ours[at + 27..], "{strings:?}");
        }
    }

    #[test]
    fn timestamps_are_now_in_utc() {
        let mut ours = Vec::new();
        push_timestamp(&mut ours);
        let ours = String::from_utf8(ours).unwrap();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (y, m, d) = civil_from_days(secs / 86_400);
        assert!(
            ours.starts_with(&format!("{y:04}-{m:02}-{d:02}T")),
            "{ours}"
        );
        assert!(is_timestamp(&ours));
    }

    #[test]
    fn filters_decide_per_target_as_the_subscriber_would() {
        let access = || tracing::info!(target: "access", "probe");
        for (directives, expected) in [
            ("info", true),
            ("debug", true),
            ("warn", false),
            ("info,access=off", false),
            ("warn,access=info", true),
            ("access=info", true),
            ("gateway=debug", false),
            ("[span]=info", false),
            ("not a filter ((", false),
        ] {
            assert_eq!(passes(directives, access), expected, "{directives}");
        }
    }

    #[test]
    fn digits_are_written_as_format_pads_them() {
        for (n, width) in [
            (0, 1),
            (7, 1),
            (7, 3),
            (42, 6),
            (999_999, 6),
            (1_000_000, 6),
            (u64::MAX, 1),
            (5, 20),
        ] {
            let mut buf = Vec::new();
            push_digits(&mut buf, n, width);
            assert_eq!(String::from_utf8(buf).unwrap(), format!("{n:0width$}"));
        }
    }

    #[test]
    fn millis_are_written_as_the_f64_would_be() {
        for micros in [
            0u64,
            1,
            10,
            100,
            125,
            999,
            1000,
            6860,
            7341,
            7000,
            1_234_500,
            600_000_000,
        ] {
            let line = Line {
                json: false,
                buf: Vec::new(),
            }
            .millis("x", micros);
            let float = (micros as f64) / 1000.0;
            assert_eq!(line.buf, format!(" x={float:?}").into_bytes(), "{micros}");
        }
    }
}
