//! The clock that instances share: milliseconds since the Unix epoch.
//!
//! An `Instant` means something only inside the process that took it. A time that another
//! instance compares with its own, or that is stored in Redis or the database (an expiry written
//! into a cached value, a commit's time, a stream entry's id), has to be wall-clock time. Clocks
//! of different machines differ a little; every lesson that compares them says what that skew can
//! cost.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch on this machine's clock (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
