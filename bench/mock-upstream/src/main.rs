//! The benchmark's mock upstream: `mock-upstream PORT [STATUS] [DELAY_MS]`.
//!
//! Answers every request on 127.0.0.1:PORT with `STATUS` (default 200) and the body `ok`,
//! after `DELAY_MS` (default 0), until killed. Kept apart from the test harness so that the
//! benchmark builds only what it runs.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = u16::try_from(arg(1, 0)).unwrap_or(0);
    let status =
        StatusCode::from_u16(u16::try_from(arg(2, 200)).unwrap_or(200)).unwrap_or(StatusCode::OK);
    let delay = Duration::from_millis(arg(3, 0));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("http://{}", listener.local_addr()?);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(move |_req| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut r = Response::new(Full::new(Bytes::from_static(b"ok")));
                *r.status_mut() = status;
                Ok::<_, Infallible>(r)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
