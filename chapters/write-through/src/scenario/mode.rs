//! The three ways of serving the workload: the database alone, cache-aside, and write-through.

use std::sync::Arc;

use cache_aside::CacheAside;
use shared::{CacheStats, Database, Namespace, RedisConn};
use write_through::{Article, Articles, Settings, WriteThrough};

shared::variants! {
    /// The ways of serving the workload, in the order the demo runs them.
    pub enum Kind {
        /// Every read and write goes to the database.
        NoCache = ("no-cache", "no cache"),
        /// Reads fill the cache on a miss; a write deletes the key after its commit.
        CacheAside = ("cache-aside", "cache-aside"),
        /// A write commits, then stores the new row in the cache.
        WriteThrough = ("write-through", "write-through"),
    }
}

/// One way of serving the workload, with its cache.
pub enum Mode {
    NoCache,
    CacheAside(CacheAside),
    WriteThrough(WriteThrough),
}

impl Mode {
    /// The mode `kind` over `db`, its cache (if it has one) in a namespace of its own under
    /// `namespace`.
    pub fn build(kind: Kind, db: &Arc<Database>, conn: &RedisConn, namespace: &Namespace) -> Mode {
        match kind {
            Kind::NoCache => Mode::NoCache,
            Kind::CacheAside => Mode::CacheAside(CacheAside::new(
                conn.clone(),
                namespace.child("aside"),
                cache_aside::Settings::default(),
            )),
            Kind::WriteThrough => Mode::WriteThrough(WriteThrough::new(
                db.clone(),
                conn.clone(),
                namespace.child("through"),
                Settings::default(),
            )),
        }
    }

    /// Which mode this is.
    pub fn kind(&self) -> Kind {
        match self {
            Mode::NoCache => Kind::NoCache,
            Mode::CacheAside(_) => Kind::CacheAside,
            Mode::WriteThrough(_) => Kind::WriteThrough,
        }
    }

    /// The mode's name in the table, the chart and on its progress bar.
    pub fn label(&self) -> &'static str {
        self.kind().label()
    }

    /// Reads article `id` this mode's way.
    pub async fn read(&self, db: &Database, id: i64) -> Result<Option<Article>, sqlx::Error> {
        match self {
            Mode::NoCache => db.article(id).await,
            Mode::CacheAside(cache) => {
                let key = shared::keys::entity("article", id);
                cache.get_or_load(&key, || db.article(id)).await
            }
            Mode::WriteThrough(store) => store.get(id).await,
        }
    }

    /// Edits article `id` this mode's way: returns the committed row.
    pub async fn write(
        &self,
        db: &Database,
        id: i64,
        title: &str,
    ) -> Result<Option<Article>, sqlx::Error> {
        let body = "Edited by the demo.";
        match self {
            Mode::NoCache => db.update_article(id, title, body).await,
            Mode::CacheAside(cache) => {
                let row = db.update_article(id, title, body).await?;
                cache.invalidate(&shared::keys::entity("article", id)).await;
                Ok(row)
            }
            Mode::WriteThrough(store) => store.update(id, title, body).await,
        }
    }

    /// The cache's read counters, for the cached modes.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        match self {
            Mode::NoCache => None,
            Mode::CacheAside(cache) => Some(cache.stats()),
            Mode::WriteThrough(store) => Some(store.read_stats()),
        }
    }
}
