//! The gateway's HTTP/1.1 client against backends that answer in every way
//! the protocol allows, and in ways it does not: chunked bodies with
//! extensions and trailers, bodies delimited by the connection's close,
//! HTTP/1.0, informational answers, conflicting framing, oversized heads,
//! bodies cut short, all written one byte at a time where it matters.
//!
//! The backend here is a scripted server on plain tokio sockets, since no
//! real server produces most of these answers on purpose.
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
struct Script {
    /// The exact bytes of the answer.
    answer: Vec<u8>,
    /// Written one byte at a time, each its own segment.
    trickle: bool,
    /// The connection is closed after the answer.
    close: bool,
    /// Answered as soon as the head is in, before the body is read (which
    /// is then read all the same).
    before_body: bool,
}

fn script(answer: &[u8]) -> Script {
    Script {
        answer: answer.to_vec(),
        trickle: false,
        close: false,
        before_body: false,
    }
}

struct ScriptedBackend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Every request's raw bytes (head and body) as received.
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Answers each request by its path's script (`404` for others). Request
/// bodies are read by `Content-Length` or chunked framing, so what the
/// gateway sent can be checked byte for byte.
async fn scripted_backend(scripts: Vec<(&'static str, Script)>) -> ScriptedBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let scripts = Arc::new(scripts);
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(socket, scripts.clone(), r.clone()));
        }
    });
    ScriptedBackend {
        addr,
        accepted,
        requests,
    }
}

