//! The three ways of serving the workload: the database alone, cache-aside, and write-through.

use cache_aside::CacheAside;
use shared::{CacheStats, Database};
use write_through::{Article, Articles, WriteThrough};

/// The three ways of serving the workload.
pub enum Mode {
    NoCache,
    CacheAside(CacheAside),
    WriteThrough(WriteThrough),
}

impl Mode {
    /// The mode's name in the table, the chart and on its progress bar.
    pub fn label(&self) -> &'static str {
        match self {
            Mode::NoCache => "no cache",
            Mode::CacheAside(_) => "cache-aside",
            Mode::WriteThrough(_) => "write-through",
        }
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
