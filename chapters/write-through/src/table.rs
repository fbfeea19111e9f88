//! The `articles` table: this lesson's rows, and the SQL that writes them.
//!
//! Every write is a transaction that returns what it committed, with the row's new `version`:
//! the database raises it (`version = version + 1` in the UPDATE itself), so two copies of an
//! article can always be ordered, which is what the versioned cache needs.

use serde::{Deserialize, Serialize};
use shared::Database;
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

/// An article of the small CMS this lesson caches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    /// The primary key.
    pub id: i64,
    /// Never empty: the table refuses an empty title, which gives tests a write that fails.
    pub title: String,
    /// The text.
    pub body: String,
    /// Starts at 1 and rises by one with every committed write.
    pub version: i64,
}

/// Creates the table and seeds articles `1..=count` at version 1 (not counted).
pub async fn create(db: &Database, count: i64) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    setup
        .execute(
            "CREATE TABLE articles (
                id BIGINT PRIMARY KEY,
                title TEXT NOT NULL CHECK (title <> ''),
                body TEXT NOT NULL,
                version BIGINT NOT NULL
            )",
        )
        .await?;
    seed(&mut setup, count).await?;
    setup.commit().await
}

/// Every article back to its seed row, articles `1..=count` only (not counted): a run that
/// edits and deletes articles starts the next from the same rows. (The capstone's demo resets
/// its news site with it between configurations.)
pub async fn reset(db: &Database, count: i64) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    setup.execute("DELETE FROM articles").await?;
    seed(&mut setup, count).await?;
    setup.commit().await
}

/// Inserts the seed rows of articles `1..=count`.
async fn seed(
    setup: &mut sqlx::Transaction<'static, sqlx::Any>,
    count: i64,
) -> Result<(), sqlx::Error> {
    for id in 1..=count {
        let article = seed_article(id);
        sqlx::query("INSERT INTO articles (id, title, body, version) VALUES ($1, $2, $3, $4)")
            .bind(article.id)
            .bind(&article.title)
            .bind(&article.body)
            .bind(article.version)
            .execute(&mut **setup)
            .await?;
    }
    Ok(())
}

/// The seed row for article `id`, at version 1.
pub fn seed_article(id: i64) -> Article {
    Article {
        id,
        title: format!("Article {id}"),
        body: format!("The text of article {id}."),
        version: 1,
    }
}

/// The article queries, on the course database. Each is one counted query.
pub trait Articles {
    /// One article by primary key, or `None`.
    fn article(&self, id: i64) -> impl Future<Output = Result<Option<Article>, sqlx::Error>>;

    /// Creates article `id` at version 1; fails if it exists. Returns once committed.
    fn create_article(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> impl Future<Output = Result<Article, sqlx::Error>>;

    /// Rewrites an article and raises its version by one, in one statement of one transaction.
    /// Returns the committed row, or `None` if there is no such article.
    fn update_article(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> impl Future<Output = Result<Option<Article>, sqlx::Error>>;

    /// Deletes an article. Returns the version it had, or `None` if there was none.
    fn delete_article(&self, id: i64) -> impl Future<Output = Result<Option<i64>, sqlx::Error>>;
}

impl Articles for Database {
    async fn article(&self, id: i64) -> Result<Option<Article>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let row = sqlx::query("SELECT id, title, body, version FROM articles WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| article_from_row(&row)).transpose()
    }

    async fn create_article(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> Result<Article, sqlx::Error> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO articles (id, title, body, version) VALUES ($1, $2, $3, 1) \
             RETURNING id, title, body, version",
        )
        .bind(id)
        .bind(title)
        .bind(body)
        .fetch_one(tx.conn().await)
        .await?;
        tx.commit().await?;
        article_from_row(&row)
    }

    async fn update_article(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> Result<Option<Article>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE articles SET title = $1, body = $2, version = version + 1 WHERE id = $3 \
             RETURNING id, title, body, version",
        )
        .bind(title)
        .bind(body)
        .bind(id)
        .fetch_optional(tx.conn().await)
        .await?;
        tx.commit().await?;
        row.map(|row| article_from_row(&row)).transpose()
    }

    async fn delete_article(&self, id: i64) -> Result<Option<i64>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("DELETE FROM articles WHERE id = $1 RETURNING version")
            .bind(id)
            .fetch_optional(tx.conn().await)
            .await?;
        tx.commit().await?;
        row.map(|row| row.try_get("version")).transpose()
    }
}

fn article_from_row(row: &AnyRow) -> Result<Article, sqlx::Error> {
    Ok(Article {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        version: row.try_get("version")?,
    })
}
