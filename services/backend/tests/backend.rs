//! The backend as a client sees it, on a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{active_requests, client, eventually, settings, spawn};

#[tokio::test]
async fn data_names_the_instance_and_echoes_the_request_id() {
    let b = spawn(settings()).await;
    let r = client()
        .get(format!("{}/api/data", b.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    assert_eq!(r.headers()["x-served-by"], "b1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["instance"]["name"], "b1");
    assert!(body["instance"]["port"].as_u64().unwrap() > 0);
    assert!(!body["instance"]["hostname"].as_str().unwrap().is_empty());
    assert_eq!(body["request_id"], "abc-123");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(body["data"].is_object());
}

#[tokio::test]
async fn per_request_faults_apply_and_are_bounded() {
    let b = spawn(settings()).await;
    let c = client();
    let started = Instant::now();
    let r = c
        .get(format!("{}/api/data?delay_ms=200", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let r = c
        .get(format!("{}/api/data?status=503", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "injected_fault");
    for bad in [
        "delay_ms=30001",
        "delay_ms=soon",
        "status=99",
        "status=600",
        "status=x",
    ] {
        let r = c
            .get(format!("{}/api/data?{bad}", b.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        let param = bad.split('=').next().unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(param),
            "{body}"
        );
    }
}

#[tokio::test]
async fn configured_error_rate_and_latency_apply() {
    let mut s = settings();
    s.faults.error_rate = 1.0;
    s.faults.error_status = 502;
    s.faults.latency = Duration::from_millis(50);
    let b = spawn(s).await;
    let started = Instant::now();
    let r = client()
        .get(format!("{}/api/data", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn stats_and_metrics_count_own_traffic_only() {
    let b = spawn(settings()).await;
    let c = client();
    for _ in 0..5 {
        c.get(format!("{}/api/data", b.base)).send().await.unwrap();
    }
    c.get(format!("{}/api/data?status=500", b.base))
        .send()
        .await
        .unwrap();
    c.get(format!("{}/metrics", b.base)).send().await.unwrap();
    c.get(format!("{}/healthz", b.base)).send().await.unwrap();
    let s: Value = c
        .get(format!("{}/api/stats/1m", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["requests"], 6);
    assert_eq!(s["errors"], 1);
    assert_eq!(s["status"]["2xx"], 5);
    let text = c
        .get(format!("{}/metrics", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(
        r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/api/data"} 5"#
    ), "{text}");
    let r = c
        .get(format!("{}/api/stats/10m", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Statuses, paths and methods are the client's to choose; the series they
/// land in are not.
#[tokio::test]
async fn client_chosen_statuses_paths_and_methods_make_bounded_series() {
    let b = spawn(settings()).await;
    let c = client();
    for status in 200..600 {
        let r = c
            .get(format!("{}/api/data?status={status}", b.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
    }
    for i in 0..50 {
        let method = http::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
        c.request(method, format!("{}/api/echo/{i}", b.base))
            .send()
            .await
            .unwrap();
        c.get(format!("{}/no/such/path/{i}", b.base))
            .send()
            .await
            .unwrap();
    }
    let text = c
        .get(format!("{}/metrics", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .collect();
    // /api/data: 59 registered codes from 200 to 599 and 4 classes; one
    // series each for the echoes and the unknown paths.
    assert_eq!(series.len(), 63 + 2, "{series:#?}");
    for label in [
        r#"http_response_status_code="4xx""#,
        r#"http_response_status_code="451""#,
        r#"http_request_method="_OTHER",http_response_status_code="200",http_route="/api/echo""#,
        r#"http_request_method="GET",http_response_status_code="404",http_route="/*""#,
    ] {
        assert!(
            series.iter().any(|s| s.contains(label)),
            "{label}: {series:#?}"
        );
    }
    assert!(!text.contains(r#"http_response_status_code="499""#));
}

#[tokio::test]
async fn health_and_graceful_shutdown() {
    let mut s = settings();
    s.shutdown.delay = Duration::from_millis(500);
    let b = spawn(s).await;
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", b.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/readyz", b.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let slow_url = format!("{}/api/data?delay_ms=700", b.base);
    let idle = active_requests(&b.base).await;
    let slow = tokio::spawn(async move { client().get(slow_url).send().await });
    eventually("the slow request in flight", || async {
        active_requests(&b.base).await > idle
    })
    .await;
    b.stop.send(()).unwrap();
    eventually("/readyz 503", || async {
        let r = c.get(format!("{}/readyz", b.base)).send().await.unwrap();
        r.status() == 503
    })
    .await;
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    let drain = b.handle.await.unwrap().unwrap();
    assert_eq!(drain, serving::server::Drain::Complete);
}

#[tokio::test]
async fn get_routes_answer_head_and_a_405_names_the_allowed_methods() {
    let b = spawn(settings()).await;
    let c = client();
    for path in [
        "/api/data",
        "/api/stats/1m",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        let get = c.get(format!("{}{path}", b.base)).send().await.unwrap();
        let get_type = get.headers()["content-type"].clone();
        assert_eq!(get.status(), 200, "GET {path}");
        let head = c.head(format!("{}{path}", b.base)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(head.headers()["content-type"], get_type, "HEAD {path}");
        assert_eq!(head.headers()["x-served-by"], "b1");
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} sent a body"
        );

        let wrong = c.delete(format!("{}{path}", b.base)).send().await.unwrap();
        assert_eq!(wrong.status(), 405, "DELETE {path}");
        assert_eq!(wrong.headers()["allow"], "GET, HEAD", "DELETE {path}");
        let body: Value = wrong.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
    // Any method goes to the echo route, and unknown paths are 404s.
    let r = c
        .delete(format!("{}/api/echo", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.post(format!("{}/nowhere", b.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("allow").is_none());
}

#[tokio::test]
async fn a_body_whose_framing_breaks_is_refused_and_ends_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = spawn(settings()).await;
    let addr = b.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A chunk-size line that is not hex, then a request of its own.
    let bytes = "POST /api/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                 zz\r\nGET /api/data HTTP/1.1\r\nHost: a\r\n\r\n";
    stream.write_all(bytes.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut seen))
        .await
        .expect("the connection stayed open")
        .unwrap();
    let answer = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(answer.starts_with("http/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"invalid_body\""), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    // Nothing after the refusal: the request behind it was not answered.
    assert!(answer.ends_with('}'), "{answer}");
    assert_eq!(answer.matches("\r\n\r\n").count(), 1, "{answer}");
}
