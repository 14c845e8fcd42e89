//! One event on its way to one destination: the record, its retry decision, its encoding, and
//! the request that carries it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use mosaic_core::codec::{Reader, Writer};
use mosaic_core::retry::Backoff;
use mosaic_core::rng::Rng;
use mosaic_core::time::Instant;
use mosaic_core::webhook::{self as core_webhook, Scheme, SignError};

/// `content-type` of every forwarded event (CloudEvents structured mode).
pub const DELIVERY_CONTENT_TYPE: &str = "application/cloudevents+json";

/// First bytes of an encoded [`Delivery`]: a magic and the format version.
const MAGIC: [u8; 2] = *b"MD";
const VERSION: u8 = 1;
/// Longest `last_error` kept.
const MAX_ERROR: usize = 256;

/// How deliveries are retried and timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Backoff between attempts (full jitter: uniform in `[0, min(max, base·2ⁿ))`).
    pub backoff: Backoff,
    /// Deadline of one POST.
    pub timeout: Duration,
}

impl Default for DeliveryPolicy {
    /// 2 s base, 10 min cap, 10 s per POST: eight attempts span up to about 4 minutes.
    fn default() -> Self {
        DeliveryPolicy {
            backoff: Backoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(600),
            },
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a POST produced no status.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostError {
    /// The deadline passed.
    Timeout,
    /// Connection refused, DNS, TLS or a broken connection; the text is for people.
    Network(String),
    /// The host refused to send it (e.g. the address resolved to a private network).
    Refused(String),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Timeout => f.write_str("timed out"),
            PostError::Network(m) => write!(f, "network error: {m}"),
            PostError::Refused(m) => write!(f, "refused by the host: {m}"),
        }
    }
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// Try again at `at`.
    Retry {
        /// When.
        at: Instant,
    },
    /// Delivered (2xx).
    Done,
    /// Give up: keep it as a dead letter.
    DeadLetter,
}

/// One event on its way to one destination. Also the pending (outbox) and dead-letter record:
/// [`encode`](Self::encode) / [`decode`](Self::decode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Endpoint name.
    pub endpoint: String,
    /// CloudEvents `id`; kept across retries and replays so destinations can dedup.
    pub event_id: String,
    /// Index of the destination in the endpoint's configuration.
    pub dest: u32,
    /// The destination's URL when the delivery was planned (to notice a reconfiguration).
    pub url: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Most attempts in all (the destination's `attempts`).
    pub max_attempts: u32,
    /// When the event was accepted (or last replayed).
    pub created: Instant,
    /// When the next attempt is due (after a failure: the retry time; for a dead letter: when
    /// it was given up).
    pub next_at: Instant,
    /// What went wrong last, for people (status or error; never response bodies).
    pub last_error: Option<String>,
    /// The CloudEvent, structured-mode JSON.
    pub event: Vec<u8>,
}

impl Delivery {
    /// A delivery due at `now`, no attempt made yet.
    #[must_use]
    pub fn new(
        endpoint: &str,
        event_id: &str,
        dest: u32,
        url: &str,
        max_attempts: u32,
        now: Instant,
        event: Vec<u8>,
    ) -> Delivery {
        Delivery {
            endpoint: String::from(endpoint),
            event_id: String::from(event_id),
            dest,
            url: String::from(url),
            attempts: 0,
            max_attempts: max_attempts.max(1),
            created: now,
            next_at: now,
            last_error: None,
            event,
        }
    }

