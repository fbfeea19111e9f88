//! Read-through: the cache owns the loader, so callers never see the database.
//!
//! With cache-aside every call site passes its own loader, and every call site can get it wrong
//! (a different key format, a forgotten negative case). Read-through moves the loader into the
//! cache: a [`Loader`] knows how to name a key and how to load it, and callers just say
//! `users.get(&42)`. Underneath it is the same [`CacheAside`], so everything it guarantees still
//! holds; what changes is who is allowed to talk to the database.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::CacheAside;

// ANCHOR: loader
/// Where a read-through cache gets what it does not have.
pub trait Loader: Send + Sync {
    /// What names a value, e.g. a user id.
    type Id: ?Sized + Sync;
    /// What is cached.
    type Value: Serialize + DeserializeOwned + Send;
    /// Why a load failed.
    type Error;

    /// The cache key of `id`, e.g. `user:42`.
    fn key(&self, id: &Self::Id) -> String;

    /// The value of `id` from the source of truth, or `None` if it has none.
    fn load(
        &self,
        id: &Self::Id,
    ) -> impl Future<Output = Result<Option<Self::Value>, Self::Error>> + Send;
}

/// A [`CacheAside`] that owns its [`Loader`]: callers ask for ids, never for the database.
pub struct ReadThrough<L> {
    cache: CacheAside,
    loader: L,
}

impl<L: Loader> ReadThrough<L> {
    /// `cache` in front of `loader`.
    pub fn new(cache: CacheAside, loader: L) -> Self {
        ReadThrough { cache, loader }
    }

    /// The value of `id`: from Redis if cached, else loaded and stored.
    pub async fn get(&self, id: &L::Id) -> Result<Option<L::Value>, L::Error> {
        let key = self.loader.key(id);
        self.cache.get_or_load(&key, || self.loader.load(id)).await
    }

    /// Forgets `id`, for the code path that changed it.
    pub async fn invalidate(&self, id: &L::Id) {
        self.cache.invalidate(&self.loader.key(id)).await;
    }

    /// The cache underneath, for its counters.
    pub fn cache(&self) -> &CacheAside {
        &self.cache
    }
}
// ANCHOR_END: loader
