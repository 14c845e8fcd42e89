//! HMAC schemes with hex signatures: raw-body HMAC (GitHub, Gitea, Forgejo, Jira, Notion, Plane,
//! Confluence DC), Linear (raw body plus a signed body timestamp), Slack and Stripe (signed
//! timestamp prefixed to the body).

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use hmac::digest::{KeyInit, Output, OutputSizeUser};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::http::Headers;
use crate::time::Instant;

use super::util::{check_window, decode_hex_lower, header, header_timestamp, parse_digits};
use super::{Rejection, Verified};

pub(crate) type HmacSha256 = Hmac<Sha256>;
pub(crate) type HmacSha1 = Hmac<Sha1>;

/// At most this many candidate signatures are examined in one header: bounds the work a forged
/// request can cause.
pub(crate) const MAX_CANDIDATES: usize = 8;

/// HMAC of the concatenation of `parts`, without copying them together.
pub(crate) fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Option<Output<M>> {
    let mut m = <M as KeyInit>::new_from_slice(key).ok()?;
    for p in parts {
        m.update(p);
    }
    Some(m.finalize().into_bytes())
}

/// The index of the first secret whose MAC over `parts` equals one of `candidates`, compared in
/// constant time.
pub(crate) fn first_match<M: Mac + KeyInit>(
    secrets: &[&[u8]],
    parts: &[&[u8]],
    candidates: &[&[u8]],
) -> Result<Option<usize>, Rejection> {
    for (index, secret) in secrets.iter().enumerate() {
        let expected = mac::<M>(secret, parts).ok_or(Rejection::MalformedSecret {
            index,
            reason: "refused as an HMAC key",
        })?;
        let mut hit = subtle::Choice::from(0);
        for c in candidates {
            hit |= expected.as_slice().ct_eq(c);
        }
        if bool::from(hit) {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// Hex of the HMAC over `parts`, for signing.
pub(crate) fn mac_hex<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Option<String> {
    mac::<M>(key, parts).map(hex::encode)
}

// A `&Cow` (not `&str`) so the name can go into a `Rejection` without allocating.
#[allow(clippy::ptr_arg)]
fn signature_header<'h, H: Headers + ?Sized>(
    headers: &'h H,
    name: &Cow<'static, str>,
) -> Result<&'h str, Rejection> {
    header(headers, name).ok_or_else(|| Rejection::MissingSignature {
        header: name.clone(),
    })
}

/// Decodes `value` (after `prefix`) as a lowercase-hex MAC of `M`'s length into `buf`.
// A `&Cow` (not `&str`) so the name can go into a `Rejection` without allocating.
#[allow(clippy::ptr_arg)]
fn parse_hex_sig<'b, M: OutputSizeUser>(
    value: &str,
    prefix: Option<&str>,
    name: &Cow<'static, str>,
    buf: &'b mut [u8; 64],
) -> Result<&'b [u8], Rejection> {
    let hex = match prefix {
        Some(p) => value
            .strip_prefix(p)
            .ok_or_else(|| Rejection::MalformedSignature {
                header: name.clone(),
                reason: "missing the expected algorithm prefix",
            })?,
        None => value,
    };
    let n = M::output_size().min(buf.len());
    let out = &mut buf[..n];
    if !decode_hex_lower(hex, out) {
        return Err(Rejection::MalformedSignature {
            header: name.clone(),
            reason: if hex.len() == n * 2 {
                "expected lowercase hex"
            } else {
                "wrong signature length"
            },
        });
    }
    Ok(out)
}

/// Raw-body HMAC in a hex header.
// A `&Cow` (not `&str`) so the name can go into a `Rejection` without allocating.
#[allow(clippy::ptr_arg)]
pub(crate) fn verify_hex<M: Mac + KeyInit, H: Headers + ?Sized>(
    name: &Cow<'static, str>,
    prefix: Option<&str>,
    secrets: &[&[u8]],
    headers: &H,
    body: &[u8],
) -> Result<Verified, Rejection> {
    let value = signature_header(headers, name)?;
    let mut buf = [0u8; 64];
    let sig = parse_hex_sig::<M>(value, prefix, name, &mut buf)?;
    match first_match::<M>(secrets, &[body], &[sig])? {
        Some(key_index) => Ok(Verified {
            key_index,
            timestamp: None,
        }),
        None => Err(Rejection::BadSignature {
            header: name.clone(),
        }),
    }
}

