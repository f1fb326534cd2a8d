//! What a handler may do to the connection its request came on, and to the
//! listener that accepted it: end the connection with a TCP reset instead
//! of an answer ([`Connection::reset`]), or stop accepting connections for a
//! while ([`Listening::stop_for`]).
//!
//! Both exist so that a service can play a failing peer on purpose (the
//! backend's fault injection): a reset is what a crashed or misbehaving
//! server looks like mid-request, a closed listener what a stopped one
//! looks like to new connections. Nothing happens unless a handler asks.
//!
//! Depends on tokio only; [`crate::server`] hands every request's handler
//! its [`Connection`] and wraps each socket in [`Resettable`].

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// The connection a request came on, as its handler sees it. Cheap to
/// clone (one shared flag and the listener's handle).
#[derive(Debug, Clone)]
pub struct Connection {
    peer: SocketAddr,
    reset: Arc<AtomicBool>,
    listening: Listening,
}

impl Connection {
    /// A connection from `peer`, accepted by the listener `listening`
    /// controls; the flag is shared with the socket's [`Resettable`].
    pub(crate) fn new(peer: SocketAddr, reset: Arc<AtomicBool>, listening: Listening) -> Self {
        Connection {
            peer,
            reset,
            listening,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Ends this connection with a TCP reset (RST) instead of an answer:
    /// whatever the handler then returns is never sent, the socket is
    /// closed with `SO_LINGER` 0 and the client's next read fails with
    /// `ECONNRESET`. The request is not counted as answered.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::Release);
    }

    /// Whether [`Connection::reset`] was called.
    pub fn is_reset(&self) -> bool {
        self.reset.load(Ordering::Acquire)
    }

    /// The listener that accepted this connection.
    pub fn listening(&self) -> &Listening {
        &self.listening
    }
}

/// A server's listener, as handlers may control it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Listening {
    /// Until when the listener stays closed; `None` (or a time past) while
    /// it listens. Every change closes the open connections.
    closed_until: Arc<watch::Sender<Option<Instant>>>,
}

impl Default for Listening {
    fn default() -> Self {
        Self::new()
    }
}

impl Listening {
    /// Listening, not stopped.
    pub fn new() -> Self {
        Listening {
            closed_until: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Stops accepting connections for `duration`: the listening socket is
    /// closed, so new connections are refused (`ECONNREFUSED`), and then
    /// bound again on the same address (with tokio's default options:
    /// `SO_REUSEADDR`, not `SO_REUSEPORT`, so a listener bound with
    /// [`crate::server::bind_reuseport`] comes back as a plain one).
    /// Connections already open are closed after their current answer,
    /// idle ones at once, so that clients' pooled connections see the
    /// listener gone too. A call while stopped keeps it stopped until the
    /// later of the two ends.
    pub fn stop_for(&self, duration: Duration) {
        let now = Instant::now();
        // A duration past what the clock can add is as good as forever.
        let until = now
            .checked_add(duration)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        self.closed_until.send_modify(|current| {
            *current = Some(current.map_or(until, |earlier| earlier.max(until)));
        });
    }

    /// Follows the changes [`Listening::stop_for`] makes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.closed_until.subscribe()
    }
}

/// A socket whose reads and writes fail once its connection's handler
/// asked for a reset, having set `SO_LINGER` to 0 first: the server then
/// drops the connection, and closing the socket sends a RST instead of a
/// FIN.
#[derive(Debug)]
pub struct Resettable {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Resettable {
    /// `inner`, reset once `reset` is set.
    pub fn new(inner: TcpStream, reset: Arc<AtomicBool>) -> Self {
        Resettable { inner, reset }
    }

    /// The error every operation fails with once a reset was asked for.
    fn reset_asked(&self) -> Option<io::Error> {
        if !self.reset.load(Ordering::Acquire) {
            return None;
        }
        if let Err(e) = self.inner.set_zero_linger() {
            tracing::debug!(error = %e, "could not set SO_LINGER 0; the close will be a FIN");
        }
        Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection reset at the handler's request",
        ))
    }
}

impl AsyncRead for Resettable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.reset_asked() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Resettable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.reset_asked() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.reset_asked() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.reset_asked() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.reset_asked() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_reset_socket_fails_and_its_peer_sees_a_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut client = client.unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let mut server = Resettable::new(server.unwrap().0, flag.clone());
        server.write_all(b"before").await.unwrap();
        let mut seen = [0; 6];
        client.read_exact(&mut seen).await.unwrap();

        flag.store(true, Ordering::Release);
        let error = server.write_all(b"after").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        drop(server);
        let error = client.read(&mut seen).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_again_keeps_the_later_end() {
        let listening = Listening::new();
        let seen = listening.subscribe();
        listening.stop_for(Duration::from_secs(10));
        listening.stop_for(Duration::from_secs(1));
        let until = seen.borrow().unwrap();
        assert!(until >= Instant::now() + Duration::from_secs(10));
    }
}
