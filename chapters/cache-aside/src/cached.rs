//! What is stored under a key: a value, or the fact that there is none.
//!
//! A cache that can only store values has two bad choices for a row that does not exist. It can
//! store nothing, and then every request for that id misses and goes to the database, which is
//! how a scraper asking for random ids (or an attacker) walks straight through the cache: *cache
//! penetration*. Or it can store an empty value, and then a real empty value, a user with an empty
//! bio, a category with no products, a counter at zero, is confused with "no such row". Python's
//! `if data:` makes the second mistake worse, treating every falsy value as a miss.
//!
//! So an entry says which it is. `Absent` is an answer, a *negative hit*, stored with a short TTL
//! so that a row created later shows up soon. And "nothing stored under the key" is the only miss.

use serde::{Deserialize, Serialize};

// ANCHOR: cached
/// A cached answer. In Redis it is JSON: `{"present": ...}` or `"absent"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cached<T> {
    /// The database had this value (which may be empty, zero or false).
    Present(T),
    /// The database had no row for this key when it was asked.
    Absent,
}
// ANCHOR_END: cached

impl<T> Cached<T> {
    /// The value, or `None` for a cached "absent".
    pub fn into_option(self) -> Option<T> {
        match self {
            Cached::Present(value) => Some(value),
            Cached::Absent => None,
        }
    }
}

impl<T> From<Option<T>> for Cached<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Cached::Absent, Cached::Present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_and_absence_encode_differently() {
        let empty: Cached<Vec<u8>> = Cached::Present(vec![]);
        let zero = Cached::Present(0);
        assert_eq!(serde_json::to_string(&empty).unwrap(), r#"{"present":[]}"#);
        assert_eq!(serde_json::to_string(&zero).unwrap(), r#"{"present":0}"#);
        assert_eq!(
            serde_json::to_string(&Cached::<i32>::Absent).unwrap(),
            r#""absent""#
        );
        let back: Cached<i32> = serde_json::from_str(r#"{"present":0}"#).unwrap();
        assert_eq!(back.into_option(), Some(0));
    }
}
