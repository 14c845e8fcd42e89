//! Serving: the listener, the connection limit, graceful shutdown, reload (admin and SIGHUP)
//! and the state snapshot kept in the store.
//!
//! State sync: core's `State::material` counts material changes (breaker transitions,
//! cooldowns, limiter and quota updates). Every sync tick, a changed state is encoded with
//! core's `snapshot::encode` and written to the store; with a shared store (Redis) an
//! unchanged instance reads the snapshot back and adopts what others wrote
//! (`snapshot::decode_into`), so a breaker opened by one instance is open for all within a
//! tick. Concurrent writers: the last one wins (state is advisory; each instance keeps
//! protecting itself between syncs).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mosaic_core::problem::{Problem, ProblemKind};
use mosaic_core::{snapshot, State};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::cli::{self, Loaded, DEFAULT_LISTEN};
use crate::host::{Live, Shared};
use crate::store::{Kv, Store, STATE_KEY};
use crate::upstream::Clients;

/// Sync period with a shared store.
const SYNC_SHARED: Duration = Duration::from_millis(200);
/// Sync period with a file store.
const SYNC_FILE: Duration = Duration::from_secs(1);

fn seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = crate::host::wall_now().as_micros().to_le_bytes();
    }
    u64::from_le_bytes(b)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init();
}

/// Runs the server until SIGTERM/SIGINT.
pub fn run(loaded: Loaded, listen: Option<String>) -> ExitCode {
    init_logging();
    // the main runtime accepts connections and runs the background work (reload, state
    // sync, webhook outbox); worker threads serve the connections (see `Worker`)
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(loaded, listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            tracing::error!(error = %e, "mosaic stopped");
            ExitCode::from(1)
        }
    }
}

fn admin_hint(router: &mosaic_core::Router) -> Option<String> {
    match &router.config.admin_token {
        Some(r @ mosaic_core::config::SecretRef::Env(name)) if router.secret(r).is_none() => Some(format!(
            "the admin API is closed: set {name} (e.g. `export {name}=$(openssl rand -hex 16)`) to use /_mosaic/metrics, /_mosaic/state and /_mosaic/reload; /_mosaic/health stays open"
        )),
        _ => None,
    }
}

