//! The demo's measurement: every variant at once, on the same instances, under the same clients.
//!
//! - [`variant`]: what is measured, the five and the source's versions;
//! - [`clients`]: the four shapes of traffic;
//! - [`summary`]: the table, and the conclusion drawn from it;
//! - [`spoof`]: a client that picks its own key with `X-Forwarded-For`;
//! - [`outage`]: the second part, Redis paused under a fail-open and a fail-closed limiter.

pub mod chart;
pub mod clients;
pub mod outage;
pub mod spoof;
pub mod summary;
pub mod variant;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rate_limiting::Limit;
use redis::AsyncCommands;
use shared::{Instance, RedisConn, Stage};

use clients::{Attempt, Client, Fleet, Timing};
use variant::{Built, Variant};

/// What the run measured of one variant.
pub struct Measured {
    /// Which variant.
    pub variant: Variant,
    /// Every request that got a decision.
    pub attempts: Vec<Attempt>,
    /// Requests Redis failed to decide.
    pub errors: u64,
    /// The crowd's keys' average size in Redis, right after the run (`MEMORY USAGE`).
    pub bytes_per_client: Option<f64>,
    /// Keys of the variant with no expiry, right after the run (`None`: Redis could not say).
    pub keys_without_ttl: Option<usize>,
}

/// How the run is shaped.
#[derive(Clone, Copy)]
pub struct Settings {
    /// The limit every variant enforces.
    pub limit: Limit,
    /// How many application instances share the limiters.
    pub instances: u32,
    /// How long the clients send.
    pub length: Duration,
    /// How far ahead the first instance's clock runs, for the instance-clock variant.
    pub skew_ms: f64,
    /// How many clients make the crowd.
    pub crowd: u32,
}

/// Runs every variant's clients at once, on `settings.instances` instances of `stage`.
pub async fn run(
    stage: &Stage,
    settings: Settings,
    show_progress: bool,
) -> anyhow::Result<Vec<Measured>> {
    let mut instances = Vec::new();
    for _ in 0..settings.instances {
        instances.push(stage.instance().await?);
    }
    let fleets: Vec<Arc<Fleet>> = Variant::ALL
        .iter()
        .map(|&variant| Arc::new(fleet(variant, &settings, &instances, stage)))
        .collect();
    // The two-call version's crash: the steady client's first counter misses its EXPIRE (on
    // whichever instance creates it; the others' flags are never used).
    let two_calls = &fleets[Variant::ALL
        .iter()
        .position(|v| *v == Variant::TwoCalls)
        .expect("listed")];
    for instance in &two_calls.instances {
        instance.crash_before_expire(&Client::Steady.name());
    }

    let mut conn = stage.conn();
    let timing = Timing {
        start: tokio::time::Instant::now(),
        start_redis_ms: redis_ms(&mut conn).await?,
        length: settings.length,
        limit: settings.limit,
        crowd: settings.crowd,
    };
    let bar = shared::workload::progress_bar(
        "clients sending",
        settings.length.as_millis() as u64,
        show_progress,
    );
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(timing.start.elapsed().as_millis() as u64);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let runs: Vec<_> = fleets
        .iter()
        .map(|fleet| tokio::spawn(clients::run(fleet.clone(), timing)))
        .collect();
    for run in runs {
        run.await?;
    }
    ticker.abort();
    bar.finish_and_clear();

    let mut measured = Vec::new();
    for (variant, fleet) in Variant::ALL.into_iter().zip(fleets) {
        let first = &fleet.instances[0];
        let crowd_keys: Vec<String> = (0..settings.crowd)
            .map(|n| first.key(&Client::Many(n).name()))
            .collect();
        let mut attempts = std::mem::take(&mut *fleet.attempts.lock().expect("attempts lock"));
        attempts.sort_by_key(|a| a.at_us);
        let errors = *fleet.errors.lock().expect("errors lock");
        measured.push(Measured {
            variant,
            attempts,
            errors,
            bytes_per_client: bytes_per_key(&mut conn, &crowd_keys).await,
            keys_without_ttl: keys_without_ttl(&mut conn, stage, variant).await.ok(),
        });
    }
    Ok(measured)
}

/// One variant's limiter on each instance; the first instance's clock is the skewed one.
fn fleet(variant: Variant, settings: &Settings, instances: &[Instance], stage: &Stage) -> Fleet {
    let built = instances
        .iter()
        .enumerate()
        .map(|(i, instance)| {
            let skew = if i == 0 { settings.skew_ms } else { 0.0 };
            Built::new(variant, settings.limit, instance, stage.namespace(), skew)
        })
        .collect();
    Fleet {
        instances: built,
        attempts: Mutex::new(Vec::new()),
        errors: Mutex::new(0),
    }
}

/// Redis's clock, in ms.
async fn redis_ms(conn: &mut RedisConn) -> redis::RedisResult<u64> {
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(seconds * 1000 + micros / 1000)
}

/// The average `MEMORY USAGE` of those of `keys` that still exist.
async fn bytes_per_key(conn: &mut RedisConn, keys: &[String]) -> Option<f64> {
    let mut sizes = Vec::new();
    for key in keys {
        let size: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(conn)
            .await
            .ok()?;
        sizes.extend(size);
    }
    (!sizes.is_empty()).then(|| sizes.iter().sum::<u64>() as f64 / sizes.len() as f64)
}

/// How many of `variant`'s keys have no expiry.
async fn keys_without_ttl(
    conn: &mut RedisConn,
    stage: &Stage,
    variant: Variant,
) -> redis::RedisResult<usize> {
    let mut count = 0;
    for key in stage.namespace().child(variant.slug()).keys(conn).await? {
        let ttl: i64 = conn.pttl(&key).await?;
        count += usize::from(ttl == -1);
    }
    Ok(count)
}
