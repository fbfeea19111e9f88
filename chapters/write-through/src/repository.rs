//! The article repository: write-through in the order that keeps its promise.
//!
//! **Writes** go to the database first, in a transaction, and to the cache only after the commit
//! returned the committed row with its new version. If the database write fails nothing has
//! changed, so the cache is not touched: setting the cache first, as some versions do, would leave
//! a value in it that the database never held. After the commit, the cache write is versioned and
//! repaired if it fails ([`crate::cache`]).
//!
//! **Reads** come from the cache. A miss (a cold key, an evicted one, one deleted by a repair)
//! loads from the database and stores the row with its version, so a reader carrying an old row
//! can never overwrite a newer one either. If Redis cannot be used, reads go to the database.
//!
//! Ids are never reused: a deleted article's tombstone is one version above its last version, and
//! a new article with the same id would start again at version 1, below it. Reusing ids needs
//! versions that survive a delete (a soft delete, or a sequence shared by all rows).

use std::sync::Arc;

use shared::RedisConn;
use shared::metrics::CacheStats;
use shared::{Database, Lookup, Namespace};

use crate::cache::{VersionedCache, WriteStats};
use crate::faults::Faults;
use crate::settings::Settings;
use crate::table::{Article, Articles};
use crate::versioned::Versioned;

/// The article repository: reads from the cache, writes to the database and then the cache.
pub struct WriteThrough {
    db: Arc<Database>,
    cache: VersionedCache,
    namespace: Namespace,
    /// The pause point between commit and cache write (free unless a test arms it).
    pub faults: Faults,
}

impl WriteThrough {
    /// The repository of the articles in `db`, cached under `namespace` through `conn`.
    pub fn new(
        db: Arc<Database>,
        conn: RedisConn,
        namespace: Namespace,
        settings: Settings,
    ) -> Self {
        WriteThrough {
            db,
            cache: VersionedCache::new(conn, settings.ttl, settings.redis_timeout),
            namespace,
            faults: Faults::default(),
        }
    }

    /// Where article `id` is cached.
    pub fn key(&self, id: i64) -> String {
        self.namespace.key(&shared::keys::entity("article", id))
    }

    /// The read side's counters.
    pub fn read_stats(&self) -> CacheStats {
        self.cache.reads.snapshot()
    }

    /// The write side's counters.
    pub fn write_stats(&self) -> WriteStats {
        self.cache.write_stats()
    }

    // ANCHOR: get
    /// Article `id`, from the cache; on a miss from the database, storing what it found.
    pub async fn get(&self, id: i64) -> Result<Option<Article>, sqlx::Error> {
        let key = self.key(id);
        let reads = &self.cache.reads;
        let lookup = self.cache.read::<Article>(&key).await;
        if let Lookup::Found(record) = lookup {
            reads.hits.inc();
            if record.value.is_none() {
                reads.negative_hits.inc();
            }
            return Ok(record.value);
        }
        reads.misses.inc();
        reads.loads.inc();
        let row = self.db.article(id).await?;
        if let Lookup::Missing = lookup {
            // An absent row is stored at version 0: any write of the article is newer.
            let version = row.as_ref().map_or(0, |a| a.version);
            let record = Versioned {
                version,
                value: row.clone(),
            };
            self.cache.write(&key, &record).await;
        }
        Ok(row)
    }
    // ANCHOR_END: get

    // ANCHOR: update
    /// Rewrites article `id`: commit, then cache the committed row. `None` if there is no such
    /// article. A database error returns before the cache is touched.
    pub async fn update(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> Result<Option<Article>, sqlx::Error> {
        let Some(row) = self.db.update_article(id, title, body).await? else {
            return Ok(None);
        };
        self.faults.after_commit().await;
        let record = Versioned {
            version: row.version,
            value: Some(row.clone()),
        };
        self.cache.write(&self.key(id), &record).await;
        Ok(Some(row))
    }
    // ANCHOR_END: update

    /// Creates article `id` and caches it.
    pub async fn create(&self, id: i64, title: &str, body: &str) -> Result<Article, sqlx::Error> {
        let row = self.db.create_article(id, title, body).await?;
        self.faults.after_commit().await;
        let record = Versioned {
            version: row.version,
            value: Some(row.clone()),
        };
        self.cache.write(&self.key(id), &record).await;
        Ok(row)
    }

    // ANCHOR: delete
    /// Deletes article `id` from the database, then replaces its cached row with a tombstone one
    /// version above the last, so a slower writer still carrying the row cannot bring it back.
    /// Returns whether it existed.
    pub async fn delete(&self, id: i64) -> Result<bool, sqlx::Error> {
        let Some(last_version) = self.db.delete_article(id).await? else {
            return Ok(false);
        };
        self.faults.after_commit().await;
        let tombstone: Versioned<Article> = Versioned {
            version: last_version + 1,
            value: None,
        };
        self.cache.write(&self.key(id), &tombstone).await;
        Ok(true)
    }
    // ANCHOR_END: delete
}
