//! Prometheus metrics shared by both services.
//!
//! Names follow the OpenTelemetry HTTP semantic conventions rendered in
//! Prometheus style: base units (seconds), dots become underscores
//! (`http.server.request.duration` is `http_server_request_duration_seconds`,
//! `http.request.method` is the label `http_request_method`). Label values are
//! bounded: routes are templates, never raw paths, unknown methods fold
//! into `_OTHER`, and unregistered status codes into their class
//! ([`status_label`]).
//!
//! Depends on `server` (the observer hook it implements) and
//! `observability::stats`.

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntGauge, Opts, Registry, TextEncoder};

/// Histogram buckets, seconds: the ones the OpenTelemetry HTTP conventions
/// advise (5 ms to 10 s), below them 100 µs to 2.5 ms. A proxied request
/// takes 0.3-3 ms; with 5 ms as the first bucket every quantile of it was a
/// guess inside that bucket. A value is placed by a linear scan, and fast
/// requests (the common case) stop within the first few buckets.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A registry with the process collector (CPU, memory, file descriptors)
/// already in it.
pub fn new_registry() -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let process = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(e) = registry.register(Box::new(process)) {
            tracing::warn!(error = %e, "process metrics unavailable");
        }
    }
    registry
}

/// Renders every metric in `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        tracing::error!(error = %e, "could not encode metrics");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// The content type of [`render`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Server-side HTTP metrics: what every service measures about the requests
/// it answers.
#[derive(Clone, Debug)]
pub struct HttpServerMetrics {
    /// `http_server_request_duration_seconds{http_request_method, http_route, http_response_status_code}`.
    duration: HistogramVec,
    /// `http_server_active_requests`: requests received but not yet answered.
    active: IntGauge,
}

impl HttpServerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &[
                "http_request_method",
                "http_route",
                "http_response_status_code",
            ],
        )?;
        let active = IntGauge::with_opts(Opts::new(
            "http_server_active_requests",
            "Number of HTTP server requests in flight.",
        ))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(active.clone()))?;
        Ok(Self { duration, active })
    }

    /// Marks a request as started; the guard marks it finished when dropped,
    /// so cancelled requests are not left counted as active.
    pub fn start(&self) -> ActiveGuard {
        self.active.inc();
        ActiveGuard {
            gauge: self.active.clone(),
        }
    }

    /// Records a finished request.
    pub fn observe(&self, method: &http::Method, route: &str, status: u16, elapsed: Duration) {
        self.duration
            .with_label_values(&[method_label(method), route, status_label(status)])
            .observe(elapsed.as_secs_f64());
    }
}

/// Decrements the active-requests gauge when dropped.
#[derive(Debug)]
pub struct ActiveGuard {
    gauge: IntGauge,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The status code as a label value, without allocating per request.
///
/// A backend chooses the statuses the gateway sees, and a client can ask
/// the demo backend for any status (`?status=N`), so only the codes in the
/// IANA HTTP Status Code Registry (RFC 9110 and the RFCs it lists, its
/// reserved `306` and `418` included) are labels of their own; any other
/// code from 100 to 599 folds into its class (`1xx` ... `5xx`), anything
/// else into `other`. At most 69 values.
pub fn status_label(status: u16) -> &'static str {
    macro_rules! registered {
        ($($code:literal)*) => {
            match status {
                $($code => stringify!($code),)*
                100..=199 => "1xx",
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                500..=599 => "5xx",
                _ => "other",
            }
        };
    }
    registered! {
        100 101 102 103
        200 201 202 203 204 205 206 207 208 226
        300 301 302 303 304 305 306 307 308
        400 401 402 403 404 405 406 407 408 409 410 411 412 413 414 415 416 417 418
        421 422 423 424 425 426 428 429 431 451
        500 501 502 503 504 505 506 507 508 510 511
    }
}

