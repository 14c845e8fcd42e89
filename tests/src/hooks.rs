//! Webhook test support shared by the local, Spin and Workers suites: GitHub deliveries signed
//! as GitHub signs them, posting them, the admin API, and reading the CloudEvents a
//! destination received.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use mosaic_core::time::Instant;
use mosaic_providers::webhook::{preset_by_name, sign};

use crate::host::ADMIN_TOKEN;
use crate::mock::{Mock, Seen};
use crate::scenarios::{Client, Resp};

/// The wall clock as core's [`Instant`].
#[must_use]
pub fn now() -> Instant {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    Instant::from_micros(us)
}

/// A GitHub `issues.opened` body for issue `n`.
#[must_use]
pub fn issue_body(n: u32) -> Vec<u8> {
    format!(
        r#"{{"action":"opened","issue":{{"number":{n},"title":"t{n}"}},"repository":{{"full_name":"o/r"}}}}"#
    )
    .into_bytes()
}

/// The headers GitHub would send with `body` as delivery `id`, signed with `secret`.
///
/// # Panics
/// When the GitHub preset is missing or signing fails (a bug in the test).
#[must_use]
pub fn github_headers(secret: &str, body: &[u8], id: &str) -> Vec<(String, String)> {
    let preset = preset_by_name("github").expect("github preset");
    let mut h = sign(
        preset,
        secret.as_bytes(),
        body,
        None,
        id,
        Some("issues"),
        now(),
    )
    .expect("sign");
    h.push((
        String::from("content-type"),
        String::from("application/json"),
    ));
    h
}

/// POSTs `body` with `headers` to `path`.
pub async fn post_hook(
    c: &Client,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Resp {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    c.send("POST", path, &h, body).await
}

/// Delivers issue `n` as GitHub delivery `id`, signed with `secret`, to `/hooks/gh`.
pub async fn deliver(c: &Client, secret: &str, n: u32, id: &str) -> Resp {
    let b = issue_body(n);
    post_hook(c, "/hooks/gh", &github_headers(secret, &b, id), b).await
}

/// `method path` on the admin API, with the admin token.
pub async fn admin(c: &Client, method: &str, path: &str) -> Resp {
    c.send(
        method,
        path,
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        Vec::new(),
    )
    .await
}

/// The CloudEvent a destination received.
///
/// # Panics
/// When the body is not JSON.
#[must_use]
pub fn cloud_event(s: &Seen) -> serde_json::Value {
    serde_json::from_slice(&s.body).expect("the forwarded body is JSON")
}

/// How many times each event id was accepted (2xx) by the destination `m`.
#[must_use]
pub fn ok_ids(m: &Mock) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    for (s, status) in m.answered() {
        if status.is_some_and(|st| (200..300).contains(&st)) {
            *ids.entry(cloud_event(&s)["id"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
    }
    ids
}
