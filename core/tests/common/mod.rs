//! Shared helpers for core's integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mosaic_core::config::SecretRef;
use mosaic_core::driver::{self, Reply, ReplyBody};
use mosaic_core::engine::Request;
use mosaic_core::http::Method;
use mosaic_core::region::Locality;
use mosaic_core::sim::{block_on, SimHost};
use mosaic_core::{Instant, RawConfig, Router, State};

/// The simulated epoch every test starts at.
pub const T0: u64 = 1_700_000_000;

pub fn router(toml_text: &str) -> Router {
    let raw: RawConfig = toml::from_str(toml_text).expect("test config parses");
    let cfg = match raw.validate() {
        Ok(c) => c,
        Err(e) => panic!("test config invalid:\n{e}"),
    };
    Router::new(cfg, |r| match r {
        SecretRef::Env(n) => Some(format!("secret-of-{n}")),
        _ => None,
    })
}

pub fn sim(r: &Router) -> SimHost {
    SimHost::new(State::new(&r.config, 42), Instant::from_secs(T0), 7)
}

pub fn hdrs(h: &[(&str, &str)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub fn send(
    host: &SimHost,
    r: &Router,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
) -> Reply<Vec<u8>> {
    let headers = hdrs(headers);
    let req = Request {
        method,
        host: Some("edge.test"),
        target,
        headers: &headers,
        client_ip: Some("203.0.113.9"),
        https: true,
        locality: Locality::default(),
        id: "req-1",
    };
    block_on(driver::handle(host, r, &req, 1 << 20))
}

pub fn get(host: &SimHost, r: &Router, target: &str) -> Reply<Vec<u8>> {
    send(host, r, Method::Get, target, &[])
}

pub fn body(r: &Reply<Vec<u8>>) -> String {
    match &r.body {
        ReplyBody::Bytes(b) | ReplyBody::Stream(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

pub fn header<'a>(r: &'a Reply<Vec<u8>>, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A problem reply's `code`.
pub fn problem_code(r: &Reply<Vec<u8>>) -> String {
    let v: serde_json::Value = serde_json::from_str(&body(r)).expect("problem+json body");
    v["code"].as_str().unwrap_or_default().to_string()
}
