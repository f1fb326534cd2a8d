//! Every answer's type: an `http::Response` whose body is bytes known up
//! front or a stream of data frames, boxed so that one type serves both
//! (and both services). Depends on nothing else in the crate.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};

/// What a body's stream may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An answer.
pub type Response = http::Response<Body>;

/// An answer's body.
#[derive(Debug)]
pub struct Body(BoxBody<Bytes, BoxError>);

impl Body {
    /// No body at all.
    pub fn empty() -> Self {
        Body(Empty::new().map_err(|never| match never {}).boxed())
    }

    /// The items of `stream`, each a data frame, passed on as they come;
    /// an error ends the answer (the server then drops the connection).
    pub fn stream<S, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Sync + 'static,
        E: Into<BoxError> + 'static,
    {
        let frames = stream.map(|item| item.map(Frame::data).map_err(Into::into));
        Body(BodyExt::boxed(StreamBody::new(frames)))
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body(Full::new(bytes).map_err(|never| match never {}).boxed())
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[tokio::test]
    async fn bytes_keep_their_length_and_streams_end_on_their_error() {
        let body = Body::from("hello");
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        let items: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"a")),
            Err(std::io::Error::other("cut")),
        ];
        let mut body = Body::stream(futures_util::stream::iter(items));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        assert!(body.frame().await.unwrap().is_err());
        assert!(Body::empty().is_end_stream());
    }
}
