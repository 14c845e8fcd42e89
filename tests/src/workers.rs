//! [`HostUnderTest`] for the Cloudflare Workers host: the worker built by `worker-build`
//! (`edge/workers/build`) run for real under workerd by `wrangler dev --local`.
//!
//! Nothing is built here: the test command (`scripts/test-workers`) builds the worker and points
//! `MOSAIC_WORKER_BUILD` at its `build/` directory. Every router gets a fresh directory with a
//! generated wrangler config (no `[build]` step; `main` is the built `worker/shim.mjs`), the
//! scenario's config TOML as `[vars] MOSAIC_CONFIG`, the test secrets in `.dev.vars` (wrangler
//! shows them as `(hidden)`), and its own persisted KV (`--persist-to`).
//!
//! [`Running::write_config`] writes the KV key `mosaic:config` (which takes precedence over the
//! variable) with `wrangler kv key put --local`. A running `wrangler dev` does not see KV
//! writes made by another process (its KV is a Durable Object that keeps its own view), so
//! writing the config stops the server, writes the key and starts it again on the same port:
//! on Workers a config change reaches an isolate by a KV read, here it reaches a fresh one.
//! Set `MOSAIC_WORKERS_KEEP=1` to keep the directories (and logs) for a look.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::host::{http_get_status, tempdir, HostUnderTest, Running, ADMIN_TOKEN};

/// The environment variable naming the built worker directory (`edge/workers/build`).
pub const BUILD_ENV: &str = "MOSAIC_WORKER_BUILD";

/// The compatibility date of the generated configs (the root wrangler.toml's).
pub const COMPATIBILITY_DATE: &str = "2026-04-20";

/// How long `wrangler dev` may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The built worker, run by `wrangler dev`.
#[derive(Clone, Debug)]
pub struct WorkerBuild {
    /// `edge/workers/build`.
    pub build: PathBuf,
    /// The wrangler executable.
    pub wrangler: PathBuf,
}

