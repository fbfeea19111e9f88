//! The fault run's traffic: the demo's requests sent at a steady rate, as independent users send
//! them, through a balancer that asks each instance's `/ready`; every outcome kept with its time.
//!
//! The demo's driver counts and moves on; here each answer's moment matters (when did the `5xx`
//! start, when did the hit ratio come back), so every outcome is kept. The rate is fixed (an open
//! loop): a stalled Redis does not slow the users down, it builds a queue of requests in flight,
//! as it would in production.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use capstone::api::ANSWERED_BY;
use capstone::health::Health;
use shared::worker::Worker;
use shared_http::{Answer, Request};

use crate::scenario::plan::{Class, Tally, class_of};

/// How often the balancer asks each instance whether it is ready, and the watcher asks for
/// `/health` (each answer is awaited first: a `/health` that waits 500 ms for Redis is asked
/// again 100 ms after it answered).
pub const POLL: Duration = Duration::from_millis(100);
/// A request that takes longer than this is given up and counted as failed: a fault that
/// stalls is counted, never waited out.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One request's outcome, kept small: a soak keeps a hundred thousand of them in the same
/// process as the service whose memory it measures.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// When it was sent, from the run's start.
    pub sent: Duration,
    /// When its answer (or the failure) came, from the run's start: a request sent just before
    /// a fault and still waiting on Redis when it struck fails because of it.
    pub answered: Duration,
    /// What it was.
    pub class: Class,
    /// The request, kept only for a write (the audit needs it), a `5xx`, a request with no
    /// answer and a wrong answer (the report names them).
    pub request: Option<Box<Request>>,
    /// The status, or why there was none (a refused or reset connection, a timeout).
    pub status: Result<StatusCode, &'static str>,
    /// The layer that answered a cached read.
    pub answered_by: Option<&'static str>,
    /// Why the check refused the answer.
    pub wrong: Option<String>,
}

impl Outcome {
    /// A `5xx`.
    pub fn server_error(&self) -> bool {
        matches!(self.status, Ok(status) if status.is_server_error())
    }

    /// In flight at some moment between `from` and `to` (sent before `to`, answered after
    /// `from`).
    pub fn in_flight(&self, from: Duration, to: Duration) -> bool {
        self.sent < to && self.answered >= from
    }

    /// No answer at all.
    pub fn unanswered(&self) -> bool {
        self.status.is_err()
    }

    /// A product or page read answered by a cache layer (`Some(true)`) or by the database
    /// (`Some(false)`); `None` for the other requests.
    pub fn hit(&self) -> Option<bool> {
        let layered = matches!(self.class, Class::Product | Class::Page);
        let by = self.answered_by.filter(|_| layered)?;
        Some(matches!(by, "l1" | "l2" | "l3"))
    }
}

/// A load balancer: round robin over the instances whose `/ready` said yes at the last poll,
/// over all of them when none did.
pub struct Balancer {
    urls: Vec<String>,
    ready: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Balancer {
    /// A balancer over the instances at `urls`, all taken as ready until asked.
    pub fn new(urls: Vec<String>) -> Arc<Self> {
        let ready = urls.iter().map(|_| AtomicBool::new(true)).collect();
        Arc::new(Balancer {
            urls,
            ready,
            next: AtomicUsize::new(0),
        })
    }

    /// The instance the next request goes to.
    fn pick(&self) -> usize {
        let n = self.urls.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.ready[i].load(Ordering::Relaxed))
            .unwrap_or(start % n)
    }

    /// Asks each instance's `/ready` every [`POLL`] until stopped.
    pub fn watch(self: &Arc<Self>, client: reqwest::Client) -> Worker {
        let balancer = self.clone();
        Worker::spawn(
            "the balancer's readiness polls",
            move |mut stop| async move {
                while !stop.is_requested() {
                    // Every instance at once: one that does not answer must not delay the others.
                    let asked: Vec<_> = (balancer.urls.iter())
                        .map(|url| {
                            let asked = client.get(format!("{url}/ready")).timeout(POLL * 5);
                            tokio::spawn(async move {
                                matches!(asked.send().await, Ok(r) if r.status() == StatusCode::OK)
                            })
                        })
                        .collect();
                    for (i, answer) in asked.into_iter().enumerate() {
                        let ready = answer.await.unwrap_or(false);
                        balancer.ready[i].store(ready, Ordering::Relaxed);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.requested() => {}
                    }
                }
            },
        )
    }
}

