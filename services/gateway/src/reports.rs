//! What the gateway reports about itself on its own routes: the stats
//! windows, Prometheus metrics, liveness and readiness.
//!
//! Depends on the proxied path's state (its registry, stats and metrics)
//! and on `serving` and `observability`; [`crate::routes`] names these
//! answers in its table.

use http::StatusCode;
use observability::stats::{self, Window};
use serde::Serialize;
use serving::server::Response;
use serving::shutdown::Readiness;

use prometheus::Registry as MetricsRegistry;

use crate::proxy::ProxyState;

/// `/api/stats/{window}`, with the per-bucket series under `?series=true`.
/// A feature switched off or an unknown window is a 404 whatever the
/// query; a query it does not take is a 400 naming the parameter.
pub fn stats(proxy: &ProxyState, window: &str, query: Option<&str>) -> Response {
    if !proxy.record_stats {
        return switched_off("stats");
    }
    let Some(w) = Window::parse(window) else {
        return serving::errors::json_error(
            StatusCode::NOT_FOUND,
            "unknown_window",
            &format!("unknown stats window {window:?}: use 1m, 5m or 1h"),
        );
    };
    match stats::wants_series(query) {
        Ok(series) => {
            serving::errors::json_response(StatusCode::OK, &stats_report(proxy, w, series))
        }
        Err(e) => {
            serving::errors::json_error(StatusCode::BAD_REQUEST, "invalid_query", &e.to_string())
        }
    }
}

/// The answer of an endpoint whose feature (`stats`, `metrics`) is off.
fn switched_off(feature: &str) -> Response {
    serving::errors::json_error(
        StatusCode::NOT_FOUND,
        &format!("{feature}_disabled"),
        &format!("{feature} are switched off in this gateway ({feature}.enabled = false)"),
    )
}

/// `/api/stats/{window}`: gateway totals plus the same figures per backend
/// (each with its own `series` when asked for).
#[derive(Serialize)]
struct StatsReport {
    #[serde(flatten)]
    total: observability::stats::Summary,
    servers: std::collections::BTreeMap<String, ServerStats>,
}

#[derive(Serialize)]
struct ServerStats {
    #[serde(flatten)]
    summary: observability::stats::Summary,
    state: &'static str,
    url: String,
}

fn stats_report(proxy: &ProxyState, window: Window, series: bool) -> StatsReport {
    // One reading of the clock for every recorder, so that each server's
    // buckets start when the gateway's do.
    let now = proxy.stats.now_secs();
    let servers = proxy
        .registry
        .snapshot()
        .backends
        .iter()
        .map(|b| {
            let view = b.view();
            (
                b.name.clone(),
                ServerStats {
                    summary: b.stats.summary_at(window, now, series),
                    state: view.state.as_str(),
                    url: view.url,
                },
            )
        })
        .collect();
    StatsReport {
        total: proxy.stats.summary_at(window, now, series),
        servers,
    }
}

/// `/metrics`, in the Prometheus text format.
pub fn metrics(proxy: &ProxyState, registry: &MetricsRegistry) -> Response {
    if !proxy.record_metrics {
        return switched_off("metrics");
    }
    proxy.metrics.refresh(&proxy.registry.snapshot());
    let mut response = Response::new(serving::metrics::render(registry).into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(serving::metrics::TEXT_CONTENT_TYPE),
    );
    response
}

/// `/healthz`: alive.
pub fn healthz() -> Response {
    serving::errors::json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `/readyz`: 200 while serving, 503 once draining.
pub fn readyz(readiness: &Readiness) -> Response {
    if readiness.is_ready() {
        serving::errors::json_response(StatusCode::OK, &serde_json::json!({"status": "ready"}))
    } else {
        serving::errors::json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "draining"}),
        )
    }
}
