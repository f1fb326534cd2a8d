//! Reading request bodies into memory with a hard size limit.
//!
//! Bytes are counted as they arrive, so both framings (a `Content-Length`
//! and chunked) work and neither can exceed the limit.
//!
//! Depends on nothing else in the crate.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived (or was announced).
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed mid-body.
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// Collects `body`, failing as soon as more than `limit` bytes arrive.
pub async fn read_limited<S, B, E>(body: S, limit: usize) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, E>>,
    B: Buf,
    E: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if collected.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            collected.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(collected.freeze())
}
