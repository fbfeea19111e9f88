//! How typed values become cache bytes and back.
//!
//! JSON through serde: readable in `redis-cli`, and typed both ways, so a timestamp goes in as a
//! `DateTime` and comes back as a `DateTime`, not as the string a `json.dumps(default=str)` cache
//! hands back. A value that fails to decode (written by an older version of the program, or by
//! somebody else) is an error the caller can treat as a miss.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why bytes did not decode (or, never in practice, a value did not encode).
pub type CodecError = serde_json::Error;

/// A value as the bytes stored in Redis.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    serde_json::to_vec(value)
}

/// Bytes from Redis as a value; an error for anything that is not a valid `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    serde_json::from_slice(bytes)
}
