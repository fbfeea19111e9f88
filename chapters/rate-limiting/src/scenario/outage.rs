//! The second part: Redis stops answering for a while, under a limiter that fails open to an
//! in-process limit and one that fails closed.
//!
//! It needs a Redis it may pause (`CLIENT PAUSE` holds every client's commands, not only the
//! demo's), so it starts a private server of its own whatever `--redis-url` says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rate_limiting::{Algorithm, DecidedBy, Guarded, Limit, OnRedisDown, RedisLimiter};
use serde::Serialize;
use shared::report::Row;
use shared::{Namespace, RedisServer};
use tokio::time::Instant;

/// The three periods of the part.
const PERIODS: [&str; 3] = ["before", "Redis paused", "after"];

/// One policy in one period.
#[derive(Serialize)]
pub struct OutageLine {
    /// Fail open or closed.
    pub policy: &'static str,
    /// Before, during or after the pause.
    pub period: &'static str,
    /// The steady client's admitted requests, and how many it sent.
    pub steady: (u64, u64),
    /// The same for the client that sends every 5 ms.
    pub hammering: (u64, u64),
    /// Decisions the policy made instead of Redis.
    pub by_fallback: u64,
}

impl Row for OutageLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "policy",
            "period",
            "steady admitted",
            "hammering admitted",
            "decided without Redis",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.policy.to_string(),
            self.period.to_string(),
            format!("{} of {}", self.steady.0, self.steady.1),
            format!("{} of {}", self.hammering.0, self.hammering.1),
            self.by_fallback.to_string(),
        ]
    }
}

/// Counts of one client in one period: admitted, sent, decided by the fallback.
#[derive(Default)]
struct Counts([[AtomicU64; 3]; 3]);

impl Counts {
    fn add(&self, period: usize, allowed: bool, by: DecidedBy) {
        let [admitted, sent, fallback] = &self.0[period];
        sent.fetch_add(1, Ordering::Relaxed);
        admitted.fetch_add(u64::from(allowed), Ordering::Relaxed);
        fallback.fetch_add(u64::from(by == DecidedBy::Fallback), Ordering::Relaxed);
    }

    fn get(&self, period: usize) -> [u64; 3] {
        self.0[period].each_ref().map(|n| n.load(Ordering::Relaxed))
    }
}

/// Runs both policies with Redis paused for `pause` in the middle; `instances` share each limit.
pub async fn run(limit: Limit, instances: u32, pause: Duration) -> anyhow::Result<Vec<OutageLine>> {
    let server = Arc::new(RedisServer::start()?);
    let budget = Duration::from_millis(50);
    let mut lines = Vec::new();
    let mut runs = Vec::new();
    for (policy, name) in [
        (OnRedisDown::FailOpen, "fail open"),
        (OnRedisDown::FailClosed, "fail closed"),
    ] {
        let mut guarded = Vec::new();
        for _ in 0..instances {
            let conn = shared::connection::connect(&server.url()).await?;
            let limiter = RedisLimiter::new(
                Algorithm::TokenBucket,
                limit,
                conn,
                Namespace::new("rate-limiting"),
            );
            guarded.push(Guarded::new(limiter, limit, instances, policy, budget));
        }
        runs.push((name, Arc::new(guarded)));
    }
    let start = Instant::now();
    let period_of = move |at: Instant| ((at - start).as_nanos() / pause.as_nanos()).min(2) as usize;
    let mut tasks = tokio::task::JoinSet::new();
    let mut counts = Vec::new();
    for (name, guarded) in &runs {
        for (client, every) in [
            (
                "steady",
                limit.window.mul_f64(1.0 / (0.8 * limit.requests as f64)),
            ),
            ("hammering", Duration::from_millis(5)),
        ] {
            let (guarded, tally) = (guarded.clone(), Arc::new(Counts::default()));
            counts.push((*name, client, tally.clone()));
            tasks.spawn(async move {
                let mut next = 0;
                let mut at = start;
                while at < start + 3 * pause {
                    tokio::time::sleep_until(at).await;
                    let (decision, by) = guarded[next % guarded.len()].check(client).await;
                    next += 1;
                    tally.add(period_of(at), decision.allowed, by);
                    at = (at + every).max(Instant::now());
                }
            });
        }
    }
    tokio::time::sleep_until(start + pause).await;
    server.pause(pause)?;
    while tasks.join_next().await.is_some() {}

    for (name, _) in &runs {
        let of = |client: &str| {
            counts
                .iter()
                .find(|(n, c, _)| n == name && *c == client)
                .map(|(_, _, t)| t)
                .expect("counted")
        };
        for (period, label) in PERIODS.iter().enumerate() {
            let [steady_admitted, steady_sent, steady_fallback] = of("steady").get(period);
            let [hammer_admitted, hammer_sent, hammer_fallback] = of("hammering").get(period);
            lines.push(OutageLine {
                policy: name,
                period: label,
                steady: (steady_admitted, steady_sent),
                hammering: (hammer_admitted, hammer_sent),
                by_fallback: steady_fallback + hammer_fallback,
            });
        }
    }
    Ok(lines)
}

/// The outage part's conclusion.
pub fn conclude(lines: &[OutageLine]) -> String {
    let during = |policy: &str| {
        lines
            .iter()
            .find(|l| l.policy == policy && l.period == PERIODS[1])
            .expect("row")
    };
    let (open, closed) = (during("fail open"), during("fail closed"));
    let after_fallbacks: u64 = lines
        .iter()
        .filter(|l| l.period == PERIODS[2])
        .map(|l| l.by_fallback)
        .sum();
    format!(
        "While Redis was paused, failing open to each instance's share of the limit served the \
         steady client {} of {} times and the hammering one {} of {}; failing closed served \
         them {} and {}. {}",
        open.steady.0,
        open.steady.1,
        open.hammering.0,
        open.hammering.1,
        closed.steady.0,
        closed.hammering.0,
        if after_fallbacks == 0 {
            "Once it answered again, Redis made every decision.".to_string()
        } else {
            format!(
                "After the pause, {after_fallbacks} decisions were still the fallback's \
                 (requests queued behind the pause)."
            )
        }
    )
}
