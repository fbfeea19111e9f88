//! Sending requests: a closed loop, a burst, or an open loop at a fixed rate.
//!
//! How requests arrive changes what a measurement means. In a *closed loop* a fixed number of
//! tasks each send their next request when the last one is answered, so a slow server slows the
//! arrivals too: the usual way to measure throughput. A *burst* releases every request at the
//! same instant, the moment a hot key expires. An *open loop* sends request `i` at `i / rate`
//! seconds whether or not the earlier ones were answered, as independent users do: a slow server
//! then builds a queue instead of slowing the traffic. Every demo fires its requests through
//! [`fire`], which times each one and shows a progress bar.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::metrics::{Latency, LatencySummary};

/// How requests arrive.
#[derive(Clone, Copy, Debug)]
pub enum Arrivals {
    /// `concurrency` tasks, each sending its next request once its last one was answered.
    Closed {
        /// How many tasks.
        concurrency: usize,
    },
    /// Every request released at the same instant.
    AllAtOnce,
    /// Request `i` sent at `i / per_sec` seconds, whether or not earlier ones were answered.
    Rate {
        /// Requests per second.
        per_sec: f64,
    },
}

/// Sends requests `0..requests` as `arrivals` says, calling `op` with each one's index and timing
/// it. An `Err` is counted, not timed, and the run goes on; the first error's text is kept for the
/// report.
pub async fn fire<F, Fut, E>(
    arrivals: Arrivals,
    requests: u64,
    label: &str,
    progress: bool,
    op: F,
) -> RunStats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    let op = Arc::new(op);
    let bar = progress_bar(label, requests, progress);
    let started = Instant::now();
    // Each task hands back plain samples and one histogram is filled at the end: a histogram per
    // task is ~180 KB to zero, which a burst of a thousand tasks would pay at the very moment
    // it is being measured.
    let mut tasks = Vec::new();
    match arrivals {
        Arrivals::Closed { concurrency } => {
            let next = Arc::new(AtomicU64::new(0));
            for _ in 0..concurrency.max(1) {
                let (op, next, bar) = (op.clone(), next.clone(), bar.clone());
                tasks.push(tokio::spawn(async move {
                    let mut samples = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests {
                            break;
                        }
                        samples.push(Sample::time(op(i)).await);
                        bar.inc(1);
                    }
                    samples
                }));
            }
        }
        Arrivals::AllAtOnce => {
            let barrier = Arc::new(tokio::sync::Barrier::new(requests as usize));
            for i in 0..requests {
                let (op, barrier, bar) = (op.clone(), barrier.clone(), bar.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let sample = Sample::time(op(i)).await;
                    bar.inc(1);
                    vec![sample]
                }));
            }
        }
        Arrivals::Rate { per_sec } => {
            let start = tokio::time::Instant::now();
            for i in 0..requests {
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / per_sec)).await;
                let (op, bar) = (op.clone(), bar.clone());
                tasks.push(tokio::spawn(async move {
                    let sample = Sample::time(op(i)).await;
                    bar.inc(1);
                    vec![sample]
                }));
            }
        }
    }
    let mut histogram = Latency::default();
    let (mut failures, mut first_failure) = (0, None);
    for task in tasks {
        for sample in task.await.expect("a request task panicked") {
            match sample.error {
                // A failure is counted, not timed: a refusal that came back fast would flatter
                // the percentiles of the requests that were answered.
                Some(error) => {
                    failures += 1;
                    first_failure.get_or_insert(error);
                }
                None => histogram.record(sample.elapsed),
            }
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    RunStats {
        requests,
        elapsed_s: elapsed.as_secs_f64(),
        requests_per_sec: requests as f64 / elapsed.as_secs_f64(),
        latency: histogram.summary(),
        failures,
        first_failure,
        histogram,
    }
}

/// The progress bar every demo shows on stderr while it works: `label`, a bar out of `len`, the
/// rate and the time left. Hidden when `show` is false (e.g. `--format json`) and when stderr is not a
/// terminal.
pub fn progress_bar(label: &str, len: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>22} [{bar:32}] {human_pos}/{human_len} {per_sec:>12} eta {eta}",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What one request measured.
struct Sample {
    elapsed: Duration,
    /// The error's text, if it failed.
    error: Option<String>,
}

impl Sample {
    async fn time<E: Display>(request: impl Future<Output = Result<(), E>>) -> Sample {
        let start = Instant::now();
        let result = request.await;
        Sample {
            elapsed: start.elapsed(),
            error: result.err().map(|e| e.to_string()),
        }
    }
}

/// What one run measured.
#[derive(Clone, Serialize)]
pub struct RunStats {
    /// How many requests were sent.
    pub requests: u64,
    /// From the first request sent to the last answer, in seconds.
    pub elapsed_s: f64,
    /// `requests / elapsed_s`.
    pub requests_per_sec: f64,
    /// The latency percentiles of the requests that succeeded (failures are counted apart).
    pub latency: LatencySummary,
    /// Requests that returned an error.
    pub failures: u64,
    /// The first of those errors, as text.
    pub first_failure: Option<String>,
    /// Every successful request's latency, for charts and thresholds.
    #[serde(skip)]
    pub histogram: Latency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_starts_every_request_before_any_finishes() {
        let started = Arc::new(AtomicU64::new(0));
        let seen = started.clone();
        let stats = fire(Arrivals::AllAtOnce, 50, "burst", false, move |_| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                // Every request waits until all 50 have started: only a burst gets past this.
                while seen.load(Ordering::SeqCst) < 50 {
                    tokio::task::yield_now().await;
                }
                Ok::<_, String>(())
            }
        })
        .await;
        assert_eq!((stats.requests, stats.failures), (50, 0));
        assert_eq!(started.load(Ordering::SeqCst), 50);
    }

    #[tokio::test]
    async fn an_open_loop_keeps_its_rate_and_does_not_wait_for_answers() {
        // 20 requests at 200/s: the last is sent at 95 ms, and each takes 50 ms to answer, so
        // several are in flight at once; a closed loop of one task would have one.
        let in_flight = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let (now, peak) = (in_flight.clone(), most.clone());
        let stats = fire(
            Arrivals::Rate { per_sec: 200.0 },
            20,
            "rate",
            false,
            move |i| {
                let (now, peak) = (now.clone(), peak.clone());
                async move {
                    peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    if i == 3 { Err("three") } else { Ok(()) }
                }
            },
        )
        .await;
        assert_eq!(
            (stats.failures, stats.first_failure.as_deref()),
            (1, Some("three"))
        );
        assert!(
            stats.elapsed_s >= 0.095 + 0.05,
            "sent faster than the rate: {} s",
            stats.elapsed_s
        );
        assert!(
            most.load(Ordering::SeqCst) > 1,
            "requests waited for each other's answers"
        );
        assert_eq!(
            (
                stats.histogram.count_at_least(Duration::from_millis(50)),
                stats.latency.count
            ),
            (19, 19),
            "the 19 requests that succeeded are timed; the failed one is counted apart"
        );
    }
}
