//! A simulated host: a virtual clock, scripted upstreams and an in-memory KV, with no sockets.
//!
//! Every behaviour of the engine and the driver can be tested deterministically with it: each
//! upstream is scripted (`ok`, a status, slow by N ms, flaky with probability p, down), the
//! clock only moves when an upstream takes time or the engine sleeps, and every event is
//! written to a transcript that tests compare against a golden list.

use alloc::collections::BTreeMap;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use crate::driver::{Host, UpstreamResponse};
use crate::engine::{Attempt, FetchError, State};
use crate::http::HeaderList;
use crate::rng::Rng;
use crate::time::Instant;

/// Attempts and transcript lines kept at most (benchmarks run millions of requests).
pub const RECORD_LIMIT: usize = 10_000;

/// How a simulated upstream behaves.
#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// Answers `status` after `latency` with these headers and body.
    Respond {
        /// Status.
        status: u16,
        /// Latency.
        latency: Duration,
        /// Headers.
        headers: HeaderList,
        /// Body.
        body: Vec<u8>,
    },
    /// Answers `status` with probability `p`, else 200, after `latency`.
    Flaky {
        /// Failure probability.
        p: f64,
        /// Failure status.
        status: u16,
        /// Latency.
        latency: Duration,
    },
    /// Connection refused at once.
    Down,
    /// Answers 200 after 10 ms with a body naming the credential and URL it received
    /// (`auth=<Authorization>;url=<url>`), cacheable for `max_age` seconds: isolation tests use it
    /// to see who a response was made for.
    Echo {
        /// `Cache-Control: max-age` to send.
        max_age: u64,
    },
    /// The connection breaks after `after`.
    Reset {
        /// Time until the break.
        after: Duration,
    },
}

impl Behaviour {
    /// 200 "ok" after 10 ms.
    #[must_use]
    pub fn ok() -> Behaviour {
        Behaviour::status(200)
    }
    /// `status` after 10 ms.
    #[must_use]
    pub fn status(status: u16) -> Behaviour {
        Behaviour::Respond {
            status,
            latency: Duration::from_millis(10),
            headers: Vec::new(),
            body: Vec::from(&b"ok"[..]),
        }
    }
    /// 200 after `ms` milliseconds.
    #[must_use]
    pub fn slow(ms: u64) -> Behaviour {
        Behaviour::Respond {
            status: 200,
            latency: Duration::from_millis(ms),
            headers: Vec::new(),
            body: Vec::from(&b"ok"[..]),
        }
    }
    /// With a header added (for `Respond`).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Behaviour {
        if let Behaviour::Respond { headers, .. } = &mut self {
            headers.push((String::from(name), String::from(value)));
        }
        self
    }
    /// With a body (for `Respond`).
    #[must_use]
    pub fn with_body(mut self, b: &[u8]) -> Behaviour {
        if let Behaviour::Respond { body, .. } = &mut self {
            *body = Vec::from(b);
        }
        self
    }
}

/// A scripted upstream: a queue of one-shot behaviours, then a default. A provider with no
/// script answers 200 after 10 ms.
#[derive(Clone, Debug)]
pub struct Upstream {
    script: VecDeque<Behaviour>,
    default: Behaviour,
    /// Requests received.
    pub hits: u32,
}

struct Inner {
    now: Instant,
    state: State,
    upstreams: BTreeMap<String, Upstream>,
    kv: BTreeMap<String, (Vec<u8>, Instant)>,
    transcript: Vec<String>,
    requests: Vec<Attempt>,
    rng: Rng,
    t0: Instant,
    state_visits: u64,
    keep_log: bool,
}

/// The simulated host.
pub struct SimHost {
    inner: RefCell<Inner>,
}

impl SimHost {
    /// A host starting at `start` with `state`, seeded.
    #[must_use]
    pub fn new(state: State, start: Instant, seed: u64) -> SimHost {
        SimHost {
            inner: RefCell::new(Inner {
                now: start,
                state,
                upstreams: BTreeMap::new(),
                kv: BTreeMap::new(),
                transcript: Vec::new(),
                requests: Vec::new(),
                rng: Rng::seed(seed),
                t0: start,
                state_visits: 0,
                keep_log: true,
            }),
        }
    }

    /// Sets provider `id`'s default behaviour.
    pub fn upstream(&self, id: &str, b: Behaviour) {
        let mut i = self.inner.borrow_mut();
        let u = i
            .upstreams
            .entry(String::from(id))
            .or_insert_with(|| Upstream {
                script: VecDeque::new(),
                default: Behaviour::ok(),
                hits: 0,
            });
        u.default = b;
    }

    /// Queues one-shot behaviours for provider `id` (used before the default).
    pub fn script(&self, id: &str, bs: impl IntoIterator<Item = Behaviour>) {
        let mut i = self.inner.borrow_mut();
        let u = i
            .upstreams
            .entry(String::from(id))
            .or_insert_with(|| Upstream {
                script: VecDeque::new(),
                default: Behaviour::ok(),
                hits: 0,
            });
        u.script.extend(bs);
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut i = self.inner.borrow_mut();
        i.now = i.now + d;
    }

    /// Requests provider `id` received.
    #[must_use]
    pub fn hits(&self, id: &str) -> u32 {
        self.inner.borrow().upstreams.get(id).map_or(0, |u| u.hits)
    }

    /// The transcript so far, and clears it.
    pub fn take_transcript(&self) -> Vec<String> {
        core::mem::take(&mut self.inner.borrow_mut().transcript)
    }

