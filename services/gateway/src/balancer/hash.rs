//! The `hash` strategy's key: taken from the request once, bounded, hashed
//! once (fixed-seed XXH3, as the ring's points are) and handed to every
//! attempt's pick.

use std::net::IpAddr;

use http::header::COOKIE;
use http::HeaderMap;

use crate::backends::ring::hash_key;
use crate::config::HashKey;

/// Most bytes of a key that are hashed: a longer key is hashed by its
/// first `MAX_KEY_BYTES`, so a huge header costs no more than this.
pub const MAX_KEY_BYTES: usize = 1024;

/// What the request offers for [`HashKey`]: its headers, path, query and
/// the client's address.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string, without the `?`.
    pub query: Option<&'a str>,
    /// The client's address.
    pub client: IpAddr,
}

/// The hash of the request's key, or `None` when the request lacks it (or
/// it is empty).
pub fn key_hash(key: &HashKey, request: RequestParts<'_>) -> Option<u64> {
    let bound = |bytes: &[u8]| hash_key(&bytes[..bytes.len().min(MAX_KEY_BYTES)]);
    let nonempty = |bytes: &[u8]| (!bytes.is_empty()).then(|| bound(bytes));
    match key {
        HashKey::Header(name) => nonempty(request.headers.get(name)?.as_bytes()),
        HashKey::Cookie(name) => nonempty(cookie(request.headers, name.as_bytes())?),
        HashKey::Query(name) => nonempty(query_value(request.query?, name)?.as_bytes()),
        HashKey::Path => Some(bound(request.path.as_bytes())),
        HashKey::ClientAddress => Some(match request.client {
            IpAddr::V4(v4) => bound(&v4.octets()),
            // An IPv4 client seen through a dual-stack socket hashes as
            // itself.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => bound(&v4.octets()),
                None => bound(&v6.octets()),
            },
        }),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first
/// one of that name); pairs without `=` are skipped, and surrounding double
/// quotes are removed.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &[u8]) -> Option<&'a [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (n, v) = (&pair[..eq], &pair[eq + 1..]);
            (n.trim_ascii() == name).then_some(v.trim_ascii())
        })
        .map(|v| match v {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        })
        .next()
}

/// The raw value of query parameter `name` (the first one of that name).
pub fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
#[path = "hash_tests.rs"]
mod tests;
