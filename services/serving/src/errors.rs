//! The JSON error body shared by both services:
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! `code` is a stable, machine-readable identifier (`not_found`,
//! `invalid_body`, `no_backends`, ...); `message` is for humans and names the
//! field or parameter at fault.

use http::StatusCode;
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
pub fn json_error(status: StatusCode, code: &str, message: &str) -> warp::reply::Response {
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
pub fn close_connection(response: &mut warp::reply::Response) {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
}

/// Serializes `value` as a JSON response with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> warp::reply::Response {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = warp::reply::Response::new(bytes.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Maps warp's built-in rejections (unknown path, wrong method, bad query,
/// oversized body, ...) to the shared JSON error shape. Each service's
/// `recover` handles its own rejections first and falls back to this.
pub fn builtin_rejection(rejection: &warp::Rejection) -> warp::reply::Response {
    if rejection.is_not_found() {
        return json_error(StatusCode::NOT_FOUND, "not_found", "no such route");
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        );
    }
    if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        return json_error(StatusCode::BAD_REQUEST, "invalid_query", &e.to_string());
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        );
    }
    if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body (Content-Type: application/json)",
        );
    }
    if rejection.find::<warp::reject::LengthRequired>().is_some() {
        return json_error(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required",
        );
    }
    if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        return json_error(StatusCode::BAD_REQUEST, "invalid_header", &e.to_string());
    }
    if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        return json_error(StatusCode::BAD_REQUEST, "missing_header", &e.to_string());
    }
    tracing::warn!(?rejection, "unhandled rejection");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}
