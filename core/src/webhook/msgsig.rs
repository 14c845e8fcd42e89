//! RFC 9421 HTTP Message Signatures with ed25519, as Woodpecker CI signs requests to its
//! extensions: signature label `woodpecker-ci-extensions`, covered components
//! `@request-target` and `content-digest`, parameters `created` (and `alg`, `keyid`), and a
//! `Content-Digest: sha-256=:…:` (RFC 9530) that we check against the body, since the signature
//! covers the header, not the body.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::Headers;
use crate::time::Instant;

use super::keys::{signing_key, verifying_key, STRICT_B64};
use super::sfv::{parse_dictionary, serialize_inner_list, Bare, Member, Params};
use super::util::{check_window, query_of};
use super::{Rejection, SignError, Verified};

pub(crate) const SIGNATURE: &str = "Signature";
pub(crate) const SIGNATURE_INPUT: &str = "Signature-Input";
pub(crate) const CONTENT_DIGEST: &str = "Content-Digest";
/// Window for the `created` parameter when none is configured.
pub(crate) const TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// Components a signature must cover for us to trust the request.
const REQUIRED: [&str; 2] = ["@request-target", "content-digest"];

/// Every value of `name` combined into one field value, as RFC 9110 §5.3 allows.
fn combined<H: Headers + ?Sized>(headers: &H, name: &str) -> Option<String> {
    let mut out = String::new();
    for v in headers.header_all(name) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(v.trim_matches(|c: char| c.is_ascii_whitespace()));
    }
    (!out.is_empty()).then_some(out)
}

fn dictionary<H: Headers + ?Sized>(
    headers: &H,
    name: &'static str,
) -> Result<Vec<(String, Member)>, Rejection> {
    let raw = combined(headers, name).ok_or(Rejection::MissingSignature {
        header: Cow::Borrowed(name),
    })?;
    parse_dictionary(&raw).ok_or(Rejection::MalformedSignature {
        header: Cow::Borrowed(name),
        reason: "not a structured-field dictionary",
    })
}

fn member(dict: Vec<(String, Member)>, label: &str) -> Option<Member> {
    dict.into_iter().find(|(k, _)| k == label).map(|(_, m)| m)
}

fn param<'p>(params: &'p Params, key: &str) -> Option<&'p Bare> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The value of one covered component.
fn component<H: Headers + ?Sized>(
    name: &str,
    headers: &H,
    target: &str,
) -> Result<String, &'static str> {
    match name {
        "@request-target" => Ok(String::from(target)),
        "@path" => Ok(String::from(target.split(['?', '#']).next().unwrap_or(""))),
        "@query" => Ok(format!("?{}", query_of(target))),
        n if n.starts_with('@') => Err("covers a derived component we cannot reconstruct"),
        n if n.bytes().any(|b| b.is_ascii_uppercase()) => Err("component names must be lowercase"),
        n => combined(headers, n).ok_or("covers a header that is absent"),
    }
}