/// The method label: known methods as themselves, anything else `_OTHER`
/// (so a client cannot create unbounded series by inventing methods).
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// How a service sees one of its paths.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    /// Route template used as the `http_route` label.
    pub template: &'static str,
    /// Whether the request counts in the service's `/api/stats` windows
    /// (operational routes such as `/metrics` do not).
    pub counted: bool,
}

/// The [`Observe`](crate::server::Observe) both services plug into their
/// server: server metrics for every request, stats for counted ones.
#[derive(Clone)]
pub struct ServerObserver {
    /// `None` when metrics are switched off: requests are not observed.
    metrics: Option<HttpServerMetrics>,
    classify: fn(&str) -> RouteInfo,
    stats: Option<std::sync::Arc<observability::stats::Recorder>>,
}

impl std::fmt::Debug for ServerObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerObserver").finish_non_exhaustive()
    }
}

impl ServerObserver {
    /// `classify` maps a raw path to its route; `stats`, when given,
    /// receives every counted request.
    pub fn new(
        metrics: Option<HttpServerMetrics>,
        classify: fn(&str) -> RouteInfo,
        stats: Option<std::sync::Arc<observability::stats::Recorder>>,
    ) -> Self {
        Self {
            metrics,
            classify,
            stats,
        }
    }
}

/// State carried through one request by [`ServerObserver`].
#[derive(Debug)]
pub struct ObserverToken {
    _active: Option<ActiveGuard>,
    started: std::time::Instant,
    method: http::Method,
    route: RouteInfo,
}

impl crate::server::Observe for ServerObserver {
    type Token = ObserverToken;

    fn start(&self, method: &http::Method, path: &str) -> ObserverToken {
        ObserverToken {
            _active: self.metrics.as_ref().map(HttpServerMetrics::start),
            started: std::time::Instant::now(),
            method: method.clone(),
            route: (self.classify)(path),
        }
    }

    fn route(&self, token: &ObserverToken) -> &'static str {
        token.route.template
    }

    fn finish(&self, token: ObserverToken, status: http::StatusCode) {
        let elapsed = token.started.elapsed();
        if let Some(metrics) = &self.metrics {
            metrics.observe(
                &token.method,
                token.route.template,
                status.as_u16(),
                elapsed,
            );
        }
        if let (true, Some(stats)) = (token.route.counted, &self.stats) {
            stats.record(observability::stats::Sample {
                status: Some(status.as_u16()),
                latency: elapsed,
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_registered_codes_classes_or_other() {
        for (status, label) in [
            (200, "200"),
            (103, "103"),
            (226, "226"),
            (418, "418"),
            (451, "451"),
            (511, "511"),
            (150, "1xx"),
            (299, "2xx"),
            (309, "3xx"),
            (420, "4xx"),
            (499, "4xx"),
            (509, "5xx"),
            (599, "5xx"),
            (0, "other"),
            (99, "other"),
            (600, "other"),
            (999, "other"),
            (u16::MAX, "other"),
        ] {
            assert_eq!(status_label(status), label, "{status}");
        }
        let labels: std::collections::BTreeSet<&str> = (0..=u16::MAX).map(status_label).collect();
        assert_eq!(labels.len(), 69, "{labels:?}");
        for label in labels {
            if let Ok(code) = label.parse::<u16>() {
                assert_eq!(status_label(code), label);
            }
        }
    }

    #[test]
    fn renders_server_metrics_with_bounded_labels() {
        let registry = new_registry();
        let m = HttpServerMetrics::register(&registry).unwrap();
        {
            let _guard = m.start();
            m.observe(
                &http::Method::from_bytes(b"BREW").unwrap(),
                "/api/data",
                418,
                Duration::from_millis(3),
            );
        }
        let text = render(&registry);
        assert!(text.contains(
            "http_server_request_duration_seconds_count{http_request_method=\"_OTHER\",http_response_status_code=\"418\",http_route=\"/api/data\"} 1"
        ), "{text}");
        assert!(text.contains("http_server_active_requests 0"));
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"));
    }
}
