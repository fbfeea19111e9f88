//! Cache administration, for an administrator who has just confirmed their password.
//!
//! The source's `/cache/clear` took no credentials, and cleared with `FLUSHDB` (every key of the
//! database, other services' and the sessions' too) or `KEYS *pattern*` (which blocks Redis while
//! it walks the whole keyspace). Here the route needs a session that is signed in, elevated
//! (`POST /admin` with the password again, on a new session ID) and an administrator's; and it
//! removes only the service's own cache keys, a page of `SCAN` at a time with `UNLINK`
//! ([`shared::namespace::unlink_matching`]), so Redis serves other clients between pages. The
//! sessions live under another namespace and survive: clearing the cache logs nobody out.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sessions::timeouts::{self, Verdict};
use tower_sessions::Session;

use crate::api::Failure;
use crate::service::Service;

/// What a clear removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleared {
    /// Keys removed.
    pub keys: usize,
}

// ANCHOR: clear
/// `POST /admin/cache/clear`: the service's cache keys removed, for an elevated administrator.
pub async fn clear(
    State(service): State<Arc<Service>>,
    session: Session,
) -> Result<Json<Cleared>, Failure> {
    administrator(&service, &session).await?;
    let mut conn = service.conn.clone();
    let pattern = service.cache_namespace.pattern();
    let unlinked = shared::namespace::unlink_matching(&mut conn, &pattern, 500)
        .await
        .map_err(|_| Failure(StatusCode::SERVICE_UNAVAILABLE, "Redis is unavailable"))?;
    service.forget_local().await;
    Ok(Json(Cleared {
        keys: unlinked.keys,
    }))
}
// ANCHOR_END: clear

/// `POST /admin/cache/groups/{group}`: one group of the response cache dropped (`c:tea:2`, page 2
/// of the tea listing; `c:every:1`, page 1 of every category), for an elevated administrator.
pub async fn drop_group(
    State(service): State<Arc<Service>>,
    Path(group): Path<String>,
    session: Session,
) -> Result<StatusCode, Failure> {
    administrator(&service, &session).await?;
    let Some(responses) = &service.responses else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            "this configuration has no response cache",
        ));
    };
    responses.invalidate(&group).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Passes only a session that is signed in, elevated and an administrator's.
async fn administrator(service: &Service, session: &Session) -> Result<(), Failure> {
    let state = &service.sessions;
    let verdict = timeouts::check(session, &state.timeouts, state.clock.now_ms())
        .await
        .map_err(|_| Failure(StatusCode::SERVICE_UNAVAILABLE, "sessions are unavailable"))?;
    let Verdict::SignedIn(signed_in) = verdict else {
        return Err(Failure(StatusCode::UNAUTHORIZED, "sign in first"));
    };
    if !service.settings.administrators.contains(&signed_in.user) {
        return Err(Failure(StatusCode::FORBIDDEN, "administrators only"));
    }
    if !signed_in.admin {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "confirm your password at POST /admin first",
        ));
    }
    Ok(())
}
