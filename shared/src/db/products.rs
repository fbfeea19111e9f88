//! The `products` table: the shop the stampede lesson and the exercises build on.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::Database;

/// A product of the shop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The primary key.
    pub id: i64,
    /// A display name, e.g. `Tea #5`.
    pub name: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// Money as integer cents: exact, unlike a float, and it round-trips through JSON as a number.
    pub price_cents: i64,
    /// Units in stock; zero for some products (a value, not a miss).
    pub stock: i64,
}

/// The product categories of the seed data.
pub const CATEGORIES: [&str; 5] = ["tea", "coffee", "cocoa", "books", "kitchen"];

impl Database {
    /// One product by primary key, or `None`.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let row = sqlx::query(
            "SELECT id, name, category, price_cents, stock FROM products WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| product_from_row(&row)).transpose()
    }

    /// The products of a category, cheapest first, optionally only those up to a price. An
    /// unknown category gives an empty list: a real answer, worth caching like any other.
    pub async fn products_in_category(
        &self,
        category: &str,
        max_price_cents: Option<i64>,
    ) -> Result<Vec<Product>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let rows = sqlx::query(
            "SELECT id, name, category, price_cents, stock FROM products \
             WHERE category = $1 AND price_cents <= $2 ORDER BY price_cents, id",
        )
        .bind(category)
        .bind(max_price_cents.unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(product_from_row).collect()
    }

    /// How many products of a category are out of stock (often zero: a value, not a miss).
    pub async fn out_of_stock_count(&self, category: &str) -> Result<i64, sqlx::Error> {
        let mut conn = self.connection().await?;
        sqlx::query("SELECT COUNT(*) AS n FROM products WHERE category = $1 AND stock = 0")
            .bind(category)
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")
    }

    /// Sets a product's price. Returns whether the row existed.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<bool, sqlx::Error> {
        let mut conn = self.connection().await?;
        let done = sqlx::query("UPDATE products SET price_cents = $1 WHERE id = $2")
            .bind(price_cents)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Creates the table and seeds products `1..=count`.
pub(super) async fn create(
    setup: &mut sqlx::Transaction<'static, Any>,
    count: i64,
) -> Result<(), sqlx::Error> {
    setup
        .execute(
            "CREATE TABLE products (
                id BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                category TEXT NOT NULL,
                price_cents BIGINT NOT NULL,
                stock BIGINT NOT NULL
            )",
        )
        .await?;
    setup
        .execute("CREATE INDEX products_by_category ON products (category, price_cents)")
        .await?;
    for id in 1..=count {
        let product = seed_product(id);
        sqlx::query(
            "INSERT INTO products (id, name, category, price_cents, stock) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(product.id)
        .bind(&product.name)
        .bind(&product.category)
        .bind(product.price_cents)
        .bind(product.stock)
        .execute(&mut **setup)
        .await?;
    }
    Ok(())
}

/// The seed row for product `id`.
pub fn seed_product(id: i64) -> Product {
    let category = CATEGORIES[(id % CATEGORIES.len() as i64) as usize];
    Product {
        id,
        name: format!("{} #{id}", capitalize(category)),
        category: category.to_string(),
        price_cents: 199 + (id * 137) % 5_000,
        stock: id % 6,
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn product_from_row(row: &AnyRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        category: row.try_get("category")?,
        price_cents: row.try_get("price_cents")?,
        stock: row.try_get("stock")?,
    })
}
