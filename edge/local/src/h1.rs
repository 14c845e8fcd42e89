//! HTTP/1.1 on the wire (RFC 9112), both ways: for the upstream client the request head it
//! writes, the response head it reads and the body framing; for the server the request head it
//! reads and the response head it writes. Pure functions over byte buffers, so every edge is
//! unit-tested without a socket, and the one loop that reads a body off a connection
//! ([`poll_body`]); [`crate::upstream`] and [`crate::conn`] drive them on connections.
//!
//! Written for the proxy's hot path: the request goes out in one write, the response head is
//! parsed in place (httparse) and the body is cut out of the read buffer without copying.
//! What the proxy does not need is refused rather than half-supported: a `101 Switching
//! Protocols` answer, a head over [`MAX_HEAD`], more than [`MAX_HEADERS`] headers, a
//! `Content-Length` that is not one number.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use mosaic_core::head::{is_field_value, is_token};
use tokio::io::AsyncRead;

use crate::ascii::to_text;

/// Longest response head read (status line, headers, interim `1xx` heads included).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most response headers parsed.
pub const MAX_HEADERS: usize = 128;
/// Bytes a read buffer grows by when it has less than [`MIN_READ`] free.
pub const READ_SIZE: usize = 16 * 1024;
/// Least free space a read is made with.
const MIN_READ: usize = 2 * 1024;
/// Longest chunk-size line or trailer section of a chunked body.
const MAX_CHUNK_META: usize = 8 * 1024;

/// Why a message cannot be written or read.
pub type Error = &'static str;

/// Body pieces up to this size are copied out of the read buffer, which then stays ours to
/// reuse; larger ones are cut out of it without copying.
const COPY_MAX: usize = 4 * 1024;

