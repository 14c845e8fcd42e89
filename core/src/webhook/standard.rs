//! Standard Webhooks v1.0.0: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
//!
//! Signed content is `{id}.{timestamp}.{body}`. Symmetric signatures (`v1`) are HMAC-SHA256 keyed
//! with the base64-**decoded** bytes after `whsec_`; asymmetric ones (`v1a`) are ed25519 with a
//! `whpk_` public key. The signature header is a space-separated list (one entry per active
//! signing key during a rotation); any entry that verifies with any configured secret accepts.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};

use crate::http::Headers;
use crate::time::Instant;

use super::keys::{signing_key, verifying_key, LENIENT_B64, STRICT_B64};
use super::mac::{mac, HmacSha256, MAX_CANDIDATES};
use super::util::{check_window, header, header_timestamp};
use super::{Rejection, SignError, Verified};

pub(crate) const ID: &str = "webhook-id";
pub(crate) const TIMESTAMP: &str = "webhook-timestamp";
pub(crate) const SIGNATURE: &str = "webhook-signature";
/// The reference libraries accept five minutes either way.
pub(crate) const TOLERANCE: Duration = Duration::from_secs(5 * 60);

enum Key {
    Hmac(Vec<u8>),
    Ed25519(VerifyingKey),
}

/// A configured secret: `whsec_<base64>` (or bare base64) is an HMAC key; `whpk_`/`whsk_` are
/// ed25519 keys.
fn key(secret: &[u8]) -> Result<Key, &'static str> {
    if secret.starts_with(b"whpk_") || secret.starts_with(b"whsk_") {
        return verifying_key(secret).map(Key::Ed25519);
    }
    let b64 = secret.strip_prefix(b"whsec_").unwrap_or(secret);
    let bytes = LENIENT_B64
        .decode(b64)
        .map_err(|_| "a Standard Webhooks secret is `whsec_` followed by base64")?;
    if bytes.is_empty() {
        return Err("the decoded secret is empty");
    }
    Ok(Key::Hmac(bytes))
}

pub(crate) fn verify<H: Headers + ?Sized>(
    secrets: &[&[u8]],
    headers: &H,
    body: &[u8],
    now: Instant,
    tolerance: Duration,
) -> Result<Verified, Rejection> {
    let name = Cow::Borrowed(SIGNATURE);
    let id = header(headers, ID).ok_or(Rejection::MissingSignature {
        header: Cow::Borrowed(ID),
    })?;
    let (ts_text, signed) = header_timestamp(headers, TIMESTAMP)?;
    let malformed = |reason| Rejection::MalformedSignature {
        header: name.clone(),
        reason,
    };

    // Collect candidates from every `webhook-signature` line.
    let mut v1: Vec<[u8; 32]> = Vec::new();
    let mut v1a: Vec<Signature> = Vec::new();
    let mut offered = 0usize;
    for entry in headers
        .header_all(SIGNATURE)
        .flat_map(|line| line.split_ascii_whitespace())
    {
        let Some((version, b64)) = entry.split_once(',') else {
            return Err(malformed(
                "expected space-separated `version,base64` entries",
            ));
        };
        offered += 1;
        if offered > MAX_CANDIDATES {
            return Err(malformed("too many signatures"));
        }
        match version {
            "v1" => {
                let mut buf = [0u8; 48];
                if let (Ok(32), Some(sig)) = (
                    STRICT_B64.decode_slice(b64, &mut buf),
                    buf.first_chunk::<32>(),
                ) {
                    v1.push(*sig);
                }
            }
            "v1a" => {
                let mut buf = [0u8; 96];
                if let (Ok(64), Some(sig)) = (
                    STRICT_B64.decode_slice(b64, &mut buf),
                    buf.first_chunk::<64>(),
                ) {
                    v1a.push(Signature::from_bytes(sig));
                }
            }
            // Versions we do not know are skipped, as the specification asks.
            _ => {}
        }
    }
    if offered == 0 {
        return Err(Rejection::MissingSignature { header: name });
    }
    if v1.is_empty() && v1a.is_empty() {
        return Err(malformed("no well-formed `v1` or `v1a` signature"));
    }
    check_window(signed, now, tolerance)?;

    let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", body];
    let mut message: Option<Vec<u8>> = None;
    for (index, secret) in secrets.iter().enumerate() {
        let malformed_secret = |reason| Rejection::MalformedSecret { index, reason };
        match key(secret).map_err(malformed_secret)? {
            Key::Hmac(k) => {
                if v1.is_empty() {
                    continue;
                }
                let expected = mac::<HmacSha256>(&k, &parts)
                    .ok_or(malformed_secret("refused as an HMAC key"))?;
                let mut hit = subtle::Choice::from(0);
                for c in &v1 {
                    hit |= subtle::ConstantTimeEq::ct_eq(expected.as_slice(), c.as_slice());
                }
                if bool::from(hit) {
                    return Ok(Verified {
                        key_index: index,
                        timestamp: Some(signed),
                    });
                }
            }
            Key::Ed25519(pk) => {
                if v1a.is_empty() {
                    continue;
                }
                // ed25519 needs the message in one piece.
                let msg = message.get_or_insert_with(|| parts.concat());
                if v1a.iter().any(|sig| pk.verify_strict(msg, sig).is_ok()) {
                    return Ok(Verified {
                        key_index: index,
                        timestamp: Some(signed),
                    });
                }
            }
        }
    }
    Err(Rejection::BadSignature { header: name })
}

/// Signs with a `whsec_` secret (a `v1` signature) or a `whsk_` private key (`v1a`).
pub(crate) fn sign(
    secret: &[u8],
    body: &[u8],
    id: &str,
    now: Instant,
) -> Result<Vec<(String, String)>, SignError> {
    let ts = alloc::format!("{}", now.as_secs());
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
    let signature = if secret.starts_with(b"whsk_") {
        let sk = signing_key(secret).map_err(|reason| SignError::MalformedSecret { reason })?;
        let sig = sk.sign(&parts.concat());
        alloc::format!("v1a,{}", STRICT_B64.encode(sig.to_bytes()))
    } else if secret.starts_with(b"whpk_") {
        return Err(SignError::MalformedSecret {
            reason: "a `whpk_` public key cannot sign; use the `whsk_` private key",
        });
    } else {
        let Ok(Key::Hmac(k)) = key(secret) else {
            return Err(SignError::MalformedSecret {
                reason: "a Standard Webhooks secret is `whsec_` followed by base64",
            });
        };
        let sig = mac::<HmacSha256>(&k, &parts).ok_or(SignError::MalformedSecret {
            reason: "refused as an HMAC key",
        })?;
        alloc::format!("v1,{}", STRICT_B64.encode(sig))
    };
    Ok(alloc::vec![
        (String::from(ID), String::from(id)),
        (String::from(TIMESTAMP), ts),
        (String::from(SIGNATURE), signature),
    ])
}
