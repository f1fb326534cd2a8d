//! Requests the gateway must refuse, from the shared table
//! `tests/data/bad_requests.json` (its `about` fields say how each table is
//! sent): every row's answer, checked on an in-process gateway over a raw
//! socket, byte for byte as the row writes it; and that none of them changed
//! the registry or reached a backend. The same file is replayed against the
//! release binary by `tests/resilience/test_bad_input.py`, which checks the
//! process (alive, no panic, log clean) rather than each answer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use serde_json::{Map, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TABLES: &str = include_str!("../../../tests/data/bad_requests.json");

fn tables() -> Value {
    serde_json::from_str(TABLES).expect("tests/data/bad_requests.json is JSON")
}

/// A text value of the table: a string, or a list of pieces (strings,
/// `{"repeat": s, "times": n}`, `{"hex": bytes}`).
fn text(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Array(pieces) => pieces
            .iter()
            .flat_map(|piece| match piece {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Object(p) if p.contains_key("repeat") => p["repeat"]
                    .as_str()
                    .unwrap()
                    .repeat(p["times"].as_u64().unwrap() as usize)
                    .into_bytes(),
                Value::Object(p) => {
                    let hex = p["hex"].as_str().unwrap();
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                        .collect()
                }
                other => panic!("not a piece of text: {other}"),
            })
            .collect(),
        other => panic!("not a text value: {other}"),
    }
}

/// The bytes an `admin` row sends (the table's `about` says how).
fn admin_request(row: &Value, token: &str) -> Vec<u8> {
    if let Some(raw) = row.get("raw") {
        return text(raw);
    }
    let mut head = Vec::new();
    head.extend(row["method"].as_str().unwrap().as_bytes());
    head.push(b' ');
    head.extend(text(&row["path"]));
    head.extend(b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n");
    match row.get("auth") {
        None => head.extend(format!("Authorization: Bearer {token}\r\n").as_bytes()),
        Some(Value::Null) => {}
        Some(value) => {
            head.extend(format!("Authorization: {}\r\n", value.as_str().unwrap()).as_bytes())
        }
    }
    match row.get("headers") {
        None => {}
        Some(Value::Array(headers)) => {
            for pair in headers {
                head.extend(pair[0].as_str().unwrap().as_bytes());
                head.extend(b": ");
                head.extend(text(&pair[1]));
                head.extend(b"\r\n");
            }
        }
        Some(many) => {
            let value = text(&many["value"]);
            for i in 0..many["count"].as_u64().unwrap() {
                head.extend(format!("{}{i}: ", many["name"].as_str().unwrap()).as_bytes());
                head.extend(&value);
                head.extend(b"\r\n");
            }
        }
    }
    let body = match (row.get("json"), row.get("body")) {
        (Some(json), _) => Some(serde_json::to_vec(json).unwrap()),
        (None, Some(body)) => Some(text(body)),
        (None, None) => None,
    };
    if let Some(body) = &body {
        head.extend(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    head.extend(b"\r\n");
    head.extend(body.unwrap_or_default());
    head
}

/// One answer as it came off the socket.
struct Answer {
    status: Option<u16>,
    /// Lower-case names, in order.
    headers: Vec<(String, String)>,
    /// What followed the head: the body, and anything after it.
    rest: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as its Content-Length frames it.
    fn body(&self) -> &[u8] {
        let length = self.header("content-length").and_then(|n| n.parse().ok());
        &self.rest[..length.unwrap_or(self.rest.len()).min(self.rest.len())]
    }

    fn error(&self) -> Option<(String, String)> {
        let v: Value = serde_json::from_slice(self.body()).ok()?;
        Some((
            v["error"]["code"].as_str()?.to_owned(),
            v["error"]["message"].as_str()?.to_owned(),
        ))
    }
}

/// Sends `payload` on a fresh connection while reading, until the gateway
/// closes it (it may answer and close before the whole payload is sent).
async fn exchange(gw: &TestGateway, payload: Vec<u8>) -> Answer {
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The write half is handed back, not dropped: dropping it would
    // half-close the connection, which a client that stops sending does not.
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(&payload).await;
        writer
    });
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the gateway neither answered nor closed the connection");
    drop(sending.await);
    parse(&seen)
}

fn parse(raw: &[u8]) -> Answer {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer {
            status: None,
            headers: Vec::new(),
            rest: raw.to_vec(),
        };
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        rest: raw[end + 4..].to_vec(),
    }
}

