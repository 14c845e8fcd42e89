//! Every scheme, table-driven: genuine deliveries pass; tampering, wrong secrets, stale and
//! future timestamps, missing and malformed headers are rejected with the right code; rotation
//! works; sign→verify round-trips; messages never leak secrets or signatures.
#![allow(clippy::unwrap_used)]
// Tests are std programs; the core/alloc preference is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod webhook_support;

use std::time::Duration;

use mosaic_core::webhook::{sign, verify, Rejection, Scheme, SignError};
use webhook_support::*;

#[test]
fn genuine_deliveries_pass_for_every_scheme() {
    for fx in fixtures() {
        let d = fx.deliver(T0);
        let v = fx
            .check(&[&fx.verifying], &d, T0)
            .unwrap_or_else(|e| panic!("{}: {e}", fx.name));
        assert_eq!(v.key_index, 0, "{}", fx.name);
        if fx.timestamped() {
            assert_eq!(v.timestamp, Some(at(T0)), "{}", fx.name);
        } else {
            assert_eq!(v.timestamp, None, "{}", fx.name);
        }
    }
}

#[test]
fn rotation_accepts_any_active_secret_and_reports_which() {
    for fx in fixtures() {
        let d = fx.deliver(T0);
        let v = fx
            .check(&[&fx.other_verifying, &fx.verifying], &d, T0)
            .unwrap_or_else(|e| panic!("{}: {e}", fx.name));
        assert_eq!(v.key_index, 1, "{}", fx.name);
        // Signed with the old secret, verified while both are active.
        let old = fx.deliver_with(&fx.other_signing.clone(), fx.body(T0), T0);
        let v = fx
            .check(&[&fx.verifying, &fx.other_verifying], &old, T0)
            .unwrap_or_else(|e| panic!("{}: {e}", fx.name));
        assert_eq!(v.key_index, 1, "{}", fx.name);
    }
}

#[test]
fn wrong_secret_is_a_bad_signature() {
    for fx in fixtures() {
        let d = fx.deliver(T0);
        assert_eq!(
            code(fx.check(&[&fx.other_verifying], &d, T0)),
            "bad-signature",
            "{}",
            fx.name
        );
    }
}

#[test]
fn no_secret_configured_is_its_own_code() {
    for fx in fixtures() {
        let d = fx.deliver(T0);
        let r = fx.check(&[], &d, T0);
        assert_eq!(code(r.clone()), "no-secret-configured", "{}", fx.name);
        assert_eq!(r.unwrap_err().http_status(), 500);
    }
}

#[test]
fn an_empty_secret_is_refused_not_used() {
    // An HMAC keyed with "" is computable by anyone: a blank secret must never verify.
    for fx in fixtures() {
        let forged = fx.deliver_with(&fx.other_signing.clone(), fx.body(T0), T0);
        let r = fx.check(&[&fx.verifying, b"".as_slice()], &forged, T0);
        assert_eq!(
            r.clone().unwrap_err(),
            Rejection::MalformedSecret {
                index: 1,
                reason: "the secret is empty"
            },
            "{}",
            fx.name
        );
        assert_eq!(r.unwrap_err().http_status(), 500);
        assert_eq!(
            sign(&fx.scheme, b"", b"{}", Some(TARGET), "id", at(T0))
                .unwrap_err()
                .code(),
            "malformed-secret",
            "{}",
            fx.name
        );
    }
}

#[test]
fn tampered_body_is_rejected_where_the_body_is_signed() {
    for fx in fixtures() {
        let mut d = fx.deliver(T0);
        // Flip a digit inside the JSON so the body stays well-formed.
        let pos = d.body.iter().position(|b| b.is_ascii_digit()).unwrap();
        d.body[pos] = if d.body[pos] == b'9' {
            b'8'
        } else {
            d.body[pos] + 1
        };
        let got = code(fx.check(&[&fx.verifying], &d, T0));
        let want = match fx.scheme {
            // The digest is checked after the signature, which covers only the digest header.
            Scheme::MessageSignature { .. } => "bad-digest",
            // A bare shared secret authenticates the sender, not the body: by design.
            Scheme::TokenHeader { .. } | Scheme::UrlSecret { .. } => "accepted",
            _ => "bad-signature",
        };
        assert_eq!(got, want, "{}", fx.name);
        assert_eq!(
            fx.scheme.authenticates_body(),
            want != "accepted",
            "{}",
            fx.name
        );
    }
}