fn signature_base(lines: &[(String, String)], params_value: &str) -> Vec<u8> {
    let mut base = String::new();
    for (name, value) in lines {
        base.push('"');
        base.push_str(name);
        base.push_str("\": ");
        base.push_str(value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(params_value);
    base.into_bytes()
}

pub(crate) fn verify<H: Headers + ?Sized>(
    label: &str,
    secrets: &[&[u8]],
    headers: &H,
    body: &[u8],
    target: Option<&str>,
    now: Instant,
    tolerance: Duration,
) -> Result<Verified, Rejection> {
    let target = target.ok_or(Rejection::MissingTarget)?;
    let input_name = Cow::Borrowed(SIGNATURE_INPUT);
    let malformed_input = |reason| Rejection::MalformedSignature {
        header: input_name.clone(),
        reason,
    };
    let sig_name = Cow::Borrowed(SIGNATURE);

    let (items, params) = match member(dictionary(headers, SIGNATURE_INPUT)?, label) {
        Some(Member::Inner(items, params)) => (items, params),
        Some(Member::Item(..)) => return Err(malformed_input("expected an inner list")),
        None => {
            return Err(Rejection::MissingSignature {
                header: Cow::Owned(format!("{SIGNATURE_INPUT} `{label}`")),
            })
        }
    };
    let sig = match member(dictionary(headers, SIGNATURE)?, label) {
        Some(Member::Item(Bare::Bytes(b), _)) => b,
        Some(_) => {
            return Err(Rejection::MalformedSignature {
                header: sig_name,
                reason: "expected a byte sequence",
            })
        }
        None => {
            return Err(Rejection::MissingSignature {
                header: Cow::Owned(format!("{SIGNATURE} `{label}`")),
            })
        }
    };
    let sig: [u8; 64] = sig
        .as_slice()
        .try_into()
        .map_err(|_| Rejection::MalformedSignature {
            header: sig_name.clone(),
            reason: "an ed25519 signature is 64 bytes",
        })?;

    // Covered components: sf-strings without parameters, no duplicates, including REQUIRED.
    let mut lines: Vec<(String, String)> = Vec::with_capacity(items.len());
    for (item, item_params) in &items {
        let Bare::Str(name) = item else {
            return Err(malformed_input("component identifiers are strings"));
        };
        if !item_params.is_empty() {
            return Err(malformed_input("component parameters are not supported"));
        }
        if lines.iter().any(|(n, _)| n == name) {
            return Err(malformed_input("a component is listed twice"));
        }
        let value = component(name, headers, target).map_err(malformed_input)?;
        lines.push((name.clone(), value));
    }
    if !REQUIRED.iter().all(|r| lines.iter().any(|(n, _)| n == r)) {
        return Err(malformed_input(
            "the signature must cover `@request-target` and `content-digest`",
        ));
    }

    // Parameters.
    if let Some(alg) = param(&params, "alg") {
        if *alg != Bare::Str(String::from("ed25519")) {
            return Err(malformed_input("only `alg=\"ed25519\"` is supported"));
        }
    }
    let created_field = || Cow::Owned(format!("{SIGNATURE_INPUT} `created`"));
    let created = match param(&params, "created") {
        None => {
            return Err(Rejection::MissingTimestamp {
                field: created_field(),
            })
        }
        Some(Bare::Integer(c)) if *c >= 0 => Instant::from_secs(c.unsigned_abs()),
        Some(_) => {
            return Err(Rejection::MalformedTimestamp {
                field: created_field(),
                reason: "expected integer Unix seconds",
            })
        }
    };
    check_window(created, now, tolerance)?;
    match param(&params, "expires") {
        None => {}
        Some(Bare::Integer(e)) => {
            let expires = Instant::from_secs(u64::try_from(*e).unwrap_or(0));
            if now > expires {
                return Err(Rejection::StaleTimestamp {
                    age_secs: now.saturating_since(expires).as_secs(),
                    tolerance_secs: 0,
                });
            }
        }
        Some(_) => {
            return Err(Rejection::MalformedTimestamp {
                field: Cow::Owned(format!("{SIGNATURE_INPUT} `expires`")),
                reason: "expected integer Unix seconds",
            })
        }
    }

    // The signature.
    let base = signature_base(&lines, &serialize_inner_list(&items, &params));
    let signature = Signature::from_bytes(&sig);
    let mut matched = None;
    for (index, secret) in secrets.iter().enumerate() {
        let key =
            verifying_key(secret).map_err(|reason| Rejection::MalformedSecret { index, reason })?;
        if key.verify_strict(&base, &signature).is_ok() {
            matched = Some(index);
            break;
        }
    }
    let key_index = matched.ok_or(Rejection::BadSignature { header: sig_name })?;

    // The signature covers the Content-Digest header; now tie that header to the body.
    let digest_name = Cow::Borrowed(CONTENT_DIGEST);
    let want = match member(dictionary(headers, CONTENT_DIGEST)?, "sha-256") {
        Some(Member::Item(Bare::Bytes(b), _)) if b.len() == 32 => b,
        _ => {
            return Err(Rejection::MalformedSignature {
                header: digest_name,
                reason: "expected a `sha-256=:…:` digest",
            })
        }
    };
    if !bool::from(Sha256::digest(body).as_slice().ct_eq(&want)) {
        return Err(Rejection::BadDigest);
    }
    Ok(Verified {
        key_index,
        timestamp: Some(created),
    })
}

pub(crate) fn sign(
    label: &str,
    secret: &[u8],
    body: &[u8],
    target: &str,
    now: Instant,
) -> Result<Vec<(String, String)>, SignError> {
    let key = signing_key(secret).map_err(|reason| SignError::MalformedSecret { reason })?;
    let digest = format!("sha-256=:{}:", STRICT_B64.encode(Sha256::digest(body)));
    let items: Vec<(Bare, Params)> = REQUIRED
        .iter()
        .map(|c| (Bare::Str(String::from(*c)), Vec::new()))
        .collect();
    let created = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let params: Params = alloc::vec![
        (String::from("created"), Bare::Integer(created)),
        (String::from("alg"), Bare::Str(String::from("ed25519"))),
    ];
    let params_value = serialize_inner_list(&items, &params);
    let lines = [
        (String::from("@request-target"), String::from(target)),
        (String::from("content-digest"), digest.clone()),
    ];
    let sig = key.sign(&signature_base(&lines, &params_value));
    Ok(alloc::vec![
        (String::from(CONTENT_DIGEST), digest),
        (
            String::from(SIGNATURE_INPUT),
            format!("{label}={params_value}")
        ),
        (
            String::from(SIGNATURE),
            format!("{label}=:{}:", STRICT_B64.encode(sig.to_bytes()))
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9421 Appendix B.2.6 ("Signing a Request Using ed25519"): the published signature
    /// base, key and signature. Pins our ed25519 and the signature-base format to the RFC, so
    /// a sign→verify round trip cannot pass by agreeing with itself.
    #[test]
    fn rfc9421_b26_vector() {
        let public_pem = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n\
            -----END PUBLIC KEY-----\n";
        let base = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
            \"@method\": POST\n\
            \"@path\": /foo\n\
            \"@authority\": example.com\n\
            \"content-type\": application/json\n\
            \"content-length\": 18\n\
            \"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \
            \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"";
        let sig_b64 = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==";
        let key = verifying_key(public_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let sig_bytes = STRICT_B64.decode(sig_b64).unwrap_or_default();
        let sig: [u8; 64] = sig_bytes.as_slice().try_into().unwrap_or([0; 64]);
        let sig = Signature::from_bytes(&sig);
        assert!(key.verify_strict(base.as_bytes(), &sig).is_ok());
        assert!(key.verify_strict(&base.as_bytes()[1..], &sig).is_err());
        // Ed25519 is deterministic: the RFC's private key (B.1.4) reproduces the signature.
        let seed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
            .unwrap_or_default();
        let sk = signing_key(&seed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sk.verifying_key(), key);
        assert_eq!(
            STRICT_B64.encode(sk.sign(base.as_bytes()).to_bytes()),
            sig_b64
        );

        // And the params line is what our serializer produces from the parsed header.
        let dict = parse_dictionary(
            "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
        )
        .unwrap_or_default();
        let Some(Member::Inner(items, params)) = member(dict, "sig-b26") else {
            panic!("inner list expected");
        };
        assert!(base.ends_with(&serialize_inner_list(&items, &params)));
    }
}
