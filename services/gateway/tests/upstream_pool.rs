//! The gateway's own upstream client: keep-alive reuse, connections the
//! backend closes, idle expiry, abandoned responses, and what is sent.
//!
//! Connection reuse is only visible from the backend's side of the socket,
//! so most tests here talk to a small HTTP/1.1 server written on plain
//! tokio sockets that counts the connections it accepts and the ones its
//! peer closes, and can be told to close after every response.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the counting server has seen.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Connections whose peer (the gateway) closed them.
    closed_by_peer: AtomicUsize,
    requests: AtomicUsize,
}

struct CountingServer {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

/// Serves `GET /` (200, "ok"), `GET /empty` (204), `HEAD` (headers only)
/// and `GET /big` (a 64 MiB body written in 64 KiB chunks). With
/// `close_after_each`, every connection is closed right after its first
/// response, without a `Connection: close` header (as a backend whose
/// keep-alive timer fired would).
async fn counting_server(close_after_each: bool) -> CountingServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_connection(socket, shared.clone(), close_after_each));
        }
    });
    CountingServer { addr, seen }
}

async fn serve_connection(mut socket: TcpStream, seen: Arc<Seen>, close_after_each: bool) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    seen.closed_by_peer.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        buffer.drain(..head_end);
        seen.requests.fetch_add(1, Ordering::SeqCst);
        let mut request_line = head.split_whitespace();
        let method = request_line.next().unwrap_or_default().to_owned();
        let path = request_line.next().unwrap_or_default().to_owned();
        let written = if path == "/big" {
            let header = "HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\n\r\n";
            if socket.write_all(header.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b'x'; 64 * 1024];
            for _ in 0..1024 {
                if socket.write_all(&block).await.is_err() {
                    seen.closed_by_peer.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            Ok(())
        } else if path == "/empty" {
            socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await
        } else if method == "HEAD" {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
                .await
        } else {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
        };
        if written.is_err() || close_after_each {
            return;
        }
    }
}

async fn gateway_for(
    server: &CountingServer,
    mut settings: gateway::config::Settings,
) -> TestGateway {
    // Health probes would be requests and connections of their own.
    settings.health_check.enabled = false;
    let gw = spawn_gateway(settings).await;
    register_addr(&gw, "counted", server.addr).await;
    gw
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn sequential_requests_share_one_keep_alive_connection() {
    let server = counting_server(false).await;
    let gw = gateway_for(&server, gateway_settings()).await;
    let c = client();
    for _ in 0..40 {
        let r = c.get(gw.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    // Bodiless answers (204, HEAD) must hand their connection back too.
    for _ in 0..20 {
        let r = c.get(gw.url("/empty")).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let r = c.head(gw.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(server.seen.requests.load(Ordering::SeqCst), 80);
    assert_eq!(server.seen.accepted.load(Ordering::SeqCst), 1);
    gw.stop().await;
}

#[tokio::test]
async fn connections_the_backend_closed_are_not_reused() {
    let server = counting_server(true).await;
    let gw = gateway_for(&server, gateway_settings()).await;
    let c = client();
    for i in 0..30 {
        let r = c.get(gw.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), "ok");
        // Some requests right after the close, some after it has landed.
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(server.seen.requests.load(Ordering::SeqCst), 30);
    assert_eq!(server.seen.accepted.load(Ordering::SeqCst), 30);
    gw.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_pool_idle_timeout() {
    let server = counting_server(false).await;
    let mut settings = gateway_settings();
    settings.upstream.pool_idle_timeout = Duration::from_millis(300);
    let gw = gateway_for(&server, settings).await;
    let c = client();
    let r = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    assert_eq!(server.seen.closed_by_peer.load(Ordering::SeqCst), 0);
    // The sweeper closes it without any further traffic...
    wait_for("the idle connection to be closed", || {
        server.seen.closed_by_peer.load(Ordering::SeqCst) == 1
    })
    .await;
    // ...and the next request opens a fresh one.
    let r = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    assert_eq!(server.seen.accepted.load(Ordering::SeqCst), 2);
    gw.stop().await;
}

#[tokio::test]
async fn an_abandoned_response_closes_its_connection_and_the_next_request_works() {
    let server = counting_server(false).await;
    let gw = gateway_for(&server, gateway_settings()).await;
    let c = client();
    let mut r = c.get(gw.url("/big")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    // Half a body cannot carry another request: that connection closes.
    wait_for("the abandoned connection to be closed", || {
        server.seen.closed_by_peer.load(Ordering::SeqCst) == 1
    })
    .await;
    for _ in 0..5 {
        let r = c.get(gw.url("/")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    assert_eq!(server.seen.accepted.load(Ordering::SeqCst), 2);
    gw.stop().await;
}

#[tokio::test]
async fn host_and_path_prefix_are_the_backends() {
    let gw = spawn_gateway(gateway_settings()).await;
    let backend = spawn_backend("echo").await;
    // The registered URL's path is a prefix of every forwarded path.
    let response = client()
        .post(gw.url("/api/servers"))
        .json(&serde_json::json!({"name": "prefixed", "url": format!("http://{}/api/echo/", backend.addr)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let r = client()
        .get(gw.url("/v2/items?id=7"))
        .header("host", "public.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["path"], "/api/echo/v2/items");
    assert_eq!(echo["query"], "id=7");
    assert_eq!(echo["headers"]["host"][0], backend.addr.to_string());
    assert_eq!(echo["headers"]["x-forwarded-host"][0], "public.example");
    gw.stop().await;
    backend.stop().await;
}
