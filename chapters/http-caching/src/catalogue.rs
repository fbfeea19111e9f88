//! The shop's catalogue, as the API reads and writes it: products with a version, and each
//! user's saved products.
//!
//! Every row carries a version that each write raises, in the statement that writes it, as in the
//! write-through lesson. The version is what makes conditional requests cheap: a product's ETag
//! *is* its version, so "has it changed since you last saw it?" is answered by comparing two small
//! strings, never by hashing a body.
//!
//! Every statement is counted by [`shared::db`], so a demo can say how many queries 1,000
//! requests cost with each cache.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shared::Database;
use shared::db::seed_product;
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

/// A product as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The primary key.
    pub id: i64,
    /// A display name, e.g. `Tea #5`.
    pub name: String,
    /// One of the seed categories (`tea`, `coffee`, ...).
    pub category: String,
    /// Money as integer cents.
    pub price_cents: i64,
    /// Raised by every write of the row: the ETag of the product's page.
    pub version: i64,
}

/// How a listing is ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Cheapest first (the default).
    #[default]
    Price,
    /// By name.
    Name,
}

/// One page of a listing: which category (`None`: every category), which page, how many per page,
/// in which order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page {
    /// `None` lists every category. `Some("all")` is a category named "all" (there is none, so
    /// its pages are empty): a different question, which must not share an answer.
    pub category: Option<String>,
    /// From 1.
    pub page: u32,
    /// Products per page.
    pub per_page: u32,
    /// The order.
    pub sort: Sort,
}

/// The catalogue's queries, on the course's counted database.
#[derive(Clone)]
pub struct Catalogue {
    db: Arc<Database>,
}

/// How many products each user has saved.
const SAVED_PER_USER: i64 = 3;

impl Catalogue {
    /// Creates the tables (not counted): products `1..=products` at version 1, as the shared seed
    /// describes them, and three saved products for each of users `1..=users`.
    pub async fn create(
        db: Arc<Database>,
        products: i64,
        users: i64,
    ) -> Result<Catalogue, sqlx::Error> {
        let mut setup = db.setup().await?;
        setup
            .execute(
                "CREATE TABLE catalogue (
                    id BIGINT PRIMARY KEY,
                    name TEXT NOT NULL,
                    category TEXT NOT NULL,
                    price_cents BIGINT NOT NULL,
                    version BIGINT NOT NULL
                )",
            )
            .await?;
        setup
            .execute("CREATE INDEX catalogue_by_category ON catalogue (category, price_cents)")
            .await?;
        setup
            .execute(
                "CREATE TABLE saved (
                    user_id BIGINT NOT NULL,
                    product_id BIGINT NOT NULL,
                    PRIMARY KEY (user_id, product_id)
                )",
            )
            .await?;
        for id in 1..=products {
            let seed = seed_product(id);
            sqlx::query(
                "INSERT INTO catalogue (id, name, category, price_cents, version) \
                 VALUES ($1, $2, $3, $4, 1)",
            )
            .bind(id)
            .bind(&seed.name)
            .bind(&seed.category)
            .bind(seed.price_cents)
            .execute(&mut *setup)
            .await?;
        }
        for user in 1..=users {
            for k in 0..SAVED_PER_USER.min(products) {
                sqlx::query("INSERT INTO saved (user_id, product_id) VALUES ($1, $2)")
                    .bind(user)
                    .bind(saved_product(user, k, products))
                    .execute(&mut *setup)
                    .await?;
            }
        }
        setup.commit().await?;
        Ok(Catalogue { db })
    }

    /// The database, for its query counter.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// One product, or `None`.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let row = sqlx::query(
            "SELECT id, name, category, price_cents, version FROM catalogue WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(product_from_row).transpose()
    }

    /// One page of a listing.
    pub async fn page(&self, page: &Page) -> Result<Vec<Product>, sqlx::Error> {
        // Four fixed statements, chosen by a `match`: the order is never spliced into SQL from
        // the request, as the source material's string formatting did.
        let sql = match (&page.category, page.sort) {
            (Some(_), Sort::Price) => {
                "SELECT id, name, category, price_cents, version FROM catalogue \
                 WHERE category = $1 ORDER BY price_cents, id LIMIT $2 OFFSET $3"
            }
            (Some(_), Sort::Name) => {
                "SELECT id, name, category, price_cents, version FROM catalogue \
                 WHERE category = $1 ORDER BY name, id LIMIT $2 OFFSET $3"
            }
            (None, Sort::Price) => {
                "SELECT id, name, category, price_cents, version FROM catalogue \
                 ORDER BY price_cents, id LIMIT $1 OFFSET $2"
            }
            (None, Sort::Name) => {
                "SELECT id, name, category, price_cents, version FROM catalogue \
                 ORDER BY name, id LIMIT $1 OFFSET $2"
            }
        };
        let mut query = sqlx::query(sql);
        if let Some(category) = &page.category {
            query = query.bind(category.clone());
        }
        let offset = i64::from(page.page.saturating_sub(1)) * i64::from(page.per_page);
        let mut conn = self.db.connection().await?;
        let rows = query
            .bind(i64::from(page.per_page))
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(product_from_row).collect()
    }

    /// The products `user` saved, by id.
    pub async fn saved(&self, user: u32) -> Result<Vec<Product>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(
            "SELECT c.id, c.name, c.category, c.price_cents, c.version \
             FROM saved s JOIN catalogue c ON c.id = s.product_id \
             WHERE s.user_id = $1 ORDER BY c.id",
        )
        .bind(i64::from(user))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(product_from_row).collect()
    }

    /// Sets a product's price and raises its version in one statement; returns the committed
    /// row, or `None` if there is no such product.
    pub async fn set_price(
        &self,
        id: i64,
        price_cents: i64,
    ) -> Result<Option<Product>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let row = sqlx::query(
            "UPDATE catalogue SET price_cents = $1, version = version + 1 WHERE id = $2 \
             RETURNING id, name, category, price_cents, version",
        )
        .bind(price_cents)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(product_from_row).transpose()
    }
}

/// The `k`th product user `user` saved, of `products`: spread so that no two users save the same
/// three, which makes one user's page easy to tell from another's.
pub fn saved_product(user: i64, k: i64, products: i64) -> i64 {
    (user * 7 + k * 13) % products + 1
}

fn product_from_row(row: &AnyRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        category: row.try_get("category")?,
        price_cents: row.try_get("price_cents")?,
        version: row.try_get("version")?,
    })
}
