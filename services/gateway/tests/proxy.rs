//! Proxying through real backends: what is forwarded, how it is spread,
//! the error paths, and that stats and metrics count exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn method_path_query_headers_and_body_are_forwarded() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let body = if method == "GET" {
            String::new()
        } else {
            format!("payload for {method} ✓")
        };
        let r = c
            .request(
                method.parse().unwrap(),
                gw.url("/api/echo/deep/path?a=1&b=two%20words&a=3"),
            )
            .header("x-custom", "kept")
            .header("x-forwarded-for", "10.1.2.3")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "dropped")
            .header("content-type", "text/plain")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
        let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let echo: Value = r.json().await.unwrap();
        assert_eq!(echo["method"], method);
        assert_eq!(echo["path"], "/api/echo/deep/path");
        assert_eq!(echo["query"], "a=1&b=two%20words&a=3");
        assert_eq!(echo["body"], body);
        let h = &echo["headers"];
        assert_eq!(h["x-custom"][0], "kept");
        assert_eq!(h["x-forwarded-for"][0], "10.1.2.3, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"][0], "http");
        assert_eq!(h["x-forwarded-host"][0], gw.addr.to_string());
        assert_eq!(h["x-request-id"][0], request_id.as_str());
        assert!(h.get("x-hop").is_none(), "hop-by-hop header forwarded: {h}");
        assert_eq!(request_id.len(), 32);
    }
}

