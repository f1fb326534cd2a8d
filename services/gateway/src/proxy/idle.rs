//! An idle timeout for a stream of body data, cheap on the common path.
//!
//! Most bodies arrive without the stream ever waiting: then the timer is
//! never armed, and a request pays no timer-wheel insertion for it. The
//! timer is armed (or moved) only when the stream has to wait after making
//! progress, so the idle time counts from the first wait after the last
//! data. Depends on nothing else in the gateway.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How long a stream may wait for its next data.
pub struct IdleTimer {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Data came since the timer was last armed.
    progressed: bool,
}

impl IdleTimer {
    /// A timer allowing `timeout` between two pieces of data.
    pub fn new(timeout: Duration) -> IdleTimer {
        IdleTimer {
            timeout,
            sleep: None,
            progressed: true,
        }
    }

    /// The limit it keeps.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Data arrived.
    pub fn progress(&mut self) {
        self.progressed = true;
    }

    /// Called when the stream is waiting: ready once `timeout` has passed
    /// since it started waiting without data in between.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.progressed || self.sleep.is_none() {
            let deadline = Instant::now() + self.timeout;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.progressed = false;
        }
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}
