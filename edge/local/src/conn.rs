//! The server side of one client connection: HTTP/1.1 (and 1.0) requests read off the socket,
//! handed to [`crate::app::handle`] one at a time, and their answers written back.
//!
//! Our own loop rather than hyper's server connection, because this is the proxy's hot path:
//! the head is parsed in place straight into the name/value pairs core works with, the answer
//! is written from core's pairs (no header map is built either way), and a small answer goes
//! out in one write with its head. What hyper did for us is done here, each tested:
//!
//! - framing is core's decision (`head::check_head`: one `chunked`, or agreeing
//!   `Content-Length` values, never both); `Transfer-Encoding` on HTTP/1.0 is refused;
//! - a head that is not HTTP, too many headers, a head over the read limit (431) and a
//!   declared body over the body limit (413) are answered with problem+json and the connection
//!   is closed: nothing after a refused head is ever read as a request;
//! - the body is read as the app asks for it (bounded by the app's limit); an answer given
//!   before the body was read to its end closes the connection;
//! - `Expect: 100-continue` is answered before the body is read;
//! - keep-alive for HTTP/1.1 unless `Connection: close`, and for HTTP/1.0 when asked with
//!   `Connection: keep-alive` (and the answer's length is known); pipelined requests are served
//!   in order;
//! - the answer's framing is ours: `Content-Length` when its size is known, else chunked
//!   (close-delimited for HTTP/1.0); none for `HEAD`, 204 and 304; `Date` added;
//! - an idle connection waits at most 30 s for its next request head, and closes at once on
//!   shutdown; a request body may go at most 30 s without a byte arriving (one timer per
//!   connection serves both, re-armed only when it fires early); a connection closing with input
//!   unread lingers briefly so that the client reads the answer instead of a reset.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body as _, Frame, SizeHint};
use mosaic_core::head::{check_head, Framing, HeadLimits};
use mosaic_core::http::Headers;
use mosaic_core::problem::{Problem, ProblemKind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::h1::{self, room, BodyStep, Chunk, Decoder, HeadError, Out, Persist, READ_SIZE};
use crate::host::{Body, BoxError, Shared};

/// Longest wait for a request head, the idle time before it included.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a request body may go without a byte arriving.
const BODY_IDLE: Duration = Duration::from_secs(30);
/// Answer bytes gathered before they are written.
const WRITE_CHUNK: usize = 64 * 1024;
/// Longest a closing connection reads (and drops) what the client still sends.
const LINGER: Duration = Duration::from_secs(1);

/// A client connection: the socket, what was read from it but not consumed yet, and the
/// state of the current request's body.
pub struct Conn {
    io: TcpStream,
    buf: BytesMut,
    body: Decoder,
    /// The request body broke (or the socket did): the connection is not reused.
    broken: bool,
    /// The head and body deadlines.
    idle: h1::Idle,
}

impl Conn {
    fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
            body: Decoder::Done,
            broken: false,
            idle: h1::Idle::default(),
        }
    }
}

/// A request as the app sees it: the head as received and a body read on demand.
pub struct Request<'c> {
    /// Method, as sent.
    pub method: String,
    /// Request target, as sent.
    pub target: String,
    /// Headers in order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, read off the connection as it is polled.
    pub body: RequestBody<'c>,
    /// Its framing, as core's `check_head` decided it.
    pub framing: Framing,
}

/// A request body read off its connection as it is polled.
pub struct RequestBody<'c> {
    conn: &'c mut Conn,
}

