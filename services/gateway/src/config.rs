//! Gateway settings: built-in defaults, then `--config FILE` (YAML or TOML),
//! then `PORT`, then `GATEWAY__SECTION__KEY` environment variables.
//!
//! Every key is documented on its field below and in `deploy/gateway.example.yaml`.
//! Unknown keys are errors, so a typo cannot silently fall back to a default.

use std::time::Duration;

use launch::settings::{SettingsError, Sources};
use observability::telemetry::LogSettings;
use serde::{Deserialize, Deserializer, Serialize};
use serving::server::HttpSettings;

use crate::registry::ServerSpec;

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

/// Load-balancing strategy.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each backend in turn, ignoring weights.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin (NGINX's): proportional to weight,
    /// interleaved rather than in bursts.
    WeightedRoundRobin,
    /// Power of two random choices, picking the one with fewer requests in
    /// flight: adapts to slow backends without a global scan.
    LeastOutstanding,
}

/// The `balancer` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BalancerSettings {
    /// `round_robin`, `weighted_round_robin` or `least_outstanding`.
    pub strategy: Strategy,
}

/// The `upstream` section: the client that calls backends.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    /// Longest wait for a TCP connection to a backend; past it, 502.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for a backend's response head; past it, 504.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Idle pooled connections are closed after this; keep it below the
    /// backends' own keep-alive timeout so we never reuse one they closed.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per backend; at least the expected client
    /// concurrency, or the gateway keeps opening new connections.
    pub pool_max_idle_per_host: usize,
    /// Longest wait for the next bytes of a backend's response body once
    /// its head was passed on; past it the client's connection is closed
    /// mid-body and the backend is charged with a timeout.
    #[serde(with = "humantime_serde")]
    pub body_idle_timeout: Duration,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(30),
            pool_max_idle_per_host: 1024,
            body_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The `discovery` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverySettings {
    /// A DNS name whose A/AAAA records are the backends (a Kubernetes
    /// headless Service); empty turns discovery off.
    pub dns_name: String,
    /// Port the discovered backends listen on.
    pub port: u16,
    /// How often the name is resolved again.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            dns_name: String::new(),
            port: 5000,
            interval: Duration::from_secs(10),
        }
    }
}

/// The `admin` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Bearer token required by calls that change the registry; empty
    /// leaves the API open (fine on a laptop, not in a cluster). Shown as
    /// `<redacted>` by `--print-config`.
    #[serde(serialize_with = "redacted")]
    pub token: String,
    /// A file holding the token (for example a mounted Kubernetes Secret);
    /// read once at start-up, surrounding white space ignored.
    pub token_file: String,
    /// `host:port` of a separate listener for the registration API; when
    /// set, the public port refuses registry changes. Empty: one port.
    pub listen: String,
    /// Largest admin request body, in bytes.
    pub max_body_bytes: usize,
    /// Host names a registration may point at. `*.example` matches any name
    /// ending in `.example`, `*` any single-label name, `**` any name.
    /// IP addresses are checked against `allowed_networks` instead.
    pub allowed_hosts: Vec<String>,
    /// Networks (CIDR) a registration's IP address may be in.
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Host names always refused (cloud metadata aliases).
    pub denied_hosts: Vec<String>,
    /// Networks always refused, even inside `allowed_networks`
    /// (link-local, cloud metadata, unspecified, multicast), and never
    /// connected to when a backend's host name resolves into them.
    pub denied_networks: Vec<ipnet::IpNet>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        let nets = |list: &[&str]| list.iter().filter_map(|n| n.parse().ok()).collect();
        AdminSettings {
            token: String::new(),
            token_file: String::new(),
            listen: String::new(),
            max_body_bytes: 64 * 1024,
            allowed_hosts: [
                "localhost",
                "*.localhost",
                "*",
                "*.svc",
                "*.svc.cluster.local",
                "*.cluster.local",
            ]
            .map(String::from)
            .to_vec(),
            allowed_networks: nets(&[
                "127.0.0.0/8",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "100.64.0.0/10",
                "::1/128",
                "fc00::/7",
            ]),
            denied_hosts: [
                "metadata",
                "metadata.google.internal",
                "instance-data",
                "instance-data.ec2.internal",
            ]
            .map(String::from)
            .to_vec(),
            denied_networks: nets(&[
                "0.0.0.0/8",
                "169.254.0.0/16",
                "224.0.0.0/4",
                "100.100.100.200/32",
                "fe80::/10",
                "ff00::/8",
                "fd00:ec2::254/128",
                "::/128",
            ]),
        }
    }
}

