//! A pause point in the write path, for tests.
//!
//! The failures this lesson is about happen in a gap of microseconds: between a transaction's
//! commit and the cache write that follows it. A test cannot hit that gap by timing, so the
//! repository awaits [`Faults::after_commit`] there. Normally it returns at once. A test that
//! armed it with [`Faults::pause_after_commit`] gets the writer parked in the gap: it can stop
//! Redis, or let a second writer run to completion, and then [`ParkedWrite::resume`] the first.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The pause points of the write path.
#[derive(Default)]
pub struct Faults {
    after_commit: Mutex<Option<Arc<ParkedWrite>>>,
}

/// A writer parked between its commit and its cache write.
#[derive(Default)]
pub struct ParkedWrite {
    reached: Notify,
    resume: Notify,
}

impl Faults {
    /// Parks the next write that commits, until [`ParkedWrite::resume`].
    pub fn pause_after_commit(&self) -> Arc<ParkedWrite> {
        let pause = Arc::new(ParkedWrite::default());
        *self.after_commit.lock().expect("faults lock") = Some(pause.clone());
        pause
    }

    // ANCHOR: after_commit
    /// Where the repository waits between commit and cache write; free unless armed.
    pub async fn after_commit(&self) {
        let armed = self.after_commit.lock().expect("faults lock").take();
        if let Some(pause) = armed {
            pause.reached.notify_one();
            pause.resume.notified().await;
        }
    }
    // ANCHOR_END: after_commit
}

impl ParkedWrite {
    /// Returns once the writer has committed and is parked.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the parked writer go on to its cache write.
    pub fn resume(&self) {
        self.resume.notify_one();
    }
}
