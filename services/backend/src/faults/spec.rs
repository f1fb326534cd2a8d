//! What the faults are ([`Faults`], [`Mode`]) and how a `PUT /api/faults`
//! body becomes a [`Change`] to them, refused with one line naming the key
//! at fault ([`Invalid`]).
//!
//! The range rules are the configured faults' own
//! ([`FaultSettings::check`]), so a value refused at start-up is refused
//! at run time with the same words.
//!
//! Depends on the backend's `config` only.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::config::FaultSettings;

/// What `/api/data` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Answer, with the latency, jitter and errors applied.
    Serve,
    /// Read the request and answer nothing until the faults change.
    Hang,
    /// Read the request, then reset the connection (TCP RST).
    Reset,
    /// Stop listening for the change's `duration`.
    Refuse,
}

impl Mode {
    /// Every mode, as written.
    pub const ALL: [(Mode, &'static str); 4] = [
        (Mode::Serve, "serve"),
        (Mode::Hang, "hang"),
        (Mode::Reset, "reset"),
        (Mode::Refuse, "refuse"),
    ];

    /// The mode's name, as written.
    pub fn name(self) -> &'static str {
        Mode::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("serve", |(_, name)| name)
    }
}

/// The faults in force: the `faults` settings (but `max_delay`, which is
/// fixed) plus a mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Faults {
    /// Added to every `/api/data` answer.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// A uniformly random extra delay, zero to this.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    /// Share of `/api/data` answered with `error_status`.
    pub error_rate: f64,
    /// Status of those answers.
    pub error_status: u16,
    /// What `/api/data` does.
    pub mode: Mode,
}

impl Faults {
    /// The configured faults, serving.
    pub fn configured(settings: &FaultSettings) -> Self {
        Faults {
            latency: settings.latency,
            jitter: settings.jitter,
            error_rate: settings.error_rate,
            error_status: settings.error_status,
            mode: Mode::Serve,
        }
    }

    /// These faults under `max_delay`, checked by the settings' rules.
    fn check(&self, max_delay: Duration) -> Result<(), Invalid> {
        let as_settings = FaultSettings {
            latency: self.latency,
            jitter: self.jitter,
            error_rate: self.error_rate,
            error_status: self.error_status,
            max_delay,
        };
        as_settings
            .check()
            .map_err(|p| Invalid::new(p.key, p.message))
    }
}

/// A change asked for by `PUT /api/faults`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// The new faults; keys left out are off.
    pub faults: Faults,
    /// When set, the faults go back to the configured ones after this long.
    pub duration: Option<Duration>,
}

/// Longest `duration` a change may ask for.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A refused change: `<key>: <what is wrong>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key at fault (`body` when the body as a whole is).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl Invalid {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The keys a body may hold.
const KEYS: &str = "latency, jitter, error_rate, error_status, mode, duration";

/// Reads a `PUT /api/faults` body: a JSON object with any of the `KEYS`;
/// keys left out are off (serving, no latency, no errors). Unknown keys,
/// wrong types, values out of range and `refuse` without a `duration` are
/// refused.
pub fn parse_change(body: &[u8], max_delay: Duration) -> Result<Change, Invalid> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("body", format!("not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(Invalid::new(
            "body",
            "must be a JSON object, such as {\"latency\": \"25ms\"}",
        ));
    };
    let mut faults = Faults {
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        error_rate: 0.0,
        error_status: 500,
        mode: Mode::Serve,
    };
    let mut duration = None;
    for (key, value) in &fields {
        match key.as_str() {
            "latency" => faults.latency = a_duration(key, value)?,
            "jitter" => faults.jitter = a_duration(key, value)?,
            "error_rate" => {
                faults.error_rate = value
                    .as_f64()
                    .ok_or_else(|| Invalid::new(key, format!("{value} is not a number")))?
            }
            "error_status" => {
                faults.error_status = value
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| Invalid::new(key, format!("{value} is not a status code")))?
            }
            "mode" => faults.mode = a_mode(value)?,
            "duration" => duration = Some(a_duration(key, value)?),
            "max_delay" => {
                return Err(Invalid::new(
                    key,
                    "cannot be changed at run time (it is the faults.max_delay setting)",
                ))
            }
            _ => return Err(Invalid::new(key, format!("unknown key ({KEYS})"))),
        }
    }
    faults.check(max_delay)?;
    match duration {
        Some(d) if d.is_zero() => return Err(Invalid::new("duration", "must be more than 0s")),
        Some(d) if d > MAX_DURATION => return Err(Invalid::new("duration", "must be at most 1h")),
        None if faults.mode == Mode::Refuse => {
            return Err(Invalid::new(
                "duration",
                "required with mode refuse (the fault API cannot be reached meanwhile)",
            ))
        }
        _ => {}
    }
    Ok(Change { faults, duration })
}

