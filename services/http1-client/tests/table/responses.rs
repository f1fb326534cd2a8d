//! The response framing table: scripted answers (the exact bytes a backend
//! writes, and whether it closes the connection after them) and what the
//! client makes of each: status, headers as returned, body, and whether
//! the connection may carry another request; or the error.
//!
//! The same rows are run three ways: through the client over loopback
//! (`tests/responses.rs`), against hyper's client on the same backend
//! (`tests/against_hyper.rs`), and through the parser and decoder with the
//! bytes split at every offset and one at a time (the crate's unit tests),
//! so the rows are plain data shared by `#[path]`, expanded into one test
//! per row by [`response_table!`].
#![allow(dead_code)]

/// One scripted answer and what the client makes of it.
#[derive(Debug, Clone)]
pub struct Case {
    /// `GET` or `HEAD`.
    pub method: &'static str,
    /// Everything the backend writes, in one write.
    pub wire: Vec<u8>,
    /// The backend closes the connection after writing.
    pub close: bool,
    pub expect: Expect,
    /// How hyper's client reads the same answer.
    pub hyper: Hyper,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// A response read to its end.
    Response {
        status: u16,
        /// As returned, in the map's order (lines of one name together,
        /// names in first-seen order).
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        /// Whether the connection goes back to the pool.
        reused: bool,
    },
    /// The head is refused: `Error::Invalid` whose text holds this.
    Refused(&'static str),
    /// The backend closed before a whole head: `Error::Closed`.
    Closed,
    /// The head was good but the body is not: an error holding this, from
    /// the body stream or, when the broken bytes came with the head, from
    /// `send` (as `response body: ...`).
    Broken(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Hyper {
    /// Same status, headers and body, or an error where this client errs.
    Agrees,
    /// Knowingly different, and why.
    Differs(&'static str),
}

/// An answer to a GET.
pub fn get(wire: impl AsRef<[u8]>) -> Case {
    Case {
        method: "GET",
        wire: wire.as_ref().to_vec(),
        close: false,
        expect: Expect::Closed,
        hyper: Hyper::Agrees,
    }
}

/// An answer to a HEAD.
pub fn head(wire: impl AsRef<[u8]>) -> Case {
    Case {
        method: "HEAD",
        ..get(wire)
    }
}

impl Case {
    /// The backend closes the connection after its answer.
    pub fn then_close(mut self) -> Case {
        self.close = true;
        self
    }

    /// Read whole, with these headers and body; the connection is reused.
    pub fn answers(self, status: u16, headers: &[(&str, &str)], body: &str) -> Case {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string()));
        self.answers_with(status, headers.collect(), body)
    }

    /// As `answers`, with the headers built by the caller.
    pub fn answers_with(mut self, status: u16, headers: Vec<(String, String)>, body: &str) -> Case {
        self.expect = Expect::Response {
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n, v.into_bytes()))
                .collect(),
            body: body.as_bytes().to_vec(),
            reused: true,
        };
        self
    }

    /// ...but the connection is not reused.
    pub fn not_reused(mut self) -> Case {
        if let Expect::Response { reused, .. } = &mut self.expect {
            *reused = false;
        }
        self
    }

    pub fn refused(mut self, why: &'static str) -> Case {
        self.expect = Expect::Refused(why);
        self
    }

    pub fn closed(mut self) -> Case {
        self.expect = Expect::Closed;
        self
    }

    pub fn broken(mut self, why: &'static str) -> Case {
        self.expect = Expect::Broken(why);
        self
    }

    pub fn hyper_differs(mut self, why: &'static str) -> Case {
        self.hyper = Hyper::Differs(why);
        self
    }
}

pub const CLOSED_EARLY: &str = "closed the connection before the end of the body";

/// The filler value that makes [`head_of_size`] exactly `size` bytes.
pub fn filler(size: usize) -> String {
    let fixed = "HTTP/1.1 200 OK\r\nx-big: \r\ncontent-length: 0\r\n\r\n".len();
    "y".repeat(size - fixed)
}

/// A head of exactly `size` bytes: one `x-big` line of [`filler`], then
/// `content-length: 0`.
pub fn head_of_size(size: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
        filler(size)
    )
    .into_bytes()
}

