//! The backend's HTTP routes, listed once in [`ROUTES`], and their handlers.
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
//! Routing, the `Allow` header of a 405 and the metric route label all come
//! from the table; every GET route answers HEAD too.
//!
//! Depends on the backend's `config` and `faults`, and on `common`.

use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use common::errors::{json_error, json_response};
use common::methods::{self, Param, Template};
use common::metrics::RouteInfo;
use common::server::Response;
use common::shutdown::Readiness;
use common::stats::{Recorder, Window};
use futures_util::future::Either;
use http::{HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use prometheus::Registry;
use serde::Serialize;

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

/// One route.
#[derive(Debug)]
pub struct Route {
    /// Its path, and its `http_route` label.
    pub template: Template,
    /// Whether its requests count in the stats windows (the operational
    /// routes do not).
    pub counted: bool,
    /// What answers it.
    pub methods: Methods,
}

/// The methods a route answers.
#[derive(Debug)]
pub enum Methods {
    /// These, each with its handler; GET answers HEAD.
    Only(&'static [(Method, Handler)]),
    /// Any method, on the template's path and every path below it.
    AnyBelow(Handler),
}

/// What answers a request: at once, or (a delay, a body to read) later.
pub type Handler = fn(Call) -> Answer;

/// A handler's answer.
pub type Answer = Either<Ready<Response>, Pin<Box<dyn Future<Output = Response> + Send>>>;

/// What a handler gets.
pub struct Call {
    /// The shared state.
    pub state: Arc<AppState>,
    /// The request as hyper parsed it.
    pub request: Request<Incoming>,
    param: Param,
}

impl Call {
    /// The template's `{…}` segment, as sent.
    pub fn param(&self) -> &str {
        self.param.of(self.request.uri().path())
    }
}

fn now(response: Response) -> Answer {
    Either::Left(ready(response))
}

fn later(answer: impl Future<Output = Response> + Send + 'static) -> Answer {
    Either::Right(Box::pin(answer))
}

/// The backend's routes.
pub const ROUTES: &[Route] = &[
    Route {
        template: Template::new("/api/data"),
        counted: true,
        methods: Methods::Only(&[(Method::GET, data)]),
    },
    Route {
        template: Template::new("/api/echo"),
        counted: true,
        methods: Methods::AnyBelow(|c| later(echo(c.state, c.request))),
    },
    Route {
        template: Template::new("/healthz"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |_| {
            now(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            ))
        })]),
    },
    Route {
        template: Template::new("/readyz"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |c| now(readiness_reply(&c.state.readiness)))]),
    },
    Route {
        template: Template::new("/metrics"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |c| now(metrics_reply(&c.state.registry)))]),
    },
    Route {
        template: Template::new("/api/stats/{window}"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |c| {
            now(match Window::parse(c.param()) {
                Some(w) => json_response(StatusCode::OK, &c.state.stats.summary(w)),
                None => unknown_window(c.param()),
            })
        })]),
    },
];

/// Where a path lands in the table: the route matching it, or the one it
/// is below (a 404 all the same: the label names the route).
fn find(path: &str) -> Option<(&'static Route, Option<Param>)> {
    ROUTES.iter().find_map(|r| {
        if let Some(param) = r.template.matches(path) {
            return Some((r, Some(param)));
        }
        let below = matches!(r.methods, Methods::AnyBelow(_))
            && path
                .strip_prefix(r.template.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if below {
            return Some((r, Some(Param::default())));
        }
        r.template.claims(path).then_some((r, None))
    })
}

/// How the observer sees each path: every route but the operational ones
/// counts in the stats windows, and so do unknown paths (`/*`).
pub fn classify(path: &str) -> RouteInfo {
    match find(path) {
        Some((route, _)) => RouteInfo {
            template: route.template.as_str(),
            counted: route.counted,
        },
        None => RouteInfo {
            template: "/*",
            counted: true,
        },
    }
}

/// Every request: routed from [`ROUTES`], and every answer (errors
/// included) marked `X-Served-By: <instance name>` so a client behind a
/// load balancer can tell who answered.
#[derive(Clone)]
pub struct Routes {
    state: Arc<AppState>,
    served_by: Option<HeaderValue>,
}

impl Routes {
    /// Routes for `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        let served_by = HeaderValue::from_str(&state.instance.name).ok();
        Routes { state, served_by }
    }

    fn dispatch(&self, request: Request<Incoming>) -> Answer {
        let Some((route, Some(param))) = find(request.uri().path()) else {
            return now(methods::not_found());
        };
        let handler = match &route.methods {
            Methods::AnyBelow(handler) => *handler,
            Methods::Only(listed) => {
                let method = request.method();
                match listed.iter().find(|(m, _)| methods::answers(m, method)) {
                    Some((_, handler)) => *handler,
                    None => return now(methods::method_not_allowed(listed.iter().map(|(m, _)| m))),
                }
            }
        };
        handler(Call {
            state: self.state.clone(),
            request,
            param,
        })
    }
}

impl common::server::Handler for Routes {
    fn call(
        &self,
        request: Request<Incoming>,
        _peer: SocketAddr,
    ) -> impl Future<Output = Response> + Send + use<> {
        let answer = self.dispatch(request);
        let served_by = self.served_by.clone();
        async move {
            let mut response = answer.await;
            if let Some(name) = served_by {
                response.headers_mut().insert("x-served-by", name);
            }
            response
        }
    }
}

/// Largest body `/api/echo` reflects.
const ECHO_MAX_BODY: usize = 1024 * 1024;

async fn echo(state: Arc<AppState>, request: Request<Incoming>) -> Response {
    let (parts, body) = request.into_parts();
    let body = match common::server::read_body(&parts.headers, body, ECHO_MAX_BODY).await {
        Ok(body) => body,
        Err(e @ common::body::BodyError::TooLarge(_)) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_body",
                &e.to_string(),
            )
        }
        Err(e @ common::body::BodyError::Read(_)) => {
            let mut refusal = json_error(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string());
            common::errors::close_connection(&mut refusal);
            return refusal;
        }
    };
    let headers = &parts.headers;
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
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query().unwrap_or(""),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
            "body_bytes": body.len(),
        }),
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
    let mut response = Response::new(common::metrics::render(registry).into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(common::metrics::TEXT_CONTENT_TYPE),
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

/// `GET /api/data`: answered at once unless a delay is injected.
fn data(c: Call) -> Answer {
    let request_id = match c.request.headers().get("x-request-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(id)) => Some(id.to_owned()),
        Some(Err(_)) => {
            return now(json_error(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                "Invalid request header \"x-request-id\"",
            ))
        }
    };
    let overrides = match parse_overrides(c.request.uri().query().unwrap_or("")) {
        Ok(o) => o,
        Err(message) => {
            return now(json_error(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                &message,
            ))
        }
    };
    let plan = match faults::plan(&c.state.faults, &overrides) {
        Ok(plan) => plan,
        Err(e) => return now(json_error(StatusCode::BAD_REQUEST, "invalid_query", &e.0)),
    };
    let status = plan
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    if plan.delay.is_zero() {
        return now(data_reply(&c.state, status, request_id));
    }
    later(async move {
        tokio::time::sleep(plan.delay).await;
        data_reply(&c.state, status, request_id)
    })
}

fn data_reply(state: &AppState, status: StatusCode, request_id: Option<String>) -> Response {
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
