//! The pieces of a route table: path templates, HEAD wherever GET is, and
//! the `Allow` header on every 405.
//!
//! Each service lists its routes once, in its own table (the columns differ:
//! which listener, whether a route counts in the stats windows), and routes,
//! answers 405s and labels metrics from that one list with these helpers.
//! HTTP requires HEAD and `Allow` of a general-purpose server (RFC 9110
//! §9.1 and §15.5.6), and clients rely on them: `curl -I`, link checkers
//! and some load balancers' health checks send HEAD, and a 405 without
//! `Allow` leaves the caller guessing.
//!
//! Depends on `http` and this crate's [`errors`](crate::errors) and
//! [`response`](crate::response) only.

use http::{HeaderValue, Method, StatusCode};

use crate::response::Response;

/// A route's path: literal segments, the last of which may be a parameter
/// written `{name}` (one non-empty segment). Checked when the table is
/// compiled: a `{` anywhere but as a whole last segment fails the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    text: &'static str,
    /// Length of the literal part: all of `text`, or what comes before the
    /// `/` in front of the parameter.
    literal: usize,
    param: bool,
}

impl Template {
    /// Reads `text`; a malformed template is a compile-time error where the
    /// table is a `const`.
    pub const fn new(text: &'static str) -> Template {
        let bytes = text.as_bytes();
        assert!(
            !bytes.is_empty() && bytes[0] == b'/',
            "a template starts with /"
        );
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'{' {
                assert!(bytes[i - 1] == b'/', "a parameter is a whole segment");
                let mut j = i + 1;
                while j < bytes.len() - 1 {
                    assert!(
                        bytes[j] != b'/' && bytes[j] != b'{' && bytes[j] != b'}',
                        "a parameter is the last segment, and the only one"
                    );
                    j += 1;
                }
                assert!(bytes[bytes.len() - 1] == b'}', "a parameter ends with }}");
                return Template {
                    text,
                    literal: i - 1,
                    param: true,
                };
            }
            i += 1;
        }
        Template {
            text,
            literal: text.len(),
            param: false,
        }
    }

    /// The template as written: the route's `http_route` label.
    pub fn as_str(&self) -> &'static str {
        self.text
    }

    fn literal(&self) -> &'static str {
        self.text.get(..self.literal).unwrap_or(self.text)
    }

    /// Where the parameter is in `path` when the template matches it. One
    /// trailing `/` is allowed, so that `/api/servers/` lists the servers
    /// as `/api/servers` does.
    pub fn matches(&self, path: &str) -> Option<Param> {
        let path = match path.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed,
            _ => path,
        };
        let rest = path.strip_prefix(self.literal())?;
        if !self.param {
            return rest.is_empty().then_some(Param::default());
        }
        let value = rest.strip_prefix('/')?;
        (!value.is_empty() && !value.contains('/')).then_some(Param {
            start: path.len() - value.len(),
            end: path.len(),
        })
    }

    /// Whether `path` belongs to this route even when it does not match it:
    /// the literal path itself, and for a template with a parameter anything
    /// below its literal part (`/api/stats`, `/api/servers/a/b`). A service
    /// that passes other paths on (the gateway) answers these itself, with
    /// a 404 when nothing matches.
    pub fn claims(&self, path: &str) -> bool {
        let literal = self.literal();
        if !self.param {
            return path == literal;
        }
        path.strip_prefix(literal)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Where a template's parameter was found in a path: kept as a range so a
/// handler can have it next to the request it came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Param {
    start: usize,
    end: usize,
}

impl Param {
    /// The parameter's text in `path` (the path it was found in), as sent:
    /// not percent-decoded. Empty for a template without one.
    pub fn of<'a>(&self, path: &'a str) -> &'a str {
        path.get(self.start..self.end).unwrap_or("")
    }
}

/// Whether a route listed under `route` answers `request`: the method
/// itself, and HEAD where GET is (hyper leaves the body out of answers to
/// HEAD, so one handler serves both with the same headers).
pub fn answers(route: &Method, request: &Method) -> bool {
    route == request || (*route == Method::GET && *request == Method::HEAD)
}

/// The 405 for a route answering `methods` (in table order), with `Allow`
/// naming them and HEAD after GET.
pub fn method_not_allowed<'a>(methods: impl IntoIterator<Item = &'a Method>) -> Response {
    let mut allow = String::new();
    for method in methods {
        for name in [method.as_str()]
            .into_iter()
            .chain((*method == Method::GET).then_some("HEAD"))
        {
            if !allow.is_empty() {
                allow.push_str(", ");
            }
            allow.push_str(name);
        }
    }
    let mut response = crate::errors::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    );
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(http::header::ALLOW, value);
    }
    response
}

/// The 404 for a path no route answers.
pub fn not_found() -> Response {
    crate::errors::json_error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SERVERS: Template = Template::new("/api/servers");
    const SERVER: Template = Template::new("/api/servers/{name}");

    fn param(template: Template, path: &str) -> Option<&str> {
        template.matches(path).map(|p| p.of(path))
    }

    #[test]
    fn literal_templates_match_their_path_and_one_trailing_slash() {
        assert_eq!(param(SERVERS, "/api/servers"), Some(""));
        assert_eq!(param(SERVERS, "/api/servers/"), Some(""));
        assert_eq!(param(SERVERS, "/api/servers//"), None);
        assert_eq!(param(SERVERS, "/api/serversx"), None);
        assert_eq!(param(SERVERS, "/api/servers/x"), None);
        assert_eq!(param(SERVERS, "/api"), None);
    }

    #[test]
    fn a_parameter_is_one_non_empty_segment_taken_as_sent() {
        assert_eq!(param(SERVER, "/api/servers/a"), Some("a"));
        assert_eq!(param(SERVER, "/api/servers/a/"), Some("a"));
        assert_eq!(param(SERVER, "/api/servers/a%2Fb"), Some("a%2Fb"));
        assert_eq!(param(SERVER, "/api/servers/a/b"), None);
        assert_eq!(param(SERVER, "/api/servers/"), None);
        assert_eq!(param(SERVER, "/api/servers//"), None);
        assert_eq!(param(SERVER, "/api/servers"), None);
        assert_eq!(param(SERVER, "/api/serversa"), None);
    }

    #[test]
    fn parameter_templates_claim_everything_below_their_literal_part() {
        for path in ["/api/servers", "/api/servers/", "/api/servers/a/b"] {
            assert!(SERVER.claims(path), "{path}");
        }
        for path in ["/api/serversx", "/api", "/api/servers2/a"] {
            assert!(!SERVER.claims(path), "{path}");
        }
        assert!(SERVERS.claims("/api/servers"));
        assert!(!SERVERS.claims("/api/servers/"));
        assert_eq!(SERVER.as_str(), "/api/servers/{name}");
    }

    #[test]
    fn get_answers_head_and_a_405_names_what_the_route_takes() {
        assert!(answers(&Method::GET, &Method::HEAD));
        assert!(answers(&Method::POST, &Method::POST));
        assert!(!answers(&Method::HEAD, &Method::GET));
        assert!(!answers(&Method::POST, &Method::HEAD));
        let r = method_not_allowed(&[Method::GET, Method::POST]);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[http::header::ALLOW], "GET, HEAD, POST");
        let r = method_not_allowed(&[Method::PUT, Method::DELETE]);
        assert_eq!(r.headers()[http::header::ALLOW], "PUT, DELETE");
        assert_eq!(not_found().status(), StatusCode::NOT_FOUND);
    }
}