#[test]
fn stale_and_future_timestamps_are_rejected_where_signed() {
    for fx in fixtures().into_iter().filter(Fixture::timestamped) {
        let tol = fx.scheme.default_tolerance().unwrap().as_secs();
        let d = fx.deliver(T0);
        // At the edges of the window: accepted.
        assert_eq!(
            code(fx.check(&[&fx.verifying], &d, T0 + tol)),
            "accepted",
            "{}",
            fx.name
        );
        assert_eq!(
            code(fx.check(&[&fx.verifying], &d, T0 - tol)),
            "accepted",
            "{}",
            fx.name
        );
        // One second beyond: rejected, in each direction.
        let stale = fx.check(&[&fx.verifying], &d, T0 + tol + 1);
        assert_eq!(code(stale.clone()), "stale-timestamp", "{}", fx.name);
        assert_eq!(
            stale.unwrap_err(),
            Rejection::StaleTimestamp {
                age_secs: tol + 1,
                tolerance_secs: tol
            }
        );
        assert_eq!(
            code(fx.check(&[&fx.verifying], &d, T0 - tol - 1)),
            "future-timestamp",
            "{}",
            fx.name
        );
    }
}

#[test]
fn default_tolerances_follow_the_providers() {
    let tol = |s: Scheme| s.default_tolerance().map(|d| d.as_secs());
    assert_eq!(tol(Scheme::StandardWebhooks), Some(300));
    assert_eq!(tol(Scheme::Stripe), Some(300));
    assert_eq!(tol(Scheme::Slack), Some(300));
    assert_eq!(tol(Scheme::Linear), Some(60));
    assert_eq!(tol(Scheme::message_signature("x")), Some(300));
    assert_eq!(tol(Scheme::hmac_sha256_hex("x", None)), None);
    assert_eq!(tol(Scheme::token_header("x")), None);
}

#[test]
fn tolerance_override_applies_both_ways() {
    for fx in fixtures().into_iter().filter(Fixture::timestamped) {
        let d = fx.deliver(T0);
        let ten = Some(Duration::from_secs(10));
        assert_eq!(
            code(fx.check_with(&[&fx.verifying], &d, T0 + 11, ten)),
            "stale-timestamp",
            "{}",
            fx.name
        );
        assert_eq!(
            code(fx.check_with(&[&fx.verifying], &d, T0 - 11, ten)),
            "future-timestamp",
            "{}",
            fx.name
        );
        assert_eq!(
            code(fx.check_with(&[&fx.verifying], &d, T0 + 10, ten)),
            "accepted",
            "{}",
            fx.name
        );
        let long = Some(Duration::from_secs(3_600));
        assert_eq!(
            code(fx.check_with(&[&fx.verifying], &d, T0 + 3_000, long)),
            "accepted",
            "{}",
            fx.name
        );
    }
}

#[test]
fn missing_credential_is_missing_signature() {
    for fx in fixtures() {
        let mut d = fx.deliver(T0);
        match fx.credential_header() {
            Some(h) => d.headers = without(&d.headers, h),
            None => d.target = format!("{TARGET}?a=1"),
        }
        assert_eq!(
            code(fx.check(&[&fx.verifying], &d, T0)),
            "missing-signature",
            "{}",
            fx.name
        );
        // An empty header counts as missing (Gitea sends empty digests when no secret is set).
        if let Some(h) = fx.credential_header() {
            d.headers = replaced(&d.headers, h, "  ");
            assert_eq!(
                code(fx.check(&[&fx.verifying], &d, T0)),
                "missing-signature",
                "{}",
                fx.name
            );
        }
    }
}

