//! The write-through lesson's settings.
//!
//! Only two: every record's TTL, which is the last safety net for a repair that never happened
//! (see [`crate::cache`]), and the time budget of every Redis call.

use std::time::Duration;

// ANCHOR: settings
/// How long records live and how long any Redis call may take.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long any record lives in Redis: the safety net for a repair that never happened.
    pub ttl: Duration,
    /// The budget of each Redis call.
    pub redis_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ttl: Duration::from_secs(600),
            redis_timeout: Duration::from_millis(100),
        }
    }
}
// ANCHOR_END: settings
