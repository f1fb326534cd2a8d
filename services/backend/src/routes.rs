//! The backend's HTTP routes, each a small filter, and their handlers.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/data` | JSON naming this instance; fault injection applies |
//! | `ANY /api/echo[/...]` | the request as received (method, path, query, headers, body), for checking what a proxy forwards |
//! | `GET /healthz` | alive |
//! | `GET /readyz` | ready for traffic (503 once shutdown starts) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /api/stats/{1m,5m,1h}` | windowed stats of this instance's own traffic |
//!
//! Every GET route answers HEAD too; a 405 names the methods in `Allow`
//! ([`allowed`]).

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use observability::stats::{Recorder, Window};
use prometheus::Registry;
use serde::Serialize;
use serving::errors::{json_error, json_response};
use serving::methods::get_or_head;
use serving::metrics::RouteInfo;
use serving::shutdown::Readiness;
use warp::reply::Response;
use warp::Filter;

use crate::config::FaultSettings;
use crate::faults::{self, Overrides};

/// Everything the handlers share.
pub struct AppState {
    /// Who we are, as reported in every `/api/data` answer.
    pub instance: Instance,
    /// Configured faults (per-request overrides come from the query).
    pub faults: FaultSettings,
    /// This instance's own traffic, for `/api/stats`.
    pub stats: Arc<Recorder>,
    /// Everything `/metrics` exports.
    pub registry: Registry,
    /// What `/readyz` reports.
    pub readiness: Readiness,
}

/// The instance identity in `/api/data` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    /// Configured name, or `backend-<port>`.
    pub name: String,
    /// The port actually bound (differs from the setting when it was 0).
    pub port: u16,
    /// The machine's (or pod's) host name.
    pub hostname: String,
}

/// How the observer sees each path: every route but the operational ones
/// counts in the stats windows.
pub fn classify(path: &str) -> RouteInfo {
    let (template, counted) = match path {
        "/api/data" => ("/api/data", true),
        p if p == "/api/echo" || p.starts_with("/api/echo/") => ("/api/echo", true),
        "/healthz" => ("/healthz", false),
        "/readyz" => ("/readyz", false),
        "/metrics" => ("/metrics", false),
        p if p.starts_with("/api/stats/") => ("/api/stats/{window}", false),
        _ => ("/*", true),
    };
    RouteInfo { template, counted }
}

/// The methods each route answers, for the `Allow` header of a 405.
pub fn allowed(path: &str) -> Option<&'static str> {
    match classify(path).template {
        "/api/data" | "/healthz" | "/readyz" | "/metrics" | "/api/stats/{window}" => {
            Some("GET, HEAD")
        }
        _ => None,
    }
}

/// All routes, with every rejection turned into a JSON error, and every
/// answer (errors included) marked `X-Served-By: <instance name>` so a client
/// behind a load balancer can tell who answered.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let served_by = HeaderValue::from_str(&state.instance.name).ok();
    let routes = data(state.clone())
        .or(echo(state.clone()))
        .unify()
        .or(healthz())
        .unify()
        .or(readyz(state.clone()))
        .unify()
        .or(metrics(state.clone()))
        .unify()
        .or(stats(state))
        .unify()
        .recover(recover)
        .unify();
    serving::methods::with_allow(routes, allowed).map(move |mut response: Response| {
        if let Some(name) = &served_by {
            response.headers_mut().insert("x-served-by", name.clone());
        }
        response
    })
}

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

fn data(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "data")
        .and(get_or_head())
        .and(raw_query())
        .and(warp::header::optional::<String>("x-request-id"))
        .and(with_state(state))
        .then(get_data)
}

fn echo(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path("api")
        .and(warp::path("echo"))
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(serving::body::limited(ECHO_MAX_BODY))
        .and(with_state(state))
        .map(echo_reply)
}

/// Largest body `/api/echo` reflects.
const ECHO_MAX_BODY: usize = 1024 * 1024;

fn echo_reply(
    method: http::Method,
    path: warp::path::FullPath,
    query: String,
    headers: http::HeaderMap,
    body: Result<bytes::Bytes, serving::body::BodyError>,
    state: Arc<AppState>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e @ serving::body::BodyError::TooLarge(_)) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_body",
                &e.to_string(),
            )
        }
        Err(e @ serving::body::BodyError::Read(_)) => {
            let mut refusal = json_error(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string());
            serving::errors::close_connection(&mut refusal);
            return refusal;
        }
    };
    let headers: std::collections::BTreeMap<String, Vec<String>> = headers
        .keys()
        .map(|name| {
            let values = headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (name.as_str().to_owned(), values)
        })
        .collect();
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "instance": state.instance,
            "method": method.as_str(),
            "path": path.as_str(),
            "query": query,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
            "body_bytes": body.len(),
        }),
    )
}

