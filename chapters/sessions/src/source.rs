//! The source material's sessions, kept as counter-examples, on the same middleware and store.
//!
//! Each flaw is one line of difference from [`api`](crate::api), so the demo and the tests can
//! show what it costs:
//!
//! - the login looks the name up and never checks the password;
//! - it writes the login into the session the browser brought, so the ID does not change: an ID
//!   an attacker obtained and planted becomes a signed-in session (session fixation), and the
//!   previous session lives on;
//! - the expiry only slides (24 hours after the last request, here [`Timeouts::idle`]), with no
//!   absolute limit, and it slides by saving the session on every request: a Redis write per read;
//! - every instance keeps the sessions it has seen in its own memory ([`LocalCopy`], the "L1" of
//!   the source's advanced caching system) in front of Redis, so a logout on one instance leaves
//!   the others accepting the session while their copy lives; and since each request saves the
//!   session again, a copy in steady use never expires at all.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use moka::future::Cache;
use tower_sessions::Session;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::accounts::Accounts;
use crate::api::{self, Failure, Login, Me};
use crate::timeouts::{Clock, SignedIn};

/// An instance's own copy of the sessions it has seen: a moka cache with a time to live.
#[derive(Clone)]
pub struct LocalCopy {
    sessions: Cache<Id, Record>,
}

impl LocalCopy {
    /// Copies that live `ttl` after each write (the source's L1 keeps them an hour).
    pub fn new(ttl: Duration) -> LocalCopy {
        LocalCopy {
            sessions: Cache::builder().time_to_live(ttl).build(),
        }
    }
}

impl fmt::Debug for LocalCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCopy").finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for LocalCopy {
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.sessions.insert(record.id, record.clone()).await;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.sessions.get(id).await)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.sessions.invalidate(id).await;
        Ok(())
    }
}

/// What the source's handlers need.
#[derive(Clone)]
pub struct SourceState {
    /// The accounts, looked up by name only.
    pub accounts: Accounts,
    /// The server's clock.
    pub clock: Clock,
}

/// The source's routes.
pub fn routes(state: SourceState) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/admin", post(admin))
        .route("/logout", post(logout))
        .merge(api::anonymous())
        .with_state(state)
}

/// The key the source's login writes.
const SIGNED_IN: &str = "signed_in";

// ANCHOR: source_login
/// `POST /login`: any password; the login written into the session the browser brought.
async fn login(
    State(state): State<SourceState>,
    session: Session,
    Json(form): Json<Login>,
) -> Result<Json<Me>, Failure> {
    let Some(user) = state.accounts.find(&form.name).await? else {
        return Err(Failure::unauthorized("unknown user"));
    };
    let now = state.clock.now_ms();
    let signed_in = SignedIn {
        user,
        admin: false,
        since_ms: now,
        refreshed_ms: now,
    };
    session.insert(SIGNED_IN, signed_in).await?;
    Ok(Json(api::me_of(signed_in)))
}
// ANCHOR_END: source_login

/// `GET /me`: any session with a login in it (the middleware saves it again afterwards, which is
/// the sliding expiry).
async fn me(session: Session) -> Result<Json<Me>, Failure> {
    match session.get::<SignedIn>(SIGNED_IN).await? {
        Some(signed_in) => Ok(Json(api::me_of(signed_in))),
        None => Err(Failure::unauthorized("sign in first")),
    }
}

/// `POST /admin`: administration granted on the same ID, without the password.
async fn admin(session: Session) -> Result<Json<Me>, Failure> {
    let Some(mut signed_in) = session.get::<SignedIn>(SIGNED_IN).await? else {
        return Err(Failure::unauthorized("sign in first"));
    };
    signed_in.admin = true;
    session.insert(SIGNED_IN, signed_in).await?;
    Ok(Json(api::me_of(signed_in)))
}

/// `POST /logout`: deleted in Redis and in this instance's copy (only this one's).
async fn logout(session: Session) -> Result<StatusCode, Failure> {
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}
