//! The backend's handlers: what each route in [`crate::routes::ROUTES`]
//! answers.
//!
//! Also what every handler gets and gives: the state they share
//! ([`AppState`]), the [`Call`] and the [`Answer`].
//!
//! Depends on the backend's `faults`, and on `serving` and `observability`;
//! [`crate::routes`] names these handlers in its table.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;

use futures_util::future::Either;
use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use observability::stats::{self, Recorder, Window};
use prometheus::Registry;
use serde::Serialize;
use serving::connection::Connection;
use serving::errors::{json_error, json_response};
use serving::methods::Param;
use serving::server::Response;
use serving::shutdown::Readiness;

use crate::faults::plan::{self, Overrides};
use crate::faults::{FaultState, Faults, Mode};

/// Everything the handlers share.
pub struct AppState {
    /// Who we are, as reported in every `/api/data` answer.
    pub instance: Instance,
    /// The faults in force (per-request overrides come from the query).
    pub faults: FaultState,
    /// The token `PUT` and `DELETE /api/faults` need, if any.
    pub admin_token: Option<String>,
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
    /// The connection it came on.
    pub connection: Connection,
    param: Param,
}

impl Call {
    /// A call of a route's handler; `param` is where the request's path
    /// matched the template's `{…}` segment.
    pub(crate) fn new(
        state: Arc<AppState>,
        request: Request<Incoming>,
        connection: Connection,
        param: Param,
    ) -> Self {
        Call {
            state,
            request,
            connection,
            param,
        }
    }

    /// The template's `{…}` segment, as sent.
    pub fn param(&self) -> &str {
        self.param.of(self.request.uri().path())
    }
}

/// An answer ready now.
pub(crate) fn now(response: Response) -> Answer {
    Either::Left(ready(response))
}

/// An answer that takes awaiting.
pub(crate) fn later(answer: impl Future<Output = Response> + Send + 'static) -> Answer {
    Either::Right(Box::pin(answer))
}

/// Largest body `/api/echo` reflects.
pub const ECHO_MAX_BODY: usize = 1024 * 1024;

/// `ANY /api/echo[/...]`: the request as received.
pub async fn echo(state: Arc<AppState>, request: Request<Incoming>) -> Response {
    let (parts, body) = request.into_parts();
    let body = match serving::server::read_body(&parts.headers, body, ECHO_MAX_BODY).await {
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

/// `/readyz`: 200 while serving, 503 once draining.
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

/// `/api/stats/{window}`, with the per-bucket series under `?series=true`:
/// a 404 for an unknown window, a 400 naming the parameter for a query it
/// does not take (as the gateway answers).
pub fn stats_reply(state: &AppState, window: &str, query: Option<&str>) -> Response {
    let Some(w) = Window::parse(window) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "unknown_window",
            &format!("unknown stats window {window:?}: use 1m, 5m or 1h"),
        );
    };
    match stats::wants_series(query) {
        Ok(series) => json_response(
            StatusCode::OK,
            &state.stats.summary_at(w, state.stats.now_secs(), series),
        ),
        Err(e) => json_error(StatusCode::BAD_REQUEST, "invalid_query", &e.to_string()),
    }
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

/// `GET /api/data`: answered under the faults in force, with the
/// request's own overrides.
pub fn data(c: Call) -> Answer {
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
    let faults = c.state.faults.faults();
    under(faults, c, overrides, request_id)
}

/// The answer to `/api/data` under `faults`: served, hung until the
/// faults change (then answered under the new ones), or reset. Under
/// `refuse` the listener is closed, but a request already on its way is
/// served.
fn under(faults: Faults, c: Call, overrides: Overrides, request_id: Option<String>) -> Answer {
    match faults.mode {
        Mode::Serve | Mode::Refuse => {}
        Mode::Reset => {
            c.connection.reset();
            return now(Response::default());
        }
        Mode::Hang => {
            return later(async move {
                let faults = c.state.faults.until_not_hanging().await;
                under(faults, c, overrides, request_id).await
            })
        }
    }
    let plan = match plan::plan(&faults, c.state.faults.max_delay(), &overrides) {
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
