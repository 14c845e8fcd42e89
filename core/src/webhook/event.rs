//! Normalization of a verified delivery into a CloudEvents 1.0 envelope, and dedup keys.
//!
//! What differs between providers is data, not code: an [`EventSpec`] says where the event type,
//! the delivery id, the source, the subject and the time are found (a header or a JSON-pointer
//! into the body). Presets in `mosaic-providers` are `static` specs; providers declared in
//! configuration build one at run time.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::Headers;
use crate::time::Instant;

use super::civil::{is_rfc3339, rfc3339};
use super::keys::STRICT_B64;
use super::util::header;

/// The CloudEvents specification version we emit.
pub const SPEC_VERSION: &str = "1.0";

/// Longest id taken from a header or the body; anything longer is replaced by the body hash.
const MAX_ID_LEN: usize = 256;
/// Longest event-type segment kept.
const MAX_TYPE_PART: usize = 128;
/// Longest subject kept.
const MAX_SUBJECT: usize = 1_024;

/// Where a value is found in a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// A request header (case-insensitive name).
    Header(Cow<'static, str>),
    /// A JSON pointer (RFC 6901) into the body, e.g. `/repository/html_url`. Strings are taken
    /// as they are, numbers and booleans as their JSON text.
    Body(Cow<'static, str>),
}

impl Field {
    /// A header field.
    #[must_use]
    pub const fn header(name: &'static str) -> Field {
        Field::Header(Cow::Borrowed(name))
    }
    /// A body field, by JSON pointer.
    #[must_use]
    pub const fn body(pointer: &'static str) -> Field {
        Field::Body(Cow::Borrowed(pointer))
    }

    fn describe(&self) -> String {
        match self {
            Field::Header(h) => format!("header `{h}`"),
            Field::Body(p) => format!("body `{p}`"),
        }
    }
}

/// One dot-separated segment of the CloudEvents `type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypePart {
    /// Candidates, first present wins.
    pub from: Cow<'static, [Field]>,
    /// Removed from the value if present (Jira's `jira:` in `jira:issue_created`).
    pub strip_prefix: Option<Cow<'static, str>>,
    /// If no candidate is present: fail normalization (`true`) or leave the segment out.
    pub required: bool,
}

impl TypePart {
    /// A segment that must be present.
    #[must_use]
    pub const fn required(from: &'static [Field]) -> TypePart {
        TypePart {
            from: Cow::Borrowed(from),
            strip_prefix: None,
            required: true,
        }
    }
    /// A segment left out when absent (e.g. `action`, which not every event has).
    #[must_use]
    pub const fn optional(from: &'static [Field]) -> TypePart {
        TypePart {
            from: Cow::Borrowed(from),
            strip_prefix: None,
            required: false,
        }
    }
    /// A required segment with a prefix to strip.
    #[must_use]
    pub const fn required_stripping(from: &'static [Field], prefix: &'static str) -> TypePart {
        TypePart {
            from: Cow::Borrowed(from),
            strip_prefix: Some(Cow::Borrowed(prefix)),
            required: true,
        }
    }
}

/// Where the event's time is found in the body. Values that do not parse are skipped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TimeField {
    /// An RFC 3339 string (taken as is once validated).
    Rfc3339(Cow<'static, str>),
    /// Integer Unix milliseconds.
    UnixMillis(Cow<'static, str>),
    /// Integer Unix seconds.
    UnixSecs(Cow<'static, str>),
}

/// How to understand a provider's deliveries: where each CloudEvents attribute comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventSpec {
    /// Reverse-DNS prefix of the event type, e.g. `com.github`.
    pub type_prefix: Cow<'static, str>,
    /// Segments appended to the prefix, dot-separated, e.g. event header then body `action`.
    pub type_parts: Cow<'static, [TypePart]>,
    /// The provider's id of this delivery attempt, for tracing (`mosaicdelivery`); first present
    /// wins; if none, the dedup key is used.
    pub delivery: Cow<'static, [Field]>,
    /// Ids that stay the same across the provider's retries, first present wins. If none is
    /// present (or the list is empty, for providers with no stable id), the key is the SHA-256
    /// of the body.
    pub dedup: Cow<'static, [Field]>,
    /// URI-references for `source`, first present wins; else `/hooks/{endpoint}`.
    pub source: Cow<'static, [Field]>,
    /// Candidates for `subject`, first present wins; else no subject.
    pub subject: Cow<'static, [Field]>,
    /// Candidates for `time`, first valid wins; else `now`.
    pub time: Cow<'static, [TimeField]>,
}

/// The `data` of a [`CloudEvent`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EventData {
    /// No body.
    None,
    /// A JSON body, kept byte for byte (no re-serialization: key order and number spelling are
    /// preserved).
    Json(Box<RawValue>),
    /// A body that is not JSON, sent as `data_base64` with its content type.
    Binary {
        /// The request's `Content-Type`, or `application/octet-stream`.
        content_type: String,
        /// The raw body.
        bytes: Vec<u8>,
    },
}

