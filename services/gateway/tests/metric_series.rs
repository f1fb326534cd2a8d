//! The gateway's `/metrics` as backends come and go: every series naming a
//! backend leaves with it, and a name that stays keeps its series.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

/// The series lines of `/metrics` that name a backend.
async fn upstream_series(gw: &TestGateway) -> Vec<String> {
    let text = metrics_text(gw).await;
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("upstream=\""))
        .map(str::to_owned)
        .collect()
}

/// Requests of several kinds (statuses, methods, a retried 503), so each
/// backend gets series of several label sets.
async fn traffic(gw: &TestGateway, requests: usize) {
    let c = client();
    for i in 0..requests {
        let request = match i % 4 {
            0 => c.get(gw.url("/api/data")),
            1 => c.get(gw.url("/api/data?status=503")),
            2 => c.post(gw.url("/api/echo")).body("x"),
            _ => c.get(gw.url("/no/such/path")),
        };
        request.send().await.unwrap();
    }
}

#[tokio::test]
async fn deleted_backends_leave_no_series_behind() {
    let gw = spawn_gateway(gateway_settings()).await;
    let backend = spawn_backend("b").await;
    let dead = closed_port().await;
    let c = client();
    assert_eq!(upstream_series(&gw).await, Vec::<String>::new());

    const ROUNDS: usize = 4;
    const BATCH: usize = 25;
    for round in 0..ROUNDS {
        let names: Vec<String> = (0..BATCH).map(|i| format!("r{round}-s{i}")).collect();
        for name in &names {
            register(&gw, name, &backend).await;
        }
        // Connect failures, failed health checks and an ejection too.
        register_addr(&gw, &format!("r{round}-dead"), dead).await;
        traffic(&gw, 4 * BATCH).await;
        let series = upstream_series(&gw).await;
        assert!(series.len() > 10 * BATCH, "{}", series.len());
        for name in names.iter().chain([&format!("r{round}-dead")]) {
            let r = c
                .delete(gw.url(&format!("/api/servers/{name}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
    }
    // Health probes in flight hold their backend a moment longer; an
    // ejection (5 s) must not.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = upstream_series(&gw).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} series of deleted backends, e.g. {:?}",
            left.len(),
            &left[..left.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_backend_replaced_under_its_name_keeps_its_series() {
    let gw = spawn_gateway(gateway_settings()).await;
    let first = spawn_backend("first").await;
    let second = spawn_backend("second").await;
    register(&gw, "kept", &first).await;
    traffic(&gw, 4).await;
    let served = r#"http_client_request_duration_seconds_count{error_type="",http_request_method="GET",http_response_status_code="200",upstream="kept"}"#;
    let before = upstream_series(&gw).await;
    assert!(before.contains(&format!("{served} 1")), "{before:#?}");

    let r = client()
        .put(gw.url("/api/servers/kept"))
        .json(&json!({"url": format!("http://{}", second.addr)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    traffic(&gw, 4).await;
    let after = upstream_series(&gw).await;
    assert!(after.contains(&format!("{served} 2")), "{after:#?}");
}