/// `prefix || hex(HMAC(secret, body))` in `name`.
pub(crate) fn sign_hex<M: Mac + KeyInit>(
    name: &str,
    prefix: Option<&str>,
    secret: &[u8],
    body: &[u8],
) -> Option<Vec<(String, String)>> {
    let hex = mac_hex::<M>(secret, &[body])?;
    Some(alloc::vec![(
        String::from(name),
        format!("{}{hex}", prefix.unwrap_or("")),
    )])
}

// ---------------------------------------------------------------------------------------------
// Linear

pub(crate) const LINEAR_SIGNATURE: &str = "Linear-Signature";
pub(crate) const LINEAR_TS_FIELD: &str = "webhookTimestamp";
/// Linear's SDK rejects deliveries whose `webhookTimestamp` is more than a minute from now.
pub(crate) const LINEAR_TOLERANCE: Duration = Duration::from_secs(60);

#[derive(serde::Deserialize)]
struct LinearTimestamp {
    #[serde(rename = "webhookTimestamp")]
    ts: Option<serde_json::Value>,
}

pub(crate) fn verify_linear<H: Headers + ?Sized>(
    secrets: &[&[u8]],
    headers: &H,
    body: &[u8],
    now: Instant,
    tolerance: Duration,
) -> Result<Verified, Rejection> {
    let name = Cow::Borrowed(LINEAR_SIGNATURE);
    let mut verified = verify_hex::<HmacSha256, H>(&name, None, secrets, headers, body)?;
    // The timestamp is read only from a body whose MAC is already known to be good.
    let field = Cow::Borrowed(LINEAR_TS_FIELD);
    let parsed: LinearTimestamp =
        serde_json::from_slice(body).map_err(|_| Rejection::MissingTimestamp {
            field: field.clone(),
        })?;
    let ms = match parsed.ts {
        None | Some(serde_json::Value::Null) => return Err(Rejection::MissingTimestamp { field }),
        Some(v) => v.as_u64().ok_or(Rejection::MalformedTimestamp {
            field: field.clone(),
            reason: "expected integer Unix milliseconds",
        })?,
    };
    let signed = Instant::from_millis(ms);
    check_window(signed, now, tolerance)?;
    verified.timestamp = Some(signed);
    Ok(verified)
}

// ---------------------------------------------------------------------------------------------
// Slack

pub(crate) const SLACK_SIGNATURE: &str = "X-Slack-Signature";
pub(crate) const SLACK_TIMESTAMP: &str = "X-Slack-Request-Timestamp";
pub(crate) const SLACK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

pub(crate) fn verify_slack<H: Headers + ?Sized>(
    secrets: &[&[u8]],
    headers: &H,
    body: &[u8],
    now: Instant,
    tolerance: Duration,
) -> Result<Verified, Rejection> {
    let name = Cow::Borrowed(SLACK_SIGNATURE);
    let value = signature_header(headers, &name)?;
    let (ts_text, signed) = header_timestamp(headers, SLACK_TIMESTAMP)?;
    let mut buf = [0u8; 64];
    let sig = parse_hex_sig::<HmacSha256>(value, Some("v0="), &name, &mut buf)?;
    check_window(signed, now, tolerance)?;
    let parts: [&[u8]; 4] = [b"v0:", ts_text.as_bytes(), b":", body];
    match first_match::<HmacSha256>(secrets, &parts, &[sig])? {
        Some(key_index) => Ok(Verified {
            key_index,
            timestamp: Some(signed),
        }),
        None => Err(Rejection::BadSignature { header: name }),
    }
}

