//! Riding out a Redis restart in the middle of a run.
//!
//! Every lesson's requests already survive Redis going away: a failed cache call falls back to
//! the database and is counted. What a restart used to end was everything else a demo does with
//! Redis: opening another instance's connection, filling keys for a measurement, reading a
//! counter. A restart of a second cannot be told apart from a server gone for good at the moment
//! it happens, so these parts wait for Redis, up to [`COMEBACK_WAIT`], and say so on stderr:
//!
//! - [`awaiting_comeback`] retries a connection that found Redis unreachable;
//! - [`again_after_outage`] runs a measurement again, once Redis is back, when Redis failed it:
//!   its figures come from a run that Redis saw through, and the caller labels them as measured
//!   again.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::connection::RedisConn;
use crate::error::SetupError;
use crate::redact::redact;

/// How long a part of a run that already reached its Redis waits for it to come back: long
/// enough for a restart, short enough that a server gone for good ends the run with its error.
pub const COMEBACK_WAIT: Duration = Duration::from_secs(30);

/// Runs `attempt` (a connection to `url`, made by a part of a run that already reached this
/// Redis) until it stops failing with [`SetupError::RedisUnreachable`] or `COMEBACK_WAIT` has
/// passed, saying once on stderr that it waits. Any other refusal (a password) fails at once, as
/// at the start of a run.
pub async fn awaiting_comeback<T, F, Fut>(url: &str, mut attempt: F) -> Result<T, SetupError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SetupError>>,
{
    let started = Instant::now();
    let mut said = false;
    loop {
        match attempt().await {
            Err(SetupError::RedisUnreachable { cause, .. })
                if started.elapsed() < COMEBACK_WAIT =>
            {
                if !said {
                    eprintln!(
                        "Redis at {} is unreachable ({cause}); waiting up to {} s for it to come \
                         back.",
                        redact(url),
                        COMEBACK_WAIT.as_secs()
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(value) => {
                if said {
                    eprintln!(
                        "Redis is back after {:.1} s; the run goes on.",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(value);
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether `error` says Redis went away (refused, dropped or timed out), as against a command
/// it refused or a failure that is not Redis's.
pub fn is_outage(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(SetupError::RedisUnreachable { .. }) = cause.downcast_ref::<SetupError>() {
            return true;
        }
        cause.downcast_ref::<redis::RedisError>().is_some_and(|e| {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                // Not `is_unrecoverable_error`: it also covers a refused password and a reply
                // that did not parse, which waiting for a comeback would only hide for 30 s.
                || matches!(e.kind(), redis::ErrorKind::ClusterConnectionNotFound)
        })
    })
}

/// Runs `measure`; if Redis went away during it ([`is_outage`]), waits until `conn` (the run's
/// connection to Redis at `url`) answers again and runs it once more. Returns its result and
/// whether it was run again, so the report can say its figures come from a second attempt.
/// `what` names the measurement on stderr.
pub async fn again_after_outage<T, F, Fut>(
    conn: &RedisConn,
    url: &str,
    what: &str,
    mut measure: F,
) -> anyhow::Result<(T, bool)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    match measure().await {
        Ok(value) => Ok((value, false)),
        Err(error) if is_outage(&error) => {
            eprintln!(
                "{what}: Redis failed it ({}); it runs again once Redis is back.",
                error.root_cause()
            );
            // The run's own connection, not a new one: it reconnects on its next command, and
            // the second try must not spend its first command on that.
            awaiting_comeback(url, || async {
                let mut conn = conn.clone();
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map_err(|cause| SetupError::RedisUnreachable {
                        url: redact(url),
                        cause,
                    })
            })
            .await?;
            Ok((measure().await?, true))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_error(kind: redis::ErrorKind) -> anyhow::Error {
        anyhow::Error::new(redis::RedisError::from((kind, "from the test"))).context("a step")
    }

    #[test]
    fn a_refused_password_or_command_is_no_outage_but_a_lost_connection_is() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_outage(&anyhow::Error::new(redis::RedisError::from(io))));
        assert!(!is_outage(&redis_error(
            redis::ErrorKind::AuthenticationFailed
        )));
        assert!(!is_outage(&redis_error(redis::ErrorKind::Parse)));
        assert!(!is_outage(&anyhow::anyhow!("not Redis's")));
    }
}
