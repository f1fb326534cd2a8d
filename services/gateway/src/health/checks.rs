//! Active health checks: GET `health_check.path` on every backend each
//! `health_check.interval`. `unhealthy_threshold` consecutive failures take
//! a backend down and `healthy_threshold` consecutive successes bring it
//! back. A success also ends an ejection caused by connection failures
//! (the backend evidently came back), but not one caused by 5xx answers,
//! whose health endpoint may well be fine.
//!
//! The checker keeps each backend's run of results itself; the backend set
//! only holds the state the runs decide. Depends on `backends`, `config`,
//! `metrics` and `upstream` (to describe a failed probe).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::backends::{Backend, Health, Registry};
use crate::config::HealthCheckSettings;
use crate::metrics::GatewayMetrics;

/// One backend's current run of probe results.
#[derive(Debug, Default)]
pub struct Streak {
    successes: u32,
    failures: u32,
}

impl Streak {
    /// Adds one probe result and moves `health` when a threshold is
    /// reached; true when its state changed.
    pub fn feed(
        &mut self,
        health: &Health,
        ok: bool,
        settings: &HealthCheckSettings,
        detail: &str,
    ) -> bool {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            let successes = self.successes;
            let mut changed = false;
            if successes >= settings.healthy_threshold {
                if health.is_down() {
                    changed |=
                        health.set_down(false, &format!("health check passed {successes} time(s)"));
                }
                changed |= health.end_connection_ejection("health check passed during ejection");
            }
            changed
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            let failures = self.failures;
            if failures >= settings.unhealthy_threshold && !health.is_down() {
                health.set_down(
                    true,
                    &format!("health check failed {failures} time(s): {detail}"),
                )
            } else {
                false
            }
        }
    }
}

/// The streaks of the backends registered now. Each is keyed by its
/// backend's address, held by a `Weak` so that the address cannot be reused
/// by a later backend while the entry exists; a backend replaced under the
/// same name starts a new streak, as it starts a new state.
#[derive(Debug, Default)]
struct Streaks(HashMap<usize, (Weak<Backend>, Streak)>);

impl Streaks {
    /// Keeps the entries of `backends` (adding new ones), drops the rest.
    fn retain(&mut self, backends: &[Arc<Backend>]) {
        let mut kept = HashMap::with_capacity(backends.len());
        for backend in backends {
            let key = Arc::as_ptr(backend) as usize;
            let entry = self
                .0
                .remove(&key)
                .unwrap_or_else(|| (Arc::downgrade(backend), Streak::default()));
            kept.insert(key, entry);
        }
        self.0 = kept;
    }

    fn of(&mut self, backend: &Arc<Backend>) -> &mut Streak {
        &mut self
            .0
            .entry(Arc::as_ptr(backend) as usize)
            .or_insert_with(|| (Arc::downgrade(backend), Streak::default()))
            .1
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
    let mut streaks = Streaks::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stop => return,
        }
        let backends = registry.snapshot().backends.clone();
        streaks.retain(&backends);
        let probes = backends.iter().map(|b| probe(&client, &settings, b));
        let results = futures_util::future::join_all(probes).await;
        let mut changed = false;
        for (backend, result) in backends.iter().zip(results) {
            let (ok, detail) = match result {
                Ok(()) => (true, String::new()),
                Err(e) => (false, e),
            };
            metrics.health_check(&backend.name, ok);
            if streaks
                .of(backend)
                .feed(&backend.health, ok, &settings, &detail)
            {
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
    use crate::backends::{EjectionCause, State};

    #[test]
    fn thresholds_prevent_flapping() {
        let h = Health::default();
        let mut streak = Streak::default();
        let s = HealthCheckSettings {
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            ..HealthCheckSettings::default()
        };
        assert!(!streak.feed(&h, false, &s, "x"));
        assert_eq!(h.state(), State::Up);
        assert!(!streak.feed(&h, true, &s, ""));
        assert!(!streak.feed(&h, false, &s, "x"));
        assert!(streak.feed(&h, false, &s, "refused"));
        assert_eq!(h.state(), State::Down);
        assert!(h.last_change().reason.contains("refused"));
        assert!(!streak.feed(&h, true, &s, ""));
        assert!(streak.feed(&h, true, &s, ""));
        assert_eq!(h.state(), State::Up);
    }

    #[test]
    fn a_passing_check_ends_only_connection_ejections() {
        let h = Health::default();
        let mut streak = Streak::default();
        let s = HealthCheckSettings::default();
        let errors = h.eject(EjectionCause::Errors, "5xx").unwrap();
        assert!(!streak.feed(&h, true, &s, ""));
        assert_eq!(h.state(), State::Ejected);
        assert!(h.end_ejection(errors, "timer"));
        assert!(h.eject(EjectionCause::Connection, "refused").is_some());
        assert!(streak.feed(&h, true, &s, ""));
        assert_eq!(h.state(), State::Up);
    }
}
