//! `/health`: what the service depends on, each asked with a deadline, and said as it is.
//!
//! The source's health check answered "healthy" whatever happened, so a load balancer kept
//! sending traffic to an instance whose Redis was gone and a dashboard stayed green through the
//! outage. Here Redis gets a `PING` and the database a `SELECT 1`, each with 500 ms to answer.
//! Redis down is `degraded` with status 200: the service still answers every request, from the
//! database. The database down is `degraded` with status 503: most requests cannot be answered.

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

/// `GET /ready`: whether a load balancer should send this instance requests. Ready while the
/// database answers: without Redis the instance still answers every read (slower), so taking it
/// out of rotation would only move its load to instances with the same Redis problem. Not ready
/// while the database does not answer: most requests would fail here.
pub async fn ready(State(service): State<Arc<Service>>) -> (StatusCode, &'static str) {
    match check(&service).await {
        (StatusCode::OK, _) => (StatusCode::OK, "ready"),
        (code, _) => (code, "not ready: the database does not answer"),
    }
}

/// What each dependency says now, and the status `/health` answers with.
pub async fn check(service: &Service) -> (StatusCode, Health) {
    let mut conn = service.conn.clone();
    let ping = redis::cmd("PING");
    let ping = ping.query_async::<String>(&mut conn);
    let redis = match tokio::time::timeout(DEADLINE, ping).await {
        Ok(Ok(_)) => "ok".to_string(),
        Ok(Err(error)) => format!("unavailable: {:?}", error.kind()),
        Err(_) => format!("no answer within {} ms", DEADLINE.as_millis()),
    };
    let select = async {
        let mut conn = service.db.connection().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await
    };
    let database = match tokio::time::timeout(DEADLINE, select).await {
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
