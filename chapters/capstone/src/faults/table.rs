//! The fault run's tables: each fault's effect on the traffic, and the writes' audit.

use std::time::Duration;

use serde::Serialize;
use shared::report::{self, Row};

use super::Traffic;
use super::audit::Audit;
use super::drive::Outcome;
use super::schedule::{Fault, Phase};
use crate::scenario::plan::Class;

/// The hit ratio is taken in windows this long.
pub const WINDOW: Duration = Duration::from_millis(500);
/// Recovered: a window's hit ratio is back to this share of the one before the fault.
pub const RECOVERED: f64 = 0.9;

/// One fault's effect.
#[derive(Serialize)]
pub struct FaultRow {
    /// The fault.
    pub fault: &'static str,
    /// How long what failed was away, s.
    pub lasted_s: f64,
    /// Requests in flight at some moment from its start until the next fault: sent meanwhile,
    /// or sent just before and still waiting when it struck.
    pub requests: u64,
    /// `5xx` answers among them, by kind of request.
    pub server_errors: Vec<(String, u64)>,
    /// When the first and the last `5xx` were sent, s from the fault's start (0 for one sent
    /// just before it).
    pub errors_from_to: Option<(f64, f64)>,
    /// Requests with no answer (refused, cut, timed out).
    pub unanswered: u64,
    /// Answers the checks refused.
    pub wrong: u64,
    /// Reads that served a version older than one acknowledged before they were sent, and the
    /// longest time such a version had been out of date, ms.
    pub stale: (u64, u64),
    /// The hit ratio of product and page reads in the steady traffic before the fault, and the
    /// lowest half-second window's from its start.
    pub hit_ratio: (Option<f64>, Option<f64>),
    /// From the moment what failed was back until a window's hit ratio was back to
    /// [`RECOVERED`] of the one before, s (`None`: not before the next fault).
    pub recovered_after_s: Option<f64>,
    /// What each instance's `/health` said meanwhile, and when it was asked, from the fault's
    /// start.
    pub health: Vec<Vec<(Duration, String)>>,
    /// Why the fault was not injected.
    pub skipped: Option<String>,
}

impl FaultRow {
    /// The rows of `phases` from `traffic`.
    pub fn rows(traffic: &Traffic, phases: &[Phase], steady: Duration) -> Vec<FaultRow> {
        phases
            .iter()
            .map(|phase| {
                let within = |o: &&Outcome| o.in_flight(phase.began, phase.until);
                let during: Vec<&Outcome> = traffic.outcomes.iter().filter(within).collect();
                let mut server_errors: Vec<(String, u64)> = Vec::new();
                let mut first_last: Option<(f64, f64)> = None;
                for outcome in during.iter().filter(|o| o.server_error()) {
                    let kind = outcome.class.label().to_string();
                    match server_errors.iter_mut().find(|(k, _)| *k == kind) {
                        Some((_, n)) => *n += 1,
                        None => server_errors.push((kind, 1)),
                    }
                    // One sent just before the fault and failed by it counts from its start.
                    let at = outcome.sent.saturating_sub(phase.began).as_secs_f64();
                    first_last = Some(first_last.map_or((at, at), |(a, b)| (a.min(at), b.max(at))));
                }
                let before = phase.began.saturating_sub(steady)..phase.began;
                let before = hit_ratio(&traffic.outcomes, before.start, before.end);
                let windows = windows(&traffic.outcomes, phase.began, phase.until);
                let lowest = windows
                    .iter()
                    .filter_map(|(_, ratio)| *ratio)
                    .min_by(f64::total_cmp);
                let recovered_after_s = before.and_then(|before| {
                    windows
                        .iter()
                        .filter(|(at, _)| *at >= phase.ended)
                        .find(|(_, ratio)| ratio.is_some_and(|r| r >= RECOVERED * before))
                        .map(|(at, _)| (*at + WINDOW).saturating_sub(phase.ended).as_secs_f64())
                });
                let stale_reads = traffic.tally.stale_reads.lock().expect("never poisoned");
                let stale = stale_reads
                    .iter()
                    .map(|(sent, outdated)| (*sent - traffic.start, *outdated))
                    .filter(|(sent, _)| *sent >= phase.began && *sent < phase.until)
                    .fold((0, 0), |(n, longest), (_, outdated)| {
                        (n + 1, longest.max(outdated.as_millis() as u64))
                    });
                FaultRow {
                    fault: phase.fault.name(),
                    stale,
                    lasted_s: (phase.ended - phase.began).as_secs_f64(),
                    requests: during.len() as u64,
                    server_errors,
                    errors_from_to: first_last,
                    unanswered: during.iter().filter(|o| o.unanswered()).count() as u64,
                    wrong: during.iter().filter(|o| o.wrong.is_some()).count() as u64,
                    hit_ratio: (before, lowest),
                    recovered_after_s,
                    health: traffic
                        .health
                        .iter()
                        .map(|log| log.between(phase.began, phase.until))
                        .collect(),
                    skipped: phase.skipped.clone(),
                }
            })
            .collect()
    }
}

