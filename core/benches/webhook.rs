//! Webhook verification throughput: the GitHub HMAC path and Standard Webhooks (v1 HMAC and
//! v1a ed25519) on 25 KB and 1 MiB bodies. Criterion reports bytes/s; the goal for the HMAC
//! paths is at least 400 MB/s.
#![allow(clippy::unwrap_used, missing_docs)]
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mosaic_core::time::Instant;
use mosaic_core::webhook::{ed25519_public_key, sign, verify, Scheme};

const SIZES: [(&str, usize); 2] = [("25KB", 25 * 1024), ("1MiB", 1024 * 1024)];

fn body(len: usize) -> Vec<u8> {
    // JSON-ish bytes; content does not matter to a MAC, only length.
    let mut b = Vec::with_capacity(len);
    while b.len() < len {
        b.extend_from_slice(
            br#"{"action":"opened","number":2,"repository":{"full_name":"octo/hello"}},"#,
        );
    }
    b.truncate(len);
    b
}

fn bench_scheme(c: &mut Criterion, group: &str, scheme: &Scheme, signing: &[u8], verifying: &[u8]) {
    let now = Instant::from_secs(1_700_000_000);
    let mut g = c.benchmark_group(group);
    for (label, len) in SIZES {
        let body = body(len);
        let headers = sign(
            scheme,
            signing,
            &body,
            Some("/hooks/bench"),
            "msg_bench",
            now,
        )
        .unwrap();
        assert!(verify(scheme, &[verifying], &headers, &body, None, now, None).is_ok());
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
            b.iter(|| {
                verify(
                    black_box(scheme),
                    black_box(&[verifying]),
                    black_box(&headers),
                    black_box(body),
                    None,
                    now,
                    None,
                )
            });
        });
    }
    g.finish();
}

fn webhook(c: &mut Criterion) {
    let github = Scheme::hmac_sha256_hex("X-Hub-Signature-256", Some("sha256="));
    bench_scheme(
        c,
        "webhook/github-hmac-sha256",
        &github,
        b"It's a Secret to Everybody",
        b"It's a Secret to Everybody",
    );
    let whsec = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    bench_scheme(
        c,
        "webhook/standard-webhooks-v1",
        &Scheme::StandardWebhooks,
        whsec,
        whsec,
    );
    let whsk = b"whsk_AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";
    let whpk = ed25519_public_key(whsk).unwrap();
    bench_scheme(
        c,
        "webhook/standard-webhooks-v1a-ed25519",
        &Scheme::StandardWebhooks,
        whsk,
        whpk.as_bytes(),
    );
}

criterion_group!(benches, webhook);
criterion_main!(benches);
