//! The run-time fault API: `GET`, `PUT` and `DELETE /api/faults`.
//!
//! | call | answer |
//! |---|---|
//! | `GET /api/faults` | 200 `{"faults": {...}, "expires_in", "max_delay"}` (HEAD too); never needs the token |
//! | `PUT /api/faults` `{"latency"?, "jitter"?, "error_rate"?, "error_status"?, "mode"?, "duration"?}` | 200 with the GET body; keys left out are off |
//! | `DELETE /api/faults` | 200 with the GET body; the configured faults again |
//!
//! `PUT` and `DELETE` need `Authorization: Bearer <admin.token>` when one
//! is configured (401 without, 403 wrong). A refused change (400
//! `invalid_faults`, message `<key>: <what is wrong>`; 413 past 16 KiB)
//! changes nothing. `mode: refuse` also stops the server's listener for the
//! change's `duration`.
//!
//! Depends on `state` and `spec`, and on `serving` (bodies, the token, the
//! connection's listener).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serving::body::BodyError;
use serving::connection::Connection;
use serving::errors::{json_error, json_response};
use serving::server::Response;
use tokio::time::Instant;

use super::spec::{parse_change, Faults, Mode};
use super::state::FaultState;

/// Largest `PUT /api/faults` body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The answer to every call.
#[derive(Debug, Serialize)]
struct View {
    faults: Faults,
    /// Time left until the configured faults are back, if they will be.
    expires_in: Option<String>,
    /// The cap on every delay (`faults.max_delay`).
    max_delay: String,
}

/// `GET /api/faults`: the faults in force.
pub fn view(state: &FaultState) -> Response {
    let current = state.current();
    let expires_in = current.expires.map(|at| {
        // Whole milliseconds, rounded up: "0s" only once it has run out.
        let left = at.saturating_duration_since(Instant::now());
        let millis = left.as_nanos().div_ceil(1_000_000);
        let left = std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        humantime::format_duration(left).to_string()
    });
    json_response(
        StatusCode::OK,
        &View {
            faults: current.faults,
            expires_in,
            max_delay: humantime::format_duration(state.max_delay()).to_string(),
        },
    )
}

/// `PUT /api/faults`: replaces the faults in force with the body's.
pub async fn put(
    state: &FaultState,
    token: Option<&str>,
    request: Request<Incoming>,
    connection: &Connection,
) -> Response {
    if let Err(e) = serving::token::check_request(token, &request) {
        return e.into_response();
    }
    let (parts, body) = request.into_parts();
    let body = match serving::server::read_body(&parts.headers, body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(BodyError::TooLarge(limit)) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("body: larger than {limit} bytes"),
            )
        }
        Err(e @ BodyError::Read(_)) => {
            let mut refusal = json_error(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string());
            serving::errors::close_connection(&mut refusal);
            return refusal;
        }
    };
    let change = match parse_change(&body, state.max_delay()) {
        Ok(change) => change,
        Err(e) => {
            return json_error(StatusCode::BAD_REQUEST, "invalid_faults", &e.to_string());
        }
    };
    state.set(change);
    if let (Mode::Refuse, Some(duration)) = (change.faults.mode, change.duration) {
        connection.listening().stop_for(duration);
    }
    view(state)
}

/// `DELETE /api/faults`: the configured faults again.
pub fn delete<B>(state: &FaultState, token: Option<&str>, request: &Request<B>) -> Response {
    if let Err(e) = serving::token::check_request(token, request) {
        return e.into_response();
    }
    state.clear();
    view(state)
}
