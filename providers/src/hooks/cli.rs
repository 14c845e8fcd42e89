//! The logic of `mosaic webhook sign` and `mosaic webhook verify`, so that the command line only
//! reads files and flags and prints.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use mosaic_core::time::Instant;
use mosaic_core::webhook::{body_key, SignError};

use crate::webhook::{self, HandshakePolicy, Outcome, VerifyOptions, NAMES};

/// The request target used when none is given (`woodpecker` signs it; `bookstack` and `jenkins`
/// carry their secret in its query).
pub const DEFAULT_TARGET: &str = "/";

/// Why `sign` or `verify` could not run at all (exit code 2).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CliError {
    /// The scheme name is not one of [`NAMES`].
    UnknownScheme(String),
    /// The secret cannot sign with this scheme.
    Sign(SignError),
    /// A `--header` is not `Name: value`.
    BadHeader(String),
}

impl CliError {
    /// The process exit code: always 2.
    #[must_use]
    pub const fn exit_code(&self) -> i32 {
        2
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownScheme(s) => write!(
                f,
                "unknown scheme `{s}`; expected one of {}",
                NAMES.join(", ")
            ),
            CliError::Sign(e) => write!(f, "cannot sign: {e}"),
            CliError::BadHeader(h) => {
                write!(f, "`--header {h}` is not of the form `Name: value`")
            }
        }
    }
}

fn preset(scheme: &str) -> Result<&'static webhook::Preset, CliError> {
    webhook::preset_by_name(scheme).ok_or_else(|| CliError::UnknownScheme(String::from(scheme)))
}

/// `mosaic webhook sign --scheme NAME --secret S --body-file F [--id ID] [--target T] [--now UNIX]`:
/// the headers the provider would send with `body`, one `Name: value` line each (ending in `\n`).
///
/// Without `id` a deterministic one is derived from the body (`msg_` + 24 hex digits of its
/// SHA-256), so the same input prints the same lines. `target` (default [`DEFAULT_TARGET`]) is
/// signed by `woodpecker`. For `bookstack` and `jenkins`, whose secret travels in the URL, the
/// output is a `#` comment saying so (never the secret). For `linear`, put a current
/// `webhookTimestamp` (Unix ms) in the body first.
///
/// # Errors
///
/// [`CliError::UnknownScheme`], or [`CliError::Sign`] if the secret is unusable.
pub fn cli_sign(
    scheme: &str,
    secret: &[u8],
    body: &[u8],
    id: Option<&str>,
    target: Option<&str>,
    now: Instant,
) -> Result<String, CliError> {
    let preset = preset(scheme)?;
    let derived;
    let id = match id {
        Some(id) => id,
        None => {
            let k = body_key(body);
            derived = format!("msg_{}", k.get(7..31).unwrap_or("0"));
            &derived
        }
    };
    let target = target.unwrap_or(DEFAULT_TARGET);
    match webhook::sign(preset, secret, body, Some(target), id, None, now) {
        Ok(headers) => {
            let mut out = String::new();
            for (n, v) in headers {
                out.push_str(&n);
                out.push_str(": ");
                out.push_str(&v);
                out.push('\n');
            }
            Ok(out)
        }
        Err(SignError::NotHeaderBased { param }) => Ok(format!(
            "# {scheme} sends no signature header: the secret goes in the webhook URL as ?{param}=<secret>\n"
        )),
        Err(e) => Err(CliError::Sign(e)),
    }
}

/// Splits a `Name: value` header line (surrounding whitespace of the value trimmed).
///
/// # Errors
///
/// [`CliError::BadHeader`] when there is no colon or the name is empty or not a token.
pub fn parse_header_line(line: &str) -> Result<(String, String), CliError> {
    let bad = || CliError::BadHeader(String::from(line));
    let (name, value) = line.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(bad());
    }
    Ok((String::from(name), String::from(value.trim())))
}

/// `mosaic webhook verify --scheme NAME --secret S --body-file F --header 'Name: value'…
/// [--target T] [--now UNIX]`: `(0, why)` when the delivery is genuine, `(1, reason)` when it is
/// not, `(2, error)` when verification cannot run (unknown scheme, malformed `--header`, an
/// unusable secret). `target` (default [`DEFAULT_TARGET`]) is needed by `woodpecker`,
/// `bookstack` and `jenkins`. The message never contains the secret or a signature.
#[must_use]
pub fn cli_verify(
    scheme: &str,
    secret: &[u8],
    body: &[u8],
    headers: &[&str],
    target: Option<&str>,
    now: Instant,
) -> (i32, String) {
    let preset = match preset(scheme) {
        Ok(p) => p,
        Err(e) => return (e.exit_code(), format!("{e}")),
    };
    let mut parsed: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for h in headers {
        match parse_header_line(h) {
            Ok(p) => parsed.push(p),
            Err(e) => return (e.exit_code(), format!("{e}")),
        }
    }
    let opts = VerifyOptions {
        tolerance: None,
        handshake: HandshakePolicy::Never,
    };
    let target = target.unwrap_or(DEFAULT_TARGET);
    match webhook::verify(preset, &[secret], &parsed, body, Some(target), now, &opts) {
        Ok(Outcome::Verified(_)) => (0, format!("genuine {scheme} delivery")),
        Ok(Outcome::Challenge { .. }) => (
            0,
            format!("genuine {scheme} delivery (a url_verification challenge)"),
        ),
        Ok(Outcome::Handshake { .. }) => (0, format!("{scheme} subscription handshake")),
        Err(r) if r.is_configuration_error() => (2, format!("cannot verify: {r} [{}]", r.code())),
        Err(r) => (1, format!("not genuine: {r} [{}]", r.code())),
    }
}
