//! The gateway's own Prometheus metrics, on top of the shared server
//! metrics (`http_server_*`, recorded by the server observer).
//!
//! - `http_client_request_duration_seconds{upstream, http_request_method, http_response_status_code, error_type}`:
//!   one observation per upstream call; failed calls have an empty status
//!   and an `error_type` (`connect`, `reset`, `timeout`, or `denied`: the
//!   host name resolves only into `admin.denied_networks`).
//! - `gateway_backends{state}`: registered backends by state.
//! - `gateway_upstream_active_requests{upstream}`: requests in flight per backend.
//! - `gateway_proxy_errors_total{error_type}`: requests the gateway answered
//!   itself because no upstream answer was possible (including `no_backends`).
//! - `gateway_backend_state{upstream, state}`: 1 for each backend's current
//!   state, 0 for the others.
//! - `gateway_health_checks_total{upstream, result}`: active probes.
//! - `gateway_outlier_ejections_total{upstream}`: passive ejections.
//! - `gateway_retries_total{reason}` and `gateway_retry_budget_exhausted_total`.
//! - `gateway_limit_rejections_total{limit}`: 503s from the in-flight caps.
//!
//! Gauges that mirror the registry are refreshed when `/metrics` is
//! scraped, so they can never drift from what `/api/servers` shows.
//!
//! Every series naming a backend (`upstream`) goes when the last backend
//! of that name does: each registration holds a [`SeriesLease`] on its
//! name, dropped with the backend once it is removed and its last request
//! in flight has ended. A backend replaced under the same name keeps them.
//!
//! Depends on `backends` (snapshots, states) and `outcome`; the registry
//! learns nothing of it (it hands out leases through `on_added`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::backends::{Snapshot, State};
use crate::outcome::Outcome;

/// Handles to the gateway-specific metrics.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    client_duration: HistogramVec,
    backends: IntGaugeVec,
    upstream_active: IntGaugeVec,
    proxy_errors: IntCounterVec,
    backend_state: IntGaugeVec,
    health_checks: IntCounterVec,
    ejections: IntCounterVec,
    retries: IntCounterVec,
    budget_exhausted: IntCounter,
    limit_rejections: IntCounterVec,
    /// Live backends per name: the series of a name go when it drops to 0.
    leases: Arc<Mutex<HashMap<String, usize>>>,
}

