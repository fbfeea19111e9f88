//! The browser's side, as the demo's users, the attacker and the tests play it: requests to an
//! instance with a session cookie of their choosing, and the cookie each answer sets.
//!
//! No cookie jar: whose cookie goes where is the point of every scenario (a victim's, a stolen
//! one, a planted one), so each request names the one it sends.

use reqwest::{Client, Method, StatusCode};
use serde::Serialize;

/// The session cookie's name: tower-sessions' default, and as OWASP advises, a name that does not
/// say which framework made it.
pub const COOKIE: &str = "id";

/// An instance's answer.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its body.
    pub body: String,
    /// Its whole `Set-Cookie` header for the session cookie, attributes included.
    pub set_cookie: Option<String>,
}

impl Answer {
    /// The session ID the answer gives the browser: `None` if it sets none, `Some("")` if it
    /// removes the cookie.
    pub fn new_id(&self) -> Option<&str> {
        let header = self.set_cookie.as_deref()?;
        let pair = header.split(';').next()?;
        pair.strip_prefix(COOKIE)?.strip_prefix('=')
    }
}

/// Sends `method path` to `base` with the session cookie `id` (if any) and `json` (if any).
pub async fn send(
    client: &Client,
    method: Method,
    url: &str,
    id: Option<&str>,
    json: Option<&impl Serialize>,
) -> reqwest::Result<Answer> {
    let mut request = client.request(method, url);
    if let Some(id) = id {
        request = request.header("cookie", format!("{COOKIE}={id}"));
    }
    if let Some(json) = json {
        request = request
            .header("content-type", "application/json")
            .body(serde_json::to_vec(json).expect("a form encodes as JSON"));
    }
    let response = request.send().await?;
    let status = response.status();
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{COOKIE}=")))
        .map(str::to_owned);
    let body = response.text().await?;
    Ok(Answer {
        status,
        body,
        set_cookie,
    })
}
