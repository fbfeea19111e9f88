//! The product listing, `GET /products?category=tea&page=2`: whole responses cached by the HTTP
//! caching lesson's response cache, and dropped by the price changes that make them wrong.
//!
//! The source's response cache keyed an answer by its path alone, so `/products?category=tea`
//! and `/products` (every category) shared one entry, and whichever was asked first answered
//! both. The HTTP lesson's cache keys the *parsed* query, defaults filled in
//! ([`http_caching::key`]): `?page=1&category=tea` and `?category=tea` share an entry, no category
//! and `?category=tea` do not. Here the routes tell it what a request is ([`describe`]): its
//! group (`c:tea`, or `c` for every category) and its normalised query. A price change names the
//! groups it made wrong (the item's category and the whole listing) on its response, and the
//! cache drops them before the response leaves: a listing read after a price change was
//! acknowledged shows the new price.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_caching::key::Described;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::db::items::CATEGORIES;
use sqlx::Row;

use crate::api::{Failure, ProductView};
use crate::service::Service;

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

/// The response-cache group of a listing: `c:tea`, or `c` for every category.
pub fn group(category: Option<&str>) -> String {
    match category {
        Some(category) => format!("c:{category}"),
        None => "c".to_string(),
    }
}

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
        group: group(listing.category.as_deref()),
        query: serde_json::to_value(&listing).ok()?,
        user: None,
    })
}
// ANCHOR_END: describe

/// `GET /products?category=...&page=...`: one query, and `Cache-Control` that lets a shared cache
/// keep the answer a minute (the response cache drops it sooner when a price changes).
pub async fn listing(
    State(service): State<Arc<Service>>,
    RawQuery(query): RawQuery,
) -> Result<Response<Body>, Failure> {
    let listing = listing_of(query.as_deref()).map_err(|_| {
        Failure(
            StatusCode::BAD_REQUEST,
            "category is one of the categories, page 1 to 100",
        )
    })?;
    let offset = i64::from(listing.page - 1) * LISTING_SIZE;
    let rows = {
        let mut conn = service.db.connection().await?;
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
    let body = serde_json::to_vec(&ListingPage { listing, items }).expect("a listing encodes");
    let digest = Sha256::digest(&body);
    let etag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=0, s-maxage=60"),
    );
    let etag = HeaderValue::from_str(&format!("\"{etag}\"")).expect("hex digits and quotes");
    headers.insert(header::ETAG, etag);
    Ok(response)
}
