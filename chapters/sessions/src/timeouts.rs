//! Who is signed in, since when, and until when: the timeouts, enforced on the server.
//!
//! A session that slides forever is a stolen cookie that works forever. OWASP's session rules ask
//! for two limits, both checked by the server on every request (a cookie's `Max-Age` is only a
//! request to the browser, which an attacker's client ignores):
//!
//! - an **idle timeout**: the session ends when it has not been used for a while;
//! - an **absolute timeout**: it ends a fixed time after login, however busy it is.
//!
//! Sliding the idle deadline forward on every request is a Redis write on every request. The
//! deadline only has to move when it was last moved a while ago: a session refreshed no more than
//! `refresh_after` ago is read and not written, so a busy session costs one `GET` per request and
//! one `SET` per `refresh_after`, and it ends at most `refresh_after` before a full idle period
//! after its last use.
//!
//! The state lives in the session's record under one key ([`SignedIn`]), written by the store
//! with a TTL that is the earlier of the two deadlines: Redis ends the session even if no request
//! ever comes back to check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{self, Record};
use tower_sessions::{Expiry, Session};

// ANCHOR: timeouts
/// The two limits, and how stale the idle deadline may get before it is pushed out.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// The session ends after this long unused.
    pub idle: Duration,
    /// The session ends this long after login, however it is used.
    pub absolute: Duration,
    /// The idle deadline is pushed out only once more than this has passed since it last was (0:
    /// on every request). A session may so end up to this much sooner than a full idle period
    /// after its last use, never later.
    pub refresh_after: Duration,
}
// ANCHOR_END: timeouts

/// The server's clock in milliseconds since the epoch, which tests can move forward instead of
/// sleeping through a timeout.
#[derive(Clone, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicU64>,
}

impl Clock {
    /// Now, on this clock.
    pub fn now_ms(&self) -> u64 {
        shared::clock::now_ms() + self.ahead_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every server sharing it) `by` forward.
    pub fn advance(&self, by: Duration) {
        self.ahead_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}

/// The record's key under which a signed-in session keeps who and since when.
const SIGNED_IN: &str = "signed_in";

/// A signed-in session's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// The account.
    pub user: i64,
    /// Whether the user has confirmed their password for administration (a privilege change).
    pub admin: bool,
    /// When the user logged in: the absolute timeout counts from here, across rotations.
    pub since_ms: u64,
    /// When the idle deadline was last pushed out.
    pub refreshed_ms: u64,
}

impl SignedIn {
    /// The signed-in state of a stored record (the store uses it to list the session under its
    /// user).
    pub fn of(record: &Record) -> Option<SignedIn> {
        let value = record.data.get(SIGNED_IN)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// When this session ends unless it is refreshed: the earlier of the idle and the absolute
    /// deadlines.
    pub fn deadline_ms(&self, timeouts: &Timeouts) -> u64 {
        let idle = self.refreshed_ms + timeouts.idle.as_millis() as u64;
        let absolute = self.since_ms + timeouts.absolute.as_millis() as u64;
        idle.min(absolute)
    }
}

/// What a request's session says about who sent it.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signed in, within both timeouts.
    SignedIn(SignedIn),
    /// No signed-in session.
    Anonymous,
    /// A session past a timeout: ended now, in Redis too.
    Ended,
}

// ANCHOR: check
/// Checks the request's session against `timeouts` at `now_ms`: ends it if a timeout has passed,
/// and pushes the idle deadline out if more than `refresh_after` has passed since the last time
/// it did (or on every request, with a `refresh_after` of 0).
pub async fn check(
    session: &Session,
    timeouts: &Timeouts,
    now_ms: u64,
) -> Result<Verdict, session::Error> {
    let Some(mut signed_in) = session.get::<SignedIn>(SIGNED_IN).await? else {
        return Ok(Verdict::Anonymous);
    };
    if now_ms >= signed_in.deadline_ms(timeouts) {
        session.flush().await?;
        return Ok(Verdict::Ended);
    }
    let since_refresh = now_ms.saturating_sub(signed_in.refreshed_ms);
    if timeouts.refresh_after.is_zero() || since_refresh > timeouts.refresh_after.as_millis() as u64
    {
        signed_in.refreshed_ms = now_ms;
        store(session, signed_in, timeouts).await?;
    }
    Ok(Verdict::SignedIn(signed_in))
}
// ANCHOR_END: check

// ANCHOR: sign_in
/// Signs `user` in on this session: a new ID first (the one the browser brought may have been
/// planted: session fixation), the old one deleted, then the state with a deadline.
pub async fn sign_in(
    session: &Session,
    user: i64,
    timeouts: &Timeouts,
    now_ms: u64,
) -> Result<SignedIn, session::Error> {
    session.cycle_id().await?;
    let signed_in = SignedIn {
        user,
        admin: false,
        since_ms: now_ms,
        refreshed_ms: now_ms,
    };
    store(session, signed_in, timeouts).await?;
    Ok(signed_in)
}
// ANCHOR_END: sign_in

/// Grants administration to a signed-in session: a privilege change, so a new ID, the old one
/// deleted. The absolute timeout still counts from the login.
pub async fn elevate(
    session: &Session,
    mut signed_in: SignedIn,
    timeouts: &Timeouts,
    now_ms: u64,
) -> Result<SignedIn, session::Error> {
    session.cycle_id().await?;
    signed_in.admin = true;
    signed_in.refreshed_ms = now_ms;
    store(session, signed_in, timeouts).await?;
    Ok(signed_in)
}

/// Puts `signed_in` in the session with its deadline, which the store turns into the key's TTL
/// and tower-sessions into the cookie's `Max-Age`. Every change of a signed-in session goes
/// through here: tower-sessions would otherwise save it with its default expiry.
async fn store(
    session: &Session,
    signed_in: SignedIn,
    timeouts: &Timeouts,
) -> Result<(), session::Error> {
    session.insert(SIGNED_IN, signed_in).await?;
    session.set_expiry(Some(Expiry::AtDateTime(datetime(
        signed_in.deadline_ms(timeouts),
    ))));
    Ok(())
}

/// `ms` since the epoch as tower-sessions' date.
fn datetime(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
