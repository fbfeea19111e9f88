//! The demo's table, one row per variant, and the conclusion computed from it.

use std::collections::BTreeMap;

use rate_limiting::Limit;
use rate_limiting::measure::{self, Disagreement};
use serde::Serialize;
use shared::metrics::{Latency, LatencySummary};
use shared::report::{self, Row};

use super::Measured;
use super::clients::{Attempt, Client};
use super::spoof::Spoofed;
use super::variant::{Bound, Variant};

/// One variant's row.
#[derive(Serialize)]
pub struct Line {
    /// Which variant.
    pub variant: Variant,
    /// The most requests of one client admitted in any window of the limit's length.
    pub worst_window: usize,
    /// What a limiter of its kind may admit in a window.
    pub bound: Bound,
    /// Against a perfect sliding window on the same requests.
    pub disagreement: Disagreement,
    /// The retrier's admitted requests while it retried at once, and after it slowed down.
    pub retrier_retrying: u64,
    /// The same after it slowed down, and how many it sent then.
    pub retrier_slowed: (u64, u64),
    /// The steady client's refused requests, and how many it sent.
    pub steady_refused: (u64, u64),
    /// Keys with no expiry after the run (`None`: Redis was away when they were counted).
    pub keys_without_ttl: Option<usize>,
    /// The crowd's average key size.
    pub bytes_per_client: Option<f64>,
    /// Decision latency.
    pub latency: LatencySummary,
    /// Requests Redis failed to decide.
    pub errors: u64,
}

impl Line {
    /// The row of what `measured` found under `limit`.
    pub fn new(measured: &Measured, limit: Limit) -> Line {
        let window_us = limit.window.as_micros() as u64;
        let mut by_client: BTreeMap<Client, Vec<&Attempt>> = BTreeMap::new();
        let mut latency = Latency::default();
        for attempt in &measured.attempts {
            by_client.entry(attempt.client).or_default().push(attempt);
            latency.record(attempt.took);
        }
        let mut worst_window = 0;
        let mut disagreement = Disagreement::default();
        for attempts in by_client.values() {
            let admitted: Vec<u64> = attempts
                .iter()
                .filter(|a| a.allowed)
                .map(|a| a.at_us)
                .collect();
            worst_window = worst_window.max(measure::worst_window(&admitted, window_us));
            let decisions: Vec<(u64, bool)> =
                attempts.iter().map(|a| (a.at_us, a.allowed)).collect();
            disagreement += measure::against_exact(&decisions, limit.requests as usize, window_us);
        }
        let of = |client: Client, early: Option<bool>| -> (u64, u64) {
            let sent = by_client.get(&client).map_or(&[][..], Vec::as_slice);
            let sent: Vec<_> = sent
                .iter()
                .filter(|a| early.is_none_or(|e| a.early == e))
                .collect();
            (
                sent.iter().filter(|a| a.allowed).count() as u64,
                sent.len() as u64,
            )
        };
        let (steady_admitted, steady_sent) = of(Client::Steady, None);
        Line {
            variant: measured.variant,
            worst_window,
            bound: measured.variant.bound(limit),
            disagreement,
            retrier_retrying: of(Client::Retrier, Some(true)).0,
            retrier_slowed: of(Client::Retrier, Some(false)),
            steady_refused: (steady_sent - steady_admitted, steady_sent),
            keys_without_ttl: measured.keys_without_ttl,
            bytes_per_client: measured.bytes_per_client,
            latency: latency.summary(),
            errors: measured.errors,
        }
    }
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "limiter",
            "worst window (bound)",
            "vs exact: wrongly refused / admitted",
            "retrier let through: retrying / slowed",
            "steady refused",
            "keys w/o TTL",
            "bytes/client",
            "p50 / p99 µs",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.variant.label().to_string(),
            match self.bound {
                Bound::AtMost(bound) => format!("{} (≤ {bound})", self.worst_window),
                Bound::About(bound) => format!("{} (≈ {bound})", self.worst_window),
                Bound::Broken => format!("{} (none)", self.worst_window),
            },
            format!(
                "{} / {}",
                self.disagreement.refused_wrongly, self.disagreement.admitted_wrongly
            ),
            format!(
                "{} / {} of {}",
                self.retrier_retrying, self.retrier_slowed.0, self.retrier_slowed.1
            ),
            format!("{} of {}", self.steady_refused.0, self.steady_refused.1),
            self.keys_without_ttl.map_or("-".into(), |n| n.to_string()),
            self.bytes_per_client
                .map_or("-".into(), |b| format!("{b:.0}")),
            format!("{:.0} / {:.0}", self.latency.p50_us, self.latency.p99_us),
        ]
    }
}

