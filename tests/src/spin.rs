//! [`HostUnderTest`] for the Spin host: the built component (`edge/spin`, wasm32-wasip2)
//! served for real by `scripts/spin-serve` (`wasmtime serve` with the test-only
//! `spin-testhost` fixture composed in for `fermyon:spin/key-value@2.0.0` and
//! `fermyon:spin/variables@2.0.0`; the component is WASIp2, `wasi:http/incoming-handler@0.2.0`).
//!
//! Nothing is built here: the test command (`scripts/test-spin`) builds the component and
//! points `MOSAIC_SPIN_COMPONENT` at it; without it (or without the component or wasmtime)
//! [`SpinComponent::from_env`] panics, so a missing build fails instead of passing. Every router gets a fresh key-value data directory;
//! the config goes into it as the key `mosaic:config` (so [`Running::write_config`] changes
//! it between requests, as an operator would with `spin kv set`), the test secrets are Spin
//! variables, and `--max-instance-reuse-count 1` gives every request a fresh instance, as
//! Spin does. Set `MOSAIC_SPIN_KEEP=1` to keep the data directories (and logs) for a look.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::host::{tempdir, HostUnderTest, Running, ADMIN_TOKEN};

/// The environment variable naming the built component.
pub const COMPONENT_ENV: &str = "MOSAIC_SPIN_COMPONENT";

/// How long a start may take (the first one compiles the component, ~1 s, more on a busy box).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The built Spin component, served by `scripts/spin-serve`.
#[derive(Clone, Debug)]
pub struct SpinComponent {
    /// The component (`mosaic_spin.wasm`).
    pub component: PathBuf,
    /// `scripts/spin-serve`.
    pub serve: PathBuf,
}

impl SpinComponent {
    /// The component `MOSAIC_SPIN_COMPONENT` points at. A missing build fails, never passes
    /// silently: `scripts/test-spin` builds the component and sets the variable, and a test
    /// binary run without it (or without the component, `scripts/spin-serve` or wasmtime)
    /// panics saying what to run.
    ///
    /// # Panics
    /// When the variable is unset, or the component, `scripts/spin-serve` or the pinned
    /// wasmtime is missing.
    #[must_use]
    pub fn from_env() -> SpinComponent {
        let Some(path) = std::env::var_os(COMPONENT_ENV) else {
            panic!(
                "{COMPONENT_ENV} is not set: the Spin suite runs against the built component; run scripts/test-spin, which builds it and sets {COMPONENT_ENV}"
            );
        };
        let component = PathBuf::from(path);
        assert!(
            component.is_file(),
            "{COMPONENT_ENV}={} but there is no such file: build it with `cargo build --release --target wasm32-wasip2` in edge/spin (scripts/test-spin does)",
            component.display()
        );
        let serve = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/spin-serve");
        assert!(
            serve.is_file(),
            "scripts/spin-serve is missing at {}",
            serve.display()
        );
        let wasmtime = wasmtime();
        assert!(
            wasmtime.as_ref().is_some_and(|w| w.is_file()),
            "wasmtime is not installed ({}): run scripts/install-spin-tools (scripts/test-spin does)",
            wasmtime.map_or_else(|| String::from("no WASMTIME and no tools.env"), |w| w.display().to_string())
        );
        SpinComponent { component, serve }
    }

    /// Serves `config_toml` from a fresh data directory.
    ///
    /// # Errors
    /// When spin-serve does not report ready (the message carries its output).
    pub fn spawn(&self, config_toml: &str) -> Result<SpinRouter, String> {
        self.spawn_with(Some(config_toml), &[])
    }

    /// Serves from a fresh data directory holding `kv_config` as `mosaic:config` (if any),
    /// with extra Spin variables (`name`, `value`).
    ///
    /// # Errors
    /// When spin-serve does not report ready (the message carries its output).
    pub fn spawn_with(
        &self,
        kv_config: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<SpinRouter, String> {
        let mut r = SpinRouter {
            child: None,
            port: 0,
            dir: tempdir(),
            component: self.clone(),
            vars: vars
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
        };
        if let Some(c) = kv_config {
            r.write_config(c)?;
        }
        r.launch()?;
        Ok(r)
    }
}

impl HostUnderTest for SpinComponent {
    fn name(&self) -> &str {
        "spin"
    }
    fn start(&self, config_toml: &str) -> Result<Box<dyn Running>, String> {
        self.spawn(config_toml)
            .map(|r| Box::new(r) as Box<dyn Running>)
    }
    fn start_with_secrets(
        &self,
        config_toml: &str,
        secrets: &[(&str, &str)],
    ) -> Result<Box<dyn Running>, String> {
        // `env:NAME` and `secret:NAME` read the Spin variable `NAME` lower-cased
        let vars: Vec<(String, &str)> = secrets
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), *v))
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        self.spawn_with(Some(config_toml), &vars)
            .map(|r| Box::new(r) as Box<dyn Running>)
    }
}

