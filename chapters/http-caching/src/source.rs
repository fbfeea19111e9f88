//! The source material's response cache and keys, kept as counter-examples.
//!
//! Its middleware, rewritten as faithfully as Rust allows:
//!
//! ```python
//! cache_key = f"request:{request.url.path}"
//! cached_response = await cache_manager.get(cache_key)
//! if cached_response:
//!     return JSONResponse(content=cached_response)
//! response = await call_next(request)
//! await cache_manager.set(cache_key, response.body, ttl=300)
//! ```
//!
//! The key is the path alone: the query (`?page=2` gets page 1), the method, the user
//! (`/me/saved` gets the first user's page) and `Accept-Encoding` are ignored. It stores every
//! response, errors included, whatever its `Cache-Control` says, for 300 seconds, and nothing is
//! invalidated by a write. (In Python `response.body` does not even exist on the streamed
//! response `call_next` returns; here the body is read, so that the other flaws can be measured.)
//! The demo and the tests measure each flaw; the keys below are the source's other ones.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Response, header};
use axum::middleware::Next;
use redis::AsyncCommands;
use shared::metrics::Counter;
use shared::{Namespace, RedisConn};

/// The source's middleware's state.
pub struct SourceCache {
    conn: RedisConn,
    namespace: Namespace,
    /// Requests answered from Redis.
    pub hits: Counter,
}

impl SourceCache {
    /// The source's cache in `namespace` through `conn`.
    pub fn new(conn: RedisConn, namespace: Namespace) -> Arc<Self> {
        Arc::new(SourceCache {
            conn,
            namespace,
            hits: Counter::default(),
        })
    }

    /// The middleware: `request:{path}`, everything stored for 300 s.
    pub async fn respond(
        State(cache): State<Arc<SourceCache>>,
        request: Request,
        next: Next,
    ) -> Response<Body> {
        let key = cache
            .namespace
            .key(&format!("request:{}", request.uri().path()));
        let mut conn = cache.conn.clone();
        if let Ok(Some(body)) = conn.get::<_, Option<Vec<u8>>>(&key).await {
            cache.hits.inc();
            let mut response = Response::new(Body::from(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return response;
        }
        let response = next.run(request).await;
        let (head, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
        let _: Result<(), _> = conn.set_ex(&key, bytes.as_ref(), 300).await;
        Response::from_parts(head, Body::from(bytes))
    }
}

/// The source's listing key: `products:list:{category or 'all'}`. No category and the category
/// "all" get one key, so whichever is asked first answers both.
pub fn listing_key(category: Option<&str>) -> String {
    format!("products:list:{}", category.unwrap_or("all"))
}

/// The source's weather keys: one example builds `weather:{city}`, another
/// `weather:{city.lower()}`, so "Paris" and "paris" are two entries in one and one in the other;
/// neither trims spaces.
pub fn weather_keys(city: &str) -> [String; 2] {
    [
        format!("weather:{city}"),
        format!("weather:{}", city.to_lowercase()),
    ]
}

/// A key built from `str(topics)`, as the source's trending example builds its value: the same
/// topics in another order are another key, and a topic holding `', '` reads as two.
pub fn topics_key(topics: &[&str]) -> String {
    let quoted: Vec<String> = topics.iter().map(|t| format!("'{t}'")).collect();
    format!("trending:[{}]", quoted.join(", "))
}
