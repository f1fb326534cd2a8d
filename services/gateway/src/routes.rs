//! All of the gateway's routes in one filter, and the one `recover` that
//! turns every rejection into its JSON error.
//!
//! The gateway's own routes (`/api/servers*`, `/api/stats/*`, `/metrics`,
//! `/healthz`, `/readyz`) go through warp; everything else is claimed by
//! [`Proxied`] before warp sees it and goes straight to `proxy::handle`. A
//! request for one of our own paths with the wrong method gets a 405 rather
//! than being proxied, with the route's methods in `Allow` ([`allowed`]);
//! every GET route answers HEAD too.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::StatusCode;
use hyper::body::Incoming;
use observability::stats::Window;
use prometheus::Registry as MetricsRegistry;
use serde::Serialize;
use serving::methods::{get_or_head, with_allow};
use serving::metrics::RouteInfo;
use serving::server::Direct;
use serving::shutdown::Readiness;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::admin::{self, AdminState, Changes};
use crate::errors::AdminError;
use crate::proxy::{self, ProxyState};
use crate::upstream::Upstream;

/// Everything the routes share.
#[derive(Debug)]
pub struct AppState {
    /// The proxied path's state (registry, balancer, client, stats).
    pub proxy: Arc<ProxyState>,
    /// The admin API's state.
    pub admin: Arc<AdminState>,
    /// What `/metrics` exports.
    pub metrics_registry: MetricsRegistry,
    /// What `/readyz` reports.
    pub readiness: Readiness,
}

/// Route templates for the `http_route` label; proxied requests are `/*`.
pub fn classify(path: &str) -> RouteInfo {
    let template = match path {
        "/api/servers" => "/api/servers",
        p if p.starts_with("/api/servers/") => "/api/servers/{name}",
        p if p.starts_with("/api/stats/") || p == "/api/stats" => "/api/stats/{window}",
        "/metrics" => "/metrics",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        _ => "/*",
    };
    // The gateway's stats windows are recorded by the proxy itself, which
    // knows the backend; the observer only does server metrics.
    RouteInfo {
        template,
        counted: false,
    }
}

/// The methods each of the gateway's own routes answers, for the `Allow`
/// header of a 405. The same on the admin listener, which refuses changes
/// with its own error rather than a 405.
pub fn allowed(path: &str) -> Option<&'static str> {
    match classify(path).template {
        "/api/servers" => Some("GET, HEAD, POST"),
        "/api/servers/{name}" => Some("GET, HEAD, PUT, PATCH, DELETE"),
        "/api/stats/{window}" | "/metrics" | "/healthz" | "/readyz" => Some("GET, HEAD"),
        _ => None,
    }
}

fn is_own_path(path: &str) -> bool {
    classify(path).template != "/*"
}

/// The proxied path of the public port: every request outside the
/// gateway's own paths, handed to `proxy::handle` as hyper parsed it.
#[derive(Debug, Clone)]
pub struct Proxied {
    /// Registry, balancer, stats: shared by every worker.
    pub state: Arc<ProxyState>,
    /// This worker's upstream connections.
    pub upstream: Arc<Upstream>,
}

impl Direct for Proxied {
    type Future = Pin<Box<dyn Future<Output = Response> + Send>>;

    fn claim(
        &self,
        request: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Self::Future, http::Request<Incoming>> {
        if is_own_path(request.uri().path()) {
            return Err(request);
        }
        Ok(Box::pin(proxy::handle(
            request,
            peer,
            self.state.clone(),
            self.upstream.clone(),
        )))
    }
}

/// The gateway's own routes on the public port (the proxied path is
/// [`Proxied`]). `changes` says whether the registry may be changed here
/// (not when a separate admin listener exists).
pub fn routes(
    state: Arc<AppState>,
    changes: Changes,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let routes = admin::routes(state.admin.clone(), changes)
        .or(stats(state.clone()))
        .unify()
        .or(metrics(state.clone()))
        .unify()
        .or(health(state.clone()))
        .unify()
        .recover(recover)
        .unify();
    with_allow(routes, allowed)
}

/// The separate admin listener's routes: the registration API, plus health
/// and metrics so it can be probed and scraped on its own.
pub fn admin_routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let routes = admin::routes(state.admin.clone(), Changes::Allowed)
        .or(health(state.clone()))
        .unify()
        .or(metrics(state))
        .unify()
        .recover(recover)
        .unify();
    with_allow(routes, allowed)
}

fn with<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

fn stats(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "stats" / String)
        .and(get_or_head())
        .and(with(state))
        .map(|window: String, state: Arc<AppState>| {
            if !state.proxy.record_stats {
                return switched_off("stats");
            }
            match Window::parse(&window) {
                Some(w) => serving::errors::json_response(StatusCode::OK, &stats_report(&state, w)),
                None => serving::errors::json_error(
                    StatusCode::NOT_FOUND,
                    "unknown_window",
                    &format!("unknown stats window {window:?}: use 1m, 5m or 1h"),
                ),
            }
        })
}

/// The answer of an endpoint whose feature (`stats`, `metrics`) is off.
fn switched_off(feature: &str) -> Response {
    serving::errors::json_error(
        StatusCode::NOT_FOUND,
        &format!("{feature}_disabled"),
        &format!("{feature} are switched off in this gateway ({feature}.enabled = false)"),
    )
}

/// `/api/stats/{window}`: gateway totals plus the same figures per backend.
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

fn stats_report(state: &AppState, window: Window) -> StatsReport {
    let servers = state
        .proxy
        .registry
        .snapshot()
        .backends
        .iter()
        .map(|b| {
            let view = b.view();
            (
                b.name.clone(),
                ServerStats {
                    summary: b.stats.summary(window),
                    state: view.state.as_str(),
                    url: view.url,
                },
            )
        })
        .collect();
    StatsReport {
        total: state.proxy.stats.summary(window),
        servers,
    }
}

fn metrics(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(get_or_head())
        .and(with(state))
        .map(|state: Arc<AppState>| {
            if !state.proxy.record_metrics {
                return switched_off("metrics");
            }
            state
                .proxy
                .metrics
                .refresh(&state.proxy.registry.snapshot());
            let mut response =
                Response::new(serving::metrics::render(&state.metrics_registry).into());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(serving::metrics::TEXT_CONTENT_TYPE),
            );
            response
        })
}

fn health(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let healthz = warp::path!("healthz").and(get_or_head()).map(|| {
        serving::errors::json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
    });
    let readyz = warp::path!("readyz")
        .and(get_or_head())
        .and(with(state))
        .map(|state: Arc<AppState>| {
            if state.readiness.is_ready() {
                serving::errors::json_response(
                    StatusCode::OK,
                    &serde_json::json!({"status": "ready"}),
                )
            } else {
                serving::errors::json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "draining"}),
                )
            }
        });
    healthz.or(readyz).unify()
}

/// Maps every rejection to its status and JSON body.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    if let Some(e) = rejection.find::<AdminError>() {
        return Ok(e.into_response());
    }
    Ok(serving::errors::builtin_rejection(&rejection))
}