impl GatewayMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let client_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_client_request_duration_seconds",
                "Duration of HTTP requests from the gateway to its backends (to the response head).",
            )
            .buckets(serving::metrics::DURATION_BUCKETS.to_vec()),
            &["upstream", "http_request_method", "http_response_status_code", "error_type"],
        )?;
        let backends = IntGaugeVec::new(
            Opts::new("gateway_backends", "Registered backends by state."),
            &["state"],
        )?;
        let upstream_active = IntGaugeVec::new(
            Opts::new(
                "gateway_upstream_active_requests",
                "Requests in flight to each backend.",
            ),
            &["upstream"],
        )?;
        let proxy_errors = IntCounterVec::new(
            Opts::new(
                "gateway_proxy_errors_total",
                "Requests answered by the gateway itself because no upstream answer was possible.",
            ),
            &["error_type"],
        )?;
        let backend_state = IntGaugeVec::new(
            Opts::new(
                "gateway_backend_state",
                "1 for each backend's current state, 0 for the others.",
            ),
            &["upstream", "state"],
        )?;
        let health_checks = IntCounterVec::new(
            Opts::new(
                "gateway_health_checks_total",
                "Active health probes by result.",
            ),
            &["upstream", "result"],
        )?;
        let ejections = IntCounterVec::new(
            Opts::new(
                "gateway_outlier_ejections_total",
                "Backends ejected by outlier detection.",
            ),
            &["upstream"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "gateway_retries_total",
                "Upstream attempts retried, by the failure that caused them.",
            ),
            &["reason"],
        )?;
        let budget_exhausted = IntCounter::with_opts(Opts::new(
            "gateway_retry_budget_exhausted_total",
            "Retries not made because the retry budget was used up.",
        ))?;
        let limit_rejections = IntCounterVec::new(
            Opts::new(
                "gateway_limit_rejections_total",
                "Requests refused with 503 because an in-flight limit was reached.",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(client_duration.clone()))?;
        registry.register(Box::new(backends.clone()))?;
        registry.register(Box::new(upstream_active.clone()))?;
        registry.register(Box::new(proxy_errors.clone()))?;
        registry.register(Box::new(backend_state.clone()))?;
        registry.register(Box::new(health_checks.clone()))?;
        registry.register(Box::new(ejections.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(budget_exhausted.clone()))?;
        registry.register(Box::new(limit_rejections.clone()))?;
        // Present from the start so dashboards and alerts see a zero, not nothing.
        for state in State::ALL {
            backends.with_label_values(&[state.as_str()]).set(0);
        }
        for kind in [
            "no_backends",
            "no_healthy_backends",
            "unreachable",
            "timeout",
            "overloaded",
        ] {
            proxy_errors.with_label_values(&[kind]);
        }
        for reason in [
            "connect",
            "denied",
            "reset",
            "timeout",
            "unhealthy",
            "status",
        ] {
            retries.with_label_values(&[reason]);
        }
        for limit in ["gateway", "backend"] {
            limit_rejections.with_label_values(&[limit]);
        }
        Ok(Self {
            client_duration,
            backends,
            upstream_active,
            proxy_errors,
            backend_state,
            health_checks,
            ejections,
            retries,
            budget_exhausted,
            limit_rejections,
            leases: Arc::default(),
        })
    }

    /// Records one upstream call: the status of the head it got (empty
    /// when none) and how it failed (empty when it did not).
    pub fn upstream_call(
        &self,
        upstream: &str,
        method: &http::Method,
        outcome: &Outcome,
        elapsed: Duration,
    ) {
        let status = outcome
            .head_status()
            .map_or("", |s| serving::metrics::status_label(s.as_u16()));
        self.client_duration
            .with_label_values(&[
                upstream,
                serving::metrics::method_label(method),
                status,
                outcome.error_type(),
            ])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request the gateway had to answer itself.
    pub fn proxy_error(&self, error_type: &str) {
        self.proxy_errors.with_label_values(&[error_type]).inc();
    }

    /// Creates a new backend's series at zero, so that its first ejection
    /// or failure shows as an increase rather than as a series appearing.
    /// They stay until the returned lease, and every other lease on the
    /// name, is dropped.
    pub fn backend_added(&self, upstream: &str) -> SeriesLease {
        // Held while the series are created, so a lease on the same name
        // being dropped concurrently cannot delete them right after.
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        *leases.entry(upstream.to_owned()).or_default() += 1;
        self.ejections.with_label_values(&[upstream]);
        for result in ["success", "failure"] {
            self.health_checks.with_label_values(&[upstream, result]);
        }
        for error_type in ["connect", "reset", "timeout"] {
            self.client_duration
                .with_label_values(&[upstream, "GET", "", error_type]);
        }
        SeriesLease {
            metrics: self.clone(),
            upstream: upstream.to_owned(),
        }
    }

    /// Deletes every series naming `upstream` once no lease on it is left.
    /// Nothing can record for that name afterwards: recording needs a
    /// backend, and every backend holds a lease.
    fn release(&self, upstream: &str) {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(count) = leases.get_mut(upstream) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        leases.remove(upstream);
        remove_upstream(&self.client_duration, upstream);
        remove_upstream(&self.health_checks, upstream);
        remove_upstream(&self.ejections, upstream);
        remove_upstream(&self.upstream_active, upstream);
        remove_upstream(&self.backend_state, upstream);
    }

    /// Counts one active probe.
    pub fn health_check(&self, upstream: &str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.health_checks
            .with_label_values(&[upstream, result])
            .inc();
    }

    /// Counts one ejection.
    pub fn ejection(&self, upstream: &str) {
        self.ejections.with_label_values(&[upstream]).inc();
    }

    /// Counts one retry.
    pub fn retry(&self, reason: &str) {
        self.retries.with_label_values(&[reason]).inc();
    }

    /// Counts a retry the budget refused.
    pub fn retry_budget_exhausted(&self) {
        self.budget_exhausted.inc();
    }

    /// Counts a request refused by an in-flight limit (`gateway` or `backend`).
    pub fn limit_rejection(&self, limit: &str) {
        self.limit_rejections.with_label_values(&[limit]).inc();
    }

    /// Brings the registry mirrors up to date; called on every scrape.
    pub fn refresh(&self, snapshot: &Snapshot) {
        let mut by_state = [0i64; 4];
        self.upstream_active.reset();
        self.backend_state.reset();
        for b in &snapshot.backends {
            let state = b.health.state();
            for s in State::ALL {
                self.backend_state
                    .with_label_values(&[b.name.as_str(), s.as_str()])
                    .set(i64::from(s == state));
            }
            if let Some(i) = State::ALL.iter().position(|s| *s == state) {
                by_state[i] += 1;
            }
            // Touching the per-backend counters creates them at zero, so
            // dashboards and alerts see every backend before its first event.
            self.ejections.with_label_values(&[b.name.as_str()]);
            for result in ["success", "failure"] {
                self.health_checks
                    .with_label_values(&[b.name.as_str(), result]);
            }
            let active = b.active.load(std::sync::atomic::Ordering::Relaxed);
            self.upstream_active
                .with_label_values(&[b.name.as_str()])
                .set(i64::try_from(active).unwrap_or(i64::MAX));
        }
        for (state, n) in State::ALL.iter().zip(by_state) {
            self.backends.with_label_values(&[state.as_str()]).set(n);
        }
    }
}

/// Keeps the series of one backend name; see [`GatewayMetrics::backend_added`].
#[derive(Debug)]
pub struct SeriesLease {
    metrics: GatewayMetrics,
    upstream: String,
}

impl Drop for SeriesLease {
    fn drop(&mut self) {
        self.metrics.release(&self.upstream);
    }
}

/// Deletes the series of `vec` whose `upstream` label is `upstream`.
/// prometheus deletes a series only by its full label set, so the sets are
/// learnt by collecting the vec (a copy of every series): fine when a
/// backend goes, too slow for the request path.
fn remove_upstream<T: MetricVecBuilder>(vec: &MetricVec<T>, upstream: &str) {
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels.get("upstream") == Some(&upstream) {
                // Cannot fail: the label set is one the vec just listed.
                let _ = vec.remove(&labels);
            }
        }
    }
}
