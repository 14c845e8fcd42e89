//! The command line: `serve`, `check`, `explain`, `webhook`, `key`, `version`, and loading a
//! config file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mosaic_core::config::SecretRef;
use mosaic_core::engine::Request;
use mosaic_core::http::Method;
use mosaic_core::region::{Continent, Locality};
use mosaic_core::{Config, Router, State};

use crate::{server, store};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

#[derive(Parser, Debug)]
#[command(
    name = "mosaic",
    about = "Mosaic Edge: one endpoint that routes, retries, fails over and caches across HTTP API providers",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the router (the default when no command is given).
    Serve {
        /// Config file; default `mosaic.toml` if present, else the shipped `examples/mosaic.toml`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address; overrides `[server] listen` (default 127.0.0.1:8787).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate a config file and print every error with its key path (exit 1 on any).
    Check {
        /// Config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show which route a request matches and which providers would be tried, in which order, and why.
    Explain {
        /// Config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// URL or path, e.g. `http://127.0.0.1:8787/github/repos/rust-lang/rust` or `/github/…`.
        #[arg(long)]
        url: String,
        /// A request header `Name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Caller country (ISO alpha-2) for region-aware strategies.
        #[arg(long)]
        country: Option<String>,
        /// Caller continent (EU, NA, SA, AS, AF, OC, AN).
        #[arg(long)]
        continent: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sign or verify a webhook delivery offline.
    Webhook {
        #[command(subcommand)]
        command: crate::cli_hooks::WebhookCommand,
    },
    /// Make API keys for tenants.
    Key {
        #[command(subcommand)]
        command: crate::cli_hooks::KeyCommand,
    },
    /// List the built-in provider plugins: kind, family, operations.
    Providers,
    /// Print the version.
    Version,
}

/// A loaded, validated configuration and where it came from.
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// As validated.
    pub config: Config,
}

/// The default config path: `mosaic.toml` in the working directory if present, else the
/// shipped example.
#[must_use]
pub fn default_config() -> PathBuf {
    let local = PathBuf::from("mosaic.toml");
    if local.is_file() {
        return local;
    }
    let example = PathBuf::from("examples/mosaic.toml");
    if example.is_file() {
        return example;
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/mosaic.toml"
    ))
}

/// Reads, parses and validates a config file. Every error names the file and, for
/// validation errors, the key path.
///
/// # Errors
/// Each problem as one line.
pub fn load(path: &Path) -> Result<Loaded, Vec<String>> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    let config = mosaic_providers::app::text::parse(&text).map_err(|errs| {
        errs.into_iter()
            .map(|e| format!("{shown}: {e}"))
            .collect::<Vec<_>>()
    })?;
    if let Some(f) = &config.server.ca_file {
        // checked here so that `mosaic check` and a reload report it like any other error
        crate::upstream::read_roots(f)
            .map_err(|e| vec![format!("{shown}: server.ca_file: {e}")])?;
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        config,
    })
}

/// Resolves a secret reference natively: `env:` and `secret:` from the environment, `file:`
/// from a file (trailing newline trimmed).
#[must_use]
pub fn resolve_secret(r: &SecretRef) -> Option<String> {
    match r {
        SecretRef::Env(n) | SecretRef::Binding(n) => std::env::var(n).ok(),
        SecretRef::File(p) => std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string()),
    }
}

/// Builds the router, resolving secrets, with the provider plugins' rate-limit headers (the
/// application's one build step).
#[must_use]
pub fn router(config: Config) -> Router {
    mosaic_providers::app::build_router(config, &crate::v1::registry(), resolve_secret)
}

/// Entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve {
        config: None,
        listen: None,
    }) {
        Command::Serve { config, listen } => {
            let path = config.unwrap_or_else(default_config);
            match load(&path) {
                Ok(l) => server::run(l, listen),
                Err(errs) => {
                    for e in errs {
                        eprintln!("error: {e}");
                    }
                    ExitCode::from(1)
                }
            }
        }
        Command::Check { config } => check(&config.unwrap_or_else(default_config)),
        Command::Explain {
            config,
            method,
            url,
            headers,
            country,
            continent,
            json,
        } => explain(
            &config.unwrap_or_else(default_config),
            &method,
            &url,
            &headers,
            country,
            continent,
            json,
        ),
        Command::Webhook { command } => crate::cli_hooks::webhook(command),
        Command::Key { command } => crate::cli_hooks::key(command),
        Command::Providers => {
            for b in mosaic_providers::plugins::builtins() {
                println!("{}", b.line());
            }
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("mosaic {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok(l) => {
            let c = &l.config;
            let r = router(c.clone());
            println!(
                "{}: ok — {} route(s), {} provider(s), {} webhook endpoint(s), {} tenant(s), store {}",
                path.display(),
                c.routes.len(),
                c.providers.len(),
                c.webhooks.len(),
                c.tenants.len(),
                c.store.kind
            );
            for w in &r.warnings {
                println!("warning: {w}");
            }
            for w in mosaic_providers::v1::warnings(&r.config, &crate::v1::registry()) {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s)", errs.len());
            ExitCode::from(1)
        }
    }
}

/// Splits `http://host:port/path?q` or `/path?q` into (host without port, target).
fn split_url(url: &str) -> Result<(Option<String>, String), String> {
    if url.starts_with('/') {
        return Ok((None, url.to_string()));
    }
    let u = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let mut target = u.path().to_string();
    if let Some(q) = u.query() {
        target.push('?');
        target.push_str(q);
    }
    Ok((u.host_str().map(str::to_string), target))
}

fn parse_headers(headers: &[String]) -> Result<Vec<(String, String)>, String> {
    headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| format!("header `{h}` is not `Name: value`"))
        })
        .collect()
}

fn explain(
    path: &Path,
    method: &str,
    url: &str,
    headers: &[String],
    country: Option<String>,
    continent: Option<String>,
    json: bool,
) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            return ExitCode::from(1);
        }
    };
    let Some(m) = Method::parse(&method.to_ascii_uppercase()) else {
        eprintln!("error: unknown method `{method}`; expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS");
        return ExitCode::from(2);
    };
    let (host, target) = match split_url(url) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let headers = match parse_headers(headers) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let router = router(loaded.config);
    let mut state = State::new(&router.config, 0);
    // the live breaker and cooldown state, when a persistent store holds a snapshot
    let note = match store::load_snapshot(&router.config) {
        Ok(Some(bytes)) => {
            match mosaic_core::snapshot::decode_into(&router.config, &mut state, &bytes) {
                Ok(()) => format!(
                    "state: from the {} store snapshot",
                    router.config.store.kind
                ),
                Err(e) => format!("state: fresh ({e})"),
            }
        }
        Ok(None) => String::from("state: fresh (no snapshot in the store)"),
        Err(e) => format!("state: fresh ({e})"),
    };
    let locality = Locality {
        colo: None,
        country: country.map(|c| c.to_ascii_uppercase()),
        continent: continent.as_deref().and_then(Continent::parse),
    };
    let req = Request {
        method: m,
        host: host.as_deref(),
        target: &target,
        headers: &headers,
        client_ip: Some("127.0.0.1"),
        https: url
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://")),
        locality,
        id: "explain",
    };
    let now = crate::host::wall_now();
    let e = mosaic_core::admin::explain(&router, &state, &req, now);
    if json {
        match serde_json::to_string_pretty(&e) {
            Ok(s) => println!("{s}"),
            Err(err) => eprintln!("error: {err}"),
        }
    } else {
        print!("{}", e.to_text());
        println!("{note}");
    }
    if e.problem.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
