//! What the cache stores: a row and the version the database gave it.
//!
//! Two writers race: A commits version 2, B commits version 3 and stores it, then A, delayed,
//! stores version 2. Without versions the cache now holds the older row, and keeps it until the
//! TTL, although the database holds the newer one. Each row carries a version that the database
//! raises on every write (`version = version + 1` in the UPDATE itself), and the cache is written
//! by a Lua script that stores a record only if the one already there is older. Redis runs the
//! script atomically, so nothing can slip in between the comparison and the write.
//!
//! A deleted row is stored as a record with no value (a tombstone) one version above the last
//! one, so a writer that is still carrying the deleted row cannot bring it back.

use serde::{Deserialize, Serialize};

// ANCHOR: versioned
/// A cached row and its version. `value: None` records that the row does not exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The version the database gave the row.
    pub version: i64,
    /// The row, or `None` for a row that does not exist (a tombstone, or a cached "absent").
    pub value: Option<T>,
}
// ANCHOR_END: versioned

// ANCHOR: set_if_newer
/// Stores the record if the one in the key is older, or missing, or unreadable.
/// KEYS: the key. ARGV: the record's version, its JSON, the TTL in ms.
/// Returns 1 if it stored the record, 0 if the key already holds that version or a newer one.
pub const SET_IF_NEWER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
    local ok, record = pcall(cjson.decode, current)
    if ok and type(record) == 'table' and tonumber(record.version)
        and tonumber(record.version) >= tonumber(ARGV[1]) then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";
// ANCHOR_END: set_if_newer
