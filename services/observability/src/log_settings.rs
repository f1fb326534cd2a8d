//! What both services' `log` settings say (format and level), and how a
//! level or `RUST_LOG` filter is parsed without panicking. Depends on
//! nothing else in the crate.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The `log` section of both services' settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// Default filter when `RUST_LOG` is unset: `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".to_owned()
}

/// Checks that `level` is a valid filter, so a typo stops start-up instead of
/// silently logging nothing.
pub fn validate_level(level: &str) -> Result<(), String> {
    parse_filter(level).map(|_| ())
}

/// Parses an `EnvFilter` safely: tracing-subscriber panics on some
/// non-ASCII directives with surrounding spaces, so those are refused and
/// every directive is trimmed first.
pub(crate) fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    if !filter.is_ascii() {
        return Err(format!(
            "invalid log filter {filter:?}: only ASCII is allowed"
        ));
    }
    let normalized: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    EnvFilter::try_new(normalized.join(","))
        .map_err(|e| format!("invalid log filter {filter:?}: {e}"))
}
