//! Passive outlier detection: ejecting a backend that keeps failing real
//! requests, without waiting for the active checks.
//!
//! Every attempt reports its outcome. `outlier.consecutive_failures` failed
//! attempts in a row (connect errors, resets, timeouts, and 5xx answers when
//! `outlier.count_5xx`) eject the backend for `base_ejection_time` times its
//! number of ejections, capped at `max_ejection_time`; a timer set for that
//! ejection alone brings it back (a health check may end it earlier, and a
//! later ejection is not cut short by the earlier one's timer). At most
//! `max_ejection_percent` of the backends are ejected at once
//! (one may always be), so a fleet-wide failure does not empty the pool.
//! A backend that stays up for `max_ejection_time` has its count forgiven.
//!
//! Depends on `backends`, `config`, `metrics` and `outcome`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::backends::{Backend, EjectionCause, EjectionId, Registry, State};
use crate::config::OutlierSettings;
use crate::metrics::GatewayMetrics;
use crate::outcome::{Fault, Outcome};

/// The detector, shared by all requests.
#[derive(Debug)]
pub struct Outlier {
    settings: OutlierSettings,
    registry: Arc<Registry>,
    metrics: GatewayMetrics,
}

impl Outlier {
    /// A detector working on `registry`.
    pub fn new(
        settings: OutlierSettings,
        registry: Arc<Registry>,
        metrics: GatewayMetrics,
    ) -> Self {
        Outlier {
            settings,
            registry,
            metrics,
        }
    }

    /// Feeds one attempt's outcome; may eject the backend. Only the
    /// backend's faults count: a failed answer (no answer, or one cut off)
    /// always, a 5xx answer when `count_5xx`; a client's fault is ignored.
    pub fn report(&self, backend: &Arc<Backend>, outcome: &Outcome) {
        if !self.settings.enabled || outcome.fault() == Some(Fault::Client) {
            return;
        }
        let no_answer = outcome.answered().is_none();
        let failed =
            no_answer || (outcome.fault() == Some(Fault::Backend) && self.settings.count_5xx);
        let health = &backend.health;
        if !failed {
            // Cheap on the hot path: a load, and a store only after failures.
            if health.consecutive_failures.load(Ordering::Relaxed) != 0 {
                health.consecutive_failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        let failures = health.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.settings.consecutive_failures || health.state() != State::Up {
            return;
        }
        if !self.may_eject() {
            tracing::warn!(backend = %backend.name, failures, "not ejecting: max_ejection_percent reached");
            return;
        }
        let cause = if no_answer {
            EjectionCause::Connection
        } else {
            EjectionCause::Errors
        };
        if health.up_for() >= self.settings.max_ejection_time {
            health.ejections.store(0, Ordering::Relaxed);
        }
        let count = health.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let duration = self
            .settings
            .base_ejection_time
            .saturating_mul(count)
            .min(self.settings.max_ejection_time);
        let reason = format!(
            "ejected for {} ms after {failures} consecutive failures (ejection {count})",
            duration.as_millis()
        );
        let Some(ejection) = health.eject(cause, &reason) else {
            return;
        };
        health.consecutive_failures.store(0, Ordering::Relaxed);
        self.metrics.ejection(&backend.name);
        tracing::warn!(backend = %backend.name, %reason, "backend ejected");
        self.registry.refresh();
        self.schedule_return(backend.clone(), ejection, duration);
    }

    fn may_eject(&self) -> bool {
        let snapshot = self.registry.snapshot();
        let total = snapshot.backends.len();
        let ejected = snapshot
            .backends
            .iter()
            .filter(|b| b.health.state() == State::Ejected)
            .count();
        ejected == 0 || (ejected + 1) * 100 <= total * self.settings.max_ejection_percent as usize
    }

    fn schedule_return(&self, backend: Arc<Backend>, ejection: EjectionId, after: Duration) {
        let registry = self.registry.clone();
        // Weak: a backend removed during its ejection is not kept alive
        // (with its metric series) until the ejection would have ended.
        let backend = Arc::downgrade(&backend);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(backend) = backend.upgrade() else {
                return;
            };
            if backend.health.end_ejection(ejection, "ejection time over") {
                tracing::info!(backend = %backend.name, "backend back from ejection");
                registry.refresh();
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backends::Source;
    use crate::outcome::Failure;
    use crate::spec::ServerSpec;

    async fn detector() -> (Outlier, Arc<Backend>) {
        let registry = Arc::new(Registry::new(Arc::new(observability::clock::SystemClock)));
        let spec = ServerSpec {
            name: "b".into(),
            url: "http://127.0.0.1:9".into(),
            weight: None,
        };
        let (_, backend) = registry.register(&spec, Source::Api).await.unwrap();
        let metrics = GatewayMetrics::register(&prometheus::Registry::new()).unwrap();
        let settings = OutlierSettings {
            consecutive_failures: 1,
            base_ejection_time: Duration::from_secs(5),
            max_ejection_time: Duration::from_secs(60),
            ..OutlierSettings::default()
        };
        (Outlier::new(settings, registry, metrics), backend)
    }

    #[tokio::test(start_paused = true)]
    async fn an_ejection_timer_ends_only_its_own_ejection() {
        let (outlier, backend) = detector().await;
        // First ejection: 5 s. A health check ends it early.
        outlier.report(&backend, &Outcome::NoAnswer(Failure::Connect));
        assert_eq!(backend.health.state(), State::Ejected);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(backend
            .health
            .end_connection_ejection("health check passed"));
        assert_eq!(backend.health.state(), State::Up);
        // Second ejection at 1 s: 10 s, so until 11 s.
        outlier.report(&backend, &Outcome::NoAnswer(Failure::Connect));
        assert_eq!(backend.health.state(), State::Ejected);

        // The first ejection's timer (due at 5 s) has run by 6 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(backend.health.state(), State::Ejected);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(backend.health.state(), State::Ejected);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(backend.health.state(), State::Up);
    }
}
