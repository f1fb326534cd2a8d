//! Backend health: the state each backend is in, and the active checks that
//! move it between `up` and `down`.
//!
//! A backend's state is derived from three independent causes, in order of
//! precedence: `draining` (set through the admin API), `ejected` (set by
//! passive outlier detection, see [`crate::outlier`]) and `down` (set by the
//! active checks here). Only `up` backends receive new requests. Each change
//! is stamped with its time and reason for `/api/servers`, and the registry
//! is asked to rebuild its snapshot so the balancer sees the new set.
//!
//! Active checks GET `health_check.path` on every backend each
//! `health_check.interval`; `unhealthy_threshold` consecutive failures take
//! a backend down and `healthy_threshold` consecutive successes bring it
//! back. A success also ends an ejection caused by connection failures
//! (the backend evidently came back), but not one caused by 5xx answers,
//! whose health endpoint may well be fine.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::HealthCheckSettings;
use crate::metrics::GatewayMetrics;
use crate::registry::{Backend, Registry};

/// Where a backend stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Receives traffic.
    Up,
    /// Failing its active health checks.
    Down,
    /// Taken out by outlier detection for a while.
    Ejected,
    /// Taken out by an operator; requests in flight finish.
    Draining,
}

impl State {
    /// Every state, for metrics that list them all.
    pub const ALL: [State; 4] = [State::Up, State::Down, State::Ejected, State::Draining];

    /// Lower-case name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Ejected => "ejected",
            State::Draining => "draining",
        }
    }
}

/// Why an ejection happened, which decides what may end it early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionCause {
    /// Connect errors, resets, timeouts: a passing health check ends it.
    Connection,
    /// 5xx answers: only the timer ends it.
    Errors,
}

/// One ejection, told apart from the ones before and after it: the timer
/// set for an ejection must not end a later one that replaced it (after a
/// health check ended the first early).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionId(u64);

/// The ejection in force, if any, and how many were started.
#[derive(Debug, Default)]
struct Ejections {
    current: Option<(EjectionCause, EjectionId)>,
    started: u64,
}

/// The last state change, as shown in `/api/servers`.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    /// RFC 3339 time of the change.
    pub at: String,
    /// Human-readable reason.
    pub reason: String,
}