    /// Every attempt performed so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Attempt> {
        self.inner.borrow().requests.clone()
    }

    /// A copy of the state.
    #[must_use]
    pub fn state(&self) -> State {
        self.inner.borrow().state.clone()
    }

    /// How many times the driver has visited the shared state (what a real host does under a
    /// lock) so far.
    #[must_use]
    pub fn state_visits(&self) -> u64 {
        self.inner.borrow().state_visits
    }

    /// Whether replies' log strings are asked for ([`Host::keeps_log`]; yes by default).
    pub fn keep_log(&self, keep: bool) {
        self.inner.borrow_mut().keep_log = keep;
    }

    /// Keys in the KV store.
    #[must_use]
    pub fn kv_keys(&self) -> Vec<String> {
        self.inner.borrow().kv.keys().cloned().collect()
    }

    fn ms(&self, i: &Inner) -> u64 {
        i.now.saturating_since(i.t0).as_millis() as u64
    }
}

impl Host for SimHost {
    type Body = Vec<u8>;

    fn now(&self) -> Instant {
        self.inner.borrow().now
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut i = self.inner.borrow_mut();
        i.state_visits += 1;
        f(&mut i.state)
    }

    fn keeps_log(&self) -> bool {
        self.inner.borrow().keep_log
    }

    fn fetch(
        &self,
        a: &Attempt,
    ) -> impl Future<Output = Result<UpstreamResponse<Vec<u8>>, FetchError>> {
        let mut i = self.inner.borrow_mut();
        let start_ms = self.ms(&i);
        if i.requests.len() < RECORD_LIMIT {
            i.requests.push(a.clone());
        }
        let u = i
            .upstreams
            .entry(a.provider_id.clone())
            .or_insert_with(|| Upstream {
                script: VecDeque::new(),
                default: Behaviour::ok(),
                hits: 0,
            });
        u.hits += 1;
        let behaviour = u.script.pop_front().unwrap_or_else(|| u.default.clone());
        let budget = a.deadline.saturating_since(i.now);
        let result = match behaviour {
            Behaviour::Down => Err(FetchError::Connect),
            Behaviour::Echo { max_age } => {
                i.now = i.now + Duration::from_millis(10);
                let auth = a
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                Ok(UpstreamResponse {
                    status: 200,
                    headers: alloc::vec![(
                        String::from("cache-control"),
                        format!("max-age={max_age}")
                    )],
                    body: format!("auth={auth};url={}", a.url).into_bytes(),
                })
            }
            Behaviour::Reset { after } => {
                if after >= budget {
                    i.now = a.deadline;
                    Err(FetchError::Timeout)
                } else {
                    i.now = i.now + after;
                    Err(FetchError::Reset)
                }
            }
            Behaviour::Flaky { p, status, latency } => {
                if latency >= budget {
                    i.now = a.deadline;
                    Err(FetchError::Timeout)
                } else {
                    i.now = i.now + latency;
                    let fail = i.rng.unit() < p;
                    Ok(UpstreamResponse {
                        status: if fail { status } else { 200 },
                        headers: Vec::new(),
                        body: Vec::from(&b"ok"[..]),
                    })
                }
            }
            Behaviour::Respond {
                status,
                latency,
                headers,
                body,
            } => {
                if latency >= budget {
                    i.now = a.deadline;
                    Err(FetchError::Timeout)
                } else {
                    i.now = i.now + latency;
                    Ok(UpstreamResponse {
                        status,
                        headers,
                        body,
                    })
                }
            }
        };
        let end_ms = self.ms(&i);
        let line = match &result {
            Ok(r) => format!(
                "{start_ms}ms #{} {} {} -> {} at {end_ms}ms",
                a.id,
                a.provider_id,
                a.method.as_str(),
                r.status
            ),
            Err(e) => format!(
                "{start_ms}ms #{} {} {} -> {} at {end_ms}ms",
                a.id,
                a.provider_id,
                a.method.as_str(),
                e.name()
            ),
        };
        if i.transcript.len() < RECORD_LIMIT {
            i.transcript.push(line);
        }
        core::future::ready(result)
    }

    fn sleep_until(&self, t: Instant) -> impl Future<Output = ()> {
        let mut i = self.inner.borrow_mut();
        if t > i.now {
            let from = self.ms(&i);
            i.now = t;
            let to = self.ms(&i);
            i.transcript.push(format!("{from}ms sleep until {to}ms"));
        }
        core::future::ready(())
    }

    fn cache_get(&self, key: &str) -> impl Future<Output = Option<Vec<u8>>> {
        let i = self.inner.borrow();
        let v =
            i.kv.get(key)
                .filter(|(_, exp)| *exp > i.now)
                .map(|(v, _)| v.clone());
        core::future::ready(v)
    }

    fn cache_put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> impl Future<Output = ()> {
        let mut i = self.inner.borrow_mut();
        let exp = i.now + ttl;
        i.kv.insert(String::from(key), (value, exp));
        core::future::ready(())
    }

    fn read_body(
        &self,
        body: Vec<u8>,
        cap: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Vec<u8>>> {
        core::future::ready(if body.len() <= cap {
            Ok(body)
        } else {
            Err(body)
        })
    }
}

/// Runs a future that never waits on anything real (every SimHost future is ready at once).
///
/// # Panics
/// If the future is still pending after many polls, which means it awaited something that
/// is not simulated.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("a simulated future did not complete: it awaited something outside the SimHost");
}
