//! Shared-secret schemes where the secret itself travels with the request: a token header
//! (GitLab `X-Gitlab-Token`) or a URL query parameter (BookStack, Jenkins, anything unsigned).
//!
//! These authenticate the sender but not the body. Comparison is constant-time in content *and*
//! length: both sides are hashed with SHA-256 first and the digests compared with `subtle`, so a
//! timing probe cannot learn the secret's length either.

use alloc::borrow::Cow;
use alloc::format;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::Headers;

use super::util::{header, percent_decode, query_of};
use super::{Rejection, Verified};

fn first_equal(secrets: &[&[u8]], presented: &[u8]) -> Option<usize> {
    let p = Sha256::digest(presented);
    secrets
        .iter()
        .position(|s| bool::from(Sha256::digest(s).ct_eq(&p)))
}

// A `&Cow` (not `&str`) so the name can go into a `Rejection` without allocating.
#[allow(clippy::ptr_arg)]
pub(crate) fn verify_header<H: Headers + ?Sized>(
    name: &Cow<'static, str>,
    secrets: &[&[u8]],
    headers: &H,
) -> Result<Verified, Rejection> {
    let token = header(headers, name).ok_or_else(|| Rejection::MissingSignature {
        header: name.clone(),
    })?;
    match first_equal(secrets, token.as_bytes()) {
        Some(key_index) => Ok(Verified {
            key_index,
            timestamp: None,
        }),
        None => Err(Rejection::BadSignature {
            header: name.clone(),
        }),
    }
}

// A `&Cow` (not `&str`) so the name can go into a `Rejection` without allocating.
#[allow(clippy::ptr_arg)]
pub(crate) fn verify_query(
    param: &Cow<'static, str>,
    secrets: &[&[u8]],
    target: Option<&str>,
) -> Result<Verified, Rejection> {
    let label = || Cow::Owned(format!("?{param}"));
    let query = query_of(target.ok_or(Rejection::MissingTarget)?);
    let mut value = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k).as_deref() == Some(param.as_bytes()) {
            value = Some(v);
            break;
        }
    }
    let raw = value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Rejection::MissingSignature { header: label() })?;
    let decoded = percent_decode(raw).ok_or_else(|| Rejection::MalformedSignature {
        header: label(),
        reason: "bad percent-encoding",
    })?;
    match first_equal(secrets, &decoded) {
        Some(key_index) => Ok(Verified {
            key_index,
            timestamp: None,
        }),
        None => Err(Rejection::BadSignature { header: label() }),
    }
}
