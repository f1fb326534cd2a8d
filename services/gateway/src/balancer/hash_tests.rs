//! The `hash` strategy: key extraction, its bounds, and picks over a
//! registry whose backends go down and are retried.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::balancer::tests::registry;
use crate::balancer::Balancer;
use crate::config::{BalancerSettings, HashFallback, HashSettings, Strategy};
use http::HeaderValue;
use std::net::{Ipv4Addr, Ipv6Addr};

fn parts<'a>(headers: &'a HeaderMap, path: &'a str, query: Option<&'a str>) -> RequestParts<'a> {
    RequestParts {
        headers,
        path,
        query,
        client: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    }
}

fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(*name, HeaderValue::from_bytes(value).unwrap());
    }
    h
}

fn key(spec: &str) -> HashKey {
    HashKey::parse(spec).unwrap()
}

#[test]
fn header_keys_are_found_bounded_and_missing() {
    let h = headers(&[("x-user", b"alice")]);
    let k = key("header:X-User");
    assert_eq!(key_hash(&k, parts(&h, "/", None)), Some(hash_key(b"alice")));
    let empty = HeaderMap::new();
    assert_eq!(key_hash(&k, parts(&empty, "/", None)), None);
    let blank = headers(&[("x-user", b"")]);
    assert_eq!(key_hash(&k, parts(&blank, "/", None)), None);
    // A huge value is hashed by its first KiB: two that differ only past
    // it are the same key, and differing within it they are not.
    let mut long = vec![b'a'; 64 * 1024];
    let h1 = headers(&[("x-user", &long)]);
    long[MAX_KEY_BYTES + 1] = b'b';
    let h2 = headers(&[("x-user", &long)]);
    long[MAX_KEY_BYTES - 1] = b'b';
    let h3 = headers(&[("x-user", &long)]);
    let at = |h: &HeaderMap| key_hash(&k, parts(h, "/", None)).unwrap();
    assert_eq!(at(&h1), hash_key(&[b'a'; MAX_KEY_BYTES]));
    assert_eq!(at(&h1), at(&h2));
    assert_ne!(at(&h1), at(&h3));
}

#[test]
fn cookie_keys_survive_malformed_headers() {
    let k = key("cookie:session");
    let at = |h: &HeaderMap| key_hash(&k, parts(h, "/", None));
    let h = headers(&[("cookie", b"theme=dark; session=abc; other=1")]);
    assert_eq!(at(&h), Some(hash_key(b"abc")));
    // In a second Cookie header, quoted, among pairs without '='.
    let h = headers(&[
        ("cookie", b"theme=dark"),
        ("cookie", b";;garbage; =x; session=\"abc\""),
    ]);
    assert_eq!(at(&h), Some(hash_key(b"abc")));
    // Missing, only a prefix of the name, or empty.
    for raw in [
        &b"theme=dark"[..],
        b"sessionid=abc",
        b"session",
        b"session=",
        b";;;",
        b"\xff\xfe=\x80",
    ] {
        let h = headers(&[("cookie", raw)]);
        assert_eq!(at(&h), None, "{raw:?}");
    }
    assert_eq!(at(&HeaderMap::new()), None);
}

#[test]
fn query_path_and_client_address_keys() {
    let h = HeaderMap::new();
    let q = key("query:user");
    assert_eq!(
        key_hash(&q, parts(&h, "/a", Some("x=1&user=bob&user=eve"))),
        Some(hash_key(b"bob"))
    );
    for query in [
        None,
        Some(""),
        Some("username=bob"),
        Some("user"),
        Some("user="),
    ] {
        assert_eq!(key_hash(&q, parts(&h, "/a", query)), None, "{query:?}");
    }
    let p = key("path");
    assert_eq!(
        key_hash(&p, parts(&h, "/users/7", Some("user=bob"))),
        Some(hash_key(b"/users/7"))
    );
    let long = "/".repeat(5000);
    assert_eq!(
        key_hash(&p, parts(&h, &long, None)),
        Some(hash_key(&long.as_bytes()[..MAX_KEY_BYTES]))
    );
    let c = key("client_address");
    let v4 = parts(&h, "/", None);
    assert_eq!(key_hash(&c, v4), Some(hash_key(&[10, 0, 0, 1])));
    let mapped = RequestParts {
        client: IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
        ..v4
    };
    assert_eq!(key_hash(&c, mapped), key_hash(&c, v4));
    let v6 = RequestParts {
        client: IpAddr::V6(Ipv6Addr::LOCALHOST),
        ..v4
    };
    assert_eq!(
        key_hash(&c, v6),
        Some(hash_key(&Ipv6Addr::LOCALHOST.octets()))
    );
}

