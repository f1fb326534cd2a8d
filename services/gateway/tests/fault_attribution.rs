//! Who is charged for what goes wrong on the proxied path: a request is
//! sent again only by the retry policy, a client's broken, slow or
//! oversized body is the client's fault (never the backend's), a backend's
//! body that stalls or breaks after its head is the backend's, and every
//! phase of a request is bounded.
//!
//! The backends here are small scripted HTTP/1.1 servers on plain tokio
//! sockets (what they do is chosen by the request path) beside the real
//! project backend; clients are raw sockets where a well-behaved HTTP
//! client could not misbehave as needed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Requests seen by a scripted backend, by path.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, usize>>>);

impl Seen {
    fn count(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// A backend whose behaviour is chosen by the path:
/// - `/close`: reads the request and closes the connection unanswered;
/// - `/hang`: reads the request and never answers;
/// - `/stall`: answers a head announcing 10 bytes, sends 4, then stalls;
/// - `/cut`: the same, then closes;
/// - `/badchunk`: a chunked head whose first chunk-size line is garbage;
/// - anything else: `200 ok`, keep-alive.
async fn scripted_backend() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, shared.clone()));
        }
    });
    (addr, seen)
}

async fn serve(mut socket: TcpStream, seen: Seen) {
    let mut buf = Vec::new();
    loop {
        let Some((path, consumed)) = read_request(&mut socket, &mut buf).await else {
            return;
        };
        buf.drain(..consumed);
        *seen.0.lock().unwrap().entry(path.clone()).or_default() += 1;
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";
        match path.as_str() {
            "/close" => return,
            "/hang" => {
                // The behaviour under test: a backend that never answers.
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            "/badchunk" => {
                let bad = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
                let _ = socket.write_all(bad.as_bytes()).await;
                return;
            }
            "/stall" | "/cut" => {
                let _ = socket.write_all(format!("{head}0123").as_bytes()).await;
                if path == "/stall" {
                    // The behaviour under test: a body that stops coming.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                return;
            }
            _ => {
                let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if socket.write_all(ok.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads one request (head and a `Content-Length` body) off `buf` and the
/// socket; its path and how many bytes it took.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            let total = end + 4 + length;
            while buf.len() < total {
                fill(socket, buf).await?;
            }
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            return Some((path, total));
        }
        fill(socket, buf).await?;
    }
}

async fn fill(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// One worker (so one upstream pool) and no active health checks, unless a
/// test says otherwise.
fn settings() -> gateway::config::Settings {
    let mut s = gateway_settings();
    s.workers = 1;
    s.health_check.enabled = false;
    s
}

/// Sends raw bytes and reads until the gateway closes the connection or
/// `wait` passes; what came back.
async fn exchange(gw: &TestGateway, request: &[u8], wait: Duration) -> String {
    let mut socket = TcpStream::connect(gw.addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    read_for(&mut socket, wait).await
}

async fn read_for(socket: &mut TcpStream, wait: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, socket.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn server(gw: &TestGateway, name: &str) -> Value {
    let response = client()
        .get(gw.url(&format!("/api/servers/{name}")))
        .send()
        .await
        .unwrap();
    let view = json(response).await;
    assert!(view.get("state").is_some(), "{view}");
    view
}

async fn metric(gw: &TestGateway, series: &str) -> f64 {
    let text = metrics_text(gw).await;
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Fills the single worker's pool with `n` idle connections to the backend.
async fn fill_pool(gw: &TestGateway, n: usize) {
    let requests = (0..n).map(|_| async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = client.get(gw.url("/warm")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    });
    futures_util::future::join_all(requests).await;
}

#[tokio::test]
async fn a_post_on_a_pooled_connection_the_backend_closes_reaches_it_once() {
    let (addr, seen) = scripted_backend().await;
    let mut s = settings();
    // Three failures in a row would eject the only backend half-way.
    s.outlier.enabled = false;
    let gw = spawn_gateway(s).await;
    register_addr(&gw, "scripted", addr).await;
    fill_pool(&gw, 5).await;
    assert!(seen.count("/warm") >= 1);

    let response = client()
        .post(gw.url("/close"))
        .body("charge the card")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(seen.count("/close"), 1, "the POST was replayed");
    assert_eq!(
        metric(&gw, "gateway_retries_total{reason=\"reset\"}").await,
        0.0
    );

    // An idempotent request is sent again, but only by the retry policy:
    // `retry.max_attempts` in all, each retry counted.
    let response = client().get(gw.url("/close")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(seen.count("/close"), 1 + 3);
    assert_eq!(
        metric(&gw, "gateway_retries_total{reason=\"reset\"}").await,
        2.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_clients_broken_slow_or_oversized_body_is_never_charged_to_the_backend() {
    let mut s = settings();
    s.limits.body_idle_timeout = Duration::from_millis(300);
    s.limits.max_body_bytes = 100_000;
    let (gw, _backends) = gateway_with_three(s).await;

    let chunked = "POST /api/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
    for _ in 0..5 {
        let answer = exchange(
            &gw,
            format!("{chunked}zz\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("invalid_body"), "{answer}");
        assert!(
            answer.to_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    for _ in 0..4 {
        let started = Instant::now();
        let answer = exchange(
            &gw,
            format!("{chunked}5\r\nhel").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    let over = format!(
        "{chunked}{:x}\r\n{}\r\n0\r\n\r\n",
        100_001,
        "a".repeat(100_001)
    );
    let answer = exchange(&gw, over.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let announced = "POST /api/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100001\r\n\r\n";
    let answer = exchange(&gw, announced.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limits.max_body_bytes"), "{answer}");

    for i in 1..=3 {
        let view = server(&gw, &format!("server{i}")).await;
        assert_eq!(view["state"], "up", "{view}");
        assert_eq!(view["consecutive_failures"], 0, "{view}");
        assert_eq!(view["failures_total"], 0, "{view}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn slow_uploaders_do_not_take_in_flight_places_from_other_clients() {
    let mut s = settings();
    s.limits.max_in_flight = 2;
    s.limits.body_read_timeout = Duration::from_secs(30);
    let (gw, _backends) = gateway_with_three(s).await;
    let mut uploaders = Vec::new();
    for _ in 0..5 {
        let mut socket = TcpStream::connect(gw.addr).await.unwrap();
        let head = "POST /api/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\nabc";
        socket.write_all(head.as_bytes()).await.unwrap();
        uploaders.push(socket);
    }
    for _ in 0..5 {
        let response = client().get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    drop(uploaders);
    gw.stop().await;
}

#[tokio::test]
async fn a_response_body_that_stalls_or_breaks_is_cut_and_charged_to_the_backend() {
    let (addr, seen) = scripted_backend().await;
    let mut s = settings();
    s.upstream.body_idle_timeout = Duration::from_millis(300);
    s.limits.max_in_flight = 1;
    let gw = spawn_gateway(s).await;
    register_addr(&gw, "scripted", addr).await;

    // While the stalled body is relayed, the request holds its place.
    let mut stalled = TcpStream::connect(gw.addr).await.unwrap();
    stalled
        .write_all(b"GET /stall HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let response = client().get(gw.url("/other")).send().await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "a streaming answer was not counted in flight"
    );

    let started = Instant::now();
    let rest = read_for(&mut stalled, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not cut by the idle timeout"
    );
    assert!(rest.ends_with("0123"), "{rest:?}");
    let cut = exchange(
        &gw,
        b"GET /cut HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    // hyper may not flush the head of an answer whose body fails at once:
    // either way the client sees a connection closed before the end.
    assert!(cut.is_empty() || cut.ends_with("0123"), "{cut:?}");
    assert_eq!(seen.count("/cut"), 1);

    // Broken in what came with the head: nothing reached the client yet,
    // so it is an invalid answer (502), not a response cut short.
    let response = client().post(gw.url("/badchunk")).send().await.unwrap();
    assert_eq!(response.status(), 502);

    let view = server(&gw, "scripted").await;
    assert_eq!(view["failures_total"], 3, "{view}");
    assert_eq!(view["ejections"], 1, "three failures in a row: {view}");
    let stats = json(client().get(gw.url("/api/stats/1m")).send().await.unwrap()).await;
    assert_eq!(stats["status"]["no_response"], 2, "{stats}");
    assert_eq!(stats["status"]["2xx"], 0, "{stats}");
    gw.stop().await;
}

/// A backend that accepts connections, reads, and never answers; how many
/// connections it got.
async fn hung_backend() -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(0));
    let shared = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            *shared.lock().unwrap() += 1;
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = socket.read_to_end(&mut sink).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_request_waiting_on_a_backend_marked_down_is_retried_elsewhere_at_once() {
    let (addr, accepted) = hung_backend().await;
    let mut s = settings();
    s.retry.per_try_timeout = Duration::from_secs(30);
    s.upstream.request_timeout = Duration::from_secs(30);
    s.health_check.enabled = true;
    s.health_check.interval = Duration::from_millis(200);
    s.health_check.timeout = Duration::from_millis(100);
    let gw = spawn_gateway(s).await;
    let good = spawn_backend("good").await;
    register(&gw, "good", &good).await;
    register_addr(&gw, "hung", addr).await;
    // Round robin sends one of two requests to the hung backend before its
    // checks fail; that one must not wait out the 30 s per-try timeout.
    let started = Instant::now();
    let requests = (0..4).map(|_| async {
        let response = client().get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    });
    futures_util::future::join_all(requests).await;
    assert!(*accepted.lock().unwrap() >= 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(server(&gw, "hung").await["state"], "down");
    assert!(metric(&gw, "gateway_retries_total{reason=\"unhealthy\"}").await >= 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn an_absolute_form_target_without_a_path_is_sent_as_slash() {
    let (addr, seen) = scripted_backend().await;
    let gw = spawn_gateway(settings()).await;
    register_addr(&gw, "scripted", addr).await;
    let answer = exchange(
        &gw,
        b"GET http://example.test?x=1 HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(seen.count("/?x=1"), 1, "{:?}", seen.0.lock().unwrap());
    gw.stop().await;
}
