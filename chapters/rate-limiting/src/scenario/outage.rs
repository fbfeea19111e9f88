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
    /// Decisions the policy made instead of Redis, and how many of them admitted.
    pub by_policy: (u64, u64),
}

impl Row for OutageLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "policy",
            "period",
            "steady admitted",
            "hammering admitted",
            "decided without Redis (admitted)",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.policy.to_string(),
            self.period.to_string(),
            format!("{} of {}", self.steady.0, self.steady.1),
            format!("{} of {}", self.hammering.0, self.hammering.1),
            format!("{} ({})", self.by_policy.0, self.by_policy.1),
        ]
    }
}

/// One client's counts in each period: sent, admitted, decided by the policy, and admitted by it.
#[derive(Default)]
struct Counts([[AtomicU64; 4]; 3]);

impl Counts {
    fn add(&self, period: usize, allowed: bool, by: DecidedBy) {
        let [sent, admitted, by_policy, admitted_by_policy] = &self.0[period];
        let by_policy_now = by == DecidedBy::Fallback;
        sent.fetch_add(1, Ordering::Relaxed);
        admitted.fetch_add(u64::from(allowed), Ordering::Relaxed);
        by_policy.fetch_add(u64::from(by_policy_now), Ordering::Relaxed);
        admitted_by_policy.fetch_add(u64::from(by_policy_now && allowed), Ordering::Relaxed);
    }

    fn get(&self, period: usize) -> [u64; 4] {
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
            let [
                steady_sent,
                steady_admitted,
                steady_policy,
                steady_policy_admitted,
            ] = of("steady").get(period);
            let [
                hammer_sent,
                hammer_admitted,
                hammer_policy,
                hammer_policy_admitted,
            ] = of("hammering").get(period);
            lines.push(OutageLine {
                policy: name,
                period: label,
                steady: (steady_admitted, steady_sent),
                hammering: (hammer_admitted, hammer_sent),
                by_policy: (
                    steady_policy + hammer_policy,
                    steady_policy_admitted + hammer_policy_admitted,
                ),
            });
        }
    }
    Ok(lines)
}

/// The outage part's conclusion.
pub fn conclude(lines: &[OutageLine]) -> String {
    let by_policy = |policy: &str| -> (u64, u64) {
        lines
            .iter()
            .filter(|l| l.policy == policy)
            .fold((0, 0), |(n, a), l| (n + l.by_policy.0, a + l.by_policy.1))
    };
    let (open, closed) = (by_policy("fail open"), by_policy("fail closed"));
    let after: u64 = lines
        .iter()
        .filter(|l| l.period == PERIODS[2])
        .map(|l| l.by_policy.0)
        .sum();
    format!(
        "While Redis was paused, each request waited out the 50 ms budget and then the policy \
         decided. In all (the pause and its edges, where a request sent before it began or \
         just before it ended could go either way), failing open to each instance's share of \
         the limit admitted {} of the {} requests it decided, failing closed {} of {}. {}",
        open.1,
        open.0,
        closed.1,
        closed.0,
        if after == 0 {
            "After the pause, Redis made every decision.".to_string()
        } else {
            format!(
                "After the pause, {after} decisions were still the policy's (requests queued \
                 behind the pause ran out of budget)."
            )
        }
    )
}
