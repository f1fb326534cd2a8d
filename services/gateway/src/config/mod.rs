//! Gateway settings: built-in defaults, then `--config FILE` (YAML or TOML),
//! then `PORT`, then `GATEWAY__SECTION__KEY` environment variables.
//!
//! Every key is documented on its field (in `sections`) and in
//! `deploy/config/gateway.example.yaml`. Unknown keys are errors, so a typo
//! cannot silently fall back to a default.
//!
//! At the bottom of the crate: depends only on `spec` (the `servers` list),
//! and on `launch` (loading), `serving` (the HTTP settings) and
//! `observability` (the log settings).

mod sections;
#[cfg(test)]
mod tests;

pub use sections::*;

use std::time::Duration;

use launch::settings::{SettingsError, Sources};
use serde::{Deserialize, Deserializer, Serialize};
use serving::server::HttpSettings;

use crate::spec::ServerSpec;

/// Everything the gateway can be told.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where to listen.
    pub listen: Listen,
    /// Serving threads, each with its own runtime, listener and upstream
    /// pool; 0 means one per CPU the process may use.
    pub workers: usize,
    /// How a backend is chosen for each request.
    pub balancer: BalancerSettings,
    /// The shared client that talks to backends.
    pub upstream: UpstreamSettings,
    /// Backends registered at start-up, before any API call.
    #[serde(deserialize_with = "servers_list_or_compact")]
    pub servers: Vec<ServerSpec>,
    /// Finding backends from DNS instead of (or as well as) registration.
    pub discovery: DiscoverySettings,
    /// Protection of the registration API.
    pub admin: AdminSettings,
    /// Active health checks of every backend.
    pub health_check: HealthCheckSettings,
    /// Passive outlier detection: ejecting backends that keep failing.
    pub outlier: OutlierSettings,
    /// Retrying failed upstream attempts on another backend.
    pub retry: RetrySettings,
    /// Caps on requests in flight.
    pub limits: LimitSettings,
    /// Where API registrations are kept across restarts; empty keeps them
    /// in memory only.
    pub state_file: String,
    /// Stopping gracefully.
    pub shutdown: ShutdownSettings,
    /// Limits on incoming connections.
    pub http: HttpSettings,
    /// Log format, level and access log.
    pub log: GatewayLogSettings,
    /// The `/api/stats` windows.
    pub stats: Switch,
    /// The `/metrics` endpoint and the per-request metrics behind it.
    pub metrics: Switch,
}

/// A feature that can be switched off (the `stats` and `metrics` sections).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Switch {
    /// On by default. Off saves its per-request work (to measure what it
    /// costs, or where another system already collects the same figures);
    /// its endpoint then answers 404 with an error naming this key.
    pub enabled: bool,
}

impl Default for Switch {
    fn default() -> Self {
        Switch { enabled: true }
    }
}

/// The listening socket.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// Address to bind.
    pub host: String,
    /// Port; the `PORT` variable sets it too.
    pub port: u16,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            host: "0.0.0.0".into(),
            port: 8000,
        }
    }
}

impl Settings {
    /// Loads and validates settings from `sources`.
    pub fn load(sources: &Sources) -> Result<Settings, SettingsError> {
        let mut settings: Settings = launch::settings::load(
            sources,
            "GATEWAY",
            "listen.port",
            &[
                "admin.allowed_hosts",
                "admin.allowed_networks",
                "admin.denied_hosts",
                "admin.denied_networks",
                "retry.on_statuses",
            ],
        )?;
        settings.validate()?;
        if !settings.admin.token_file.is_empty() {
            let text = std::fs::read_to_string(&settings.admin.token_file).map_err(|e| {
                SettingsError::invalid(
                    "admin.token_file",
                    format!("cannot read {}: {e}", settings.admin.token_file),
                )
            })?;
            settings.admin.token = text.trim().to_owned();
            if settings.admin.token.is_empty() {
                return Err(SettingsError::invalid(
                    "admin.token_file",
                    "the file is empty",
                ));
            }
        }
        Ok(settings)
    }

