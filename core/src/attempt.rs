//! What one upstream attempt ended in: plain values that the engine produces and hosts report,
//! and that the counters label attempts with. Their public path is `engine::{FetchError,
//! AttemptResult}`; they live here, below both, so that the counters need not know the engine.

/// How an attempt failed without a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// Connection refused, DNS or TLS failure: nothing was sent.
    Connect,
    /// The attempt deadline passed.
    Timeout,
    /// The connection broke after the request was (maybe) sent.
    Reset,
    /// The upstream address is private and the provider does not allow it.
    Forbidden,
}

impl FetchError {
    /// Stable name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            FetchError::Connect => "connect",
            FetchError::Timeout => "timeout",
            FetchError::Reset => "reset",
            FetchError::Forbidden => "forbidden-address",
        }
    }
}

/// The result of an attempt, for logs and transcripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// A status.
    Status(u16),
    /// An error.
    Error(FetchError),
}
