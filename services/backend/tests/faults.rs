//! The run-time fault API (`/api/faults`) and its modes, as a client sees
//! them on a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::ErrorKind;
use std::time::Duration;

use serde_json::{json, Value};
use support::{active_requests, client, eventually, metric, settings, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn faults(base: &str) -> Value {
    let r = client()
        .get(format!("{base}/api/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn put(base: &str, body: &str) -> reqwest::Response {
    client()
        .put(format!("{base}/api/faults"))
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn data_status(base: &str, query: &str) -> u16 {
    client()
        .get(format!("{base}/api/data{query}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Sends a GET for `path` on a raw connection.
async fn raw_get(addr: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn put_get_and_delete_round_trip_and_show_on_metrics() {
    let mut s = settings();
    s.faults.latency = Duration::from_millis(5);
    let b = spawn(s).await;
    let configured = json!({
        "faults": {"latency": "5ms", "jitter": "0s", "error_rate": 0.0, "error_status": 500, "mode": "serve"},
        "expires_in": null,
        "max_delay": "30s",
    });
    assert_eq!(faults(&b.base).await, configured);

    let r = put(
        &b.base,
        r#"{"latency": "30s", "jitter": "0s", "error_rate": 1.0, "error_status": 503}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    let set = json!({
        "faults": {"latency": "30s", "jitter": "0s", "error_rate": 1.0, "error_status": 503, "mode": "serve"},
        "expires_in": null,
        "max_delay": "30s",
    });
    assert_eq!(r.json::<Value>().await.unwrap(), set);
    assert_eq!(faults(&b.base).await, set);
    assert_eq!(metric(&b.base, "backend_fault_latency_seconds").await, 30.0);
    assert_eq!(metric(&b.base, "backend_fault_error_rate").await, 1.0);
    assert_eq!(metric(&b.base, "backend_fault_error_status").await, 503.0);
    assert_eq!(metric(&b.base, "backend_fault_changes_total").await, 1.0);

    // Per-request overrides still win: an exact delay instead of the 30 s,
    // and the status asked for instead of the injected error.
    assert_eq!(data_status(&b.base, "?delay_ms=1").await, 503);
    assert_eq!(data_status(&b.base, "?delay_ms=0&status=200").await, 200);
    assert_eq!(data_status(&b.base, "?delay_ms=30001").await, 400);

    let r = client()
        .delete(format!("{}/api/faults", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), configured);
    assert_eq!(data_status(&b.base, "").await, 200);
    assert_eq!(
        metric(&b.base, "backend_fault_latency_seconds").await,
        0.005
    );
    assert_eq!(metric(&b.base, "backend_fault_changes_total").await, 2.0);
    assert_eq!(
        metric(&b.base, r#"backend_fault_mode{mode="serve"}"#).await,
        1.0
    );
}

#[tokio::test]
async fn a_refused_change_names_its_key_and_changes_nothing() {
    let b = spawn(settings()).await;
    assert_eq!(put(&b.base, r#"{"latency": "10ms"}"#).await.status(), 200);
    let before = faults(&b.base).await;
    for (body, key) in [
        (r#"{"bogus": 1}"#, "bogus"),
        (r#"{"latency": 10}"#, "latency"),
        (r#"{"error_rate": 2}"#, "error_rate"),
        (r#"{"error_status": 404}"#, "error_status"),
        (r#"{"latency": "25s", "jitter": "6s"}"#, "latency"),
        (r#"{"max_delay": "1m"}"#, "max_delay"),
        (r#"{"mode": "refuse"}"#, "duration"),
        (r#"{"mode": "sleep"}"#, "mode"),
        (r#"{"duration": "2h"}"#, "duration"),
        ("latency=10ms", "body"),
    ] {
        let r = put(&b.base, body).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "invalid_faults", "{body}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{key}: ")),
            "{body}: {message}"
        );
    }
    let r = put(&b.base, &format!("\"{}\"", "x".repeat(20_000))).await;
    assert_eq!(r.status(), 413);
    assert_eq!(faults(&b.base).await, before);
    assert_eq!(metric(&b.base, "backend_fault_changes_total").await, 1.0);
}

#[tokio::test]
async fn changes_need_the_token_when_one_is_set() {
    let mut s = settings();
    s.admin.token = "s3cret".into();
    let b = spawn(s).await;
    let c = client();
    let url = format!("{}/api/faults", b.base);
    let body = r#"{"error_rate": 1.0}"#;
    let r = c.put(&url).body(body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let r = c
        .put(&url)
        .bearer_auth("wrong")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(faults(&b.base).await["faults"]["error_rate"], 0.0);

    let r = c
        .put(&url)
        .bearer_auth("s3cret")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(faults(&b.base).await["faults"]["error_rate"], 1.0);
    let r = c.delete(&url).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_change_with_a_duration_clears_itself() {
    let b = spawn(settings()).await;
    let r = put(&b.base, r#"{"error_rate": 1.0, "duration": "300ms"}"#).await;
    let shown: Value = r.json().await.unwrap();
    assert!(
        shown["expires_in"].as_str().unwrap().ends_with("ms"),
        "{shown}"
    );
    eventually("the faults back to the configured ones", || async {
        faults(&b.base).await["faults"]["error_rate"] == 0.0
    })
    .await;
    assert_eq!(faults(&b.base).await["expires_in"], Value::Null);
    assert_eq!(data_status(&b.base, "").await, 200);
    assert_eq!(metric(&b.base, "backend_fault_changes_total").await, 2.0);
}

#[tokio::test]
async fn a_hung_request_is_answered_once_the_faults_are_cleared() {
    let b = spawn(settings()).await;
    let idle = active_requests(&b.base).await;
    assert_eq!(put(&b.base, r#"{"mode": "hang"}"#).await.status(), 200);
    assert_eq!(
        metric(&b.base, r#"backend_fault_mode{mode="hang"}"#).await,
        1.0
    );
    assert_eq!(
        metric(&b.base, r#"backend_fault_mode{mode="serve"}"#).await,
        0.0
    );
    let url = format!("{}/api/data", b.base);
    let hung = tokio::spawn(async move { client().get(url).send().await });
    eventually("the request hanging", || async {
        active_requests(&b.base).await > idle
    })
    .await;
    // The other routes still answer meanwhile.
    assert_eq!(faults(&b.base).await["faults"]["mode"], "hang");
    assert!(!hung.is_finished());
    let r = client()
        .delete(format!("{}/api/faults", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hung.await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn shutdown_drops_hung_requests_after_the_drain_time() {
    let mut s = settings();
    s.shutdown.drain_timeout = Duration::from_millis(300);
    let b = spawn(s).await;
    let idle = active_requests(&b.base).await;
    put(&b.base, r#"{"mode": "hang"}"#).await;
    let url = format!("{}/api/data", b.base);
    let hung = tokio::spawn(async move { client().get(url).send().await });
    eventually("the request hanging", || async {
        active_requests(&b.base).await > idle
    })
    .await;
    b.stop.send(()).unwrap();
    let drain = b.handle.await.unwrap().unwrap();
    assert_eq!(drain, serving::server::Drain::TimedOut);
    hung.abort();
}

#[tokio::test]
async fn reset_ends_the_connection_with_a_reset_and_no_answer() {
    let b = spawn(settings()).await;
    assert_eq!(put(&b.base, r#"{"mode": "reset"}"#).await.status(), 200);
    let addr = b.base.trim_start_matches("http://");
    let mut stream = raw_get(addr, "/api/data").await;
    let mut seen = Vec::new();
    let error = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut seen))
        .await
        .expect("the connection stayed open")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));
    // Only /api/data is reset.
    assert_eq!(faults(&b.base).await["faults"]["mode"], "reset");
}

#[tokio::test]
async fn refuse_closes_the_listener_and_open_connections_then_listens_again() {
    let b = spawn(settings()).await;
    let addr = b.base.trim_start_matches("http://").to_owned();
    // A keep-alive connection, idle after its answer.
    let mut pooled = raw_get(&addr, "/healthz").await;
    let mut answer = [0; 512];
    let n = pooled.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));

    let r = put(&b.base, r#"{"mode": "refuse", "duration": "500ms"}"#).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["faults"]["mode"], "refuse");
    let closed = tokio::time::timeout(Duration::from_secs(5), pooled.read(&mut answer))
        .await
        .expect("the idle connection stayed open");
    assert!(matches!(closed, Ok(0)), "{closed:?}");
    let error = TcpStream::connect(&addr).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);

    eventually("listening again on the same port", || async {
        TcpStream::connect(&addr).await.is_ok()
    })
    .await;
    eventually("the faults back to the configured ones", || async {
        faults(&b.base).await["faults"]["mode"] == "serve"
    })
    .await;
    assert_eq!(data_status(&b.base, "").await, 200);
}