    /// The stable id of this delivery: `{endpoint}:{event id}:{dest}` (the suffix of its KV
    /// keys, and what the admin API replays by).
    #[must_use]
    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.endpoint, self.event_id, self.dest)
    }

    /// Records the outcome of an attempt made at `now` and decides what comes next: `2xx` is
    /// [`Next::Done`]; a retryable failure (`408`, `425`, `429`, `5xx`, any [`PostError`]) is
    /// [`Next::Retry`] after a full-jitter backoff while attempts remain, else
    /// [`Next::DeadLetter`]; any other status dead-letters at once.
    pub fn next_step(
        &mut self,
        now: Instant,
        outcome: &Result<u16, PostError>,
        backoff: &Backoff,
        rng: &mut Rng,
    ) -> Next {
        self.attempts = self.attempts.saturating_add(1);
        let retryable = match outcome {
            Ok(s) if (200..300).contains(s) => {
                self.last_error = None;
                return Next::Done;
            }
            Ok(s) => {
                self.last_error = Some(format!("destination answered {s}"));
                matches!(s, 408 | 425 | 429 | 500..=599)
            }
            Err(e) => {
                let mut m = format!("{e}");
                truncate(&mut m, MAX_ERROR);
                self.last_error = Some(m);
                true
            }
        };
        if retryable && self.attempts < self.max_attempts {
            let at = now + backoff.delay(self.attempts, rng);
            self.next_at = at;
            Next::Retry { at }
        } else {
            self.next_at = now;
            Next::DeadLetter
        }
    }

    /// Makes a dead letter due again: attempts reset, error cleared, same event id.
    pub fn reset(&mut self, now: Instant) {
        self.attempts = 0;
        self.created = now;
        self.next_at = now;
        self.last_error = None;
    }

    /// The compact, versioned encoding (core [`codec`](mosaic_core::codec)).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.event.len() + self.url.len());
        w.bytes_raw(&MAGIC);
        w.u8(VERSION);
        w.str(&self.endpoint);
        w.str(&self.event_id);
        w.varint(u64::from(self.dest));
        w.str(&self.url);
        w.varint(u64::from(self.attempts));
        w.varint(u64::from(self.max_attempts));
        w.varint(self.created.as_micros());
        w.varint(self.next_at.as_micros());
        match &self.last_error {
            None => w.u8(0),
            Some(e) => {
                w.u8(1);
                w.str(e);
            }
        }
        w.bytes(&self.event);
        w.finish()
    }

    /// Decodes [`encode`](Self::encode)'s output; `None` for anything else (wrong magic or
    /// version, truncation, trailing bytes, bad UTF-8, out-of-range numbers). Never panics.
    #[must_use]
    pub fn decode(b: &[u8]) -> Option<Delivery> {
        let mut r = Reader::new(b);
        if r.take(2)? != MAGIC || r.u8()? != VERSION {
            return None;
        }
        let endpoint = r.str()?;
        let event_id = r.str()?;
        let dest = u32::try_from(r.varint()?).ok()?;
        let url = r.str()?;
        let attempts = u32::try_from(r.varint()?).ok()?;
        let max_attempts = u32::try_from(r.varint()?).ok()?;
        let created = Instant::from_micros(r.varint()?);
        let next_at = Instant::from_micros(r.varint()?);
        let last_error = match r.u8()? {
            0 => None,
            1 => Some(r.str()?),
            _ => return None,
        };
        let event = r.bytes()?.to_vec();
        if !r.is_empty() {
            return None;
        }
        Some(Delivery {
            endpoint,
            event_id,
            dest,
            url,
            attempts,
            max_attempts,
            created,
            next_at,
            last_error,
            event,
        })
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// The headers of the POST carrying `d` at `now`: `content-type: application/cloudevents+json`
/// and, when `sign_secret` is given, Standard Webhooks `webhook-id` (the event id),
/// `webhook-timestamp` and `webhook-signature`.
///
/// # Errors
///
/// [`SignError`] if the signing secret is unusable (neither `whsec_` nor an ed25519 key).
pub fn outgoing_request(
    d: &Delivery,
    sign_secret: Option<&[u8]>,
    now: Instant,
) -> Result<Vec<(String, String)>, SignError> {
    let mut headers = alloc::vec![(
        String::from("content-type"),
        String::from(DELIVERY_CONTENT_TYPE)
    )];
    if let Some(secret) = sign_secret {
        headers.extend(core_webhook::sign(
            &Scheme::StandardWebhooks,
            secret,
            &d.event,
            None,
            &d.event_id,
            now,
        )?);
    }
    Ok(headers)
}
