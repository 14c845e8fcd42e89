//! Webhooks on the native host: the outbox scan. Receiving (`POST /hooks/{endpoint}`), the
//! dead-letter admin endpoints and every decision (size limit, signature, replay window,
//! dedup, what to forward, when to retry, what is dead) are the shared application's
//! (`mosaic_providers::app`, `mosaic_providers::hooks`); deliveries run as its jobs in tokio
//! tasks ([`crate::app::spawn_job`]), the store is its key-value namespace
//! ([`crate::host::LocalHost`]).
//!
//! - At start-up and every minute, `due_pending` (60 s grace) finds outbox records whose task
//!   is gone (a restart, a crash) and runs them again.
//! - Hook keys live in the store under `mosaic:` (`mosaic:hooks:seen:…`, `mosaic:hooks:pending:…`,
//!   `mosaic:hooks:dead:…`). With the `memory` store the outbox and the dead letters end with
//!   the process; use `file` or `redis` to keep them.
//!
//! Logs (target `mosaic::hooks`): one JSON line per delivery received and one per delivery
//! outcome, written by the application. Never a secret, a signature, a header or a body; URLs
//! without their query. The one exception is Notion's verification token (target
//! `mosaic::operator`), shown only while the endpoint has no secret configured.

use std::sync::Arc;
use std::time::Duration;

use mosaic_providers::app::Job;
use mosaic_providers::hooks::due_pending;

use crate::host::{wall_now, LocalHost, Shared};

/// How often the outbox is scanned, and how late a pending record must be to be resumed.
const OUTBOX_PERIOD: Duration = Duration::from_secs(60);

/// At start-up and every minute: resumes the outbox records whose task is gone.
pub async fn outbox_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(OUTBOX_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let live = shared.live();
        if live.router.config.webhooks.is_empty() {
            continue;
        }
        let due = {
            let host = LocalHost::new(&shared, &live);
            due_pending(&host, wall_now(), OUTBOX_PERIOD).await
        };
        match due {
            Ok(due) => {
                if !due.is_empty() {
                    tracing::info!(
                        target: "mosaic::hooks",
                        resumed = due.len(),
                        "resuming webhook deliveries from the outbox"
                    );
                }
                for delivery in due {
                    crate::app::spawn_job(
                        &shared,
                        Job::Deliver {
                            delivery,
                            why: "resumed from the outbox",
                        },
                    );
                }
            }
            Err(e) => tracing::warn!(target: "mosaic::hooks", error = %e, "outbox scan failed"),
        }
    }
}
