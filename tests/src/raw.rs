//! Raw HTTP/1.1 over TCP to a router's port: what the security corpora need to send exactly as
//! written (HTTP clients normalise heads, targets and framing).
//!
//! The native server parses these bytes itself; under `wrangler dev` (workerd) and `wasmtime
//! serve` the platform's front end parses them first, so a scenario states, case by case, what
//! the platform refuses or normalises itself before the shared application sees the request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What came back on a raw connection.
#[derive(Debug)]
pub struct Raw {
    /// Everything read, lossily decoded.
    pub text: String,
    /// Whether the router closed the connection (EOF or reset) within the read window.
    pub closed: bool,
}

impl Raw {
    /// The status of every response read, in order (pipelined answers follow each other, each
    /// framed by its Content-Length or chunked encoding).
    #[must_use]
    pub fn statuses(&self) -> Vec<u16> {
        let mut out = Vec::new();
        let mut rest = self.text.as_str();
        while let Some(line) = rest
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| rest.strip_prefix("HTTP/1.0 "))
        {
            let Some(code) = line.get(..3).and_then(|c| c.parse::<u16>().ok()) else {
                break;
            };
            let Some((head, after)) = rest.split_once("\r\n\r\n") else {
                out.push(code);
                break;
            };
            // interim answers (100 Continue) are not answers
            if code >= 200 {
                out.push(code);
            }
            let header = |name: &str| {
                head.lines().skip(1).find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
            };
            if code < 200 {
                rest = after;
                continue;
            }
            if header("transfer-encoding")
                .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
            {
                rest = skip_chunked(after);
            } else {
                let len = header("content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                rest = after.get(len..).unwrap_or("");
            }
        }
        out
    }

    /// The first final response's status.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        self.statuses().first().copied()
    }

    /// The first final response's head.
    fn head(&self) -> &str {
        let mut rest = self.text.as_str();
        loop {
            let Some((head, after)) = rest.split_once("\r\n\r\n") else {
                return rest;
            };
            if head.starts_with("HTTP/1.1 1") || head.starts_with("HTTP/1.0 1") {
                rest = after;
                continue;
            }
            return head;
        }
    }

    /// The first final response's header (name case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<String> {
        self.head().lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// The first final response's body (by its Content-Length, or de-chunked).
    #[must_use]
    pub fn body(&self) -> String {
        let head = self.head();
        let Some(start) = self.text.find(head).map(|i| i + head.len() + 4) else {
            return String::new();
        };
        let rest = self.text.get(start..).unwrap_or("");
        if self
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            return dechunk(rest);
        }
        let n = self
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(rest.len())
            .min(rest.len());
        rest[..n].to_string()
    }

    /// The problem `code` of the first response, if it is problem+json.
    #[must_use]
    pub fn code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body()).ok()?;
        v["code"].as_str().map(str::to_string)
    }

    /// Whether the first response is a problem+json document.
    #[must_use]
    pub fn is_problem(&self) -> bool {
        self.header("content-type")
            .is_some_and(|t| t.starts_with("application/problem+json"))
    }
}

fn chunks(mut rest: &str) -> (String, &str) {
    let mut out = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return (out, "");
        };
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 {
            // trailers, then the blank line
            let end = after.find("\r\n").map_or(after.len(), |i| i + 2);
            let after = after.get(end..).unwrap_or("");
            return (out, after);
        }
        out.push_str(after.get(..size).unwrap_or(after));
        rest = after.get(size + 2..).unwrap_or("");
    }
}

fn skip_chunked(rest: &str) -> &str {
    chunks(rest).1
}

fn dechunk(rest: &str) -> String {
    chunks(rest).0
}

/// Writes `req` as is to `127.0.0.1:port` and reads until the router closes the connection, or
/// `answers` final answers have come and nothing more follows within 300 ms, or nothing at all
/// comes for `quiet` (10 s at most in all).
///
/// # Panics
/// When the port does not accept the connection.
pub async fn exchange_until(port: u16, req: &[u8], answers: usize, quiet: Duration) -> Raw {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the router");
    // a refusal may close the connection before all of the request is written
    let _ = s.write_all(req).await;
    let mut raw = Raw {
        text: String::new(),
        closed: false,
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let wait = if answers > 0 && raw.statuses().len() >= answers {
            Duration::from_millis(300)
        } else {
            quiet
        };
        let until = (tokio::time::Instant::now() + wait).min(deadline);
        match tokio::time::timeout_at(until, s.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => {
                raw.closed = true;
                break;
            }
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                raw.text = String::from_utf8_lossy(&buf).into_owned();
            }
            Err(_) => break,
        }
    }
    raw
}

/// [`exchange_until`] with a 1.5 s quiet window and no count of answers: reads until the router
/// closes the connection or stays quiet for `quiet`.
pub async fn exchange_with(port: u16, req: &[u8], quiet: Duration) -> Raw {
    exchange_until(port, req, 0, quiet).await
}

/// [`exchange_with`] with a 1.5 s quiet window.
pub async fn exchange(port: u16, req: &[u8]) -> Raw {
    exchange_with(port, req, Duration::from_millis(1500)).await
}

/// [`exchange_until`] `answers` answers, waiting up to 5 s for each.
pub async fn exchange_answers(port: u16, req: &[u8], answers: usize) -> Raw {
    let quiet = if answers == 0 {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(5)
    };
    exchange_until(port, req, answers, quiet).await
}
