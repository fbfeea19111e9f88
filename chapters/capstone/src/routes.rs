//! One instance's routes: the API behind the rate limit, the sessions lesson's sign-in routes and
//! the administration behind its session middleware; the operator's routes (`/health`, `/ready`,
//! `/metrics`, `/stats.json`, `/dashboard`) outside both; every request timed.

use std::sync::Arc;

use axum::Router;
use axum::middleware::{self, from_fn_with_state};
use axum::routing::{get, post, put};
use http_caching::ResponseCache;

use crate::service::Service;
use crate::{admin, api, dashboard, health, limits, observe, stats};

// ANCHOR: routes
/// The service's routes: the API behind the rate limit, the sessions lesson's sign-in routes
/// and the administration behind its session middleware, the operator's routes outside both
/// (a load balancer's or Prometheus's polls are not a client's requests), and every request
/// timed by [`observe::observe`].
pub fn routes(service: &Arc<Service>, deployment: &sessions::Deployment) -> Router {
    let mut products = Router::new()
        .route("/products", get(api::listing).post(api::create_product))
        .route(
            "/products/{id}",
            get(api::product).delete(api::delete_product),
        )
        .route("/products/{id}/price", put(api::set_price))
        .with_state(service.clone());
    if let Some(responses) = &service.responses {
        let respond = from_fn_with_state(responses.clone(), ResponseCache::respond);
        products = products.layer(respond);
    }
    let api = Router::new()
        .route("/pages/{category}/{page}", get(api::page))
        .route("/analytics/dashboard", get(api::dashboard))
        .route("/weather/{city}", get(api::weather))
        .route("/rates/{currency}", get(api::rates))
        .route("/tasks", post(api::create_task))
        .route("/tasks/stats", get(api::task_stats))
        .route(
            "/tasks/{id}",
            get(api::task)
                .put(api::update_task)
                .delete(api::delete_task),
        )
        .route("/news", get(api::news))
        .route("/news/trending", get(api::trending))
        .route("/news/{id}", get(api::article).put(api::update_article))
        .route("/news/{id}/views", post(api::view))
        .with_state(service.clone())
        .merge(products);
    let signed_in = sessions::api::accounts()
        .with_state(service.sessions.clone())
        .merge(
            Router::new()
                .route("/admin/cache/clear", post(admin::clear))
                .route("/admin/cache/groups/{group}", post(admin::drop_group))
                .with_state(service.clone()),
        )
        .layer(deployment.layer(&service.sessions.store));
    api.merge(signed_in)
        .layer(middleware::from_fn_with_state(
            service.limiter.clone(),
            limits::limit,
        ))
        .merge(operator(service))
        .layer(from_fn_with_state(service.clone(), observe::observe))
}

/// What an operator and a load balancer ask an instance.
fn operator(service: &Arc<Service>) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(observe::metrics))
        .route("/stats.json", get(stats::stats))
        .route("/dashboard", get(dashboard::page))
        .with_state(service.clone())
}
// ANCHOR_END: routes