/// What `/health` of one instance said over the run: each change, with its time.
#[derive(Default)]
pub struct HealthLog(Mutex<Vec<(Duration, String)>>);

impl HealthLog {
    /// Asks `url`'s `/health` every [`POLL`] until stopped, noting each change.
    pub fn watch(self: &Arc<Self>, client: reqwest::Client, url: String, start: Instant) -> Worker {
        let log = self.clone();
        Worker::spawn("the health watcher", move |mut stop| async move {
            while !stop.is_requested() {
                // Noted at the moment it was asked: a "no answer within 500 ms" describes then.
                let asked = start.elapsed();
                let said = say(&client, &url).await;
                log.note(asked, said);
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.requested() => {}
                }
            }
        })
    }

    /// Notes what it said at `at`, if it changed.
    fn note(&self, at: Duration, said: String) {
        let mut changes = self.0.lock().expect("never poisoned");
        if changes.last().is_none_or(|(_, last)| *last != said) {
            changes.push((at, said));
        }
    }

    /// What it said between `from` and `to`, in order (each change once), with when it was
    /// asked, from `from`.
    pub fn between(&self, from: Duration, to: Duration) -> Vec<(Duration, String)> {
        let changes = self.0.lock().expect("never poisoned");
        // What it said at `from` is the last change before it.
        let before = changes.iter().rev().find(|(at, _)| *at <= from);
        let during = changes.iter().filter(|(at, _)| *at > from && *at <= to);
        before
            .into_iter()
            .chain(during)
            .map(|(at, said)| (at.saturating_sub(from), said.clone()))
            .collect()
    }
}

/// `/health`'s answer in a few words: `ok`, `degraded (redis: ...)` (with the status when it
/// is not 200), or why there was none.
async fn say(client: &reqwest::Client, url: &str) -> String {
    let asked = client
        .get(format!("{url}/health"))
        .timeout(POLL * 10)
        .send();
    let Ok(response) = asked.await else {
        return "no answer".to_string();
    };
    let code = match response.status() {
        StatusCode::OK => String::new(),
        other => format!("{} ", other.as_u16()),
    };
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<Health>(&body) {
        Ok(health) if health.status == "ok" => format!("{code}ok"),
        Ok(health) => {
            let mut why = Vec::new();
            if health.redis != "ok" {
                why.push(format!("redis: {}", health.redis));
            }
            if health.database != "ok" {
                why.push(format!("database: {}", health.database));
            }
            format!("{code}{} ({})", health.status, why.join(", "))
        }
        Err(_) => format!("{code}unreadable"),
    }
}

/// What the traffic left: the outcomes kept, and the product and page reads of each second.
#[derive(Default)]
pub struct Driven {
    /// The outcomes kept, in the order sent: every one, or (without `keep_reads`) the writes,
    /// the failures and the wrong answers only.
    pub outcomes: Vec<Outcome>,
    /// For each second from the start, the product and page reads answered by a cache layer,
    /// and all of them.
    pub reads: Vec<(u64, u64)>,
}

impl Driven {
    /// Counts `outcome`, and keeps it if asked to or if the report needs it.
    fn take(&mut self, outcome: Outcome, keep_reads: bool) {
        if let Some(hit) = outcome.hit() {
            let second = outcome.sent.as_secs() as usize;
            if self.reads.len() <= second {
                self.reads.resize(second + 1, (0, 0));
            }
            self.reads[second].0 += u64::from(hit);
            self.reads[second].1 += 1;
        }
        if keep_reads || outcome.request.is_some() {
            self.outcomes.push(outcome);
        }
    }
}

