//! What a registration says: a [`ServerSpec`] (name, URL, weight) from the
//! admin API, the `servers` setting or the state file, its validation, and
//! the parsed [`BaseUrl`] that requests are sent to. The URL is stored and
//! shown as parsed, and refused where the parser would read a different
//! host than a person does (see [`parse_base_url`]).
//!
//! At the bottom of the crate: depends on nothing else in it.

use std::sync::Arc;

use http::HeaderValue;
use serde::{Deserialize, Serialize};

/// A backend as written in config or in a registration request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// 1 to 63 of `A-Z a-z 0-9 - _ .`; the key of the registry.
    pub name: String,
    /// Absolute `http://` or `https://` URL with a host; an optional path
    /// is prefixed to every forwarded path.
    pub url: String,
    /// 1 to 1000; only `weighted_round_robin` and `hash` use it. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A validation failure, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `name`, `url` or `weight`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Largest accepted weight.
pub const MAX_WEIGHT: u32 = 1000;

impl ServerSpec {
    /// Checks every field; the first problem found is returned. The URL
    /// comes back parsed.
    pub fn validate(&self) -> Result<BaseUrl, FieldError> {
        validate_name(&self.name)?;
        let base = parse_base_url(&self.url)?;
        if let Some(w) = self.weight {
            if !(1..=MAX_WEIGHT).contains(&w) {
                return Err(FieldError {
                    field: "weight",
                    message: format!("{w} is not between 1 and {MAX_WEIGHT}"),
                });
            }
        }
        Ok(base)
    }
}

