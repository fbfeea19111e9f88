//! The given parts of the exchange-rate exercise: the rate type, the settings, the rates table,
//! Redis (L2) and the backplane channel. Written for you; the tasks are in `lib.rs`. (The worked
//! answer in `solutions/two-tier` includes this very file, so the two can never drift apart.)

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shared::metrics::Counter;
use shared::pubsub::{Event, Subscription};
use shared::worker::Worker;
use shared::{Database, Instance, Namespace, RedisConn, budget, codec};
use sqlx::{Executor, Row};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

use crate::Rates;

/// The currencies of the seed data, each quoted against the euro.
pub const CURRENCIES: [&str; 8] = ["USD", "GBP", "JPY", "CHF", "SEK", "NOK", "PLN", "CZK"];

/// One exchange rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// The currency, e.g. `USD`.
    pub currency: String,
    /// How many millionths of the currency one euro buys (1.08 USD is 1,080,000).
    pub micros_per_euro: i64,
    /// Starts at 1 and rises by one with every committed change.
    pub version: i64,
}

/// Sizes, lifetimes and the Redis time budget.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The most rates one instance keeps in its own memory.
    pub l1_capacity: u64,
    /// How long an instance serves its own copy of a rate.
    pub l1_ttl: Duration,
    /// How long a rate lives in Redis.
    pub l2_ttl: Duration,
    /// The longest any one Redis call may take.
    pub redis_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            l1_capacity: 100,
            l1_ttl: Duration::from_secs(60),
            l2_ttl: Duration::from_secs(600),
            redis_timeout: Duration::from_millis(200),
        }
    }
}

/// Creates the `rates` table and seeds every currency at version 1 (not counted).
pub async fn create_rates(db: &Database) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    setup
        .execute(
            "CREATE TABLE rates (
                currency TEXT PRIMARY KEY,
                micros_per_euro BIGINT NOT NULL,
                version BIGINT NOT NULL
            )",
        )
        .await?;
    for (n, currency) in CURRENCIES.iter().enumerate() {
        sqlx::query("INSERT INTO rates (currency, micros_per_euro, version) VALUES ($1, $2, 1)")
            .bind(currency)
            .bind(1_000_000 + 100_000 * n as i64)
            .execute(&mut *setup)
            .await?;
    }
    setup.commit().await
}

/// A point in a given call that a test may hold shut, so that the race it is about happens every
/// time rather than by chance. Open unless a test holds it; counts the calls that reached it.
#[derive(Default)]
struct Door {
    shut: Arc<RwLock<()>>,
    reached: Counter,
}

impl Door {
    /// Counts this call, then waits while a test holds the door.
    async fn pass(&self) {
        self.reached.inc();
        let _open = self.shut.read().await;
    }

    /// Holds the door until the guard is dropped.
    async fn hold(&self) -> OwnedRwLockWriteGuard<()> {
        self.shut.clone().write_owned().await
    }
}

/// Everything below the L1 of one application instance: the database, Redis and the backplane's
/// channel. Every fetch is counted.
pub struct Source {
    db: Arc<Database>,
    conn: RedisConn,
    namespace: Namespace,
    settings: Settings,
    fetches: Counter,
    after_load: Door,
    before_forget: Door,
    errors: Counter,
}

