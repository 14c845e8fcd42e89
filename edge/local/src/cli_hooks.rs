//! `mosaic webhook sign|verify` and `mosaic key new`: the command line reads files and flags
//! and prints; `mosaic_providers::hooks::{cli_sign, cli_verify}` decide.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use clap::Subcommand;
use mosaic_core::time::Instant;
use mosaic_providers::hooks::{cli_sign, cli_verify};
use sha2::{Digest, Sha256};

/// `mosaic webhook …`.
#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Print the headers a provider would send with a body, one `Name: value` line each.
    Sign {
        /// Scheme (preset) name: github, gitlab, stripe, slack, standard-webhooks, …
        #[arg(long)]
        scheme: String,
        /// The endpoint's secret.
        #[arg(long)]
        secret: String,
        /// The body to sign (`-` for standard input).
        #[arg(long)]
        body_file: PathBuf,
        /// Delivery id (default: derived from the body, so the output is reproducible).
        #[arg(long)]
        id: Option<String>,
        /// Signing time, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// Request target, for schemes that sign it (default `/`).
        #[arg(long)]
        target: Option<String>,
    },
    /// Check a delivery: exit 0 if genuine, 1 if not (with the reason), 2 if it cannot be
    /// checked (unreadable file, unknown scheme, malformed header, unusable secret).
    Verify {
        /// Scheme (preset) name.
        #[arg(long)]
        scheme: String,
        /// The endpoint's secret.
        #[arg(long)]
        secret: String,
        /// The body as received (`-` for standard input).
        #[arg(long)]
        body_file: PathBuf,
        /// A received header `Name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Verification time, Unix seconds (default: now), for timestamped schemes.
        #[arg(long)]
        now: Option<u64>,
        /// Request target as received, for schemes that sign it or carry the secret in it.
        #[arg(long)]
        target: Option<String>,
    },
}

/// `mosaic key …`.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Print a fresh random API key (once) and the hash line to put in the tenant's config.
    New {
        /// The tenant the key is for (printed into the config snippet).
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn read_body(path: &Path) -> Result<Vec<u8>, String> {
    if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(|e| format!("cannot read the body from standard input: {e}"))?;
        return Ok(b);
    }
    std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

fn at(now: Option<u64>) -> Instant {
    now.map_or_else(crate::host::wall_now, |s| {
        Instant::from_micros(s.saturating_mul(1_000_000))
    })
}

/// Runs `mosaic webhook …`.
pub fn webhook(cmd: WebhookCommand) -> ExitCode {
    match cmd {
        WebhookCommand::Sign {
            scheme,
            secret,
            body_file,
            id,
            now,
            target,
        } => {
            let body = match read_body(&body_file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match cli_sign(
                &scheme,
                secret.as_bytes(),
                &body,
                id.as_deref(),
                target.as_deref(),
                at(now),
            ) {
                Ok(lines) => {
                    print!("{lines}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
                }
            }
        }
        WebhookCommand::Verify {
            scheme,
            secret,
            body_file,
            headers,
            now,
            target,
        } => {
            let body = match read_body(&body_file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let (code, message) = cli_verify(
                &scheme,
                secret.as_bytes(),
                &body,
                &headers,
                target.as_deref(),
                at(now),
            );
            if code == 0 {
                println!("{message}");
            } else {
                eprintln!("{message}");
            }
            ExitCode::from(u8::try_from(code).unwrap_or(2))
        }
    }
}

/// Prefix of keys made by `mosaic key new` (so a leaked one is recognisable in a scan).
const KEY_PREFIX: &str = "mk_";

/// A new key and its `sha256:<hex>` hash, from 32 bytes of OS entropy.
fn new_key() -> Result<(String, String), String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    // core authenticates a key by the SHA-256 of the bytes presented: the whole key
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((key, format!("sha256:{hex}")))
}

/// Runs `mosaic key …`.
pub fn key(cmd: KeyCommand) -> ExitCode {
    match cmd {
        KeyCommand::New { tenant } => {
            let (key, hash) = match new_key() {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            debug_assert!(mosaic_core::config::parse_key_hash(&hash).is_some());
            println!("{key}");
            println!(
                "# ^ the API key: shown only this once and stored nowhere; give it to the tenant,"
            );
            println!("#   who sends it as `Authorization: Bearer <key>` or `x-mosaic-key: <key>`.");
            match tenant {
                Some(t) => {
                    println!("# Put its hash in the config (add it to the tenant's existing `keys` list):");
                    println!("[[tenants]]");
                    println!("name = {}", toml::Value::String(t));
                    println!("keys = [\"{hash}\"]");
                }
                None => {
                    println!("# Put its hash in the tenant's [[tenants]] table (add it to an existing `keys` list):");
                    println!("keys = [\"{hash}\"]");
                }
            }
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_distinct_and_their_hash_parses() {
        let (Ok((k1, h1)), Ok((k2, _))) = (new_key(), new_key()) else {
            panic!("entropy")
        };
        assert_ne!(k1, k2);
        assert!(k1.starts_with(KEY_PREFIX) && k1.len() == KEY_PREFIX.len() + 43);
        let Some(d) = mosaic_core::config::parse_key_hash(&h1) else {
            panic!("{h1} does not parse")
        };
        assert!(mosaic_core::secret::key_matches(k1.as_bytes(), &[d]));
    }
}