/// The wasmtime `scripts/spin-serve` runs: `WASMTIME`, else the one `tools.env` of
/// `scripts/install-spin-tools` names.
fn wasmtime() -> Option<PathBuf> {
    if let Some(w) = std::env::var_os("WASMTIME") {
        return Some(PathBuf::from(w));
    }
    let root = std::env::var_os("MOSAIC_SPIN_TOOLS_DIR").map_or_else(
        || {
            let cache = std::env::var_os("XDG_CACHE_HOME").map_or_else(
                || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"),
                PathBuf::from,
            );
            cache.join("mosaic/spin-tools")
        },
        PathBuf::from,
    );
    let env = std::fs::read_to_string(root.join("tools.env")).ok()?;
    env.lines()
        .find_map(|l| l.strip_prefix("WASMTIME="))
        .map(|v| PathBuf::from(v.trim().trim_matches('"').trim_matches('\'')))
}

/// A `scripts/spin-serve` child; stopped (SIGTERM, which stops wasmtime) when dropped.
pub struct SpinRouter {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its data directory (`default/` holds the key-value store, one file per key).
    pub dir: PathBuf,
    component: SpinComponent,
    vars: Vec<(String, String)>,
}

/// The fixture's file name of key `key`: `[A-Za-z0-9_-]` kept, every other byte `%XX`.
#[must_use]
pub fn kv_file_name(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl SpinRouter {
    fn log_path(&self) -> PathBuf {
        self.dir.join("spin-serve.log")
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = self.log_path();
        let mut child = Command::new(&self.component.serve)
            .arg("--var")
            .arg(format!("mosaic_test_admin={ADMIN_TOKEN}"))
            .arg("--var")
            .arg(format!(
                "mosaic_test_upstream={}",
                crate::scenarios::UPSTREAM_TOKEN
            ))
            .args(
                self.vars
                    .iter()
                    .flat_map(|(n, v)| ["--var".to_string(), format!("{n}={v}")]),
            )
            .arg("--log")
            .arg(&log)
            .arg("--ready-timeout")
            .arg(READY_TIMEOUT.as_secs().to_string())
            .arg(&self.component.component)
            .arg("0")
            .arg(&self.dir)
            .args(["--", "--max-instance-reuse-count", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.component.serve.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel::<Option<u16>>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("port="))
                    .and_then(|p| p.parse().ok())
                {
                    let _ = tx.send(Some(p));
                    return;
                }
            }
            let _ = tx.send(None);
        });
        let err_lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&err_lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(READY_TIMEOUT + Duration::from_secs(5)) {
            Ok(Some(port)) => {
                self.port = port;
                Ok(())
            }
            _ => {
                self.stop();
                std::thread::sleep(Duration::from_millis(100));
                let err = err_lines.lock().map(|s| s.clone()).unwrap_or_default();
                Err(format!(
                    "scripts/spin-serve did not report ready (is the Spin toolchain installed? scripts/install-spin-tools):\n{err}\n{}",
                    self.logs()
                ))
            }
        }
    }

    /// Stops the server (SIGTERM to spin-serve, which stops wasmtime) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server and serves the same data directory again (on a new port).
    ///
    /// # Errors
    /// When it does not come back.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.launch()
    }

    /// Reads key `key` of the default store straight from the data directory.
    #[must_use]
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("default").join(kv_file_name(key))).ok()
    }
}

impl Running for SpinRouter {
    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn write_config(&self, config_toml: &str) -> Result<(), String> {
        let store = self.dir.join("default");
        std::fs::create_dir_all(&store).map_err(|e| e.to_string())?;
        let tmp = store.join(".tmp-test-config");
        std::fs::write(&tmp, config_toml).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, store.join(kv_file_name("mosaic:config"))).map_err(|e| e.to_string())
    }
    fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for SpinRouter {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("MOSAIC_SPIN_KEEP").is_some() {
            eprintln!("spin: kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