/// The `health_check` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckSettings {
    /// Probe backends at all.
    pub enabled: bool,
    /// Path probed with GET on each backend; any 2xx is healthy.
    pub path: String,
    /// Time between probes of one backend.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A probe without an answer within this time has failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive successes that bring a `down` backend back `up` (and end
    /// an ejection early).
    pub healthy_threshold: u32,
    /// Consecutive failures that take an `up` backend `down`; above 1 so
    /// one lost probe does not flap the state.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        HealthCheckSettings {
            enabled: true,
            path: "/healthz".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            healthy_threshold: 1,
            unhealthy_threshold: 2,
        }
    }
}

/// The `outlier` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierSettings {
    /// Eject backends that fail repeatedly.
    pub enabled: bool,
    /// Consecutive failed attempts (connect errors, resets, timeouts) that
    /// eject a backend.
    pub consecutive_failures: u32,
    /// Count 5xx answers as failures too.
    pub count_5xx: bool,
    /// First ejection lasts this long; the n-th lasts n times as long.
    #[serde(with = "humantime_serde")]
    pub base_ejection_time: Duration,
    /// Upper bound on one ejection.
    #[serde(with = "humantime_serde")]
    pub max_ejection_time: Duration,
    /// At most this share of backends (percent) is ejected at once, so a
    /// fleet-wide problem does not eject everything; one backend may always
    /// be ejected.
    pub max_ejection_percent: u32,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            enabled: true,
            consecutive_failures: 3,
            count_5xx: false,
            base_ejection_time: Duration::from_secs(5),
            max_ejection_time: Duration::from_secs(60),
            max_ejection_percent: 50,
        }
    }
}

/// The `retry` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts per request including the first; 1 turns retries off.
    pub max_attempts: u32,
    /// One attempt may take this long (to the response head) before it is
    /// abandoned and retried; the whole request is still bounded by
    /// `upstream.request_timeout`.
    #[serde(with = "humantime_serde")]
    pub per_try_timeout: Duration,
    /// Upstream statuses that are retried too (for example `[502, 503, 504]`).
    pub on_statuses: Vec<u16>,
    /// Request bodies up to this size are buffered so they can be sent
    /// again; larger or unsized bodies are streamed and never retried.
    pub max_buffered_body_bytes: usize,
    /// Retries allowed as a share of recent requests (last 10 s) ...
    pub budget_ratio: f64,
    /// ... plus this many retries per second regardless of traffic.
    pub budget_min_per_second: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 3,
            per_try_timeout: Duration::from_secs(10),
            on_statuses: Vec::new(),
            max_buffered_body_bytes: 64 * 1024,
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }
}

/// The `limits` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Proxied requests in flight across the gateway; past it, 503 with
    /// `Retry-After`. 0 means no limit.
    pub max_in_flight: u64,
    /// Proxied requests in flight to one backend; a full backend is skipped,
    /// and when all are full the answer is 503. 0 means no limit.
    pub max_in_flight_per_backend: u64,
    /// Largest request body passed on, in bytes; past it, 413. 0 means no
    /// limit.
    pub max_body_bytes: u64,
    /// Longest wait for the next bytes of a client's request body; past it,
    /// 408 and the connection is closed. A stalled upload is the client's
    /// fault, never charged to the backend it was going to.
    #[serde(with = "humantime_serde")]
    pub body_idle_timeout: Duration,
    /// A body small enough to be buffered (`retry.max_buffered_body_bytes`)
    /// must arrive whole within this; it is read before the request takes
    /// a place under `max_in_flight`, so slow uploaders cannot fill it.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_in_flight: 10_000,
            max_in_flight_per_backend: 2_000,
            max_body_bytes: 64 * 1024 * 1024,
            body_idle_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// The `shutdown` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSettings {
    /// After SIGTERM, `/readyz` answers 503 for this long before the
    /// listener closes, so load balancers stop sending new work first.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Longest wait for requests in flight once the listener is closed.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings {
            delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(15),
        }
    }
}