fn a_duration(key: &str, value: &Value) -> Result<Duration, Invalid> {
    let text = value.as_str().ok_or_else(|| {
        Invalid::new(
            key,
            format!("{value} is not a duration string (write e.g. \"25ms\")"),
        )
    })?;
    humantime::parse_duration(text).map_err(|e| {
        Invalid::new(
            key,
            format!("{text:?} is not a duration ({e}; write e.g. \"25ms\")"),
        )
    })
}

fn a_mode(value: &Value) -> Result<Mode, Invalid> {
    let names = || Mode::ALL.map(|(_, n)| n).join(", ");
    let text = value
        .as_str()
        .ok_or_else(|| Invalid::new("mode", format!("{value} is not one of {}", names())))?;
    Mode::ALL
        .iter()
        .find(|(_, name)| *name == text)
        .map(|(mode, _)| *mode)
        .ok_or_else(|| Invalid::new("mode", format!("{text:?} is not one of {}", names())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(30);

    fn parse(body: &str) -> Result<Change, Invalid> {
        parse_change(body.as_bytes(), MAX)
    }

    #[test]
    fn keys_left_out_are_off() {
        let c = parse(r#"{"latency": "25ms", "mode": "hang", "duration": "1m30s"}"#).unwrap();
        assert_eq!(c.faults.latency, Duration::from_millis(25));
        assert_eq!(c.faults.jitter, Duration::ZERO);
        assert_eq!(c.faults.error_rate, 0.0);
        assert_eq!(c.faults.error_status, 500);
        assert_eq!(c.faults.mode, Mode::Hang);
        assert_eq!(c.duration, Some(Duration::from_secs(90)));
        let off = parse("{}").unwrap();
        assert_eq!(off.faults, Faults::configured(&FaultSettings::default()));
        assert_eq!(off.duration, None);
        let c = parse(r#"{"error_rate": 1, "error_status": 503}"#).unwrap();
        assert_eq!((c.faults.error_rate, c.faults.error_status), (1.0, 503));
    }

    #[test]
    fn each_refusal_names_its_key() {
        for (body, key) in [
            ("", "body"),
            ("[1]", "body"),
            (r#"{"latency": 25}"#, "latency"),
            (r#"{"latency": "soon"}"#, "latency"),
            (r#"{"jitter": null}"#, "jitter"),
            (r#"{"latency": "20s", "jitter": "11s"}"#, "latency"),
            (
                r#"{"latency": "18446744073709551615s", "jitter": "1s"}"#,
                "latency",
            ),
            (r#"{"error_rate": 1.5}"#, "error_rate"),
            (r#"{"error_rate": "0.1"}"#, "error_rate"),
            (r#"{"error_status": 404}"#, "error_status"),
            (r#"{"error_status": 503.5}"#, "error_status"),
            (r#"{"error_status": 70000}"#, "error_status"),
            (r#"{"mode": "pause"}"#, "mode"),
            (r#"{"mode": 1}"#, "mode"),
            (r#"{"mode": "refuse"}"#, "duration"),
            (r#"{"duration": "0s"}"#, "duration"),
            (r#"{"duration": "2h"}"#, "duration"),
            (r#"{"max_delay": "1m"}"#, "max_delay"),
            (r#"{"bogus": 1}"#, "bogus"),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.key, key, "{body}: {e}");
            assert!(e.to_string().starts_with(&format!("{key}: ")), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
