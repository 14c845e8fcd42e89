//! A fast mock upstream for the benchmark: `mock-upstream PORT [STATUS] [DELAY_MS]`.
//!
//! Answers every request with `STATUS` (default 200) and the body `ok` after `DELAY_MS`
//! (default 0), on 127.0.0.1:PORT, until killed.

use std::time::Duration;

use mosaic_tests::mock::{Behaviour, Mock};

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let port = u16::try_from(arg(1, 0)).unwrap_or(0);
    let status = u16::try_from(arg(2, 200)).unwrap_or(200);
    let delay = arg(3, 0);
    let m = Mock::start_on(port, "ok", Behaviour::status(status).delay(delay)).await;
    println!("{}", m.url());
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
