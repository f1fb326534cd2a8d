//! One registered backend: where it is, its weight, its state, and the
//! counters the request path keeps on it without locks.
//!
//! Depends on `spec` (what a registration says) and [`super::state`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use observability::stats::Recorder;
use serde::Serialize;

use super::state::{Health, State, StateChange};
use crate::spec::{BaseUrl, ServerSpec};

/// Whatever an `on_added` hook ties to the lifetime of a backend.
pub(super) type Attachment = Box<dyn std::any::Any + Send + Sync>;

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
    pub(super) _attached: Option<Attachment>,
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
