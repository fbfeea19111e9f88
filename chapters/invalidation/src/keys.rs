//! Where every strategy keeps what it caches, grouped by category into hash slots.
//!
//! An item's page and its category's listing must be invalidated together, and the tag strategy
//! does that in one script, which on a Redis Cluster may only touch keys of one hash slot. So
//! every key of a category shares one hash tag, `{inv-tea}`:
//!
//! - `...{inv-tea}:item:12`: item 12's cached row;
//! - `...{inv-tea}:listing`: the category's listing;
//! - `...{inv-tea}:deps:item:12`: the keys that depend on item 12 (tags);
//! - `...{inv-tea}:gen` and `...{inv-tea}:g7:item:12`: the category's generation, and keys of
//!   generation 7 (versioned keys).
//!
//! A dependency that crossed categories (a "cheapest ten overall" listing) would cross slots; the
//! chapter says what that costs.

use shared::Namespace;

use crate::catalog::{CATEGORIES, category_of};

/// The keys of one run, under one strategy's namespace.
#[derive(Clone, Debug)]
pub struct Keys {
    namespace: Namespace,
}

impl Keys {
    /// The keys under `namespace`.
    pub fn new(namespace: Namespace) -> Self {
        Keys { namespace }
    }

    /// The namespace, for whole-run clean-up and pattern deletes.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The prefix every key of `category` starts with: the namespace and the category's hash tag.
    pub fn slot(&self, category: &str) -> String {
        self.namespace.key(&format!("inv-{category}"))
    }

    /// Item `id`'s cached row.
    pub fn item(&self, id: i64) -> String {
        format!("{}:item:{id}", self.slot(category_of(id)))
    }

    /// The cached listing of `category`.
    pub fn listing(&self, category: &str) -> String {
        format!("{}:listing", self.slot(category))
    }

    /// The keys that depend on item `id`, as the tag strategy records them.
    pub fn dependents(&self, id: i64) -> String {
        format!("{}:deps:item:{id}", self.slot(category_of(id)))
    }

    /// The current generation of `category`, as the versioned-keys strategy keeps it.
    pub fn generation(&self, category: &str) -> String {
        format!("{}:gen", self.slot(category))
    }

    /// Item `id`'s cached row in generation `generation` of its category.
    pub fn item_in(&self, generation: i64, id: i64) -> String {
        format!("{}:g{generation}:item:{id}", self.slot(category_of(id)))
    }

    /// The listing of `category` in generation `generation`.
    pub fn listing_in(&self, generation: i64, category: &str) -> String {
        format!("{}:g{generation}:listing", self.slot(category))
    }

    /// The category of a key this run built: the one whose [`slot`](Self::slot) it starts with.
    pub fn category_in(&self, key: &str) -> Option<&'static str> {
        CATEGORIES
            .iter()
            .find(|c| key.starts_with(&self.slot(c)))
            .copied()
    }

    /// Everything a write of item `id` makes stale: its row and its category's listing.
    pub fn affected_by(&self, id: i64) -> Vec<String> {
        vec![self.item(id), self.listing(category_of(id))]
    }
}

/// The generation in a key that [`Keys::item_in`] or [`Keys::listing_in`] built, like
/// `...{inv-tea}:g7:item:12`; `None` for a key without one.
pub fn generation_in(key: &str) -> Option<i64> {
    let rest = key.split("}:g").nth(1)?;
    rest.split(':').next()?.parse().ok()
}