/// Writes a request head, followed by `body` when `with_body` (the caller sends a large body
/// on its own), to `out`.
///
/// `Host` is the target's authority and `User-Agent` is `agent` unless the headers carry
/// them; the framing is ours: any `Content-Length` or `Transfer-Encoding` among the headers is
/// dropped (core strips them already) and `Content-Length` is sent for a non-empty body, or as
/// `0` for an empty `POST`, `PUT` or `PATCH` (servers such as GitHub answer 411 without it).
///
/// # Errors
/// When the path or a header cannot be sent as it is: a path that is not visible ASCII, a
/// header name that is not a token, a value with a control character (a line break would
/// split the head and smuggle a header or a request in).
#[allow(clippy::too_many_arguments)]
pub fn encode_request(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    authority: &str,
    headers: &[(String, String)],
    agent: &str,
    body: &[u8],
    with_body: bool,
) -> Result<(), Error> {
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the request target is not visible ASCII");
    }
    if !authority.bytes().all(|b| b.is_ascii_graphic()) || authority.is_empty() {
        return Err("the authority is not visible ASCII");
    }
    out.reserve(
        64 + path.len()
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>(),
    );
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut host, mut user_agent) = (false, false);
    for (n, v) in headers {
        if !is_token(n) {
            return Err("a header name is not a token");
        }
        if !is_field_value(v) {
            return Err("a header value holds a control character");
        }
        if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        host |= n.eq_ignore_ascii_case("host");
        user_agent |= n.eq_ignore_ascii_case("user-agent");
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !user_agent {
        out.extend_from_slice(b"user-agent: ");
        out.extend_from_slice(agent.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if with_body {
        out.extend_from_slice(body);
    }
    Ok(())
}

/// A response head.
#[derive(Debug)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercase (a value that is not UTF-8 is decoded lossily).
    pub headers: Vec<(String, String)>,
    /// How the body is delimited.
    pub body: Decoder,
    /// Whether the connection can carry another request once the body is read.
    pub keep_alive: bool,
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    // statuses and small lengths: no buffer, no copy call
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    if n < 1000 {
        if n >= 100 {
            out.push(b'0' + (n / 100) as u8);
        }
        out.push(b'0' + (n / 10 % 10) as u8);
        out.push(b'0' + (n % 10) as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Whether a comma-separated header value lists `token`.
fn lists(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a response head at the start of `buf`, skipping interim `1xx` heads, and consumes
/// it. `Ok(None)`: the head is not complete yet (read more, up to [`MAX_HEAD`]).
///
/// # Errors
/// When the bytes are not an HTTP/1.x response the proxy can relay.
pub fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, Error> {
    loop {
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut r, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err("more than 128 response headers"),
            Err(_) => return Err("the response head is not valid HTTP/1.1"),
        };
        let status = r.code.unwrap_or(0);
        if status == 101 {
            return Err("the upstream switched protocols (101), which the proxy never asks for");
        }
        if (100..200).contains(&status) {
            // interim (100 Continue, 103 Early Hints): the final head follows
            buf.advance(len);
            continue;
        }
        let mut keep_alive = r.version == Some(1);
        let (mut length, mut chunked, mut encoded) = (None::<u64>, false, false);
        // room for what the proxy adds on the way back (provider, request id, cache, limits):
        // the list is handed on, not copied
        let mut headers = Headers::with_room(r.headers.len() + 6);
        for h in r.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                for v in h.value.split(|&b| b == b',') {
                    let n = parse_length(v.trim_ascii())
                        .ok_or("the response's Content-Length is not a number")?;
                    if length.is_some_and(|l| l != n) {
                        return Err("the response carries differing Content-Length values");
                    }
                    length = Some(n);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                encoded = true;
                // the final coding decides: chunked, or the body runs to the close
                chunked = h
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                if lists(h.value, "close") {
                    keep_alive = false;
                } else if r.version == Some(0) && lists(h.value, "keep-alive") {
                    keep_alive = true;
                }
            }
            headers.push(name, h.value);
        }
        let headers = headers.done();
        let body = if head_request || status == 204 || status == 304 {
            Decoder::Length(0)
        } else if encoded {
            // both framings at once is how requests get smuggled: never reuse such a
            // connection (RFC 9112 §6.3)
            if length.is_some() {
                keep_alive = false;
            }
            if chunked {
                Decoder::Chunked(Chunk::Size)
            } else {
                keep_alive = false;
                Decoder::Close
            }
        } else if let Some(n) = length {
            Decoder::Length(n)
        } else {
            keep_alive = false;
            Decoder::Close
        };
        buf.advance(len);
        return Ok(Some(Head {
            status,
            headers,
            body,
            keep_alive,
        }));
    }
}

/// The first `n` bytes of `buf`: copied when small (so that the buffer is not shared and can
/// be reused for the next read), cut out without copying otherwise.
fn cut(buf: &mut BytesMut, n: usize) -> Bytes {
    if n <= COPY_MAX {
        let b = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        b
    } else {
        buf.split_to(n).freeze()
    }
}

/// Makes room for a read: at least [`MIN_READ`] bytes (the buffer's own space is reused once
/// what was cut out of it is gone).
pub fn room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(READ_SIZE);
    }
}

/// What the next step of reading a body gave.
pub enum BodyStep {
    /// A piece of the body.
    Data(Bytes),
    /// The body ended: at its framed end, or (`closed`) with the connection as its framing said.
    End {
        /// The connection closed.
        closed: bool,
    },
    /// The body is malformed, cut short, or the socket failed.
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// Takes the next piece of a body framed by `decoder` out of `buf`, reading from `io` when
/// `buf` runs dry: the one read loop of request and response bodies.
pub fn poll_body<R: AsyncRead + Unpin>(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    io: &mut R,
    cx: &mut Context<'_>,
) -> Poll<BodyStep> {
    loop {
        match decoder.decode(buf) {
            Err(m) => return Poll::Ready(BodyStep::Failed(m.into())),
            Ok(Some(data)) => return Poll::Ready(BodyStep::Data(data)),
            Ok(None) if decoder.is_done() => return Poll::Ready(BodyStep::End { closed: false }),
            Ok(None) => {}
        }
        room(buf);
        match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(BodyStep::Failed(Box::new(e))),
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(match decoder.eof() {
                    Ok(()) => BodyStep::End { closed: true },
                    Err(m) => BodyStep::Failed(m.into()),
                })
            }
            Poll::Ready(Ok(_)) => {}
        }
    }
}

/// A connection's one timer and the body-idle deadline it watches: armed the first time
/// something has to wait, re-armed only when it fires before the deadline asked about (an
/// earlier head's, body's or attempt's) or is set for after it, so that a request that never
/// waits costs no clock read and a request that waits costs no timer registration.
#[derive(Default)]
pub struct Idle {
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When the body being read times out unless more of it arrives.
    deadline: Option<tokio::time::Instant>,
}