async fn serve(loaded: Loaded, listen: Option<String>) -> Result<(), String> {
    let store = Store::open(&loaded.config)
        .await
        .map_err(|e| format!("{}: store: {e}", loaded.path.display()))?;
    let listen = listen
        .or_else(|| loaded.config.server.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let declared = crate::v1::load_from_store(&store).await;
    let router = cli::router(loaded.config);
    for w in &router.warnings {
        tracing::warn!(warning = %w, "config");
    }
    for w in mosaic_providers::v1::warnings(&router.config, &crate::v1::registry()) {
        tracing::warn!(warning = %w, "v1");
    }
    if let Some(h) = admin_hint(&router) {
        tracing::warn!(warning = %h, "admin");
    }
    let mut state = State::new(&router.config, seed());
    let mut restored = Vec::new();
    match store.get(STATE_KEY).await {
        Ok(Some(bytes)) => match snapshot::decode_into(&router.config, &mut state, &bytes) {
            Ok(()) => {
                tracing::info!(store = store.kind(), "state restored from the store");
                restored = bytes;
            }
            Err(e) => tracing::warn!(error = %e, "state snapshot ignored"),
        },
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "state snapshot unreadable"),
    }
    // what was just read is in sync: do not write it back (a restarting instance must not
    // overwrite newer shared state with its own)
    let in_sync = (!restored.is_empty()).then_some((1, state.material));
    let server_cfg = router.config.server.clone();
    // fail early when TLS cannot be set up; each worker builds its own clients on first use
    if let Some(f) = &server_cfg.ca_file {
        crate::upstream::trust(crate::upstream::read_roots(f)?);
    }
    Clients::new()?;
    let live = Live {
        router,
        state: Mutex::new(state),
        generation: 1,
        registry: crate::v1::registry(),
    };
    let shared = Arc::new(Shared::new(
        live,
        store,
        server_cfg.cache_bytes,
        loaded.path.clone(),
    ));
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("listen address `{listen}` is invalid: {e}"))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        listen = %local,
        config = %loaded.path.display(),
        store = shared.store.kind(),
        "mosaic listening on http://{local}"
    );

    let sync = tokio::spawn(sync_loop(Arc::clone(&shared), in_sync, restored));
    let declarations = tokio::spawn(crate::v1::poll(Arc::clone(&shared), declared));
    let outbox = tokio::spawn(crate::hooks::outbox_loop(Arc::clone(&shared)));
    let grace = Duration::from_millis(server_cfg.shutdown_grace_ms);
    let stop = CancellationToken::new();
    let count = worker_count(server_cfg.workers);
    let mut workers = Vec::with_capacity(count);
    for i in 0..count {
        workers.push(Worker::spawn(i, Arc::clone(&shared), stop.clone(), grace)?);
    }
    tracing::debug!(workers = count, "worker threads started");
    let limit = Arc::new(Semaphore::new(server_cfg.max_connections as usize));
    let mut next = 0usize;
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut hup = hangups();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = hup.recv() => {
                match reload(&shared).await {
                    Ok((g, warnings)) => tracing::info!(generation = g, warnings = ?warnings, "configuration reloaded (SIGHUP)"),
                    Err(errors) => tracing::error!(errors = ?errors, "configuration rejected (SIGHUP); the old one stays"),
                }
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    tokio::spawn(refuse(stream, server_cfg.max_connections));
                    continue;
                };
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot hand the connection to a worker");
                        continue;
                    }
                };
                next = (next + 1) % workers.len();
                let mut conn = Accepted { stream, peer, permit };
                // a worker whose thread is gone (a bug) gives the connection back and is
                // never picked again; the next least-busy one takes it
                for _ in 0..workers.len() {
                    let open: Vec<usize> = workers.iter().map(|w| w.open.load(Ordering::Relaxed)).collect();
                    match workers[least_busy(&open, next)].hand(conn) {
                        Ok(()) => break,
                        Err(back) => conn = back,
                    }
                }
            }
        }
    }
    drop(listener);
    tracing::info!(
        grace_ms = server_cfg.shutdown_grace_ms,
        "shutting down: no new connections, finishing in-flight requests"
    );
    stop.cancel();
    let mut late = false;
    for w in workers {
        late |= !w.finished().await;
    }
    if late {
        tracing::warn!("grace period over: closed the remaining connections");
    }
    sync.abort();
    outbox.abort();
    declarations.abort();
    persist(&shared).await;
    tracing::info!("stopped");
    Ok(())
}

/// How many worker threads serve connections: `configured`, or one per CPU when 0.
fn worker_count(configured: u32) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n as usize,
    }
}

/// The worker serving the fewest connections (`open[i]` for worker `i`); ties go to the first
/// at or after `start`, so equal workers take turns.
fn least_busy(open: &[usize], start: usize) -> usize {
    (0..open.len())
        .map(|k| (start + k) % open.len())
        .min_by_key(|&k| open[k])
        .unwrap_or(0)
}

/// A connection accepted by the acceptor, on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
}

/// A worker thread: a single-threaded runtime serving the connections handed to it.
///
/// Thread per core: a connection, its requests and their upstream connections (the pool is
/// per thread, see `Clients::local`) stay on one thread, so a request wakes no other thread
/// and takes no cross-thread lock on its way through. The acceptor (the main runtime,
/// which also runs reload, state sync and the webhook outbox) hands each new connection to
/// the worker serving the fewest.
struct Worker {
    tx: tokio::sync::mpsc::UnboundedSender<Accepted>,
    /// Connections this worker serves now.
    open: Arc<AtomicUsize>,
    /// Fires when the worker has stopped: `true` when it finished in time.
    done: tokio::sync::oneshot::Receiver<bool>,
}

