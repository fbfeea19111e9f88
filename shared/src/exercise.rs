//! What the exercise suites share so that a failure reads as one clear message.
//!
//! An exercise stub panics with "not yet implemented" in every call, and a suite that fires thirty
//! calls at once would print thirty copies of it, then a follow-on failure that blames something
//! else. [`quiet_repeated_todos`] prints each such panic once per thread, and [`joined`] turns a
//! spawned call's panic into the test's own failure, saying what the call said. [`Site`] is the
//! stage a suite's test runs on, with its keys removed however the test ends.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Once;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::{DbOptions, KeysRemovedOnDrop, ServerOptions, Stage};

/// A test's stage: a Redis and a database of the test's own namespace and schema. The keys the
/// test wrote are removed when it ends, however it ends (a failed assertion included): keys
/// without a TTL (a queue, a register) must not pile up on a Redis the tests share.
pub struct Site {
    stage: Stage,
    _keys: KeysRemovedOnDrop,
}

impl Site {
    /// The Redis and database the environment names (`REDIS_URL`, `REDIS_CLUSTER`,
    /// `DATABASE_URL`), else a private redis-server and SQLite, for the suite of `package`.
    pub async fn from_env(package: &str) -> Site {
        quiet_repeated_todos();
        let stage = Stage::from_env(package, DbOptions::default()).await;
        Site::new(stage.expect("a Redis and a database for the tests"))
    }

    /// A private redis-server whatever the environment says, for the tests that stop Redis or
    /// count its commands (nobody else's commands must move the count).
    pub async fn private(package: &str) -> Site {
        quiet_repeated_todos();
        let stage = Stage::private(package, DbOptions::default(), ServerOptions::default()).await;
        Site::new(stage.expect("redis-server on PATH"))
    }

    fn new(stage: Stage) -> Site {
        let _keys = stage.keys_removed_on_drop();
        Site { stage, _keys }
    }
}

impl std::ops::Deref for Site {
    type Target = Stage;

    fn deref(&self) -> &Stage {
        &self.stage
    }
}

/// Prints a "not yet implemented" panic (an exercise stub's) only the first time each thread meets
/// it; every other panic prints as usual. Installed once per test binary, however often it is called.
pub fn quiet_repeated_todos() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = payload_text(info.payload());
            if message.starts_with("not yet implemented") {
                thread_local! {
                    static SEEN: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
                }
                if !SEEN.with(|seen| seen.borrow_mut().insert(message)) {
                    return;
                }
            }
            default(info);
        }));
    });
}

/// The value of a spawned call; if the call panicked, the test fails here with the call's own
/// message.
pub async fn joined<T>(task: JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(error) if error.is_panic() => {
            let message = payload_text(&*error.into_panic());
            panic!("a call the test spawned panicked: {message}")
        }
        Err(error) => panic!("a call the test spawned was cancelled: {error}"),
    }
}

/// Waits until `condition` holds, checking every 5 ms, or fails the test saying that `what` did
/// not happen within `within`: how a test synchronises on an event it can only observe (a message
/// heard, a resubscription), with a bound instead of a sleep.
pub async fn until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < within,
            "waited {within:?} for {what}; it never happened"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A panic's message, when it has one.
fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}
