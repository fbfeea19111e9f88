//! The requests the demo sends, drawn from a seed, and the check of every answer.
//!
//! Traffic as a shop's API sees it: product pages and listing pages chosen by Zipf's law (a few
//! are most of the traffic), users' own saved pages, and a price change now and then. Every
//! configuration replays exactly the same requests.

use axum::http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use shared::db::CATEGORIES;
use shared_http::{Answer, Request};

use http_caching::api::{ListingPage, NewPrice, ProductPage, SavedPage, page_from_query};

/// What the demo sends.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// Requests in all.
    pub requests: u64,
    /// Products in the catalogue.
    pub products: i64,
    /// Users sending.
    pub users: u32,
    /// The Zipf exponent of products and pages.
    pub skew: f64,
    /// The share of requests that change a price.
    pub write_ratio: f64,
    /// The draws' seed.
    pub seed: u64,
}

/// The requests, in order.
pub fn requests(mix: &Mix) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(mix.seed);
    let products = Zipf::new(mix.products as f64, mix.skew).expect("products >= 1");
    // A listing: one of the categories or every category, and one of its first pages.
    let listings = Zipf::new(((CATEGORIES.len() + 1) * 5) as f64, mix.skew).expect("listings");
    (0..mix.requests)
        .map(|_| {
            let user = rng.random_range(1..=mix.users);
            let roll: f64 = rng.random();
            if roll < mix.write_ratio {
                let id = products.sample(&mut rng) as i64;
                let price: i64 = rng.random_range(100..10_000);
                return Request {
                    user,
                    method: Method::PUT,
                    path: format!("/products/{id}/price"),
                    json: Some(serde_json::json!({ "price_cents": price }).to_string()),
                };
            }
            match rng.random_range(0..100) {
                0..50 => Request::get(
                    user,
                    format!("/products/{}", products.sample(&mut rng) as i64),
                ),
                50..85 => {
                    let n = listings.sample(&mut rng) as usize - 1;
                    let page = n % 5 + 1;
                    Request::get(
                        user,
                        match n / 5 {
                            0 => format!("/products?page={page}"),
                            c => format!("/products?category={}&page={page}", CATEGORIES[c - 1]),
                        },
                    )
                }
                _ => Request::get(user, "/me/saved"),
            }
        })
        .collect()
}

/// Why `answer` is not the answer to `request`, if it is not: a page of another product, another
/// category or page, another user, or a price change that did not happen.
pub fn check(request: &Request, answer: &Answer) -> Result<(), String> {
    let path = request.path.as_str();
    let status = answer.status;
    let wanted = |what: &str, found: String| Err(format!("asked for {what}, got {found}"));
    if request.method == Method::PUT {
        let id = path
            .trim_start_matches("/products/")
            .trim_end_matches("/price");
        let sent: NewPrice = serde_json::from_str(request.json.as_deref().unwrap_or(""))
            .map_err(|e| e.to_string())?;
        let to = sent.price_cents.to_string();
        let page: ProductPage = parse(answer)?;
        if page.product.id.to_string() != id || page.product.price_cents.to_string() != to {
            return wanted(
                &format!("product {id} at {to}"),
                format!("{:?}", page.product),
            );
        }
        return Ok(());
    }
    // A 304's body is the one the client kept with the ETag: checked like a 200's.
    if status != StatusCode::OK && status != StatusCode::NOT_MODIFIED {
        return Err(format!("status {status}"));
    }
    if path == "/me/saved" {
        let page: SavedPage = parse(answer)?;
        return if page.user == request.user {
            Ok(())
        } else {
            wanted(
                &format!("user {}'s saved page", request.user),
                format!("user {}'s", page.user),
            )
        };
    }
    if let Some(query) = path.strip_prefix("/products?") {
        let page: ListingPage = parse(answer)?;
        let asked = page_from_query(Some(query)).expect("the plan's queries are valid");
        let every =
            |category: &Option<String>| category.clone().unwrap_or_else(|| "every category".into());
        return if page.page == asked.page && page.category == asked.category {
            Ok(())
        } else {
            wanted(
                &format!("page {} of {}", asked.page, every(&asked.category)),
                format!("page {} of {}", page.page, every(&page.category)),
            )
        };
    }
    let id = path.trim_start_matches("/products/");
    let page: ProductPage = parse(answer)?;
    if page.product.id.to_string() == id {
        Ok(())
    } else {
        wanted(
            &format!("product {id}"),
            format!("product {}", page.product.id),
        )
    }
}

fn parse<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, String> {
    serde_json::from_slice(answer.body).map_err(|e| {
        let shown = String::from_utf8_lossy(&answer.body[..answer.body.len().min(80)]).into_owned();
        format!("a body that is not the route's ({e}): {shown}")
    })
}
