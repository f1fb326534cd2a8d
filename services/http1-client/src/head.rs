//! The response head: parsed off the front of the read buffer, and the
//! framing of the body that follows decided (RFC 9112 section 6.3).
//! Depends on `http`, `httparse`, `bytes`, [`crate::coding`] and
//! [`crate::names`]; no I/O.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::coding::single_chunked;
use crate::names::interned_name;
use crate::Error;

/// Longest response head accepted, like hyper's default buffer limit for
/// heads; larger is a broken or hostile backend.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most response header lines accepted (hyper's client default is 100).
pub(crate) const MAX_HEADERS: usize = 128;

/// How a message body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: HEAD, 1xx, 204, 304; a request without one.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// A final response head as read from the backend.
#[derive(Debug)]
pub(crate) struct Head {
    /// Final status (1xx answers are skipped before this is built).
    pub status: StatusCode,
    /// As sent, minus a `Content-Length` that `Transfer-Encoding`
    /// overrode or that a 204 carried, and with a repeated one stated
    /// once; values share the head's bytes.
    pub headers: HeaderMap,
    /// How to read the body that follows.
    pub framing: Framing,
    /// Whether the connection may carry another request once the body is
    /// read (HTTP/1.1 without `Connection: close`, or 1.0 with keep-alive).
    pub keep_alive: bool,
}

/// What the front of the read buffer holds.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A 1xx answer, now consumed; the final one follows.
    Informational,
    Final(Head),
}

/// The final head, when the buffer holds all of it (1xx answers before it
/// are consumed); `None` while more must be read.
pub(crate) fn parse_buffered(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, Error> {
    while !buf.is_empty() {
        match parse_head(buf, method)? {
            Parsed::Final(head) => return Ok(Some(head)),
            // The final answer may already be buffered behind it.
            Parsed::Informational => continue,
            Parsed::Partial if buf.len() > MAX_HEAD_BYTES => return Err(too_large()),
            Parsed::Partial => return Ok(None),
        }
    }
    Ok(None)
}

fn too_large() -> Error {
    Error::Invalid(format!("response head larger than {MAX_HEAD_BYTES} bytes"))
}

/// Parses a complete head off the front of the buffer.
pub(crate) fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Parsed, Error> {
    // Uninitialised slots: zeroing all of them would cost more than parsing
    // a typical head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots,
    );
    let len = match parsed {
        // A head that arrived whole in one read is held to the same limit
        // as one still coming in.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => return Err(too_large()),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(Error::Invalid(e.to_string())),
    };
    let code = response.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| Error::Invalid(format!("status code {code}")))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The client never asks for an upgrade, so this was never asked for.
        return Err(Error::Invalid("unrequested 101 Switching Protocols".into()));
    }
    if status.is_informational() {
        let _ = buf.split_to(len);
        return Ok(Parsed::Informational);
    }
    let http11 = response.version == Some(1);
    // Header values are slices of the head's bytes: no copy each.
    let base = buf.as_ptr() as usize;
    let mut fields = Vec::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = interned_name(h.name.as_bytes())
            .map_err(|_| Error::Invalid(format!("header name {:?}", h.name)))?;
        let start = h.value.as_ptr() as usize - base;
        fields.push((name, start, start + h.value.len()));
    }
    let bytes: Bytes = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(fields.len());
    // Which framing headers are present, noted on the way: most answers
    // carry only Content-Length, and a map lookup costs about as much as
    // parsing a header line.
    let (mut connection, mut transfer_encoding, mut content_length) = (false, false, false);
    for (name, start, end) in fields {
        let value = HeaderValue::from_maybe_shared(bytes.slice(start..end))
            .map_err(|_| Error::Invalid(format!("value of header {name}")))?;
        connection |= name == header::CONNECTION;
        transfer_encoding |= name == header::TRANSFER_ENCODING;
        content_length |= name == header::CONTENT_LENGTH;
        headers.append(name, value);
    }

    let mut keep_alive = http11;
    if connection {
        for token in connection_tokens(&headers) {
            if token.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                keep_alive = true;
            }
        }
    }
    // Transfer-Encoding is HTTP/1.1's: in an HTTP/1.0 answer the framing
    // cannot be trusted, and the connection is closed after it (RFC 9112
    // section 6.1), whatever `Connection` says.
    if transfer_encoding && !http11 {
        keep_alive = false;
    }
    let framing = if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        // A 204 has no body, so no length to state either (RFC 9110 §8.6):
        // a backend's is not passed on. (A 304's or a HEAD answer's is the
        // length the GET would have had, and stays.)
        if status == StatusCode::NO_CONTENT && content_length {
            headers.remove(header::CONTENT_LENGTH);
        } else if content_length {
            one_content_length(&mut headers)?;
        }
        Framing::Empty
    } else if transfer_encoding {
        // Only chunked can be passed on (the body is re-framed for the
        // client). No client asked for another (this client sends no
        // `TE`), so a backend that applies one is broken.
        let chunked = single_chunked(headers.get_all(header::TRANSFER_ENCODING))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        // With both, Transfer-Encoding wins and the length is a lie the
        // caller must not see; such a connection is not trusted again.
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
        if chunked {
            Framing::Chunked
        } else {
            keep_alive = false;
            Framing::UntilClose
        }
    } else if content_length {
        Framing::Length(one_content_length(&mut headers)?)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Parsed::Final(Head {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// The comma-separated tokens of every `Connection` line, trimmed, empty
/// ones skipped; a line that is not visible ASCII is skipped whole.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The length the `Content-Length` fields state, which are left as one
/// field with one plain number. RFC 9110 lets a recipient take `5, 5` (or
/// two `5` lines) as 5, but hyper's server refuses to send a list or a
/// value it cannot parse and drops the connection instead, after the
/// answer was already booked as passed on.
fn one_content_length(headers: &mut HeaderMap) -> Result<u64, Error> {
    let values = headers.get_all(header::CONTENT_LENGTH);
    let length = parse_content_length(values.iter())
        .ok_or_else(|| Error::Invalid("invalid content-length".into()))?;
    let mut values = values.iter();
    let plain = |v: &HeaderValue| {
        let digits = v.as_bytes();
        digits.iter().all(u8::is_ascii_digit) && (digits.len() == 1 || digits[0] != b'0')
    };
    if !(values.next().is_some_and(plain) && values.next().is_none()) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(length)
}

/// A `Content-Length` made of digits only; repeated values (in one header
/// or several) must all agree (RFC 9110 section 8.6).
pub(crate) fn parse_content_length<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> Option<u64> {
    let mut length = None;
    for value in values {
        for part in value.to_str().ok()?.split(',') {
            let part = part.trim();
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u64 = part.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