impl Idle {
    /// Whether `deadline` has passed; registers `cx` for that moment otherwise.
    pub fn passed(&mut self, deadline: tokio::time::Instant, cx: &mut Context<'_>) -> bool {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            // armed for a later moment (another phase's deadline): this one comes first
            timer.as_mut().reset(deadline);
        }
        while timer.as_mut().poll(cx).is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
        false
    }

    /// Whether a body has waited `limit` without a byte since it last [progressed](Idle::progressed)
    /// (the wait starts with the first call); registers `cx` otherwise.
    pub fn stalled(&mut self, limit: std::time::Duration, cx: &mut Context<'_>) -> bool {
        let deadline = *self
            .deadline
            .get_or_insert_with(|| tokio::time::Instant::now() + limit);
        self.passed(deadline, cx)
    }

    /// Bytes arrived (or a new body starts): the next wait starts its own limit.
    pub fn progressed(&mut self) {
        self.deadline = None;
    }
}

/// Writes all of `buf`: first straight to the socket (the usual case: there is room for a
/// whole small message, and this skips the write future and tokio's readiness bookkeeping),
/// then, for what did not fit, by waiting for room.
///
/// # Errors
/// The socket's error.
pub async fn write_fully(io: &mut tokio::net::TcpStream, buf: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let written = match io.try_write(buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if written < buf.len() {
        io.write_all(&buf[written..]).await?;
    }
    Ok(())
}

/// Header lists kept for reuse on this thread: a list handed back with [`recycle`] once its
/// request or answer is done keeps its strings' buffers, and the next head parsed here writes
/// into them, so a keep-alive connection's heads stop costing an allocation per name and per
/// value (about 14 allocations per proxied request).
mod bin {
    use std::cell::RefCell;

    /// At most this many lists are kept per thread.
    const LISTS: usize = 8;
    /// Lists longer than this are not kept.
    const ENTRIES: usize = 64;
    /// Strings with more room than this are not kept (their room is freed).
    const ROOM: usize = 1024;

    thread_local! {
        static BIN: RefCell<Vec<Vec<(String, String)>>> = const { RefCell::new(Vec::new()) };
    }

    /// A list to fill: a recycled one (with its strings) when there is one.
    pub fn take(room: usize) -> Vec<(String, String)> {
        BIN.with(|b| b.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(room))
    }

    /// Keeps `list` for the next head parsed on this thread.
    pub fn put(mut list: Vec<(String, String)>) {
        if list.len() > ENTRIES || list.capacity() > 4 * ENTRIES {
            return;
        }
        for (n, v) in &mut list {
            if n.capacity() > ROOM {
                *n = String::new();
            }
            if v.capacity() > ROOM {
                *v = String::new();
            }
        }
        BIN.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < LISTS {
                b.push(list);
            }
        });
    }
}

/// Hands a header list back for reuse by the next head parsed on this thread (see [`bin`]).
pub fn recycle(list: Vec<(String, String)>) {
    bin::put(list);
}

/// A recycled header list (or a new one) for core to write upstream headers over.
#[must_use]
pub fn spare() -> Vec<(String, String)> {
    bin::take(0)
}

/// A header list being filled from a parsed head, reusing a recycled list's strings.
struct Headers {
    list: Vec<(String, String)>,
    used: usize,
}

impl Headers {
    fn with_room(room: usize) -> Headers {
        let mut list = bin::take(room);
        list.reserve(room.saturating_sub(list.len()));
        Headers { list, used: 0 }
    }

    /// Appends a header: the name lowercased, the value as text (decoded lossily when it is
    /// not UTF-8).
    fn push(&mut self, name: &str, value: &[u8]) {
        if let Some((n, v)) = self.list.get_mut(self.used) {
            n.clear();
            n.push_str(name);
            n.make_ascii_lowercase();
            v.clear();
            match crate::ascii::ascii_str(value) {
                Some(s) => v.push_str(s),
                None => v.push_str(&String::from_utf8_lossy(value)),
            }
        } else {
            self.list.push((name.to_ascii_lowercase(), to_text(value)));
        }
        self.used += 1;
    }

    /// The list, without what a longer recycled list had beyond the headers pushed.
    fn done(mut self) -> Vec<(String, String)> {
        self.list.truncate(self.used);
        self.list
    }
}

/// A decimal length of at most 19 digits (no sign, no spaces).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; bytes of them seen so far.
    Trailers(usize),
}

/// How a response body is delimited, and how much of it is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// `Content-Length` (or none at all: `HEAD`, 204, 304): this many bytes left.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunk),
    /// Until the connection closes.
    Close,
    /// Read to its end.
    Done,
}