fn hashing(key: &str, fallback: HashFallback) -> Balancer {
    Balancer::from_settings(&BalancerSettings {
        strategy: Strategy::Hash,
        hash: HashSettings {
            key: key.to_owned(),
            fallback,
        },
        ..BalancerSettings::default()
    })
}

/// The backend each of `n` keys goes to.
fn owners(b: &Balancer, snapshot: &crate::backends::Snapshot, n: u64) -> Vec<String> {
    (0..n)
        .map(|k| {
            let key = Some(hash_key(format!("user-{k}").as_bytes()));
            b.pick_keyed(snapshot, key, |_| true).unwrap().name.clone()
        })
        .collect()
}

#[test]
fn a_down_backend_s_keys_go_elsewhere_and_the_others_stay() {
    let r = registry(&[1, 1, 1, 1, 1]);
    let b = hashing("header:x-user", HashFallback::RoundRobin);
    let before = owners(&b, &r.snapshot(), 20_000);
    r.set_draining("s2", true).unwrap();
    let during = owners(&b, &r.snapshot(), 20_000);
    let mut moved = 0;
    for (old, new) in before.iter().zip(&during) {
        assert_ne!(new, "s2");
        if old == "s2" {
            moved += 1;
        } else {
            assert_eq!(old, new, "a key of a backend that stayed up moved");
        }
    }
    assert!((2_000..6_000).contains(&moved), "{moved}");
    // Its keys spread over the others rather than all landing on one.
    let heirs: std::collections::HashSet<_> = before
        .iter()
        .zip(&during)
        .filter(|(o, _)| *o == "s2")
        .map(|(_, n)| n.clone())
        .collect();
    assert!(heirs.len() >= 3, "{heirs:?}");
    r.set_draining("s2", false).unwrap();
    assert_eq!(owners(&b, &r.snapshot(), 20_000), before);
}

#[test]
fn a_retry_goes_to_the_next_backend_on_the_ring() {
    let r = registry(&[1, 1, 1]);
    let b = hashing("header:x-user", HashFallback::RoundRobin);
    let snapshot = r.snapshot();
    for k in 0..100 {
        let key = Some(hash_key(format!("user-{k}").as_bytes()));
        let first = b.pick_keyed(&snapshot, key, |_| true).unwrap();
        let again = b.pick_keyed(&snapshot, key, |_| true).unwrap();
        assert_eq!(first.name, again.name);
        let second = b
            .pick_keyed(&snapshot, key, |x| x.name != first.name)
            .unwrap();
        assert_ne!(second.name, first.name);
        // The same for every retry of that key.
        let second_again = b
            .pick_keyed(&snapshot, key, |x| x.name != first.name)
            .unwrap();
        assert_eq!(second.name, second_again.name);
        let third = b
            .pick_keyed(&snapshot, key, |x| {
                x.name != first.name && x.name != second.name
            })
            .unwrap();
        assert!(third.name != first.name && third.name != second.name);
        assert!(b.pick_keyed(&snapshot, key, |_| false).is_none());
    }
}

#[test]
fn requests_without_the_key_take_the_fallback() {
    let r = registry(&[1, 1, 1]);
    let snapshot = r.snapshot();
    let h = HeaderMap::new();
    let rr = hashing("header:x-user", HashFallback::RoundRobin);
    assert_eq!(rr.request_key(parts(&h, "/", None)), None);
    let turns: Vec<String> = (0..6)
        .map(|_| {
            rr.pick_keyed(&snapshot, None, |_| true)
                .unwrap()
                .name
                .clone()
        })
        .collect();
    assert_eq!(turns, ["s0", "s1", "s2", "s0", "s1", "s2"]);
    let random = hashing("header:x-user", HashFallback::Random);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..300 {
        seen.insert(
            random
                .pick_keyed(&snapshot, None, |_| true)
                .unwrap()
                .name
                .clone(),
        );
    }
    assert_eq!(seen.len(), 3);
    // Other strategies never compute a key.
    let h = headers(&[("x-user", b"alice")]);
    assert!(rr.request_key(parts(&h, "/", None)).is_some());
    let plain = Balancer::new(Strategy::RoundRobin);
    assert_eq!(plain.request_key(parts(&h, "/", None)), None);
}

#[test]
fn nothing_up_means_no_pick() {
    let r = registry(&[1, 1]);
    let b = hashing("path", HashFallback::RoundRobin);
    r.set_draining("s0", true).unwrap();
    r.set_draining("s1", true).unwrap();
    assert!(b.pick_keyed(&r.snapshot(), Some(7), |_| true).is_none());
    assert!(b
        .pick_keyed(&registry(&[]).snapshot(), Some(7), |_| true)
        .is_none());
}