/// The conclusion, computed from the rows.
pub fn conclude(lines: &[Line], limit: Limit, skew_ms: u64, spoofed: &Spoofed) -> String {
    let line = |v: Variant| {
        lines
            .iter()
            .find(|l| l.variant == v)
            .expect("every variant has a row")
    };
    let requests = limit.requests as usize;
    let window = format!("{} ms", limit.window_ms());
    let times = |l: &Line| format!("{:.1}x", l.worst_window as f64 / requests as f64);
    let mut said = Vec::new();
    let errors: u64 = lines.iter().map(|l| l.errors).sum();
    let decided: u64 = lines.iter().map(|l| l.latency.count).sum();
    if let Some(disturbed) = report::disturbed(errors, decided + errors) {
        said.push(disturbed);
    }

    let fixed = line(Variant::FixedWindow);
    said.push(format!(
        "The fixed window let one client through {} times in one {window} window, {} its limit \
         of {requests}: a burst just before a window's edge and another just after it are in \
         two windows for the counter and in one for the backend.",
        fixed.worst_window,
        times(fixed)
    ));
    let kept: Vec<&str> = [Variant::SlidingLog, Variant::TokenBucket, Variant::Gcra]
        .into_iter()
        .map(line)
        .filter(|l| matches!(l.bound, Bound::AtMost(b) if l.worst_window <= b as usize))
        .map(|l| l.variant.label())
        .collect();
    let log = line(Variant::SlidingLog);
    said.push(format!(
        "Within their bounds: {} (the sliding log at most {} in any window, {} decisions apart \
         from a perfect sliding window; the buckets allow the limit plus a burst of {}).",
        if kept.is_empty() {
            "none".to_string()
        } else {
            kept.join(", ")
        },
        log.worst_window,
        log.disagreement.refused_wrongly + log.disagreement.admitted_wrongly,
        limit.burst
    ));
    let counter = line(Variant::SlidingCounter);
    said.push(format!(
        "The sliding window counter, an estimate that takes the previous window's requests to be \
         spread evenly, let up to {} through in a window ({}), for one small hash per client.",
        counter.worst_window,
        times(counter)
    ));
    let source = line(Variant::SourceLog);
    said.push(format!(
        "The source's log admitted {} in one window ({}): with the second as the member, a \
         second's requests are one entry.",
        source.worst_window,
        times(source)
    ));
    let counts = line(Variant::CountsRefusals);
    said.push(format!(
        "Recording refusals let the retrier through {} times while it retried (the sliding log: \
         {}); each refusal kept its window full.",
        counts.retrier_retrying, log.retrier_retrying
    ));
    let two = line(Variant::TwoCalls);
    said.push(format!(
        "One crash between INCR and EXPIRE left {} key without an expiry, and the steady client \
         refused {} of {} times from then on.",
        two.keys_without_ttl.map_or("a".into(), |n| n.to_string()),
        two.steady_refused.0,
        two.steady_refused.1
    ));
    let local = line(Variant::LocalClocks);
    let bucket = line(Variant::TokenBucket);
    said.push(format!(
        "Fed instance clocks, one {skew_ms} ms ahead, the token bucket admitted up to {} in a \
         window against {} on Redis's clock, and {} requests a perfect window would have refused \
         (against {}).",
        local.worst_window,
        bucket.worst_window,
        local.disagreement.admitted_wrongly,
        bucket.disagreement.admitted_wrongly
    ));
    said.push(format!(
        "A client that wrote a fresh X-Forwarded-For on each of {} requests was let through {} \
         times when the header was believed from anyone, {} when only the service's own proxies \
         were{}.",
        spoofed.sent,
        spoofed.trusting_anyone,
        spoofed.trusted_proxies,
        if spoofed.measured_again {
            " (measured again once Redis was back)"
        } else {
            ""
        }
    ));
    said.join(" ")
}
