//! Connections over time: reuse, per-authority pools, a pooled connection
//! closed under a request, idle expiry, abandoned bodies, and answers that
//! come before a streamed upload is all sent. Reuse is seen from the
//! backend's side of the socket (connections accepted and closed).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::Method;
use http1_client::{BoxError, Client, Error, RequestBody};
use support::*;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

#[tokio::test]
async fn one_connection_carries_requests_in_turn_whatever_their_answer() {
    // Answers with a body, without one (204), and to HEAD, in turn.
    let backend = backend(|nth| {
        Reply::Answer(match nth % 3 {
            0 => OK.to_vec(),
            1 => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".to_vec(),
        })
    })
    .await;
    let client = client();
    for nth in 0..30 {
        let method = if nth % 3 == 2 {
            Method::HEAD
        } else {
            Method::GET
        };
        let mut response = send(&client, &backend, &method, &mut RequestBody::Empty)
            .await
            .unwrap();
        let body = read_body(response.body_mut()).await.unwrap();
        assert_eq!(body, if nth % 3 == 0 { &b"ok"[..] } else { b"" });
    }
    assert_eq!(backend.requests().len(), 30);
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn each_authority_has_its_own_connections() {
    let (a, b) = (
        answering(Reply::Answer(OK.to_vec())).await,
        answering(Reply::Answer(OK.to_vec())).await,
    );
    let client = client();
    for _ in 0..3 {
        for backend in [&a, &b] {
            let mut response = send(&client, backend, &Method::GET, &mut RequestBody::Empty)
                .await
                .unwrap();
            read_body(response.body_mut()).await.unwrap();
        }
    }
    assert_eq!((a.accepted(), b.accepted()), (1, 1));
    assert_eq!(client.idle_connections(), 2);
}

/// Two idle connections to `backend`, opened by two requests at once.
async fn two_idle(client: &Client, backend: &Backend) {
    let (mut a, mut b) = (RequestBody::Empty, RequestBody::Empty);
    let (one, two) = tokio::join!(
        send(client, backend, &Method::GET, &mut a),
        send(client, backend, &Method::GET, &mut b),
    );
    drop((one.unwrap(), two.unwrap()));
    assert_eq!(client.idle_connections(), 2);
    assert_eq!(backend.accepted(), 2);
}

#[tokio::test]
async fn a_pooled_connection_closed_under_a_request_fails_it_and_drops_its_siblings() {
    // Each connection's second request is met with a close: a backend
    // that restarted, or closed its idle connections all at once.
    let backend = backend(|nth| {
        if nth == 0 {
            Reply::Answer(OK.to_vec())
        } else {
            Reply::Close
        }
    })
    .await;
    let client = client();
    two_idle(&client, &backend).await;
    let e = send(&client, &backend, &Method::GET, &mut RequestBody::Empty)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Closed | Error::Io(_)), "{e}");
    // Not sent again on the sibling: that is the caller's decision.
    assert_eq!(backend.requests().len(), 3);
    assert_eq!(client.idle_connections(), 0);
    // The next request opens a fresh connection.
    let response = send(&client, &backend, &Method::GET, &mut RequestBody::Empty).await;
    assert_eq!(response.unwrap().status(), 200);
    assert_eq!(backend.accepted(), 3);
}

#[tokio::test]
async fn a_connection_that_broke_mid_answer_leaves_its_siblings_pooled() {
    // Part of an answer came: the backend was alive and acted on the
    // request, so the other idle connections are not suspect.
    let backend = backend(|nth| {
        if nth == 0 {
            Reply::Answer(OK.to_vec())
        } else {
            Reply::AnswerAndClose(b"HTTP/1.1 200 OK\r\ncontent-le".to_vec())
        }
    })
    .await;
    let client = client();
    two_idle(&client, &backend).await;
    let e = send(&client, &backend, &Method::GET, &mut RequestBody::Empty)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Closed), "{e}");
    assert_eq!(client.idle_connections(), 1);
}

