//! The set of backends, changed at run time by the admin API, the static
//! `servers` list and DNS discovery.
//!
//! Readers (every proxied request) load an immutable [`Snapshot`] through an
//! `ArcSwap`: no lock on the request path, and a change never blocks or
//! disturbs requests in flight. Writers serialize on a mutex, build a new
//! snapshot (including the weighted schedule) and swap it in. A removed
//! backend lives on for as long as requests in flight hold its `Arc`, and
//! so does what the [`Registry::on_added`] hook attached to it (how the
//! metrics learn when a backend's series may go).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use common::clock::Clock;
use common::stats::Recorder;
use http::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::balancer;
use crate::health::{Health, State, StateChange};
use crate::state_file::StateFile;

/// A backend as written in config or in a registration request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// 1 to 63 of `A-Z a-z 0-9 - _ .`; the key of the registry.
    pub name: String,
    /// Absolute `http://` or `https://` URL with a host; an optional path
    /// is prefixed to every forwarded path.
    pub url: String,
    /// 1 to 1000; only `weighted_round_robin` uses it. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A validation failure, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `name`, `url` or `weight`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Largest accepted weight.
pub const MAX_WEIGHT: u32 = 1000;

impl ServerSpec {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name(&self.name)?;
        parse_base_url(&self.url)?;
        if let Some(w) = self.weight {
            if !(1..=MAX_WEIGHT).contains(&w) {
                return Err(FieldError {
                    field: "weight",
                    message: format!("{w} is not between 1 and {MAX_WEIGHT}"),
                });
            }
        }
        Ok(())
    }
}

