//! The request as written on an upstream connection: its head, with `Host`
//! and framing headers of our own, and a streamed body's framing.
//!
//! The client's `Content-Length` and `Transfer-Encoding` are never copied:
//! the framing is written from the body actually sent (RFC 9112 section 6),
//! so a length that does not match what goes out cannot reach a backend.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{self, HeaderValue};
use http::Method;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::h1::{Framing, H1Error};
use super::BodyStream;
use crate::headers::Forwarded;

/// What goes into a request head.
pub struct RequestHead<'a> {
    /// Sent as the client sent it.
    pub method: &'a Method,
    /// Origin-form target (or `*`).
    pub target: &'a str,
    /// The client's headers and the gateway's; framing ones are skipped.
    pub headers: &'a Forwarded,
    /// The backend's, built once at registration.
    pub host: &'a HeaderValue,
}

/// The head, ending with its blank line, framed as `framing` says.
/// `Framing::Empty` writes no framing header unless the client declared a
/// length (kept as `0`: some servers want one on a POST), and `UntilClose`
/// is not a request framing.
pub fn encode_head(request: &RequestHead<'_>, framing: Framing) -> Result<BytesMut, H1Error> {
    let forwarded = request.headers;
    let mut head =
        BytesMut::with_capacity(256 + (forwarded.client.len() + forwarded.added.len()) * 48);
    head.extend_from_slice(request.method.as_str().as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(request.target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    head.extend_from_slice(request.host.as_bytes());
    head.extend_from_slice(b"\r\n");
    // Framing is written below, for the body actually sent.
    let headers = forwarded
        .sent()
        .filter(|(name, _)| *name != header::CONTENT_LENGTH && *name != header::TRANSFER_ENCODING);
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Empty if forwarded.client.contains_key(header::CONTENT_LENGTH) => {
            head.extend_from_slice(b"content-length: 0\r\n")
        }
        Framing::Empty => {}
        Framing::Length(n) => head.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::UntilClose => {
            return Err(H1Error::RequestBody(
                "a request body cannot be delimited by closing".into(),
            ))
        }
    }
    head.extend_from_slice(b"\r\n");
    Ok(head)
}

/// Writes a streamed body: as it comes when its length was declared (and
/// then exactly that many bytes), else in chunks.
pub async fn write_stream<W: AsyncWrite + Unpin>(
    io: &mut W,
    stream: &mut BodyStream,
    framing: Framing,
) -> Result<(), H1Error> {
    let declared = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mut sent: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk.map_err(|e| H1Error::RequestBody(e.to_string()))?;
        if chunk.is_empty() {
            continue;
        }
        sent += chunk.len() as u64;
        match declared {
            Some(n) if sent > n => {
                return Err(H1Error::RequestBody(format!(
                    "longer than its content-length of {n} bytes"
                )))
            }
            Some(_) => io.write_all(&chunk).await?,
            None => {
                let mut framed = BytesMut::with_capacity(chunk.len() + 20);
                framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                io.write_all(&framed).await?;
            }
        }
    }
    match declared {
        Some(n) if sent != n => Err(H1Error::RequestBody(format!(
            "ended after {sent} of its {n} declared bytes"
        ))),
        Some(_) => Ok(()),
        None => Ok(io.write_all(b"0\r\n\r\n").await?),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn head(headers: &HeaderMap, framing: Framing) -> String {
        let forwarded = Forwarded {
            client: headers.clone(),
            added: Vec::new(),
        };
        let request = RequestHead {
            method: &Method::POST,
            target: "/p?q=1",
            headers: &forwarded,
            host: &HeaderValue::from_static("backend:8080"),
        };
        String::from_utf8(encode_head(&request, framing).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn framing_headers_come_from_the_body_sent_not_the_client() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        assert_eq!(
            head(&headers, Framing::Length(4)),
            "POST /p?q=1 HTTP/1.1\r\nhost: backend:8080\r\nx-kept: yes\r\ncontent-length: 4\r\n\r\n"
        );
        assert!(
            head(&headers, Framing::Chunked).ends_with("\r\ntransfer-encoding: chunked\r\n\r\n")
        );
        // An empty body keeps an explicit zero length, and gets none otherwise.
        assert!(
            head(&headers, Framing::Empty).ends_with("x-kept: yes\r\ncontent-length: 0\r\n\r\n")
        );
        assert!(head(&HeaderMap::new(), Framing::Empty).ends_with("host: backend:8080\r\n\r\n"));
    }

    #[tokio::test]
    async fn streamed_bodies_are_chunked_or_held_to_their_length() {
        let parts = |p: Vec<&'static str>| -> BodyStream {
            Box::pin(futures_util::stream::iter(
                p.into_iter().map(|s| Ok(Bytes::from_static(s.as_bytes()))),
            ))
        };
        let mut out = Vec::new();
        write_stream(
            &mut out,
            &mut parts(vec!["ab", "", "cde"]),
            Framing::Chunked,
        )
        .await
        .unwrap();
        assert_eq!(out, b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n");
        let mut out = Vec::new();
        write_stream(&mut out, &mut parts(vec!["ab", "cde"]), Framing::Length(5))
            .await
            .unwrap();
        assert_eq!(out, b"abcde");
        for (body, length) in [(vec!["ab", "cde"], 4), (vec!["ab"], 5)] {
            let e = write_stream(&mut Vec::new(), &mut parts(body), Framing::Length(length))
                .await
                .unwrap_err();
            assert!(matches!(e, H1Error::RequestBody(_)), "{e}");
        }
    }
}
