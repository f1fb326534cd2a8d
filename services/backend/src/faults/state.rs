//! The faults in force, shared by every request: the configured ones until
//! a change replaces them, and again when it is cleared or its `duration`
//! runs out.
//!
//! Held in a watch channel, so a hung request can wait for the next change
//! ([`FaultState::until_not_hanging`]). Every change is logged, shown on
//! `/metrics` and counted. Knows nothing of settings files or HTTP.
//!
//! Depends on `spec` and `metrics`.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::metrics::FaultMetrics;
use super::spec::{Change, Faults, Mode};

/// The faults in force and when they run out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Current {
    /// What applies to `/api/data`.
    pub faults: Faults,
    /// When they go back to the configured ones, if ever.
    pub expires: Option<Instant>,
    /// Counts changes, so a timer can tell whether its change still holds.
    generation: u64,
}

/// The faults in force. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FaultState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    configured: Faults,
    max_delay: Duration,
    current: watch::Sender<Current>,
    metrics: FaultMetrics,
    /// The timer of the change in force, if it has a duration; also what
    /// keeps changes in order.
    expiry: Mutex<Option<JoinHandle<()>>>,
}

/// Why the faults changed, for the log.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// `PUT /api/faults`.
    Set,
    /// `DELETE /api/faults`.
    Cleared,
    /// The change's `duration` ran out.
    Expired,
}

impl FaultState {
    /// The `configured` faults in force, shown on `metrics`; no delay is
    /// ever longer than `max_delay`.
    pub fn new(configured: Faults, max_delay: Duration, metrics: FaultMetrics) -> Self {
        FaultState(Arc::new(Inner {
            configured,
            max_delay,
            current: watch::Sender::new(Current {
                faults: configured,
                expires: None,
                generation: 0,
            }),
            metrics,
            expiry: Mutex::new(None),
        }))
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.0.current.borrow().faults
    }

    /// The faults in force and when they run out.
    pub fn current(&self) -> Current {
        *self.0.current.borrow()
    }

    /// The cap on every delay (`faults.max_delay`, fixed at start-up).
    pub fn max_delay(&self) -> Duration {
        self.0.max_delay
    }

    /// Puts `change` in force until the next change, or for its duration.
    pub fn set(&self, change: Change) {
        self.replace(change.faults, change.duration, Why::Set, None);
    }

    /// Puts the configured faults back in force.
    pub fn clear(&self) {
        self.replace(self.0.configured, None, Why::Cleared, None);
    }

    /// The faults once they are not `hang`: at once if they are not now,
    /// else when a change makes them so.
    pub async fn until_not_hanging(&self) -> Faults {
        let mut changes = self.0.current.subscribe();
        loop {
            let faults = changes.borrow_and_update().faults;
            if faults.mode != Mode::Hang {
                return faults;
            }
            if changes.changed().await.is_err() {
                // The state is gone, so is the server: never answer.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Puts `faults` in force (for `duration`); with `only_after`, only if
    /// that change is still the latest (checked under the lock, so a change
    /// made meanwhile is never undone).
    fn replace(
        &self,
        faults: Faults,
        duration: Option<Duration>,
        why: Why,
        only_after: Option<u64>,
    ) {
        let inner = &self.0;
        let mut expiry = inner.expiry.lock().unwrap_or_else(|e| e.into_inner());
        if only_after.is_some_and(|g| g != inner.current.borrow().generation) {
            return;
        }
        // When the timer itself calls, aborting it is harmless: nothing
        // here awaits, so it finishes this call.
        if let Some(timer) = expiry.take() {
            timer.abort();
        }
        let expires = duration.map(|d| Instant::now() + d);
        let mut generation = 0;
        inner.current.send_modify(|current| {
            generation = current.generation + 1;
            *current = Current {
                faults,
                expires,
                generation,
            };
        });
        if let Some(at) = expires {
            let state = Arc::downgrade(&self.0);
            *expiry = Some(tokio::spawn(expire(state, at, generation)));
        }
        inner.metrics.show(&faults);
        inner.metrics.changed();
        tracing::info!(
            why = match why {
                Why::Set => "set",
                Why::Cleared => "cleared",
                Why::Expired => "expired",
            },
            mode = faults.mode.name(),
            latency = %humantime::format_duration(faults.latency),
            jitter = %humantime::format_duration(faults.jitter),
            error_rate = faults.error_rate,
            error_status = faults.error_status,
            duration = %duration.map_or_else(|| "none".to_owned(), |d| humantime::format_duration(d).to_string()),
            "faults changed"
        );
    }
}

/// Puts the configured faults back at `at`, unless another change came
/// first.
async fn expire(state: Weak<Inner>, at: Instant, generation: u64) {
    tokio::time::sleep_until(at).await;
    let Some(inner) = state.upgrade() else {
        return;
    };
    let configured = inner.configured;
    FaultState(inner).replace(configured, None, Why::Expired, Some(generation));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::FaultSettings;

    fn state() -> FaultState {
        let configured = Faults::configured(&FaultSettings::default());
        let registry = prometheus::Registry::new();
        let metrics = FaultMetrics::register(&registry, &configured).unwrap();
        FaultState::new(configured, Duration::from_secs(30), metrics)
    }

    fn hang() -> Faults {
        Faults {
            mode: Mode::Hang,
            ..Faults::configured(&FaultSettings::default())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_runs_out_unless_another_replaced_it() {
        let s = state();
        s.set(Change {
            faults: hang(),
            duration: Some(Duration::from_secs(10)),
        });
        assert_eq!(s.faults().mode, Mode::Hang);
        assert!(s.current().expires.is_some());
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(s.faults().mode, Mode::Serve);
        assert_eq!(s.current().expires, None);

        s.set(Change {
            faults: hang(),
            duration: Some(Duration::from_secs(10)),
        });
        s.set(Change {
            faults: hang(),
            duration: None,
        });
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(s.faults().mode, Mode::Hang, "the first timer still ran");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_request_waits_for_a_change_out_of_hang() {
        let s = state();
        s.set(Change {
            faults: hang(),
            duration: None,
        });
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.until_not_hanging().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        s.set(Change {
            faults: Faults {
                latency: Duration::from_millis(5),
                ..hang()
            },
            duration: None,
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "released while still hanging");
        s.clear();
        assert_eq!(waiting.await.unwrap().mode, Mode::Serve);
    }
}