impl Decoder {
    /// Whether the body has been read to its end.
    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self, Decoder::Done | Decoder::Length(0))
    }

    /// Bytes left, when known.
    #[must_use]
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next piece of body out of `buf`. `Ok(None)`: done (see [`Decoder::is_done`])
    /// or more bytes are needed.
    ///
    /// # Errors
    /// When a chunked body is malformed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        loop {
            match *self {
                Decoder::Done => return Ok(None),
                Decoder::Length(0) => {
                    *self = Decoder::Done;
                    return Ok(None);
                }
                Decoder::Length(n) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    *self = Decoder::Length(n - take as u64);
                    return Ok(Some(cut(buf, take)));
                }
                Decoder::Close => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let all = buf.len();
                    return Ok(Some(cut(buf, all)));
                }
                Decoder::Chunked(Chunk::Size) => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, 0))) => {
                        buf.advance(used);
                        *self = Decoder::Chunked(Chunk::Trailers(0));
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        *self = Decoder::Chunked(Chunk::Data(size));
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_META => {
                        return Err("a chunk-size line is too long")
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(_) => return Err("invalid chunk size"),
                },
                Decoder::Chunked(Chunk::Data(n)) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    let left = n - take as u64;
                    *self = Decoder::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Some(cut(buf, take)));
                }
                Decoder::Chunked(Chunk::DataEnd) => match buf.first() {
                    None => return Ok(None),
                    Some(b'\n') => {
                        buf.advance(1);
                        *self = Decoder::Chunked(Chunk::Size);
                    }
                    Some(b'\r') => match buf.get(1) {
                        None => return Ok(None),
                        Some(b'\n') => {
                            buf.advance(2);
                            *self = Decoder::Chunked(Chunk::Size);
                        }
                        Some(_) => return Err("a chunk's data is longer than its size"),
                    },
                    Some(_) => return Err("a chunk's data is longer than its size"),
                },
                Decoder::Chunked(Chunk::Trailers(seen)) => {
                    // trailer fields are hop-by-hop for the proxy: read and dropped
                    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                        if seen + buf.len() > MAX_CHUNK_META {
                            return Err("the trailer section is too long");
                        }
                        return Ok(None);
                    };
                    let empty = end == 0 || (end == 1 && buf[0] == b'\r');
                    buf.advance(end + 1);
                    *self = if empty {
                        Decoder::Done
                    } else if seen + end + 1 > MAX_CHUNK_META {
                        return Err("the trailer section is too long");
                    } else {
                        Decoder::Chunked(Chunk::Trailers(seen + end + 1))
                    };
                }
            }
        }
    }

    /// The connection closed: the end of a body that runs to the close, an error otherwise.
    ///
    /// # Errors
    /// When the body was cut short.
    pub fn eof(&mut self) -> Result<(), Error> {
        match self {
            Decoder::Close | Decoder::Done | Decoder::Length(0) => {
                *self = Decoder::Done;
                Ok(())
            }
            _ => Err("the connection closed before the body ended"),
        }
    }
}

/// Most request headers parsed (more is a 431).
pub const MAX_REQUEST_HEADERS: usize = 128;

/// A request head as received.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, as sent.
    pub method: String,
    /// Request target, as sent (origin-form, absolute-form, `*`…).
    pub target: String,
    /// `HTTP/1.0` (else `HTTP/1.1`).
    pub http10: bool,
    /// Headers in order, names lowercase (a value that is not UTF-8 is decoded lossily).
    pub headers: Vec<(String, String)>,
}

/// Why a request head is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Too many headers (431).
    TooMany,
    /// Not an HTTP/1.x request head (400), and why.
    Invalid(&'static str),
}

/// Parses a request head at the start of `buf` and consumes it. `Ok(None)`: not complete yet
/// (the caller bounds how much it reads). Empty lines before the request line are skipped
/// (RFC 9112 §2.2).
///
/// # Errors
/// [`HeadError`] for a head that is not HTTP/1.x or has too many headers. httparse is strict
/// here: obsolete line folding, whitespace before a colon and control characters in values
/// are refused, not repaired.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_REQUEST_HEADERS];
    let mut r = httparse::Request::new(&mut []);
    let len = match r.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooMany),
        Err(httparse::Error::Version) => {
            return Err(HeadError::Invalid("only HTTP/1.0 and HTTP/1.1 are served"))
        }
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => {
            return Err(HeadError::Invalid(
                "a header line is malformed (no folding, no space before the colon, no control characters)",
            ))
        }
        Err(_) => return Err(HeadError::Invalid("the request line is malformed")),
    };
    let (Some(method), Some(target), Some(version)) = (r.method, r.path, r.version) else {
        return Err(HeadError::Invalid("the request line is malformed"));
    };
    let mut headers = Headers::with_room(r.headers.len());
    for h in r.headers.iter() {
        headers.push(h.name, h.value);
    }
    let headers = headers.done();
    let head = RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        http10: version == 0,
        headers,
    };
    buf.advance(len);
    Ok(Some(head))
}

