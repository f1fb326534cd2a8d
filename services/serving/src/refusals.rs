//! Requests the server refuses before any route sees them, because hyper
//! lets them through: HTTP/1.1 without exactly one `Host`, bodies coded
//! with anything but a single `chunked`, and heads larger than
//! `http.max_header_bytes` (hyper's own check is on its read buffer, which
//! may hold more than the limit before it looks).
//!
//! Depends on this crate's `errors` and `response`, and on `http1-client`
//! (the `Transfer-Encoding` rule the client keeps for answers).

use crate::response::Response;

/// The refusal for `request`, if it is refused: answered at once, on a
/// connection that then closes (what follows may be body, not a request).
pub(crate) fn problem<B>(request: &http::Request<B>, max_head_bytes: usize) -> Option<Response> {
    head_size_problem(request, max_head_bytes)
        .or_else(|| host_problem(request))
        .or_else(|| transfer_coding_problem(request))
}

/// A 431 for a request whose head, as sent (request line, header lines and
/// the blank line, at their parsed lengths), is over `max` bytes. hyper
/// refuses a head only once its read buffer is full, and it reads in
/// growing chunks, so heads up to about 1.75 times the limit got through.
fn head_size_problem<B>(request: &http::Request<B>, max: usize) -> Option<Response> {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    let mut size = request.method().as_str().len() + 1 + target + " HTTP/1.1\r\n\r\n".len();
    for (name, value) in request.headers() {
        size += name.as_str().len() + 2 + value.len() + 2;
        if size > max {
            return Some(crate::errors::json_error(
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                &format!("the request head is over the {max}-byte limit"),
            ));
        }
    }
    None
}

/// A 400 for a request whose Host header breaks HTTP/1.1's rule (RFC 9112
/// §3.2): there must be exactly one, unless the request target carries its
/// own authority (absolute form) or the request is HTTP/1.0. hyper parses
/// such requests without complaint; a proxy that passed them on would leave
/// the backend to guess which host was meant.
fn host_problem<B>(request: &http::Request<B>) -> Option<Response> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Some(crate::errors::json_error(
            http::StatusCode::BAD_REQUEST,
            "invalid_host",
            "Host: sent more than once; send exactly one",
        ));
    }
    if first.is_none()
        && request.version() == http::Version::HTTP_11
        && request.uri().authority().is_none()
    {
        return Some(crate::errors::json_error(
            http::StatusCode::BAD_REQUEST,
            "missing_host",
            "Host: missing; HTTP/1.1 requests must send one",
        ));
    }
    None
}

/// A refusal for a request body coded with anything but one `chunked`
/// ([`http1_client::single_chunked`]): 501 for a coding this server does not
/// implement (as NGINX answers), 400 for `chunked` twice. hyper decodes the
/// final `chunked` and hands on what is under it, so without this the
/// gateway would pass `gzip, chunked` bodies on as plain ones. hyper itself
/// refuses a final coding other than `chunked`, and any Transfer-Encoding
/// on HTTP/1.0.
fn transfer_coding_problem<B>(request: &http::Request<B>) -> Option<Response> {
    let values = request.headers().get_all(http::header::TRANSFER_ENCODING);
    let error = http1_client::single_chunked(values).err()?;
    let (status, code) = match error {
        http1_client::CodingError::Unsupported(_) => (
            http::StatusCode::NOT_IMPLEMENTED,
            "unsupported_transfer_coding",
        ),
        http1_client::CodingError::ChunkedTwice => {
            (http::StatusCode::BAD_REQUEST, "invalid_transfer_encoding")
        }
    };
    Some(crate::errors::json_error(status, code, &error.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{head_size_problem, host_problem, transfer_coding_problem};

    #[test]
    fn heads_over_the_limit_get_431_and_heads_at_it_pass() {
        // "GET /a HTTP/1.1\r\n" (17) + "x: " + value + "\r\n" + "\r\n":
        // a value of n bytes makes a head of 24 + n.
        let head = |n: usize| {
            http::Request::get("/a")
                .header("x", "v".repeat(n))
                .body(())
                .unwrap()
        };
        assert!(head_size_problem(&head(1000 - 24), 1000).is_none());
        let answer = head_size_problem(&head(1000 - 23), 1000).unwrap();
        assert_eq!(
            answer.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert!(head_size_problem(&head(100), 1000).is_none());
    }
    use http::{Request, Version};

    /// Whether a GET for `target` with these Host headers is refused.
    fn refused(target: &str, version: Version, hosts: &[&str]) -> bool {
        let mut request = Request::get(target).version(version);
        for host in hosts {
            request = request.header("host", *host);
        }
        let request = request.body(()).unwrap();
        match host_problem(&request) {
            Some(answer) => {
                assert_eq!(answer.status(), 400);
                true
            }
            None => false,
        }
    }

    #[test]
    fn http_1_1_needs_exactly_one_host_unless_the_target_names_it() {
        const HTTP_10: Version = Version::HTTP_10;
        const HTTP_11: Version = Version::HTTP_11;
        assert!(!refused("/x", HTTP_11, &["a"]));
        assert!(!refused("http://a/x", HTTP_11, &[]));
        assert!(!refused("/x", HTTP_10, &[]));
        assert!(!refused("/x", HTTP_10, &["a"]));

        assert!(refused("/x", HTTP_11, &[]));
        assert!(refused("/x", HTTP_11, &["a", "a"]));
        assert!(refused("http://a/x", HTTP_11, &["a", "b"]));
    }

    /// The status a POST with these Transfer-Encoding lines is refused
    /// with, if it is.
    fn coding_refusal(lines: &[&str]) -> Option<u16> {
        let mut request = Request::post("/x");
        for line in lines {
            request = request.header("transfer-encoding", *line);
        }
        let request = request.body(()).unwrap();
        transfer_coding_problem(&request).map(|answer| answer.status().as_u16())
    }

    #[test]
    fn only_a_single_chunked_coding_is_accepted() {
        assert_eq!(coding_refusal(&[]), None);
        assert_eq!(coding_refusal(&["chunked"]), None);
        assert_eq!(coding_refusal(&["Chunked"]), None);
        assert_eq!(coding_refusal(&[" chunked , "]), None);

        assert_eq!(coding_refusal(&["gzip, chunked"]), Some(501));
        assert_eq!(coding_refusal(&["gzip", "chunked"]), Some(501));
        assert_eq!(coding_refusal(&["identity, chunked"]), Some(501));
        assert_eq!(coding_refusal(&["chunked, chunked"]), Some(400));
        assert_eq!(coding_refusal(&["chunked", "chunked"]), Some(400));
    }
}