/// The headers [`head_with_lines`] writes, as returned.
pub fn lines(lines: usize) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = (0..lines - 1)
        .map(|i| (format!("x-h{i}"), "v".into()))
        .collect();
    headers.push(("content-length".into(), "0".into()));
    headers
}

/// A head with `lines` header lines, the last of them `content-length: 0`.
pub fn head_with_lines(lines: usize) -> Vec<u8> {
    let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..lines - 1 {
        wire.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    wire.extend_from_slice(b"content-length: 0\r\n\r\n");
    wire
}

/// A chunked answer whose trailer section is `size` bytes of lines.
pub fn trailers_of_size(size: usize) -> Vec<u8> {
    let mut wire =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec();
    let line = b"x-t: 0123456789\r\n";
    for _ in 0..size / line.len() {
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b"\r\n");
    wire
}

/// What a client made of a scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        reused: bool,
    },
    /// No response: `Error::Invalid` with this text.
    Refused(String),
    /// No response: `Error::Closed`.
    Closed,
    /// A response whose body failed with this text.
    Broken(String),
    /// Any other failure, or no answer where one was due.
    Other(String),
}

/// Checks what the client made of `case` against what the row expects.
pub fn check(case: &Case, got: &Outcome) {
    let ok = match (&case.expect, got) {
        (
            Expect::Response {
                status,
                headers,
                body,
                reused,
            },
            Outcome::Response {
                status: s,
                headers: h,
                body: b,
                reused: r,
            },
        ) => status == s && headers == h && body == b && reused == r,
        (Expect::Refused(why), Outcome::Refused(text)) => text.contains(why),
        (Expect::Closed, Outcome::Closed) => true,
        (Expect::Broken(why), Outcome::Broken(text)) => text.contains(why),
        // Broken bytes that arrived with the head fail the whole exchange.
        (Expect::Broken(why), Outcome::Refused(text)) => {
            text.starts_with("response body: ") && text.contains(why)
        }
        _ => false,
    };
    assert!(
        ok,
        "expected {}\n     got {}",
        show_expected(&case.expect),
        show(got)
    );
}

fn show_expected(expect: &Expect) -> String {
    match expect.clone() {
        Expect::Response {
            status,
            headers,
            body,
            reused,
        } => show(&Outcome::Response {
            status,
            headers,
            body,
            reused,
        }),
        other => format!("{other:?}"),
    }
}

/// An outcome with its bytes as text, for failure messages.
pub fn show(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Response {
            status,
            headers,
            body,
            reused,
        } => {
            let headers: Vec<String> = headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
                .collect();
            format!(
                "{status} {headers:?} body {:?} reused {reused}",
                String::from_utf8_lossy(body)
            )
        }
        other => format!("{other:?}"),
    }
}

