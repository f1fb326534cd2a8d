//! Idle keep-alive connections, keyed by backend authority. Depends on
//! [`crate::conn`] and on tokio's timer (for the sweeper).
//!
//! An idle connection is only its socket. Before one is reused it is checked
//! for a close or unasked bytes from the backend; a sweeper drops expired
//! and closed ones, so a backend's closed sockets do not linger.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::conn::Conn;

/// FNV-1a over the authority's bytes. The map is looked up twice per
/// request, and std's SipHash cost about 240 instructions per lookup on a
/// `host:port` key. Its resistance to chosen keys is not needed here: the
/// keys are backend addresses the caller chose, not its clients' input.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

#[derive(Debug)]
pub(crate) struct Pool {
    /// Idle connections per backend authority, most recently used last.
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>, BuildHasherDefault<Fnv>>>,
    /// Cap per authority; connections beyond it are closed when released.
    max_idle_per_host: usize,
    /// Idle connections older than this are closed, not reused.
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

impl Pool {
    /// A pool, with its sweeper spawned on the current runtime; the
    /// sweeper ends when the pool is dropped.
    pub fn new(max_idle_per_host: usize, idle_timeout: Duration) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            idle: Mutex::new(HashMap::default()),
            max_idle_per_host,
            idle_timeout,
        });
        tokio::spawn(sweep(Arc::downgrade(&pool), idle_timeout));
        pool
    }

    /// Closes every idle connection to `key`: one of them was found closed
    /// under a request, and the rest were most likely closed with it (a
    /// backend restart), so each would cost a failed attempt.
    pub fn clear(&self, key: &str) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.remove(key);
    }

    /// The most recently used idle connection that is still usable.
    pub fn take(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() > self.idle_timeout {
                // Everything below is older still.
                list.clear();
                break;
            }
            if entry.conn.is_usable() {
                return Some(entry.conn);
            }
        }
        None
    }

    pub(crate) fn put(&self, key: Arc<str>, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < self.max_idle_per_host {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Drops expired and closed connections, and empty entries (backends
    /// that went away).
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, list| {
            list.retain(|e| e.since.elapsed() <= self.idle_timeout && e.conn.is_usable());
            !list.is_empty()
        });
    }

    /// Idle connections held now, over all backends.
    pub fn len(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values().map(Vec::len).sum()
    }
}

async fn sweep(pool: Weak<Pool>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        }
    }
}

/// Where a connection goes back once its response has been read.
pub(crate) struct GiveBack {
    pub pool: Weak<Pool>,
    pub key: Arc<str>,
}

impl GiveBack {
    pub fn release(&self, conn: Conn) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.key.clone(), conn);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: the pool's side and the backend's side.
    async fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Conn::new(client), server)
    }

    /// Waits until the connection's socket has seen what the backend did
    /// to it (a close, or bytes), as `is_usable` would see it.
    async fn settled(conn: &Conn) {
        while conn.is_usable() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn connections_closed_or_written_to_while_idle_are_not_reused() {
        let pool = Pool::new(8, Duration::from_secs(60));
        let key: Arc<str> = "backend".into();
        let (quiet, _quiet_server) = pair().await;
        let (closed, closed_server) = pair().await;
        let (chatty, mut chatty_server) = pair().await;
        drop(closed_server);
        chatty_server
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await
            .unwrap();
        settled(&closed).await;
        settled(&chatty).await;
        pool.put(key.clone(), quiet);
        pool.put(key.clone(), closed);
        pool.put(key.clone(), chatty);

        // Most recent first: the chatty and the closed one are skipped.
        assert!(pool.take(&key).is_some());
        assert!(pool.take(&key).is_none());
        assert_eq!(pool.len(), 0);
    }

    #[tokio::test]
    async fn the_sweeper_drops_closed_and_expired_connections() {
        let pool = Pool::new(8, Duration::from_millis(300));
        let key: Arc<str> = "backend".into();
        let (quiet, _quiet_server) = pair().await;
        let (closed, closed_server) = pair().await;
        drop(closed_server);
        settled(&closed).await;
        pool.put(key.clone(), quiet);
        pool.put(key.clone(), closed);
        let put_at = Instant::now();
        pool.sweep();
        assert_eq!(pool.len(), 1);
        // Expiry is measured on the real clock (`Instant`), which tokio's
        // paused clock does not move: polled, with a bound for a hang.
        let expired = async {
            while pool.len() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                pool.sweep();
            }
        };
        tokio::time::timeout(Duration::from_secs(10), expired)
            .await
            .unwrap();
        assert!(
            put_at.elapsed() > Duration::from_millis(300),
            "expired early"
        );
    }

    #[tokio::test]
    async fn at_most_max_idle_per_host_are_kept() {
        let pool = Pool::new(2, Duration::from_secs(60));
        let key: Arc<str> = "backend".into();
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (conn, server) = pair().await;
            servers.push(server);
            pool.put(key.clone(), conn);
        }
        assert_eq!(pool.len(), 2);
        let other: Arc<str> = "other".into();
        let (conn, _server) = pair().await;
        pool.put(other, conn);
        assert_eq!(pool.len(), 3, "the cap is per authority");
    }
}
