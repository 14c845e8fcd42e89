//! Webhook verification of arbitrary requests for every preset, and dead-letter decoding of
//! arbitrary bytes: errors, never panics; a record that decodes round-trips through its encoding.
//!
//! Input: the first line is the request target, then `Name: value` header lines up to an empty
//! line, then the body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mosaic_core::time::Instant;
use mosaic_providers::hooks::Delivery;
use mosaic_providers::webhook::{self, HandshakePolicy, VerifyOptions};

/// One secret of each shape the presets take: text, Standard Webhooks `whsec_`, ed25519 `whpk_`.
const SECRETS: [&[u8]; 3] = [
    b"It's a Secret to Everybody",
    b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    b"whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
];

fn split(data: &[u8]) -> (String, Vec<(String, String)>, &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let target = String::from_utf8_lossy(first).into_owned();
    let mut used = first.len() + 1;
    let mut headers = Vec::new();
    for l in lines {
        used += l.len() + 1;
        if l.is_empty() {
            break;
        }
        let l = String::from_utf8_lossy(l);
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    (target, headers, data.get(used..).unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    if let Some(d) = Delivery::decode(data) {
        assert_eq!(
            Delivery::decode(&d.encode()),
            Some(d),
            "what decodes round-trips"
        );
    }
    let (target, headers, body) = split(data);
    let now = Instant::from_secs(1_700_000_000);
    for preset in webhook::presets() {
        for policy in [HandshakePolicy::WhenUnconfigured, HandshakePolicy::Always] {
            let opts = VerifyOptions {
                tolerance: None,
                handshake: policy,
            };
            let _ = webhook::verify(preset, &SECRETS, &headers, body, Some(&target), now, &opts);
            let _ = webhook::verify(preset, &[], &headers, body, Some(&target), now, &opts);
        }
        let _ = webhook::dedup_key(preset, &headers, body);
        let _ = webhook::normalize(preset, &headers, body, now, "t", "e");
    }
});