impl hyper::body::Body for RequestBody<'_> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let conn = &mut *self.conn;
        if conn.broken {
            return Poll::Ready(None);
        }
        match h1::poll_body(&mut conn.body, &mut conn.buf, &mut conn.io, cx) {
            Poll::Pending if conn.idle.stalled(BODY_IDLE, cx) => {
                conn.broken = true;
                Poll::Ready(Some(Err(format!(
                    "no part of the request body arrived for {} s",
                    BODY_IDLE.as_secs()
                )
                .into())))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(BodyStep::Data(data)) => {
                conn.idle.progressed();
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(BodyStep::End { .. }) => Poll::Ready(None),
            Poll::Ready(BodyStep::Failed(e)) => {
                conn.broken = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.body.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.conn
            .body
            .remaining()
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// What the app answers: status, headers (framing and connection-level ones are the
/// connection's) and body. A `Connection: close` header closes the connection after it.
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Body,
}

impl Answer {
    /// Adds `Connection: close`: nothing more is read from the connection after this answer.
    #[must_use]
    pub fn closing(mut self) -> Answer {
        self.headers
            .push((String::from("connection"), String::from("close")));
        self
    }
}

impl From<hyper::Response<Body>> for Answer {
    fn from(r: hyper::Response<Body>) -> Answer {
        let (parts, body) = r.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Answer {
            status: parts.status.as_u16(),
            headers,
            body,
        }
    }
}

/// Calls `f` with the `Date` header's value, formatted once a second per thread.
fn with_date<R>(f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        f(&d.1)
    })
}

/// The head limits core checks, the most a head may take before it is refused, and the body
/// limit, from the server settings.
fn server_limits(s: &mosaic_core::config::RawServer) -> (HeadLimits, usize, u64) {
    let max_head_bytes = usize::try_from(s.max_header_bytes).unwrap_or(usize::MAX);
    (
        HeadLimits {
            max_headers: s.max_headers as usize,
            max_header_bytes: max_head_bytes,
        },
        max_head_bytes.saturating_add(16 << 10).max(8192),
        s.max_body_bytes,
    )
}

/// How waiting for a request head ended.
enum Wait {
    Read(std::io::Result<usize>),
    Stop,
    Timeout,
}

/// What reading a request head gave.
enum Head {
    Got(h1::RequestHead),
    /// The client left, went quiet for too long, or the server is stopping: close quietly.
    Gone,
    Refuse(Problem),
}

/// Serves the requests of one connection until it closes, the client asks to close, a
/// request is refused, or `stop` is cancelled.
pub async fn serve(io: TcpStream, shared: Arc<Shared>, peer_ip: Arc<str>, stop: CancellationToken) {
    let mut conn = Conn::new(io);
    // one wait for the server to stop per connection, not one per request
    let mut stopping = std::pin::pin!(stop.cancelled());
    let mut out: Vec<u8> = Vec::with_capacity(READ_SIZE);
    // how much of a head is read before it is refused: from the configuration of the
    // connection's previous request (of the current one for the first)
    let mut max_head = server_limits(&shared.live().router.config.server).1;
    loop {
        let head = match read_head(&mut conn, max_head, stopping.as_mut()).await {
            Head::Got(h) => h,
            Head::Gone => return,
            Head::Refuse(p) => return refuse(conn, &mut out, &p).await,
        };
        // the generation that serves this request, read once for it
        let live = shared.live();
        let (limits, next_max_head, max_body) = server_limits(&live.router.config.server);
        max_head = next_max_head;
        // the body's framing is core's decision
        let framing = match check_head(&head.headers, &limits) {
            Ok(f) => f,
            Err(p) => return refuse(conn, &mut out, &p).await,
        };
        if head.http10 && framing == Framing::Chunked {
            let p = Problem::new(
                ProblemKind::BadRequest,
                "Transfer-Encoding is not allowed in an HTTP/1.0 request",
            );
            return refuse(conn, &mut out, &p).await;
        }
        if let Framing::Length(n) = framing {
            if n > max_body {
                let p = Problem::new(
                    ProblemKind::PayloadTooLarge,
                    format!("request body of {n} bytes exceeds the limit of {max_body} bytes"),
                );
                return refuse(conn, &mut out, &p).await;
            }
        }
        conn.body = match framing {
            Framing::None => Decoder::Length(0),
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(Chunk::Size),
        };
        conn.broken = false;
        conn.idle.progressed();
        // HTTP/1.1 stays open unless told to close; HTTP/1.0 closes unless asked to stay
        let lists = |token: &str| {
            head.headers
                .header_all("connection")
                .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        let keep_alive = if head.http10 {
            lists("keep-alive")
        } else {
            !lists("close")
        };
        if !head.http10
            && !conn.body.is_done()
            && conn.buf.is_empty()
            && head
                .headers
                .header("expect")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
            && conn
                .io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let head_request = head.method == "HEAD";
        let http10 = head.http10;
        let answer = crate::app::handle(
            &shared,
            live,
            Request {
                method: head.method,
                target: head.target,
                headers: head.headers,
                body: RequestBody { conn: &mut conn },
                framing,
            },
            &peer_ip,
        )
        .await;
        let asked_close = answer.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        });
        // unread input is not a next request: an answer given before the body was read to
        // its end ends the connection
        let unread = !conn.body.is_done() || conn.broken;
        let close = !keep_alive || asked_close || unread || stop.is_cancelled();
        match write_answer(&mut conn.io, &mut out, answer, head_request, http10, close).await {
            Ok(true) => {}
            Ok(false) => return linger(conn).await,
            Err(e) => {
                tracing::debug!(error = %e, "the answer could not be written in full");
                return;
            }
        }
        if out.capacity() > 4 * WRITE_CHUNK {
            out = Vec::with_capacity(READ_SIZE);
        }
    }
}

