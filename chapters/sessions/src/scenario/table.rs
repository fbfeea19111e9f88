//! The demo's table, one row per configuration, and the conclusion computed from it.

use serde::Serialize;
use sessions::Sessions;
use shared::metrics::LatencySummary;
use shared::report::{self, Row};

use super::Measured;

/// One configuration's row.
#[derive(Serialize)]
pub struct Line {
    /// Which sessions.
    pub sessions: Sessions,
    /// Requests sent, the attacker's included.
    pub requests: u64,
    /// Logins with a wrong password that got in.
    pub wrong_passwords_accepted: u64,
    /// Planted IDs a victim's login signed in.
    pub fixations: u64,
    /// Replays of a logged-out cookie that an instance accepted.
    pub after_logout: u64,
    /// How long after its logout a cookie was still accepted, at most, in ms.
    pub after_logout_ms: u64,
    /// Requests accepted past the absolute timeout.
    pub past_absolute: u64,
    /// Browsing requests of signed-in victims refused before their absolute timeout.
    pub victims_refused: u64,
    /// Redis reads per request.
    pub reads_per_request: f64,
    /// Redis writes per request.
    pub writes_per_request: f64,
    /// The victims' `GET /me` latency.
    pub latency: LatencySummary,
    /// Transport errors and 5xx answers.
    pub errors: u64,
}

impl Line {
    /// The row of `measured`.
    pub fn new(measured: &Measured) -> Line {
        let tally = &measured.tally;
        let requests = tally.requests.max(1) as f64;
        Line {
            sessions: measured.sessions,
            requests: tally.requests,
            wrong_passwords_accepted: tally.wrong_passwords_accepted,
            fixations: tally.fixations,
            after_logout: tally.after_logout,
            after_logout_ms: tally.after_logout_for.as_millis() as u64,
            past_absolute: tally.past_absolute,
            victims_refused: tally.victims_refused,
            reads_per_request: measured.redis.0 as f64 / requests,
            writes_per_request: measured.redis.1 as f64 / requests,
            latency: tally.browsing.summary(),
            errors: tally.errors,
        }
    }
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "sessions",
            "bad passwords in",
            "fixations",
            "after logout",
            "for up to",
            "past the limit",
            "victims refused",
            "reads/req",
            "writes/req",
            "p50",
            "p99",
            "errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.sessions.label().to_owned(),
            report::count(self.wrong_passwords_accepted),
            report::count(self.fixations),
            report::count(self.after_logout),
            if self.after_logout == 0 {
                "–".into()
            } else {
                format!("{} ms", report::count(self.after_logout_ms))
            },
            report::count(self.past_absolute),
            report::count(self.victims_refused),
            format!("{:.2}", self.reads_per_request),
            format!("{:.2}", self.writes_per_request),
            report::micros(self.latency.p50_us),
            report::micros(self.latency.p99_us),
            report::count(self.errors),
        ]
    }
}

/// Sentences computed from the rows: the lesson's zeros (or not), the source's failures, and the
/// writes the threshold saves.
pub fn conclude(lines: &[Line], users: i64) -> String {
    let find = |sessions| lines.iter().find(|l| l.sessions == sessions);
    let (Some(source), Some(every), Some(lesson)) = (
        find(Sessions::Source),
        find(Sessions::EveryRequest),
        find(Sessions::Lesson),
    ) else {
        return String::new();
    };
    let broken = |line: &Line| {
        line.wrong_passwords_accepted + line.fixations + line.after_logout + line.past_absolute
    };
    // Redis trouble fails requests (sessions fail closed): say so before the figures.
    let (errors, requests) = lines
        .iter()
        .fold((0, 0), |(e, r), line| (e + line.errors, r + line.requests));
    let share = errors as f64 / requests.max(1) as f64;
    let mut said = if share > report::DISTURBED_ABOVE {
        format!(
            "Redis failed {} requests, {} of them: without Redis there is no session, so they were \
             refused with a 503, and the figures above compare less than they seem. Fix Redis \
             (see the errors above) and run again. ",
            report::count(errors),
            report::percent(share)
        )
    } else {
        String::new()
    };
    said += &if broken(lesson) + broken(every) == 0 {
        "The lesson's sessions let no wrong password in, signed in no planted ID, and refused \
         every replay after a logout and past the absolute limit, on all three instances. "
            .to_owned()
    } else {
        format!(
            "The lesson's sessions broke a rule {} times (see the table): that is a bug. ",
            report::count(broken(lesson) + broken(every))
        )
    };
    said += &format!(
        "The source's let {} of {users} wrong passwords in, signed in {} of {users} planted IDs, \
         accepted {} replays of logged-out cookies (up to {} ms after the logout, on the instances \
         whose own copy the logout did not reach) and {} requests past the absolute limit, and \
         refused {} requests of signed-in victims (an instance's stale copy). ",
        report::count(source.wrong_passwords_accepted),
        report::count(source.fixations),
        report::count(source.after_logout),
        report::count(source.after_logout_ms),
        report::count(source.past_absolute),
        report::count(source.victims_refused),
    );
    if every.writes_per_request > lesson.writes_per_request {
        said += &format!(
            "Pushing the deadline out only past the threshold took Redis writes from {:.2} to \
             {:.2} per request ({:.1}x fewer), for one read per request either way.",
            every.writes_per_request,
            lesson.writes_per_request,
            every.writes_per_request / lesson.writes_per_request.max(1e-9),
        );
    } else {
        said += "The threshold saved no writes in this run (see the writes column): with \
                 --refresh-after-ms shorter than --pace-ms, or Redis failing, it has nothing to \
                 save.";
    }
    if errors > 0 {
        said += &format!(
            " {} requests failed (Redis failed, so the sessions were refused with a 503, or a \
             transport error): see the errors column.",
            report::count(errors)
        );
    }
    said
}