/// What the row expected and the answer did not show.
fn admin_problems(row: &Value, answer: &Answer) -> Vec<String> {
    let mut problems = Vec::new();
    let want = row["status"].as_u64().unwrap() as u16;
    if answer.status != Some(want) {
        problems.push(format!("status {:?}, expected {want}", answer.status));
        return problems;
    }
    if let Some(code) = row["code"].as_str() {
        match answer.error() {
            Some((got, message)) => {
                if got != code || message.is_empty() {
                    problems.push(format!("error {got:?} {message:?}, expected {code:?}"));
                }
                if let Some(part) = row.get("message").and_then(Value::as_str) {
                    if !message.contains(part) {
                        problems.push(format!("message {message:?} lacks {part:?}"));
                    }
                }
            }
            None => problems.push(format!(
                "not a JSON error: {}",
                String::from_utf8_lossy(answer.body())
            )),
        }
    }
    if want == 401 && answer.header("www-authenticate") != Some("Bearer") {
        problems.push("a 401 without `WWW-Authenticate: Bearer`".into());
    }
    if let Some(allow) = row.get("allow").and_then(Value::as_str) {
        if answer.header("allow") != Some(allow) {
            problems.push(format!(
                "Allow {:?}, expected {allow:?}",
                answer.header("allow")
            ));
        }
    }
    problems
}

/// The settings of the table, given as dotted keys, over the test defaults.
fn with_settings(dotted: &Map<String, Value>) -> gateway::config::Settings {
    let mut all = serde_json::to_value(gateway_settings()).unwrap();
    for (key, value) in dotted {
        let at = key.split('.').fold(&mut all, |at, part| {
            at.get_mut(part)
                .unwrap_or_else(|| panic!("no setting {key}"))
        });
        *at = value.clone();
    }
    serde_json::from_value(all).unwrap()
}

/// The registry as a refused request must leave it: everything but the
/// live counters and timestamps, listed and one by one.
async fn registry(gw: &TestGateway) -> Vec<Value> {
    let c = client();
    let list = json(c.get(gw.url("/api/servers")).send().await.unwrap()).await;
    let mut view = Vec::new();
    for server in list["servers"].as_array().unwrap() {
        let name = server["name"].as_str().unwrap();
        let one = json(
            c.get(gw.url(&format!("/api/servers/{name}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        for s in [server, &one] {
            view.push(serde_json::json!([
                s["name"],
                s["url"],
                s["weight"],
                s["state"],
                s["source"]
            ]));
        }
    }
    view
}

#[tokio::test]
async fn every_malformed_admin_request_gets_its_documented_answer_and_changes_nothing() {
    let table = &tables()["admin"];
    let settings = table["settings"].as_object().unwrap();
    let token = settings["admin.token"].as_str().unwrap();
    let gw = spawn_gateway(with_settings(settings)).await;
    let c = client();
    for server in table["servers"].as_array().unwrap() {
        let r = c
            .post(gw.url("/api/servers"))
            .bearer_auth(token)
            .json(server)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{server}");
    }
    let before = registry(&gw).await;
    let rows = table["rows"].as_array().unwrap();
    let mut failures = Vec::new();
    for row in rows {
        let answer = exchange(&gw, admin_request(row, token)).await;
        let problems = admin_problems(row, &answer);
        if !problems.is_empty() {
            failures.push(format!("{}: {}", row["label"], problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows not as documented:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(
        registry(&gw).await,
        before,
        "a refused request changed the registry"
    );
}

#[tokio::test]
async fn requests_refused_before_routing_are_answered_once_and_never_forwarded() {
    let table = &tables()["refused_before_routing"];
    let then = table["then"].as_str().unwrap();
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let mut failures = Vec::new();
    for row in table["rows"].as_array().unwrap() {
        let mut payload = text(&row["raw"]);
        payload.extend(then.as_bytes());
        let answer = exchange(&gw, payload).await;
        let statuses: Vec<u64> = match &row["status"] {
            Value::Array(list) => list.iter().map(|s| s.as_u64().unwrap()).collect(),
            one => vec![one.as_u64().unwrap()],
        };
        let mut problems = Vec::new();
        if !answer
            .status
            .is_some_and(|s| statuses.contains(&u64::from(s)))
        {
            problems.push(format!("status {:?}, expected {statuses:?}", answer.status));
        }
        if let Some(code) = row["code"].as_str() {
            if answer.error().map(|(c, _)| c).as_deref() != Some(code) {
                problems.push(format!("error {:?}, expected {code:?}", answer.error()));
            }
        }
        if answer.header("connection") != Some("close") {
            problems.push("no `Connection: close`".into());
        }
        if answer.rest.len() != answer.body().len() {
            problems.push("the request behind it was answered too".into());
        }
        if answer.header("x-served-by").is_some() {
            problems.push("forwarded to a backend".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", row["label"], problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let c = client();
    let stats = json(c.get(gw.url("/api/stats/1m")).send().await.unwrap()).await;
    assert_eq!(
        stats["requests"], 0,
        "a refused request reached the proxy: {stats}"
    );
    let r = c.get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the gateway no longer proxies");
}