/// The `log` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayLogSettings {
    /// `text` or `json`.
    pub format: observability::telemetry::LogFormat,
    /// Filter when `RUST_LOG` is unset.
    pub level: String,
    /// One line per proxied request (method, path, status, backend,
    /// latency, request id).
    pub access_log: bool,
}

impl Default for GatewayLogSettings {
    fn default() -> Self {
        GatewayLogSettings {
            format: observability::telemetry::LogFormat::Text,
            level: "info".into(),
            access_log: true,
        }
    }
}

impl GatewayLogSettings {
    /// The part `observability::telemetry` needs.
    pub fn common(&self) -> LogSettings {
        LogSettings {
            format: self.format,
            level: self.level.clone(),
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

/// Secrets are printed as `<redacted>` when set, so `--print-config` output
/// can be pasted into a bug report.
fn redacted<S: serde::Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if value.is_empty() { "" } else { "<redacted>" })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_env(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load(&Sources::from_pairs(env))
    }

    #[test]
    fn defaults() {
        let s = load_env(&[]).unwrap();
        assert_eq!(s.listen.port, 8000);
        assert_eq!(s.balancer.strategy, Strategy::RoundRobin);
        assert!(s.servers.is_empty());
        assert!(s.log.access_log);
    }

    #[test]
    fn file_env_and_port_layer_in_order() {
        let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        writeln!(
            f,
            "listen:\n  port: 9000\nbalancer:\n  strategy: least_outstanding\nservers:\n  - name: a\n    url: http://127.0.0.1:5000\n    weight: 3\nupstream:\n  request_timeout: 5s\n"
        )
        .unwrap();
        let sources = |env: &[(&str, &str)]| Sources {
            file: Some(f.path().into()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let s = Settings::load(&sources(&[])).unwrap();
        assert_eq!(s.listen.port, 9000);
        assert_eq!(s.balancer.strategy, Strategy::LeastOutstanding);
        assert_eq!(s.servers[0].weight, Some(3));
        assert_eq!(s.upstream.request_timeout, Duration::from_secs(5));
        let s = Settings::load(&sources(&[("PORT", "9001")])).unwrap();
        assert_eq!(s.listen.port, 9001);
        let s = Settings::load(&sources(&[
            ("PORT", "9001"),
            ("GATEWAY__LISTEN__PORT", "9002"),
            ("GATEWAY__BALANCER__STRATEGY", "weighted_round_robin"),
            ("GATEWAY__UPSTREAM__CONNECT_TIMEOUT", "250ms"),
        ]))
        .unwrap();
        assert_eq!(s.listen.port, 9002);
        assert_eq!(s.balancer.strategy, Strategy::WeightedRoundRobin);
        assert_eq!(s.upstream.connect_timeout, Duration::from_millis(250));
    }

    /// Every key appears, at its default, in the commented example users
    /// copy from, so the example can neither lag nor lie.
    #[test]
    fn the_example_file_documents_every_key_at_its_default() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/config/gateway.example.yaml"
        );
        let loaded = Settings::load(&Sources {
            file: Some(path.into()),
            env: vec![],
        })
        .unwrap();
        assert_eq!(loaded, Settings::default());
        let text = std::fs::read_to_string(path).unwrap();
        let mut missing = Vec::new();
        collect_keys(
            &serde_json::to_value(Settings::default()).unwrap(),
            &mut missing,
            &text,
        );
        assert!(
            missing.is_empty(),
            "keys missing from the example: {missing:?}"
        );
    }

    fn collect_keys(value: &serde_json::Value, missing: &mut Vec<String>, text: &str) {
        if let serde_json::Value::Object(map) = value {
            for (key, inner) in map {
                if !text.contains(&format!("{key}:")) {
                    missing.push(key.clone());
                }
                collect_keys(inner, missing, text);
            }
        }
    }

    #[test]
    fn print_config_redacts_the_token() {
        let s = load_env(&[("GATEWAY__ADMIN__TOKEN", "hunter2")]).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("hunter2"));
        assert!(json.contains("<redacted>"));
    }

