//! What the gateway reports about itself on its own routes: the stats
//! windows, Prometheus metrics, liveness and readiness, and its version,
//! uptime and the settings that shape traffic (`/api/settings`).
//!
//! Depends on the proxied path's state (its registry, stats and metrics),
//! `config` (the settings shown) and `admin` (whether a listener takes
//! changes), and on `serving` and `observability`; [`crate::routes`] names
//! these answers in its table.

use http::StatusCode;
use observability::stats::{self, Window};
use serde::Serialize;
use serving::server::Response;
use serving::shutdown::Readiness;

use prometheus::Registry as MetricsRegistry;

use crate::admin::Changes;
use crate::config::Settings;
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

/// The gateway's version, start time and the settings `/api/settings`
/// shows, fixed at start-up.
#[derive(Debug)]
pub struct About {
    settings: serde_json::Value,
    started_at: std::time::SystemTime,
    started: std::time::Instant,
    token_required: bool,
}

impl About {
    /// What `/api/settings` will show of `settings`: how requests are
    /// balanced, retried, limited, checked and timed out, and how the admin
    /// API is reached. Left out: the registration policy's lists, the
    /// static servers, discovery, files and logging, none of which a
    /// dashboard needs; the token is never shown, only whether one is set.
    pub fn new(settings: &Settings) -> About {
        let settings_json = serde_json::json!({
            "workers": settings.workers,
            "balancer": settings.balancer,
            "retry": settings.retry,
            "limits": settings.limits,
            "outlier": settings.outlier,
            "health_check": settings.health_check,
            "upstream": settings.upstream,
            "admin": {
                "listen": settings.admin.listen,
                "max_body_bytes": settings.admin.max_body_bytes,
            },
            "stats": settings.stats,
            "metrics": settings.metrics,
        });
        About {
            settings: settings_json,
            started_at: std::time::SystemTime::now(),
            started: std::time::Instant::now(),
            token_required: !settings.admin.token.is_empty(),
        }
    }
}

/// `GET /api/settings`: version, uptime, the settings [`About`] keeps, and
/// what the admin API needs on the listener asked (`changes_here`: false on
/// the public port when `admin.listen` is set).
pub fn settings(about: &About, changes: Changes) -> Response {
    let mut admin = about.settings["admin"].clone();
    if let Some(map) = admin.as_object_mut() {
        map.insert("token_required".into(), about.token_required.into());
        map.insert("changes_here".into(), (changes == Changes::Allowed).into());
    }
    let mut body = about.settings.clone();
    if let Some(map) = body.as_object_mut() {
        map.insert("admin".into(), admin);
        map.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        map.insert(
            "started_at".into(),
            humantime::format_rfc3339_seconds(about.started_at)
                .to_string()
                .into(),
        );
        map.insert(
            "uptime_seconds".into(),
            about.started.elapsed().as_secs().into(),
        );
    }
    serving::errors::json_response(StatusCode::OK, &body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn settings_show_whether_a_token_is_set_but_never_the_token() {
        let mut settings = Settings::default();
        settings.admin.token = "s3cret-token".into();
        let about = About::new(&settings);
        for (changes, here) in [(Changes::Allowed, true), (Changes::Refused, false)] {
            let body = settings_body(&about, changes).await;
            assert!(!body.contains("s3cret"), "{body}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["admin"]["token_required"], true);
            assert_eq!(json["admin"]["changes_here"], here);
            assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
            assert!(json["balancer"]["strategy"].is_string());
            assert!(json["retry"]["max_attempts"].is_number());
            assert!(json["uptime_seconds"].is_number());
        }
    }

    async fn settings_body(about: &About, changes: Changes) -> String {
        let response = settings(about, changes);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
