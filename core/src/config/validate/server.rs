//! `[server]` and `[store]`.

use alloc::format;

use crate::config::error::Errs;
use crate::config::model::SecretRef;
use crate::config::raw::{RawServer, RawStore};

/// Checks `[server]`; returns the admin token's reference when set and valid.
pub(super) fn server(s: &RawServer, e: &mut Errs) -> Option<SecretRef> {
    let admin_token = s.admin_token.as_ref().and_then(|t| {
        SecretRef::parse(t)
            .map_err(|m| e.push("server.admin_token", m))
            .ok()
    });
    if let Some(l) = &s.listen {
        if l.rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            e.push(
                "server.listen",
                format!("`{l}` is not an address such as 127.0.0.1:8787"),
            );
        }
    }
    for (key, v) in [
        ("server.max_body_bytes", s.max_body_bytes),
        ("server.max_header_bytes", s.max_header_bytes),
        ("server.max_headers", u64::from(s.max_headers)),
        ("server.max_connections", u64::from(s.max_connections)),
    ] {
        if v == 0 {
            e.push(key, "must be greater than 0");
        }
    }
    if s.ca_file.as_deref().is_some_and(|f| f.trim().is_empty()) {
        e.push(
            "server.ca_file",
            "must be the path of a PEM file of root certificates",
        );
    }
    if s.workers > 1024 {
        e.push(
            "server.workers",
            format!(
                "{} worker threads is too many; use 0 for one per CPU",
                s.workers
            ),
        );
    }
    admin_token
}

/// Checks `[store]`.
pub(super) fn store(s: &RawStore, e: &mut Errs) {
    match s.kind.as_str() {
        "memory" => {}
        "file" => {
            if s.path.is_none() {
                e.push(
                    "store.path",
                    "`file` store needs a path, e.g. \"mosaic.redb\"",
                );
            }
        }
        "redis" => {
            if !s
                .url
                .as_deref()
                .is_some_and(|u| u.starts_with("redis://") || u.starts_with("rediss://"))
            {
                e.push(
                    "store.url",
                    "`redis` store needs a url such as redis://127.0.0.1:6379/0",
                );
            }
        }
        other => e.push(
            "store.kind",
            format!("unknown store kind \"{other}\"; expected one of memory, file, redis"),
        ),
    }
}
