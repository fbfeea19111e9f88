//! The application as the demo and the tests run it: the routes, compression, and one of the
//! caches being compared in front.
//!
//! The layers, from the outside in:
//!
//! ```text
//! response cache  ->  ETag per encoding  ->  gzip  ->  routes
//! ```
//!
//! The response cache sits outside compression, so it keeps the compressed body (a hit costs no
//! compression) and an entry per encoding; the ETag layer between them gives the compressed body
//! an ETag of its own. The source material's middleware sits where its FastAPI version did, inside
//! compression, right in front of the handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::{from_fn_with_state, map_response};
use shared::{Namespace, RedisConn};
use tower_http::compression::CompressionLayer;

use crate::api;
use crate::catalogue::Catalogue;
use crate::conditional::etag_per_encoding;
use crate::response_cache::ResponseCache;
use crate::source::SourceCache;

shared::variants! {
    /// The caches the demo compares.
    pub enum Caching {
        /// Every request reaches the handlers and the database.
        NoCache = ("none", "no cache"),
        /// The source material's middleware: the path as the key, everything stored.
        Source = ("source", "source's middleware"),
        /// The lesson's response cache.
        Response = ("response", "response cache"),
        /// The response cache answering `If-None-Match` from Redis, to clients that keep ETags.
        Conditional = ("conditional", "response cache + 304s"),
    }
}

/// How long a Redis call of the response cache may take before the request goes through.
pub const REDIS_BUDGET: Duration = Duration::from_millis(100);

/// The running caches' counters.
#[derive(Clone, Default)]
pub struct Caches {
    /// The lesson's response cache, if in front.
    pub response: Option<Arc<ResponseCache>>,
    /// The source's middleware, if in front.
    pub source: Option<Arc<SourceCache>>,
}

// ANCHOR: app
/// The application with `caching` in front, its entries under `namespace` through `conn`.
pub fn app(
    catalogue: Catalogue,
    caching: Caching,
    conn: RedisConn,
    namespace: Namespace,
) -> (Router, Caches) {
    let routes = api::routes(catalogue);
    match caching {
        Caching::NoCache => (compressed(routes), Caches::default()),
        Caching::Source => {
            let source = SourceCache::new(conn, namespace);
            let routes = routes.layer(from_fn_with_state(source.clone(), SourceCache::respond));
            let caches = Caches {
                source: Some(source),
                ..Caches::default()
            };
            (compressed(routes), caches)
        }
        Caching::Response | Caching::Conditional => {
            let conditional = caching == Caching::Conditional;
            let cache =
                ResponseCache::new(conn, namespace, api::describe, conditional, REDIS_BUDGET);
            let app =
                compressed(routes).layer(from_fn_with_state(cache.clone(), ResponseCache::respond));
            let caches = Caches {
                response: Some(cache),
                ..Caches::default()
            };
            (app, caches)
        }
    }
}
// ANCHOR_END: app

/// `routes` behind gzip, with an ETag per encoding.
fn compressed(routes: Router) -> Router {
    routes
        .layer(CompressionLayer::new())
        .layer(map_response(etag_per_encoding))
}