/// Sends `plan` at `rate` requests a second from `start`, through `balancer`, checking each
/// answer with `tally`. Keeps every outcome with `keep_reads` (the fault run's timeline needs
/// them), else only what the audit and the report need (a soak's hundred thousand requests
/// would otherwise be memory the soak's samples count).
#[allow(clippy::too_many_arguments)] // each is one thing the traffic needs; a struct would only rename them
pub async fn drive(
    client: reqwest::Client,
    balancer: Arc<Balancer>,
    plan: Vec<Request>,
    rate: f64,
    start: Instant,
    tally: Arc<Tally>,
    progress: Option<indicatif::ProgressBar>,
    keep_reads: bool,
) -> Driven {
    let mut sending = tokio::task::JoinSet::new();
    let mut driven = Driven::default();
    for (i, request) in plan.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let instance = balancer.pick();
        let url = format!("{}{}", balancer.urls[instance], request.path);
        let (client, tally, progress) = (client.clone(), tally.clone(), progress.clone());
        sending.spawn(async move {
            let outcome = send(&client, &url, request, start, &tally).await;
            if let Some(progress) = progress {
                progress.inc(1);
            }
            outcome
        });
        // Each finished request is taken at once: a finished task left in the set keeps the
        // memory of its future, a few kilobytes a request.
        while let Some(finished) = sending.try_join_next() {
            driven.take(finished.expect("a request's task never panics"), keep_reads);
        }
    }
    while let Some(finished) = sending.join_next().await {
        driven.take(finished.expect("a request's task never panics"), keep_reads);
    }
    driven.outcomes.sort_by_key(|outcome| outcome.sent);
    driven
}

/// One request: sent, its answer read and checked.
async fn send(
    client: &reqwest::Client,
    url: &str,
    request: Request,
    start: Instant,
    tally: &Tally,
) -> Outcome {
    let class = class_of(&request);
    let mut sent = client
        .request(request.method.clone(), url)
        .header(header::AUTHORIZATION, Request::token(request.user))
        .timeout(REQUEST_TIMEOUT);
    if let Some(json) = &request.json {
        sent = sent
            .header(header::CONTENT_TYPE, "application/json")
            .body(json.clone());
    }
    let sent_at = Instant::now();
    let mut outcome = Outcome {
        sent: sent_at - start,
        answered: Duration::ZERO,
        class,
        request: None,
        status: Err(""),
        answered_by: None,
        wrong: None,
    };
    match answer(sent, sent_at, &request, tally).await {
        Ok((status, answered_by, wrong)) => {
            outcome.status = Ok(status);
            outcome.answered_by = answered_by;
            outcome.wrong = wrong;
        }
        Err(error) => outcome.status = Err(transport(&error)),
    }
    outcome.answered = start.elapsed();
    let kept = class == Class::Write || class == Class::View || outcome.wrong.is_some();
    if kept || !matches!(outcome.status, Ok(status) if !status.is_server_error()) {
        outcome.request = Some(Box::new(request));
    }
    outcome
}

/// The answer to `sent`: its status, the layer that answered, and why the check refused it.
async fn answer(
    sent: reqwest::RequestBuilder,
    sent_at: Instant,
    request: &Request,
    tally: &Tally,
) -> Result<(StatusCode, Option<&'static str>, Option<String>), reqwest::Error> {
    let response = sent.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    let layer = headers.get(ANSWERED_BY).and_then(|v| v.to_str().ok());
    let answered_by = LAYERS.into_iter().find(|known| Some(*known) == layer);
    let mut wrong = None;
    if !status.is_server_error() {
        let answer = Answer {
            status,
            headers: &headers,
            body: &body,
            sent: sent_at,
        };
        wrong = tally.check(request, &answer).err();
    }
    Ok((status, answered_by, wrong))
}

/// The layers a read may be answered by (`x-answered-by`).
const LAYERS: [&str; 5] = ["l1", "l2", "l3", "database", "fail-safe"];

/// A transport error in a few words.
fn transport(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "connection refused"
    } else {
        "connection cut"
    }
}
