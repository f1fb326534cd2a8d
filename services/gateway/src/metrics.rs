//! The gateway's own Prometheus metrics, on top of the shared server
//! metrics (`http_server_*`, recorded by the server observer).
//!
//! - `http_client_request_duration_seconds{upstream, http_request_method, http_response_status_code, error_type}`:
//!   one observation per upstream call; failed calls have an empty status
//!   and an `error_type` (`timeout`, `unreachable`).
//! - `gateway_backends{state}`: registered backends by state.
//! - `gateway_upstream_active_requests{upstream}`: requests in flight per backend.
//! - `gateway_proxy_errors_total{error_type}`: requests the gateway answered
//!   itself because no upstream answer was possible (including `no_backends`).
//!
//! Gauges that mirror the registry are refreshed when `/metrics` is
//! scraped, so they can never drift from what `/api/servers` shows.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::registry::Snapshot;

/// Handles to the gateway-specific metrics.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    client_duration: HistogramVec,
    backends: IntGaugeVec,
    upstream_active: IntGaugeVec,
    proxy_errors: IntCounterVec,
}

impl GatewayMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let client_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_client_request_duration_seconds",
                "Duration of HTTP requests from the gateway to its backends (to the response head).",
            )
            .buckets(common::metrics::DURATION_BUCKETS.to_vec()),
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
        registry.register(Box::new(client_duration.clone()))?;
        registry.register(Box::new(backends.clone()))?;
        registry.register(Box::new(upstream_active.clone()))?;
        registry.register(Box::new(proxy_errors.clone()))?;
        // Present from the start so dashboards and alerts see a zero, not nothing.
        backends.with_label_values(&["up"]).set(0);
        for kind in ["no_backends", "unreachable", "timeout"] {
            proxy_errors.with_label_values(&[kind]);
        }
        Ok(Self {
            client_duration,
            backends,
            upstream_active,
            proxy_errors,
        })
    }

    /// Records one upstream call.
    pub fn upstream_call(
        &self,
        upstream: &str,
        method: &http::Method,
        status: Option<u16>,
        error_type: &str,
        elapsed: Duration,
    ) {
        let status = status.map(|s| s.to_string()).unwrap_or_default();
        self.client_duration
            .with_label_values(&[
                upstream,
                common::metrics::method_label(method),
                &status,
                error_type,
            ])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request the gateway had to answer itself.
    pub fn proxy_error(&self, error_type: &str) {
        self.proxy_errors.with_label_values(&[error_type]).inc();
    }

    /// Brings the registry mirrors up to date; called on every scrape.
    pub fn refresh(&self, snapshot: &Snapshot) {
        self.backends
            .with_label_values(&["up"])
            .set(i64::try_from(snapshot.backends.len()).unwrap_or(i64::MAX));
        self.upstream_active.reset();
        for b in &snapshot.backends {
            let active = b.active.load(std::sync::atomic::Ordering::Relaxed);
            self.upstream_active
                .with_label_values(&[b.name.as_str()])
                .set(i64::try_from(active).unwrap_or(i64::MAX));
        }
    }
}