/// A CloudEvents 1.0 event in the structured JSON format, with Mosaic's extension attributes.
///
/// Serialize it with `serde_json` (it implements [`serde::Serialize`]) or
/// [`CloudEvent::to_json`].
#[derive(Clone, Debug)]
pub struct CloudEvent {
    /// `id`: the dedup key, stable across the provider's retries.
    pub id: String,
    /// `source`: a URI-reference of where the event happened.
    pub source: String,
    /// `type`, e.g. `com.github.pull_request.opened`.
    pub ty: String,
    /// `subject`, e.g. a pull request number, when derivable.
    pub subject: Option<String>,
    /// `time`, RFC 3339.
    pub time: String,
    /// `data` / `data_base64`, with `datacontenttype` derived from it.
    pub data: EventData,
    /// Extension `mosaictenant`.
    pub tenant: String,
    /// Extension `mosaicprovider`: the preset or provider name.
    pub provider: String,
    /// Extension `mosaicdelivery`: the provider's id for this delivery attempt.
    pub delivery: String,
}

impl CloudEvent {
    /// `datacontenttype`, if there is data.
    #[must_use]
    pub fn datacontenttype(&self) -> Option<&str> {
        match &self.data {
            EventData::None => None,
            EventData::Json(_) => Some("application/json"),
            EventData::Binary { content_type, .. } => Some(content_type),
        }
    }

    /// The event as structured-mode JSON (`application/cloudevents+json`).
    ///
    /// # Errors
    ///
    /// Only if `serde_json` fails, which it does not for this type.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

impl serde::Serialize for CloudEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("specversion", SPEC_VERSION)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("type", &self.ty)?;
        if let Some(subject) = &self.subject {
            m.serialize_entry("subject", subject)?;
        }
        m.serialize_entry("time", &self.time)?;
        if let Some(ct) = self.datacontenttype() {
            m.serialize_entry("datacontenttype", ct)?;
        }
        match &self.data {
            EventData::None => {}
            EventData::Json(raw) => m.serialize_entry("data", raw)?,
            EventData::Binary { bytes, .. } => {
                m.serialize_entry("data_base64", &STRICT_B64.encode(bytes))?;
            }
        }
        m.serialize_entry("mosaictenant", &self.tenant)?;
        m.serialize_entry("mosaicprovider", &self.provider)?;
        m.serialize_entry("mosaicdelivery", &self.delivery)?;
        m.end()
    }
}

/// Why a verified delivery could not be normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NormalizeError {
    /// None of the fields naming the event type is present.
    MissingEventType {
        /// The fields that were looked at, for the message.
        looked_at: String,
    },
}

impl NormalizeError {
    /// The stable, machine-readable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            NormalizeError::MissingEventType { .. } => "missing-event-type",
        }
    }
}

impl fmt::Display for NormalizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NormalizeError::MissingEventType { looked_at } => {
                write!(f, "cannot tell the event type: no {looked_at}")
            }
        }
    }
}

impl core::error::Error for NormalizeError {}

/// The body parsed once, lazily, for every lookup.
struct Body<'a> {
    raw: &'a [u8],
    json: Option<Option<Value>>,
}

