//! An HTTP/1.1 client for a reverse proxy's calls to its backends over
//! plain TCP: the request's own task writes the request and reads the
//! answer on a pooled keep-alive connection.
//!
//! hyper's client gives every connection a task of its own and hands each
//! request to it over a channel; the answer comes back over another. That is
//! two task wake-ups per request and about 30 KB per pooled connection
//! (channel blocks, write and read buffers). Here the request's task does
//! the socket work itself, and an idle connection in the pool is just its
//! socket: buffers live only while a request uses them. Parsing is
//! httparse's (the parser hyper uses).
//!
//! ```no_run
//! # async fn example() -> Result<(), http1_client::Error> {
//! use std::sync::Arc;
//! use futures_util::StreamExt;
//! use http1_client::{Client, RequestBody, RequestHead};
//!
//! let client = Client::new(64, std::time::Duration::from_secs(30));
//! let authority: Arc<str> = "127.0.0.1:8080".into();
//! let host = http::HeaderValue::from_static("127.0.0.1:8080");
//! let headers = http::HeaderMap::new();
//! let request_id = [(
//!     http::HeaderName::from_static("x-request-id"),
//!     http::HeaderValue::from_static("4f2a"),
//! )];
//! let head = RequestHead {
//!     method: &http::Method::GET,
//!     target: "/api/data",
//!     host: &host,
//!     headers: &headers,
//!     extra: &request_id,
//! };
//! // How to reach the backend is the caller's; its error type is the
//! // one `send` returns, which must take this crate's errors too.
//! let connect = || async {
//!     Ok::<_, http1_client::Error>(tokio::net::TcpStream::connect("127.0.0.1:8080").await?)
//! };
//! let mut response = client
//!     .send(&authority, connect, &head, &mut RequestBody::Empty)
//!     .await?;
//! while let Some(data) = response.body_mut().next().await {
//!     let _bytes = data.map_err(|e| http1_client::Error::Invalid(e.to_string()))?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What it supports
//!
//! - **Requests**: the head is the method, the target as given, `HTTP/1.1`,
//!   the backend's `host`, then the caller's headers and its extra lines
//!   ([`RequestHead`]). Framing is always written from the body actually
//!   sent, never copied: no body gets no framing header (but
//!   `content-length: 0` when the caller's headers declared a length), a
//!   [`RequestBody::Full`] body its `content-length` (in the same write as
//!   the head up to 8 KiB), a [`RequestBody::Stream`] body the declared
//!   length (and then exactly that many bytes, or
//!   [`Error::RequestBody`]) or else `transfer-encoding: chunked`.
//! - **Early answers to a streamed upload**: an answer of 400 or above that
//!   arrives before the body is all sent is returned at once, the rest of
//!   the body unsent and the connection not reused; any other early answer
//!   waits for the upload to finish. An answer sent before the backend
//!   closed the connection on the upload is still read and returned.
//! - **Response framing** (RFC 9112 section 6.3), decided in this order:
//!   answers to `HEAD`, 204 and 304 have no body (a 204's `Content-Length`
//!   is dropped, a 304's or a HEAD answer's is kept, stated once);
//!   `Transfer-Encoding: chunked` (case-insensitive, alone, over one or
//!   several lines) wins over any `Content-Length`, which is then removed
//!   from the headers returned; a `Content-Length` (`5`, `005`, `5, 5` or
//!   two lines of `5` are all 5, returned as one plain `5`); else the body
//!   runs until the backend closes.
//! - **Chunked bodies**: hex sizes of up to 15 digits in either case,
//!   leading zeros, whitespace after the size, extensions skipped, trailer
//!   lines read and dropped (not returned).
//! - **1xx answers** (100, 103 with its headers, any other but 101) before
//!   the final answer are read and skipped, however many, whether or not
//!   they arrive in the same read as the final one.
//! - **Status lines**: HTTP/1.0 and HTTP/1.1, any final status from 200
//!   to 999, with or without a reason phrase.
//! - **Keep-alive**: a connection is reused when the answer was HTTP/1.1
//!   without `Connection: close` (or HTTP/1.0 with `Connection:
//!   keep-alive`), its framing was a length or chunks, its body was read to
//!   the end and nothing unasked followed it. Idle connections are checked
//!   for a close or stray bytes before reuse, and swept after the idle
//!   timeout.
//! - Header values are returned as the backend sent them but for the
//!   whitespace around them (obs-text bytes included), as slices of the
//!   read buffer; names are lowercased. Repeated names keep all their
//!   lines, in order.
//!
//! # What it refuses, and how
//!
//! An invalid head is [`Error::Invalid`] from [`Client::send`], and the
//! connection is closed. So is a body whose first bytes, those that came
//! in the same read as the head, already break its framing. A body that
//! breaks later ends its stream with one error item, and the connection is
//! closed.
//!
//! - Heads larger than 64 KiB (whether they arrive whole or in pieces), or
//!   with more than 128 header lines.
//! - Anything httparse refuses: a status line that is not `HTTP/1.0` or
//!   `HTTP/1.1` with a three-digit status, header names with characters
//!   outside `token` (or a space before the colon), obsolete line folding
//!   (obs-fold), control characters in values. A status under 100 is
//!   refused too.
//! - `101 Switching Protocols`: this client never asks for an upgrade.
//! - `Content-Length` values that are not all digits (signs, spaces inside,
//!   an empty value, more than 19 digits) or that disagree with each other.
//! - `Transfer-Encoding` with any coding but a single `chunked` (`gzip`,
//!   `gzip, chunked`, `chunked` twice): passed on, the coded bytes would be
//!   taken for plain ones. An HTTP/1.0 answer with `Transfer-Encoding` is
//!   read by it but never reused (RFC 9112 section 6.1).
//!   An answer with both `Transfer-Encoding` and `Content-Length` is read
//!   as chunked but its connection is not reused either.
//! - In chunked bodies: a size that is empty, not hex, longer than 15
//!   digits, or followed by anything but whitespace and `;`; chunk data
//!   not followed by CRLF; a size line longer than 4 KiB; trailers over
//!   16 KiB. Line ends in chunked framing must be CRLF: a bare LF does not
//!   end a line (in a size line without extensions it makes the size
//!   invalid; inside an extension it is skipped with it).
//! - A body cut short: the backend closing before the `Content-Length` or
//!   the last chunk is an error, never a short body that looks complete.
//!
//! Bare LF line ends in the head are accepted (httparse's leniency, as
//! hyper's). No request is sent twice: resending is the caller's decision.
//!
//! # Layout
//!
//! - `client`: [`Client`], the public entry; uses `pool`, `conn`,
//!   `request`, `body`.
//! - `pool`: idle connections per authority, and their sweeper; uses
//!   `conn` and tokio's timer.
//! - `conn`: one connection, the exchange of a request for a response head;
//!   uses `head`, `request`, and tokio's socket.
//! - `request`: [`RequestHead`], [`RequestBody`], the request head
//!   encoder and the streamed body writer; uses `head` (the framing it
//!   writes), `http` and tokio's write traits.
//! - `head`: the response head parser and framing rules; uses `http`,
//!   `httparse`, `coding` and `names`; no I/O.
//! - `coding`: [`single_chunked`], the `Transfer-Encoding` rule, public so
//!   that a server in front of the client keeps the same rule for requests.
//! - `body`: [`Body`] and the body decoder; uses `conn` (its buffer and
//!   reads), `pool` (where a finished connection goes) and `head`.
//! - `names`: header names reused per thread; uses `http` only.
//!
//! Nothing here knows about the proxy that uses it: which headers it adds,
//! how it resolves and connects to a backend, how errors become statuses.

mod body;
mod client;
mod coding;
mod conn;
mod head;
mod names;
mod pool;
mod request;

#[cfg(test)]
#[macro_use]
#[path = "../tests/table/responses.rs"]
mod response_table;
#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod testing;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

pub use body::Body;
pub use client::Client;
pub use coding::{single_chunked, CodingError};
pub use request::{RequestBody, RequestHead};

/// Errors boxed for the body streams.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed request body, read once.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + Sync>>;

/// Why an exchange got no response head.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed, or the backend closed it under a write.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The backend closed the connection before a whole response head.
    #[error("backend closed the connection before a complete response head")]
    Closed,
    /// The backend's answer is not valid HTTP/1.1.
    #[error("invalid response from backend: {0}")]
    Invalid(String),
    /// The caller's streamed body failed, or did not keep its declared
    /// length.
    #[error("request body: {0}")]
    RequestBody(String),
}
