//! The request target as sent upstream: the client's target in origin
//! form, behind the backend's path prefix.
//!
//! Depends on `errors`.

use http::uri::PathAndQuery;

use crate::errors::ProxyError;

/// The request target sent upstream, in origin form. Origin-form and
/// absolute-form targets have a path (an absolute form without one, such as
/// `http://host?x=1`, means `/`, RFC 9112 §3.2.2); so does `*` (OPTIONS *),
/// passed on as it is. Only CONNECT's authority form has none, and CONNECT
/// is refused.
pub(super) fn origin_target(uri: &http::Uri) -> PathAndQuery {
    match uri.path_and_query() {
        Some(target) if target.as_str().starts_with('?') => {
            // Display puts the missing `/` in front; `as_str` does not.
            PathAndQuery::try_from(target.to_string()).unwrap_or_else(|_| target.clone())
        }
        Some(target) => target.clone(),
        None => PathAndQuery::from_static("/"),
    }
}

/// The backend's path prefix (often empty) plus the request's path and
/// query, as the origin-form target sent upstream. Without a prefix (and
/// for `*`, which names the server rather than a path) the client's target
/// is reused as parsed: no copy, no second parse.
pub(super) fn upstream_target(
    prefix: &str,
    target: &PathAndQuery,
) -> Result<PathAndQuery, ProxyError> {
    if prefix.is_empty() || target.as_str() == "*" {
        return Ok(target.clone());
    }
    PathAndQuery::try_from(format!("{prefix}{target}"))
        .map_err(|e| ProxyError::BadTarget(e.to_string()))
}