#[test]
fn malformed_credentials_are_malformed_signature() {
    for fx in fixtures() {
        let d = fx.deliver(T0);
        let Some(h) = fx.credential_header() else {
            let mut d = d.clone();
            d.target = format!("{TARGET}?token=%zz");
            assert_eq!(
                code(fx.check(&[&fx.verifying], &d, T0)),
                "malformed-signature"
            );
            continue;
        };
        if matches!(fx.scheme, Scheme::TokenHeader { .. }) {
            continue; // any string is a well-formed token
        }
        let original = value(&d.headers, h).unwrap().to_string();
        let mut bad_values = vec![
            "garbage".to_string(),
            original.to_uppercase(),
            format!("{original}00"),
            original[..original.len() - 2].to_string(),
        ];
        if let Some(p) = original.find('=') {
            bad_values.push(original[p + 1..].to_string()); // prefix dropped
        }
        for bad in bad_values {
            let mut d2 = d.clone();
            d2.headers = replaced(&d.headers, h, &bad);
            let got = code(fx.check(&[&fx.verifying], &d2, T0));
            // Stripe: an uppercased header has no `t=` left.
            assert!(
                [
                    "malformed-signature",
                    "missing-signature",
                    "missing-timestamp"
                ]
                .contains(&got),
                "{}: `{bad}` gave {got}",
                fx.name
            );
            if bad == "garbage" && !matches!(fx.scheme, Scheme::MessageSignature { .. }) {
                assert_eq!(got, "malformed-signature", "{}", fx.name);
            }
        }
    }
}

