//! The registry: the set of backends, changed at run time by the admin
//! API, the static `servers` list and DNS discovery.
//!
//! Readers (every proxied request) load an immutable [`Snapshot`] through an
//! `ArcSwap`: no lock on the request path, and a change never blocks or
//! disturbs requests in flight. Membership changes (register, replace,
//! remove) take turns on an async lock; one that touches an API
//! registration is handed to the [`Store`] first (the state file), on a
//! blocking thread, and applied only once saved (an error changes
//! nothing). Applying is building a new snapshot (including the weighted
//! schedule) and swapping it in, under a mutex that state changes
//! (`refresh`) share and that is never held across I/O. A removed backend
//! lives on for as long as requests in flight hold its `Arc`, and so does
//! what the [`Registry::on_added`] hook attached to it (how the metrics
//! learn when a backend's series may go).
//!
//! The registry knows nothing of metrics, persistence or health checks:
//! they are passed in (the hook, the store) or change backends' state and
//! call [`Registry::refresh`]. Depends on `spec`, `observability::stats` (each
//! backend's windows) and the rest of [`crate::backends`].

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use observability::clock::Clock;
use observability::stats::Recorder;

use super::backend::{Attachment, Backend, Source};
use super::ring::HashRing;
use super::schedule::smooth_weighted_schedule;
use super::state::{Health, State};
use crate::spec::{BaseUrl, FieldError, ServerSpec};

/// Where membership changes are saved before they take effect: the state
/// file, when one is configured. Called on a blocking thread, one change at
/// a time, in the order the changes take effect.
pub trait Store: Send + Sync + 'static {
    /// Saves `specs`, the API registrations after the change; on an error
    /// the change is not applied.
    fn save(&self, specs: &[ServerSpec]) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
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
    /// The consistent-hash ring over all of `backends` (owners are indices
    /// into it); shared with the snapshots before when only states changed.
    pub ring: Arc<HashRing>,
    /// Whether each of `backends` is `up` (in `eligible`).
    pub up: Vec<bool>,
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

/// Called with the name of each backend added to the registry.
type AddedHook = Box<dyn Fn(&str) -> Attachment + Send + Sync>;

