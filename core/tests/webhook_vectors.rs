//! Published test vectors. They pin the primitives to numbers computed by someone else, so a
//! passing sign→verify round trip cannot come from an implementation agreeing with itself.
//!
//! Sources: RFC 4231 (HMAC-SHA256), RFC 2202 (HMAC-SHA1), GitHub's documentation
//! (`validating-webhook-deliveries.md`), the Standard Webhooks reference libraries' test vector,
//! RFC 9530 (`Content-Digest`); the Stripe vector is *derived* (recomputed with Python from
//! stripe-python's algorithm, see `reference/providers.md` B.2), not vendor-published.
#![allow(clippy::unwrap_used)]
// Tests are std programs; the core/alloc preference is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use mosaic_core::http::Headers;
use mosaic_core::time::Instant;
use mosaic_core::webhook::{sign, verify, Scheme};

fn hmac256_hex(key: &[u8], data: &[u8]) -> String {
    let scheme = Scheme::hmac_sha256_hex("X-Sig", None);
    let headers = sign(&scheme, key, data, None, "", Instant::EPOCH).unwrap();
    headers.header("X-Sig").unwrap().to_string()
}

fn hmac1_hex(key: &[u8], data: &[u8]) -> String {
    let scheme = Scheme::HmacSha1Hex {
        header: "X-Sig".into(),
        prefix: None,
    };
    let headers = sign(&scheme, key, data, None, "", Instant::EPOCH).unwrap();
    headers.header("X-Sig").unwrap().to_string()
}

/// Checks that `expected` verifies and that the same digest under another key does not.
fn assert_verifies_hex(key: &[u8], data: &[u8], expected: &str) {
    let scheme = Scheme::hmac_sha256_hex("X-Sig", None);
    let headers = [("X-Sig", expected)];
    assert!(verify(
        &scheme,
        &[key],
        &headers[..],
        data,
        None,
        Instant::EPOCH,
        None
    )
    .is_ok());
    assert!(verify(
        &scheme,
        &[b"x"],
        &headers[..],
        data,
        None,
        Instant::EPOCH,
        None
    )
    .is_err());
}

