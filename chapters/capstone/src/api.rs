//! The service's HTTP endpoints: products, pages and tasks, each answered through the pattern the
//! chapter's table gives it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_caching::response_cache::Changed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::{self, NewProduct};
use crate::dependents;
use crate::listing;
use crate::news::{LIST_PAGES, Views};
use crate::pages::{PageKey, Source};
use crate::products::ProductView;
use crate::service::Service;
use crate::settings::Caching;
use crate::tasks::{STATUSES, Task, TaskForm};
use crate::upstream;
use http_caching::upstream::{Answer, Unavailable, normalised};

/// A request's failure: a status and a short reason.
#[derive(Debug)]
pub struct Failure(pub StatusCode, pub &'static str);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<sqlx::Error> for Failure {
    fn from(_: sqlx::Error) -> Failure {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable",
        )
    }
}

impl<E> From<Arc<E>> for Failure {
    fn from(_: Arc<E>) -> Failure {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable",
        )
    }
}

/// The header that says which layer answered a read, for the demo's counts and for `curl -i`.
pub const ANSWERED_BY: &str = "x-answered-by";

/// A price change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PriceForm {
    /// The new price in cents.
    pub price_cents: i64,
}

// ANCHOR: respond
/// A `200` with `body`, or, for a client that kept this very answer, a `304` without it. The
/// ETag is `etag` when the caller knows a version, else a hash of the body. Without conditional
/// requests (the other configurations) no ETag is sent. `x-answered-by` names the layer that
/// answered, for the reads that have layers.
fn respond(
    service: &Service,
    request: &HeaderMap,
    content_type: &'static str,
    body: Vec<u8>,
    etag: Option<String>,
    answered_by: Option<&'static str>,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(layer) = answered_by {
        headers.insert(ANSWERED_BY, HeaderValue::from_static(layer));
    }
    if service.settings.caching == Caching::Conditional {
        let etag = etag.unwrap_or_else(|| etag_of(&body));
        let value = HeaderValue::from_str(&etag).expect("an ETag of hex digits and quotes");
        headers.insert(header::ETAG, value);
        // Every client may keep it, and must ask before using it again.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let kept = request.get(header::IF_NONE_MATCH);
        if kept.is_some_and(|kept| http_caching::conditional::matches(kept, &etag)) {
            return http_caching::conditional::not_modified(&headers);
        }
    }
    (StatusCode::OK, headers, body).into_response()
}
// ANCHOR_END: respond

/// [`respond`] with `value` as JSON, for the reads without layers.
fn respond_json(
    service: &Service,
    request: &HeaderMap,
    value: &impl Serialize,
    etag: Option<String>,
) -> Response {
    let body = serde_json::to_vec(value).expect("plain data encodes");
    respond(service, request, "application/json", body, etag, None)
}

/// A strong ETag for `body`: 16 hex digits of its SHA-256, quoted.
fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `GET /products/{id}`: two tiers (L1 and Redis) in front of the database, absence cached too.
pub async fn product(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
    request: HeaderMap,
) -> Result<Response, Failure> {
    let (item, layer) = service.products.item(id).await?;
    let Some(item) = item else {
        return Err(Failure(StatusCode::NOT_FOUND, "no such product"));
    };
    let view = ProductView::from(item);
    let body = serde_json::to_vec(&view).expect("a product encodes");
    let etag = Some(format!("\"{}-v{}\"", view.id, view.version));
    let response = respond(
        &service,
        &request,
        "application/json",
        body,
        etag,
        Some(layer.slug()),
    );
    Ok(response)
}

/// `PUT /products/{id}/price`: committed, then every copy dropped (this instance's, Redis's, the
/// other instances' through the backplane, and the listings that show it).
pub async fn set_price(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
    Json(form): Json<PriceForm>,
) -> Result<Response, Failure> {
    if form.price_cents < 0 {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a price is at least 0",
        ));
    }
    let Some(change) = service.products.set_price(id, form.price_cents).await? else {
        return Err(Failure(StatusCode::NOT_FOUND, "no such product"));
    };
    let item = change.item;
    // The dashboard's figures include the price: refreshed now, in the background.
    service.analytics.changed().await;
    // The listing pages that show the item: the response cache drops them before this answer
    // leaves.
    let position = listing::position(&service.db, item.id, &item.category).await?;
    let changed = Changed(listing::pages_showing(&position).to_vec());
    if service.settings.caching.redis() {
        let telemetry = &service.telemetry;
        telemetry.invalidated("product", 1);
        telemetry.invalidated("dashboard", 1);
        telemetry.invalidated("listing", changed.0.len() as u64);
    }
    // ANCHOR: owed
    if !change.forgotten {
        // Redis did not take the delete (down, or stalled): a copy it keeps, or gets back from
        // its append-only file on restart, would outlive the change until its TTL. Owed in the
        // outbox, the relay drops it, and the listing pages, once Redis answers again.
        let mut keys = vec![dependents::product(item.id)];
        keys.extend(changed.0.iter().cloned().map(dependents::listing));
        keys.push(dependents::DASHBOARD.to_string());
        catalog::owe_after(&service.db, item.id, item.version, &keys).await?;
    }
    // ANCHOR_END: owed
    let view = ProductView::from(item);
    let mut response = Json(view).into_response();
    response.extensions_mut().insert(changed);
    Ok(response)
}