    #[test]
    fn compact_servers_from_the_environment() {
        let s = load_env(&[(
            "GATEWAY__SERVERS",
            "server1=http://localhost:5000, server2=http://localhost:5001",
        )])
        .unwrap();
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.servers[1].name, "server2");
        assert_eq!(s.servers[1].url, "http://localhost:5001");
    }

    #[test]
    fn token_file_is_read_and_trimmed() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "  s3cret  ").unwrap();
        let path = f.path().to_str().unwrap().to_owned();
        let s = load_env(&[("GATEWAY__ADMIN__TOKEN_FILE", &path)]).unwrap();
        assert_eq!(s.admin.token, "s3cret");
        let e = load_env(&[("GATEWAY__ADMIN__TOKEN_FILE", "/nonexistent/token")]).unwrap_err();
        assert!(e.to_string().contains("admin.token_file"), "{e}");
    }

    #[test]
    fn each_invalid_value_names_its_key() {
        for (key, value, expect) in [
            ("GATEWAY__LISTEN__PORT", "eighty", "listen.port"),
            ("GATEWAY__BALANCER__STRATEGY", "random", "strategy"),
            (
                "GATEWAY__UPSTREAM__CONNECT_TIMEOUT",
                "0s",
                "upstream.connect_timeout",
            ),
            (
                "GATEWAY__UPSTREAM__REQUEST_TIMEOUT",
                "fast",
                "upstream.request_timeout",
            ),
            (
                "GATEWAY__UPSTREAM__POOL_IDLE_TIMEOUT",
                "0s",
                "upstream.pool_idle_timeout",
            ),
            (
                "GATEWAY__UPSTREAM__POOL_MAX_IDLE_PER_HOST",
                "1000000",
                "upstream.pool_max_idle_per_host",
            ),
            ("GATEWAY__SERVERS", "server1", "name=url"),
            ("GATEWAY__SERVERS", "bad name=http://x", "servers[0].name"),
            ("GATEWAY__SERVERS", "a=ftp://x", "servers[0].url"),
            (
                "GATEWAY__SERVERS",
                "a=http://x,a=http://y",
                "servers[1].name",
            ),
            ("GATEWAY__DISCOVERY__DNS_NAME", "x", "discovery"),
            (
                "GATEWAY__HTTP__HEADER_READ_TIMEOUT",
                "0s",
                "http.header_read_timeout",
            ),
            ("GATEWAY__LOG__LEVEL", "loud[", "log.level"),
            ("GATEWAY__LOG__FORMAT", "xml", "format"),
            ("GATEWAY__NOPE", "1", "nope"),
            ("GATEWAY__ADMIN__LISTEN", "nine thousand", "admin.listen"),
            (
                "GATEWAY__ADMIN__ALLOWED_NETWORKS",
                "10.0.0.0/8,10.0.0.0/33",
                "allowed_networks",
            ),
            (
                "GATEWAY__HEALTH_CHECK__PATH",
                "healthz",
                "health_check.path",
            ),
            (
                "GATEWAY__HEALTH_CHECK__TIMEOUT",
                "5s",
                "health_check.timeout",
            ),
            (
                "GATEWAY__HEALTH_CHECK__UNHEALTHY_THRESHOLD",
                "0",
                "threshold",
            ),
            (
                "GATEWAY__OUTLIER__CONSECUTIVE_FAILURES",
                "0",
                "outlier.consecutive_failures",
            ),
            (
                "GATEWAY__OUTLIER__MAX_EJECTION_PERCENT",
                "101",
                "outlier.max_ejection_percent",
            ),
            (
                "GATEWAY__OUTLIER__BASE_EJECTION_TIME",
                "2m",
                "outlier.max_ejection_time",
            ),
            ("GATEWAY__RETRY__MAX_ATTEMPTS", "0", "retry.max_attempts"),
            (
                "GATEWAY__RETRY__PER_TRY_TIMEOUT",
                "0s",
                "retry.per_try_timeout",
            ),
            ("GATEWAY__RETRY__BUDGET_RATIO", "-1", "retry.budget_ratio"),
        ] {
            let env: Vec<(&str, &str)> = if key == "GATEWAY__DISCOVERY__DNS_NAME" {
                vec![(key, value), ("GATEWAY__DISCOVERY__INTERVAL", "1ms")]
            } else {
                vec![(key, value)]
            };
            let e = load_env(&env).unwrap_err().to_string();
            assert!(e.contains(expect), "{key}={value}: {e}");
        }
    }
}
