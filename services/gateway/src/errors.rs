//! Every error the gateway answers with, and the one place that maps each
//! to its HTTP status and JSON `code`.
//!
//! Two concerns, two types: [`ProxyError`] for the proxied path (what went
//! wrong upstream) and [`AdminError`] for the registration API (what was
//! wrong with the request). Both render as
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! Depends on `backends`, `spec` and `outcome` (the errors it renders).

use http::StatusCode;
use serving::server::Response;

use crate::backends::RegistryError;
use crate::outcome::ClientFault;
use crate::spec::FieldError;

/// Failures on the proxied path.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The registry is empty.
    #[error("no backend servers are registered; register one with POST /api/servers")]
    NoBackends,
    /// Backends are registered but none is `up`.
    #[error("no healthy backend: all {0} registered servers are down, ejected or draining")]
    NoHealthyBackends(usize),
    /// An in-flight limit was reached.
    #[error("{}", overloaded_message(which, *limit))]
    Overloaded {
        /// `gateway` or `backend`.
        which: &'static str,
        /// The configured limit.
        limit: u64,
    },
    /// Could not connect, or the connection failed before a response.
    #[error("upstream {backend} is unreachable: {detail}")]
    Unreachable {
        /// Backend name.
        backend: String,
        /// The client error, for logs.
        detail: String,
    },
    /// The client's body broke, stalled or ran over its limit: the
    /// client's fault, never charged to a backend.
    #[error("{0}")]
    Client(#[from] ClientFault),
    /// The backend's path prefix plus the request target is not a valid
    /// request target.
    #[error("invalid request target: {0}")]
    BadTarget(String),
    /// A `CONNECT` request: a reverse proxy has no tunnel to open.
    #[error("CONNECT is not supported: the gateway is a reverse proxy, not a tunnel")]
    Connect,
    /// No response head within `upstream.request_timeout`.
    #[error("upstream {backend} did not answer within {timeout_ms} ms")]
    Timeout {
        /// Backend name.
        backend: String,
        /// The configured timeout.
        timeout_ms: u128,
    },
}

/// NGINX's status for a request whose client went away first.
fn client_closed_request() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

fn overloaded_message(which: &str, limit: u64) -> String {
    if which == "backend" {
        format!("every healthy backend already has {limit} requests in flight (limits.max_in_flight_per_backend); retry shortly")
    } else {
        format!("the gateway already has {limit} requests in flight (limits.max_in_flight); retry shortly")
    }
}

impl ProxyError {
    /// Status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::NoBackends => (StatusCode::SERVICE_UNAVAILABLE, "no_backends"),
            ProxyError::NoHealthyBackends(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "no_healthy_backends")
            }
            ProxyError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ProxyError::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            ProxyError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ProxyError::Client(ClientFault::Malformed(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_body")
            }
            ProxyError::Client(ClientFault::TooLarge(_)) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            ProxyError::Client(ClientFault::Stalled { .. }) => {
                (StatusCode::REQUEST_TIMEOUT, "body_timeout")
            }
            // Nobody reads this answer; the status is for the access log
            // and stats, as NGINX logs a client that went away.
            ProxyError::Client(ClientFault::Abandoned) => {
                (client_closed_request(), "client_closed")
            }
            ProxyError::BadTarget(_) => (StatusCode::BAD_REQUEST, "invalid_target"),
            ProxyError::Connect => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        }
    }

    /// Whether the answer must end the client's connection: the request's
    /// body was not read to a clean end, so what follows on the connection
    /// cannot be taken for the next request.
    pub fn closes_connection(&self) -> bool {
        matches!(self, ProxyError::Client(_))
    }

    /// The `error_type` label in client metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::NoBackends => "no_backends",
            ProxyError::NoHealthyBackends(_) => "no_healthy_backends",
            ProxyError::Overloaded { .. } => "overloaded",
            ProxyError::Unreachable { .. } => "unreachable",
            ProxyError::Timeout { .. } => "timeout",
            ProxyError::Client(_) => "client_body",
            ProxyError::BadTarget(_) => "bad_target",
            ProxyError::Connect => "connect",
        }
    }

    /// The JSON answer.
    pub fn into_response(&self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = serving::errors::json_error(status, code, &self.to_string());
        // Every 503 here is temporary: a backend may register, recover or
        // free a slot any moment.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        if self.closes_connection() {
            serving::errors::close_connection(&mut response);
        }
        // A 405 must say what the resource does take (RFC 9110 §15.5.6):
        // every method but CONNECT is passed on, extension methods too,
        // which no list can name; these are the standard ones.
        if matches!(self, ProxyError::Connect) {
            response.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static(
                    "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE",
                ),
            );
        }
        response
    }
}

/// Failures of the registration API; each handler in `admin` answers with
/// [`AdminError::into_response`].
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The body is not valid JSON of the expected shape.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// A field has a bad value.
    #[error("{0}")]
    InvalidField(FieldError),
    /// The body is larger than the admin limit.
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// No such server.
    #[error("no server named {0:?}")]
    NotFound(String),
    /// The name is taken by a different registration.
    #[error("{0}")]
    Conflict(String),
    /// The registry cannot take more servers.
    #[error("{0}")]
    Full(String),
    /// Changing the registry needs a token: none was sent (401), or a
    /// wrong one (403).
    #[error("{0}")]
    Token(#[from] serving::token::TokenError),
    /// The registration policy refuses the destination.
    #[error("{0}")]
    DestinationNotAllowed(FieldError),
    /// Registry changes are only accepted on the separate admin listener.
    #[error("the registry cannot be changed on this port; use the admin listener")]
    AdminElsewhere,
    /// The state file could not be written, so nothing changed.
    #[error("{0}")]
    NotSaved(String),
}

impl From<RegistryError> for AdminError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(f) => AdminError::InvalidField(f),
            RegistryError::Conflict { .. } => AdminError::Conflict(e.to_string()),
            RegistryError::Full(_) => AdminError::Full(e.to_string()),
            RegistryError::Persist(message) => AdminError::NotSaved(message),
        }
    }
}

impl AdminError {
    /// Status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            AdminError::InvalidField(_) => (StatusCode::BAD_REQUEST, "invalid_field"),
            AdminError::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AdminError::Full(_) => (StatusCode::CONFLICT, "registry_full"),
            AdminError::Token(e) => e.status_and_code(),
            AdminError::DestinationNotAllowed(_) => {
                (StatusCode::FORBIDDEN, "destination_not_allowed")
            }
            AdminError::AdminElsewhere => (StatusCode::FORBIDDEN, "admin_port_only"),
            AdminError::NotSaved(_) => (StatusCode::INTERNAL_SERVER_ERROR, "state_not_saved"),
        }
    }

    /// The JSON answer.
    pub fn into_response(&self) -> Response {
        if let AdminError::Token(e) = self {
            return e.into_response();
        }
        let (status, code) = self.status_and_code();
        serving::errors::json_error(status, code, &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreadable_request_body_ends_the_clients_connection() {
        let unreadable =
            ProxyError::Client(ClientFault::Malformed("broken chunk".into())).into_response();
        assert_eq!(unreadable.headers()[http::header::CONNECTION], "close");
        for other in [ProxyError::NoBackends, ProxyError::Connect] {
            let answer = other.into_response();
            assert!(answer.headers().get(http::header::CONNECTION).is_none());
        }
    }
}