/// `POST /products`: a new product, its ID from the database; what its creation makes wrong goes
/// into the outbox with it, and the relay drops it.
pub async fn create_product(
    State(service): State<Arc<Service>>,
    Json(new): Json<NewProduct>,
) -> Result<(StatusCode, Json<ProductView>), Failure> {
    if !shared::db::items::CATEGORIES.contains(&new.category.as_str()) || new.price_cents < 0 {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a product has one of the categories and a price of at least 0",
        ));
    }
    let owes = service.settings.caching.redis();
    let item = catalog::create(&service.db, &new, owes).await?;
    Ok((StatusCode::CREATED, Json(ProductView::from(item))))
}

/// `DELETE /products/{id}`: the row deleted; its entry, the listing pages from its own on and the
/// dashboard owed in the outbox.
pub async fn delete_product(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
) -> Result<StatusCode, Failure> {
    let owes = service.settings.caching.redis();
    match catalog::delete(&service.db, id, owes).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(Failure(StatusCode::NOT_FOUND, "no such product")),
    }
}

/// `GET /pages/{category}/{page}`: a rendered page through memory, Redis and disk.
pub async fn page(
    State(service): State<Arc<Service>>,
    Path((category, page)): Path<(String, u32)>,
    request: HeaderMap,
) -> Result<Response, Failure> {
    let known = shared::db::items::CATEGORIES.contains(&category.as_str());
    if !known || !(1..=crate::pages::LAST_PAGE).contains(&page) {
        return Err(Failure(StatusCode::NOT_FOUND, "no such page"));
    }
    let key = PageKey { category, page };
    let (html, source) = service.pages.page(&key).await?;
    let answered_by = match source {
        Source::Memory => "l1",
        Source::Redis => "l2",
        Source::Disk => "l3",
        Source::Rendered => "database",
    };
    let content_type = "text/html; charset=utf-8";
    Ok(respond(
        &service,
        &request,
        content_type,
        html.to_vec(),
        None,
        Some(answered_by),
    ))
}

/// `GET /analytics/dashboard`: the report, from Redis at once (stale while one refresh runs),
/// refreshed after every price change.
pub async fn dashboard(
    State(service): State<Arc<Service>>,
    request: HeaderMap,
) -> Result<Response, Failure> {
    let Ok(dashboard) = service.analytics.dashboard().await else {
        return Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable",
        ));
    };
    let etag = Some(format!("\"d{}\"", dashboard.as_of_ms));
    let mut response = respond_json(&service, &request, &dashboard, etag);
    // How old the figures are: what an operator's staleness chart shows.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let age = (now.as_millis() as u64).saturating_sub(dashboard.as_of_ms) / 1_000;
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(age));
    Ok(response)
}

/// `GET /weather/{city}`: the third party's answer through the upstream cache, with its `Age`.
pub async fn weather(
    State(service): State<Arc<Service>>,
    Path(city): Path<String>,
    request: HeaderMap,
) -> Result<Response, Failure> {
    if !upstream::CITIES.contains(&normalised(&city).as_str()) {
        return Err(Failure(StatusCode::NOT_FOUND, "no such city"));
    }
    let answer = service.weather.get(&city).await;
    upstream_answer(&service, &request, answer)
}

/// `GET /rates/{currency}`: the same, for a currency's exchange rates.
pub async fn rates(
    State(service): State<Arc<Service>>,
    Path(currency): Path<String>,
    request: HeaderMap,
) -> Result<Response, Failure> {
    let known = upstream::CURRENCIES
        .iter()
        .any(|(name, _)| *name == normalised(&currency));
    if !known {
        return Err(Failure(StatusCode::NOT_FOUND, "no such currency"));
    }
    let answer = service.rates.get(&currency).await;
    upstream_answer(&service, &request, answer)
}

/// An upstream answer with its `Age`, or a `502` when the service failed and nothing young
/// enough was kept.
fn upstream_answer<R: serde::Serialize>(
    service: &Service,
    request: &HeaderMap,
    answer: Result<Answer<R>, Unavailable>,
) -> Result<Response, Failure> {
    let Ok(answer) = answer else {
        return Err(Failure(
            StatusCode::BAD_GATEWAY,
            "the third-party service failed and no recent answer was kept",
        ));
    };
    let mut response = respond_json(service, request, &answer, None);
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(answer.age_s));
    Ok(response)
}

/// `POST /tasks`: a new task, its ID from the database.
pub async fn create_task(
    State(service): State<Arc<Service>>,
    Json(form): Json<TaskForm>,
) -> Result<(StatusCode, Json<Task>), Failure> {
    let Some(title) = form.title.filter(|title| !title.trim().is_empty()) else {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a task needs a title",
        ));
    };
    Ok((
        StatusCode::CREATED,
        Json(service.tasks.create(&title).await?),
    ))
}

