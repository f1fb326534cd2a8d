//! A bound on how long an answer may wait for its client to read it.
//!
//! A client that stops reading (or reads a byte a minute) fills its socket
//! buffers, and then every write of the answer waits. Without a bound such
//! a client holds its connection, the request's in-flight places and, on a
//! proxy, the backend connection its answer comes from, for as long as it
//! likes. [`WriteStall`] fails a write (and so the connection) that has
//! made no progress for `http.write_timeout`; any accepted byte starts the
//! wait anew, so a slow but steady reader is never cut off.
//!
//! The timer exists only while a write waits: a client that keeps up costs
//! no timer at all. Depends on nothing else in the crate.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream whose writes fail once they have waited `limit` without any
/// progress.
#[derive(Debug)]
pub struct WriteStall<S> {
    inner: S,
    limit: Duration,
    /// Armed at the first write that had to wait; dropped at progress.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStall<S> {
    /// `inner`, with its writes bounded by `limit`.
    pub fn new(inner: S, limit: Duration) -> Self {
        WriteStall {
            inner,
            limit,
            waiting: None,
        }
    }

    /// Passes a write's result on: progress disarms the timer; waiting arms
    /// it (once) and fails the write when it has run out.
    fn bound<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.waiting = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing of the answer for {} ms (http.write_timeout)",
                    limit.as_millis()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.bound(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.bound(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.bound(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.bound(cx, polled)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    /// Writes until the peer's buffers are full and a write has waited
    /// `limit`: the error, and how much went out.
    async fn write_until_it_fails(stream: &mut WriteStall<TcpStream>) -> (io::Error, usize) {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        loop {
            match stream.write(&chunk).await {
                Ok(n) => sent += n,
                Err(e) => return (e, sent),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        let (reader, server) = pair().await;
        let mut stream = WriteStall::new(server, Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let (error, sent) = write_until_it_fails(&mut stream).await;
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("http.write_timeout"), "{error}");
        assert!(sent > 0);
        assert!(started.elapsed() >= Duration::from_secs(30));
        drop(reader);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_steady_reader_is_not_cut_off() {
        let (reader, server) = pair().await;
        let mut stream = WriteStall::new(server, Duration::from_secs(30));
        // The writer goes on while the reader drains what has arrived only
        // every 20 s (under the limit): each drain lets a waiting write
        // progress, which restarts its wait.
        let total = 8 * 1024 * 1024;
        let writer = tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < total {
                sent += stream.write(&chunk).await?;
            }
            Ok::<_, io::Error>(sent)
        });
        let mut buf = vec![0; 1024 * 1024];
        let mut received = 0;
        for _ in 0..1000 {
            if writer.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(20)).await;
            loop {
                match reader.try_read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => received += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        let sent = writer.await.unwrap().unwrap();
        assert!(
            sent >= total && received > 0,
            "sent {sent}, received {received}"
        );
    }
}