impl Worker {
    fn spawn(
        index: usize,
        shared: Arc<Shared>,
        stop: CancellationToken,
        grace: Duration,
    ) -> Result<Worker, String> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let open = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&open);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a worker runtime: {e}"))?;
        std::thread::Builder::new()
            .name(format!("mosaic-worker-{index}"))
            .spawn(move || {
                let in_time = rt.block_on(async move {
                    let tracker = tokio_util::task::TaskTracker::new();
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => break,
                            got = rx.recv() => match got {
                                Some(a) => serve_connection(&shared, &tracker, &stop, a, &counter),
                                None => break,
                            },
                        }
                    }
                    // idle connections close at once, busy ones after their answer
                    tracker.close();
                    tokio::time::timeout(grace, tracker.wait()).await.is_ok()
                });
                // dropping the runtime closes what is left
                drop(rt);
                let _ = done_tx.send(in_time);
            })
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        Ok(Worker { tx, open, done })
    }

    /// Hands `a` to this worker; gives it back when the worker's thread is gone (and marks the
    /// worker so busy that it is not picked again).
    fn hand(&self, a: Accepted) -> Result<(), Accepted> {
        self.open.fetch_add(1, Ordering::Relaxed);
        match self.tx.send(a) {
            Ok(()) => Ok(()),
            Err(back) => {
                self.open.store(usize::MAX / 2, Ordering::Relaxed);
                tracing::error!("a worker thread is gone; its connections go to the others");
                Err(back.0)
            }
        }
    }

    /// Waits for the worker to stop; whether it finished within the grace period.
    async fn finished(self) -> bool {
        self.done.await.unwrap_or(false)
    }
}

/// Serves one connection on the current (worker) runtime.
fn serve_connection(
    shared: &Arc<Shared>,
    tracker: &tokio_util::task::TaskTracker,
    stop: &CancellationToken,
    a: Accepted,
    open: &Arc<AtomicUsize>,
) {
    let Accepted {
        stream,
        peer,
        permit,
    } = a;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot register the connection");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let ip: Arc<str> = Arc::from(peer.ip().to_string());
    let shared = Arc::clone(shared);
    let open = Arc::clone(open);
    let stop = stop.clone();
    tracker.spawn(async move {
        shared.connections.fetch_add(1, Ordering::Relaxed);
        crate::conn::serve(stream, Arc::clone(&shared), ip, stop).await;
        shared.connections.fetch_sub(1, Ordering::Relaxed);
        open.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    });
}

