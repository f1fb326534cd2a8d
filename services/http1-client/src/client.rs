//! The client a caller holds: a keep-alive pool, and one exchange per
//! call on a pooled or new connection. Depends on [`crate::pool`],
//! [`crate::conn`], [`crate::request`] and [`crate::body`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use tokio::net::TcpStream;

use crate::body::Body;
use crate::conn::Conn;
use crate::pool::{GiveBack, Pool};
use crate::request::{RequestBody, RequestHead};
use crate::Error;

/// An HTTP/1.1 client with a pool of idle keep-alive connections per
/// backend authority. Meant to be used from one runtime thread (a proxy
/// makes one per worker): its connections are driven by the tasks that
/// send on them, and its lock is then never contended.
#[derive(Debug)]
pub struct Client {
    pool: Arc<Pool>,
}

impl Client {
    /// A client keeping at most `max_idle_per_host` idle connections per
    /// authority, each for at most `idle_timeout` (keep it below the
    /// backends' own keep-alive timeout, so a connection the backend is
    /// about to close is not reused). Spawns the pool's sweeper on the
    /// current tokio runtime (so it must be called within one); the
    /// sweeper ends when the client is dropped.
    pub fn new(max_idle_per_host: usize, idle_timeout: Duration) -> Client {
        Client {
            pool: Pool::new(max_idle_per_host, idle_timeout),
        }
    }

    /// Sends `request` with `body` to the backend at `authority`, on an
    /// idle pooled connection or, when there is none, on the one `connect`
    /// opens, and returns the final response head with its streaming body.
    /// The connection goes back to the pool under `authority` when the body
    /// has been read to its end.
    ///
    /// The request is sent once: when a pooled connection turns out to be
    /// closed under it, the error is returned (and the authority's other
    /// idle connections, most likely closed with it, are dropped). Sending
    /// it again is the caller's decision, since the backend may have acted
    /// on it.
    ///
    /// An answer whose head is invalid, or whose body's first bytes (those
    /// that arrived with the head) already break its framing, is an
    /// [`Error::Invalid`]; a body that breaks later yields an error from
    /// the body stream.
    pub async fn send<F, E>(
        &self,
        authority: &Arc<str>,
        connect: impl FnOnce() -> F,
        request: &RequestHead<'_>,
        body: &mut RequestBody,
    ) -> Result<Response<Body>, E>
    where
        F: Future<Output = Result<TcpStream, E>>,
        E: From<Error>,
    {
        let (mut conn, reused) = match self.pool.take(authority) {
            Some(conn) => (conn, true),
            None => (Conn::new(connect().await?), false),
        };
        let mut received = false;
        match conn.exchange(request, body, &mut received).await {
            Ok(head) => {
                let giveback = GiveBack {
                    pool: Arc::downgrade(&self.pool),
                    key: authority.clone(),
                };
                let mut body = Body::new(conn, head.framing, head.keep_alive, giveback);
                body.check_buffered()
                    .map_err(|e| Error::Invalid(format!("response body: {e}")))?;
                let mut response = Response::new(body);
                *response.status_mut() = head.status;
                *response.headers_mut() = head.headers;
                Ok(response)
            }
            Err(e) => {
                // A pooled connection closed under the request: the
                // backend closed it idle, or restarted, and its siblings
                // in the pool are most likely gone too.
                if reused && !received && matches!(e, Error::Closed | Error::Io(_)) {
                    self.pool.clear(authority);
                }
                Err(e.into())
            }
        }
    }

    /// Idle connections held now, over all authorities.
    pub fn idle_connections(&self) -> usize {
        self.pool.len()
    }
}
