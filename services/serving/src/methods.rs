//! HEAD wherever GET is answered, and the `Allow` header on every 405.
//!
//! HTTP requires both of a general-purpose server (RFC 9110 §9.1 and
//! §15.5.6), and clients rely on them: `curl -I`, link checkers and some
//! load balancers' health checks send HEAD, and a 405 without `Allow`
//! leaves the caller guessing. warp's method rejection does not know which
//! methods the path would have taken, so each service keeps a table from
//! its route templates to their methods ([`Allowed`]) and [`add_allow`]
//! sets the header on the way out.

use http::header::ALLOW;
use http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// The methods a service's route answers, by request path; `None` for paths
/// that are not its routes.
pub type Allowed = fn(&str) -> Option<&'static str>;

/// Matches GET and HEAD. hyper leaves the body out of answers to HEAD, so
/// one handler serves both with the same headers.
pub fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// Adds `Allow` to a 405 answer for `path`, when the service knows the path
/// and the answer does not carry one already.
pub fn add_allow(mut response: Response, path: &str, allowed: Allowed) -> Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(ALLOW)
    {
        if let Some(methods) = allowed(path) {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(methods));
        }
    }
    response
}

/// `routes` with [`add_allow`] applied to every answer.
pub fn with_allow<F>(
    routes: F,
    allowed: Allowed,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
where
    F: Filter<Extract = (Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    warp::path::full()
        .and(routes)
        .map(move |path: warp::path::FullPath, response| {
            add_allow(response, path.as_str(), allowed)
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table(path: &str) -> Option<&'static str> {
        (path == "/known").then_some("GET, HEAD")
    }

    fn answer(status: StatusCode) -> Response {
        let mut response = Response::new(Vec::new().into());
        *response.status_mut() = status;
        response
    }

    #[test]
    fn only_405_answers_for_known_paths_get_allow() {
        let r = add_allow(answer(StatusCode::METHOD_NOT_ALLOWED), "/known", table);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        let r = add_allow(answer(StatusCode::METHOD_NOT_ALLOWED), "/other", table);
        assert!(!r.headers().contains_key(ALLOW));
        let r = add_allow(answer(StatusCode::OK), "/known", table);
        assert!(!r.headers().contains_key(ALLOW));
    }

    #[test]
    fn an_allow_already_set_is_kept() {
        let mut response = answer(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        let r = add_allow(response, "/known", table);
        assert_eq!(r.headers()[ALLOW], "POST");
    }
}
