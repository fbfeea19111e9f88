//! The product listing, `GET /products?category=tea&page=2`: whole responses cached by the HTTP
//! caching lesson's response cache, and dropped by the price changes that make them wrong.
//!
//! The source's response cache keyed an answer by its path alone, so `/products?category=tea`
//! and `/products` (every category) shared one entry, and whichever was asked first answered
//! both. The HTTP lesson's cache keys the *parsed* query, defaults filled in
//! ([`http_caching::key`]): `?page=1&category=tea` and `?category=tea` share an entry, no category
//! and `?category=tea` do not. Here the routes tell it what a request is ([`describe`]): its
//! group (one listing page: `c:tea:2`) and its normalised query. A price change names the groups
//! it made wrong (the two pages that show the item) on its response, and the cache drops them
//! before the response leaves: a listing read after a price change was acknowledged shows the new
//! price, and the pages that do not show the item stay cached.

use axum::http::Method;
use axum::http::request::Parts;
use http_caching::key::Described;
use serde::{Deserialize, Serialize};
use shared::Database;
use shared::db::items::CATEGORIES;
use sqlx::Row;

use crate::products::ProductView;

/// Items per listing page.
pub const LISTING_SIZE: i64 = 20;

/// A listing request, parsed: what its answer depends on, and nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// One category, or `None` for every category.
    pub category: Option<String>,
    /// The page, from 1.
    pub page: u32,
}

/// A listing page as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingPage {
    /// What was asked.
    pub listing: Listing,
    /// The items, by id.
    pub items: Vec<ProductView>,
}

// ANCHOR: parse
/// Parses `category` (one of the categories; absent for every category) and `page` (from 1,
/// default 1). Anything else is refused: an unknown parameter would otherwise make a new cache
/// entry for the same answer.
pub fn listing_of(query: Option<&str>) -> Result<Listing, String> {
    let mut listing = Listing {
        category: None,
        page: 1,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "category" if CATEGORIES.contains(&value) => listing.category = Some(value.to_string()),
            "category" => return Err(format!("no category {value:?}")),
            "page" => match value.parse::<u32>() {
                Ok(page @ 1..=crate::pages::LAST_PAGE) => listing.page = page,
                _ => {
                    return Err(format!(
                        "page {value:?} is not 1 to {}",
                        crate::pages::LAST_PAGE
                    ));
                }
            },
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(listing)
}
// ANCHOR_END: parse

/// The response-cache group of a listing page: `c:tea:2` for the tea listing's page 2, `c:every:2`
/// for page 2 of every category. A group per page, not per listing: a price change drops the two
/// pages that show the item, and every other page stays cached.
pub fn group(listing: &Listing) -> String {
    let category = listing.category.as_deref().unwrap_or("every");
    format!("c:{category}:{}", listing.page)
}

// ANCHOR: pages_showing
/// Where an item stands in the two listings that show it: how many items come before it (by id)
/// in every category, and in its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The item's category.
    pub category: String,
    /// Items before it, of every category.
    pub every: i64,
    /// Items before it, of its category.
    pub own: i64,
}

/// The query of a position: `$1` the item's id, `$2` its category.
pub const POSITION: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS every, \
     CAST(COALESCE(SUM(CASE WHEN category = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS own \
     FROM items WHERE id < $1";

/// Where item `id` of `category` stands (one counted query). Items are created at the end and
/// deleted anywhere, so a position is asked for, never worked out from the id.
pub async fn position(db: &Database, id: i64, category: &str) -> Result<Position, sqlx::Error> {
    let mut conn = db.connection().await?;
    let row = sqlx::query(POSITION)
        .bind(id)
        .bind(category)
        .fetch_one(&mut *conn)
        .await?;
    position_from(&row, category)
}

/// A position from [`POSITION`]'s row.
pub fn position_from(row: &sqlx::any::AnyRow, category: &str) -> Result<Position, sqlx::Error> {
    Ok(Position {
        category: category.to_string(),
        every: row.try_get("every")?,
        own: row.try_get("own")?,
    })
}

/// The page a position falls on, from 1.
fn page_of(position: i64) -> u32 {
    (position / LISTING_SIZE) as u32 + 1
}

/// The groups of the two listing pages that show the item at `position`: its page of every
/// category, and its page of its own. A price change makes these two wrong, and no other.
pub fn pages_showing(position: &Position) -> [String; 2] {
    let every = Listing {
        category: None,
        page: page_of(position.every),
    };
    let own = Listing {
        category: Some(position.category.clone()),
        page: page_of(position.own),
    };
    [group(&every), group(&own)]
}

/// The groups of the pages from the item's to the last, in both listings: a deleted item moves
/// every item after it one place up, so each of these pages changes.
pub fn pages_from(position: &Position) -> Vec<String> {
    let last = crate::pages::LAST_PAGE;
    let every = (page_of(position.every)..=last).map(|page| Listing {
        category: None,
        page,
    });
    let own = (page_of(position.own)..=last).map(|page| Listing {
        category: Some(position.category.clone()),
        page,
    });
    every.chain(own).map(|listing| group(&listing)).collect()
}
// ANCHOR_END: pages_showing

// ANCHOR: describe
/// What the response cache may store: listings only, each in its group, keyed by its parsed
/// query. Every other request passes through it (a write's `Changed` groups are dropped on the
/// way out).
pub fn describe(request: &Parts) -> Option<Described> {
    if request.method != Method::GET || request.uri.path() != "/products" {
        return None;
    }
    let listing = listing_of(request.uri.query()).ok()?;
    Some(Described {
        group: group(&listing),
        query: serde_json::to_value(&listing).ok()?,
        user: None,
    })
}
// ANCHOR_END: describe

/// The listing page `listing` asks for: one query.
pub async fn page(db: &Database, listing: Listing) -> Result<ListingPage, sqlx::Error> {
    let offset = i64::from(listing.page - 1) * LISTING_SIZE;
    let rows = {
        let mut conn = db.connection().await?;
        let query = match &listing.category {
            Some(category) => sqlx::query(
                "SELECT id, category, price_cents, version FROM items WHERE category = $1 \
                 ORDER BY id LIMIT $2 OFFSET $3",
            )
            .bind(category.clone()),
            None => sqlx::query(
                "SELECT id, category, price_cents, version FROM items ORDER BY id \
                 LIMIT $1 OFFSET $2",
            ),
        };
        query
            .bind(LISTING_SIZE)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?
    };
    let items = rows
        .iter()
        .map(|row| {
            Ok(ProductView {
                id: row.try_get("id")?,
                category: row.try_get("category")?,
                price_cents: row.try_get("price_cents")?,
                version: row.try_get("version")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(ListingPage { listing, items })
}
