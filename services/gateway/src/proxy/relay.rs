//! A backend's response body on its way to the client, bounded in time,
//! and told how it ended.
//!
//! The head has already gone to the client when the body is relayed, so a
//! body that breaks or stalls half-way cannot be turned into an error
//! status: the client's connection is closed mid-body instead (hyper does
//! that when the stream yields an error), which every HTTP client reads as
//! a failed response. What happened is handed to an `on_end` callback
//! exactly once — finished, broken, stalled, or dropped because the client
//! went away — so the request is booked with how it really ended and its
//! guards (in-flight places) are held until then.
//!
//! Depends on `idle` and `upstream` only: any stream of data frames can be
//! relayed (the upstream client's `ResponseBody` in the proxy).

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use super::idle::IdleTimer;
use crate::upstream::BoxError;

/// How a relayed body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// Read to its end and handed on.
    Complete,
    /// The backend's body broke (framing, reset, early close).
    Broken(String),
    /// No bytes from the backend for `upstream.body_idle_timeout`.
    Stalled(Duration),
    /// The client stopped reading (it went away) before the end.
    Abandoned,
}

impl BodyEnd {
    /// Whether the backend is to blame.
    pub fn is_backend_failure(&self) -> bool {
        matches!(self, BodyEnd::Broken(_) | BodyEnd::Stalled(_))
    }
}

/// The relayed body: the backend's, with an idle timeout and an end.
pub struct Relay<S, F: FnOnce(BodyEnd)> {
    body: S,
    /// A body error held back for one poll (see `poll_next`).
    failed: Option<BoxError>,
    idle: IdleTimer,
    on_end: Option<F>,
}

impl<S, F: FnOnce(BodyEnd)> Relay<S, F> {
    /// Relays `body`, calling `on_end` once when it ends.
    pub fn new(body: S, idle_timeout: Duration, on_end: F) -> Relay<S, F> {
        Relay {
            body,
            failed: None,
            idle: IdleTimer::new(idle_timeout),
            on_end: Some(on_end),
        }
    }

    fn end(&mut self, how: BodyEnd) {
        if let Some(on_end) = self.on_end.take() {
            on_end(how);
        }
    }
}

impl<S, F> Stream for Relay<S, F>
where
    S: Stream<Item = Result<Bytes, BoxError>> + Unpin,
    F: FnOnce(BodyEnd) + Unpin,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(e) = this.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if this.on_end.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.body).poll_next(cx) {
            Poll::Ready(Some(Ok(data))) => {
                this.idle.progress();
                Poll::Ready(Some(Ok(data)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.end(BodyEnd::Broken(e.to_string()));
                // hyper drops the connection at a body error without
                // flushing what it buffered, so a head and data read
                // together with the break would never reach the client
                // (it would see no answer at all, not a cut one). Being
                // pending once first lets hyper flush them.
                this.failed = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.end(BodyEnd::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.idle.poll_expired(cx));
                let after = this.idle.timeout();
                this.end(BodyEnd::Stalled(after));
                let message = format!(
                    "no bytes from the backend for {} ms (upstream.body_idle_timeout)",
                    after.as_millis()
                );
                Poll::Ready(Some(Err(message.into())))
            }
        }
    }
}

impl<S, F: FnOnce(BodyEnd)> Drop for Relay<S, F> {
    fn drop(&mut self) {
        self.end(BodyEnd::Abandoned);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use futures_util::StreamExt;

    fn recorder() -> (Arc<Mutex<Vec<BodyEnd>>>, impl FnOnce(BodyEnd) + Unpin) {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let sink = ends.clone();
        (ends, move |end| sink.lock().unwrap().push(end))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_ends_after_the_idle_timeout_and_is_reported_once() {
        let (ends, on_end) = recorder();
        let part: Result<Bytes, BoxError> = Ok(Bytes::from_static(b"part"));
        let body = futures_util::stream::iter([part]).chain(futures_util::stream::pending());
        let mut relay = Relay::new(body, Duration::from_secs(5), on_end);
        assert_eq!(relay.next().await.unwrap().unwrap(), "part");
        let started = tokio::time::Instant::now();
        assert!(relay.next().await.unwrap().is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(relay.next().await.is_none());
        drop(relay);
        assert_eq!(
            *ends.lock().unwrap(),
            [BodyEnd::Stalled(Duration::from_secs(5))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn complete_broken_and_dropped_bodies_are_told_apart() {
        let (ends, on_end) = recorder();
        let body = futures_util::stream::iter([Ok(Bytes::from_static(b"all"))]);
        let relay = Relay::new(body, Duration::from_secs(1), on_end);
        assert_eq!(relay.collect::<Vec<_>>().await.len(), 1);
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Complete]);

        let (ends, on_end) = recorder();
        let body = futures_util::stream::iter([Err::<Bytes, BoxError>("cut".into())]);
        let mut relay = Relay::new(body, Duration::from_secs(1), on_end);
        let first = futures_util::poll!(relay.next());
        assert!(first.is_pending(), "the error is held back for one poll");
        assert!(relay.next().await.unwrap().is_err());
        drop(relay);
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Broken("cut".into())]);

        let (ends, on_end) = recorder();
        let body = futures_util::stream::pending::<Result<Bytes, BoxError>>();
        drop(Relay::new(body, Duration::from_secs(1), on_end));
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Abandoned]);
    }
}
