//! A backend's response body, whichever client read it: `http1_client`'s
//! for plain-HTTP backends, reqwest's for `https` ones.
//!
//! Depends on `http1-client` and reqwest only.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::Body;

use super::BoxError;

/// A backend's response body, streamed to the client. Reading a plain-HTTP
/// one to the end puts its connection back in the pool; dropping it
/// half-way closes it.
pub struct ResponseBody {
    inner: Inner,
}

enum Inner {
    Plain(http1_client::Body),
    Tls(reqwest::Body),
}

impl ResponseBody {
    pub(super) fn plain(body: http1_client::Body) -> ResponseBody {
        ResponseBody {
            inner: Inner::Plain(body),
        }
    }

    pub(super) fn tls(body: reqwest::Body) -> ResponseBody {
        ResponseBody {
            inner: Inner::Tls(body),
        }
    }
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.get_mut().inner {
            Inner::Plain(body) => Pin::new(body).poll_next(cx),
            Inner::Tls(body) => loop {
                let frame = match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Some(Ok(frame)) => frame,
                };
                // Trailers are not forwarded (HTTP/1 clients rarely ask).
                if let Ok(data) = frame.into_data() {
                    return Poll::Ready(Some(Ok(data)));
                }
            },
        }
    }
}
