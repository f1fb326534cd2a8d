//! `peak_ewma` against `least_outstanding` through a real gateway and three
//! real backends, one of them answering 25 ms late (its latency fault), at
//! light load: sequential requests, a pause between each, so no backend
//! ever has a request in flight when the next one is balanced. Only which
//! backend served each request is checked, never how long it took.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use gateway::config::Strategy;
use support::*;

const REQUESTS: usize = 300;

/// How many of `REQUESTS` spaced requests each backend served, with three
/// backends of which `slow` answers 25 ms late.
async fn served_by(strategy: Strategy) -> HashMap<String, usize> {
    let mut backends = Vec::new();
    for name in ["fast1", "slow", "fast2"] {
        let mut settings = backend_settings(name);
        if name == "slow" {
            settings.faults.latency = Duration::from_millis(25);
        }
        backends.push((name, spawn_backend_with(settings).await));
    }
    let mut settings = gateway_settings();
    settings.balancer.strategy = strategy;
    let gw = spawn_gateway(settings).await;
    for (name, backend) in &backends {
        register(&gw, name, backend).await;
    }
    let c = client();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..REQUESTS {
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let name = r.headers()["x-served-by"].to_str().unwrap().to_owned();
        r.bytes().await.unwrap();
        *counts.entry(name).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    gw.stop().await;
    for (_, backend) in backends {
        backend.stop().await;
    }
    counts
}

#[tokio::test]
async fn peak_ewma_keeps_light_load_off_a_slow_backend() {
    let counts = served_by(Strategy::PeakEwma).await;
    let slow = counts.get("slow").copied().unwrap_or(0);
    assert!(slow * 100 < REQUESTS * 5, "{counts:?}");
    // The fast ones share the rest.
    for name in ["fast1", "fast2"] {
        assert!(
            counts.get(name).copied().unwrap_or(0) > REQUESTS / 5,
            "{counts:?}"
        );
    }
}

/// The control: with nothing in flight, least_outstanding cannot tell the
/// slow backend from the others and sends it about a third.
#[tokio::test]
async fn least_outstanding_cannot_tell_at_light_load() {
    let counts = served_by(Strategy::LeastOutstanding).await;
    let slow = counts.get("slow").copied().unwrap_or(0);
    assert!(slow * 100 > REQUESTS * 20, "{counts:?}");
}