/// Checks a server name.
pub fn validate_name(name: &str) -> Result<(), FieldError> {
    let err = |message: String| {
        Err(FieldError {
            field: "name",
            message,
        })
    };
    if name.is_empty() || name.len() > 63 {
        return err(format!(
            "must be 1 to 63 characters long, got {}",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return err(format!(
            "{c:?} is not allowed: use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// A parsed, validated backend URL, ready to have paths appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// The URL as parsed (scheme and host in lower case, a default port
    /// and a lone `/` path dropped): what is stored, shown and saved, so
    /// what a reader sees is where requests go.
    pub url: String,
    /// `http://host:port` plus the optional path prefix, without a
    /// trailing slash; forwarded request paths are appended to it.
    pub prefix: String,
    /// `host:port`: the connect address, the upstream pool's key (shared by
    /// every pooled connection without copying) and what logs show.
    pub authority: Arc<str>,
    /// Whether the backend speaks `https` (reqwest with rustls), rather
    /// than plain HTTP (the gateway's own pooled HTTP/1.1 client).
    pub tls: bool,
    /// The URL's path prefix without a trailing slash (often empty);
    /// forwarded paths are appended to it.
    pub path: String,
    /// The `Host` header sent upstream: the host, plus the port when it is
    /// not the scheme's default, built once at registration.
    pub host: HeaderValue,
}

/// Validates and normalizes a backend URL.
///
/// The URL parser (WHATWG rules) reads some strings differently from a
/// person: `http:///x` has the host `x`, `http://127.1` is 127.0.0.1,
/// `http://ex%61mple` is `example`. Such URLs are refused, so that the host
/// a reader sees in a registration is the one connected to.
pub fn parse_base_url(raw: &str) -> Result<BaseUrl, FieldError> {
    let err = |message: String| FieldError {
        field: "url",
        message,
    };
    if raw.len() > 2048 {
        return Err(err("must be at most 2048 characters".into()));
    }
    // The parser would silently drop tabs and line feeds, and control
    // characters would reach log lines.
    if let Some(c) = raw.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(err(format!(
            "{raw:?} contains {c:?}: control characters and white space are not allowed"
        )));
    }
    let url =
        reqwest::Url::parse(raw).map_err(|e| err(format!("{raw:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(format!(
            "scheme {:?} is not supported: use http or https",
            url.scheme()
        )));
    }
    let written = written_host(raw).unwrap_or_default();
    let Some(host) = url.host_str().filter(|_| !written.is_empty()) else {
        return Err(err(format!(
            "{raw:?} has no host: write http://host[:port][/path]"
        )));
    };
    if !same_host(written, host) {
        return Err(err(format!(
            "{raw:?}: the host {written:?} is read as {host:?}; write {host:?} if that is meant"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err("credentials in the URL are not supported".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("must not have a query or fragment".into()));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let path = url.path().trim_end_matches('/');
    let host_header = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let host = HeaderValue::from_str(&host_header).map_err(|_| {
        err(format!(
            "{raw:?} has a host that is not a valid Host header"
        ))
    })?;
    let shown = match url.path() {
        "/" => url.as_str().trim_end_matches('/'),
        _ => url.as_str(),
    };
    Ok(BaseUrl {
        url: shown.to_owned(),
        prefix: format!("{}://{authority}{path}", url.scheme()),
        authority: Arc::from(authority),
        tls: url.scheme() == "https",
        path: path.to_owned(),
        host,
    })
}

/// Whether the host as written is the parsed one: the same name in any
/// letter case, or the same IP address in its standard notation (IPv4
/// dotted decimal without leading zeros, any IPv6 form).
fn same_host(written: &str, parsed: &str) -> bool {
    let ip = |h: &str| {
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h)
            .parse::<std::net::IpAddr>()
            .ok()
    };
    written.eq_ignore_ascii_case(parsed) || ip(written).is_some_and(|w| Some(w) == ip(parsed))
}

/// The host as a person reads it in `scheme://host:port/...`: after the
/// `//`, before the port, the path, query or fragment (and after any
/// `user@`). `None` without the `//`.
fn written_host(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return Some(host_port.find(']').map_or(host_port, |i| &host_port[..=i]));
    }
    Some(host_port.split_once(':').map_or(host_port, |(h, _)| h))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("server-1_a.b").is_ok());
        assert!(validate_name(&"a".repeat(63)).is_ok());
        for bad in ["", &"a".repeat(64), "a b", "a/b", "é", "a\n"] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.field, "name", "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_and_normalized() {
        let b = parse_base_url("http://localhost:5000").unwrap();
        assert_eq!(b.prefix, "http://localhost:5000");
        assert_eq!(b.url, "http://localhost:5000");
        assert_eq!(&*b.authority, "localhost:5000");
        let b = parse_base_url("http://127.0.0.1/v1/").unwrap();
        assert_eq!(b.prefix, "http://127.0.0.1:80/v1");
        assert_eq!(b.url, "http://127.0.0.1/v1/");
        let b = parse_base_url("https://api.example.com").unwrap();
        assert_eq!(b.prefix, "https://api.example.com:443");
        for (raw, shown) in [
            ("HTTP://LocalHost:5000/", "http://localhost:5000"),
            ("http://x:80/", "http://x"),
            ("https://x:443", "https://x"),
            ("http://[::1]:5000", "http://[::1]:5000"),
            ("http://x/a/../b", "http://x/b"),
            ("http://x\\y", "http://x/y"),
            ("http://x:08080", "http://x:8080"),
            ("http://[0:0::1]:5000", "http://[::1]:5000"),
            ("http://[::ffff:127.0.0.1]", "http://[::ffff:7f00:1]"),
        ] {
            assert_eq!(parse_base_url(raw).unwrap().url, shown, "{raw:?}");
        }
        for bad in [
            "localhost:5000",
            "ftp://x",
            "http://",
            "http://u:p@x",
            "http://x/?a=1",
            "http://x/#f",
            "/relative",
            "",
            // Hosts the parser reads differently from a person.
            "http:///nohost",
            "http:/x",
            "http:x",
            "http://127.1",
            "http://2130706433/",
            "http://ex%61mple",
            "http://0177.0.0.1",
            "http://b\u{fc}cher.example",
            // What would reach a log line raw, or be dropped silently.
            "http://x/\n2026-01-01T00:00:00Z  INFO forged",
            "http://lo\ncalhost",
            "http://x/\u{1b}[2J",
            "http://x/\u{85}",
            " http://x",
            "http://x/a b",
        ] {
            let e = parse_base_url(bad).unwrap_err();
            assert_eq!(e.field, "url", "{bad:?}");
            assert!(!e.message.chars().any(char::is_control), "{e}");
        }
        let e = parse_base_url("http:///nohost").unwrap_err();
        assert!(e.message.contains("has no host"), "{e}");
        let e = parse_base_url("http://127.1").unwrap_err();
        assert!(e.message.contains(r#"read as "127.0.0.1""#), "{e}");
    }
}
