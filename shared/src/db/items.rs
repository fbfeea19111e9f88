//! The `items` table: a shop's items, whose prices change while several instances read them.
//!
//! The lessons about keeping copies in step (invalidation, two-tier) cache these rows and change
//! them under their readers, so each row carries a `version` that every write raises in the same
//! statement: a read can always tell whether it returned what was committed last (see
//! [`staleness`](crate::staleness)). An item belongs to a category for ever, fixed by its id
//! ([`category_of`]), so a read finds an item's category, and its cache keys, without asking the
//! database.
//!
//! The table, its seed rows and [`reset`] live here; each lesson writes its own queries, since
//! what a lesson's write does besides (an outbox row, a broadcast) is the lesson. Neither creating
//! nor resetting is counted.

use sqlx::Executor;

use super::Database;

/// The categories items are spread over, by id.
pub const CATEGORIES: [&str; 4] = ["tea", "coffee", "books", "kitchen"];

/// The seed price of item `id` is `SEED_BASE + (id * SEED_STEP) % SEED_SPREAD` cents: spread over
/// 1.99 to 51.98, the same for the same id in every run.
const SEED_BASE: i64 = 199;
/// See [`SEED_BASE`].
const SEED_STEP: i64 = 137;
/// See [`SEED_BASE`].
const SEED_SPREAD: i64 = 5_000;

/// The category item `id` belongs to, for ever.
pub fn category_of(id: i64) -> &'static str {
    CATEGORIES[id.rem_euclid(CATEGORIES.len() as i64) as usize]
}

/// The seed price of item `id`, in cents.
pub fn seed_price(id: i64) -> i64 {
    SEED_BASE + (id * SEED_STEP) % SEED_SPREAD
}

/// Creates the table and seeds items `1..=count`, each in its category at its seed price and
/// version 1.
pub async fn create(db: &Database, count: i64) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    setup
        .execute(
            "CREATE TABLE items (
                id BIGINT PRIMARY KEY,
                category TEXT NOT NULL,
                price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
                version BIGINT NOT NULL
            )",
        )
        .await?;
    setup
        .execute("CREATE INDEX items_by_category ON items (category, id)")
        .await?;
    for id in 1..=count {
        sqlx::query(
            "INSERT INTO items (id, category, price_cents, version) VALUES ($1, $2, $3, 1)",
        )
        .bind(id)
        .bind(category_of(id))
        .bind(seed_price(id))
        .execute(&mut *setup)
        .await?;
    }
    setup.commit().await
}

/// Every item back to its seed price at version 1, in one statement: each of a demo's runs starts
/// from the same rows.
pub async fn reset(db: &Database) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    sqlx::query("UPDATE items SET price_cents = $1 + (id * $2) % $3, version = 1")
        .bind(SEED_BASE)
        .bind(SEED_STEP)
        .bind(SEED_SPREAD)
        .execute(&mut *setup)
        .await?;
    setup.commit().await
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;
    use crate::db::DbOptions;

    /// Every item's price and version, by id, read outside the count.
    async fn rows(db: &Database) -> Vec<(i64, String, i64, i64)> {
        let mut setup = db.setup().await.unwrap();
        let rows = sqlx::query("SELECT id, category, price_cents, version FROM items ORDER BY id")
            .fetch_all(&mut *setup)
            .await
            .unwrap();
        // Ended here, not on drop: a transaction dropped open is rolled back later by the
        // runtime, and until then its connection holds a lock on the table.
        setup.commit().await.unwrap();
        rows.iter()
            .map(|r| {
                let get = |c| r.try_get::<i64, _>(c).unwrap();
                (
                    get("id"),
                    r.try_get("category").unwrap(),
                    get("price_cents"),
                    get("version"),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn reset_puts_back_exactly_the_seed_rows() {
        let db = Database::open(DbOptions::default()).await.unwrap();
        create(&db, 60).await.unwrap();
        let seeded = rows(&db).await;
        let expected: Vec<_> = (1..=60)
            .map(|id| (id, category_of(id).to_string(), seed_price(id), 1))
            .collect();
        assert_eq!(
            seeded, expected,
            "create seeds every item at its seed price, version 1"
        );

        let mut setup = db.setup().await.unwrap();
        sqlx::query("UPDATE items SET price_cents = 7, version = version + 3 WHERE id % 2 = 0")
            .execute(&mut *setup)
            .await
            .unwrap();
        setup.commit().await.unwrap();
        reset(&db).await.unwrap();
        assert_eq!(
            rows(&db).await,
            expected,
            "reset's SQL computes the same seed prices as seed_price, at version 1"
        );
        assert_eq!(db.queries(), 0, "neither create nor reset is counted");
        db.close().await.unwrap();
    }
}
