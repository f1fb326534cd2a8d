//! Small vectored writes sent as one `send`.
//!
//! hyper writes an answer as its head buffer plus the body's own buffer,
//! with one `writev`. For the small answers most APIs give, copying the two
//! into one buffer and sending that is cheaper: `send` goes straight to the
//! socket, while `writev` passes through the file layer first (about 0.4 µs
//! of CPU per proxied request, measured). hyper can flatten by itself
//! (`writev(false)`), but then every connection's write buffer grows to hold
//! whole bodies and keeps that size: with 256 clients downloading 1 MiB
//! answers, the gateway's memory doubled (19 to 38 MiB). [`Coalescing`]
//! copies only writes of up to [`COALESCE_BYTES`] in total, into a reused
//! per-thread buffer, and hands larger ones to `writev` as they are.
//!
//! Depends on nothing else in the crate.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Vectored writes up to this many bytes in total go out as one `send`.
pub const COALESCE_BYTES: usize = 4096;

thread_local! {
    /// Where a small write is put together: one per thread, reused, so
    /// nothing is allocated or zeroed per write.
    static FLAT: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(COALESCE_BYTES));
}

/// A stream whose small vectored writes are copied into one buffer and
/// written with a single plain write.
#[derive(Debug)]
pub struct Coalescing<S>(pub S);

impl<S: AsyncRead + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if bufs.len() < 2 || total > COALESCE_BYTES {
            return Pin::new(&mut self.0).poll_write_vectored(cx, bufs);
        }
        FLAT.with(|cell| {
            let Ok(mut flat) = cell.try_borrow_mut() else {
                return Pin::new(&mut self.0).poll_write_vectored(cx, bufs);
            };
            flat.clear();
            for buf in bufs {
                flat.extend_from_slice(buf);
            }
            // A short write reports the bytes taken, as `writev` would; the
            // caller advances its buffers by that much and calls again.
            Pin::new(&mut self.0).poll_write(cx, &flat)
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Records every write call it gets and how: plain or vectored.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(&'static str, Vec<u8>)>,
        /// Bytes accepted per call (a socket with little room left).
        room: Option<usize>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.room.map_or(buf.len(), |r| r.min(buf.len()));
            self.calls.push(("write", buf[..n].to_vec()));
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.calls.push(("writev", all));
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn small_vectored_writes_go_out_as_one_plain_write_large_ones_as_they_are() {
        let mut stream = Coalescing(Recorder::default());
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n".to_vec();
        let n = stream
            .write_vectored(&[IoSlice::new(&head), IoSlice::new(b"hello")])
            .await
            .unwrap();
        assert_eq!(n, head.len() + 5);
        let big = vec![7u8; COALESCE_BYTES];
        let n = stream
            .write_vectored(&[IoSlice::new(&head), IoSlice::new(&big)])
            .await
            .unwrap();
        assert_eq!(n, head.len() + big.len());
        let n = stream.write_vectored(&[IoSlice::new(&big)]).await.unwrap();
        assert_eq!(n, big.len());
        let calls = &stream.0.calls;
        assert_eq!(calls[0].0, "write");
        assert_eq!(calls[0].1, [head.clone(), b"hello".to_vec()].concat());
        assert_eq!(calls[1], ("writev", [head, big.clone()].concat()));
        assert_eq!(calls[2], ("writev", big));
    }

    #[tokio::test]
    async fn a_short_write_reports_what_was_taken() {
        let mut stream = Coalescing(Recorder {
            room: Some(3),
            ..Recorder::default()
        });
        let n = stream
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cdef")])
            .await
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(stream.0.calls[0].1, b"abc");
    }

    #[tokio::test]
    async fn bytes_pass_through_a_real_socket_unchanged() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big = vec![b'x'; 3 * COALESCE_BYTES];
        let writes: Vec<Vec<&[u8]>> =
            vec![vec![b"one ", b"two "], vec![b"three ", &big], vec![b"!"]];
        let expected: Vec<u8> = writes
            .iter()
            .flatten()
            .flat_map(|b| b.iter().copied())
            .collect();
        let sent = expected.clone();
        let client = tokio::spawn(async move {
            let mut s = Coalescing(tokio::net::TcpStream::connect(addr).await.unwrap());
            let mut at = 0;
            while at < sent.len() {
                // What is left, as two slices, the way hyper offers a head
                // and a body.
                let rest = &sent[at..];
                let (a, b) = rest.split_at(rest.len().min(5));
                at += s
                    .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                    .await
                    .unwrap();
            }
            s.shutdown().await.unwrap();
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        client.await.unwrap();
        assert_eq!(got, expected);
    }
}