impl<'a> Body<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Body { raw, json: None }
    }
    fn json(&mut self) -> Option<&Value> {
        let raw = self.raw;
        self.json
            .get_or_insert_with(|| serde_json::from_slice(raw).ok())
            .as_ref()
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn lookup<H: Headers + ?Sized>(field: &Field, headers: &H, body: &mut Body<'_>) -> Option<String> {
    match field {
        Field::Header(name) => header(headers, name).map(String::from),
        Field::Body(ptr) => body.json()?.pointer(ptr).and_then(scalar),
    }
    .filter(|s| !s.is_empty())
}

fn first<H: Headers + ?Sized>(
    fields: &[Field],
    headers: &H,
    body: &mut Body<'_>,
    ok: impl Fn(&str) -> bool,
) -> Option<String> {
    fields
        .iter()
        .filter_map(|f| lookup(f, headers, body))
        .find(|v| ok(v))
}

/// Ids become storage keys: printable ASCII, bounded.
fn usable_id(s: &str) -> bool {
    s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

/// `sha256:<hex>` of the body: the dedup key of a provider with no stable delivery id, and a
/// second replay guard for schemes whose id header is not signed.
#[must_use]
pub fn body_key(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

fn dedup_with<H: Headers + ?Sized>(spec: &EventSpec, headers: &H, body: &mut Body<'_>) -> String {
    first(&spec.dedup, headers, body, usable_id).unwrap_or_else(|| body_key(body.raw))
}

/// The key to remember for dedup: the first stable delivery id of `spec.dedup` present (a
/// header such as `X-GitHub-Delivery`, or a body field such as Stripe's event `id`), else
/// [`body_key`]. Ids longer than 256 bytes or with characters outside printable ASCII are
/// replaced by the body hash too.
#[must_use]
pub fn dedup_key<H: Headers + ?Sized>(spec: &EventSpec, headers: &H, body: &[u8]) -> String {
    dedup_with(spec, headers, &mut Body::new(body))
}

fn type_segment(value: &str, strip: Option<&str>) -> String {
    let value = strip.and_then(|p| value.strip_prefix(p)).unwrap_or(value);
    value
        .chars()
        .take(MAX_TYPE_PART)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn event_time(spec: &EventSpec, body: &mut Body<'_>, now: Instant) -> String {
    if let Some(json) = body.json() {
        for tf in spec.time.iter() {
            let found = match tf {
                TimeField::Rfc3339(p) => json
                    .pointer(p)
                    .and_then(Value::as_str)
                    .filter(|s| is_rfc3339(s))
                    .map(String::from),
                TimeField::UnixMillis(p) => json
                    .pointer(p)
                    .and_then(Value::as_u64)
                    .map(|ms| rfc3339(Instant::from_millis(ms))),
                TimeField::UnixSecs(p) => json
                    .pointer(p)
                    .and_then(Value::as_u64)
                    .map(|s| rfc3339(Instant::from_secs(s))),
            };
            if let Some(t) = found {
                return t;
            }
        }
    }
    rfc3339(now)
}

fn data<H: Headers + ?Sized>(headers: &H, body: &mut Body<'_>) -> EventData {
    let raw = body.raw;
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty() {
        return EventData::None;
    }
    if body.json().is_some() {
        if let Some(rv) = core::str::from_utf8(trimmed)
            .ok()
            .and_then(|s| RawValue::from_string(String::from(s)).ok())
        {
            return EventData::Json(rv);
        }
    }
    EventData::Binary {
        content_type: String::from(
            header(headers, "content-type").unwrap_or("application/octet-stream"),
        ),
        bytes: raw.to_vec(),
    }
}

/// Builds the CloudEvents 1.0 envelope of a **verified** delivery.
///
/// - `type`: `spec.type_prefix` then each [`TypePart`] present, dot-separated; characters
///   outside `[A-Za-z0-9._-]` become `_`.
/// - `id`: [`dedup_key`]; `mosaicdelivery`: the provider's attempt id, else the same.
/// - `source`: the first `spec.source` present, else `/hooks/{endpoint}`.
/// - `time`: the first valid `spec.time`, else `now`.
/// - `data`: the JSON body byte for byte, or `data_base64` with the request's content type.
/// - Extensions: `mosaictenant` = `tenant`, `mosaicprovider` = `provider`.
///
/// # Errors
///
/// [`NormalizeError::MissingEventType`] if a required type segment is absent.
pub fn normalize<H: Headers + ?Sized>(
    spec: &EventSpec,
    provider: &str,
    headers: &H,
    body: &[u8],
    now: Instant,
    tenant: &str,
    endpoint: &str,
) -> Result<CloudEvent, NormalizeError> {
    let mut b = Body::new(body);

    let mut ty = String::from(&*spec.type_prefix);
    for part in spec.type_parts.iter() {
        match first(&part.from, headers, &mut b, |_| true) {
            Some(v) => {
                let seg = type_segment(&v, part.strip_prefix.as_deref());
                if !seg.is_empty() {
                    if !ty.is_empty() {
                        ty.push('.');
                    }
                    ty.push_str(&seg);
                }
            }
            None if part.required => {
                let looked_at: Vec<String> = part.from.iter().map(Field::describe).collect();
                return Err(NormalizeError::MissingEventType {
                    looked_at: looked_at.join(" or "),
                });
            }
            None => {}
        }
    }

    let id = dedup_with(spec, headers, &mut b);
    let delivery = first(&spec.delivery, headers, &mut b, usable_id).unwrap_or_else(|| id.clone());
    let source = first(&spec.source, headers, &mut b, |s| {
        s.len() <= MAX_ID_LEN * 4 && s.bytes().all(|c| c.is_ascii_graphic())
    })
    .unwrap_or_else(|| format!("/hooks/{endpoint}"));
    let subject = first(&spec.subject, headers, &mut b, |s| s.len() <= MAX_SUBJECT);
    let time = event_time(spec, &mut b, now);
    let data = data(headers, &mut b);

    Ok(CloudEvent {
        id,
        source,
        ty,
        subject,
        time,
        data,
        tenant: String::from(tenant),
        provider: String::from(provider),
        delivery,
    })
}