impl Source {
    /// The source of `instance`, on `db`.
    pub fn new(db: Arc<Database>, instance: &Instance, settings: Settings) -> Self {
        Source {
            db,
            conn: instance.conn.clone(),
            namespace: instance.namespace.clone(),
            settings,
            fetches: Counter::default(),
            after_load: Door::default(),
            before_forget: Door::default(),
            errors: Counter::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `currency`'s rate from Redis, else from the database (then stored in Redis for
    /// `l2_ttl`). Counted in [`fetches`](Self::fetches) as soon as it starts. An unknown currency
    /// is `sqlx::Error::RowNotFound`.
    pub async fn fetch(&self, currency: &str) -> Result<Rate, sqlx::Error> {
        self.fetches.inc();
        let key = self.key(currency);
        let budget = self.settings.redis_timeout;
        let mut conn = self.conn.clone();
        let cached = budget::within(budget, &self.errors, conn.get::<_, Option<Vec<u8>>>(&key));
        if let Some(rate) = cached.await.flatten().and_then(|b| codec::decode(&b).ok()) {
            return Ok(rate);
        }
        let rate = self.load(currency).await?;
        self.after_load.pass().await;
        let bytes = codec::encode(&rate).expect("a rate serializes");
        let ttl = self.settings.l2_ttl.as_secs().max(1);
        let store = conn.set_ex::<_, _, ()>(&key, bytes, ttl);
        budget::within(budget, &self.errors, store).await;
        Ok(rate)
    }

    /// How many fetches were started so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.get()
    }

    /// How many fetches have read their rate from the database so far (counted once read).
    pub fn loads(&self) -> u64 {
        self.after_load.reached.get()
    }

    /// Holds every fetch that read the database, before it stores the rate in Redis and returns
    /// it, until the returned guard is dropped: how a test makes a fetch that read the old rate
    /// return it only after a change (task 3), with no timing to rely on.
    pub async fn hold_fetches(&self) -> OwnedRwLockWriteGuard<()> {
        self.after_load.hold().await
    }

    /// How many calls of [`forget`](Self::forget) have started so far.
    pub fn forgets(&self) -> u64 {
        self.before_forget.reached.get()
    }

    /// Holds every [`forget`](Self::forget) before it sends its `DEL`, until the returned guard
    /// is dropped: how a test reads while a change is between its commit and Redis forgetting.
    pub async fn hold_forgets(&self) -> OwnedRwLockWriteGuard<()> {
        self.before_forget.hold().await
    }

    /// Commits a new rate for `currency` and raises its version; the committed rate, or `None` for
    /// an unknown currency.
    pub async fn commit_rate(
        &self,
        currency: &str,
        micros_per_euro: i64,
    ) -> Result<Option<Rate>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let row = sqlx::query(
            "UPDATE rates SET micros_per_euro = $1, version = version + 1 WHERE currency = $2 \
             RETURNING currency, micros_per_euro, version",
        )
        .bind(micros_per_euro)
        .bind(currency)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| rate_from_row(&row)).transpose()
    }

    /// Deletes `currency`'s rate from Redis. Whether Redis did it.
    pub async fn forget(&self, currency: &str) -> bool {
        self.before_forget.pass().await;
        let mut conn = self.conn.clone();
        let deleted = conn.del::<_, ()>(self.key(currency));
        let budget = self.settings.redis_timeout;
        budget::within(budget, &self.errors, deleted)
            .await
            .is_some()
    }

    /// Publishes `currency` on the backplane channel, for every instance's [`listen`]er.
    /// Whether Redis took it.
    pub async fn publish(&self, currency: &str) -> bool {
        let mut conn = self.conn.clone();
        let published = conn.publish::<_, _, i64>(self.channel(), currency);
        let budget = self.settings.redis_timeout;
        budget::within(budget, &self.errors, published)
            .await
            .is_some()
    }

    /// The backplane's channel, one per run.
    pub fn channel(&self) -> String {
        self.namespace.key("rates:changed")
    }

    /// The Redis key of `currency`'s rate.
    pub fn key(&self, currency: &str) -> String {
        self.namespace.key(&format!("rate:{currency}"))
    }

    async fn load(&self, currency: &str) -> Result<Rate, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let row =
            sqlx::query("SELECT currency, micros_per_euro, version FROM rates WHERE currency = $1")
                .bind(currency)
                .fetch_optional(&mut *conn)
                .await?;
        rate_from_row(&row.ok_or(sqlx::Error::RowNotFound)?)
    }
}

fn rate_from_row(row: &sqlx::any::AnyRow) -> Result<Rate, sqlx::Error> {
    Ok(Rate {
        currency: row.try_get("currency")?,
        micros_per_euro: row.try_get("micros_per_euro")?,
        version: row.try_get("version")?,
    })
}

/// What a [`listen`]er has handed to [`Rates::handle`] so far.
#[derive(Default)]
pub struct Heard {
    /// Messages (a currency each).
    pub messages: Counter,
    /// [`Event::Missed`]: the subscription was lost and made again.
    pub missed: Counter,
}

/// The backplane's listener: subscribes `instance` to `rates`' channel and hands every event to
/// [`Rates::handle`], counting each in the returned [`Heard`] *after* `handle` returned. Keep the
/// [`Worker`] and the [`Subscription`]: dropping either stops the listening.
pub async fn listen(rates: Arc<Rates>, instance: &Instance) -> (Arc<Heard>, Subscription, Worker) {
    let subscription = instance.subscribe(&rates.source().channel()).await;
    let heard = Arc::new(Heard::default());
    let counts = heard.clone();
    let worker = subscription.handle_each("rates listener", move |event| {
        let (rates, counts) = (rates.clone(), counts.clone());
        async move {
            let missed = matches!(event, Event::Missed);
            rates.handle(event).await;
            if missed {
                counts.missed.inc();
            } else {
                counts.messages.inc();
            }
        }
    });
    (heard, subscription, worker)
}

/// The given methods of [`Rates`](crate::Rates). They read the two fields the exercise starts with,
/// `source` and `l1`: keep their names and types (add fields beside them as you need).
impl crate::Rates {
    /// The source below the L1.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Whether L1 holds a copy of `currency` now (for the tests).
    pub fn holds(&self, currency: &str) -> bool {
        self.l1.contains_key(currency)
    }

    /// How many copies L1 holds, once moka has applied its pending evictions (for the tests).
    pub async fn held(&self) -> u64 {
        self.l1.run_pending_tasks().await;
        self.l1.entry_count()
    }
}
