//! The request framing table: for each method, caller's headers, extra
//! lines and body kind, the exact bytes a backend receives, or the error.
//! Framing headers always come from the body actually sent.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use http1_client::{BoxError, Error, RequestBody, RequestHead};
use support::*;

/// The body a row sends.
enum Body {
    Empty,
    Full(Vec<u8>),
    /// Streamed in these pieces.
    Stream(Vec<&'static str>),
    /// Streamed: one piece, then this error.
    StreamFailing(&'static str),
}

enum Expect {
    /// The backend receives exactly these bytes.
    Sent(Vec<u8>),
    /// `Error::RequestBody` holding this text; the request is not recorded.
    Fails(&'static str),
}

struct Row {
    method: &'static str,
    target: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    extra: Vec<(&'static str, &'static str)>,
    body: Body,
    expect: Expect,
}

fn request(method: &'static str, target: &'static str) -> Row {
    Row {
        method,
        target,
        headers: Vec::new(),
        extra: Vec::new(),
        body: Body::Empty,
        expect: Expect::Fails("no expectation"),
    }
}

impl Row {
    fn headers(mut self, headers: &[(&'static str, &'static str)]) -> Row {
        self.headers = headers.to_vec();
        self
    }

    fn extra(mut self, extra: &[(&'static str, &'static str)]) -> Row {
        self.extra = extra.to_vec();
        self
    }

    fn body(mut self, body: Body) -> Row {
        self.body = body;
        self
    }

    fn sends(mut self, wire: impl AsRef<[u8]>) -> Row {
        self.expect = Expect::Sent(wire.as_ref().to_vec());
        self
    }

    fn fails(mut self, why: &'static str) -> Row {
        self.expect = Expect::Fails(why);
        self
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

async fn run(row: Row) {
    let backend = answering(Reply::Answer(OK.to_vec())).await;
    let client = client();
    let mut headers = HeaderMap::new();
    for (name, value) in &row.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let extra: Vec<(HeaderName, HeaderValue)> = row
        .extra
        .iter()
        .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
        .collect();
    let (method, host) = (Method::from_bytes(row.method.as_bytes()).unwrap(), host());
    let head = RequestHead {
        method: &method,
        target: row.target,
        host: &host,
        headers: &headers,
        extra: &extra,
    };
    let mut body = match row.body {
        Body::Empty => RequestBody::Empty,
        Body::Full(bytes) => RequestBody::Full(bytes.into()),
        Body::Stream(pieces) => RequestBody::Stream(Box::pin(futures_util::stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok::<_, BoxError>(Bytes::from_static(p.as_bytes()))),
        ))),
        Body::StreamFailing(why) => RequestBody::Stream(Box::pin(futures_util::stream::iter([
            Ok(Bytes::from_static(b"part")),
            Err::<Bytes, BoxError>(why.into()),
        ]))),
    };
    let sent = bounded(
        "the exchange",
        client.send(&backend.authority, backend.connect(), &head, &mut body),
    )
    .await;
    match row.expect {
        Expect::Sent(wire) => {
            let mut response = sent.unwrap();
            assert_eq!(response.status(), 200);
            read_body(response.body_mut()).await.unwrap();
            let requests = backend.requests();
            assert_eq!(requests.len(), 1);
            assert_eq!(
                String::from_utf8_lossy(&requests[0]),
                String::from_utf8_lossy(&wire)
            );
        }
        Expect::Fails(why) => match sent {
            Err(Error::RequestBody(e)) => assert!(e.contains(why), "{e}"),
            Err(e) => panic!("not a request body error: {e}"),
            Ok(response) => panic!("answered {}", response.status()),
        },
    }
}

macro_rules! requests {
    ($($name:ident: $row:expr,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                run($row).await;
            }
        )*
    };
}

fn big() -> Vec<u8> {
    (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect()
}

fn with_big_body(head: &str) -> Vec<u8> {
    let mut wire = head.as_bytes().to_vec();
    wire.extend_from_slice(&big());
    wire
}

requests! {
    get_without_a_body: request("GET", "/p?q=1")
        .sends("GET /p?q=1 HTTP/1.1\r\nhost: backend.test\r\n\r\n"),
    head_request: request("HEAD", "/")
        .sends("HEAD / HTTP/1.1\r\nhost: backend.test\r\n\r\n"),
    options_for_the_server: request("OPTIONS", "*")
        .sends("OPTIONS * HTTP/1.1\r\nhost: backend.test\r\n\r\n"),
    extension_method: request("PURGE", "/cache/x")
        .sends("PURGE /cache/x HTTP/1.1\r\nhost: backend.test\r\n\r\n"),
    headers_in_order_with_their_names_lowercased: request("GET", "/")
        .headers(&[("Accept", "*/*"), ("X-Many", "1"), ("x-b", "B"), ("x-many", "2")])
        .sends("GET / HTTP/1.1\r\nhost: backend.test\r\naccept: */*\r\nx-many: 1\r\nx-many: 2\r\nx-b: B\r\n\r\n"),
    header_values_sent_as_they_are: request("GET", "/")
        .headers(&[("x-name", "caf\u{e9}"), ("x-empty", ""), ("x-inner", "a  b")])
        .sends("GET / HTTP/1.1\r\nhost: backend.test\r\nx-name: caf\u{e9}\r\nx-empty: \r\nx-inner: a  b\r\n\r\n"),
    the_callers_host_is_replaced: request("GET", "/")
        .headers(&[("host", "public.example"), ("x-a", "1")])
        .sends("GET / HTTP/1.1\r\nhost: backend.test\r\nx-a: 1\r\n\r\n"),
    extra_lines_come_last: request("GET", "/")
        .headers(&[("x-a", "1")])
        .extra(&[("x-request-id", "id"), ("x-forwarded-proto", "http")])
        .sends("GET / HTTP/1.1\r\nhost: backend.test\r\nx-a: 1\r\nx-request-id: id\r\nx-forwarded-proto: http\r\n\r\n"),
    extra_lines_replace_every_line_of_their_name: request("GET", "/")
        .headers(&[("x-request-id", "theirs"), ("x-forwarded-for", "10.0.0.1"), ("x-a", "1"), ("x-forwarded-for", "10.0.0.2")])
        .extra(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2, 127.0.0.1"), ("x-request-id", "ours")])
        .sends("GET / HTTP/1.1\r\nhost: backend.test\r\nx-a: 1\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\nx-request-id: ours\r\n\r\n"),
    framing_comes_from_the_body_not_the_caller: request("POST", "/p")
        .headers(&[("content-length", "999"), ("transfer-encoding", "chunked"), ("x-kept", "yes")])
        .body(Body::Full(b"tiny".to_vec()))
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\nx-kept: yes\r\ncontent-length: 4\r\n\r\ntiny"),
    framing_in_extra_lines_is_skipped_too: request("POST", "/p")
        .extra(&[("content-length", "7"), ("transfer-encoding", "chunked"), ("x-id", "1")])
        .body(Body::Full(b"ab".to_vec()))
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\nx-id: 1\r\ncontent-length: 2\r\n\r\nab"),
    no_body_keeps_a_declared_length_as_zero: request("POST", "/p")
        .headers(&[("content-length", "10")])
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\ncontent-length: 0\r\n\r\n"),
    no_body_and_none_declared_has_no_framing: request("POST", "/p")
        .headers(&[("transfer-encoding", "chunked")])
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\n\r\n"),
    full_body: request("PUT", "/p")
        .body(Body::Full(b"hello".to_vec()))
        .sends("PUT /p HTTP/1.1\r\nhost: backend.test\r\ncontent-length: 5\r\n\r\nhello"),
    full_body_of_nothing: request("POST", "/p")
        .body(Body::Full(Vec::new()))
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\ncontent-length: 0\r\n\r\n"),
    full_body_too_large_for_the_heads_write: request("POST", "/p")
        .body(Body::Full(big()))
        .sends(with_big_body("POST /p HTTP/1.1\r\nhost: backend.test\r\ncontent-length: 20000\r\n\r\n")),
    stream_without_a_length_is_chunked: request("POST", "/p")
        .body(Body::Stream(vec!["ab", "", "cde"]))
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
    stream_of_nothing_is_one_last_chunk: request("POST", "/p")
        .body(Body::Stream(vec![]))
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
    stream_chunked_even_when_the_caller_said_otherwise: request("POST", "/p")
        .headers(&[("transfer-encoding", "gzip, chunked")])
        .body(Body::Stream(vec!["ab"]))
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"),
    stream_with_a_declared_length_goes_as_it_is: request("POST", "/p")
        .headers(&[("content-length", "5")])
        .body(Body::Stream(vec!["ab", "cde"]))
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\ncontent-length: 5\r\n\r\nabcde"),
    stream_with_a_length_stated_twice: request("POST", "/p")
        .headers(&[("content-length", "5, 5")])
        .body(Body::Stream(vec!["abcde"]))
        .sends("POST /p HTTP/1.1\r\nhost: backend.test\r\ncontent-length: 5\r\n\r\nabcde"),
    stream_longer_than_declared: request("POST", "/p")
        .headers(&[("content-length", "4")])
        .body(Body::Stream(vec!["ab", "cde"]))
        .fails("longer than its content-length of 4 bytes"),
    stream_shorter_than_declared: request("POST", "/p")
        .headers(&[("content-length", "5")])
        .body(Body::Stream(vec!["ab"]))
        .fails("ended after 2 of its 5 declared bytes"),
    stream_with_an_invalid_declared_length: request("POST", "/p")
        .headers(&[("content-length", "abc")])
        .body(Body::Stream(vec!["abc"]))
        .fails("invalid content-length"),
    stream_that_breaks: request("POST", "/p")
        .body(Body::StreamFailing("client went away"))
        .fails("client went away"),
}