pub(crate) fn sign_slack(
    secret: &[u8],
    body: &[u8],
    now: Instant,
) -> Option<Vec<(String, String)>> {
    let ts = format!("{}", now.as_secs());
    let hex = mac_hex::<HmacSha256>(secret, &[b"v0:", ts.as_bytes(), b":", body])?;
    Some(alloc::vec![
        (String::from(SLACK_TIMESTAMP), ts),
        (String::from(SLACK_SIGNATURE), format!("v0={hex}")),
    ])
}

// ---------------------------------------------------------------------------------------------
// Stripe

pub(crate) const STRIPE_SIGNATURE: &str = "Stripe-Signature";
/// `stripe-python` `DEFAULT_TOLERANCE = 300`.
pub(crate) const STRIPE_TOLERANCE: Duration = Duration::from_secs(300);

pub(crate) fn verify_stripe<H: Headers + ?Sized>(
    secrets: &[&[u8]],
    headers: &H,
    body: &[u8],
    now: Instant,
    tolerance: Duration,
) -> Result<Verified, Rejection> {
    let name = Cow::Borrowed(STRIPE_SIGNATURE);
    let value = signature_header(headers, &name)?;
    let malformed = |reason| Rejection::MalformedSignature {
        header: name.clone(),
        reason,
    };
    let mut ts_text: Option<&str> = None;
    let mut candidates = [[0u8; 32]; MAX_CANDIDATES];
    let mut count = 0usize;
    let mut saw_v1 = false;
    for item in value.split(',') {
        let Some((key, val)) = item.split_once('=') else {
            return Err(malformed("expected comma-separated `key=value` pairs"));
        };
        match key.trim() {
            "t" => {
                if ts_text.is_some() {
                    return Err(malformed("more than one `t=`"));
                }
                ts_text = Some(val.trim());
            }
            // Only v1 is ever trusted: v0 is a test-mode value and accepting it would let an
            // attacker downgrade the scheme.
            "v1" => {
                saw_v1 = true;
                let Some(slot) = candidates.get_mut(count) else {
                    return Err(malformed("too many `v1=` signatures"));
                };
                // A v1 that is not 32 bytes of hex cannot match; skip it like Stripe's SDK does
                // (it compares strings), but remember that a v1 was offered.
                if decode_hex_lower(val.trim(), slot) {
                    count += 1;
                }
            }
            _ => {}
        }
    }
    let ts_field = Cow::Borrowed("Stripe-Signature t=");
    let ts_text = ts_text.ok_or(Rejection::MissingTimestamp {
        field: ts_field.clone(),
    })?;
    let secs = parse_digits(ts_text, super::util::MAX_SECS_DIGITS).ok_or(
        Rejection::MalformedTimestamp {
            field: ts_field,
            reason: "expected integer Unix seconds",
        },
    )?;
    if !saw_v1 {
        return Err(malformed("no `v1=` signature"));
    }
    if count == 0 {
        return Err(malformed("no well-formed `v1=` signature"));
    }
    let signed = Instant::from_secs(secs);
    // Stripe's SDK only rejects old timestamps; we also refuse ones too far ahead, otherwise a
    // signature minted with a future `t` would stay replayable for as long as it likes.
    check_window(signed, now, tolerance)?;
    let refs: Vec<&[u8]> = candidates
        .iter()
        .take(count)
        .map(|c| c.as_slice())
        .collect();
    let parts: [&[u8]; 3] = [ts_text.as_bytes(), b".", body];
    match first_match::<HmacSha256>(secrets, &parts, &refs)? {
        Some(key_index) => Ok(Verified {
            key_index,
            timestamp: Some(signed),
        }),
        None => Err(Rejection::BadSignature { header: name }),
    }
}

pub(crate) fn sign_stripe(
    secret: &[u8],
    body: &[u8],
    now: Instant,
) -> Option<Vec<(String, String)>> {
    let ts = format!("{}", now.as_secs());
    let hex = mac_hex::<HmacSha256>(secret, &[ts.as_bytes(), b".", body])?;
    Some(alloc::vec![(
        String::from(STRIPE_SIGNATURE),
        format!("t={ts},v1={hex}")
    )])
}
