//! How a demo's run starts and ends: on a runtime of its own, until it finishes or is
//! interrupted, and always with its clean-up.
//!
//! A learner stops a long demo with Ctrl-C, a terminal sends SIGTERM, a run fails half-way. In
//! each case the course promises to leave nothing behind: no key on the learner's Redis, no
//! PostgreSQL schema, no temporary folder, no process. [`run_demo`] keeps that promise in one place,
//! for every demo, and keeps it for a demo that panics too (a bug, but not one that may cost the
//! learner a Redis full of keys).

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use crate::stage::Cleanup;

/// How a demo's run ended.
enum Ended {
    Finished(anyhow::Result<()>),
    /// By a signal: its name and the exit status that reports it (128 + its number).
    Interrupted(&'static str, u8),
    /// By a panic, whose message the panic hook has already printed.
    Panicked,
}

/// Runs a demo and turns its outcome into the exit status, cleaning up however it ends.
///
/// The demo runs on a tokio runtime until it finishes, or until Ctrl-C (SIGINT) or SIGTERM.
/// Then the runtime is shut down, which stops every task the demo started and drops what it held:
/// a private Redis server dies and a private SQLite file is deleted with it. Last, what the demo
/// registered with the [`Cleanup`] it was handed (keys on a Redis it does not own, a PostgreSQL
/// schema) is removed through connections of its own. A clean-up that fails is a warning naming
/// what is left and how to remove it, never the run's failure.
///
/// Exit status: 0 when the demo finished, 1 when it failed (its error printed as its chain of
/// messages, each of which says what to do; a backtrace would only bury them), 101 when it
/// panicked (cleaned up all the same), 130 after Ctrl-C and 143 after SIGTERM, as shells report
/// them.
pub fn run_demo<F, Fut>(demo: F) -> ExitCode
where
    F: FnOnce(Cleanup) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let cleanup = Cleanup::default();
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            tokio::select! {
                result = demo(cleanup.clone()) => Ended::Finished(result),
                (name, status) = interrupted() => Ended::Interrupted(name, status),
            }
        })
    }))
    .unwrap_or(Ended::Panicked);
    if let Ended::Interrupted(name, _) = &ended {
        eprintln!("\n{name}: stopping the demo and cleaning up");
    }
    runtime.shutdown_timeout(Duration::from_secs(1));

    let cleaner = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the clean-up runtime");
    for left in cleaner.block_on(cleanup.remove_all()) {
        eprintln!("warning: {left}");
    }
    match ended {
        Ended::Finished(Ok(())) => ExitCode::SUCCESS,
        Ended::Finished(Err(error)) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("\n{cause}");
            }
            ExitCode::FAILURE
        }
        Ended::Interrupted(_, status) => ExitCode::from(status),
        // The status Rust gives a process that panics.
        Ended::Panicked => ExitCode::from(101),
    }
}

/// Waits for Ctrl-C or SIGTERM; returns the signal's name and the exit status for it.
async fn interrupted() -> (&'static str, u8) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).expect("listen for SIGTERM");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => ("interrupted (Ctrl-C)", 130),
            _ = terminate.recv() => ("terminated (SIGTERM)", 143),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        ("interrupted (Ctrl-C)", 130)
    }
}
