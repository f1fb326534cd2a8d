//! `hash` through a real gateway and three real backends: requests with the
//! same `X-User` header all land on one backend, different users spread
//! over the three, and requests without the header take the fallback.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::{HashMap, HashSet};

use gateway::config::Strategy;
use support::*;

const USERS: usize = 60;
const REQUESTS_PER_USER: usize = 5;

#[tokio::test]
async fn the_same_user_lands_on_the_same_backend() {
    let mut backends = Vec::new();
    for name in ["b1", "b2", "b3"] {
        backends.push((name, spawn_backend_with(backend_settings(name)).await));
    }
    let mut settings = gateway_settings();
    settings.balancer.strategy = Strategy::Hash;
    settings.balancer.hash.key = "header:X-User".to_owned();
    let gw = spawn_gateway(settings).await;
    for (name, backend) in &backends {
        register(&gw, name, backend).await;
    }
    let c = client();
    let served_by = |r: &reqwest::Response| r.headers()["x-served-by"].to_str().unwrap().to_owned();

    let mut users_per_backend: HashMap<String, usize> = HashMap::new();
    for user in 0..USERS {
        let mut seen = HashSet::new();
        for _ in 0..REQUESTS_PER_USER {
            let r = c
                .get(gw.url("/api/data"))
                .header("X-User", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            seen.insert(served_by(&r));
            r.bytes().await.unwrap();
        }
        assert_eq!(seen.len(), 1, "user-{user} went to {seen:?}");
        *users_per_backend
            .entry(seen.into_iter().next().unwrap())
            .or_default() += 1;
    }
    // 60 users over three equal backends: each gets a fair part. (The hash
    // and the ring are fixed, so this spread is the same on every run.)
    assert_eq!(users_per_backend.len(), 3, "{users_per_backend:?}");
    for (name, users) in &users_per_backend {
        assert!(
            *users >= 8,
            "{name} got {users} users: {users_per_backend:?}"
        );
    }

    // Without the header: round robin over the three.
    let mut fallback = HashSet::new();
    for _ in 0..3 {
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        fallback.insert(served_by(&r));
        r.bytes().await.unwrap();
    }
    assert_eq!(fallback.len(), 3, "{fallback:?}");

    gw.stop().await;
    for (_, backend) in backends {
        backend.stop().await;
    }
}