/// Checks a server name.
pub fn validate_name(name: &str) -> Result<(), FieldError> {
    let err = |message: String| {
        Err(FieldError {
            field: "name",
            message,
        })
    };
    if name.is_empty() || name.len() > 63 {
        return err(format!(
            "must be 1 to 63 characters long, got {}",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return err(format!(
            "{c:?} is not allowed: use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// A parsed, validated backend URL, ready to have paths appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `http://host:port` plus the optional path prefix, without a
    /// trailing slash; forwarded request paths are appended to it.
    pub prefix: String,
    /// `host:port`: the connect address, the upstream pool's key (shared by
    /// every pooled connection without copying) and what logs show.
    pub authority: Arc<str>,
    /// Whether the backend speaks `https` (reqwest with rustls), rather
    /// than plain HTTP (the gateway's own pooled HTTP/1.1 client).
    pub tls: bool,
    /// The URL's path prefix without a trailing slash (often empty);
    /// forwarded paths are appended to it.
    pub path: String,
    /// The `Host` header sent upstream: the host, plus the port when it is
    /// not the scheme's default, built once at registration.
    pub host: HeaderValue,
}

/// Validates and normalizes a backend URL.
pub fn parse_base_url(raw: &str) -> Result<BaseUrl, FieldError> {
    let err = |message: String| FieldError {
        field: "url",
        message,
    };
    if raw.len() > 2048 {
        return Err(err("must be at most 2048 characters".into()));
    }
    let url =
        reqwest::Url::parse(raw).map_err(|e| err(format!("{raw:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(format!(
            "scheme {:?} is not supported: use http or https",
            url.scheme()
        )));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(err(format!("{raw:?} has no host")));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err("credentials in the URL are not supported".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("must not have a query or fragment".into()));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let path = url.path().trim_end_matches('/');
    let host_header = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let host = HeaderValue::from_str(&host_header).map_err(|_| {
        err(format!(
            "{raw:?} has a host that is not a valid Host header"
        ))
    })?;
    Ok(BaseUrl {
        prefix: format!("{}://{authority}{path}", url.scheme()),
        authority: Arc::from(authority),
        tls: url.scheme() == "https",
        path: path.to_owned(),
        host,
    })
}

/// How a backend got into the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The `servers` list in the settings.
    Config,
    /// `POST`/`PUT /api/servers`.
    Api,
    /// DNS discovery.
    Discovery,
}

/// One registered backend, shared by the registry and requests in flight.
#[derive(Debug)]
pub struct Backend {
    /// Registry key.
    pub name: String,
    /// The URL as registered (shown back to users).
    pub url: String,
    /// Where requests go.
    pub base: BaseUrl,
    /// Share under `weighted_round_robin`.
    pub weight: u32,
    /// Who registered it; discovery only removes what it added.
    pub source: Source,
    /// When it was registered.
    pub registered_at: SystemTime,
    /// Requests currently being proxied to it; what `least_outstanding`
    /// compares.
    pub active: AtomicU64,
    /// Requests sent to it since registration.
    pub requests: AtomicU64,
    /// Of those, how many got no answer or a 5xx.
    pub failures: AtomicU64,
    /// Its own stats windows (`servers` in `/api/stats`).
    pub stats: Arc<Recorder>,
    /// Up, down, ejected or draining, and the counters behind it.
    pub health: Health,
    /// What the `on_added` hook returned for it, dropped with it.
    _attached: Option<Attachment>,
}

impl Backend {
    /// Marks a request as in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Like [`Backend::begin`], but only while fewer than `limit` requests
    /// are in flight (0 = no limit). Claiming and checking are one atomic
    /// step, so concurrent requests cannot both take the last slot.
    pub fn try_begin(self: &Arc<Self>, limit: u64) -> Option<InFlight> {
        let now = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        if limit != 0 && now > limit {
            self.active.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(self.clone()))
    }

    /// The spec it was registered with.
    pub fn spec(&self) -> ServerSpec {
        ServerSpec {
            name: self.name.clone(),
            url: self.url.clone(),
            weight: Some(self.weight),
        }
    }

    /// What `GET /api/servers` shows.
    pub fn view(&self) -> ServerView {
        ServerView {
            name: self.name.clone(),
            url: self.url.clone(),
            weight: self.weight,
            state: self.health.state(),
            last_state_change: self.health.last_change(),
            ejections: self.health.ejections.load(Ordering::Relaxed),
            consecutive_failures: self.health.consecutive_failures.load(Ordering::Relaxed),
            source: self.source,
            registered_at: humantime::format_rfc3339_seconds(self.registered_at).to_string(),
            active_requests: self.active.load(Ordering::Relaxed),
            requests_total: self.requests.load(Ordering::Relaxed),
            failures_total: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// Counts a request as in flight on a backend until dropped; held by the
/// response body so streaming responses count until they finish.
#[derive(Debug)]
pub struct InFlight(pub Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A backend as shown by the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ServerView {
    /// Registry key.
    pub name: String,
    /// As registered.
    pub url: String,
    /// Effective weight.
    pub weight: u32,
    /// `up` (receives traffic), `down`, `ejected` or `draining`.
    pub state: State,
    /// When and why `state` last changed.
    pub last_state_change: StateChange,
    /// Outlier ejections so far (the multiplier of the next one).
    pub ejections: u32,
    /// Failed attempts in a row right now.
    pub consecutive_failures: u32,
    /// `config`, `api` or `discovery`.
    pub source: Source,
    /// RFC 3339.
    pub registered_at: String,
    /// Requests in flight now.
    pub active_requests: u64,
    /// Requests sent since registration.
    pub requests_total: u64,
    /// Of those, no answer or 5xx.
    pub failures_total: u64,
}

/// An immutable view of the backend set, swapped whole on every change of
/// membership or state.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every registered backend, in registration order.
    pub backends: Vec<Arc<Backend>>,
    /// Those that are `up`: the ones the balancer picks from.
    pub eligible: Vec<Arc<Backend>>,
    /// Indices into `eligible` in smooth weighted round-robin order.
    pub weighted: Vec<u32>,
}

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The name was new.
    Created,
    /// The name existed and was replaced (PUT) or changed.
    Replaced,
    /// The same registration was already there; nothing changed.
    Unchanged,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A field is invalid.
    #[error("{0}")]
    Invalid(FieldError),
    /// `POST` for an existing name with different settings.
    #[error("server {name:?} is already registered with url {existing_url:?}")]
    Conflict {
        /// The name.
        name: String,
        /// What it points at now.
        existing_url: String,
    },
    /// Too many backends.
    #[error("the registry is full ({0} servers)")]
    Full(usize),
    /// The state file could not be written; nothing changed.
    #[error("{0}")]
    Persist(String),
}

/// Most backends the registry holds; bounds memory (each has stats windows).
pub const MAX_SERVERS: usize = 1024;

/// Whatever an `on_added` hook ties to the lifetime of a backend.
type Attachment = Box<dyn std::any::Any + Send + Sync>;

/// Called with the name of each backend added to the registry.
type AddedHook = Box<dyn Fn(&str) -> Attachment + Send + Sync>;

/// The backend registry.
pub struct Registry {
    current: ArcSwap<Snapshot>,
    /// Serializes writers; readers never take it.
    write: Mutex<()>,
    clock: Arc<dyn Clock>,
    /// Where API registrations are saved, when configured.
    state_file: Option<StateFile>,
    /// Told the name of every backend added (metrics create its series and
    /// hand back what keeps them).
    on_added: Option<AddedHook>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("servers", &self.current.load().backends.len())
            .finish()
    }
}

impl Registry {
    /// An empty registry whose backends' stats read `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Registry {
            current: ArcSwap::from_pointee(Snapshot::default()),
            write: Mutex::new(()),
            clock,
            state_file: None,
            on_added: None,
        }
    }

    /// Calls `hook` with the name of every backend added from now on
    /// (replacements under the same name included). What it returns is
    /// kept with that backend and dropped when the backend is: once it has
    /// left the registry (removed or replaced) and the last request in
    /// flight to it has ended.
    pub fn on_added<T: Send + Sync + 'static>(
        mut self,
        hook: impl Fn(&str) -> T + Send + Sync + 'static,
    ) -> Self {
        self.on_added = Some(Box::new(move |name| Box::new(hook(name))));
        self
    }

    /// Saves API registrations to `file` on every change from now on.
    pub fn with_state_file(mut self, file: StateFile) -> Self {
        self.state_file = Some(file);
        self
    }

    /// Rebuilds the snapshot after backends changed state, so the balancer
    /// only sees `up` ones. Membership is unchanged.
    pub fn refresh(&self) {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let backends = self.current.load().backends.clone();
        self.current.store(Arc::new(build_snapshot(backends)));
    }

    /// Starts or ends an operator drain of `name`.
    pub fn set_draining(&self, name: &str, draining: bool) -> Option<Arc<Backend>> {
        let backend = self.get(name)?;
        let reason = if draining {
            "drained by operator"
        } else {
            "drain ended by operator"
        };
        if backend.health.set_draining(draining, reason) {
            self.refresh();
        }
        Some(backend)
    }

    /// Writes the API registrations in `backends` to the state file, if any.
    fn persist(&self, backends: &[Arc<Backend>]) -> Result<(), RegistryError> {
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        let specs: Vec<ServerSpec> = backends
            .iter()
            .filter(|b| b.source == Source::Api)
            .map(|b| b.spec())
            .collect();
        file.save(&specs).map_err(|e| {
            tracing::error!(error = %e, "registry change not applied");
            RegistryError::Persist(e.to_string())
        })
    }

    /// The current backend set; lock-free.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current backend set for the request path: a guard that avoids
    /// touching the shared reference count (which every worker would
    /// otherwise bounce between CPU caches on every request).
    pub fn current(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Looks a backend up by name.
    pub fn get(&self, name: &str) -> Option<Arc<Backend>> {
        self.current
            .load()
            .backends
            .iter()
            .find(|b| b.name == name)
            .cloned()
    }

    /// `POST` semantics: create, or accept the identical registration again
    /// (weight omitted means "keep"); a different url or weight conflicts.
    pub fn register(
        &self,
        spec: &ServerSpec,
        source: Source,
    ) -> Result<(Registered, Arc<Backend>), RegistryError> {
        spec.validate().map_err(RegistryError::Invalid)?;
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.get(&spec.name) {
            let same_weight = spec.weight.is_none_or(|w| w == existing.weight);
            if existing.url == spec.url && same_weight {
                return Ok((Registered::Unchanged, existing));
            }
            return Err(RegistryError::Conflict {
                name: spec.name.clone(),
                existing_url: existing.url.clone(),
            });
        }
        self.insert_locked(spec, source)
            .map(|b| (Registered::Created, b))
    }

    /// `PUT` semantics: create or replace.
    pub fn upsert(
        &self,
        spec: &ServerSpec,
        source: Source,
    ) -> Result<(Registered, Arc<Backend>), RegistryError> {
        spec.validate().map_err(RegistryError::Invalid)?;
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        match self.get(&spec.name) {
            Some(existing)
                if existing.url == spec.url && existing.weight == spec.weight.unwrap_or(1) =>
            {
                Ok((Registered::Unchanged, existing))
            }
            Some(_) => self
                .insert_locked(spec, source)
                .map(|b| (Registered::Replaced, b)),
            None => self
                .insert_locked(spec, source)
                .map(|b| (Registered::Created, b)),
        }
    }

    /// Removes a backend; requests in flight to it finish normally.
    pub fn remove(&self, name: &str) -> Option<Arc<Backend>> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current.load_full();
        let removed = current.backends.iter().find(|b| b.name == name).cloned()?;
        let backends: Vec<Arc<Backend>> = current
            .backends
            .iter()
            .filter(|b| b.name != name)
            .cloned()
            .collect();
        if removed.source == Source::Api && self.persist(&backends).is_err() {
            return None;
        }
        self.current.store(Arc::new(build_snapshot(backends)));
        Some(removed)
    }

    /// Names of the backends that came from `source`.
    pub fn names_from(&self, source: Source) -> Vec<String> {
        self.current
            .load()
            .backends
            .iter()
            .filter(|b| b.source == source)
            .map(|b| b.name.clone())
            .collect()
    }

    fn insert_locked(
        &self,
        spec: &ServerSpec,
        source: Source,
    ) -> Result<Arc<Backend>, RegistryError> {
        let base = parse_base_url(&spec.url).map_err(RegistryError::Invalid)?;
        let current = self.current.load_full();
        let replacing = current.backends.iter().any(|b| b.name == spec.name);
        if !replacing && current.backends.len() >= MAX_SERVERS {
            return Err(RegistryError::Full(MAX_SERVERS));
        }
        let attached = self.on_added.as_ref().map(|hook| hook(&spec.name));
        let backend = Arc::new(Backend {
            name: spec.name.clone(),
            url: spec.url.clone(),
            base,
            weight: spec.weight.unwrap_or(1),
            source,
            registered_at: SystemTime::now(),
            active: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            stats: Recorder::new(self.clock.clone()),
            health: Health::default(),
            _attached: attached,
        });
        let mut backends: Vec<Arc<Backend>> = current.backends.clone();
        let replaced = match backends.iter_mut().find(|b| b.name == spec.name) {
            Some(slot) => Some(std::mem::replace(slot, backend.clone())),
            None => {
                backends.push(backend.clone());
                None
            }
        };
        if source == Source::Api || replaced.is_some_and(|r| r.source == Source::Api) {
            self.persist(&backends)?;
        }
        self.current.store(Arc::new(build_snapshot(backends)));
        Ok(backend)
    }
}

fn build_snapshot(backends: Vec<Arc<Backend>>) -> Snapshot {
    let eligible: Vec<Arc<Backend>> = backends
        .iter()
        .filter(|b| b.health.state() == State::Up)
        .cloned()
        .collect();
    let weights: Vec<u32> = eligible.iter().map(|b| b.weight).collect();
    Snapshot {
        weighted: balancer::smooth_weighted_schedule(&weights),
        eligible,
        backends,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use common::clock::SystemClock;

    fn spec(name: &str, url: &str, weight: Option<u32>) -> ServerSpec {
        ServerSpec {
            name: name.into(),
            url: url.into(),
            weight,
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("server-1_a.b").is_ok());
        assert!(validate_name(&"a".repeat(63)).is_ok());
        for bad in ["", &"a".repeat(64), "a b", "a/b", "é", "a\n"] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.field, "name", "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_and_normalized() {
        let b = parse_base_url("http://localhost:5000").unwrap();
        assert_eq!(b.prefix, "http://localhost:5000");
        assert_eq!(&*b.authority, "localhost:5000");
        let b = parse_base_url("http://127.0.0.1/v1/").unwrap();
        assert_eq!(b.prefix, "http://127.0.0.1:80/v1");
        let b = parse_base_url("https://api.example.com").unwrap();
        assert_eq!(b.prefix, "https://api.example.com:443");
        for bad in [
            "localhost:5000",
            "ftp://x",
            "http://",
            "http://u:p@x",
            "http://x/?a=1",
            "http://x/#f",
            "/relative",
            "",
        ] {
            assert_eq!(parse_base_url(bad).unwrap_err().field, "url", "{bad:?}");
        }
    }

    #[test]
    fn registration_is_idempotent_and_conflicts_are_refused() {
        let r = Registry::new(Arc::new(SystemClock));
        let s = spec("server1", "http://localhost:5000", None);
        assert_eq!(r.register(&s, Source::Api).unwrap().0, Registered::Created);
        assert_eq!(
            r.register(&s, Source::Api).unwrap().0,
            Registered::Unchanged
        );
        let other = spec("server1", "http://localhost:5001", None);
        assert!(matches!(
            r.register(&other, Source::Api),
            Err(RegistryError::Conflict { .. })
        ));
        let heavier = spec("server1", "http://localhost:5000", Some(5));
        assert!(matches!(
            r.register(&heavier, Source::Api),
            Err(RegistryError::Conflict { .. })
        ));
        assert_eq!(
            r.upsert(&heavier, Source::Api).unwrap().0,
            Registered::Replaced
        );
        assert_eq!(r.get("server1").unwrap().weight, 5);
        assert_eq!(r.snapshot().backends.len(), 1);
    }

    #[test]
    fn try_begin_never_exceeds_the_limit() {
        let r = Registry::new(Arc::new(SystemClock));
        let (_, b) = r
            .register(&spec("a", "http://x:1", None), Source::Api)
            .unwrap();
        let held: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| (0..100).filter_map(|_| b.try_begin(50)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(held.len(), 50);
        assert_eq!(b.active.load(Ordering::Relaxed), 50);
        drop(held);
        assert_eq!(b.active.load(Ordering::Relaxed), 0);
        assert!(b.try_begin(0).is_some());
    }

    #[test]
    fn removal_keeps_in_flight_handles_alive() {
        let r = Registry::new(Arc::new(SystemClock));
        let (_, b) = r
            .register(&spec("a", "http://x:1", None), Source::Api)
            .unwrap();
        let guard = b.begin();
        assert!(r.remove("a").is_some());
        assert!(r.remove("a").is_none());
        assert_eq!(guard.0.active.load(Ordering::Relaxed), 1);
        drop(guard);
        assert_eq!(b.active.load(Ordering::Relaxed), 0);
        assert!(r.snapshot().backends.is_empty());
    }

    #[test]
    fn attachments_are_dropped_with_their_backend() {
        struct Attached(String, Arc<Mutex<Vec<String>>>);
        impl Drop for Attached {
            fn drop(&mut self) {
                self.1.lock().unwrap().push(self.0.clone());
            }
        }
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let added = AtomicU64::new(0);
        let log = dropped.clone();
        let r = Registry::new(Arc::new(SystemClock)).on_added(move |name| {
            let n = added.fetch_add(1, Ordering::Relaxed) + 1;
            Attached(format!("{name}#{n}"), log.clone())
        });
        r.register(&spec("a", "http://x:1", None), Source::Api)
            .unwrap();
        r.upsert(&spec("a", "http://x:2", None), Source::Api)
            .unwrap();
        assert_eq!(*dropped.lock().unwrap(), ["a#1"], "replaced");
        let (_, b) = r
            .register(&spec("b", "http://x:3", None), Source::Api)
            .unwrap();
        let in_flight = b.begin();
        drop(b);
        r.remove("b").unwrap();
        assert_eq!(
            *dropped.lock().unwrap(),
            ["a#1"],
            "b has a request in flight"
        );
        drop(in_flight);
        assert_eq!(*dropped.lock().unwrap(), ["a#1", "b#3"]);
    }

    #[test]
    fn invalid_specs_change_nothing() {
        let r = Registry::new(Arc::new(SystemClock));
        assert!(r
            .register(&spec("ok", "http://x:1", Some(0)), Source::Api)
            .is_err());
        assert!(r
            .upsert(&spec("ok", "http://x:1", Some(1001)), Source::Api)
            .is_err());
        assert!(r.snapshot().backends.is_empty());
    }
}
