//! The gateway around its upstream client: how the client's failures reach
//! the gateway's own client (a 502 before an answer, a broken read after
//! one), what request bodies the gateway hands the client, connections
//! kept across proxied requests and closed when a client abandons an
//! answer, and the backend's host and path prefix. How the client itself
//! frames and reads each answer is the `http1-client` crate's tests.
//!
//! The backend is a scripted server on plain tokio sockets, answering each
//! path with fixed bytes, since no real server sends broken answers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the scripted backend answers one path.
#[derive(Clone)]
enum Answer {
    /// These bytes; the connection stays open.
    Bytes(&'static [u8]),
    /// These bytes, then the connection is closed.
    ThenClose(&'static [u8]),
    /// A 64 MiB body, in 64 KiB writes.
    Download,
}

#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Connections the gateway closed.
    closed_by_peer: AtomicUsize,
    /// Every request's raw bytes (head and body) as received.
    requests: Mutex<Vec<Vec<u8>>>,
}

struct ScriptedBackend {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

const PLAIN: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain";

/// Answers each request by its path's script (`/plain` and others: a
/// 5-byte body). Request bodies are read by `Content-Length` or chunked
/// framing, so what the gateway sent can be checked byte for byte.
async fn scripted_backend(scripts: Vec<(&'static str, Answer)>) -> ScriptedBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let scripts = Arc::new(scripts);
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            let (seen, scripts) = (shared.clone(), scripts.clone());
            tokio::spawn(async move {
                if serve(socket, &scripts, &seen).await.is_none() {
                    seen.closed_by_peer.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    ScriptedBackend { addr, seen }
}

/// `None` when the gateway closed the connection (or a write failed).
async fn serve(mut socket: TcpStream, scripts: &[(&str, Answer)], seen: &Seen) -> Option<()> {
    let mut buf = Vec::new();
    loop {
        let raw = read_request(&mut socket, &mut buf).await?;
        let head = String::from_utf8_lossy(&raw).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        seen.requests.lock().unwrap().push(raw);
        let answer = scripts
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(Answer::Bytes(PLAIN), |(_, a)| a.clone());
        match answer {
            Answer::Bytes(bytes) => socket.write_all(bytes).await.ok()?,
            Answer::ThenClose(bytes) => {
                socket.write_all(bytes).await.ok()?;
                return Some(());
            }
            Answer::Download => {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\n\r\n";
                socket.write_all(head).await.ok()?;
                let block = vec![b'x'; 64 * 1024];
                for _ in 0..1024 {
                    socket.write_all(&block).await.ok()?;
                }
            }
        }
    }
}

/// One whole request (head and body) off the socket, or `None` at its end.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(socket, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let end = if let Some(n) = length {
        while buf.len() < head_end + n {
            fill(socket, buf).await?;
        }
        head_end + n
    } else if head.contains("transfer-encoding: chunked") {
        loop {
            if let Some(i) = buf[head_end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                let at = head_end + i;
                // A chunk-size line of 0 starts at the head's end or after a CRLF.
                if at == head_end || &buf[at - 2..at] == b"\r\n" {
                    break at + 5;
                }
            }
            fill(socket, buf).await?;
        }
    } else {
        head_end
    };
    Some(buf.drain(..end).collect())
}

async fn fill(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

async fn gateway_for(backend: &ScriptedBackend) -> TestGateway {
    gateway_with(backend, |_| {}).await
}

/// [`gateway_for`], with `change` made to its settings first.
async fn gateway_with(
    backend: &ScriptedBackend,
    change: impl FnOnce(&mut gateway::config::Settings),
) -> TestGateway {
    let mut settings = gateway_settings();
    // Health probes would be requests and connections of their own.
    settings.health_check.enabled = false;
    settings.retry.max_attempts = 1;
    change(&mut settings);
    let gw = spawn_gateway(settings).await;
    register_addr(&gw, "scripted", backend.addr).await;
    gw
}

#[tokio::test]
async fn answers_the_client_refuses_are_502_and_the_gateway_carries_on() {
    let backend = scripted_backend(vec![
        // A head that is not HTTP.
        ("/garbage", Answer::Bytes(b"hello there\r\n\r\n")),
        // A good head whose first body bytes, come with it, are broken.
        (
            "/bad-first-chunk",
            Answer::Bytes(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
        ),
        // No head at all.
        ("/closed", Answer::ThenClose(b"")),
    ])
    .await;
    let gw = gateway_for(&backend).await;
    let c = client();
    for path in ["/garbage", "/bad-first-chunk", "/closed"] {
        let r = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 502, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "upstream_unreachable",
            "{path}: {body}"
        );
        let r = c.get(gw.url("/plain")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "plain", "after {path}");
    }
}

#[tokio::test]
async fn a_body_cut_short_or_badly_chunked_fails_the_clients_read_only() {
    let backend = scripted_backend(vec![
        (
            "/cut",
            Answer::ThenClose(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten!!"),
        ),
        (
            "/bad-chunk",
            Answer::ThenClose(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX"),
        ),
    ])
    .await;
    let gw = gateway_for(&backend).await;
    let c = client();
    for path in ["/cut", "/bad-chunk"] {
        // The head was good, but the body broke: the client must see a
        // failure (the connection cut before or after the head reached
        // it), never a response that looks complete.
        match c.get(gw.url(path)).send().await {
            Err(_) => {}
            Ok(r) => {
                assert_eq!(r.status(), 200);
                assert!(
                    r.bytes().await.is_err(),
                    "{path}: a truncated body read as complete"
                );
            }
        }
        let r = c.get(gw.url("/plain")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "plain", "after {path}");
    }
}

#[tokio::test]
async fn request_bodies_go_upstream_as_the_gateway_read_them() {
    let backend = scripted_backend(vec![]).await;
    let gw = gateway_for(&backend).await;
    let c = client();

    // Small body: buffered (so it could be retried), sent with its length.
    let r = c.post(gw.url("/upload")).body("tiny").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "plain");
    // A streamed body of unknown length goes upstream chunked.
    let parts: Vec<Result<&'static str, std::io::Error>> = vec![Ok("stream"), Ok("ed")];
    let r = c
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            parts,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "plain");
    // A GET without a body carries no framing headers at all.
    let r = c.get(gw.url("/upload")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "plain");

    let text: Vec<String> = backend
        .seen
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(r).to_string())
        .collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(text[0].contains("\r\ncontent-length: 4\r\n"), "{}", text[0]);
    assert!(text[0].ends_with("\r\n\r\ntiny"), "{}", text[0]);
    assert!(
        text[1].contains("\r\ntransfer-encoding: chunked\r\n"),
        "{}",
        text[1]
    );
    assert!(!text[1].contains("content-length"), "{}", text[1]);
    let body = &text[1][text[1].find("\r\n\r\n").unwrap() + 4..];
    let unchunked: String = body
        .split("\r\n")
        .collect::<Vec<_>>()
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| pair[1])
        .collect();
    assert_eq!(unchunked, "streamed");
    assert!(
        !text[2].contains("content-length") && !text[2].contains("transfer-encoding"),
        "{}",
        text[2]
    );
}

#[tokio::test]
async fn proxied_requests_share_one_keep_alive_connection() {
    let backend = scripted_backend(vec![
        ("/empty", Answer::Bytes(b"HTTP/1.1 204 No Content\r\n\r\n")),
        // What a HEAD is answered with: the head alone.
        (
            "/head",
            Answer::Bytes(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
        ),
    ])
    .await;
    let gw = gateway_for(&backend).await;
    let c = client();
    for _ in 0..10 {
        let r = c.get(gw.url("/plain")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "plain");
        let r = c.get(gw.url("/empty")).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let r = c.head(gw.url("/head")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(backend.seen.requests.lock().unwrap().len(), 30);
    assert_eq!(backend.seen.accepted.load(Ordering::SeqCst), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_abandoning_an_answer_closes_its_upstream_connection() {
    let backend = scripted_backend(vec![("/big", Answer::Download)]).await;
    let gw = gateway_for(&backend).await;
    let c = client();
    let mut r = c.get(gw.url("/big")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    // Half a body cannot carry another request: that connection closes.
    let closed =
        || async { (backend.seen.closed_by_peer.load(Ordering::SeqCst) == 1).then_some(()) };
    eventually(
        "the abandoned connection to be closed",
        Duration::from_secs(10),
        closed,
    )
    .await;
    let r = c.get(gw.url("/plain")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "plain");
    assert_eq!(backend.seen.accepted.load(Ordering::SeqCst), 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let backend = scripted_backend(vec![("/big", Answer::Download)]).await;
    let gw = gateway_with(&backend, |s| s.http.write_timeout = Duration::from_secs(1)).await;
    // Asks for 64 MiB and reads none of it: the buffers fill, and the
    // gateway's writes wait.
    let mut reader = TcpStream::connect(gw.addr).await.unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await
        .unwrap();
    until_in_flight(&gw, 1).await;
    // Within the write timeout (and some slack), the client's connection
    // is closed, the upstream one with it, and the in-flight place freed.
    let closed =
        || async { (backend.seen.closed_by_peer.load(Ordering::SeqCst) == 1).then_some(()) };
    eventually(
        "the stalled answer's upstream connection to be closed",
        Duration::from_secs(15),
        closed,
    )
    .await;
    let idle = || async { (in_flight(&gw).await.values().sum::<u64>() == 0).then_some(()) };
    eventually(
        "the in-flight place to be freed",
        Duration::from_secs(5),
        idle,
    )
    .await;
    drop(reader);
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
