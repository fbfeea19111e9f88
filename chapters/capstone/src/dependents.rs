//! What a product's creation or deletion owes the caches, and the relay that pays it.
//!
//! The invalidation lesson's outbox records, in the write's transaction, names of what the
//! write made wrong; its relay reads them in order, hands each row to a [`Forget`], and marks the
//! row done only if every name was forgotten (else it tries again, with a backoff, until Redis
//! answers). The lesson's rows name Redis keys. The service's dependents are more than keys, so
//! each name says what it stands for:
//!
//! - `product:{id}`: the product in every instance's L1 and in Redis (the two-tier lesson's
//!   `forget`: drop, delete with the lease, announce on the backplane);
//! - `listing:{group}`: one listing page in the response cache (the HTTP lesson's `invalidate`);
//! - `dashboard`: the analytics dashboard, refreshed now.
//!
//! Each instance runs a relay; two at once are harmless (forgetting twice and marking twice
//! change nothing). Rendered category pages are not named: their staleness is the pages' TTL
//! bound, for a product created or deleted as for a price changed.

use std::sync::Arc;
use std::time::Duration;

use invalidation::outbox::{Forget, Relay};
use shared::Database;
use shared::worker::Worker;

use crate::service::Service;

/// The name of the dashboard in the outbox.
pub const DASHBOARD: &str = "dashboard";

/// The name of product `id` in the outbox.
pub fn product(id: i64) -> String {
    format!("product:{id}")
}

/// The name of the listing page `group` in the outbox.
pub fn listing(group: String) -> String {
    format!("listing:{group}")
}

/// An instance's caches, as the relay sees them.
pub struct Dependents(pub Arc<Service>);

// ANCHOR: forget
impl Forget for Dependents {
    async fn forget(&self, names: &[String]) -> bool {
        let service = &self.0;
        let mut all = true;
        for name in names {
            // Whether it was forgotten, and what it was, for the invalidations' count.
            let (forgotten, what) = match name.split_once(':') {
                Some(("product", id)) => match id.parse() {
                    Ok(id) => (service.products.forget(id).await, Some("product")),
                    Err(_) => (true, None), // not a name this service writes: nothing to forget
                },
                Some(("listing", group)) => match &service.responses {
                    Some(responses) => (responses.invalidate(group).await, Some("listing")),
                    None => (true, None),
                },
                _ if name == DASHBOARD => {
                    // A refresh that cannot be asked for now happens at the dashboard's TTL.
                    service.analytics.changed().await;
                    (true, Some("dashboard"))
                }
                _ => (true, None),
            };
            if let (true, Some(what)) = (forgotten, what) {
                service.telemetry.invalidated(what, 1);
            }
            all &= forgotten;
        }
        all
    }
}
// ANCHOR_END: forget

/// Starts the relay of `service`'s instance on `db`: it polls the outbox every 100 ms (on
/// PostgreSQL a `NOTIFY` wakes it at once), retries what Redis did not take, and stops with the
/// instance. `db` is a handle of the relays' own on the service's database, so that their polls,
/// ten a second whether or not there is work, are counted apart from the queries requests make.
pub fn start_relay(service: &Arc<Service>, db: Arc<Database>) -> Worker {
    let settings = invalidation::Settings {
        relay_poll: Duration::from_millis(100),
        redis_timeout: service.settings.pages.redis_timeout,
        ..invalidation::Settings::default()
    };
    let relay = Relay::with(db, Dependents(service.clone()), settings);
    Arc::new(relay).start()
}