#[tokio::test]
async fn a_connect_error_is_returned_as_the_caller_made_it() {
    let backend = answering(Reply::Answer(OK.to_vec())).await;
    let client = client();
    let (host, headers) = (host(), http::HeaderMap::new());
    let head = http1_client::RequestHead {
        method: &Method::GET,
        target: "/",
        host: &host,
        headers: &headers,
        extra: &[],
    };
    #[derive(Debug)]
    enum Failed {
        Refused,
        Http,
    }
    impl From<Error> for Failed {
        fn from(_: Error) -> Failed {
            Failed::Http
        }
    }
    let connect = || async { Err::<tokio::net::TcpStream, _>(Failed::Refused) };
    let sent = client
        .send(&backend.authority, connect, &head, &mut RequestBody::Empty)
        .await;
    assert!(matches!(sent, Err(Failed::Refused)), "{sent:?}");
    assert_eq!(backend.accepted(), 0);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let backend = answering(Reply::Answer(OK.to_vec())).await;
    let client = Client::new(8, Duration::from_millis(300));
    let mut response = send(&client, &backend, &Method::GET, &mut RequestBody::Empty)
        .await
        .unwrap();
    read_body(response.body_mut()).await.unwrap();
    assert_eq!(client.idle_connections(), 1);
    // The sweeper closes it without any further traffic...
    wait_for("the idle connection to be closed", || {
        backend.closed_by_peer() == 1
    })
    .await;
    assert_eq!(client.idle_connections(), 0);
    // ...and the next request opens a fresh one.
    let response = send(&client, &backend, &Method::GET, &mut RequestBody::Empty).await;
    assert_eq!(response.unwrap().status(), 200);
    assert_eq!(backend.accepted(), 2);
}

#[tokio::test]
async fn an_abandoned_body_closes_its_connection() {
    let backend = backend(|nth| {
        if nth == 0 {
            Reply::Download {
                head: b"HTTP/1.1 200 OK\r\ncontent-length: 16777216\r\n\r\n".to_vec(),
                blocks: 256,
            }
        } else {
            Reply::Answer(OK.to_vec())
        }
    })
    .await;
    let client = client();
    let mut response = send(&client, &backend, &Method::GET, &mut RequestBody::Empty)
        .await
        .unwrap();
    assert!(response.body_mut().next().await.unwrap().is_ok());
    drop(response);
    // Half a body cannot carry another request: that connection closes.
    wait_for("the abandoned connection to be closed", || {
        backend.closed_by_peer() == 1
    })
    .await;
    assert_eq!(client.idle_connections(), 0);
    let response = send(&client, &backend, &Method::GET, &mut RequestBody::Empty).await;
    assert_eq!(response.unwrap().status(), 200);
    assert_eq!(backend.accepted(), 2);
}

/// A body that sends `first` and then never ends.
fn endless(first: &'static [u8]) -> RequestBody {
    let first = futures_util::stream::iter([Ok::<_, BoxError>(Bytes::from_static(first))]);
    RequestBody::Stream(Box::pin(first.chain(futures_util::stream::pending())))
}

#[tokio::test]
async fn a_refusal_before_the_upload_ends_is_returned_at_once() {
    let backend = answering(Reply::Refuse(
        b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n".to_vec(),
    ))
    .await;
    let client = client();
    let mut response = bounded(
        "the refusal",
        send(&client, &backend, &Method::POST, &mut endless(b"part")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 413);
    read_body(response.body_mut()).await.unwrap();
    // The rest of the body was never sent: the connection cannot be reused.
    assert_eq!(client.idle_connections(), 0);
}

#[tokio::test]
async fn an_early_success_still_gets_the_whole_streamed_body() {
    // The backend answers as soon as it has the head, then reads the body.
    let backend = answering(Reply::Early(OK.to_vec())).await;
    let client = client();
    let pieces = (0..64).map(|_| Ok::<_, BoxError>(Bytes::from(vec![b'z'; 8192])));
    let mut body = RequestBody::Stream(Box::pin(futures_util::stream::iter(pieces)));
    let mut response = send(&client, &backend, &Method::POST, &mut body)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    read_body(response.body_mut()).await.unwrap();
    wait_for("the backend to read the body", || {
        backend.requests().len() == 1
    })
    .await;
    let request = &backend.requests()[0];
    let body_start = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    // 64 chunks of 8 KiB, each framed, and the last chunk.
    assert_eq!(
        request.len() - body_start,
        64 * (8192 + "2000\r\n\r\n".len()) + 5
    );
    assert_eq!(client.idle_connections(), 1);
}

#[tokio::test]
async fn a_full_body_can_be_sent_again() {
    let backend = answering(Reply::Answer(OK.to_vec())).await;
    let client = client();
    let mut body = RequestBody::Full(Bytes::from_static(b"again"));
    for _ in 0..2 {
        let mut response = send(&client, &backend, &Method::POST, &mut body)
            .await
            .unwrap();
        read_body(response.body_mut()).await.unwrap();
    }
    let requests = backend.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.ends_with(b"\r\n\r\nagain")));
}