/// How a response body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// No body at all (`HEAD`, 1xx, 204, 304): headers as given, `Content-Length` included.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 caller and a body of unknown length).
    Close,
}

/// What a response says about its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// Nothing: HTTP/1.1's default, the connection stays open.
    Default,
    /// `Connection: close`.
    Close,
    /// `Connection: keep-alive`, for an HTTP/1.0 caller that asked for it.
    KeepAlive,
}

/// Writes a response head to `out`: the status line, `headers` (minus the framing and
/// connection-level ones, which are ours; a header that is not valid HTTP is dropped, never
/// sent half-way), `Date` unless given, the framing and the `Connection` header `persist` says.
pub fn encode_response_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(String, String)],
    framing: Out,
    persist: Persist,
    date: &str,
) {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    for (n, v) in headers {
        if !is_token(n) || !is_field_value(v) {
            continue;
        }
        let ours = ["transfer-encoding", "connection", "keep-alive"]
            .iter()
            .any(|h| n.eq_ignore_ascii_case(h))
            // a length is ours to state, except the one a HEAD or 304 answer repeats from the
            // representation; 1xx and 204 never carry one (RFC 9110 §8.6)
            || ((framing != Out::Empty || status == 204 || status < 200)
                && n.eq_ignore_ascii_case("content-length"));
        if ours {
            continue;
        }
        dated |= n.eq_ignore_ascii_case("date");
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Out::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Out::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Out::Empty | Out::Close => {}
    }
    match persist {
        Persist::Default => {}
        Persist::Close => out.extend_from_slice(b"connection: close\r\n"),
        Persist::KeepAlive => out.extend_from_slice(b"connection: keep-alive\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response header whose value may not be sent is dropped whole (the lines around it
    /// kept), and one in a request refuses the request.
    #[test]
    fn a_bad_value_drops_the_response_header_and_refuses_the_request() {
        let headers = vec![
            (String::from("x-a"), String::from("1")),
            (
                String::from("x-bad"),
                String::from("long enough value\r\nx-evil: 1"),
            ),
            (String::from("x-b"), String::from("2")),
        ];
        let mut out = Vec::new();
        encode_response_head(&mut out, 200, &headers, Out::Empty, Persist::Default, "D");
        let text = String::from_utf8(out).expect("text");
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\nx-b: 2\r\ndate: D\r\n\r\n"
        );
        let mut wire = Vec::new();
        let r = encode_request(&mut wire, "GET", "/", "h", &headers, "a", b"", true);
        assert_eq!(r, Err("a header value holds a control character"));
    }

    /// Heads parsed into recycled lists come out exactly as into fresh ones: more headers or
    /// fewer than the recycled list had, names lowercased, values not UTF-8 decoded lossily,
    /// long values, request heads and response heads sharing the thread's lists.
    #[test]
    fn recycled_header_lists_parse_like_fresh_ones() {
        let heads: [&[u8]; 5] = [
            b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            b"GET /b HTTP/1.1\r\nHOST: Y\r\n\r\n",
            b"GET /c HTTP/1.1\r\nA: 1\r\nB: \xff\xfe\r\nC: caf\xc3\xa9\r\nD: 4\r\nE: 5\r\n\r\n",
            b"GET /d HTTP/1.1\r\n\r\n",
            b"GET /e HTTP/1.1\r\nX-A: b\r\n\r\n",
        ];
        let fresh: Vec<Vec<(String, String)>> = heads
            .iter()
            .map(|h| {
                let mut buf = BytesMut::from(*h);
                parse_request(&mut buf)
                    .expect("valid")
                    .expect("whole")
                    .headers
            })
            .collect();
        assert_eq!(fresh[1], [(String::from("host"), String::from("Y"))]);
        assert_eq!(fresh[2][1].1, "\u{fffd}\u{fffd}");
        for round in 0..3 {
            for (h, want) in heads.iter().zip(&fresh) {
                let mut buf = BytesMut::from(*h);
                let got = parse_request(&mut buf)
                    .expect("valid")
                    .expect("whole")
                    .headers;
                assert_eq!(&got, want, "round {round}");
                recycle(got);
            }
            // a response head takes a recycled list too
            let mut buf =
                BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: Z\r\n\r\nok"[..]);
            let head = parse_head(&mut buf, false).expect("valid").expect("whole");
            assert_eq!(
                head.headers,
                [
                    (String::from("content-length"), String::from("2")),
                    (String::from("x-up"), String::from("Z"))
                ]
            );
            recycle(head.headers);
        }
    }

    /// A buffer far larger than the socket takes at once goes out whole and in order: the
    /// direct write sends what fits, waiting for room sends the rest.
    #[tokio::test]
    async fn write_fully_sends_what_does_not_fit_at_once() {
        use tokio::io::AsyncReadExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = l.accept().await.expect("accept");
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.expect("read");
            got
        });
        write_fully(&mut server, &data).await.expect("written");
        write_fully(&mut server, b"")
            .await
            .expect("nothing to write");
        drop(server);
        assert!(
            reader.await.expect("joined") == expected,
            "bytes lost or reordered"
        );
    }

    async fn idle_until(idle: &mut Idle, deadline: tokio::time::Instant) {
        std::future::poll_fn(|cx| {
            if idle.passed(deadline, cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    async fn idle_passed_now(idle: &mut Idle, deadline: tokio::time::Instant) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(idle.passed(deadline, cx))).await
    }

    /// The connection's one timer serves deadlines in any order: one later than the armed
    /// moment fires only at its own time, one earlier fires at its own time too.
    #[tokio::test(start_paused = true)]
    async fn the_idle_timer_honours_earlier_and_later_deadlines() {
        use tokio::time::{Duration, Instant};
        let mut idle = Idle::default();
        let t0 = Instant::now();
        // armed for 10 s, then waited on for 60 s: fires at 10 s, re-armed, done at 60 s
        assert!(!idle_passed_now(&mut idle, t0 + Duration::from_secs(10)).await);
        idle_until(&mut idle, t0 + Duration::from_secs(60)).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
        // armed for 30 s from now, then waited on for 1 s: done at 1 s
        let t1 = Instant::now();
        assert!(!idle_passed_now(&mut idle, t1 + Duration::from_secs(30)).await);
        idle_until(&mut idle, t1 + Duration::from_secs(1)).await;
        assert_eq!(t1.elapsed(), Duration::from_secs(1));
    }

    fn encode(method: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<String, Error> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        let mut out = Vec::new();
        encode_request(
            &mut out,
            method,
            "/a?b=1",
            "example.com:8080",
            &headers,
            "agent/1",
            body,
            true,
        )?;
        Ok(String::from_utf8(out).expect("ascii"))
    }

    #[test]
    fn requests_carry_host_agent_and_our_own_framing() {
        assert_eq!(
            encode("GET", &[("accept", "*/*")], b"").expect("valid"),
            "GET /a?b=1 HTTP/1.1\r\naccept: */*\r\nhost: example.com:8080\r\nuser-agent: agent/1\r\n\r\n"
        );
        // an empty POST says so (411 otherwise); a caller's framing never goes through
        assert_eq!(
            encode("POST", &[("content-length", "99"), ("transfer-encoding", "chunked")], b"")
                .expect("valid"),
            "POST /a?b=1 HTTP/1.1\r\nhost: example.com:8080\r\nuser-agent: agent/1\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(
            encode("PUT", &[("host", "h"), ("user-agent", "mine")], b"xyz").expect("valid"),
            "PUT /a?b=1 HTTP/1.1\r\nhost: h\r\nuser-agent: mine\r\ncontent-length: 3\r\n\r\nxyz"
        );
        let mut head_only = Vec::new();
        encode_request(&mut head_only, "POST", "/", "h", &[], "a", b"big", false).expect("valid");
        assert!(head_only.ends_with(b"content-length: 3\r\n\r\n"));
    }

    #[test]
    fn nothing_that_would_split_the_head_is_sent() {
        for bad in [
            &[("x", "a\r\nevil: 1")][..],
            &[("x", "a\nb")],
            &[("x", "nul\0")],
            &[("bad name", "v")],
            &[("", "v")],
            &[("x:y", "v")],
        ] {
            assert!(encode("GET", bad, b"").is_err(), "{bad:?}");
        }
        assert!(encode("GET", &[("x", "tab\tand ünïcode")], b"").is_ok());
        let mut out = Vec::new();
        for path in ["/a b", "/a\r\n", "x", "/\u{e9}"] {
            assert!(
                encode_request(&mut out, "GET", path, "h", &[], "a", b"", true).is_err(),
                "{path:?}"
            );
        }
        assert!(encode_request(&mut out, "GET", "/", "h st", &[], "a", b"", true).is_err());
    }

    fn parse(bytes: &[u8], head_request: bool) -> Result<Option<(Head, usize)>, Error> {
        let mut buf = BytesMut::from(bytes);
        Ok(parse_head(&mut buf, head_request)?.map(|h| (h, buf.len())))
    }

    #[test]
    fn heads_are_parsed_with_their_framing() {
        let (h, left) = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: \xff\r\n\r\nok",
            false,
        )
        .expect("valid")
        .expect("complete");
        assert_eq!(h.status, 200);
        assert_eq!(
            h.headers,
            vec![
                (String::from("content-length"), String::from("2")),
                (String::from("x-a"), String::from("\u{fffd}")),
            ]
        );
        assert_eq!((h.body, h.keep_alive, left), (Decoder::Length(2), true, 2));

        let cases: [(&[u8], bool, Decoder, bool); 9] = [
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false,
                Decoder::Chunked(Chunk::Size),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false,
                Decoder::Close,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                false,
                Decoder::Chunked(Chunk::Size),
                false,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, Decoder::Close, false),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nConnection: close\r\n\r\n",
                false,
                Decoder::Length(7),
                false,
            ),
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
                false,
                Decoder::Length(0),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",
                true,
                Decoder::Length(0),
                true,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                false,
                Decoder::Length(1),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: Keep-Alive\r\n\r\n",
                false,
                Decoder::Length(1),
                true,
            ),
        ];
        for (bytes, head, body, keep) in cases {
            let (h, _) = parse(bytes, head).expect("valid").expect("complete");
            assert_eq!(
                (h.body, h.keep_alive),
                (body, keep),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn interim_heads_are_skipped_and_partial_heads_wait() {
        let all = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let (h, left) = parse(all, false).expect("valid").expect("complete");
        assert_eq!((h.status, h.body, left), (201, Decoder::Length(0), 0));
        for cut in 0..all.len() {
            assert!(
                parse(&all[..cut], false).expect("valid so far").is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn heads_the_proxy_cannot_relay_are_refused() {
        for bad in [
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(
                parse(bad, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse(&many, false).err(),
            Some("more than 128 response headers")
        );
    }

    /// Decodes `wire` fed in pieces of `step` bytes; the body and what is left after it.
    fn decode_in_steps(
        mut d: Decoder,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            while let Some(b) = d.decode(&mut buf)? {
                assert!(!b.is_empty(), "no empty frames");
                body.extend_from_slice(&b);
            }
            if d.is_done() {
                buf.extend_from_slice(&wire[fed..]);
                return Ok((body, buf.to_vec()));
            }
            if fed == wire.len() {
                d.eof()?;
                return Ok((body, buf.to_vec()));
            }
            let end = (fed + step).min(wire.len());
            buf.extend_from_slice(&wire[fed..end]);
            fed = end;
        }
    }

    #[test]
    fn bodies_decode_whatever_the_reads_and_stop_at_their_end() {
        let chunked: &[u8] =
            b"5;ext=1\r\nhello\r\n1\r\n \r\nB\r\nworld, once\r\n0\r\nx-trailer: t\r\n\r\nNEXT";
        for step in 1..=chunked.len() {
            let (body, rest) =
                decode_in_steps(Decoder::Chunked(Chunk::Size), chunked, step).expect("valid");
            assert_eq!(
                (&body[..], &rest[..]),
                (&b"hello world, once"[..], &b"NEXT"[..]),
                "step {step}"
            );
            let (body, rest) =
                decode_in_steps(Decoder::Length(5), b"abcdeNEXT", step).expect("valid");
            assert_eq!(
                (&body[..], &rest[..]),
                (&b"abcde"[..], &b"NEXT"[..]),
                "step {step}"
            );
        }
        let (body, _) = decode_in_steps(Decoder::Close, b"until the end", 4).expect("valid");
        assert_eq!(&body[..], b"until the end");
        assert!(decode_in_steps(Decoder::Chunked(Chunk::Size), b"0\r\n\n", 1).is_ok());
    }

    #[test]
    fn broken_bodies_are_errors_not_truncations() {
        for (d, wire) in [
            (Decoder::Length(10), &b"short"[..]),
            (Decoder::Chunked(Chunk::Size), b"5\r\nhello\r\n"),
            (Decoder::Chunked(Chunk::Size), b"zz\r\n"),
            (Decoder::Chunked(Chunk::Size), b"2\r\nhello\r\n0\r\n\r\n"),
            (Decoder::Chunked(Chunk::Size), b"ffffffffffffffffff\r\n"),
        ] {
            assert!(
                decode_in_steps(d, wire, 3).is_err(),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        let mut endless = b"1;ext=".to_vec();
        endless.resize(MAX_CHUNK_META + 10, b'x');
        assert_eq!(
            decode_in_steps(Decoder::Chunked(Chunk::Size), &endless, 512).err(),
            Some("a chunk-size line is too long")
        );
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..1000 {
            trailers.extend_from_slice(b"x-t: vvvvvvvvvv\r\n");
        }
        assert_eq!(
            decode_in_steps(Decoder::Chunked(Chunk::Size), &trailers, 100).err(),
            Some("the trailer section is too long")
        );
    }

    #[test]
    fn decimals_are_written_whole() {
        let edges = [
            0,
            7,
            9,
            10,
            11,
            99,
            100,
            101,
            204,
            999,
            1000,
            65_535,
            u64::MAX,
        ];
        for n in (0..=2000).chain(edges) {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn request_heads_are_parsed_in_place_and_consumed() {
        let mut buf = BytesMut::from(
            &b"\r\nGET /a?b HTTP/1.1\r\nHost: x\r\nX-V: \xff\r\n\r\nGET /next HTTP/1.0\r\n\r\n"[..],
        );
        let h = parse_request(&mut buf).expect("valid").expect("complete");
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.http10),
            ("GET", "/a?b", false)
        );
        assert_eq!(
            h.headers,
            vec![
                (String::from("host"), String::from("x")),
                (String::from("x-v"), String::from("\u{fffd}"))
            ]
        );
        let h = parse_request(&mut buf).expect("valid").expect("pipelined");
        assert_eq!((h.target.as_str(), h.http10, buf.len()), ("/next", true, 0));
        let whole = b"POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert!(
                parse_request(&mut part).expect("valid so far").is_none(),
                "cut {cut}"
            );
            assert_eq!(part.len(), cut, "nothing consumed");
        }
    }

    #[test]
    fn request_heads_that_are_not_http_are_refused() {
        for bad in [
            &b"GET /x HTTP/2.0\r\n\r\n"[..],
            b"GET /x HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GET /x HTTP/1.1\r\nX : a\r\n\r\n",
            b"GET /x HTTP/1.1\r\nX: a\0b\r\n\r\n",
            b"GET /x y HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            let r = parse_request(&mut BytesMut::from(bad));
            assert!(
                matches!(r, Err(HeadError::Invalid(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_REQUEST_HEADERS {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_request(&mut BytesMut::from(&many[..])).err(),
            Some(HeadError::TooMany)
        );
    }

    #[test]
    fn response_heads_carry_our_framing_and_nothing_unsendable() {
        let headers: Vec<(String, String)> = [
            ("content-type", "text/plain"),
            ("content-length", "999"),
            ("transfer-encoding", "chunked"),
            ("connection", "keep-alive"),
            ("x-bad", "a\r\nx-injected: 1"),
            ("bad name", "v"),
            ("x-ok", "v"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
        .collect();
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            200,
            &headers,
            Out::Length(2),
            Persist::Default,
            "D",
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-ok: v\r\ndate: D\r\ncontent-length: 2\r\n\r\n"
        );
        out.clear();
        encode_response_head(
            &mut out,
            502,
            &headers[..2],
            Out::Chunked,
            Persist::Close,
            "D",
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ndate: D\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        // a HEAD answer keeps the length of the body it does not carry; a given date stays
        out.clear();
        let given = [
            (String::from("content-length"), String::from("5")),
            (String::from("date"), String::from("mine")),
        ];
        encode_response_head(&mut out, 204, &given, Out::Empty, Persist::Default, "D");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 204 No Content\r\ndate: mine\r\n\r\n",
            "a 204 states no length"
        );
        out.clear();
        encode_response_head(&mut out, 299, &given, Out::Empty, Persist::KeepAlive, "D");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 299 \r\ncontent-length: 5\r\ndate: mine\r\nconnection: keep-alive\r\n\r\n"
        );
    }
}
