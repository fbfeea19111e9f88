//! The API: a product, a category's listing by pages, a user's saved products, a price change;
//! each route with the `Cache-Control` that fits what it returns.
//!
//! - The **catalogue** (a product, a listing) is the same for everybody: `public`, fresh for 10
//!   seconds in a browser (`max-age`) and 60 in a shared cache (`s-maxage`, which the response
//!   cache obeys, and which a write cuts short by invalidating), and usable stale while a cache
//!   revalidates (`stale-while-revalidate=30`) or when the origin fails (`stale-if-error=300`).
//!   A missing product is `public` for 5 seconds: long enough to absorb a flood of requests for
//!   it, short enough that a product created a moment later shows up.
//! - A **personal page** is `private, no-store`: no shared cache may keep it, and the browser
//!   should not either.
//! - A **write** answers `no-store`, and names what it changed ([`Changed`]).
//!
//! Every cacheable response varies on `Accept-Encoding` (the compression layer adds the header)
//! and carries an ETag from the rows' versions.
//!
//! Who is asking comes from `Authorization: Bearer u<id>`: a stand-in for a real token, enough to
//! tell users apart (the sessions lesson does logins properly).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use crate::catalogue::{Catalogue, Page, Product, Sort};
use crate::key::Described;
use crate::response_cache::Changed;

/// The catalogue's caching headers.
pub const CATALOGUE: &str =
    "public, max-age=10, s-maxage=60, stale-while-revalidate=30, stale-if-error=300";
/// A missing product's.
pub const MISSING: &str = "public, max-age=5";
/// A personal page's.
pub const PERSONAL: &str = "private, no-store";
/// A write's answer.
pub const WRITE: &str = "no-store";

/// Listing pages hold at most this many products.
pub const MOST_PER_PAGE: u32 = 50;

/// The routes, on `catalogue`.
pub fn routes(catalogue: Catalogue) -> Router {
    Router::new()
        .route("/products", get(listing))
        .route("/products/{id}", get(product))
        .route("/products/{id}/price", put(set_price))
        .route("/me/saved", get(saved))
        .with_state(catalogue)
}

/// A product's page.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProductPage {
    /// The product.
    pub product: Product,
}

/// A listing's page: what was asked, and the products.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListingPage {
    /// The category asked for (`None`: every category).
    pub category: Option<String>,
    /// The page number.
    pub page: u32,
    /// Products per page.
    pub per_page: u32,
    /// The products.
    pub items: Vec<Product>,
}

/// A user's saved products.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPage {
    /// Whose.
    pub user: u32,
    /// The products.
    pub items: Vec<Product>,
}

/// A price change's body.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewPrice {
    /// The new price, in cents.
    pub price_cents: i64,
}

/// An error's body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Problem {
    /// What went wrong.
    pub error: String,
}

// ANCHOR: page_from_query
/// The listing a query asks for, defaults filled in: `category` absent for every category,
/// `page=1`, `per_page=10`, `sort=price`. Unknown parameters are ignored (by the key as well, so
/// `?utm_source=x` shares the entry); an out-of-range value is an error.
pub fn page_from_query(query: Option<&str>) -> Result<Page, String> {
    #[derive(Deserialize)]
    struct Raw {
        category: Option<String>,
        page: Option<u32>,
        per_page: Option<u32>,
        sort: Option<Sort>,
    }
    let raw: Raw = parsed_query(query.unwrap_or(""))?;
    let page = Page {
        category: raw.category,
        page: raw.page.unwrap_or(1),
        per_page: raw.per_page.unwrap_or(10),
        sort: raw.sort.unwrap_or_default(),
    };
    if page.page == 0 || page.page > 10_000 {
        return Err(format!("page must be from 1 to 10000, not {}", page.page));
    }
    if page.per_page == 0 || page.per_page > MOST_PER_PAGE {
        return Err(format!(
            "per_page must be from 1 to {MOST_PER_PAGE}, not {}",
            page.per_page
        ));
    }
    Ok(page)
}
// ANCHOR_END: page_from_query

/// Parses a query string with axum's query extractor's rules.
fn parsed_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, String> {
    let uri: axum::http::Uri = format!("/?{query}").parse().map_err(|e| format!("{e}"))?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| e.body_text())
}

/// The user a request's `Authorization: Bearer u<id>` names.
pub fn user(headers: &HeaderMap) -> Option<u32> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer u")?
        .parse()
        .ok()
}