fn healthz() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(get_or_head())
        .map(|| json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})))
}

fn readyz(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("readyz")
        .and(get_or_head())
        .and(with_state(state))
        .map(|state: Arc<AppState>| readiness_reply(&state.readiness))
}

fn metrics(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics")
        .and(get_or_head())
        .and(with_state(state))
        .map(|state: Arc<AppState>| metrics_reply(&state.registry))
}

fn stats(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "stats" / String)
        .and(get_or_head())
        .and(with_state(state))
        .map(
            |window: String, state: Arc<AppState>| match Window::parse(&window) {
                Some(w) => json_response(StatusCode::OK, &state.stats.summary(w)),
                None => unknown_window(&window),
            },
        )
}

/// `/readyz`: 200 while serving, 503 once draining. Shared with the gateway.
pub fn readiness_reply(readiness: &Readiness) -> Response {
    if readiness.is_ready() {
        json_response(StatusCode::OK, &serde_json::json!({"status": "ready"}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "draining"}),
        )
    }
}

/// `/metrics` in the Prometheus text format.
pub fn metrics_reply(registry: &Registry) -> Response {
    let mut response = Response::new(serving::metrics::render(registry).into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(serving::metrics::TEXT_CONTENT_TYPE),
    );
    response
}

/// The 404 for `/api/stats/{window}` with an unknown window.
pub fn unknown_window(window: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "unknown_window",
        &format!("unknown stats window {window:?}: use 1m, 5m or 1h"),
    )
}

#[derive(Serialize)]
struct DataReply<'a> {
    instance: &'a Instance,
    timestamp: String,
    request_id: Option<&'a str>,
    message: String,
    data: Payload,
}

#[derive(Serialize)]
struct Payload {
    items: [u32; 5],
    value: f64,
}

async fn get_data(query: String, request_id: Option<String>, state: Arc<AppState>) -> Response {
    let overrides = match parse_overrides(&query) {
        Ok(o) => o,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, "invalid_query", &message),
    };
    let plan = match faults::plan(&state.faults, &overrides) {
        Ok(plan) => plan,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "invalid_query", &e.0),
    };
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let status = plan
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = if status.is_client_error() || status.is_server_error() {
        json_error(
            status,
            "injected_fault",
            &format!("fault injected by {}", state.instance.name),
        )
    } else {
        let reply = DataReply {
            instance: &state.instance,
            timestamp: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            request_id: request_id.as_deref(),
            message: format!("Hello from {}", state.instance.name),
            data: Payload {
                items: [1, 2, 3, 4, 5],
                value: rand::random::<f64>(),
            },
        };
        json_response(status, &reply)
    };
    let headers = response.headers_mut();
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        headers.insert("x-request-id", id);
    }
    response
}

/// Reads `delay_ms` and `status` from the query; other parameters (cache
/// busters and the like) are ignored.
fn parse_overrides(query: &str) -> Result<Overrides, String> {
    let mut overrides = Overrides::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "delay_ms" => {
                overrides.delay_ms = Some(value.parse().map_err(|_| {
                    format!("delay_ms: {value:?} is not a whole number of milliseconds")
                })?)
            }
            "status" => {
                overrides.status = Some(
                    value
                        .parse()
                        .map_err(|_| format!("status: {value:?} is not an HTTP status code"))?,
                )
            }
            _ => {}
        }
    }
    Ok(overrides)
}

async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    Ok(serving::errors::builtin_rejection(&rejection))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_errors_name_the_parameter() {
        let o = parse_overrides("delay_ms=15&status=503&x=1").unwrap();
        assert_eq!((o.delay_ms, o.status), (Some(15), Some(503)));
        assert!(parse_overrides("delay_ms=abc")
            .unwrap_err()
            .starts_with("delay_ms"));
        assert!(parse_overrides("status=-1")
            .unwrap_err()
            .starts_with("status"));
        assert!(parse_overrides("").unwrap().delay_ms.is_none());
    }
}
