//! When Redis is down: a policy, chosen in advance and counted.
//!
//! A limiter in Redis fails with Redis. Then every request needs an answer anyway, and there are
//! only two: let it through (fail open) or refuse it (fail closed). Failing open with no limit at
//! all hands the backend to whoever is hammering it exactly when things are already bad; failing
//! closed turns a Redis outage into an outage of the whole API. The middle way taken here: fail
//! open *to a limit kept in the process*, the `governor` crate's GCRA, each instance allowing its
//! share of the limit (a client's requests are spread over the instances by the load balancer, so
//! the shares add up to about the limit). Every decision says where it came from, so the demo and
//! a dashboard can count the ones Redis did not make.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use shared::metrics::Counter;

use crate::limit::{Decision, Limit};
use crate::limiter::Limiter;

/// What to answer while Redis cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRedisDown {
    /// Refuse every request.
    FailClosed,
    /// Decide in the process, each instance allowing its share of the limit.
    FailOpen,
}

/// Who made a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// The limiter in Redis.
    Redis,
    /// The policy, because Redis failed or was too slow.
    Fallback,
}

/// A Redis limiter with a time budget and a policy for when Redis cannot answer in time.
pub struct Guarded<L> {
    limiter: L,
    policy: OnRedisDown,
    budget: Duration,
    local: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    /// Decisions the policy made.
    pub fallbacks: Counter,
}

impl<L: Limiter> Guarded<L> {
    /// `limiter`, answering within `budget` or by `policy`; `instances` is how many instances
    /// share the limit, so that each keeps its share while Redis is away.
    pub fn new(
        limiter: L,
        limit: Limit,
        instances: u32,
        policy: OnRedisDown,
        budget: Duration,
    ) -> Self {
        let share = limit.requests.div_ceil(instances.max(1)).max(1);
        let quota = Quota::with_period(limit.window / share)
            .expect("a limit's window is longer than zero")
            .allow_burst(NonZeroU32::new(share).expect("at least one request"));
        Guarded {
            limiter,
            policy,
            budget,
            local: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            fallbacks: Counter::default(),
        }
    }

    /// The decision for `client`, and who made it.
    pub async fn check(&self, client: &str) -> (Decision, DecidedBy) {
        let asked = tokio::time::timeout(self.budget, self.limiter.check(client)).await;
        if let Ok(Ok(decision)) = asked {
            return (decision, DecidedBy::Redis);
        }
        self.fallbacks.inc();
        let at_us = shared::clock::now_ms() * 1000;
        let decision = match self.policy {
            OnRedisDown::FailClosed => Decision {
                allowed: false,
                remaining: 0,
                retry_after: self.budget,
                reset_after: self.budget,
                at_us,
            },
            OnRedisDown::FailOpen => match self.local.check_key(&client.to_string()) {
                Ok(()) => Decision {
                    allowed: true,
                    remaining: 0,
                    retry_after: Duration::ZERO,
                    reset_after: Duration::ZERO,
                    at_us,
                },
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    Decision {
                        allowed: false,
                        remaining: 0,
                        retry_after: wait,
                        reset_after: wait,
                        at_us,
                    }
                }
            },
        };
        (decision, DecidedBy::Fallback)
    }
}