/// The backend registry.
pub struct Registry {
    current: ArcSwap<Snapshot>,
    /// Held while a new snapshot is built and swapped in, never across
    /// I/O: state changes (`refresh`, on the request path) never wait for
    /// the disk.
    write: Mutex<()>,
    /// Serializes membership changes, each with its state file write, so
    /// the file is written in the order the changes take effect. Waited for
    /// asynchronously: a change queued behind a slow write blocks no thread.
    changes: Arc<tokio::sync::Mutex<()>>,
    clock: Arc<dyn Clock>,
    /// Where API registrations are saved, when configured.
    store: Option<Arc<dyn Store>>,
    /// Told the name of every backend added (metrics create its series and
    /// hand back what keeps them).
    on_added: Option<AddedHook>,
    /// Why `https` backends cannot be registered, when they cannot.
    no_https: Option<String>,
    /// Whether snapshots carry a hash ring (only the `hash` strategy reads
    /// it; with 1,000 backends it takes milliseconds to build).
    hash_ring: bool,
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
            changes: Arc::new(tokio::sync::Mutex::new(())),
            clock,
            store: None,
            on_added: None,
            no_https: None,
            hash_ring: true,
        }
    }

    /// Snapshots without a hash ring (an empty one), for strategies that do
    /// not hash: a change of membership then builds nothing it will not use.
    pub fn without_hash_ring(mut self) -> Self {
        self.hash_ring = false;
        self
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

    /// Saves API registrations to `store` on every change from now on.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Refuses `https` backends from now on, saying `reason` (no TLS client
    /// could be built, for example without CA certificates).
    pub fn without_https(mut self, reason: String) -> Self {
        self.no_https = Some(reason);
        self
    }

    /// The registry at start-up: the static `servers` (POST semantics among
    /// themselves), then the saved registrations whose name no static server
    /// has (the names of those skipped are returned). The state file is not
    /// written: it already holds the saved ones.
    pub fn with_servers(
        self,
        config: &[ServerSpec],
        saved: &[ServerSpec],
    ) -> Result<(Self, Vec<String>), RegistryError> {
        for spec in config {
            let base = self.check(spec)?;
            if let Some(existing) = self.get(&spec.name) {
                if !is_same(&existing, &base, spec.weight) {
                    return Err(conflict(&existing));
                }
                continue;
            }
            let (backends, _) = self.plan_put(spec, base, Source::Config)?;
            self.swap_in(backends);
        }
        let mut shadowed = Vec::new();
        for spec in saved {
            if config.iter().any(|c| c.name == spec.name) {
                shadowed.push(spec.name.clone());
                continue;
            }
            let base = self.check(spec)?;
            let (backends, _) = self.plan_put(spec, base, Source::Api)?;
            self.swap_in(backends);
        }
        Ok((self, shadowed))
    }

    /// Rebuilds the snapshot after backends changed state, so the balancer
    /// only sees `up` ones. Membership is unchanged.
    pub fn refresh(&self) {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current.load();
        let (backends, ring) = (current.backends.clone(), current.ring.clone());
        self.current
            .store(Arc::new(build_snapshot(backends, Some(ring))));
    }

    /// Starts or ends an operator drain of `name`. Not saved: a drain is
    /// part of a backend's state, which starts `up` after a restart.
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
    pub async fn register(
        self: &Arc<Self>,
        spec: &ServerSpec,
        source: Source,
    ) -> Result<(Registered, Arc<Backend>), RegistryError> {
        let base = self.check(spec)?;
        let order = self.changes.clone().lock_owned().await;
        if let Some(existing) = self.get(&spec.name) {
            if is_same(&existing, &base, spec.weight) {
                return Ok((Registered::Unchanged, existing));
            }
            return Err(conflict(&existing));
        }
        let (backends, backend) = self.plan_put(spec, base, source)?;
        self.commit(backends, order).await?;
        Ok((Registered::Created, backend))
    }

    /// `PUT` semantics: create or replace.
    pub async fn upsert(
        self: &Arc<Self>,
        spec: &ServerSpec,
        source: Source,
    ) -> Result<(Registered, Arc<Backend>), RegistryError> {
        let base = self.check(spec)?;
        let order = self.changes.clone().lock_owned().await;
        let outcome = match self.get(&spec.name) {
            Some(existing) if is_same(&existing, &base, Some(spec.weight.unwrap_or(1))) => {
                return Ok((Registered::Unchanged, existing));
            }
            Some(_) => Registered::Replaced,
            None => Registered::Created,
        };
        let (backends, backend) = self.plan_put(spec, base, source)?;
        self.commit(backends, order).await?;
        Ok((outcome, backend))
    }

    /// Removes a backend; requests in flight to it finish normally. `None`
    /// when there is none of that name; an error, and nothing removed, when
    /// the change could not be saved.
    pub async fn remove(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Option<Arc<Backend>>, RegistryError> {
        self.remove_if(name, |_| true).await
    }

    /// Removes `name` only if it came from `source`: what DNS discovery
    /// does, so it never removes a server the API put in its place.
    pub async fn remove_from(
        self: &Arc<Self>,
        source: Source,
        name: &str,
    ) -> Result<Option<Arc<Backend>>, RegistryError> {
        self.remove_if(name, |b| b.source == source).await
    }

    async fn remove_if(
        self: &Arc<Self>,
        name: &str,
        which: impl Fn(&Backend) -> bool,
    ) -> Result<Option<Arc<Backend>>, RegistryError> {
        let order = self.changes.clone().lock_owned().await;
        let current = self.current.load_full();
        let Some(removed) = current
            .backends
            .iter()
            .find(|b| b.name == name && which(b))
            .cloned()
        else {
            return Ok(None);
        };
        let backends = current
            .backends
            .iter()
            .filter(|b| b.name != name)
            .cloned()
            .collect();
        self.commit(backends, order).await?;
        Ok(Some(removed))
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

    /// Validates a registration, and parses its URL.
    fn check(&self, spec: &ServerSpec) -> Result<BaseUrl, RegistryError> {
        let base = spec.validate().map_err(RegistryError::Invalid)?;
        if let (true, Some(reason)) = (base.tls, &self.no_https) {
            return Err(RegistryError::Invalid(FieldError {
                field: "url",
                message: format!("https backends are not available: {reason}"),
            }));
        }
        Ok(base)
    }

    /// The backend set with `spec` added, or in place of the one of its
    /// name; not applied yet.
    fn plan_put(
        &self,
        spec: &ServerSpec,
        base: BaseUrl,
        source: Source,
    ) -> Result<(Vec<Arc<Backend>>, Arc<Backend>), RegistryError> {
        let current = self.current.load_full();
        let replacing = current.backends.iter().any(|b| b.name == spec.name);
        if !replacing && current.backends.len() >= MAX_SERVERS {
            return Err(RegistryError::Full(MAX_SERVERS));
        }
        let attached = self.on_added.as_ref().map(|hook| hook(&spec.name));
        let backend = Arc::new(Backend {
            name: spec.name.clone(),
            url: base.url.clone(),
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
        match backends.iter_mut().find(|b| b.name == spec.name) {
            Some(slot) => *slot = backend.clone(),
            None => backends.push(backend.clone()),
        }
        Ok((backends, backend))
    }

    /// Makes `backends` the registry, once the store holds their API
    /// registrations when those changed. Called holding `order` (the
    /// membership cannot change meanwhile); nothing changes on an error.
    async fn commit(
        self: &Arc<Self>,
        backends: Vec<Arc<Backend>>,
        order: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<(), RegistryError> {
        let specs = api_specs(&backends);
        let store = self
            .store
            .clone()
            .filter(|_| specs != api_specs(&self.current.load().backends));
        let Some(store) = store else {
            self.swap_in(backends);
            return Ok(());
        };
        // The write and its fsyncs run on a blocking thread, not on the
        // runtime's (whose other requests would stall meanwhile). The
        // closure holds `order` and swaps the snapshot in itself: a change
        // whose caller goes away half-way (a client that hung up) still
        // ends with file and registry alike, before the next one starts.
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _order = order;
            store.save(&specs).map_err(|e| {
                tracing::error!(error = %e, "registry change not applied");
                RegistryError::Persist(e.to_string())
            })?;
            this.swap_in(backends);
            Ok(())
        })
        .await
        .map_err(|e| RegistryError::Persist(format!("the state file was not written: {e}")))?
    }

    fn swap_in(&self, backends: Vec<Arc<Backend>>) {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let ring = (!self.hash_ring).then(|| Arc::new(HashRing::default()));
        self.current.store(Arc::new(build_snapshot(backends, ring)));
    }
}

/// Whether a registration asks for what `existing` already is (`weight`
/// `None` means "keep").
fn is_same(existing: &Backend, base: &BaseUrl, weight: Option<u32>) -> bool {
    existing.url == base.url && weight.is_none_or(|w| w == existing.weight)
}

fn conflict(existing: &Backend) -> RegistryError {
    RegistryError::Conflict {
        name: existing.name.clone(),
        existing_url: existing.url.clone(),
    }
}

/// What the state file holds for `backends`: their API registrations.
fn api_specs(backends: &[Arc<Backend>]) -> Vec<ServerSpec> {
    backends
        .iter()
        .filter(|b| b.source == Source::Api)
        .map(|b| b.spec())
        .collect()
}

/// The snapshot of `backends`; `ring` is the one to keep when membership
/// (names, weights, order) is unchanged, else it is built anew.
fn build_snapshot(backends: Vec<Arc<Backend>>, ring: Option<Arc<HashRing>>) -> Snapshot {
    let up: Vec<bool> = backends
        .iter()
        .map(|b| b.health.state() == State::Up)
        .collect();
    let eligible: Vec<Arc<Backend>> = backends
        .iter()
        .zip(&up)
        .filter(|(_, up)| **up)
        .map(|(b, _)| b.clone())
        .collect();
    let weights: Vec<u32> = eligible.iter().map(|b| b.weight).collect();
    let ring = ring.unwrap_or_else(|| {
        let names: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        Arc::new(HashRing::build(&names, &weights))
    });
    Snapshot {
        weighted: smooth_weighted_schedule(&weights),
        eligible,
        ring,
        up,
        backends,
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