/// The group a product's pages belong to.
pub fn product_group(id: i64) -> String {
    format!("p{id}")
}

/// The group of a listing of `category` (`None`: every category).
pub fn listing_group(category: Option<&str>) -> String {
    match category {
        Some(category) => format!("c:{category}"),
        None => "c".to_string(),
    }
}

// ANCHOR: describe
/// What the response cache needs to know of a request it may cache: a `GET` of a product, of a
/// listing with a valid query, or of the personal page (keyed by its user). Everything else is
/// `None`, and goes through uncached.
pub fn describe(request: &Parts) -> Option<Described> {
    if request.method != Method::GET {
        return None;
    }
    let path = request.uri.path();
    if path == "/products" {
        let page = page_from_query(request.uri.query()).ok()?;
        return Some(Described {
            group: listing_group(page.category.as_deref()),
            query: serde_json::to_value(&page).ok()?,
            user: None,
        });
    }
    if path == "/me/saved" {
        let user = user(&request.headers)?;
        return Some(Described {
            group: format!("u{user}"),
            query: serde_json::Value::Null,
            user: Some(user),
        });
    }
    let id: i64 = path.strip_prefix("/products/")?.parse().ok()?;
    Some(Described {
        group: product_group(id),
        query: serde_json::Value::Null,
        user: None,
    })
}
// ANCHOR_END: describe

/// A JSON response with `status`, `Cache-Control: control`, and `etag` if given.
fn json<T: Serialize>(
    status: StatusCode,
    control: &str,
    etag: Option<String>,
    body: &T,
) -> Response<Body> {
    let mut response = Response::new(Body::from(serde_json::to_vec(body).expect("plain data")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(control).expect("a valid header"),
    );
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert(header::ETAG, etag);
    }
    response
}

fn problem(status: StatusCode, control: &str, error: impl Into<String>) -> Response<Body> {
    json(
        status,
        control,
        None,
        &Problem {
            error: error.into(),
        },
    )
}

fn database_down(error: sqlx::Error) -> Response<Body> {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        WRITE,
        format!("the database failed: {error}"),
    )
}

async fn product(State(catalogue): State<Catalogue>, Path(id): Path<i64>) -> Response<Body> {
    match catalogue.product(id).await {
        Ok(Some(product)) => {
            let etag = format!("\"{}\"", product.version);
            json(
                StatusCode::OK,
                CATALOGUE,
                Some(etag),
                &ProductPage { product },
            )
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, MISSING, format!("no product {id}")),
        Err(error) => database_down(error),
    }
}

async fn listing(State(catalogue): State<Catalogue>, RawQuery(query): RawQuery) -> Response<Body> {
    let page = match page_from_query(query.as_deref()) {
        Ok(page) => page,
        Err(why) => return problem(StatusCode::BAD_REQUEST, WRITE, why),
    };
    match catalogue.page(&page).await {
        Ok(items) => {
            // The listing's ETag: the rows it holds and their versions.
            let versions: Vec<(i64, i64)> = items.iter().map(|p| (p.id, p.version)).collect();
            let hashed = shared::keys::hashed("l", &versions);
            let etag = format!("\"{}\"", hashed.replace(':', "-"));
            let body = ListingPage {
                category: page.category,
                page: page.page,
                per_page: page.per_page,
                items,
            };
            json(StatusCode::OK, CATALOGUE, Some(etag), &body)
        }
        Err(error) => database_down(error),
    }
}

async fn saved(State(catalogue): State<Catalogue>, headers: HeaderMap) -> Response<Body> {
    let Some(user) = user(&headers) else {
        return problem(
            StatusCode::UNAUTHORIZED,
            WRITE,
            "send Authorization: Bearer u<id>",
        );
    };
    match catalogue.saved(user).await {
        Ok(items) => json(StatusCode::OK, PERSONAL, None, &SavedPage { user, items }),
        Err(error) => database_down(error),
    }
}

async fn set_price(
    State(catalogue): State<Catalogue>,
    Path(id): Path<i64>,
    Json(new): Json<NewPrice>,
) -> Response<Body> {
    match catalogue.set_price(id, new.price_cents).await {
        Ok(Some(product)) => {
            let changed = Changed(vec![
                product_group(id),
                listing_group(Some(&product.category)),
                listing_group(None),
            ]);
            let mut response = json(StatusCode::OK, WRITE, None, &ProductPage { product });
            response.extensions_mut().insert(changed);
            response
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, WRITE, format!("no product {id}")),
        Err(error) => database_down(error),
    }
}
