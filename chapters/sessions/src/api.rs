//! The routes: log in, who am I, administration, log out, log out everywhere, and an anonymous
//! cart (a session before any login, the kind an attacker can obtain and plant).
//!
//! No response ever carries the session ID in its body or a header other than `Set-Cookie`, and
//! nothing logs it: the ID is the user's password for as long as the session lives.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::accounts::Accounts;
use crate::store::RedisStore;
use crate::timeouts::{self, Clock, SignedIn, Timeouts, Verdict};

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The accounts a login checks.
    pub accounts: Accounts,
    /// The sessions' Redis store (for "log out everywhere").
    pub store: RedisStore,
    /// The timeouts.
    pub timeouts: Timeouts,
    /// The server's clock.
    pub clock: Clock,
}

/// A login's form.
#[derive(Serialize, Deserialize)]
pub struct Login {
    /// The account's name.
    pub name: String,
    /// Its password.
    pub password: String,
}

/// A password confirmation, asked before a privilege change.
#[derive(Serialize, Deserialize)]
pub struct Confirm {
    /// The account's password.
    pub password: String,
}

/// Who the session belongs to: `GET /me`'s answer, and a login's.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The account.
    pub user: i64,
    /// Whether the session may administer.
    pub admin: bool,
}

/// "Log out everywhere"'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ended {
    /// The sessions of the user that were still alive and are now gone.
    pub sessions: u64,
}

/// The lesson's routes over `state`.
pub fn routes(state: AppState) -> Router {
    accounts().merge(anonymous()).with_state(state)
}

/// The routes of signing in and out, for a service that has the rest of its routes (the
/// capstone): login, who am I, administration, logout, logout everywhere.
pub fn accounts() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/admin", post(admin))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
}

/// The routes that need no login, shared with the source's version: a cart kept in the session,
/// and a health check that never touches the session (the baseline of what a session costs).
pub fn anonymous<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/cart/{item}", post(add_to_cart))
        .route("/health", get(|| async { "ok" }))
}

/// A request's failure: a status and a short reason, never the session's ID.
pub struct Failure(StatusCode, &'static str);

impl Failure {
    /// 401 with `reason`.
    pub fn unauthorized(reason: &'static str) -> Failure {
        Failure(StatusCode::UNAUTHORIZED, reason)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<tower_sessions::session::Error> for Failure {
    fn from(_: tower_sessions::session::Error) -> Failure {
        Failure(StatusCode::SERVICE_UNAVAILABLE, "sessions are unavailable")
    }
}

impl From<anyhow::Error> for Failure {
    fn from(_: anyhow::Error) -> Failure {
        Failure(StatusCode::SERVICE_UNAVAILABLE, "accounts are unavailable")
    }
}

/// The signed-in state of the request's session, after the timeouts.
async fn signed_in(state: &AppState, session: &Session) -> Result<SignedIn, Failure> {
    match timeouts::check(session, &state.timeouts, state.clock.now_ms()).await? {
        Verdict::SignedIn(signed_in) => Ok(signed_in),
        Verdict::Anonymous | Verdict::Ended => Err(Failure::unauthorized("sign in first")),
    }
}

/// `POST /login`: the password checked, then a new session ID (see [`timeouts::sign_in`]).
async fn login(
    State(state): State<AppState>,
    session: Session,
    Json(form): Json<Login>,
) -> Result<Json<Me>, Failure> {
    let Some(account) = state.accounts.check(&form.name, &form.password).await? else {
        return Err(Failure::unauthorized("wrong name or password"));
    };
    let signed_in =
        timeouts::sign_in(&session, account.id, &state.timeouts, state.clock.now_ms()).await?;
    Ok(Json(me_of(signed_in)))
}

/// `GET /me`: who the session belongs to.
async fn me(State(state): State<AppState>, session: Session) -> Result<Json<Me>, Failure> {
    Ok(Json(me_of(signed_in(&state, &session).await?)))
}

/// `POST /admin`: the password again, then administration, on a new session ID.
async fn admin(
    State(state): State<AppState>,
    session: Session,
    Json(form): Json<Confirm>,
) -> Result<Json<Me>, Failure> {
    let current = signed_in(&state, &session).await?;
    if !state.accounts.confirm(current.user, &form.password).await? {
        return Err(Failure(StatusCode::FORBIDDEN, "wrong password"));
    }
    let elevated =
        timeouts::elevate(&session, current, &state.timeouts, state.clock.now_ms()).await?;
    Ok(Json(me_of(elevated)))
}

/// `POST /logout`: the session deleted in Redis (every instance refuses it from now on) and the
/// cookie removed.
async fn logout(session: Session) -> Result<StatusCode, Failure> {
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /logout-everywhere`: every session of the user, this one included.
async fn logout_everywhere(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<Ended>, Failure> {
    let current = signed_in(&state, &session).await?;
    let sessions = state
        .store
        .end_all(current.user)
        .await
        .map_err(|_| Failure(StatusCode::SERVICE_UNAVAILABLE, "sessions are unavailable"))?;
    session.flush().await?;
    Ok(Json(Ended { sessions }))
}

/// `POST /cart/{item}`: an anonymous session's cart.
async fn add_to_cart(session: Session, Path(item): Path<u32>) -> Result<StatusCode, Failure> {
    let mut cart: Vec<u32> = session.get("cart").await?.unwrap_or_default();
    cart.push(item);
    session.insert("cart", cart).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer for a signed-in session.
pub fn me_of(signed_in: SignedIn) -> Me {
    Me {
        user: signed_in.user,
        admin: signed_in.admin,
    }
}