/// The hit ratio of the product and page reads sent between `from` and `to`.
pub fn hit_ratio(outcomes: &[Outcome], from: Duration, to: Duration) -> Option<f64> {
    let reads = outcomes.iter().filter(|o| o.sent >= from && o.sent < to);
    let (hits, all) = reads
        .filter_map(Outcome::hit)
        .fold((0u64, 0u64), |(h, a), hit| (h + hit as u64, a + 1));
    (all > 0).then(|| hits as f64 / all as f64)
}

/// The hit ratio in each [`WINDOW`] from `from` to `to`, with the window's start.
fn windows(outcomes: &[Outcome], from: Duration, to: Duration) -> Vec<(Duration, Option<f64>)> {
    let mut at = from;
    let mut windows = Vec::new();
    while at < to {
        windows.push((at, hit_ratio(outcomes, at, at + WINDOW)));
        at += WINDOW;
    }
    windows
}

fn seconds(s: f64) -> String {
    format!("{s:.1} s")
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".to_string(), report::percent)
}

impl Row for FaultRow {
    fn headers() -> Vec<&'static str> {
        vec![
            "fault",
            "down",
            "requests (and after)",
            "5xx (when)",
            "no answer",
            "wrong",
            "stale (behind by)",
            "hit ratio",
            "hit ratio back",
        ]
    }

    fn cells(&self) -> Vec<String> {
        if self.skipped.is_some() {
            let mut cells = vec![self.fault.to_string(), "skipped".to_string()];
            cells.resize(Self::headers().len(), String::new());
            return cells;
        }
        let errors = match (&self.server_errors[..], self.errors_from_to) {
            ([], _) | (_, None) => "0".to_string(),
            (kinds, Some((from, to))) => {
                let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
                format!("{} ({from:.1}-{to:.1} s)", kinds.join(", "))
            }
        };
        vec![
            self.fault.to_string(),
            seconds(self.lasted_s),
            report::count(self.requests),
            errors,
            report::count(self.unanswered),
            report::count(self.wrong),
            match self.stale {
                (0, _) => "0".to_string(),
                (n, ms) => format!("{n} ({ms} ms)"),
            },
            format!("{} → {}", ratio(self.hit_ratio.0), ratio(self.hit_ratio.1)),
            self.recovered_after_s
                .map_or("not yet".to_string(), |s| format!("within {}", seconds(s))),
        ]
    }
}

/// What each instance's `/health` said during one fault.
#[derive(Serialize)]
pub struct HealthRow {
    /// The fault.
    pub fault: &'static str,
    /// Each instance's answers, in order, each change once, with when it was asked.
    pub said: Vec<Vec<(Duration, String)>>,
}

impl HealthRow {
    /// The rows of the faults injected.
    pub fn rows(faults: &[FaultRow]) -> Vec<HealthRow> {
        let injected = faults.iter().filter(|f| f.skipped.is_none());
        injected
            .map(|f| HealthRow {
                fault: f.fault,
                said: f.health.clone(),
            })
            .collect()
    }
}

