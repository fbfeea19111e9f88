//! What the exercise suites share so that a failure reads as one clear message.
//!
//! An exercise stub panics with "not yet implemented" in every call, and a suite that fires thirty
//! calls at once would print thirty copies of it, then a follow-on failure that blames something
//! else. [`quiet_repeated_todos`] prints each such panic once per thread, and [`joined`] turns a
//! spawned call's panic into the test's own failure, saying what the call said.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Once;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

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
