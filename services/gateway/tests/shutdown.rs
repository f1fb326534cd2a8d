//! Graceful shutdown: readiness flips, the listener closes, requests in
//! flight finish, and the drain is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use serving::server::Drain;
use support::*;

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let (mut gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    let url = gw.url("/api/data?delay_ms=600");
    let in_flight = tokio::spawn(async move { c.get(url).send().await });
    until_in_flight(&gw, 1).await;

    gw.signal_stop();
    // The listener closes: a new connection is refused.
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    eventually(
        "new connections refused",
        Duration::from_secs(5),
        || async {
            fresh
                .get(gw.url("/healthz"))
                .send()
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;

    let response = in_flight.await.unwrap().expect("in-flight request failed");
    assert_eq!(response.status(), 200);
    assert_eq!(gw.stop().await, Drain::Complete);
}

#[tokio::test]
async fn readiness_turns_false_during_the_shutdown_delay() {
    let mut settings = gateway_settings();
    settings.shutdown.delay = Duration::from_millis(800);
    let mut gw = spawn_gateway(settings).await;
    let c = client();
    assert_eq!(c.get(gw.url("/readyz")).send().await.unwrap().status(), 200);
    gw.signal_stop();
    // Still serving, but no longer ready.
    eventually("/readyz 503", Duration::from_secs(5), || async {
        let r = c.get(gw.url("/readyz")).send().await.unwrap();
        (r.status() == 503).then_some(())
    })
    .await;
    assert_eq!(
        c.get(gw.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(gw.stop().await, Drain::Complete);
}

#[tokio::test]
async fn the_drain_is_bounded() {
    let mut settings = gateway_settings();
    settings.shutdown.drain_timeout = Duration::from_millis(300);
    let (mut gw, _backends) = gateway_with_three(settings).await;
    let url = gw.url("/api/data?delay_ms=10000");
    let stuck = tokio::spawn(async move { client().get(url).send().await });
    until_in_flight(&gw, 1).await;
    let started = Instant::now();
    gw.signal_stop();
    assert_eq!(gw.stop().await, Drain::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(3));
    stuck.abort();
}
