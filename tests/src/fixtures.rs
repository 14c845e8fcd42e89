//! A provider stand-in on 127.0.0.1 answering with the documented response shapes under
//! `tests/fixtures/providers/<kind>/`: a table of `(method, path) → response`, one-shot
//! responses queued per path (a 503, rate-limit headers), and every request recorded so a test
//! can check the method, path, auth header and body the router sent.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::mock::Seen;

/// The bytes of `tests/fixtures/providers/<kind>/<name>.json`.
///
/// # Panics
/// When the fixture does not exist.
#[must_use]
pub fn fixture(kind: &str, name: &str) -> Bytes {
    let p = format!(
        "{}/fixtures/providers/{kind}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
}

/// One response.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// `status` with a JSON fixture body.
    #[must_use]
    pub fn fixture(status: u16, kind: &str, name: &str) -> Reply {
        Reply::json(status, fixture(kind, name))
    }

    /// `status` with a JSON body.
    #[must_use]
    pub fn json(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![(
                String::from("content-type"),
                String::from("application/json"),
            )],
            body: body.into(),
        }
    }

    /// With a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

#[derive(Default)]
struct Table {
    routes: HashMap<(String, String), Reply>,
    once: HashMap<String, VecDeque<Reply>>,
    seen: Vec<Seen>,
}

/// A running fixture server; stops when dropped.
pub struct FixtureServer {
    addr: SocketAddr,
    table: Arc<Mutex<Table>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(m: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FixtureServer {
    /// Starts an empty server (every request answers 404 until routes are added).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> FixtureServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let table = Arc::new(Mutex::new(Table::default()));
        let t = Arc::clone(&table);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let t = Arc::clone(&t);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let t = Arc::clone(&t);
                        async move { answer(&t, req).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FixtureServer { addr, table, task }
    }

    /// `http://127.0.0.1:port`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `method path` (path without query) with `reply` from now on.
    pub fn on(&self, method: &str, path: &str, reply: Reply) {
        lock(&self.table)
            .routes
            .insert((method.to_string(), path.to_string()), reply);
    }

    /// Answers the next requests to `path` (any method) with `replies`, in order, before the
    /// table.
    pub fn once(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.table)
            .once
            .entry(path.to_string())
            .or_default()
            .extend(replies);
    }

    /// Every request received so far.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.table).seen.clone()
    }

    /// Requests received whose path (without query) is `path`.
    #[must_use]
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.table)
            .seen
            .iter()
            .filter(|s| s.target.split('?').next() == Some(path))
            .count()
    }
}

async fn answer(
    t: &Mutex<Table>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let reply = {
        let mut t = lock(t);
        t.seen.push(Seen {
            method: method.clone(),
            target: parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        });
        let once = t.once.get_mut(&path).and_then(VecDeque::pop_front);
        once.or_else(|| t.routes.get(&(method, path.clone())).cloned())
            .unwrap_or_else(|| {
                Reply::json(
                    404,
                    format!("{{\"message\":\"no fixture for {path}\"}}").into_bytes(),
                )
            })
    };
    let mut r = Response::new(Full::new(reply.body));
    *r.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    for (n, v) in reply.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(n.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    Ok(r)
}