/// Per-backend health bookkeeping. All counters are atomics: the request
/// path updates them without locks.
#[derive(Debug)]
pub struct Health {
    down: AtomicBool,
    ejected: AtomicBool,
    draining: AtomicBool,
    /// The ejection in force (what may end it early, and which one it is).
    /// `ejected` mirrors it for the lock-free [`Health::state`].
    ejection: Mutex<Ejections>,
    /// Failed attempts in a row (passive detection).
    pub consecutive_failures: AtomicU32,
    /// Ejections so far; the next one lasts this many times the base time.
    pub ejections: AtomicU32,
    /// When the current run of `up` started, to forget old ejections.
    up_since: Mutex<SystemTime>,
    probe_successes: AtomicU32,
    probe_failures: AtomicU32,
    last_change: Mutex<StateChange>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            down: AtomicBool::new(false),
            ejected: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            ejection: Mutex::new(Ejections::default()),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            up_since: Mutex::new(SystemTime::now()),
            probe_successes: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            last_change: Mutex::new(StateChange {
                at: now_rfc3339(),
                reason: "registered".into(),
            }),
        }
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Health {
    /// The effective state.
    pub fn state(&self) -> State {
        if self.draining.load(Ordering::Relaxed) {
            State::Draining
        } else if self.ejected.load(Ordering::Relaxed) {
            State::Ejected
        } else if self.down.load(Ordering::Relaxed) {
            State::Down
        } else {
            State::Up
        }
    }

    /// The last change of state.
    pub fn last_change(&self) -> StateChange {
        self.last_change
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets one cause; returns true when the effective state changed.
    fn set(&self, flag: &AtomicBool, value: bool, reason: &str) -> bool {
        let before = self.state();
        flag.store(value, Ordering::Relaxed);
        let after = self.state();
        if before == after {
            return false;
        }
        *self.last_change.lock().unwrap_or_else(|p| p.into_inner()) = StateChange {
            at: now_rfc3339(),
            reason: reason.to_owned(),
        };
        if after == State::Up {
            *self.up_since.lock().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();
        }
        true
    }

    /// Marks the backend down or up as the active checks see it.
    pub fn set_down(&self, down: bool, reason: &str) -> bool {
        self.set(&self.down, down, reason)
    }

    /// Starts an ejection, unless one is in force already; its id, for
    /// [`Health::end_ejection`].
    pub fn eject(&self, cause: EjectionCause, reason: &str) -> Option<EjectionId> {
        let mut ejections = self.ejection.lock().unwrap_or_else(|p| p.into_inner());
        if ejections.current.is_some() {
            return None;
        }
        ejections.started += 1;
        let id = EjectionId(ejections.started);
        ejections.current = Some((cause, id));
        // Under the lock, so `ejected` never disagrees with `current`.
        self.set(&self.ejected, true, reason);
        Some(id)
    }

    /// Ends ejection `id` if it is still the one in force; true when the
    /// effective state changed.
    pub fn end_ejection(&self, id: EjectionId, reason: &str) -> bool {
        self.end_ejection_if(|(_, current)| current == id, reason)
    }

    fn end_ejection_if(
        &self,
        which: impl FnOnce((EjectionCause, EjectionId)) -> bool,
        reason: &str,
    ) -> bool {
        let mut ejections = self.ejection.lock().unwrap_or_else(|p| p.into_inner());
        if !ejections.current.is_some_and(which) {
            return false;
        }
        ejections.current = None;
        self.set(&self.ejected, false, reason)
    }

    /// Starts or ends an operator drain.
    pub fn set_draining(&self, draining: bool, reason: &str) -> bool {
        self.set(&self.draining, draining, reason)
    }

    /// How long the backend has been `up` without interruption.
    pub fn up_for(&self) -> Duration {
        let since = *self.up_since.lock().unwrap_or_else(|p| p.into_inner());
        SystemTime::now().duration_since(since).unwrap_or_default()
    }

    /// Feeds one probe result; returns true when the state changed.
    pub(crate) fn probe_result(
        &self,
        ok: bool,
        settings: &HealthCheckSettings,
        detail: &str,
    ) -> bool {
        if ok {
            self.probe_failures.store(0, Ordering::Relaxed);
            let successes = self.probe_successes.fetch_add(1, Ordering::Relaxed) + 1;
            let mut changed = false;
            if successes >= settings.healthy_threshold {
                if self.down.load(Ordering::Relaxed) {
                    changed |=
                        self.set_down(false, &format!("health check passed {successes} time(s)"));
                }
                changed |= self.end_ejection_if(
                    |(cause, _)| cause == EjectionCause::Connection,
                    "health check passed during ejection",
                );
            }
            changed
        } else {
            self.probe_successes.store(0, Ordering::Relaxed);
            let failures = self.probe_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= settings.unhealthy_threshold && !self.down.load(Ordering::Relaxed) {
                self.set_down(
                    true,
                    &format!("health check failed {failures} time(s): {detail}"),
                )
            } else {
                false
            }
        }
    }
}

/// Probes every backend each interval until `stop` resolves.
pub async fn run_checks(
    settings: HealthCheckSettings,
    registry: Arc<Registry>,
    client: reqwest::Client,
    metrics: GatewayMetrics,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stop => return,
        }
        let backends = registry.snapshot().backends.clone();
        let probes = backends.iter().map(|b| probe(&client, &settings, b));
        let results = futures_util::future::join_all(probes).await;
        let mut changed = false;
        for (backend, result) in backends.iter().zip(results) {
            let (ok, detail) = match result {
                Ok(()) => (true, String::new()),
                Err(e) => (false, e),
            };
            metrics.health_check(&backend.name, ok);
            if backend.health.probe_result(ok, &settings, &detail) {
                changed = true;
                tracing::warn!(
                    backend = %backend.name,
                    state = backend.health.state().as_str(),
                    reason = %observability::escape::Escaped(&backend.health.last_change().reason),
                    "backend state changed"
                );
            }
        }
        if changed {
            registry.refresh();
        }
    }
}

async fn probe(
    client: &reqwest::Client,
    settings: &HealthCheckSettings,
    backend: &Backend,
) -> Result<(), String> {
    let url = format!("{}{}", backend.base.prefix, settings.path);
    let response = tokio::time::timeout(settings.timeout, client.get(url).send())
        .await
        .map_err(|_| format!("no answer within {} ms", settings.timeout.as_millis()))?
        .map_err(|e| crate::upstream::error_chain(&e))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_prevent_flapping() {
        let h = Health::default();
        let s = HealthCheckSettings {
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            ..HealthCheckSettings::default()
        };
        assert!(!h.probe_result(false, &s, "x"));
        assert_eq!(h.state(), State::Up);
        assert!(!h.probe_result(true, &s, ""));
        assert!(!h.probe_result(false, &s, "x"));
        assert!(h.probe_result(false, &s, "refused"));
        assert_eq!(h.state(), State::Down);
        assert!(h.last_change().reason.contains("refused"));
        assert!(!h.probe_result(true, &s, ""));
        assert!(h.probe_result(true, &s, ""));
        assert_eq!(h.state(), State::Up);
    }

    #[test]
    fn precedence_and_early_end_of_connection_ejections() {
        let h = Health::default();
        let s = HealthCheckSettings::default();
        let errors = h.eject(EjectionCause::Errors, "5xx").unwrap();
        assert!(!h.probe_result(true, &s, ""));
        assert_eq!(h.state(), State::Ejected);
        assert!(h.end_ejection(errors, "timer"));
        assert!(h.eject(EjectionCause::Connection, "refused").is_some());
        assert!(h.probe_result(true, &s, ""));
        assert_eq!(h.state(), State::Up);
        h.set_draining(true, "operator");
        h.set_down(true, "probe");
        assert_eq!(h.state(), State::Draining);
        h.set_draining(false, "operator");
        assert_eq!(h.state(), State::Down);
    }
}
