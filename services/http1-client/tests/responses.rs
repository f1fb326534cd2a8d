//! The response framing table (`table/responses.rs`) over loopback: each
//! scripted answer read by this client, checked against its row, and read
//! by hyper's client (`hyper::client::conn::http1`) on the same backend,
//! the two compared: status, headers, body, and whether it failed. Where
//! they knowingly differ, the row says so and why, and this checks that
//! they still do.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;
#[macro_use]
#[path = "table/responses.rs"]
mod table;

use bytes::Bytes;
use http::Method;
use http1_client::{Error, RequestBody};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::*;
use table::*;
use tokio::net::TcpStream;

async fn backend_for(case: &Case) -> Backend {
    let wire = case.wire.clone();
    answering(if case.close {
        Reply::AnswerAndClose(wire)
    } else {
        Reply::Answer(wire)
    })
    .await
}

fn method(case: &Case) -> Method {
    Method::from_bytes(case.method.as_bytes()).unwrap()
}

fn header_list(headers: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// What this client makes of the row's answer; `reused` is whether the
/// connection is in the pool once the body has been read.
async fn ours(case: &Case) -> Outcome {
    let backend = backend_for(case).await;
    let client = client();
    let sent = send(&client, &backend, &method(case), &mut RequestBody::Empty).await;
    let mut response = match sent {
        Ok(response) => response,
        Err(Error::Invalid(e)) => return Outcome::Refused(e),
        Err(Error::Closed) => return Outcome::Closed,
        Err(e) => return Outcome::Other(e.to_string()),
    };
    match read_body(response.body_mut()).await {
        Ok(body) => Outcome::Response {
            status: response.status().as_u16(),
            headers: header_list(response.headers()),
            body: body.to_vec(),
            reused: client.idle_connections() == 1,
        },
        Err((_, e)) => Outcome::Broken(e),
    }
}

/// What hyper's client makes of it (`reused` is not asked of hyper).
async fn hyper(case: &Case) -> Outcome {
    let backend = backend_for(case).await;
    let stream = TcpStream::connect(backend.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method(case))
        .uri("/")
        .header(http::header::HOST, host())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(e) => return Outcome::Other(format!("hyper: {e}")),
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(body) => Outcome::Response {
            status: parts.status.as_u16(),
            headers: header_list(&parts.headers),
            body: body.to_bytes().to_vec(),
            reused: false,
        },
        Err(e) => Outcome::Broken(format!("hyper: {e}")),
    }
}

/// Same status, headers and body, or both failed (at whichever step).
fn agree(ours: &Outcome, theirs: &Outcome) -> bool {
    match (ours, theirs) {
        (
            Outcome::Response {
                status,
                headers,
                body,
                ..
            },
            Outcome::Response {
                status: s,
                headers: h,
                body: b,
                ..
            },
        ) => status == s && headers == h && body == b,
        (Outcome::Response { .. }, _) | (_, Outcome::Response { .. }) => false,
        _ => true,
    }
}

macro_rules! this_client {
    ($($name:ident: $case:expr,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let case = $case;
                let got = bounded("the exchange", ours(&case)).await;
                check(&case, &got);
            }
        )*
    };
}

macro_rules! against_hyper {
    ($($name:ident: $case:expr,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let case = $case;
                let ours = bounded("this client's exchange", ours(&case)).await;
                let theirs = bounded("hyper's exchange", hyper(&case)).await;
                let same = agree(&ours, &theirs);
                match case.hyper {
                    Hyper::Agrees => assert!(
                        same,
                        "this client: {}\n      hyper: {}",
                        show(&ours),
                        show(&theirs)
                    ),
                    Hyper::Differs(why) => assert!(
                        !same,
                        "the row says hyper differs ({why}), but both gave {}",
                        show(&ours)
                    ),
                }
            }
        )*
    };
}

mod this_client {
    use super::*;
    response_table!(this_client);
}

mod against_hyper {
    use super::*;
    response_table!(against_hyper);
}