async fn serve(
    mut socket: TcpStream,
    scripts: Arc<Vec<(&'static str, Script)>>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let mut buf = Vec::new();
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if fill(&mut socket, &mut buf).await.is_none() {
                return;
            }
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let script = scripts
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| script(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"));
        if script.before_body && socket.write_all(&script.answer).await.is_err() {
            return;
        }
        let Some(raw) = read_request(&mut socket, &mut buf).await else {
            return;
        };
        requests.lock().unwrap().push(raw);
        if script.before_body {
            // Answered already.
        } else if script.trickle {
            for byte in &script.answer {
                if socket.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        } else if socket.write_all(&script.answer).await.is_err() {
            return;
        }
        if script.close {
            return;
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
    let mut settings = gateway_settings();
    settings.health_check.enabled = false;
    settings.retry.max_attempts = 1;
    let gw = spawn_gateway(settings).await;
    register_addr(&gw, "scripted", backend.addr).await;
    gw
}

#[tokio::test]
async fn valid_framings_reach_the_client_whole_and_keep_alive_is_honoured() {
    let mut chunked = script(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kind: chunked\r\n\r\n\
          5;name=\"value\"\r\nhello\r\n1\r\n \r\n6 ; a=b\r\nworld!\r\n0\r\nx-trailer: t\r\n\r\n",
    );
    chunked.trickle = true;
    let mut until_close = script(b"HTTP/1.1 200 OK\r\nx-kind: close\r\n\r\nuntil the end");
    until_close.close = true;
    let mut http10 = script(b"HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\n1.0!");
    http10.close = true;
    let backend = scripted_backend(vec![
        ("/chunked", chunked),
        ("/until-close", until_close),
        ("/http10", http10),
        (
            "/continue",
            script(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"),
        ),
        (
            "/both",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ),
        ("/plain", script(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain")),
        (
            "/no-content",
            script(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"),
        ),
    ])
    .await;
    let gw = gateway_for(&backend).await;
    let c = client();

    let r = c.get(gw.url("/chunked")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kind"], "chunked");
    assert_eq!(r.text().await.unwrap(), "hello world!");

    let r = c.get(gw.url("/until-close")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "until the end");

    let r = c.get(gw.url("/http10")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "1.0!");

    let r = c.get(gw.url("/continue")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.text().await.unwrap(), "ok");

    // Transfer-Encoding wins over Content-Length, and the client never
    // sees the length that did not describe the body.
    let r = c.get(gw.url("/both")).send().await.unwrap();
    assert_ne!(
        r.headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap()),
        Some("99")
    );
    assert_eq!(r.text().await.unwrap(), "abc");

    // Five answers so far: the chunked one left its connection reusable;
    // until-close, HTTP/1.0 and the conflicting one each cost their own.
    let before = backend.accepted.load(Ordering::SeqCst);
    for _ in 0..5 {
        let r = c.get(gw.url("/plain")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "plain");
    }
    assert!(
        backend.accepted.load(Ordering::SeqCst) <= before + 1,
        "keep-alive connections were not reused"
    );

    // A 204 states no length (RFC 9110 8.6), even where the backend did.
    let r = c.get(gw.url("/no-content")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers().get("content-length"), None);
}

#[tokio::test]
async fn a_length_stated_more_than_once_reaches_the_client_stated_once() {
    let backend = scripted_backend(vec![
        (
            "/list",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello"),
        ),
        (
            "/lines",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello"),
        ),
        (
            "/zeros",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 005\r\n\r\nhello"),
        ),
        (
            "/head",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 5 ,5\r\n\r\n"),
        ),
        (
            "/not-modified",
            script(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n"),
        ),
    ])
    .await;
    let gw = gateway_for(&backend).await;
    let c = client();
    let lengths = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all("content-length")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    for path in ["/list", "/lines", "/zeros"] {
        let r = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(lengths(&r), ["5"], "{path}");
        assert_eq!(r.text().await.unwrap(), "hello", "{path}");
    }
    let r = c.head(gw.url("/head")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(lengths(&r), ["5"]);
    let r = c.get(gw.url("/not-modified")).send().await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(lengths(&r), ["5"]);
}

#[tokio::test]
async fn broken_answers_are_502_and_the_gateway_carries_on() {
    let mut head_too_large = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..2000 {
        head_too_large
            .extend_from_slice(format!("x-filler-{i}: {}\r\n", "y".repeat(40)).as_bytes());
    }
    head_too_large.extend_from_slice(b"content-length: 0\r\n\r\n");
    let backend = scripted_backend(vec![
        ("/garbage", script(b"hello there\r\n\r\n")),
        (
            "/bad-length",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n"),
        ),
        (
            "/two-lengths",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"),
        ),
        (
            "/switching",
            script(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n"),
        ),
        ("/huge-head", script(&head_too_large)),
        (
            "/bad-status",
            script(b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n"),
        ),
        // Codings other than one chunked: passed on, the client would get
        // gzip bytes (or the like) with nothing saying so.
        (
            "/gzip-chunked",
            script(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "/gzip-until-close",
            script(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nhello"),
        ),
        (
            "/chunked-twice",
            script(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "/plain",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain"),
        ),
    ])
    .await;
    let gw = gateway_for(&backend).await;
    let c = client();
    for path in [
        "/garbage",
        "/bad-length",
        "/two-lengths",
        "/switching",
        "/huge-head",
        "/bad-status",
        "/gzip-chunked",
        "/gzip-until-close",
        "/chunked-twice",
    ] {
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
    let mut cut = script(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten!!");
    cut.close = true;
    let mut bad_chunk =
        script(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX");
    bad_chunk.close = true;
    let backend = scripted_backend(vec![
        ("/cut", cut),
        ("/bad-chunk", bad_chunk),
        (
            "/plain",
            script(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain"),
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
async fn request_framing_is_rewritten_from_the_body_actually_sent() {
    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let backend = scripted_backend(vec![("/upload", script(ok))]).await;
    let gw = gateway_for(&backend).await;
    let c = client();

    // Small body: buffered (so it could be retried), sent with its length.
    let r = c.post(gw.url("/upload")).body("tiny").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
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
    assert_eq!(r.text().await.unwrap(), "ok");
    // A GET without a body carries no framing headers at all.
    let r = c.get(gw.url("/upload")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");

    let requests = backend.requests.lock().unwrap().clone();
    let text: Vec<String> = requests
        .iter()
        .map(|r| String::from_utf8_lossy(r).to_string())
        .collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(
        text[0].starts_with("POST /upload HTTP/1.1\r\nhost: "),
        "{}",
        text[0]
    );
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
async fn an_early_success_answer_still_gets_the_whole_streamed_body() {
    // A backend that answers as soon as it has the head, then reads the
    // body: the gateway passes the answer on and still sends every byte.
    let mut early = script(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    early.before_body = true;
    let backend = scripted_backend(vec![("/early", early)]).await;
    let gw = gateway_for(&backend).await;
    let body = vec![b'z'; 512 * 1024];
    let r = client()
        .post(gw.url("/early"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    // The backend records the request once it has read all of it.
    for _ in 0..100 {
        if !backend.requests.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let requests = backend.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "the backend never got the whole body");
    assert!(requests[0].ends_with(&body), "the body was cut short");
}
