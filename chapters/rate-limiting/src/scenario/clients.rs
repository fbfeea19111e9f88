//! The clients: four shapes of traffic, every request spread over the instances in turn, as a
//! load balancer spreads them.
//!
//! - steady: evenly spaced, at 80% of the limit: a correct limiter refuses none of it;
//! - edge: a burst of the limit 30 ms before a window's edge and another 5 ms after it, around
//!   every second edge (the window after a burst is left alone, so that the next one starts
//!   empty): what a fixed window lets through twice;
//! - retrier: for the first half of the run it sends again as soon as it is refused (every 2 ms),
//!   then slows to half the limit: is it let through while it retries, and once it slows down?
//! - many: a crowd of distinct clients, a request each every 500 ms: what each one costs in
//!   Redis memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::variant::Built;
use rate_limiting::Limit;

/// Which client sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Client {
    /// Steady, under the limit.
    Steady,
    /// Bursts at the windows' edges.
    Edge,
    /// Retries at once while refused, then slows down.
    Retrier,
    /// One of the crowd.
    Many(u32),
}

impl Client {
    /// The client's name, the key its limit is counted under.
    pub fn name(self) -> String {
        match self {
            Client::Steady => "steady".into(),
            Client::Edge => "edge".into(),
            Client::Retrier => "retrier".into(),
            Client::Many(n) => format!("crowd-{n}"),
        }
    }
}

/// One request and its decision.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    /// Who sent it.
    pub client: Client,
    /// Redis's clock when it was decided, in µs.
    pub at_us: u64,
    /// Whether it was admitted.
    pub allowed: bool,
    /// How long the decision took, as the instance saw it.
    pub took: Duration,
    /// Whether it was sent in the retrier's first half (it hammers) or later.
    pub early: bool,
}

/// What the clients of one variant share: its limiter on each instance, and the record.
pub struct Fleet {
    /// The variant's limiter, one per instance.
    pub instances: Vec<Built>,
    /// Every request's attempt.
    pub attempts: Mutex<Vec<Attempt>>,
    /// Requests Redis failed to decide.
    pub errors: Mutex<u64>,
}

/// The run's timing: when it started (on this process's clock and on Redis's), how long it lasts,
/// and the limit.
#[derive(Clone, Copy)]
pub struct Timing {
    /// The run's start on this process's clock.
    pub start: Instant,
    /// The same moment on Redis's clock, in ms: windows are aligned on it.
    pub start_redis_ms: u64,
    /// How long the clients send.
    pub length: Duration,
    /// The limit every variant enforces.
    pub limit: Limit,
    /// How many clients make the crowd.
    pub crowd: u32,
}

impl Timing {
    /// When Redis's clock reads `redis_ms`, on this process's clock.
    fn at_redis_ms(&self, redis_ms: u64) -> Instant {
        self.start + Duration::from_millis(redis_ms.saturating_sub(self.start_redis_ms))
    }

    fn end(&self) -> Instant {
        self.start + self.length
    }
}

/// Sends every client's requests to `fleet` until the run ends.
pub async fn run(fleet: Arc<Fleet>, timing: Timing) {
    let mut tasks = tokio::task::JoinSet::new();
    for client in [Client::Steady, Client::Edge, Client::Retrier]
        .into_iter()
        .chain((0..timing.crowd).map(Client::Many))
    {
        let fleet = fleet.clone();
        tasks.spawn(async move { drive(client, &fleet, timing).await });
    }
    while tasks.join_next().await.is_some() {}
}

/// One client's requests, as its shape says.
async fn drive(client: Client, fleet: &Fleet, timing: Timing) {
    let limit = timing.limit;
    let mut sender = Sender {
        client,
        fleet,
        next: 0,
        timing,
    };
    match client {
        Client::Steady => {
            let every = limit.window.mul_f64(1.0 / (0.8 * limit.requests as f64));
            let mut at = timing.start;
            while at < timing.end() {
                tokio::time::sleep_until(at).await;
                sender.send().await;
                at += every;
            }
        }
        Client::Edge => {
            let window = limit.window_ms();
            let mut edge = (timing.start_redis_ms / window + 1) * window;
            while timing.at_redis_ms(edge) < timing.end() {
                for at in [edge - 30, edge + 5] {
                    tokio::time::sleep_until(timing.at_redis_ms(at)).await;
                    for _ in 0..limit.requests {
                        sender.send().await;
                    }
                }
                edge += 2 * window;
            }
        }
        Client::Retrier => {
            let half = timing.start + timing.length / 2;
            while Instant::now() < half {
                let allowed = sender.send().await;
                if !allowed {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let every = limit.window.mul_f64(1.0 / (0.5 * limit.requests as f64));
            while Instant::now() < timing.end() {
                sender.send().await;
                tokio::time::sleep(every).await;
            }
        }
        Client::Many(n) => {
            // Spread over the first half second, so the crowd does not arrive as one burst.
            let mut at = timing.start
                + Duration::from_millis(u64::from(n) * 500 / u64::from(timing.crowd.max(1)));
            while at < timing.end() {
                tokio::time::sleep_until(at).await;
                sender.send().await;
                at += Duration::from_millis(500);
            }
        }
    }
}

/// Sends one client's requests to the instances in turn and records each decision.
struct Sender<'a> {
    client: Client,
    fleet: &'a Fleet,
    next: usize,
    timing: Timing,
}

impl Sender<'_> {
    /// One request: whether it was admitted (a request Redis failed is counted, and refused).
    async fn send(&mut self) -> bool {
        let instance = &self.fleet.instances[self.next % self.fleet.instances.len()];
        self.next += 1;
        let early = Instant::now() < self.timing.start + self.timing.length / 2;
        let started = Instant::now();
        match instance.check(&self.client.name()).await {
            Ok(decision) => {
                let attempt = Attempt {
                    client: self.client,
                    at_us: decision.at_us,
                    allowed: decision.allowed,
                    took: started.elapsed(),
                    early,
                };
                self.fleet
                    .attempts
                    .lock()
                    .expect("attempts lock")
                    .push(attempt);
                decision.allowed
            }
            Err(_) => {
                *self.fleet.errors.lock().expect("errors lock") += 1;
                false
            }
        }
    }
}
