//! The bearer token that both services' admin calls may require: 401
//! without one, 403 with a wrong one, compared in constant time so that
//! answer times reveal nothing about the token.
//!
//! Depends on this crate's `errors` only.

use http::StatusCode;

use crate::response::Response;

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` header (or one that is not text).
    #[error("this call needs an 'Authorization: Bearer <token>' header")]
    Missing,
    /// A token was sent but it is wrong.
    #[error("the admin token is not valid")]
    Wrong,
}

impl TokenError {
    /// Status and stable error code: `401 unauthorized`, `403 forbidden`.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            TokenError::Missing => (StatusCode::UNAUTHORIZED, "unauthorized"),
            TokenError::Wrong => (StatusCode::FORBIDDEN, "forbidden"),
        }
    }

    /// The JSON error answer; a 401 carries `WWW-Authenticate: Bearer`.
    pub fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = crate::errors::json_error(status, code, &self.to_string());
        if self == TokenError::Missing {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Whether `header` (the `Authorization` value) carries `expected`; with no
/// token expected, every call passes.
pub fn check_token(expected: Option<&str>, header: Option<&str>) -> Result<(), TokenError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let presented = header
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(TokenError::Missing)?;
    if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(TokenError::Wrong)
    }
}

/// [`check_token`] on a request's `Authorization` header, read raw: a value
/// that is not valid text counts as missing.
pub fn check_request<B>(
    expected: Option<&str>,
    request: &http::Request<B>,
) -> Result<(), TokenError> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    check_token(expected, header)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(check_token(None, None).is_ok());
        for (expected, header, outcome) in [
            ("t", None, Err(TokenError::Missing)),
            ("t", Some("Basic dA=="), Err(TokenError::Missing)),
            ("t", Some("Bearer x"), Err(TokenError::Wrong)),
            ("t", Some("Bearer tt"), Err(TokenError::Wrong)),
            ("tt", Some("Bearer t"), Err(TokenError::Wrong)),
            ("t", Some("Bearer t"), Ok(())),
            ("t", Some("bearer  t "), Ok(())),
        ] {
            assert_eq!(check_token(Some(expected), header), outcome, "{header:?}");
        }
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn a_missing_token_asks_for_a_bearer() {
        let answer = TokenError::Missing.into_response();
        assert_eq!(answer.status(), 401);
        assert_eq!(answer.headers()[http::header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(TokenError::Wrong.into_response().status(), 403);
    }
}