/// RFC 4231 §4.2–4.8 (test case 5 is a truncated-output case and does not apply).
const RFC4231: [(&str, &[u8], &str); 6] = [
    (
        "TC1",
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        "TC2",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        "TC3",
        &[0xdd; 50],
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        "TC4",
        &[0xcd; 50],
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        "TC6",
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        "TC7",
        b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
];

fn rfc4231_key(case: &str) -> Vec<u8> {
    match case {
        "TC1" => vec![0x0b; 20],
        "TC2" => b"Jefe".to_vec(),
        "TC3" => vec![0xaa; 20],
        "TC4" => (1..=25).collect(),
        _ => vec![0xaa; 131], // TC6, TC7: keys longer than the block size
    }
}

#[test]
fn hmac_sha256_matches_rfc4231() {
    for (case, data, expected) in RFC4231 {
        let key = rfc4231_key(case);
        assert_eq!(hmac256_hex(&key, data), expected, "{case}");
        assert_verifies_hex(&key, data, expected);
    }
}

#[test]
fn hmac_sha1_matches_rfc2202() {
    assert_eq!(
        hmac1_hex(&[0x0b; 20], b"Hi There"),
        "b617318655057264e28bc0b6fb378c8ef146be00"
    );
    assert_eq!(
        hmac1_hex(b"Jefe", b"what do ya want for nothing?"),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
}

const GITHUB_SECRET: &[u8] = b"It's a Secret to Everybody";
const GITHUB_BODY: &[u8] = b"Hello, World!";
const GITHUB_HEX: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn github_documentation_vector() {
    let scheme = Scheme::hmac_sha256_hex("X-Hub-Signature-256", Some("sha256="));
    let signed = sign(
        &scheme,
        GITHUB_SECRET,
        GITHUB_BODY,
        None,
        "",
        Instant::EPOCH,
    )
    .unwrap();
    assert_eq!(
        signed,
        vec![(
            "X-Hub-Signature-256".to_string(),
            format!("sha256={GITHUB_HEX}")
        )]
    );
    let headers = [("x-hub-signature-256", format!("sha256={GITHUB_HEX}"))];
    let v = verify(
        &scheme,
        &[GITHUB_SECRET],
        &headers[..],
        GITHUB_BODY,
        None,
        Instant::EPOCH,
        None,
    )
    .unwrap();
    assert_eq!(v.key_index, 0);
    // One byte off in the body, the secret or the signature: rejected.
    assert!(verify(
        &scheme,
        &[GITHUB_SECRET],
        &headers[..],
        b"Hello, World?",
        None,
        Instant::EPOCH,
        None
    )
    .is_err());
    assert!(verify(
        &scheme,
        &[b"It's a Secret to Everybodz"],
        &headers[..],
        GITHUB_BODY,
        None,
        Instant::EPOCH,
        None
    )
    .is_err());
    let bad = [(
        "X-Hub-Signature-256",
        format!("sha256={}8", &GITHUB_HEX[..63]),
    )];
    assert!(verify(
        &scheme,
        &[GITHUB_SECRET],
        &bad[..],
        GITHUB_BODY,
        None,
        Instant::EPOCH,
        None
    )
    .is_err());
}

#[test]
fn github_vector_applies_to_bare_hex_and_sha256_prefixed_headers() {
    // Reference B.2: Gitea/Forgejo/Linear/Plane send the same digest as bare hex; Notion, Jira
    // and Confluence DC with `sha256=`.
    for (header, prefix, value) in [
        ("X-Gitea-Signature", None, GITHUB_HEX.to_string()),
        ("X-Forgejo-Signature", None, GITHUB_HEX.to_string()),
        ("X-Plane-Signature", None, GITHUB_HEX.to_string()),
        (
            "X-Notion-Signature",
            Some("sha256="),
            format!("sha256={GITHUB_HEX}"),
        ),
        (
            "X-Hub-Signature",
            Some("sha256="),
            format!("sha256={GITHUB_HEX}"),
        ),
    ] {
        let scheme = Scheme::hmac_sha256_hex(header, prefix);
        let headers = [(header, value.as_str())];
        assert!(
            verify(
                &scheme,
                &[GITHUB_SECRET],
                &headers[..],
                GITHUB_BODY,
                None,
                Instant::EPOCH,
                None
            )
            .is_ok(),
            "{header}"
        );
    }
    // Linear: same digest, but its timestamp lives in the body, so `Hello, World!` (no
    // timestamp) is rejected for that reason only, after the signature matched.
    let headers = [("Linear-Signature", GITHUB_HEX)];
    let r = verify(
        &Scheme::Linear,
        &[GITHUB_SECRET],
        &headers[..],
        GITHUB_BODY,
        None,
        Instant::EPOCH,
        None,
    );
    assert_eq!(r.unwrap_err().code(), "missing-timestamp");
}

#[test]
fn stripe_derived_vector() {
    // DERIVED, not vendor-published: recomputed with Python per stripe-python's algorithm.
    let header = "t=1614556800,v1=96943a0ceebda8d3913e8b90697d39bbe16342f950890d77a41a248e4fb22794";
    let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
    let now = Instant::from_secs(1_614_556_800);
    let headers = [("Stripe-Signature", header)];
    assert!(verify(
        &Scheme::Stripe,
        &[b"whsec_test_secret"],
        &headers[..],
        body,
        None,
        now,
        None
    )
    .is_ok());
    let signed = sign(&Scheme::Stripe, b"whsec_test_secret", body, None, "", now).unwrap();
    assert_eq!(signed.header("Stripe-Signature"), Some(header));
}

#[test]
fn standard_webhooks_reference_vector() {
    // The test vector of the Standard Webhooks reference libraries (and Svix's).
    let body = br#"{"test": 2432232314}"#;
    let now = Instant::from_secs(1_614_265_330);
    let headers = [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        (
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ];
    let secret: &[u8] = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(verify(
        &Scheme::StandardWebhooks,
        &[secret],
        &headers[..],
        body,
        None,
        now,
        None
    )
    .is_ok());
    let signed = sign(
        &Scheme::StandardWebhooks,
        secret,
        body,
        None,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        now,
    )
    .unwrap();
    assert_eq!(
        signed.header("webhook-signature"),
        Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    );
    assert_eq!(signed.header("webhook-timestamp"), Some("1614265330"));
    assert_eq!(
        signed.header("webhook-id"),
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek")
    );
}

#[test]
fn content_digest_matches_rfc9530() {
    // RFC 9530 §2: `{"hello": "world"}` has sha-256 `X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=`.
    let scheme = Scheme::message_signature("woodpecker-ci-extensions");
    let seed = [9u8; 32];
    let signed = sign(
        &scheme,
        &seed,
        br#"{"hello": "world"}"#,
        Some("/foo"),
        "",
        Instant::from_secs(1),
    )
    .unwrap();
    assert_eq!(
        signed.header("Content-Digest"),
        Some("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
    );
}
