//! `/health`: what the service depends on, each asked with a deadline, and said as it is; and
//! `/ready`, whether a load balancer should send it requests, which is another question.
//!
//! The source's health check answered "healthy" whatever happened, so a load balancer kept
//! sending traffic to an instance whose Redis was gone and a dashboard stayed green through the
//! outage. Here Redis gets a `PING` and the database a `SELECT 1`, each with 500 ms to answer.
//! Redis down is `degraded` with status 200: the service still answers every request, from the
//! database. The database down is `degraded` with status 503: most requests cannot be answered.
//! The two are asked at the same time, so a stalled Redis does not delay the database's answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::service::Service;

/// How long a dependency has to answer.
const DEADLINE: Duration = Duration::from_millis(500);

/// What `/health` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok`, or why not.
    pub redis: String,
    /// `ok`, or why not.
    pub database: String,
}

/// `GET /health`.
pub async fn health(State(service): State<Arc<Service>>) -> (StatusCode, Json<Health>) {
    let (code, health) = check(&service).await;
    (code, Json(health))
}

/// `GET /ready`: whether a load balancer should send this instance requests: yes while it takes
/// them, no (`503`) from the moment it begins to stop, so that the balancer stops sending before
/// the port closes. It asks neither Redis nor the database: every instance shares both, so a
/// readiness that failed with them would take every instance out of rotation at once and turn a
/// partial outage (cached reads still served, from memory, the disk and Redis) into a total one.
/// What is down, `/health` says.
pub async fn ready(State(service): State<Arc<Service>>) -> (StatusCode, &'static str) {
    match service.taking_requests() {
        true => (StatusCode::OK, "ready"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "not ready: stopping"),
    }
}

/// What each dependency says now, and the status `/health` answers with.
pub async fn check(service: &Service) -> (StatusCode, Health) {
    let mut conn = service.conn.clone();
    let ping = redis::cmd("PING");
    let ping = tokio::time::timeout(DEADLINE, ping.query_async::<String>(&mut conn));
    let select = async {
        let mut conn = service.db.connection().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await
    };
    let (pinged, selected) = tokio::join!(ping, tokio::time::timeout(DEADLINE, select));
    let redis = match pinged {
        Ok(Ok(_)) => "ok".to_string(),
        Ok(Err(error)) => format!("unavailable: {:?}", error.kind()),
        Err(_) => format!("no answer within {} ms", DEADLINE.as_millis()),
    };
    let database = match selected {
        Ok(Ok(_)) => "ok".to_string(),
        Ok(Err(_)) => "unavailable".to_string(),
        Err(_) => format!("no answer within {} ms", DEADLINE.as_millis()),
    };
    let status = if redis == "ok" && database == "ok" {
        "ok"
    } else {
        "degraded"
    };
    let code = if database == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: status.to_string(),
        redis,
        database,
    };
    (code, health)
}
