//! Mock upstream servers on 127.0.0.1: real sockets, scripted behaviour, hit counters.
//!
//! A [`Mock`] answers every request according to its current [`Behaviour`] (changeable while it
//! runs, e.g. to let a failing upstream recover) after consuming any one-shot behaviours queued
//! with [`Mock::script`]. Each response carries `x-mock: <name>` and the body `<name> <hit>`, so
//! a test can tell who answered and how often each was called.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How a mock answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// `status` with extra headers, after `delay`.
    Respond {
        /// Status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Delay before answering.
        delay: Duration,
    },
    /// Closes the connection without answering (after reading the request).
    Reset,
}

impl Behaviour {
    /// 200 at once.
    #[must_use]
    pub fn ok() -> Behaviour {
        Behaviour::status(200)
    }
    /// `status` at once.
    #[must_use]
    pub fn status(status: u16) -> Behaviour {
        Behaviour::Respond {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
    /// 200 after `ms` milliseconds.
    #[must_use]
    pub fn slow(ms: u64) -> Behaviour {
        Behaviour::Respond {
            status: 200,
            headers: Vec::new(),
            delay: Duration::from_millis(ms),
        }
    }
    /// With a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Behaviour {
        if let Behaviour::Respond { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }
    /// With a delay.
    #[must_use]
    pub fn delay(mut self, ms: u64) -> Behaviour {
        if let Behaviour::Respond { delay, .. } = &mut self {
            *delay = Duration::from_millis(ms);
        }
        self
    }
}

/// A request a mock received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

impl Seen {
    /// A header's value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    name: String,
    default: Mutex<Behaviour>,
    script: Mutex<VecDeque<Behaviour>>,
    hits: AtomicU32,
    /// Each request with the status it was answered with (`None`: reset).
    seen: Mutex<Vec<(Seen, Option<u16>)>>,
}

/// A running mock upstream; stops when dropped.
pub struct Mock {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Mock {
    /// Starts a mock called `name` behaving as `b`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(name: &str, b: Behaviour) -> Mock {
        Mock::start_on(0, name, b).await
    }

    /// Starts a mock on a given loopback port (0: any free one).
    ///
    /// # Panics
    /// When the port cannot be bound.
    pub async fn start_on(port: u16, name: &str, b: Behaviour) -> Mock {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            name: name.to_string(),
            default: Mutex::new(b),
            script: Mutex::new(VecDeque::new()),
            hits: AtomicU32::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = Arc::clone(&st);
                        async move { answer(st, req).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Mock { addr, state, task }
    }

    /// `http://127.0.0.1:port`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    #[must_use]
    pub fn hits(&self) -> u32 {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.seen)
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Every request received so far, with the status it was answered with (`None`: the
    /// connection was reset).
    #[must_use]
    pub fn answered(&self) -> Vec<(Seen, Option<u16>)> {
        lock(&self.state.seen).clone()
    }

    /// Changes the default behaviour.
    pub fn set(&self, b: Behaviour) {
        *lock(&self.state.default) = b;
    }

    /// Queues one-shot behaviours used before the default.
    pub fn script(&self, bs: impl IntoIterator<Item = Behaviour>) {
        lock(&self.state.script).extend(bs);
    }
}

async fn answer(
    st: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let hit = st.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let b = lock(&st.script)
        .pop_front()
        .unwrap_or_else(|| lock(&st.default).clone());
    {
        let mut seen = lock(&st.seen);
        // keep the first requests only: a benchmark sends millions
        if seen.len() < 10_000 {
            let s = Seen {
                method: parts.method.as_str().to_string(),
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
            };
            let status = match &b {
                Behaviour::Respond { status, .. } => Some(*status),
                Behaviour::Reset => None,
            };
            seen.push((s, status));
        }
    }
    match b {
        Behaviour::Reset => Err(std::io::Error::other("reset by the mock")),
        Behaviour::Respond {
            status,
            headers,
            delay,
        } => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut r = Response::new(Full::new(Bytes::from(format!("{} {hit}", st.name))));
            *r.status_mut() = hyper::StatusCode::from_u16(status)
                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            r.headers_mut().insert(
                "x-mock",
                hyper::header::HeaderValue::from_str(&st.name)
                    .expect("mock name is a header value"),
            );
            for (n, v) in headers {
                if let (Ok(n), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(n.as_bytes()),
                    hyper::header::HeaderValue::from_str(&v),
                ) {
                    r.headers_mut().append(n, v);
                }
            }
            Ok(r)
        }
    }
}

/// A loopback URL nothing listens on (connection refused).
///
/// # Panics
/// When no loopback port can be bound.
#[must_use]
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = l.local_addr().expect("local addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// A free loopback port (bound then released).
///
/// # Panics
/// When no loopback port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// An upstream that echoes what it received: body `auth=<Authorization>;path=<target>`,
/// cacheable for 60 s; it records every request.
pub struct Echo {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    /// Starts one on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = Arc::clone(&seen2);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = Arc::clone(&seen);
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let auth = parts
                                .headers
                                .get("authorization")
                                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                                .unwrap_or_default();
                            let target = parts
                                .uri
                                .path_and_query()
                                .map_or("/", |p| p.as_str())
                                .to_string();
                            let text = format!("auth={auth};path={target}");
                            lock(&seen).push(Seen {
                                method: parts.method.as_str().to_string(),
                                target,
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
                            let mut r = Response::new(Full::new(Bytes::from(text)));
                            r.headers_mut().insert(
                                "cache-control",
                                hyper::header::HeaderValue::from_static("max-age=60"),
                            );
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Echo { addr, seen, task }
    }

    /// `http://127.0.0.1:port`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request it received.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}