/// Reads until a whole request head is buffered, the head limit is passed, the client leaves
/// or goes quiet for [`HEAD_TIMEOUT`], or the server stops while the connection is idle.
async fn read_head(
    conn: &mut Conn,
    max_head: usize,
    mut stopping: Pin<&mut WaitForCancellationFuture<'_>>,
) -> Head {
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    loop {
        match h1::parse_request(&mut conn.buf) {
            Ok(Some(h)) => return Head::Got(h),
            Ok(None) => {}
            Err(HeadError::TooMany) => {
                return Head::Refuse(Problem::new(
                    ProblemKind::HeadersTooLarge,
                    format!("more than {} request headers", h1::MAX_REQUEST_HEADERS),
                ))
            }
            Err(HeadError::Invalid(m)) => {
                return Head::Refuse(Problem::new(ProblemKind::BadRequest, m))
            }
        }
        if conn.buf.len() >= max_head {
            return Head::Refuse(Problem::new(
                ProblemKind::HeadersTooLarge,
                format!("the request head is longer than {max_head} bytes"),
            ));
        }
        room(&mut conn.buf);
        let idle = conn.buf.is_empty();
        let waited = poll_fn(|cx| {
            if let Poll::Ready(r) =
                tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf)
            {
                return Poll::Ready(Wait::Read(r));
            }
            if idle && stopping.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wait::Stop);
            }
            if conn.idle.passed(deadline, cx) {
                return Poll::Ready(Wait::Timeout);
            }
            Poll::Pending
        })
        .await;
        match waited {
            Wait::Read(Ok(0) | Err(_)) | Wait::Stop | Wait::Timeout => return Head::Gone,
            Wait::Read(Ok(_)) => {}
        }
    }
}

/// Answers a refused request head and closes the connection.
async fn refuse(mut conn: Conn, out: &mut Vec<u8>, p: &Problem) {
    let id = crate::app::request_id();
    let answer = crate::app::problem_answer(p, &id);
    tracing::debug!(status = p.status(), problem = p.kind.slug(), request_id = %id, "request refused before routing");
    if write_answer(&mut conn.io, out, answer, false, false, true)
        .await
        .is_ok()
    {
        linger(conn).await;
    }
}

