//! What each strategy promises, counted against a real Redis and a real database: one load per
//! burst ([`one_load`]), refreshes before the expiry ([`refresh`]), and failures ([`failures`]).

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{LessonStage, burst, fixture, private_fixture, total, until};
use redis::AsyncCommands;
use shared::db::seed_product;
use stampede::token_lock::{self, Attempt};
use stampede::{Error, Settings, Strategy};

fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(60),
        ..Settings::default()
    }
}

/// Locks and waits of a minute: a test that finishes in seconds was not waiting for either.
fn patient() -> Settings {
    Settings {
        lock_ttl: Duration::from_secs(60),
        max_wait: Duration::from_secs(60),
        ..settings()
    }
}

/// Every answer is the seed product `id`.
fn all_correct<E: std::fmt::Debug>(answers: &[Result<shared::Product, E>], id: i64) {
    for answer in answers {
        assert_eq!(answer.as_ref().unwrap(), &seed_product(id));
    }
}

mod failures;
mod one_load;
mod refresh;