/// A TOML basic string holding `s`.
#[must_use]
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl WorkerBuild {
    /// The build `MOSAIC_WORKER_BUILD` points at.
    ///
    /// A missing build fails, never passes silently: the Workers suite is run by
    /// `scripts/test-workers`, which builds the worker and sets the variable (the workspace
    /// run of `scripts/test` leaves this test binary out).
    ///
    /// # Panics
    /// When the variable is unset, or the build or wrangler is missing.
    #[must_use]
    pub fn from_env() -> WorkerBuild {
        let Some(path) = std::env::var_os(BUILD_ENV) else {
            panic!(
                "{BUILD_ENV} is not set: the Workers suite runs against a built worker; run scripts/test-workers (it builds edge/workers with worker-build and sets {BUILD_ENV} to edge/workers/build)"
            );
        };
        let build = std::fs::canonicalize(PathBuf::from(&path)).unwrap_or_else(|e| {
            panic!(
                "{BUILD_ENV}={} is not a directory ({e}): build with `worker-build --release` in edge/workers (scripts/test-workers does)",
                Path::new(&path).display()
            )
        });
        assert!(
            build.join("worker/shim.mjs").is_file(),
            "{BUILD_ENV}={} has no worker/shim.mjs: build with `worker-build --release` in edge/workers (scripts/test-workers does)",
            build.display()
        );
        let wrangler = std::env::var_os("WRANGLER").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules/.bin/wrangler"),
            PathBuf::from,
        );
        assert!(
            wrangler.is_file(),
            "wrangler is missing at {} (eval \"$(scripts/install-workers-tools)\")",
            wrangler.display()
        );
        WorkerBuild { build, wrangler }
    }

    /// Serves `config_toml` from a fresh directory.
    ///
    /// # Errors
    /// When `wrangler dev` does not answer (the message carries its output).
    pub fn spawn(&self, config_toml: &str) -> Result<WorkerRouter, String> {
        self.spawn_with_secrets(config_toml, &[])
    }

    /// Serves `config_toml` from a fresh directory with extra secret bindings (`.dev.vars`
    /// lines `NAME="value"`, read by `env:NAME` and `secret:NAME`).
    ///
    /// # Errors
    /// When `wrangler dev` does not answer (the message carries its output).
    pub fn spawn_with_secrets(
        &self,
        config_toml: &str,
        secrets: &[(&str, &str)],
    ) -> Result<WorkerRouter, String> {
        let dir = tempdir();
        let wrangler_toml = format!(
            "name = \"mosaic-test\"\nmain = {}\ncompatibility_date = \"{COMPATIBILITY_DATE}\"\n\n\
             [[kv_namespaces]]\nbinding = \"MOSAIC_KV\"\nid = \"00000000000000000000000000000001\"\npreview_id = \"00000000000000000000000000000002\"\n\n\
             [vars]\nMOSAIC_CONFIG = {}\n",
            toml_string(&self.build.join("worker/shim.mjs").to_string_lossy()),
            toml_string(config_toml)
        );
        std::fs::write(dir.join("wrangler.toml"), wrangler_toml).map_err(|e| e.to_string())?;
        let mut vars = format!(
            "MOSAIC_TEST_ADMIN={}\nMOSAIC_TEST_UPSTREAM={}\n",
            toml_string(ADMIN_TOKEN),
            toml_string(crate::scenarios::UPSTREAM_TOKEN)
        );
        for (name, value) in secrets {
            vars.push_str(&format!("{name}={}\n", toml_string(value)));
        }
        std::fs::write(dir.join(".dev.vars"), vars).map_err(|e| e.to_string())?;
        // a free port can be taken by another test between choosing it and workerd binding
        // it: then try another (bounded)
        let mut last = String::new();
        for _ in 0..3 {
            let r = WorkerRouter {
                child: Mutex::new(None),
                port: crate::mock::free_port(),
                dir: dir.clone(),
                build: self.clone(),
                runs: Mutex::new(0),
                ready_after: Mutex::new(Vec::new()),
            };
            match r.launch() {
                Ok(()) => return Ok(r),
                Err(e) if e.contains("Address already in use") => {
                    r.stop();
                    // the directory is the next try's: not removed by the drop
                    std::mem::forget(r);
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

impl HostUnderTest for WorkerBuild {
    fn name(&self) -> &str {
        "workers"
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
        self.spawn_with_secrets(config_toml, secrets)
            .map(|r| Box::new(r) as Box<dyn Running>)
    }
}

/// A `wrangler dev --local` process group; stopped when dropped.
pub struct WorkerRouter {
    child: Mutex<Option<Child>>,
    /// Its port (kept across restarts).
    pub port: u16,
    /// Its directory: `wrangler.toml`, `.dev.vars`, `kv/` (persisted state), logs.
    pub dir: PathBuf,
    build: WorkerBuild,
    runs: Mutex<u32>,
    ready_after: Mutex<Vec<Duration>>,
}

impl WorkerRouter {
    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.join(format!("wrangler-dev.{run}.log"))
    }

    fn wrangler(&self) -> Command {
        let mut cmd = Command::new(&self.build.wrangler);
        cmd.env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("NO_COLOR", "1")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    fn launch(&self) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let run = {
            let mut r = self.runs.lock().map_err(|e| e.to_string())?;
            *r += 1;
            *r
        };
        let log = std::fs::File::create(self.log_path(run)).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let inspector = crate::mock::free_port();
        let started = Instant::now();
        let child = self
            .wrangler()
            .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--inspector-port")
            .arg(inspector.to_string())
            .arg("--persist-to")
            .arg(self.dir.join("kv"))
            .arg("--config")
            .arg(self.dir.join("wrangler.toml"))
            .arg("--show-interactive-dev-session=false")
            .stdout(log)
            .stderr(err)
            // its own process group: wrangler starts workerd children, all stopped together
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.build.wrangler.display()))?;
        *self.child.lock().map_err(|e| e.to_string())? = Some(child);
        while started.elapsed() < READY_TIMEOUT {
            // any answer will do: without a valid config health answers 503
            if http_get_status(self.port, "/_mosaic/health").is_some() {
                if let Ok(mut r) = self.ready_after.lock() {
                    r.push(started.elapsed());
                }
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .ok()
                .and_then(|mut c| c.as_mut().and_then(|c| c.try_wait().ok().flatten()));
            if let Some(status) = exited {
                return Err(format!(
                    "wrangler dev exited with {status} before serving:\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Err(format!(
            "wrangler dev did not answer within {READY_TIMEOUT:?}:\n{}",
            self.logs()
        ))
    }

    /// Stops wrangler and workerd (SIGTERM to the process group, SIGKILL after 10 s).
    pub fn stop(&self) {
        let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        for _ in 0..400 {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.wait();
        // the port must be free again before a restart binds it
        for _ in 0..200 {
            if http_get_status(self.port, "/_mosaic/health").is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the server and serves the same directory (config, persisted KV) again on the
    /// same port: a cold isolate.
    ///
    /// # Errors
    /// When it does not come back.
    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        self.launch()
    }

    /// How long each start took from spawning `wrangler dev` to its first answer.
    #[must_use]
    pub fn ready_after(&self) -> Vec<Duration> {
        self.ready_after
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Writes KV key `key` of the persisted store (the server must be stopped to see it at
    /// its next start).
    ///
    /// # Errors
    /// When wrangler fails.
    pub fn kv_put(&self, key: &str, value: &str) -> Result<(), String> {
        let file = self.dir.join(".kv-value");
        std::fs::write(&file, value).map_err(|e| e.to_string())?;
        let out = self
            .wrangler()
            .args([
                "kv",
                "key",
                "put",
                "--binding",
                "MOSAIC_KV",
                "--local",
                "--preview",
            ])
            .arg("--persist-to")
            .arg(self.dir.join("kv"))
            .arg("--config")
            .arg(self.dir.join("wrangler.toml"))
            .arg(key)
            .arg("--path")
            .arg(&file)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "wrangler kv key put failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Running for WorkerRouter {
    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn write_config(&self, config_toml: &str) -> Result<(), String> {
        self.stop();
        self.kv_put("mosaic:config", config_toml)?;
        self.launch()
    }
    fn logs(&self) -> String {
        let runs = self.runs.lock().map(|r| *r).unwrap_or(0);
        (1..=runs)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }
}

impl Drop for WorkerRouter {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("MOSAIC_WORKERS_KEEP").is_some() {
            eprintln!("workers: kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