/// Answers 503 problem+json on a connection beyond the limit and closes it.
async fn refuse(mut stream: tokio::net::TcpStream, max: u32) {
    let p = Problem::new(
        ProblemKind::Internal,
        format!("connection limit reached ({max} open connections); retry shortly"),
    );
    let body = p.to_json("-").replace("\"status\":500", "\"status\":503");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// SIGHUP as a stream of notifications (never fires where unsupported).
struct Hangups {
    #[cfg(unix)]
    sig: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.sig {
            if s.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}

fn hangups() -> Hangups {
    Hangups {
        #[cfg(unix)]
        sig: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
    }
}

/// Re-reads the config file. A bad config is rejected with its errors and the old one stays;
/// a good one replaces it, carrying state over.
///
/// # Errors
/// Every error of the new config, with its key path.
pub async fn reload(shared: &Shared) -> Result<(u64, Vec<String>), Vec<String>> {
    let _serial = shared.reload_lock.lock().await;
    let path = shared.config_path.clone();
    let loaded = tokio::task::spawn_blocking(move || cli::load(&path))
        .await
        .map_err(|e| vec![e.to_string()])??;
    let old = shared.live();
    let router = cli::router(loaded.config);
    let mut warnings = router.warnings.clone();
    if router.config.store != old.router.config.store {
        warnings.push(String::from("[store] changed: restart to apply"));
    }
    if router.config.server.listen != old.router.config.server.listen {
        warnings.push(String::from("[server] listen changed: restart to apply"));
    }
    if router.config.server.max_connections != old.router.config.server.max_connections
        || router.config.server.cache_bytes != old.router.config.server.cache_bytes
        || router.config.server.workers != old.router.config.server.workers
        || router.config.server.ca_file != old.router.config.server.ca_file
    {
        warnings.push(String::from(
            "[server] max_connections / cache_bytes / workers / ca_file changed: restart to apply",
        ));
    }
    let state = {
        let s = old.state();
        snapshot::carry_over(&old.router.config, &s, &router.config, seed())
    };
    let generation = old.generation + 1;
    shared.swap(Live {
        router,
        state: Mutex::new(state),
        generation,
        registry: crate::v1::registry(),
    });
    Ok((generation, warnings))
}

/// Keeps the store's snapshot in step with the state (see the module docs).
async fn sync_loop(shared: Arc<Shared>, mut seen: Option<(u64, u64)>, mut last: Vec<u8>) {
    let period = match shared.store.kind() {
        "redis" => SYNC_SHARED,
        "file" => SYNC_FILE,
        _ => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // `seen`: (generation, material) last written or adopted; `last`: those bytes
    loop {
        tick.tick().await;
        let live = shared.live();
        let (material, bytes) = {
            let s = live.state();
            let changed = seen != Some((live.generation, s.material));
            (
                s.material,
                changed.then(|| snapshot::encode(&live.router.config, &s)),
            )
        };
        if let Some(bytes) = bytes {
            match shared.store.put(STATE_KEY, bytes.clone(), None, true).await {
                Ok(()) => {
                    shared.store_ok.store(true, Ordering::Relaxed);
                    seen = Some((live.generation, material));
                    last = bytes;
                }
                Err(e) => {
                    shared.store_ok.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, "state snapshot write failed");
                }
            }
        } else if shared.store.is_shared() {
            match shared.store.get(STATE_KEY).await {
                Ok(Some(remote)) if remote != last => {
                    let mut s = live.state();
                    let material = s.material;
                    match snapshot::decode_into(&live.router.config, &mut s, &remote) {
                        Ok(()) => {
                            // adopting is not a local change: do not write it back
                            s.material = material;
                            tracing::debug!("adopted the shared state snapshot");
                        }
                        Err(e) => tracing::warn!(error = %e, "shared state snapshot ignored"),
                    }
                    last = remote;
                    shared.store_ok.store(true, Ordering::Relaxed);
                }
                Ok(_) => shared.store_ok.store(true, Ordering::Relaxed),
                Err(e) => {
                    shared.store_ok.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, "state snapshot read failed");
                }
            }
        }
    }
}

/// Writes the final snapshot on shutdown. A shared store is left alone: the sync loop kept it
/// within one period, and other instances may have written newer state since.
async fn persist(shared: &Shared) {
    if !shared.store.is_tiered() || shared.store.is_shared() {
        return;
    }
    let live = shared.live();
    let bytes = {
        let s = live.state();
        snapshot::encode(&live.router.config, &s)
    };
    match shared.store.put(STATE_KEY, bytes, None, true).await {
        Ok(()) => tracing::info!(store = shared.store.kind(), "state persisted"),
        Err(e) => tracing::warn!(error = %e, "state could not be persisted"),
    }
}

#[cfg(test)]
mod tests {
    use super::{least_busy, Accepted, Worker};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_worker_whose_thread_is_gone_gives_connections_back_and_is_not_picked_again() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        drop(rx);
        let (_done_tx, done) = tokio::sync::oneshot::channel();
        let dead = Worker {
            tx,
            open: Arc::new(AtomicUsize::new(0)),
            done,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (stream, peer) = listener.accept().expect("accept");
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("permit");
        let back = dead.hand(Accepted {
            stream,
            peer,
            permit,
        });
        assert!(back.is_err(), "the connection comes back");
        let open = [dead.open.load(Ordering::Relaxed), 7];
        assert_eq!(
            least_busy(&open, 0),
            1,
            "a live worker, however busy, is preferred"
        );
        drop(client);
    }

    #[test]
    fn connections_go_to_the_least_busy_worker_and_ties_take_turns() {
        assert_eq!(least_busy(&[3, 1, 2], 0), 1);
        assert_eq!(least_busy(&[3, 1, 1], 0), 1);
        assert_eq!(least_busy(&[3, 1, 1], 2), 2);
        assert_eq!(least_busy(&[0, 0, 0], 1), 1);
        assert_eq!(least_busy(&[0, 0, 0], 2), 2);
        assert_eq!(least_busy(&[5], 0), 0);
        // every worker gets its turn among equals
        let mut seen = [0usize; 4];
        for start in 0..8 {
            seen[least_busy(&[2, 2, 2, 2], start % 4)] += 1;
        }
        assert_eq!(seen, [2, 2, 2, 2]);
    }
}
