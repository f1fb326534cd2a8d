//! A backend's state: `up`, `down`, `ejected` or `draining`, derived from
//! three independent causes in order of precedence: `draining` (an
//! operator, through the admin API), `ejected` (passive outlier detection,
//! `crate::health::outlier`) and `down` (the active checks,
//! `crate::health::checks`). Only `up` backends receive new requests. Each
//! change is stamped with its time and reason for `/api/servers`.
//!
//! This module only keeps the state; who changes it, and when, is decided
//! above it. Depends only on [`super::latency`] (the estimate it resets
//! when a backend comes back `up`).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::latency::{now_nanos, LatencyEstimate};

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
    /// Failed attempts in a row (passive detection). Kept here, unlike the
    /// health checks' runs, because `/api/servers` shows it and the request
    /// path updates it without a lock.
    pub consecutive_failures: AtomicU32,
    /// Ejections so far; the next one lasts this many times the base time
    /// (shown in `/api/servers` too).
    pub ejections: AtomicU32,
    /// When the current run of `up` started, to forget old ejections.
    up_since: Mutex<SystemTime>,
    /// What `peak_ewma` balancing knows of its latency; neutral again each
    /// time the backend comes back `up`, so an old judgement does not keep
    /// a recovered backend from traffic.
    pub latency: LatencyEstimate,
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
            latency: LatencyEstimate::default(),
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
            self.latency.reset(now_nanos());
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

    /// Whether the active checks have it down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Ends an ejection caused by connection failures, if one is in force
    /// (a passing health check shows the backend came back); true when the
    /// effective state changed.
    pub fn end_connection_ejection(&self, reason: &str) -> bool {
        self.end_ejection_if(|(cause, _)| cause == EjectionCause::Connection, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_take_precedence_in_order() {
        let h = Health::default();
        let errors = h.eject(EjectionCause::Errors, "5xx").unwrap();
        assert!(h.eject(EjectionCause::Connection, "again").is_none());
        assert!(!h.end_connection_ejection("probe passed"));
        assert_eq!(h.state(), State::Ejected);
        assert!(h.end_ejection(errors, "timer"));
        assert!(!h.end_ejection(errors, "a stale timer"));
        h.set_draining(true, "operator");
        h.set_down(true, "probe");
        assert_eq!(h.state(), State::Draining);
        h.set_draining(false, "operator");
        assert_eq!(h.state(), State::Down);
        assert_eq!(h.last_change().reason, "operator");
    }

    #[test]
    fn coming_back_up_makes_the_latency_estimate_neutral() {
        let h = Health::default();
        let decay =
            super::super::latency::Decay::new(Duration::from_secs(10), Duration::from_millis(1));
        h.latency.observe(2e9, now_nanos(), &decay);
        h.set_down(true, "probe");
        assert!(!h.latency.is_neutral(), "only coming back resets it");
        h.set_down(false, "probe");
        assert!(h.latency.is_neutral());
        h.latency.observe(2e9, now_nanos(), &decay);
        let id = h.eject(EjectionCause::Errors, "5xx").unwrap();
        h.end_ejection(id, "timer");
        assert!(h.latency.is_neutral());
    }
}