/// `GET /tasks/{id}`.
pub async fn task(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
) -> Result<Json<Task>, Failure> {
    match service.tasks.get(id).await? {
        Some(task) => Ok(Json(task)),
        None => Err(Failure(StatusCode::NOT_FOUND, "no such task")),
    }
}

/// `PUT /tasks/{id}`: a new title or status.
pub async fn update_task(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
    Json(form): Json<TaskForm>,
) -> Result<Json<Task>, Failure> {
    if form
        .status
        .as_deref()
        .is_some_and(|status| !STATUSES.contains(&status))
    {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a status is open or done",
        ));
    }
    match service.tasks.update(id, &form).await? {
        Some(task) => Ok(Json(task)),
        None => Err(Failure(StatusCode::NOT_FOUND, "no such task")),
    }
}

/// `DELETE /tasks/{id}`.
pub async fn delete_task(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
) -> Result<StatusCode, Failure> {
    match service.tasks.delete(id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Failure(StatusCode::NOT_FOUND, "no such task")),
    }
}

/// `GET /tasks/stats`: the counts by status, never older than the last write.
pub async fn task_stats(
    State(service): State<Arc<Service>>,
    request: HeaderMap,
) -> Result<Response, Failure> {
    let stats = service.tasks.stats().await?;
    Ok(respond_json(&service, &request, &stats, None))
}

/// An article's new title and text.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArticleForm {
    /// Never empty.
    pub title: String,
    /// The text.
    pub body: String,
}

/// `GET /news?page=N`: a page of the article list (1 to 10), never behind an acknowledged edit;
/// `&cache=bypass` reads it from the database, for comparison.
pub async fn news(
    State(service): State<Arc<Service>>,
    RawQuery(query): RawQuery,
    request: HeaderMap,
) -> Result<Response, Failure> {
    let refused = Failure(
        StatusCode::BAD_REQUEST,
        "page is 1 to 10, and cache=bypass the one other parameter",
    );
    let (mut page, mut bypass) = (1, false);
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("page", n) => match n.parse::<u32>() {
                Ok(n) if (1..=LIST_PAGES).contains(&n) => page = n,
                _ => return Err(refused),
            },
            ("cache", "bypass") => bypass = true,
            _ => return Err(refused),
        }
    }
    let list = service.news.list(page, bypass).await?;
    Ok(respond_json(&service, &request, &list, None))
}

/// `GET /news/{id}`: written through, so never older than the last acknowledged edit.
pub async fn article(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
    request: HeaderMap,
) -> Result<Response, Failure> {
    let Some(article) = service.news.article(id).await? else {
        return Err(Failure(StatusCode::NOT_FOUND, "no such article"));
    };
    let etag = Some(format!("\"a{}-v{}\"", article.id, article.version));
    Ok(respond_json(&service, &request, &article, etag))
}

/// `PUT /news/{id}`: committed, then the committed row written into Redis with its version.
pub async fn update_article(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
    Json(form): Json<ArticleForm>,
) -> Result<Json<write_through::Article>, Failure> {
    if form.title.trim().is_empty() {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an article needs a title",
        ));
    }
    match service.news.update(id, &form.title, &form.body).await? {
        Some(article) => {
            if service.settings.caching.redis() {
                service.telemetry.invalidated("article-list", 1);
            }
            Ok(Json(article))
        }
        None => Err(Failure(StatusCode::NOT_FOUND, "no such article")),
    }
}

/// `POST /news/{id}/views`: a view counted (written behind), and the count it makes.
pub async fn view(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
) -> Result<Json<Views>, Failure> {
    match service.news.view(id).await {
        Ok(Some(views)) => Ok(Json(views)),
        Ok(None) => Err(Failure(StatusCode::NOT_FOUND, "no such article")),
        Err(_) => Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "views cannot be counted now",
        )),
    }
}

/// `GET /news/trending`: the most viewed articles, at most `trending_ttl` plus the flusher's lag
/// behind the views.
pub async fn trending(
    State(service): State<Arc<Service>>,
    request: HeaderMap,
) -> Result<Response, Failure> {
    let trending = service.news.trending().await?;
    Ok(respond_json(&service, &request, &trending, None))
}

/// `GET /products?category=...&page=...`: one query, and `Cache-Control` that lets a shared cache
/// keep the answer a minute (the response cache drops it sooner when a price changes).
pub async fn listing(
    State(service): State<Arc<Service>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let asked = listing::listing_of(query.as_deref()).map_err(|_| {
        Failure(
            StatusCode::BAD_REQUEST,
            "category is one of the categories, page 1 to 100",
        )
    })?;
    let page = listing::page(&service.db, asked).await?;
    let body = serde_json::to_vec(&page).expect("a listing encodes");
    let etag = (service.settings.caching == Caching::Conditional).then(|| etag_of(&body));
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
    // The response cache answers a kept ETag with a 304 in the configuration with conditional
    // requests; the others send none, as the other endpoints do.
    if let Some(etag) = etag {
        let etag = HeaderValue::from_str(&etag).expect("hex digits and quotes");
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}
