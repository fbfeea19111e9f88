//! Cache keys: readable for entities, collision-free for arbitrary arguments.
//!
//! A key is an address, and two different questions must never share one. `user:42` is fine for
//! an entity, because the id is a single integer. For a query with several arguments the usual
//! trick, joining them with `:`, is not: `("a:b", "c")` and `("a", "b:c")` both become `a:b:c`,
//! and one query silently answers for the other. [`hashed`] hashes a canonical encoding instead:
//! the arguments serialized to JSON with object keys sorted, so the same arguments always give the
//! same key and different arguments (almost surely) never do.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The key of one entity, e.g. `entity("user", 42)` is `user:42`.
pub fn entity(kind: &str, id: impl std::fmt::Display) -> String {
    format!("{kind}:{id}")
}

/// The key of a query with arbitrary arguments: `kind:` and 32 hex digits (128 bits) of the
/// SHA-256 of the arguments' canonical JSON encoding.
///
/// ```
/// use serde_json::json;
/// let a = shared::keys::hashed("search", &json!({"q": "tea", "page": 1}));
/// let b = shared::keys::hashed("search", &json!({"page": 1, "q": "tea"}));
/// assert_eq!(a, b); // field order does not matter
/// assert_ne!(
///     shared::keys::hashed("search", &("a:b", "c")),
///     shared::keys::hashed("search", &("a", "b:c")),
/// );
/// ```
pub fn hashed(kind: &str, args: &impl Serialize) -> String {
    format!(
        "{kind}:{}",
        hex(&Sha256::digest(canonical_json(args))[..16])
    )
}

/// JSON with every object's keys in sorted order. Going through `serde_json::Value` sorts them,
/// because its map is a `BTreeMap` unless the `preserve_order` feature is on.
fn canonical_json(args: &impl Serialize) -> Vec<u8> {
    let value = serde_json::to_value(args).expect("cache key arguments serialize to JSON");
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn joining_collides_but_hashing_does_not() {
        let joined = |a: &str, b: &str| format!("search:{a}:{b}");
        assert_eq!(joined("a:b", "c"), joined("a", "b:c"));
        assert_ne!(
            hashed("search", &("a:b", "c")),
            hashed("search", &("a", "b:c"))
        );
    }

    #[test]
    fn map_order_does_not_change_the_key() {
        let mut first = HashMap::new();
        let mut second = HashMap::new();
        for i in 0..50 {
            first.insert(format!("k{i}"), i);
        }
        for i in (0..50).rev() {
            second.insert(format!("k{i}"), i);
        }
        assert_eq!(hashed("q", &first), hashed("q", &second));
    }

    #[test]
    fn kind_is_readable_and_types_are_distinct() {
        let key = hashed("products:search", &("tea", 1));
        assert!(key.starts_with("products:search:"));
        assert_eq!(key.len(), "products:search:".len() + 32);
        // 1 and "1" are different arguments, so they are different keys.
        assert_ne!(hashed("q", &1), hashed("q", &"1"));
        assert_eq!(entity("user", 42), "user:42");
    }
}
