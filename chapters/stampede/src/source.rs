//! What the strategies protect: a slow computation behind a key.
//!
//! A stampede hurts in proportion to what a miss costs, so the lesson's sources are deliberately
//! slow: the course database adds a configurable latency to every query (100 ms in the demo),
//! standing for a report, an aggregate or a remote API. Every strategy takes its source behind an
//! `Arc`, so several simulated application instances can share one database, as real ones do.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{Database, Product};

/// Why a load failed; strategies pass it on to the caller inside [`crate::Error::Load`].
pub type LoadError = Box<dyn std::error::Error + Send + Sync>;

/// A slow source of values, one per key.
pub trait Source: Send + Sync + 'static {
    /// What a key maps to. It goes through the cache as JSON, so it must round-trip through serde.
    type Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// The value of `key`, computed the slow way.
    fn load(&self, key: &str) -> impl Future<Output = Result<Self::Value, LoadError>> + Send;
}

// ANCHOR: product_pages
/// Product pages from the course database. A key is a product id in decimal, e.g. `"17"`.
pub struct ProductPages {
    db: Arc<Database>,
}

impl ProductPages {
    /// Pages of the products in `db`.
    pub fn new(db: Arc<Database>) -> Self {
        ProductPages { db }
    }

    /// The database behind the pages.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }
}

impl Source for ProductPages {
    type Value = Product;

    async fn load(&self, key: &str) -> Result<Product, LoadError> {
        let id: i64 = key
            .parse()
            .map_err(|_| format!("a product key is a numeric id, not {key:?}"))?;
        match self.db.product(id).await? {
            Some(product) => Ok(product),
            None => Err(format!("there is no product {id}").into()),
        }
    }
}
// ANCHOR_END: product_pages