/// Closes the connection after an answer: the write side first, then what the client still
/// sends is read and dropped for a moment, so that unread input does not turn the close into
/// a reset that could destroy the answer before the client reads it.
async fn linger(mut conn: Conn) {
    if conn.io.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        let mut drop_buf = [0u8; 4096];
        let mut total = 0usize;
        while total < (1 << 20) {
            match tokio::io::AsyncReadExt::read(&mut conn.io, &mut drop_buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// What the body gave next, or that it is waiting while there is something to write.
enum Next {
    Frame(Option<Result<Frame<Bytes>, BoxError>>),
    Flush,
}

/// Writes an answer; `Ok(true)` when the connection can carry another request.
async fn write_answer(
    io: &mut TcpStream,
    out: &mut Vec<u8>,
    answer: Answer,
    head_request: bool,
    http10: bool,
    close: bool,
) -> std::io::Result<bool> {
    let Answer {
        status,
        headers,
        mut body,
    } = answer;
    let bodiless = head_request || status == 204 || status == 304 || (100..200).contains(&status);
    let framing = if bodiless {
        Out::Empty
    } else {
        match body.size_hint().exact() {
            Some(n) => Out::Length(n),
            None if http10 => Out::Close,
            None => Out::Chunked,
        }
    };
    let close = close || framing == Out::Close;
    let persist = match (close, http10) {
        (true, _) => Persist::Close,
        (false, true) => Persist::KeepAlive,
        (false, false) => Persist::Default,
    };
    out.clear();
    with_date(|date| h1::encode_response_head(out, status, &headers, framing, persist, date));
    // the list's strings serve the next head parsed on this thread
    h1::recycle(headers);
    if bodiless {
        h1::write_fully(io, out).await?;
        return Ok(!close);
    }
    let mut sent: u64 = 0;
    loop {
        let next = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(f) => Poll::Ready(Next::Frame(f)),
            Poll::Pending if out.is_empty() => Poll::Pending,
            Poll::Pending => Poll::Ready(Next::Flush),
        })
        .await;
        match next {
            Next::Flush => {
                h1::write_fully(io, out).await?;
                out.clear();
            }
            Next::Frame(Some(Ok(frame))) => {
                // trailers are hop-by-hop: dropped
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                sent += data.len() as u64;
                if matches!(framing, Out::Length(n) if sent > n) {
                    return Err(std::io::Error::other("the body is longer than it said"));
                }
                if framing == Out::Chunked {
                    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                }
                out.extend_from_slice(&data);
                if framing == Out::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if body.is_end_stream() {
                    // the body knows it is over: no need to poll it once more for its end
                    break;
                }
                if out.len() >= WRITE_CHUNK {
                    h1::write_fully(io, out).await?;
                    out.clear();
                }
            }
            Next::Frame(Some(Err(e))) => {
                // the head is out: all that is left is to cut the body short, visibly
                let _ = h1::write_fully(io, out).await;
                return Err(std::io::Error::other(e));
            }
            Next::Frame(None) => break,
        }
    }
    if matches!(framing, Out::Length(n) if sent != n) {
        let _ = h1::write_fully(io, out).await;
        return Err(std::io::Error::other("the body is shorter than it said"));
    }
    if framing == Out::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    h1::write_fully(io, out).await?;
    out.clear();
    Ok(!close)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};
    use tokio::io::AsyncReadExt;

    /// A connected pair of loopback sockets: (server side, client side).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = l.accept().await.expect("accept");
        (server, client)
    }

    fn conn(io: TcpStream) -> Conn {
        Conn::new(io)
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: Body) -> Answer {
        Answer {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
            body,
        }
    }

    fn full(b: &'static [u8]) -> Body {
        Full::new(Bytes::from_static(b))
            .map_err(|never| match never {})
            .boxed()
    }

    /// A body of unknown length made of `parts`, failing after them when `fail`.
    fn streamed(parts: &[&'static [u8]], fail: bool) -> Body {
        let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        if fail {
            frames.push(Err("upstream broke".into()));
        }
        StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }

    /// Writes `a` and returns what the client read up to the close, without the `date` line.
    async fn written(a: Answer, head: bool, http10: bool, close: bool) -> (String, bool) {
        let (mut server, mut client) = pair().await;
        let mut out = Vec::new();
        let r = write_answer(&mut server, &mut out, a, head, http10, close).await;
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        let text = String::from_utf8_lossy(&got)
            .lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n");
        (text, r.is_ok_and(|keep| keep))
    }

    /// A body that promises `len` bytes, gives `data` in one frame and then says it is over;
    /// polled once more, it fails.
    struct Short {
        len: u64,
        data: Option<Bytes>,
    }

    impl hyper::body::Body for Short {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            // polled again after it said it was over: an error, which the answer would show
            Poll::Ready(Some(
                self.data
                    .take()
                    .map(Frame::data)
                    .ok_or_else(|| "polled after its end".into()),
            ))
        }
        fn is_end_stream(&self) -> bool {
            self.data.is_none()
        }
        fn size_hint(&self) -> hyper::body::SizeHint {
            hyper::body::SizeHint::with_exact(self.len)
        }
    }

    /// A body that says it is over after its last frame is not polled again, and one that
    /// says so short of its promised length fails the answer (the connection closes).
    #[tokio::test]
    async fn a_body_that_ends_itself_is_checked_against_its_length() {
        let short = |len, data: &'static [u8]| {
            BodyExt::boxed(Short {
                len,
                data: Some(Bytes::from_static(data)),
            })
        };
        let (t, keep) = written(answer(200, &[], short(2, b"ab")), false, false, false).await;
        assert_eq!(t, "HTTP/1.1 200 OK\ncontent-length: 2\n\nab");
        assert!(keep);
        let (t, keep) = written(answer(200, &[], short(5, b"ab")), false, false, false).await;
        assert_eq!(t, "HTTP/1.1 200 OK\ncontent-length: 5\n\nab");
        assert!(
            !keep,
            "a body shorter than its length cannot keep the connection"
        );
    }

    #[tokio::test]
    async fn answers_are_framed_by_what_is_known_of_their_body() {
        let (t, keep) = written(
            answer(200, &[("x-a", "1")], full(b"hello")),
            false,
            false,
            false,
        )
        .await;
        assert_eq!(t, "HTTP/1.1 200 OK\nx-a: 1\ncontent-length: 5\n\nhello");
        assert!(keep);
        let (t, keep) = written(
            answer(200, &[], streamed(&[b"ab", b"", b"cde"], false)),
            false,
            false,
            false,
        )
        .await;
        assert_eq!(
            t,
            "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n2\nab\n3\ncde\n0\n"
        );
        assert!(keep);
        // HTTP/1.0 cannot take chunks: the close delimits the body
        let (t, keep) = written(
            answer(200, &[], streamed(&[b"ab"], false)),
            false,
            true,
            false,
        )
        .await;
        assert_eq!(t, "HTTP/1.1 200 OK\nconnection: close\n\nab");
        assert!(!keep);
        // … but a known length keeps an HTTP/1.0 caller's connection when it asked for that
        let (t, keep) = written(answer(200, &[], full(b"ab")), false, true, false).await;
        assert_eq!(
            t,
            "HTTP/1.1 200 OK\ncontent-length: 2\nconnection: keep-alive\n\nab"
        );
        assert!(keep);
        // HEAD and 204 carry no body; HEAD keeps the length the body would have
        let (t, keep) = written(
            answer(200, &[("content-length", "5")], full(b"hello")),
            true,
            false,
            false,
        )
        .await;
        assert_eq!(t, "HTTP/1.1 200 OK\ncontent-length: 5\n");
        assert!(keep);
        let (t, _) = written(answer(204, &[], full(b"")), false, false, true).await;
        assert_eq!(t, "HTTP/1.1 204 No Content\nconnection: close\n");
        // a body that breaks mid-way is cut short where it broke (the chunked framing stays
        // unterminated, so the client sees it incomplete) and ends the connection
        let (t, keep) = written(
            answer(200, &[], streamed(&[b"ab"], true)),
            false,
            false,
            false,
        )
        .await;
        assert_eq!(t, "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n2\nab");
        assert!(!keep);
    }

    #[tokio::test]
    async fn request_bodies_are_read_as_asked_and_what_follows_stays() {
        let (server, mut client) = pair().await;
        let mut c = conn(server);
        c.body = Decoder::Chunked(Chunk::Size);
        client
            .write_all(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let body = RequestBody { conn: &mut c }
            .collect()
            .await
            .expect("a whole body")
            .to_bytes();
        assert_eq!(&body[..], b"abcde");
        assert!(c.body.is_done() && !c.broken);
        let next = h1::parse_request(&mut c.buf)
            .expect("valid")
            .expect("pipelined head");
        assert_eq!(next.target, "/next");
        // cut short: an error, and the connection is not reused
        c.body = Decoder::Length(10);
        client.write_all(b"short").await.expect("write");
        drop(client);
        let r = RequestBody { conn: &mut c }.collect().await;
        assert!(r.is_err());
        assert!(c.broken);
    }

    #[tokio::test]
    async fn heads_are_read_whole_and_refused_past_the_limits() {
        let (server, mut client) = pair().await;
        let mut c = conn(server);
        let stop = CancellationToken::new();
        // a head in pieces
        client.write_all(b"GET /a HT").await.expect("write");
        let reader = tokio::spawn(async move {
            let h = read_head(&mut c, 8192, std::pin::pin!(stop.cancelled())).await;
            (h, c, stop)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        client
            .write_all(b"TP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (h, mut c, stop) = reader.await.expect("joined");
        let mut stopping = std::pin::pin!(stop.cancelled());
        let Head::Got(h) = h else { panic!("a head") };
        assert_eq!(h.target, "/a");
        // over the head limit: 431
        client.write_all(&[b'x'; 300]).await.expect("write");
        let Head::Refuse(p) = read_head(&mut c, 256, stopping.as_mut()).await else {
            panic!("refused")
        };
        assert_eq!(p.status(), 431);
        // not HTTP: 400
        let (server, mut client) = pair().await;
        let mut c = conn(server);
        client
            .write_all(b"\x16\x03\x01 hello\r\n\r\n")
            .await
            .expect("write");
        let Head::Refuse(p) = read_head(&mut c, 8192, stopping.as_mut()).await else {
            panic!("refused")
        };
        assert_eq!(p.status(), 400);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_close_after_the_timeout_or_at_shutdown() {
        let (server, _client) = pair().await;
        let mut c = conn(server);
        let stop = CancellationToken::new();
        let mut stopping = std::pin::pin!(stop.cancelled());
        let started = tokio::time::Instant::now();
        assert!(matches!(
            read_head(&mut c, 8192, stopping.as_mut()).await,
            Head::Gone
        ));
        let waited = started.elapsed();
        assert!(
            waited >= HEAD_TIMEOUT && waited < HEAD_TIMEOUT * 2,
            "{waited:?}"
        );
        // shutdown: an idle connection goes at once
        let (server, _client) = pair().await;
        let mut c = conn(server);
        let started = tokio::time::Instant::now();
        let canceller = stop.clone();
        let t = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            canceller.cancel();
        });
        // the same wait as for the first read: one per connection
        assert!(matches!(
            read_head(&mut c, 8192, stopping.as_mut()).await,
            Head::Gone
        ));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        t.await.expect("joined");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_times_out_and_one_that_keeps_coming_does_not() {
        let (server, mut client) = pair().await;
        let mut c = conn(server);
        // arriving piece by piece, each within the idle limit: read whole
        c.body = Decoder::Length(4);
        let writer = tokio::spawn(async move {
            for b in [b"a", b"b", b"c", b"d"] {
                tokio::time::sleep(BODY_IDLE / 2).await;
                client.write_all(b).await.expect("write");
            }
            client
        });
        let body = RequestBody { conn: &mut c }
            .collect()
            .await
            .expect("a slow but steady body")
            .to_bytes();
        assert_eq!(&body[..], b"abcd");
        let mut client = writer.await.expect("joined");
        // two bytes of ten, then nothing: an error after the idle limit, and no reuse
        c.body = Decoder::Length(10);
        client.write_all(b"xy").await.expect("write");
        let started = tokio::time::Instant::now();
        let r = RequestBody { conn: &mut c }.collect().await;
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("no part of the request body arrived"), "{e}");
        assert!(started.elapsed() >= BODY_IDLE && started.elapsed() < BODY_IDLE * 2);
        assert!(c.broken);
        drop(client);
    }
}
