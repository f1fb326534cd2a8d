//! The settings of each part of the gateway, one section each: what they
//! hold, their defaults, and how they are read. Depends on nothing else in
//! the crate.

use std::time::Duration;

use observability::telemetry::LogSettings;
use serde::{Deserialize, Serialize};

/// Load-balancing strategy.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", try_from = "String")]
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
    /// Power of two random choices on a peak-sensitive moving average of
    /// latency times requests in flight (Finagle's and Linkerd's): avoids
    /// slow backends even when nothing is in flight.
    PeakEwma,
    /// Consistent hashing of a key taken from each request (a header, a
    /// cookie, a query parameter, the path or the client's address), so the
    /// same key goes to the same backend while it is `up`.
    Hash,
}

impl Strategy {
    /// Every strategy, by its name in the settings.
    pub const ALL: [(&'static str, Strategy); 5] = [
        ("round_robin", Strategy::RoundRobin),
        ("weighted_round_robin", Strategy::WeightedRoundRobin),
        ("least_outstanding", Strategy::LeastOutstanding),
        ("peak_ewma", Strategy::PeakEwma),
        ("hash", Strategy::Hash),
    ];

    /// Its name in the settings (`peak_ewma`), for logs and errors.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("round_robin", |(name, _)| name)
    }
}

impl TryFrom<String> for Strategy {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        named_choice("strategy", &name, &Self::ALL)
    }
}

/// The value named `name` among `choices`, or an error that says what was
/// given (quoted, cut at 64 characters) and lists what is accepted.
fn named_choice<T: Copy>(
    what: &str,
    name: &str,
    choices: &[(&'static str, T)],
) -> Result<T, String> {
    choices
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let shown: String = name.chars().take(64).collect();
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown {what} {shown:?}: expected one of {}",
                names.join(", ")
            )
        })
}

/// The `balancer` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BalancerSettings {
    /// `round_robin`, `weighted_round_robin`, `least_outstanding`,
    /// `peak_ewma` or `hash`.
    pub strategy: Strategy,
    /// How `peak_ewma` estimates latency (read only under that strategy).
    pub peak_ewma: PeakEwmaSettings,
    /// What `hash` hashes (read only under that strategy).
    pub hash: HashSettings,
}

/// The `balancer.hash` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HashSettings {
    /// Where the key is: `header:<name>`, `cookie:<name>`, `query:<name>`,
    /// `path` or `client_address`; required under `hash` (see [`HashKey`]).
    pub key: String,
    /// What a request without the key gets.
    pub fallback: HashFallback,
}

/// How `hash` picks for a request that lacks the key.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum HashFallback {
    /// Each `up` backend in turn.
    #[default]
    RoundRobin,
    /// A random `up` backend.
    Random,
}

impl TryFrom<String> for HashFallback {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        named_choice(
            "fallback",
            &name,
            &[
                ("round_robin", HashFallback::RoundRobin),
                ("random", HashFallback::Random),
            ],
        )
    }
}

/// A parsed `balancer.hash.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The first value of this request header.
    Header(http::HeaderName),
    /// The value of this cookie (from the `Cookie` headers).
    Cookie(String),
    /// The raw (not percent-decoded) value of this query parameter.
    Query(String),
    /// The request path, without the query.
    Path,
    /// The client's IP address (the peer of the connection).
    ClientAddress,
}

impl HashKey {
    /// The longest `balancer.hash.key` accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Parses `balancer.hash.key`; the error says what is wrong.
    pub fn parse(key: &str) -> Result<Self, String> {
        if key.len() > Self::MAX_LEN {
            return Err(format!(
                "is {} bytes long: at most {} ({:?}...)",
                key.len(),
                Self::MAX_LEN,
                key.chars().take(32).collect::<String>()
            ));
        }
        let is_token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        match key.split_once(':') {
            None if key == "path" => Ok(HashKey::Path),
            None if key == "client_address" => Ok(HashKey::ClientAddress),
            Some(("header", name)) => http::HeaderName::from_bytes(name.as_bytes())
                .ok()
                .filter(|_| is_token(name))
                .map(HashKey::Header)
                .ok_or_else(|| {
                    format!("{name:?} is not a valid header name (an HTTP token such as X-User)")
                }),
            Some(("cookie", name)) if is_token(name) => Ok(HashKey::Cookie(name.to_owned())),
            Some(("cookie", name)) => Err(format!(
                "{name:?} is not a valid cookie name (an HTTP token such as session)"
            )),
            // As it appears in a request target (compared undecoded):
            // visible ASCII, and none of the characters that end a name.
            Some(("query", name))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"&=#".contains(&b)) =>
            {
                Ok(HashKey::Query(name.to_owned()))
            }
            Some(("query", name)) => Err(format!(
                "{name:?} is not a valid query parameter name (non-empty visible ASCII, as sent in the URL, without '&', '=' or '#')"
            )),
            _ if key.is_empty() => Err(
                "is required under balancer.strategy hash: header:<name>, cookie:<name>, query:<name>, path or client_address"
                    .to_owned(),
            ),
            _ => Err(format!(
                "{key:?} is not one of header:<name>, cookie:<name>, query:<name>, path or client_address"
            )),
        }
    }
}

/// The `balancer.peak_ewma` section.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PeakEwmaSettings {
    /// Time constant of the moving average: faster answers pull a raised
    /// estimate down, and an idle one decays towards zero, by a factor e
    /// per `decay`.
    #[serde(with = "humantime_serde")]
    pub decay: Duration,
    /// What a backend with no answer yet (new, or back `up`) is assumed to
    /// take.
    #[serde(with = "humantime_serde")]
    pub default_rtt: Duration,
    /// The most a failed attempt (no answer, a broken one, or a 5xx) can
    /// make a backend look: each failure counts as twice the backend's
    /// current estimate, up to this (a longer timeout counts as it took).
    #[serde(with = "humantime_serde")]
    pub penalty: Duration,
}

impl Default for PeakEwmaSettings {
    fn default() -> Self {
        PeakEwmaSettings {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(1),
            penalty: Duration::from_secs(1),
        }
    }
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
    #[serde(serialize_with = "launch::settings::redacted")]
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
    pub fn telemetry(&self) -> LogSettings {
        LogSettings {
            format: self.format,
            level: self.level.clone(),
        }
    }
}
