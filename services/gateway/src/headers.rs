//! What crosses the gateway in headers: hop-by-hop headers are dropped in
//! both directions (RFC 9110 section 7.6.1), the `X-Forwarded-*` trio is added
//! upstream, and every request gets an `X-Request-Id` (the client's, or a
//! fresh one) that is sent upstream and returned to the client.
//!
//! Depends on nothing else in the crate.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

// Names as constants: looking a header up by `&str` parses the name on
// every call.
/// The request id header, sent upstream and returned to the client.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The client's `X-Request-Id` when it sent a usable one, else a fresh
/// random 128-bit id.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(X_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(fresh_request_id)
}

/// 32 lowercase hex digits of a random 128-bit number, written without
/// `format!` (this runs for most requests).
fn fresh_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = fastrand::u128(..);
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().enumerate() {
        *digit = HEX[((n >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Whether the client sent a body to forward. Without this, a GET would go
/// upstream with an empty chunked body.
pub fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// The comma-separated tokens of every `name` header, trimmed, empty ones
/// skipped (`Connection: close, x-a`; `Transfer-Encoding: gzip, chunked`).
fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names instead of a
    // lookup per hop-by-hop name.
    let hop_by_hop =
        |name: &HeaderName| *name == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(name);
    if !headers.keys().any(hop_by_hop) {
        return;
    }
    let listed: Vec<HeaderName> = tokens(headers, header::CONNECTION)
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(listed.iter()) {
        headers.remove(name);
    }
    // Framing is redone by our own HTTP layer on each side.
    headers.remove(header::TRANSFER_ENCODING);
}

/// What goes upstream in a request's headers: the client's own and the
/// ones the gateway adds, kept apart so that the usual request needs no
/// insertion into the client's map (each costs about as much as parsing a
/// header line). The plain-HTTP client takes the two as they are, as its
/// `RequestHead`'s `headers` and `extra`, and sends what [`Forwarded::sent`]
/// lists.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The client's headers, hop-by-hop ones dropped. Its `Host` (the
    /// backend's is sent) and any header named in `added` are not sent.
    pub client: HeaderMap,
    /// `X-Forwarded-For` (the client's, with the client's address
    /// appended), `X-Forwarded-Proto` and `-Host` unless the client set
    /// them, `X-Request-Id`, and trace context when traces are exported.
    pub added: Vec<(HeaderName, HeaderValue)>,
}

impl Forwarded {
    /// Every header sent upstream, the client's first: its own minus
    /// `Host` and the names the gateway sets, then the gateway's.
    pub fn sent(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let replaced = |name: &HeaderName| self.added.iter().any(|(added, _)| added == name);
        self.client
            .iter()
            .filter(move |(name, _)| *name != header::HOST && !replaced(name))
            .chain(self.added.iter().map(|(name, value)| (name, value)))
    }

    /// Everything sent, in one map: what a client library takes.
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.client.len() + self.added.len());
        for (name, value) in self.sent() {
            map.append(name.clone(), value.clone());
        }
        map
    }
}

/// The headers sent upstream: the client's, minus hop-by-hop and `Host`
/// (the backend's is sent), plus the `X-Forwarded-*` trio and the request
/// id. `X-Forwarded-For` is the client's lines joined into one list, then
/// the client's address.
pub fn forward_headers(
    mut headers: HeaderMap,
    client: SocketAddr,
    request_id: &HeaderValue,
) -> Forwarded {
    strip_hop_by_hop(&mut headers);
    // One pass over the few headers a client sends, instead of a lookup for
    // each one asked about.
    let (mut host, mut has_proto, mut has_host) = (None, false, false);
    // Every X-Forwarded-For line, in order, is one list (as RFC 9110
    // section 5.3 has it for any list-valued field): the proxies before
    // us, to which the client's address is appended.
    let mut forwarded_for = Vec::with_capacity(15);
    for (name, value) in &headers {
        if *name == header::HOST {
            host = host.or(Some(value));
        } else if *name == X_FORWARDED_FOR {
            if !value.is_empty() {
                forwarded_for.extend_from_slice(value.as_bytes());
                forwarded_for.extend_from_slice(b", ");
            }
        } else if *name == X_FORWARDED_PROTO {
            has_proto = true;
        } else if *name == X_FORWARDED_HOST {
            has_host = true;
        }
    }
    let mut added = Vec::with_capacity(4);
    push_ip(&mut forwarded_for, client.ip());
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(forwarded_for)) {
        added.push((X_FORWARDED_FOR, v));
    }
    if !has_proto {
        added.push((X_FORWARDED_PROTO, HeaderValue::from_static("http")));
    }
    if let (false, Some(host)) = (has_host, host) {
        added.push((X_FORWARDED_HOST, host.clone()));
    }
    added.push((X_REQUEST_ID, request_id.clone()));
    Forwarded {
        client: headers,
        added,
    }
}

/// Appends the address as text; IPv4 (nearly every client) by hand, which
/// is several times cheaper than `Display`.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn messages_without_hop_by_hop_headers_keep_all_of_theirs() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.append("x-many", HeaderValue::from_static("1"));
        h.append("x-many", HeaderValue::from_static("2"));
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn forwarded_headers_are_added_and_appended() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("gw.example"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let addr = "127.0.0.9:1234".parse().unwrap();
        let out = forward_headers(h, addr, &HeaderValue::from_static("rid")).to_map();
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "gw.example");
        assert_eq!(out["x-request-id"], "rid");
        assert!(!out.contains_key(header::HOST));
    }

    #[test]
    fn the_clients_forwarding_headers_are_kept_or_replaced_never_doubled() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("gw.example"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("public.example"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.insert("x-request-id", HeaderValue::from_static("theirs"));
        let addr = "127.0.0.9:1234".parse().unwrap();
        let out = forward_headers(h, addr, &HeaderValue::from_static("ours"));
        let sent = |name: &str| -> Vec<String> {
            let mut values: Vec<String> = out
                .sent()
                .filter(|(n, _)| n.as_str() == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
                .collect();
            values.sort();
            values
        };
        assert_eq!(sent("x-forwarded-proto"), ["https"]);
        assert_eq!(sent("x-forwarded-host"), ["public.example"]);
        assert_eq!(sent("x-forwarded-for"), ["10.0.0.1, 10.0.0.2, 127.0.0.9"]);
        assert_eq!(sent("x-request-id"), ["ours"]);
        assert!(sent("host").is_empty());
        let map = out.to_map();
        assert_eq!(map.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-request-id"], "ours");
    }

    #[test]
    fn every_forwarded_for_line_is_kept_in_order_with_the_client_appended() {
        let mut h = HeaderMap::new();
        for line in ["203.0.113.7, 10.0.0.1", "", "10.0.0.2", "2001:db8::1"] {
            h.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let addr = "[::1]:1234".parse().unwrap();
        let out = forward_headers(h, addr, &HeaderValue::from_static("rid")).to_map();
        let lines: Vec<_> = out.get_all("x-forwarded-for").iter().collect();
        assert_eq!(lines, ["203.0.113.7, 10.0.0.1, 10.0.0.2, 2001:db8::1, ::1"]);
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "127.0.0.1",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn request_ids_are_kept_or_generated() {
        let mut h = HeaderMap::new();
        let generated = request_id(&h);
        assert_eq!(generated.len(), 32);
        assert!(generated
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        assert_ne!(generated, request_id(&h));
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        assert_eq!(request_id(&h), "abc");
    }
}
