//! Backend settings: built-in defaults, then `--config FILE`, then `PORT`,
//! then `BACKEND__SECTION__KEY` environment variables.
//!
//! Depends on `launch` (loading), `serving` (the HTTP settings) and
//! `observability` (the log settings).

use std::time::Duration;

use launch::settings::{SettingsError, Sources};
use observability::telemetry::LogSettings;
use serde::{Deserialize, Serialize};
use serving::server::HttpSettings;

/// Everything the backend can be told.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where to listen.
    pub listen: Listen,
    /// Instance name reported in `/api/data`; empty means `backend-<port>`.
    pub name: String,
    /// Injected latency and errors; all off by default.
    pub faults: FaultSettings,
    /// Who may change the faults at run time (`/api/faults`).
    pub admin: AdminSettings,
    /// Stopping gracefully.
    pub shutdown: ShutdownSettings,
    /// Limits on incoming connections.
    pub http: HttpSettings,
    /// Log format and level.
    pub log: LogSettings,
}

/// The listening socket.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// Address to bind; `0.0.0.0` accepts connections from anywhere.
    pub host: String,
    /// Port; the `PORT` variable sets it too, as many platforms expect.
    pub port: u16,
}

/// Fault injection. Per-request overrides (`?delay_ms=`, `?status=`) are
/// always available and bounded by `max_delay`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Added to every `/api/data` answer.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// A uniformly random extra delay between zero and this, on top of `latency`.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    /// Fraction of `/api/data` requests (0.0 to 1.0) answered with `error_status`.
    pub error_rate: f64,
    /// Status of injected errors (500 to 599).
    pub error_status: u16,
    /// Upper bound on any injected delay, configured or requested.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

/// A fault value out of range: its key within `faults` and what is wrong.
/// Settings name it `faults.<key>`, the fault API `<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultProblem {
    /// The key at fault, as written in the `faults` section.
    pub key: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl FaultSettings {
    /// The range rules, the same for the configured faults and for those
    /// set at run time: `error_rate` 0.0 to 1.0, `error_status` 500 to 599,
    /// `max_delay` at most 5m, `latency` plus `jitter` at most `max_delay`.
    pub fn check(&self) -> Result<(), FaultProblem> {
        let problem = |key, message: String| Err(FaultProblem { key, message });
        if !(0.0..=1.0).contains(&self.error_rate) || self.error_rate.is_nan() {
            return problem(
                "error_rate",
                format!("{} is not between 0.0 and 1.0", self.error_rate),
            );
        }
        if !(500..=599).contains(&self.error_status) {
            return problem(
                "error_status",
                format!("{} is not a 5xx status (500 to 599)", self.error_status),
            );
        }
        if self.max_delay > MAX_MAX_DELAY {
            return problem("max_delay", "must be at most 5m".into());
        }
        // Saturating: both come from untrusted input at run time.
        let total = self.latency.saturating_add(self.jitter);
        if total > self.max_delay {
            return problem(
                "latency",
                format!(
                    "latency plus jitter ({}) exceeds max_delay ({})",
                    humantime::format_duration(total),
                    humantime::format_duration(self.max_delay)
                ),
            );
        }
        Ok(())
    }
}

/// The largest `faults.max_delay` accepted.
const MAX_MAX_DELAY: Duration = Duration::from_secs(300);

/// The `admin` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Bearer token required by `PUT` and `DELETE /api/faults`; empty
    /// leaves them open (fine on a laptop, not in a cluster). Shown as
    /// `<redacted>` by `--print-config`.
    #[serde(serialize_with = "launch::settings::redacted")]
    pub token: String,
}

/// Shutdown behaviour on SIGTERM/SIGINT.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSettings {
    /// Time between turning `/readyz` to 503 and closing the listener, so
    /// load balancers notice before connections are refused.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Longest wait for requests in flight once the listener is closed.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            host: "0.0.0.0".into(),
            port: 5000,
        }
    }
}

impl Default for FaultSettings {
    fn default() -> Self {
        FaultSettings {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            error_rate: 0.0,
            error_status: 500,
            max_delay: Duration::from_secs(30),
        }
    }
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings {
            delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// Loads and validates settings from `sources`.
    pub fn load(sources: &Sources) -> Result<Settings, SettingsError> {
        let settings: Settings = launch::settings::load(sources, "BACKEND", "listen.port", &[])?;
        settings.validate()?;
        Ok(settings)
    }

    /// Range and consistency checks.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.faults
            .check()
            .map_err(|p| SettingsError::invalid(format!("faults.{}", p.key), p.message))?;
        if self.name.len() > 253 {
            return Err(SettingsError::invalid(
                "name",
                "must be at most 253 characters",
            ));
        }
        self.http.validate("http")?;
        observability::telemetry::validate_level(&self.log.level)
            .map_err(|e| SettingsError::invalid("log.level", e))?;
        Ok(())
    }

    /// The instance name to report.
    pub fn instance_name(&self, port: u16) -> String {
        if self.name.is_empty() {
            format!("backend-{port}")
        } else {
            self.name.clone()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load(&Sources::from_pairs(env))
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = load(&[]).unwrap();
        assert_eq!(s.listen.port, 5000);
        assert_eq!(s.faults.error_rate, 0.0);
        assert_eq!(s.instance_name(5000), "backend-5000");
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/config/backend.example.yaml"
        );
        let loaded = Settings::load(&Sources {
            file: Some(path.into()),
            env: vec![],
        })
        .unwrap();
        assert_eq!(loaded, Settings::default());
    }

    #[test]
    fn port_and_prefixed_variables_apply() {
        let s = load(&[("PORT", "5002"), ("BACKEND__FAULTS__LATENCY", "20ms")]).unwrap();
        assert_eq!(s.listen.port, 5002);
        assert_eq!(s.faults.latency, Duration::from_millis(20));
    }

    #[test]
    fn the_admin_token_is_read_and_never_printed() {
        let s = load(&[("BACKEND__ADMIN__TOKEN", "hunter2")]).unwrap();
        assert_eq!(s.admin.token, "hunter2");
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            !json.contains("hunter2") && json.contains("<redacted>"),
            "{json}"
        );
    }

    #[test]
    fn each_invalid_value_names_its_key() {
        for (key, value, expect) in [
            ("BACKEND__FAULTS__ERROR_RATE", "1.5", "faults.error_rate"),
            (
                "BACKEND__FAULTS__ERROR_STATUS",
                "404",
                "faults.error_status",
            ),
            ("BACKEND__FAULTS__MAX_DELAY", "1h", "faults.max_delay"),
            ("BACKEND__FAULTS__LATENCY", "31s", "faults.latency"),
            ("BACKEND__FAULTS__LATENCY", "soon", "faults.latency"),
            (
                "BACKEND__HTTP__MAX_HEADER_BYTES",
                "10",
                "http.max_header_bytes",
            ),
            ("BACKEND__LOG__LEVEL", "info,[", "log.level"),
            ("BACKEND__LISTEN__PORT", "-1", "listen.port"),
        ] {
            let e = load(&[(key, value)]).unwrap_err().to_string();
            assert!(e.contains(expect), "{key}={value}: {e}");
        }
    }
}
