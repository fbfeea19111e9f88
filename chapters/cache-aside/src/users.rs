//! An application's user store, cached aside.
//!
//! This is what the pattern looks like in a service: reads go through [`CacheAside`] under
//! readable keys (`user:42`), writes go to the database and then invalidate. A search with several
//! arguments is cached under a hashed key, because joining arguments into a key collides (see
//! [`shared::keys`]). Search results are not invalidated when a user changes: which cached
//! searches contain user 42 is not something this store knows, so they live by their TTL alone.
//! Tracking that is the subject of the invalidation lesson.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shared::db::{Database, User};
use shared::keys;

use crate::cache::CacheAside;
use crate::read_through::Loader;

/// The arguments of a user search. Serialized canonically, they name the cache key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserSearch {
    /// Names that start with this.
    pub name_prefix: String,
    /// At least this much karma.
    pub min_karma: i64,
    /// At most this many users.
    pub limit: i64,
}

/// The user store of an application: cached reads, writes that invalidate.
pub struct Users {
    db: Arc<Database>,
    cache: CacheAside,
}

// ANCHOR: users
impl Users {
    /// The store of the users in `db`, cached in `cache`.
    pub fn new(db: Arc<Database>, cache: CacheAside) -> Self {
        Users { db, cache }
    }

    /// A user by id: Redis first, the database on a miss.
    pub async fn get(&self, id: i64) -> Result<Option<User>, sqlx::Error> {
        self.cache
            .get_or_load(&keys::entity("user", id), || self.db.user(id))
            .await
    }

    /// Writes the database, then deletes the cached copy: the next read loads the new row.
    /// Deleting rather than overwriting means two racing writers cannot leave the older value
    /// behind, and a row nobody reads again costs no cache memory.
    pub async fn update(&self, user: &User) -> Result<bool, sqlx::Error> {
        let existed = self.db.update_user(user).await?;
        self.cache.invalidate(&keys::entity("user", user.id)).await;
        Ok(existed)
    }

    /// A multi-argument query, cached under a key hashed from its arguments. [`update`] does not
    /// invalidate it: which cached searches hold user 42 is not something this store knows, so
    /// a search can show a changed user's old row until its TTL ends (the invalidation lesson
    /// tracks that with tags).
    ///
    /// [`update`]: Self::update
    pub async fn search(&self, search: &UserSearch) -> Result<Vec<User>, sqlx::Error> {
        let key = keys::hashed("users:search", search);
        let found = self
            .cache
            .get_or_load(&key, || async {
                let users = self
                    .db
                    .search_users(&search.name_prefix, search.min_karma, search.limit)
                    .await?;
                Ok::<_, sqlx::Error>(Some(users))
            })
            .await?;
        Ok(found.unwrap_or_default())
    }

    /// The cache, for its counters.
    pub fn cache(&self) -> &CacheAside {
        &self.cache
    }
}
// ANCHOR_END: users

/// The same user lookup as a read-through [`Loader`].
pub struct UserLoader(pub Arc<Database>);

impl Loader for UserLoader {
    type Id = i64;
    type Value = User;
    type Error = sqlx::Error;

    fn key(&self, id: &i64) -> String {
        keys::entity("user", id)
    }

    async fn load(&self, id: &i64) -> Result<Option<User>, sqlx::Error> {
        self.0.user(*id).await
    }
}