/// Invokes `$run!` with every row as `name: case,`.
macro_rules! response_table {
    ($run:ident) => {
        $run! {
            // ---- Content-Length
            length: get("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                .answers(200, &[("content-length", "5")], "hello"),
            length_zero: get("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .answers(200, &[("content-length", "0")], ""),
            length_with_leading_zeros: get("HTTP/1.1 200 OK\r\ncontent-length: 005\r\n\r\nhello")
                .answers(200, &[("content-length", "5")], "hello")
                .hyper_differs("hyper returns the header as sent; this client states the length plainly, since hyper's server refuses to pass on a length it cannot parse"),
            length_as_agreeing_list: get("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello")
                .answers(200, &[("content-length", "5")], "hello")
                .hyper_differs("hyper returns `5, 5` as sent; this client states it once"),
            length_on_agreeing_lines: get("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello")
                .answers(200, &[("content-length", "5")], "hello")
                .hyper_differs("hyper returns both lines; this client states the length once"),
            length_lines_disagree: get("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!")
                .refused("invalid content-length"),
            length_list_disagrees: get("HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello!")
                .refused("invalid content-length"),
            length_with_sign: get("HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello")
                .refused("invalid content-length"),
            length_negative: get("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n")
                .refused("invalid content-length"),
            length_with_letters: get("HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n")
                .refused("invalid content-length"),
            length_fraction: get("HTTP/1.1 200 OK\r\ncontent-length: 1.5\r\n\r\n")
                .refused("invalid content-length"),
            length_with_inner_space: get("HTTP/1.1 200 OK\r\ncontent-length: 1 2\r\n\r\n")
                .refused("invalid content-length"),
            length_empty: get("HTTP/1.1 200 OK\r\ncontent-length:\r\n\r\n")
                .refused("invalid content-length"),
            // Hyper reads this length, and (the backend closing) a body cut short.
            length_of_twenty_digits: get("HTTP/1.1 200 OK\r\ncontent-length: 10000000000000000000\r\n\r\n")
                .then_close()
                .refused("invalid content-length"),
            length_of_nineteen_digits_cut_short: get("HTTP/1.1 200 OK\r\ncontent-length: 9999999999999999999\r\n\r\nhello")
                .then_close()
                .broken(CLOSED_EARLY),
            length_cut_short: get("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten!!")
                .then_close()
                .broken(CLOSED_EARLY),
            length_followed_by_unasked_bytes: get("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA")
                .answers(200, &[("content-length", "2")], "ok")
                .not_reused(),

            // ---- chunked
            chunked: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], "hello"),
            chunked_empty: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], ""),
            chunked_with_extensions_and_spaces: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;name=\"value\"\r\nhello\r\n1\r\n \r\n6 ; a=b\r\nworld!\r\n0;last\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], "hello world!"),
            chunked_with_trailers: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-trailer: 1\r\nx-other: 2\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], "ok"),
            chunked_sizes_in_either_case_with_leading_zeros: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n000A\r\n0123456789\r\nb\r\nabcdefghijk\r\n00\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], "0123456789abcdefghijk"),
            chunked_size_with_trailing_spaces: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5  \r\nhello\r\n0\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], "hello"),
            chunked_coding_named_in_any_case: get("HTTP/1.1 200 OK\r\ntransfer-encoding:  Chunked \r\n\r\n2\r\nok\r\n0\r\n\r\n")
                .answers(200, &[("transfer-encoding", "Chunked")], "ok"),
            chunked_after_an_empty_coding_line: get("HTTP/1.1 200 OK\r\ntransfer-encoding:\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                .answers(200, &[("transfer-encoding", ""), ("transfer-encoding", "chunked")], "ok"),
            chunked_followed_by_unasked_bytes: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], "ok")
                .not_reused(),
            chunked_size_of_sixteen_digits: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1000000000000000\r\nx\r\n")
                .then_close()
                .broken("invalid chunk size"),
            chunked_size_not_hex: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n")
                .broken("invalid chunk size"),
            chunked_size_missing: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\nx\r\n0\r\n\r\n")
                .broken("invalid chunk size"),
            chunked_size_followed_by_junk: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n")
                .broken("invalid chunk size"),
            chunked_size_negative: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n")
                .broken("invalid chunk size"),
            chunked_data_longer_than_its_size: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n")
                .broken("chunk data not followed by CRLF"),
            chunked_size_line_ended_by_bare_lf: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n")
                .broken("invalid chunk size"),
            chunked_extension_holding_a_bare_lf: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], "hello")
                .hyper_differs("hyper refuses a line feed inside a chunk extension; this client skips the extension up to its CRLF"),
            chunked_size_line_too_long: get(format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(5000)))
                .broken("chunk-size line too long")
                .hyper_differs("hyper allows chunk extensions up to 16 KiB over the body; this client 4 KiB per size line"),
            chunked_trailers_too_long: get(trailers_of_size(17 * 1024))
                .broken("trailer section too long"),
            chunked_trailers_at_the_limit: get(trailers_of_size(16 * 1024 - 32))
                .answers(200, &[("transfer-encoding", "chunked")], "ok")
                .hyper_differs("hyper takes at most 100 trailer fields (and 16 KiB); this client limits only their bytes"),
            chunked_cut_in_data: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel")
                .then_close()
                .broken(CLOSED_EARLY),
            chunked_without_last_chunk: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
                .then_close()
                .broken(CLOSED_EARLY),
            chunked_without_final_crlf: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
                .then_close()
                .broken(CLOSED_EARLY),
            chunked_twice: get("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                .refused("chunked applied more than once")
                .hyper_differs("hyper only asks that the last coding be chunked, and decodes one layer; chunked twice is not a valid framing (RFC 9112 section 6.1)"),
            coding_gzip_then_chunked: get("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                .refused("\"gzip\" is not supported")
                .hyper_differs("hyper decodes the chunks and returns the gzip bytes as they are, for its caller to decode; this client's caller re-frames the body and would pass them on unlabelled"),
            coding_gzip_alone: get("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nzipped")
                .then_close()
                .refused("\"gzip\" is not supported")
                .hyper_differs("hyper reads the body until the close and returns it coded"),
            chunked_and_length: get("HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], "abc")
                .not_reused()
                .hyper_differs("hyper returns the content-length that did not describe the body; this client drops it"),
            chunked_in_http10_is_never_reused: get("HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                .then_close()
                .answers(200, &[("transfer-encoding", "chunked"), ("connection", "keep-alive")], "hello")
                .not_reused()
                .hyper_differs("hyper refuses Transfer-Encoding in an HTTP/1.0 answer; this client reads it and closes the connection after, as RFC 9112 section 6.1 has it"),

            // ---- until the close
            until_close: get("HTTP/1.1 200 OK\r\nx-kind: close\r\n\r\nuntil the end")
                .then_close()
                .answers(200, &[("x-kind", "close")], "until the end")
                .not_reused(),
            until_close_empty: get("HTTP/1.1 200 OK\r\n\r\n")
                .then_close()
                .answers(200, &[], "")
                .not_reused(),
            until_close_in_http10: get("HTTP/1.0 200 OK\r\n\r\n1.0 body")
                .then_close()
                .answers(200, &[], "1.0 body")
                .not_reused(),

            // ---- answers without a body
            head_keeps_its_length: head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
                .answers(200, &[("content-length", "5")], ""),
            head_length_stated_once: head("HTTP/1.1 200 OK\r\ncontent-length: 5 ,5\r\n\r\n")
                .answers(200, &[("content-length", "5")], "")
                .hyper_differs("hyper returns `5 ,5` as sent; this client states it once"),
            head_keeps_transfer_encoding: head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .answers(200, &[("transfer-encoding", "chunked")], ""),
            head_answer_followed_by_a_body: head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                .answers(200, &[("content-length", "5")], "")
                .not_reused(),
            no_content: get("HTTP/1.1 204 No Content\r\n\r\n").answers(204, &[], ""),
            no_content_drops_its_length: get("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .answers(204, &[], "")
                .hyper_differs("hyper returns the 204's content-length; a 204 states none (RFC 9110 section 8.6)"),
            no_content_followed_by_bytes: get("HTTP/1.1 204 No Content\r\n\r\nstray")
                .answers(204, &[], "")
                .not_reused(),
            not_modified_keeps_its_length: get("HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n")
                .answers(304, &[("content-length", "5")], "")
                .hyper_differs("hyper returns both lines; this client states the length once"),
            not_modified_with_chunked: get("HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n")
                .answers(304, &[("transfer-encoding", "chunked")], ""),

            // ---- 1xx
            continue_then_final: get("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                .answers(201, &[("content-length", "2")], "ok"),
            several_informational_then_final: get("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .answers(200, &[("content-length", "2")], "ok"),
            informational_before_a_head_answer: head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
                .answers(200, &[("content-length", "5")], ""),
            informational_then_close: get("HTTP/1.1 100 Continue\r\n\r\n")
                .then_close()
                .closed(),
            switching_protocols: get("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
                .refused("unrequested 101")
                .hyper_differs("hyper returns a 101 to its caller, whose request could have asked for the upgrade; this client never asks for one"),

            // ---- keep-alive
            http10_with_keep_alive: get("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 4\r\n\r\n1.0!")
                .answers(200, &[("connection", "keep-alive"), ("content-length", "4")], "1.0!"),
            http10_without_keep_alive: get("HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\n1.0!")
                .answers(200, &[("content-length", "4")], "1.0!")
                .not_reused(),
            connection_close: get("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
                .answers(200, &[("connection", "close"), ("content-length", "2")], "ok")
                .not_reused(),
            connection_close_among_tokens: get("HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\ncontent-length: 2\r\n\r\nok")
                .answers(200, &[("connection", "Upgrade, CLOSE"), ("content-length", "2")], "ok")
                .not_reused(),
            connection_close_on_a_second_line: get("HTTP/1.1 200 OK\r\nconnection: x-a\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
                .answers(200, &[("connection", "x-a"), ("connection", "close"), ("content-length", "2")], "ok")
                .not_reused(),
            connection_other_tokens_keep_alive: get("HTTP/1.1 200 OK\r\nconnection: x-a, keep-alive\r\ncontent-length: 2\r\n\r\nok")
                .answers(200, &[("connection", "x-a, keep-alive"), ("content-length", "2")], "ok"),

            // ---- status lines
            status_without_reason: get("HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok")
                .answers(200, &[("content-length", "2")], "ok"),
            status_with_own_reason: get("HTTP/1.1 299 Whatever You Like\r\ncontent-length: 0\r\n\r\n")
                .answers(299, &[("content-length", "0")], ""),
            status_999: get("HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n")
                .answers(999, &[("content-length", "0")], ""),
            status_under_100: get("HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n")
                .refused("status code 99"),
            status_of_four_digits: get("HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n")
                .refused("invalid"),
            version_2: get("HTTP/2.0 200 OK\r\ncontent-length: 0\r\n\r\n").refused("invalid"),
            not_http: get("hello there\r\n\r\n").refused("invalid"),
            nothing_then_close: get("").then_close().closed(),
            head_cut_short: get("HTTP/1.1 200 OK\r\ncontent-le").then_close().closed(),

            // ---- header lines
            names_lowercased_values_as_sent: get("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Served-By: b1\r\ncontent-length: 0\r\n\r\n")
                .answers(200, &[("content-type", "text/plain"), ("x-served-by", "b1"), ("content-length", "0")], ""),
            repeated_names_kept_in_order: get("HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nx-other: o\r\nset-cookie: b=2\r\ncontent-length: 0\r\n\r\n")
                .answers(200, &[("set-cookie", "a=1"), ("set-cookie", "b=2"), ("x-other", "o"), ("content-length", "0")], ""),
            value_with_obs_text: get("HTTP/1.1 200 OK\r\nx-name: caf\u{e9}\r\ncontent-length: 0\r\n\r\n")
                .answers(200, &[("x-name", "caf\u{e9}"), ("content-length", "0")], ""),
            value_empty: get("HTTP/1.1 200 OK\r\nx-empty:\r\ncontent-length: 0\r\n\r\n")
                .answers(200, &[("x-empty", ""), ("content-length", "0")], ""),
            value_whitespace_trimmed: get("HTTP/1.1 200 OK\r\nx-pad: \t padded \t \r\ncontent-length: 0\r\n\r\n")
                .answers(200, &[("x-pad", "padded"), ("content-length", "0")], ""),
            bare_lf_line_ends: get("HTTP/1.1 200 OK\ncontent-length: 2\n\nok")
                .answers(200, &[("content-length", "2")], "ok"),
            obs_fold: get("HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 0\r\n\r\n")
                .refused("invalid"),
            space_before_colon: get("HTTP/1.1 200 OK\r\nserver : x\r\ncontent-length: 0\r\n\r\n")
                .refused("invalid"),
            name_with_space: get("HTTP/1.1 200 OK\r\nx y: 1\r\ncontent-length: 0\r\n\r\n")
                .refused("invalid"),
            name_empty: get("HTTP/1.1 200 OK\r\n: 1\r\ncontent-length: 0\r\n\r\n")
                .refused("invalid"),
            value_with_control_byte: get("HTTP/1.1 200 OK\r\nx-a: a\x01b\r\ncontent-length: 0\r\n\r\n")
                .refused("invalid"),
            value_with_nul: get("HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 0\r\n\r\n")
                .refused("invalid"),
            lines_at_the_limit: get(head_with_lines(128))
                .answers_with(200, lines(128), "")
                .hyper_differs("hyper's client takes at most 100 header lines; this client 128"),
            lines_over_the_limit: get(head_with_lines(129)).refused("too many headers"),
            head_at_the_size_limit: get(head_of_size(64 * 1024))
                .answers(200, &[("x-big", &filler(64 * 1024)), ("content-length", "0")], ""),
            head_over_the_size_limit: get(head_of_size(64 * 1024 + 1))
                .refused("larger than 65536 bytes")
                .hyper_differs("hyper takes heads up to its read buffer's limit (about 400 KiB); this client 64 KiB"),
        }
    };
}
