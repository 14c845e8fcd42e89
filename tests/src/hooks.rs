//! Webhook test support shared by the local, Spin and Workers suites and the scenarios of
//! [`crate::scenarios_hooks`]: the endpoint config and its secrets, GitHub deliveries signed as
//! GitHub signs them, posting them (also chunked over a raw connection), the admin API, waiting
//! for deliveries to settle, and reading the CloudEvents a destination received.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mosaic_core::time::Instant;
use mosaic_providers::webhook::{preset_by_name, sign};

use crate::host::{HostUnderTest, Running, ADMIN_TOKEN};
use crate::mock::{Mock, Seen};
use crate::scenarios::{server, Client, Resp};

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

/// The endpoint's GitHub secret (bound to `env:MOSAIC_TEST_HOOK_SECRET`).
pub const HOOK_SECRET: &str = "gh-hook-secret-3f9a1c";
/// The destination's Standard Webhooks signing secret (`env:MOSAIC_TEST_DEST_SECRET`).
pub const DEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The endpoint's body limit.
pub const MAX_BODY: usize = 4096;

/// The secrets of [`config`].
pub const SECRETS: [(&str, &str); 2] = [
    ("MOSAIC_TEST_HOOK_SECRET", HOOK_SECRET),
    ("MOSAIC_TEST_DEST_SECRET", DEST_SECRET),
];

/// One GitHub endpoint `gh` forwarding to `dest`, signed, with `attempts` attempts.
#[must_use]
pub fn config(dest: &str, attempts: u32) -> String {
    format!(
        "{}[[webhooks]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [\"env:MOSAIC_TEST_HOOK_SECRET\"]\nmax_body_bytes = {MAX_BODY}\ndestinations = [{{ url = \"{dest}\", allow_private = true, sign_secret = \"env:MOSAIC_TEST_DEST_SECRET\", attempts = {attempts} }}]\n",
        server("")
    )
}

/// A router serving `cfg` with the webhook secrets bound.
///
/// # Panics
/// When it does not start.
pub fn start(host: &dyn HostUnderTest, cfg: &str) -> (Box<dyn Running>, Client) {
    let r = host
        .start_with_secrets(cfg, &SECRETS)
        .unwrap_or_else(|e| panic!("{}: router did not start: {e}\nconfig:\n{cfg}", host.name()));
    let c = Client::new(&r.base_url());
    (r, c)
}

/// Polls `f` every 150 ms for up to `within`, sending a request to the router each time (Spin
/// resumes parked deliveries during requests; elsewhere it is just a health check).
pub async fn settle<F, Fut>(c: &Client, within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        let _ = c.get("/_mosaic/health").await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw connection; the answer's status.
pub async fn chunked_post(
    port: u16,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let mut head =
        format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes()).await;
    for chunk in body.chunks(512) {
        // the server may answer and close before the last chunk: a failed write is expected
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || s.write_all(chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.split(' ').nth(1).map(str::to_string)
}
