//! Hold points: a flusher made to stop dead at the two moments a crash matters most.
//!
//! A crash just before a commit must lose nothing (the entries are still pending), and a crash
//! just after one, before its acknowledgement, must double nothing (the batch is delivered again
//! and the versioned upsert ignores it). A test cannot hit either moment by timing, so the
//! flusher checks for an armed hold there; the demo's child flusher and the tests arm one, then
//! kill the process or drop the running flusher, which leaves Redis and the database exactly as
//! a crash at that point would.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::Flusher;

/// Where a flusher can be made to stop dead, for the tests and the demo's crash: just before
/// or just after a commit, the two moments a crash matters most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldPoint {
    /// The batch is read but not committed.
    BeforeCommit,
    /// The batch is committed but not acknowledged.
    AfterCommit,
}

/// An armed hold: where, at which commit, and whom to tell when it is reached.
pub(super) struct Hold {
    point: HoldPoint,
    nth: u64,
    reached: oneshot::Sender<()>,
}

impl Flusher {
    /// Makes the flusher stop dead at `point` of its `nth` commit (counting from 1) and stay
    /// there; the receiver hears when it got there. What happens next is the caller's: a
    /// `kill -9`, or dropping the running flusher, which leaves Redis and the database exactly
    /// as a crash at that point would.
    pub fn hold_at(&self, point: HoldPoint, nth: u64) -> oneshot::Receiver<()> {
        let (reached, heard) = oneshot::channel();
        *self.hold.lock().expect("hold lock") = Some(Hold {
            point,
            nth,
            reached,
        });
        heard
    }

    /// Stops here for good if a hold is armed for this point and commit.
    pub(super) async fn hold_if_armed(&self, point: HoldPoint) {
        let nth = match point {
            HoldPoint::BeforeCommit => self.commits.load(Ordering::SeqCst) + 1,
            HoldPoint::AfterCommit => self.commits.fetch_add(1, Ordering::SeqCst) + 1,
        };
        let reached = {
            let mut hold = self.hold.lock().expect("hold lock");
            match hold.take() {
                Some(h) if h.point == point && h.nth == nth => Some(h.reached),
                other => {
                    *hold = other;
                    None
                }
            }
        };
        if let Some(reached) = reached {
            let _ = reached.send(());
            std::future::pending::<()>().await;
        }
    }
}