impl Row for HealthRow {
    fn headers() -> Vec<&'static str> {
        vec!["fault", "instance 1", "instance 2"]
    }

    fn cells(&self) -> Vec<String> {
        let each: Vec<String> = self
            .said
            .iter()
            .map(|said| {
                let changes: Vec<String> = said
                    .iter()
                    .enumerate()
                    .map(|(i, (at, text))| match i {
                        0 => text.clone(),
                        _ => format!("{text} at {:.1} s", at.as_secs_f64()),
                    })
                    .collect();
                changes.join(" → ")
            })
            .collect();
        let mut cells = vec![self.fault.to_string()];
        for (i, said) in each.iter().enumerate() {
            // Both instances share Redis and the database: most faults read the same twice.
            let same = i > 0 && *said == each[0];
            cells.push(if same {
                "the same".to_string()
            } else {
                said.clone()
            });
        }
        cells.resize(Self::headers().len(), String::new());
        cells
    }
}

impl Row for Audit {
    fn headers() -> Vec<&'static str> {
        vec![
            "writes",
            "acknowledged",
            "unanswered",
            "applied",
            "lost",
            "applied twice",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.kind.to_string(),
            report::count(self.acknowledged),
            report::count(self.unanswered),
            report::count(self.applied),
            report::count(self.lost),
            report::count(self.twice),
        ]
    }
}

/// The failures outside what the chapter allows: a `5xx` for a view or a login while Redis does
/// not answer (the views' queue and the sessions are in Redis), anything while PostgreSQL
/// restarts, and a request left without an answer while an instance is down (those the balancer
/// sent before its next `/ready` poll found the port closed); nothing in steady traffic. A
/// request counts against a fault when it was in flight at any moment of the fault's window:
/// one sent a millisecond before Redis was killed and still waiting on it fails by the fault.
pub fn unexpected_failures(outcomes: &[Outcome], phases: &[Phase]) -> Vec<String> {
    let allowed = |outcome: &Outcome| {
        phases.iter().any(|phase| {
            let inside = outcome.in_flight(phase.began, phase.until);
            inside
                && match phase.fault {
                    Fault::RedisKilled | Fault::RedisPaused => {
                        outcome.server_error()
                            && matches!(outcome.class, Class::View | Class::Login)
                    }
                    Fault::DatabaseRestarted => true,
                    Fault::InstanceKilled => outcome.unanswered(),
                }
        })
    };
    outcomes
        .iter()
        .filter(|o| (o.server_error() || o.unanswered()) && !allowed(o))
        .map(|o| {
            let status = match &o.status {
                Ok(status) => status.as_u16().to_string(),
                Err(why) => why.to_string(),
            };
            let (method, path) = o
                .request
                .as_deref()
                .map_or_else(Default::default, |r| (r.method.to_string(), r.path.clone()));
            format!(
                "{method} {path} sent at {:.2} s, answered at {:.2} s: {status}",
                o.sent.as_secs_f64(),
                o.answered.as_secs_f64()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A view sent at `sent` ms and answered `503` at `answered` ms.
    fn refused_view(sent: u64, answered: u64) -> Outcome {
        Outcome {
            sent: ms(sent),
            answered: ms(answered),
            class: Class::View,
            request: None,
            status: Ok(StatusCode::SERVICE_UNAVAILABLE),
            answered_by: None,
            wrong: None,
        }
    }

    /// The failure CI once met: a view sent a few milliseconds before Redis was killed, waiting
    /// on it when it died, belongs to the fault; one answered before the fault does not.
    #[test]
    fn a_request_in_flight_when_the_fault_strikes_counts_against_it() {
        let killed = Phase {
            fault: Fault::RedisKilled,
            began: ms(3_012),
            ended: ms(5_100),
            until: ms(8_100),
            skipped: None,
        };
        let phases = [killed];
        let in_flight = refused_view(3_010, 3_020);
        assert_eq!(
            unexpected_failures(&[in_flight], &phases),
            Vec::<String>::new(),
            "a view sent at 3.010 s and refused at 3.020 s, while Redis was killed at 3.012 s, \
             was counted as a failure where none belongs: it was in flight when the fault struck"
        );
        let before = refused_view(2_000, 2_010);
        assert_eq!(
            unexpected_failures(&[before], &phases).len(),
            1,
            "a view refused at 2.010 s, before any fault (3.012 s), was allowed: steady traffic \
             must fail nothing"
        );
    }
}
