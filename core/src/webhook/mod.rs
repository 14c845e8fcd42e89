//! Webhook verification (in progress).
