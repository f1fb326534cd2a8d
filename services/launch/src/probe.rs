//! A minimal HTTP/1.0 GET for health probes.
//!
//! Distroless images have no shell and no curl, so Docker `HEALTHCHECK`s,
//! Kubernetes exec probes and `helm test` run `gateway probe URL` (or
//! `backend probe URL`) instead. Plain `http://` only; blocking std I/O, so it
//! needs no runtime. HTTP/1.0 keeps the
//! answer unchunked and the connection closed after it.
//!
//! Depends on nothing else in the crate.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The result of a successful exchange (any status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response body (lossily decoded).
    pub body: String,
}

/// GETs `url` with an overall `timeout`.
pub fn get(url: &str, timeout: Duration) -> Result<ProbeResponse, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?}: missing host"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: probe\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(1024 * 1024)
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "malformed HTTP response".to_owned())?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(ProbeResponse { status, body })
}

/// Runs the `probe` subcommand: exit code 0 on a 2xx answer, 1 otherwise.
pub fn run_cli(url: &str, timeout: Duration, quiet: bool) -> std::process::ExitCode {
    match get(url, timeout) {
        Ok(r) if (200..300).contains(&r.status) => {
            if !quiet {
                println!("{}", r.body.trim_end());
            }
            std::process::ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("probe {url}: HTTP {}", r.status);
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("probe {url}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