#[test]
fn missing_and_malformed_timestamps() {
    // Header timestamps.
    for (fx, header) in fixtures().into_iter().filter_map(|fx| {
        let h = match fx.scheme {
            Scheme::StandardWebhooks => "webhook-timestamp",
            Scheme::Slack => "X-Slack-Request-Timestamp",
            _ => return None,
        };
        Some((fx, h))
    }) {
        let d = fx.deliver(T0);
        let mut d2 = d.clone();
        d2.headers = without(&d.headers, header);
        assert_eq!(
            code(fx.check(&[&fx.verifying], &d2, T0)),
            "missing-timestamp",
            "{}",
            fx.name
        );
        for bad in [
            "-1614556800",
            "1614556800.5",
            "+1614556800",
            "soon",
            "99999999999999999999",
        ] {
            d2.headers = replaced(&d.headers, header, bad);
            assert_eq!(
                code(fx.check(&[&fx.verifying], &d2, T0)),
                "malformed-timestamp",
                "{}: {bad}",
                fx.name
            );
        }
    }

    // Stripe's `t=` inside its header.
    let stripe = fixtures().into_iter().find(|f| f.name == "stripe").unwrap();
    let d = stripe.deliver(T0);
    let sig = value(&d.headers, "Stripe-Signature").unwrap().to_string();
    let v1 = sig.split(',').nth(1).unwrap();
    let mut d2 = d.clone();
    d2.headers = replaced(&d.headers, "Stripe-Signature", v1);
    assert_eq!(
        code(stripe.check(&[&stripe.verifying], &d2, T0)),
        "missing-timestamp"
    );
    d2.headers = replaced(&d.headers, "Stripe-Signature", &format!("t=later,{v1}"));
    assert_eq!(
        code(stripe.check(&[&stripe.verifying], &d2, T0)),
        "malformed-timestamp"
    );
    d2.headers = replaced(&d.headers, "Stripe-Signature", &format!("t=1,t=2,{v1}"));
    assert_eq!(
        code(stripe.check(&[&stripe.verifying], &d2, T0)),
        "malformed-signature"
    );

    // Linear's `webhookTimestamp` inside the signed body.
    let linear = fixtures().into_iter().find(|f| f.name == "linear").unwrap();
    for (body, want) in [
        (r#"{"type":"Issue","action":"create"}"#, "missing-timestamp"),
        (r#"{"webhookTimestamp":null}"#, "missing-timestamp"),
        (
            r#"{"webhookTimestamp":"1614556800000"}"#,
            "malformed-timestamp",
        ),
        (r#"{"webhookTimestamp":-5}"#, "malformed-timestamp"),
        ("not json", "missing-timestamp"),
    ] {
        let d = linear.deliver_with(&linear.signing.clone(), body.as_bytes().to_vec(), T0);
        assert_eq!(
            code(linear.check(&[&linear.verifying], &d, T0)),
            want,
            "{body}"
        );
    }

    // Woodpecker's `created` parameter.
    let ws = fixtures()
        .into_iter()
        .find(|f| f.name == "message-signature")
        .unwrap();
    let d = ws.deliver(T0);
    let input = value(&d.headers, "Signature-Input").unwrap().to_string();
    let mut d2 = d.clone();
    d2.headers = replaced(
        &d.headers,
        "Signature-Input",
        &input.replace(&format!(";created={T0}"), ""),
    );
    assert_eq!(
        code(ws.check(&[&ws.verifying], &d2, T0)),
        "missing-timestamp"
    );
    d2.headers = replaced(
        &d.headers,
        "Signature-Input",
        &input.replace(&format!("created={T0}"), "created=\"now\""),
    );
    assert_eq!(
        code(ws.check(&[&ws.verifying], &d2, T0)),
        "malformed-timestamp"
    );
}

#[test]
fn standard_webhooks_specifics() {
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "standard-webhooks-v1")
        .unwrap();
    let d = fx.deliver(T0);
    let sig = value(&d.headers, "webhook-signature").unwrap().to_string();

    // Several signatures, unknown versions ignored, any valid one accepts.
    let list = format!("v2,abc v1,{} {sig}", base64_std(&[0u8; 32]));
    let d2 = Delivery {
        headers: replaced(&d.headers, "webhook-signature", &list),
        ..d.clone()
    };
    assert_eq!(code(fx.check(&[&fx.verifying], &d2, T0)), "accepted");
    // The same list split over two header lines.
    let mut d3 = d.clone();
    d3.headers = without(&d.headers, "webhook-signature");
    d3.headers.push((
        "webhook-signature".into(),
        format!("v1,{}", base64_std(&[1u8; 32])),
    ));
    d3.headers.push(("Webhook-Signature".into(), sig.clone()));
    assert_eq!(code(fx.check(&[&fx.verifying], &d3, T0)), "accepted");
    // The id is signed.
    let d4 = Delivery {
        headers: replaced(&d.headers, "webhook-id", "msg_other"),
        ..d.clone()
    };
    assert_eq!(code(fx.check(&[&fx.verifying], &d4, T0)), "bad-signature");
    let d4 = Delivery {
        headers: without(&d.headers, "webhook-id"),
        ..d.clone()
    };
    assert_eq!(
        code(fx.check(&[&fx.verifying], &d4, T0)),
        "missing-signature"
    );
    // Only unknown versions: nothing to check.
    let d5 = Delivery {
        headers: replaced(&d.headers, "webhook-signature", "v9,AAAA"),
        ..d.clone()
    };
    assert_eq!(
        code(fx.check(&[&fx.verifying], &d5, T0)),
        "malformed-signature"
    );
    // Too many candidates are refused before any work.
    let many = std::iter::repeat_n(sig.as_str(), 9)
        .collect::<Vec<_>>()
        .join(" ");
    let d6 = Delivery {
        headers: replaced(&d.headers, "webhook-signature", &many),
        ..d.clone()
    };
    assert_eq!(
        code(fx.check(&[&fx.verifying], &d6, T0)),
        "malformed-signature"
    );
    // Secrets: prefix optional, padding optional; junk is a configuration error.
    assert_eq!(
        code(fx.check(&[b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".as_slice()], &d, T0)),
        "accepted"
    );
    assert_eq!(
        code(fx.check(
            &[b"whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA".as_slice()],
            &fx.deliver_with(
                b"whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA==",
                fx.body(T0),
                T0
            ),
            T0
        )),
        "accepted"
    );
    let r = fx
        .check(&[b"whsec_not base64!".as_slice()], &d, T0)
        .unwrap_err();
    assert_eq!(r.code(), "malformed-secret");
    assert!(r.is_configuration_error());
    // A v1 signature with an ed25519 key configured, and a v1a with an HMAC secret: no match.
    let v1a = fixtures()
        .into_iter()
        .find(|f| f.name == "standard-webhooks-v1a")
        .unwrap();
    assert_eq!(code(fx.check(&[&v1a.verifying], &d, T0)), "bad-signature");
    let da = v1a.deliver(T0);
    assert_eq!(code(v1a.check(&[&fx.verifying], &da, T0)), "bad-signature");
    // Mixed rotation from symmetric to asymmetric.
    assert_eq!(
        v1a.check(&[&fx.verifying, &v1a.verifying], &da, T0)
            .unwrap()
            .key_index,
        1
    );
    assert!(value(&da.headers, "webhook-signature")
        .unwrap()
        .starts_with("v1a,"));
}

#[test]
fn stripe_specifics() {
    let fx = fixtures().into_iter().find(|f| f.name == "stripe").unwrap();
    let d = fx.deliver(T0);
    let sig = value(&d.headers, "Stripe-Signature").unwrap().to_string();
    let v1 = sig.split_once(",v1=").unwrap().1;
    // Several v1 (a secret roll), v0 ignored.
    let zeros = "0".repeat(64);
    let header = format!("t={T0},v1={zeros},v1={v1},v0={zeros}");
    let d2 = Delivery {
        headers: replaced(&d.headers, "Stripe-Signature", &header),
        ..d.clone()
    };
    assert_eq!(code(fx.check(&[&fx.verifying], &d2, T0)), "accepted");
    // A correct signature offered only as v0 is not accepted: no downgrade.
    let header = format!("t={T0},v0={v1}");
    let d3 = Delivery {
        headers: replaced(&d.headers, "Stripe-Signature", &header),
        ..d.clone()
    };
    assert_eq!(
        code(fx.check(&[&fx.verifying], &d3, T0)),
        "malformed-signature"
    );
    // The key is the whole secret including `whsec_`, not its base64 decoding.
    assert_eq!(
        code(fx.check(&[b"test_secret".as_slice()], &d, T0)),
        "bad-signature"
    );
    // The timestamp is signed: moving it breaks the signature.
    let header = format!("t={},v1={v1}", T0 + 1);
    let d4 = Delivery {
        headers: replaced(&d.headers, "Stripe-Signature", &header),
        ..d.clone()
    };
    assert_eq!(code(fx.check(&[&fx.verifying], &d4, T0)), "bad-signature");
}

#[test]
fn slack_and_linear_specifics() {
    let slack = fixtures().into_iter().find(|f| f.name == "slack").unwrap();
    let d = slack.deliver(T0);
    assert!(value(&d.headers, "X-Slack-Signature")
        .unwrap()
        .starts_with("v0="));
    // The timestamp header is signed.
    let d2 = Delivery {
        headers: replaced(
            &d.headers,
            "X-Slack-Request-Timestamp",
            &(T0 + 1).to_string(),
        ),
        ..d.clone()
    };
    assert_eq!(
        code(slack.check(&[&slack.verifying], &d2, T0)),
        "bad-signature"
    );

    // Linear: the timestamp is milliseconds inside the signed body, window 60 s.
    let linear = fixtures().into_iter().find(|f| f.name == "linear").unwrap();
    let d = linear.deliver(T0);
    assert_eq!(
        code(linear.check(&[&linear.verifying], &d, T0 + 60)),
        "accepted"
    );
    assert_eq!(
        code(linear.check(&[&linear.verifying], &d, T0 + 61)),
        "stale-timestamp"
    );
    let v = linear.check(&[&linear.verifying], &d, T0).unwrap();
    assert_eq!(v.timestamp, Some(at(T0)));
}

#[test]
fn token_schemes_compare_whole_values() {
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "token-header")
        .unwrap();
    let d = fx.deliver(T0);
    for near in [
        "glpat-webhook-toke",
        "glpat-webhook-tokenX",
        "GLPAT-WEBHOOK-TOKEN",
        "",
    ] {
        let d2 = Delivery {
            headers: replaced(&d.headers, "X-Gitlab-Token", near),
            ..d.clone()
        };
        let want = if near.is_empty() {
            "missing-signature"
        } else {
            "bad-signature"
        };
        assert_eq!(code(fx.check(&[&fx.verifying], &d2, T0)), want, "{near}");
    }

    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "url-secret")
        .unwrap();
    let check = |target: &str| {
        code(verify(
            &fx.scheme,
            &[b"a b/c".as_slice()],
            &Vec::<(String, String)>::new(),
            b"",
            Some(target),
            at(T0),
            None,
        ))
    };
    assert_eq!(check("/hooks/x?token=a+b%2Fc"), "accepted");
    assert_eq!(check("/hooks/x?x=1&token=a%20b/c#frag"), "accepted");
    assert_eq!(check("token=a+b%2fc"), "accepted"); // a bare query string
    assert_eq!(check("?token=a+b%2Fc"), "accepted");
    assert_eq!(check("/hooks/x?tok=a+b%2Fc"), "missing-signature");
    assert_eq!(check("/hooks/x?token="), "missing-signature");
    assert_eq!(check("/hooks/x?token=a+b%2Fd"), "bad-signature");
    assert_eq!(check("/hooks/x"), "missing-signature");
    // No target at all: the host must pass it.
    let r = verify(
        &fx.scheme,
        &[b"x".as_slice()],
        &Vec::<(String, String)>::new(),
        b"",
        None,
        at(T0),
        None,
    );
    assert_eq!(code(r.clone()), "missing-target");
    assert_eq!(r.unwrap_err().http_status(), 500);
}

#[test]
fn message_signature_specifics() {
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "message-signature")
        .unwrap();
    let d = fx.deliver(T0);
    let input = value(&d.headers, "Signature-Input").unwrap().to_string();
    assert_eq!(
        input,
        format!(
            "woodpecker-ci-extensions=(\"@request-target\" \"content-digest\");created={T0};alg=\"ed25519\""
        )
    );
    // The request target is signed.
    let mut d2 = d.clone();
    d2.target = "/hooks/other".into();
    assert_eq!(code(fx.check(&[&fx.verifying], &d2, T0)), "bad-signature");
    // The key can be given as PEM too (what Woodpecker serves).
    let pem_key = pem_public(&fx.verifying);
    assert_eq!(code(fx.check(&[pem_key.as_bytes()], &d, T0)), "accepted");
    // Signatures must cover both components.
    let weak = input.replace(" \"content-digest\"", "");
    let d3 = Delivery {
        headers: replaced(&d.headers, "Signature-Input", &weak),
        ..d.clone()
    };
    assert_eq!(
        code(fx.check(&[&fx.verifying], &d3, T0)),
        "malformed-signature"
    );
    // Another label is not ours.
    let d4 = Delivery {
        headers: replaced(
            &d.headers,
            "Signature-Input",
            &input.replace("woodpecker-ci-extensions=", "other="),
        ),
        ..d.clone()
    };
    assert_eq!(
        code(fx.check(&[&fx.verifying], &d4, T0)),
        "missing-signature"
    );
    // Content-Digest is required and must be sha-256.
    let d5 = Delivery {
        headers: without(&d.headers, "Content-Digest"),
        ..d.clone()
    };
    assert_ne!(code(fx.check(&[&fx.verifying], &d5, T0)), "accepted");
    // Unsupported algorithm.
    let d6 = Delivery {
        headers: replaced(
            &d.headers,
            "Signature-Input",
            &input.replace("ed25519", "rsa-pss-sha512"),
        ),
        ..d.clone()
    };
    assert_eq!(
        code(fx.check(&[&fx.verifying], &d6, T0)),
        "malformed-signature"
    );
    // An expired signature.
    let d7 = Delivery {
        headers: replaced(
            &d.headers,
            "Signature-Input",
            &format!("{input};expires={}", T0 - 1),
        ),
        ..d.clone()
    };
    assert_ne!(code(fx.check(&[&fx.verifying], &d7, T0)), "accepted");
    // A junk key is a configuration error.
    assert_eq!(
        code(fx.check(&[b"not a key".as_slice()], &d, T0)),
        "malformed-secret"
    );
    // Signing needs the target.
    assert_eq!(
        sign(&fx.scheme, &fx.signing, b"{}", None, "id", at(T0)),
        Err(SignError::MissingTarget)
    );
}

fn pem_public(whpk: &[u8]) -> String {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&whpk[b"whpk_".len()..])
        .unwrap();
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(&raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64_std(&der)
    )
}

#[test]
fn sign_verify_round_trip_with_varied_bodies() {
    let bodies: [&[u8]; 4] = [b"", b"{}", &[0u8, 255, 10, 13, 46], &[b'x'; 70_000]];
    for fx in fixtures() {
        for body in bodies {
            let body = if matches!(fx.scheme, Scheme::Linear) {
                fx.body(T0)
            } else {
                body.to_vec()
            };
            let d = fx.deliver_with(&fx.signing.clone(), body, T0);
            assert_eq!(
                code(fx.check(&[&fx.verifying], &d, T0)),
                "accepted",
                "{}",
                fx.name
            );
        }
    }
}

#[test]
fn url_secret_cannot_be_signed_into_headers() {
    let r = sign(
        &Scheme::url_secret("token"),
        b"s",
        b"{}",
        None,
        "id",
        at(T0),
    );
    assert_eq!(r.clone().unwrap_err().code(), "not-header-based");
    assert!(r.unwrap_err().to_string().contains("?token="));
}

#[test]
fn rejection_messages_never_contain_secrets_or_signatures() {
    let mut seen = std::collections::BTreeSet::new();
    for fx in fixtures() {
        let d = fx.deliver(T0);
        let secret_texts = [
            String::from_utf8_lossy(&fx.signing).to_string(),
            String::from_utf8_lossy(&fx.other_signing).to_string(),
        ];
        // Everything the delivery carries that is secret-derived.
        let mut sensitive: Vec<String> = secret_texts.to_vec();
        for (_, v) in &d.headers {
            for piece in v.split([',', '=', ' ', ':', ';']) {
                if piece.len() >= 16 {
                    sensitive.push(piece.to_string());
                }
            }
        }
        let mut tampered = d.clone();
        tampered.body.push(b' ');
        let attempts = [
            fx.check(&[&fx.other_verifying], &d, T0),
            fx.check(&[&fx.verifying], &tampered, T0),
            fx.check(&[&fx.verifying], &d, T0 + 10_000),
            fx.check(&[&fx.verifying], &d, T0.saturating_sub(10_000)),
            fx.check(&[b"whsec_###".as_slice()], &d, T0),
            fx.check(&[], &d, T0),
        ];
        for r in attempts {
            if let Err(e) = r {
                let msg = e.to_string();
                seen.insert(e.code());
                assert!(!msg.is_empty());
                for s in &sensitive {
                    assert!(
                        !msg.contains(s.as_str()),
                        "{}: `{msg}` leaks `{s}`",
                        fx.name
                    );
                }
            }
        }
    }
    for c in &seen {
        assert!(Rejection::CODES.contains(c));
    }
    assert!(seen.len() >= 5, "{seen:?}");
}

#[test]
fn codes_are_stable_kebab_case() {
    for c in Rejection::CODES {
        assert!(
            c.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{c}"
        );
    }
    let unique: std::collections::BTreeSet<_> = Rejection::CODES.iter().collect();
    assert_eq!(unique.len(), Rejection::CODES.len());
}