    /// Range and consistency checks; errors name the key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.workers > 1024 {
            return Err(SettingsError::invalid(
                "workers",
                "must be at most 1024 (0 = one per CPU)",
            ));
        }
        let u = &self.upstream;
        for (key, value) in [
            ("upstream.connect_timeout", u.connect_timeout),
            ("upstream.request_timeout", u.request_timeout),
            ("upstream.pool_idle_timeout", u.pool_idle_timeout),
            ("upstream.body_idle_timeout", u.body_idle_timeout),
            ("limits.body_idle_timeout", self.limits.body_idle_timeout),
            ("limits.body_read_timeout", self.limits.body_read_timeout),
        ] {
            if value.is_zero() {
                return Err(SettingsError::invalid(key, "must be greater than zero"));
            }
        }
        let h = &self.balancer.hash;
        if self.balancer.strategy == Strategy::Hash || !h.key.is_empty() {
            HashKey::parse(&h.key)
                .map_err(|message| SettingsError::invalid("balancer.hash.key", message))?;
        }
        let p = &self.balancer.peak_ewma;
        for (key, value, max) in [
            (
                "balancer.peak_ewma.decay",
                p.decay,
                Duration::from_secs(3600),
            ),
            (
                "balancer.peak_ewma.default_rtt",
                p.default_rtt,
                Duration::from_secs(60),
            ),
            (
                "balancer.peak_ewma.penalty",
                p.penalty,
                Duration::from_secs(600),
            ),
        ] {
            if value.is_zero() || value > max {
                return Err(SettingsError::invalid(
                    key,
                    format!(
                        "must be greater than zero and at most {}",
                        humantime::format_duration(max)
                    ),
                ));
            }
        }
        if u.pool_max_idle_per_host > 65_536 {
            return Err(SettingsError::invalid(
                "upstream.pool_max_idle_per_host",
                "must be at most 65536",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, server) in self.servers.iter().enumerate() {
            server.validate().map_err(|e| {
                SettingsError::invalid(format!("servers[{i}].{}", e.field), e.message)
            })?;
            if !seen.insert(server.name.as_str()) {
                return Err(SettingsError::invalid(
                    format!("servers[{i}].name"),
                    format!("{:?} is listed twice", server.name),
                ));
            }
        }
        if !self.discovery.dns_name.is_empty() {
            if self.discovery.port == 0 {
                return Err(SettingsError::invalid("discovery.port", "must not be 0"));
            }
            if self.discovery.interval < Duration::from_millis(100) {
                return Err(SettingsError::invalid(
                    "discovery.interval",
                    "must be at least 100ms",
                ));
            }
        }
        if !self.admin.token.is_empty() && !self.admin.token_file.is_empty() {
            return Err(SettingsError::invalid(
                "admin.token",
                "set either admin.token or admin.token_file, not both",
            ));
        }
        if !self.admin.listen.is_empty()
            && self.admin.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(SettingsError::invalid(
                "admin.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:9000",
                    self.admin.listen
                ),
            ));
        }
        if !(256..=16 * 1024 * 1024).contains(&self.admin.max_body_bytes) {
            return Err(SettingsError::invalid(
                "admin.max_body_bytes",
                "must be between 256 and 16777216",
            ));
        }
        for (i, pattern) in self.admin.allowed_hosts.iter().enumerate() {
            if pattern.is_empty() || pattern.contains(['/', ':', ' ']) {
                return Err(SettingsError::invalid(
                    format!("admin.allowed_hosts[{i}]"),
                    format!("{pattern:?} is not a host pattern"),
                ));
            }
        }
        let h = &self.health_check;
        if h.enabled {
            if !h.path.starts_with('/') {
                return Err(SettingsError::invalid(
                    "health_check.path",
                    "must start with '/'",
                ));
            }
            if h.interval < Duration::from_millis(50) {
                return Err(SettingsError::invalid(
                    "health_check.interval",
                    "must be at least 50ms",
                ));
            }
            if h.timeout.is_zero() || h.timeout > h.interval {
                return Err(SettingsError::invalid(
                    "health_check.timeout",
                    "must be greater than zero and at most health_check.interval",
                ));
            }
            for (key, value) in [
                ("health_check.healthy_threshold", h.healthy_threshold),
                ("health_check.unhealthy_threshold", h.unhealthy_threshold),
            ] {
                if value == 0 {
                    return Err(SettingsError::invalid(key, "must be at least 1"));
                }
            }
        }
        let o = &self.outlier;
        if o.enabled {
            if o.consecutive_failures == 0 {
                return Err(SettingsError::invalid(
                    "outlier.consecutive_failures",
                    "must be at least 1",
                ));
            }
            if o.base_ejection_time.is_zero() || o.max_ejection_time < o.base_ejection_time {
                return Err(SettingsError::invalid(
                    "outlier.max_ejection_time",
                    "base_ejection_time must be above zero and at most max_ejection_time",
                ));
            }
            if o.max_ejection_percent > 100 {
                return Err(SettingsError::invalid(
                    "outlier.max_ejection_percent",
                    "must be at most 100",
                ));
            }
        }
        let r = &self.retry;
        if !(1..=10).contains(&r.max_attempts) {
            return Err(SettingsError::invalid(
                "retry.max_attempts",
                "must be between 1 and 10",
            ));
        }
        if r.per_try_timeout.is_zero() {
            return Err(SettingsError::invalid(
                "retry.per_try_timeout",
                "must be greater than zero",
            ));
        }
        if let Some(s) = r.on_statuses.iter().find(|s| !(500..=599).contains(*s)) {
            return Err(SettingsError::invalid(
                "retry.on_statuses",
                format!("{s} is not a 5xx status"),
            ));
        }
        if !(0.0..=10.0).contains(&r.budget_ratio) || r.budget_ratio.is_nan() {
            return Err(SettingsError::invalid(
                "retry.budget_ratio",
                "must be between 0.0 and 10.0",
            ));
        }
        if r.max_buffered_body_bytes > 16 * 1024 * 1024 {
            return Err(SettingsError::invalid(
                "retry.max_buffered_body_bytes",
                "must be at most 16777216",
            ));
        }
        self.http.validate("http")?;
        observability::telemetry::validate_level(&self.log.level)
            .map_err(|e| SettingsError::invalid("log.level", e))?;
        Ok(())
    }

    /// `workers`, with 0 resolved to the number of CPUs available.
    pub fn effective_workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The longest one attempt may take: the per-try timeout, never more
    /// than the whole request's.
    pub fn attempt_timeout(&self) -> Duration {
        self.retry
            .per_try_timeout
            .min(self.upstream.request_timeout)
    }
}

/// `servers` is a list of `{name, url, weight}` in files; in an environment
/// variable it may also be `name=url[,name=url...]`.
fn servers_list_or_compact<'de, D>(deserializer: D) -> Result<Vec<ServerSpec>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<ServerSpec>),
        Compact(String),
    }
    match Form::deserialize(deserializer)? {
        Form::List(list) => Ok(list),
        Form::Compact(text) => parse_compact_servers(&text).map_err(serde::de::Error::custom),
    }
}

/// Parses `name=url[,name=url...]` (white space around entries ignored).
pub fn parse_compact_servers(text: &str) -> Result<Vec<ServerSpec>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (name, url) = entry
                .split_once('=')
                .ok_or_else(|| format!("servers: {entry:?} is not of the form name=url"))?;
            Ok(ServerSpec {
                name: name.trim().to_owned(),
                url: url.trim().to_owned(),
                weight: None,
            })
        })
        .collect()
}
