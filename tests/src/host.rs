//! Hosts under test: anything that can serve a Mosaic config at a base URL.
//!
//! The scenarios in [`crate::scenarios`] only see [`HostUnderTest`] and [`Running`]: the local
//! binary implements them now ([`LocalBinary`]); the Workers and Spin hosts can implement them
//! later (e.g. `wrangler dev` / `spin up` on a loopback port) and run the same suite.
//!
//! Configs name the admin token `secret:MOSAIC_TEST_ADMIN` and an upstream credential
//! `secret:MOSAIC_TEST_UPSTREAM`; every host must bind them to [`ADMIN_TOKEN`] and
//! [`crate::scenarios::UPSTREAM_TOKEN`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The admin token every host under test is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The secret reference configs use for it.
pub const ADMIN_REF: &str = "secret:MOSAIC_TEST_ADMIN";

/// A router that serves configs.
pub trait HostUnderTest: Sync {
    /// A short name for messages.
    fn name(&self) -> &str;
    /// Starts a router serving `config_toml`, ready to take requests.
    ///
    /// # Errors
    /// What went wrong, with the router's own output when there is some.
    fn start(&self, config_toml: &str) -> Result<Box<dyn Running>, String>;
    /// Starts a router serving `config_toml` with extra secrets bound: each `(NAME, value)` is
    /// what `env:NAME` and `secret:NAME` resolve to (the local binary: environment variables;
    /// Workers: `.dev.vars` bindings; Spin: variables named `NAME` lowercased), besides the
    /// two every host binds ([`ADMIN_REF`], `secret:MOSAIC_TEST_UPSTREAM`).
    ///
    /// # Errors
    /// As [`HostUnderTest::start`]; a host that cannot bind extra secrets says so.
    fn start_with_secrets(
        &self,
        config_toml: &str,
        secrets: &[(&str, &str)],
    ) -> Result<Box<dyn Running>, String> {
        if secrets.is_empty() {
            return self.start(config_toml);
        }
        Err(format!(
            "{}: this host under test cannot bind extra secrets (implement HostUnderTest::start_with_secrets for it)",
            self.name()
        ))
    }
}

/// A running router.
pub trait Running: Send {
    /// `http://127.0.0.1:port`.
    fn base_url(&self) -> String;
    /// Replaces the config source with `config_toml` (the reload itself is a request to
    /// `POST /_mosaic/reload`, which the scenario sends).
    ///
    /// # Errors
    /// When the config cannot be written.
    fn write_config(&self, config_toml: &str) -> Result<(), String>;
    /// What the router logged so far (for failure messages).
    fn logs(&self) -> String;
    /// Its loopback port (for raw connections), from [`Running::base_url`].
    ///
    /// # Panics
    /// When the base URL has no port.
    fn port(&self) -> u16 {
        self.base_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .expect("the base URL names a port")
    }
}

/// The `mosaic` binary of this build, started as a child process.
pub struct LocalBinary {
    /// Path of the binary.
    pub binary: PathBuf,
    /// Extra environment of every router it starts (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

/// The `mosaic` binary next to the running test executable (`target/<profile>/mosaic`), or
/// `$MOSAIC_BIN`.
///
/// # Panics
/// With a clear message when it has not been built.
#[must_use]
pub fn mosaic_binary() -> PathBuf {
    if let Ok(p) = std::env::var("MOSAIC_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/mosaic
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let bin = profile_dir.join(format!("mosaic{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the `mosaic` binary is missing at {}: build it first with `cargo build -p mosaic-local` (same profile and target dir as the tests), or set MOSAIC_BIN",
        bin.display()
    );
    bin
}

impl LocalBinary {
    /// The binary of this build.
    #[must_use]
    pub fn new() -> LocalBinary {
        LocalBinary {
            binary: mosaic_binary(),
            env: Vec::new(),
        }
    }

    /// The binary of this build, every router started with `env` too.
    #[must_use]
    pub fn with_env(env: &[(&str, &str)]) -> LocalBinary {
        LocalBinary {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            ..LocalBinary::new()
        }
    }

    /// Spawns `mosaic serve` on a free port with `config_toml` and extra environment.
    ///
    /// # Errors
    /// When it does not become healthy within 15 s.
    pub fn spawn(&self, config_toml: &str, env: &[(&str, &str)]) -> Result<LocalRouter, String> {
        let dir = tempdir();
        let config = dir.join("mosaic.toml");
        std::fs::write(&config, config_toml).map_err(|e| e.to_string())?;
        let port = crate::mock::free_port();
        let log = dir.join("mosaic.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("MOSAIC_TEST_ADMIN", ADMIN_TOKEN)
            .env("MOSAIC_TEST_UPSTREAM", crate::scenarios::UPSTREAM_TOKEN)
            .env(
                "RUST_LOG",
                std::env::var("MOSAIC_TEST_LOG").unwrap_or_else(|_| String::from("info")),
            )
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let mut r = LocalRouter {
            child: Some(child),
            port,
            dir,
            config,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if http_get_status(port, "/_mosaic/health") == Some(200) {
                return Ok(r);
            }
            if let Some(c) = r.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!(
                        "mosaic exited with {status} before serving:\n{}",
                        r.logs()
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!(
            "mosaic did not become healthy in 15 s:\n{}",
            r.logs()
        ))
    }
}

impl Default for LocalBinary {
    fn default() -> Self {
        LocalBinary::new()
    }
}

impl HostUnderTest for LocalBinary {
    fn name(&self) -> &str {
        "local"
    }
    fn start(&self, config_toml: &str) -> Result<Box<dyn Running>, String> {
        self.spawn(config_toml, &[])
            .map(|r| Box::new(r) as Box<dyn Running>)
    }
    fn start_with_secrets(
        &self,
        config_toml: &str,
        secrets: &[(&str, &str)],
    ) -> Result<Box<dyn Running>, String> {
        self.spawn(config_toml, secrets)
            .map(|r| Box::new(r) as Box<dyn Running>)
    }
}

/// A `mosaic serve` child process; killed when dropped.
pub struct LocalRouter {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its working directory.
    pub dir: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    log: PathBuf,
}

impl LocalRouter {
    /// Sends SIGTERM and waits up to `wait` for the exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg("-HUP")
                .arg(c.id().to_string())
                .status();
        }
    }
}

impl Running for LocalRouter {
    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn write_config(&self, config_toml: &str) -> Result<(), String> {
        std::fs::write(&self.config, config_toml).map_err(|e| e.to_string())
    }
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LocalRouter {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh temporary directory.
///
/// # Panics
/// When it cannot be created.
#[must_use]
pub fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let d = std::env::temp_dir().join(format!(
        "mosaic-e2e-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).expect("create a temporary directory");
    d
}

/// A blocking `GET path` on a loopback port; the status, if any answer came.
#[must_use]
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split(' ').nth(1)?.parse().ok()
}

/// A `redis-server` on a free loopback port; stopped when dropped.
pub struct Redis {
    child: Child,
    /// Its port.
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts Debian's `redis-server` with no persistence.
    ///
    /// # Errors
    /// When it is not installed or does not answer within 10 s.
    pub fn start() -> Result<Redis, String> {
        let port = crate::mock::free_port();
        let dir = tempdir();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server (apt-get install redis-server): {e}")
            })?;
        let r = Redis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 16];
                    if let Ok(n) = s.read(&mut buf) {
                        if buf[..n].starts_with(b"+PONG") {
                            return Ok(r);
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(String::from("redis-server did not answer PING within 10 s"))
    }

    /// `redis://127.0.0.1:port/0`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
