//! A scripted backend on loopback (plain tokio sockets: no real server
//! writes most of the answers the tests need, on purpose), and the client
//! calls the tests share.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Response};
use http1_client::{Body, Client, Error, RequestBody, RequestHead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the backend answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// These bytes, once the whole request is read.
    Answer(Vec<u8>),
    /// These bytes, then the connection is closed.
    AnswerAndClose(Vec<u8>),
    /// These bytes as soon as the request's head is in; the body is read
    /// (and recorded) after.
    Early(Vec<u8>),
    /// These bytes as soon as the head is in; the body is never read, and
    /// the connection is kept until the client closes it.
    Refuse(Vec<u8>),
    /// The connection is closed without an answer.
    Close,
    /// A head, then this many 64 KiB blocks of body.
    Download { head: Vec<u8>, blocks: usize },
}

/// What the backend saw.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Connections the client closed (end of stream or a failed write).
    closed_by_peer: AtomicUsize,
    /// Every request's bytes (head and body) as received.
    requests: Mutex<Vec<Vec<u8>>>,
}

pub struct Backend {
    pub addr: SocketAddr,
    /// `host:port`, the client's pool key.
    pub authority: Arc<str>,
    seen: Arc<Seen>,
}

/// A backend answering each request as `script` says, given how many
/// requests came before it on its connection.
pub async fn backend(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let script = Arc::new(script);
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            let (seen, script) = (shared.clone(), script.clone());
            tokio::spawn(async move {
                if serve(socket, &seen, &*script).await.is_none() {
                    seen.closed_by_peer.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    Backend {
        addr,
        authority: addr.to_string().into(),
        seen,
    }
}

/// The same answer to every request.
pub async fn answering(reply: Reply) -> Backend {
    backend(move |_| reply.clone()).await
}

impl Backend {
    pub fn accepted(&self) -> usize {
        self.seen.accepted.load(Ordering::SeqCst)
    }

    pub fn closed_by_peer(&self) -> usize {
        self.seen.closed_by_peer.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.seen.requests.lock().unwrap().clone()
    }

    /// Opens a connection to this backend, as `Client::send` wants.
    pub fn connect(
        &self,
    ) -> impl FnOnce() -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<TcpStream, Error>> + Send>,
    > {
        let addr = self.addr;
        move || Box::pin(async move { Ok(TcpStream::connect(addr).await?) })
    }
}

/// Serves one connection; `None` when the client closed it (or a write
/// to it failed), `Some` when the script closed it.
async fn serve(
    mut socket: TcpStream,
    seen: &Seen,
    script: &(dyn Fn(usize) -> Reply + Send + Sync),
) -> Option<()> {
    let mut buf = Vec::new();
    for nth in 0.. {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            fill(&mut socket, &mut buf).await?;
        };
        let reply = script(nth);
        match &reply {
            Reply::Early(answer) => socket.write_all(answer).await.ok()?,
            Reply::Refuse(answer) => {
                socket.write_all(answer).await.ok()?;
                seen.requests.lock().unwrap().push(buf[..head_end].to_vec());
                while fill(&mut socket, &mut Vec::new()).await.is_some() {}
                return None;
            }
            _ => {}
        }
        let request = read_request(&mut socket, &mut buf, head_end).await?;
        seen.requests.lock().unwrap().push(request);
        match reply {
            Reply::Answer(answer) => socket.write_all(&answer).await.ok()?,
            Reply::AnswerAndClose(answer) => {
                socket.write_all(&answer).await.ok()?;
                return Some(());
            }
            Reply::Early(_) | Reply::Refuse(_) => {}
            Reply::Close => return Some(()),
            Reply::Download { head, blocks } => {
                socket.write_all(&head).await.ok()?;
                let block = vec![b'x'; 64 * 1024];
                for _ in 0..blocks {
                    socket.write_all(&block).await.ok()?;
                }
            }
        }
    }
    Some(())
}

/// One whole request (head and body, framed by its `Content-Length` or
/// chunks) off the front of `buf`, reading more as needed.
async fn read_request(
    socket: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_end: usize,
) -> Option<Vec<u8>> {
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let end = if let Some(n) = length {
        while buf.len() < head_end + n {
            fill(socket, buf).await?;
        }
        head_end + n
    } else if head.contains("\r\ntransfer-encoding: chunked\r\n") {
        let mut at = head_end;
        loop {
            // A chunk: its size line, data and CRLF; the last has size 0.
            let line_end = loop {
                if let Some(i) = buf[at..].windows(2).position(|w| w == b"\r\n") {
                    break at + i;
                }
                fill(socket, buf).await?;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[at..line_end]).ok()?, 16).ok()?;
            let next = line_end + 2 + size + 2;
            while buf.len() < next {
                fill(socket, buf).await?;
            }
            at = next;
            if size == 0 {
                break at;
            }
        }
    } else {
        head_end
    };
    Some(buf.drain(..end).collect())
}

async fn fill(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// A client with room for a few idle connections, kept a minute.
pub fn client() -> Client {
    Client::new(8, Duration::from_secs(60))
}

/// The `Host` the tests send.
pub fn host() -> HeaderValue {
    HeaderValue::from_static("backend.test")
}

/// Sends a request without headers of the caller's own.
pub async fn send(
    client: &Client,
    backend: &Backend,
    method: &Method,
    body: &mut RequestBody,
) -> Result<Response<Body>, Error> {
    let (host, headers) = (host(), HeaderMap::new());
    let head = RequestHead {
        method,
        target: "/",
        host: &host,
        headers: &headers,
        extra: &[],
    };
    client
        .send(&backend.authority, backend.connect(), &head, body)
        .await
}

/// Reads a body to its end: the bytes, or the error with what came before.
pub async fn read_body(body: &mut Body) -> Result<Bytes, (Bytes, String)> {
    let mut all = Vec::new();
    while let Some(data) = body.next().await {
        match data {
            Ok(data) => all.extend_from_slice(&data),
            Err(e) => return Err((all.into(), e.to_string())),
        }
    }
    Ok(all.into())
}

/// Polls `done` until it holds, for at most ten seconds.
pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Bounds a test step, so a client that waits forever fails the test
/// instead of hanging it.
pub async fn bounded<T>(what: &str, step: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish"))
}
