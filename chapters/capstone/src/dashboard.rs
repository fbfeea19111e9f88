//! `/dashboard`: one page that polls `/stats.json` each second and shows it, with the alerts.
//!
//! No build step and no library: the page is HTML, CSS and a little JavaScript in one file,
//! compiled into the binary, so that the dashboard is there wherever the service runs. It shows
//! what `/stats.json` says and computes nothing of its own, so that what an operator reads is
//! what the tests check.

use axum::response::Html;

/// The page.
const PAGE: &str = include_str!("dashboard.html");

/// `GET /dashboard`.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}