#[tokio::test]
async fn request_id_from_the_client_is_kept_end_to_end() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let r = client()
        .get(gw.url("/api/data"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-me-42");
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let chunk = "0123456789abcdef".repeat(4096); // 64 KiB
    let chunks: Vec<Result<String, std::io::Error>> = (0..8).map(|_| Ok(chunk.clone())).collect();
    let r = client()
        .post(gw.url("/api/echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["body_bytes"], 8 * 64 * 1024);
}

#[tokio::test]
async fn round_robin_spreads_exactly_evenly() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let served_by = r.headers()["x-served-by"].to_str().unwrap().to_owned();
        *counts.entry(served_by).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (name, n) in &counts {
        // Within 1% of even; sequential requests make it exact.
        assert!((99..=101).contains(n), "{name}: {n}");
    }
}

#[tokio::test]
async fn weighted_round_robin_follows_weights() {
    let mut settings = gateway_settings();
    settings.balancer.strategy = gateway::config::Strategy::WeightedRoundRobin;
    let gw = spawn_gateway(settings).await;
    let c = client();
    let mut backends = Vec::new();
    for (i, weight) in [(1, 3), (2, 1)] {
        let b = spawn_backend(&format!("w{i}")).await;
        let r = c
            .put(gw.url(&format!("/api/servers/w{i}")))
            .json(&json!({"url": format!("http://{}", b.addr), "weight": weight}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        backends.push(b);
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..400 {
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        *counts
            .entry(r.headers()["x-served-by"].to_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(counts["w1"], 300);
    assert_eq!(counts["w2"], 100);
}

#[tokio::test]
async fn no_backends_is_503_with_a_clear_error() {
    let gw = spawn_gateway(gateway_settings()).await;
    let r = client().get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_backends");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("POST /api/servers"));
}

#[tokio::test]
async fn unreachable_backend_is_502() {
    let gw = spawn_gateway(gateway_settings()).await;
    let dead = closed_port().await;
    client()
        .post(gw.url("/api/servers"))
        .json(&json!({"name": "dead", "url": format!("http://{dead}")}))
        .send()
        .await
        .unwrap();
    let r = client().get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let stats: Value = json(client().get(gw.url("/api/stats/1m")).send().await.unwrap()).await;
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["errors"], 1);
    // Every attempt (the first and its retries) shows on the backend.
    assert_eq!(stats["servers"]["dead"]["status"]["no_response"], 3);
    // Three connect failures in a row ejected it: nothing healthy is left.
    let r = client().get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(json(r).await["error"]["code"], "no_healthy_backends");
}

#[tokio::test]
async fn slow_backend_is_504_after_the_request_timeout() {
    let mut settings = gateway_settings();
    settings.upstream.request_timeout = Duration::from_millis(300);
    let gw = spawn_gateway(settings).await;
    let b = spawn_backend("slow").await;
    register(&gw, "slow", &b).await;
    let started = std::time::Instant::now();
    let r = client()
        .get(gw.url("/api/data?delay_ms=3000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout did not cut the wait short"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    // A fast request on the same backend still works.
    let r = client().get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn upstream_statuses_and_redirects_pass_through_untouched() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    for status in [201u16, 404, 418, 500, 503] {
        let r = c
            .get(gw.url(&format!("/api/data?status={status}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
    }
    // Unknown upstream paths are the backend's 404, not the gateway's.
    let r = c.get(gw.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-served-by"));
}

#[tokio::test]
async fn stats_count_exactly_what_was_proxied() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    let mut sent = 0;
    for i in 0..90 {
        let path = if i % 10 == 0 {
            "/api/data?status=500"
        } else {
            "/api/data"
        };
        c.get(gw.url(path)).send().await.unwrap();
        sent += 1;
    }
    // The gateway's own routes are not counted.
    for path in [
        "/api/servers",
        "/metrics",
        "/healthz",
        "/readyz",
        "/api/stats/5m",
    ] {
        c.get(gw.url(path)).send().await.unwrap();
    }
    for window in ["1m", "5m", "1h"] {
        let s: Value = json(
            c.get(gw.url(&format!("/api/stats/{window}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s["window"], window);
        assert_eq!(s["requests"], sent, "{window}: {s}");
        assert_eq!(s["errors"], 9);
        assert_eq!(s["status"]["2xx"], 81);
        assert_eq!(s["status"]["5xx"], 9);
        assert!((s["error_rate"].as_f64().unwrap() - 0.1).abs() < 1e-9);
        let latency = &s["latency_ms"];
        for key in ["p50", "p90", "p95", "p99", "max", "mean"] {
            assert!(latency[key].as_f64().unwrap() > 0.0, "{key}: {latency}");
        }
        assert!(latency["p50"].as_f64() <= latency["p99"].as_f64());
        let servers = s["servers"].as_object().unwrap();
        assert_eq!(servers.len(), 3);
        let per_server: u64 = servers
            .values()
            .map(|v| v["requests"].as_u64().unwrap())
            .sum();
        assert_eq!(per_server, sent);
        for v in servers.values() {
            assert_eq!(v["requests"], 30);
            assert_eq!(v["state"], "up");
        }
    }
    let r = c.get(gw.url("/api/stats/2m")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["error"]["code"], "unknown_window");
}

/// Parses the Prometheus text format into (name{labels}, value) pairs.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn metrics_follow_the_conventions_and_count() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    for _ in 0..6 {
        c.get(gw.url("/api/data")).send().await.unwrap();
    }
    c.get(gw.url("/api/data?status=503")).send().await.unwrap();
    let r = c.get(gw.url("/metrics")).send().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let m = parse_metrics(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing in\n{text}"));
    assert_eq!(
        get(
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/*"}"#
        ),
        6.0
    );
    assert_eq!(
        get(
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="503",http_route="/*"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="201",http_route="/api/servers"}"#
        ),
        3.0
    );
    let upstream_calls: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("http_client_request_duration_seconds_count{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(upstream_calls, 7.0);
    assert_eq!(get(r#"gateway_backends{state="up"}"#), 3.0);
    assert_eq!(get("http_server_active_requests"), 1.0); // this scrape itself
    assert!(m.contains_key("process_resident_memory_bytes"));
    // Bounded labels: raw paths never become label values.
    assert!(!text.contains("/api/data"), "a raw path leaked into labels");
    for line in text
        .lines()
        .filter(|l| l.starts_with("# TYPE") && l.ends_with("counter"))
    {
        assert!(
            line.split_whitespace().nth(2).unwrap().ends_with("_total"),
            "{line}"
        );
    }
}

/// Sends `request` as raw bytes and returns the response head, lower-cased.
async fn raw_head(gw: &TestGateway, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before a response head: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).to_lowercase()
}

#[tokio::test]
async fn unusual_request_targets_are_forwarded_or_refused_clearly() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    // Absolute-form (as sent to a forward proxy): proxied by its path.
    let head = raw_head(
        &gw,
        "GET http://elsewhere.example/api/data?x=1 HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("x-served-by: backend-"), "{head}");
    // OPTIONS * goes upstream as it is (the backend has no answer for it).
    let head = raw_head(&gw, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(head.contains("x-served-by: backend-"), "{head}");
    // CONNECT asks for a tunnel: refused by the gateway, never forwarded.
    let head = raw_head(
        &gw,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 405"), "{head}");
    assert!(!head.contains("x-served-by"), "{head}");
    assert!(
        head.contains("allow: get, head, post, put, patch, delete, options, trace\r\n"),
        "{head}"
    );
    // HTTP/1.0 without Host.
    let head = raw_head(&gw, "GET /api/data HTTP/1.0\r\n\r\n").await;
    assert!(head.starts_with("http/1.0 200"), "{head}");
    // Absolute-form carries its own authority: no Host needed.
    let head = raw_head(
        &gw,
        "GET http://elsewhere.example/api/data HTTP/1.1\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

/// The control of the `refused_before_routing` table of
/// `tests/data/bad_requests.json` (`bad_requests.rs`): a body coded chunked
/// once, and nothing else, goes through.
#[tokio::test]
async fn a_plain_chunked_body_is_forwarded() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let request =
        "POST /api/data HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let answer = raw_exchange(&gw, request).await;
    assert!(
        answer.to_lowercase().contains("x-served-by"),
        "a chunked body was not forwarded: {answer}"
    );
    let stats = json(client().get(gw.url("/api/stats/1m")).send().await.unwrap()).await;
    assert_eq!(stats["requests"], 1, "{stats}");
}

/// Sends `request` with `Connection: close` appended to its head and returns
/// everything the gateway sent back.
async fn raw_exchange(gw: &TestGateway, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = request.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut seen))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn stats_and_metrics_switched_off_answer_404_while_proxying_goes_on() {
    let mut settings = gateway_settings();
    settings.stats.enabled = false;
    settings.metrics.enabled = false;
    let (gw, _backends) = gateway_with_three(settings).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for (path, code, key) in [
        ("/api/stats/1m", "stats_disabled", "stats.enabled"),
        ("/metrics", "metrics_disabled", "metrics.enabled"),
    ] {
        let r = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body = json(r).await;
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(key));
    }
    // Each switch alone: the other endpoint keeps working.
    let mut settings = gateway_settings();
    settings.metrics.enabled = false;
    let (gw, _backends) = gateway_with_three(settings).await;
    c.get(gw.url("/api/data")).send().await.unwrap();
    let s = json(c.get(gw.url("/api/stats/1m")).send().await.unwrap()).await;
    assert_eq!(s["requests"], 1);
    let mut settings = gateway_settings();
    settings.stats.enabled = false;
    let (gw, _backends) = gateway_with_three(settings).await;
    c.get(gw.url("/api/data")).send().await.unwrap();
    let text = metrics_text(&gw).await;
    assert!(text.contains(r#"http_route="/*""#), "{text}");
}

#[tokio::test]
async fn deleted_backends_get_no_new_requests_but_in_flight_ones_finish() {
    let (gw, backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    // Park a slow request on server1 (round robin starts there).
    let slow = tokio::spawn({
        let url = gw.url("/api/data?delay_ms=700");
        let c = c.clone();
        async move { c.get(url).send().await.unwrap() }
    });
    eventually(
        "the slow request at server1",
        Duration::from_secs(5),
        || async { (in_flight(&gw).await["server1"] == 1).then_some(()) },
    )
    .await;
    let r = c
        .delete(gw.url("/api/servers/server1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.headers()["x-served-by"], "backend-1");
    for _ in 0..20 {
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_ne!(r.headers()["x-served-by"], "backend-1");
    }
    drop(backends);
}

#[tokio::test]
async fn an_upload_the_backend_refuses_early_gets_the_backends_answer() {
    // The backend's echo takes at most 1 MiB and answers 413 without
    // reading the rest; the gateway must pass that answer on rather than
    // fail on the upload it could no longer write.
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    let big = vec![b'x'; 8 * 1024 * 1024];
    let with_length = c.post(gw.url("/api/echo")).body(big.clone());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let chunked =
        c.post(gw.url("/api/echo"))
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )));
    for (how, request) in [("content-length", with_length), ("chunked", chunked)] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 413, "{how}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_body", "{how}: {body}");
    }
    // And the gateway carries on.
    let r = c.get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
