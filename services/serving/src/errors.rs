//! The JSON error body shared by both services:
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! `code` is a stable, machine-readable identifier (`not_found`,
//! `invalid_body`, `no_backends`, ...); `message` is for humans and names the
//! field or parameter at fault.
//!
//! Depends on `response` only.

use http::StatusCode;

use crate::response::Response;
use serde::Serialize;

/// The body of every error answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// Wrapper object, so clients can tell errors from data at a glance.
    pub error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// Stable identifier that clients may match on.
    pub code: &'a str,
    /// Human-readable explanation naming the offending input.
    pub message: &'a str,
}

/// Builds a JSON error response.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail { code, message },
    };
    json_response(status, &body)
}

/// Makes `response` the last on its connection: hyper closes the connection
/// once it is written (RFC 9112 §9.6). For refusals of a request whose body
/// was not, or could not be, read to its end: whatever follows on the
/// connection may be that body, so it must never be parsed as the next
/// request.
pub fn close_connection(response: &mut Response) {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
}

/// Serializes `value` as a JSON response with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(bytes.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
