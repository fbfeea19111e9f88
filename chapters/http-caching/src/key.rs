//! The cache key of a response: everything the answer depends on, and nothing else.
//!
//! Two requests may share a cached response only if the application would have sent both the
//! same bytes. So the key covers:
//!
//! - the **method** and the **path**;
//! - the **query, normalised**: parsed by the route's own rules, with defaults filled in, so that
//!   `?page=1&category=tea` and `?category=tea` share one entry while `?category=all` (a category
//!   named "all") and no category (every category) do not, as they did in the source material;
//! - the **request headers the response varies on**: here `Accept-Encoding`, reduced to the one
//!   thing that changes the bytes (gzip or not), so `gzip, br` and `gzip` share an entry;
//! - the **user**, for a personal route only: in a public route's key it would give each user a
//!   copy of the same page, and the hit ratio would fall by the number of users.
//!
//! These are serialised and hashed ([`shared::keys::hashed`]), never joined with `:`, so two
//! different requests cannot meet on one key. The key starts with the request's *group* in a hash
//! tag (`resp:{p42}:...`): every entry of one product, or of one category's listing, lives in one
//! Redis Cluster slot with the generation and the member set that invalidate them.

use axum::http::{HeaderMap, Method, header};
use serde::Serialize;
use shared::Namespace;

/// What the routes tell the response cache about a request it may cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// The group its entries belong to, which a write invalidates as a whole: `p42` for product
    /// 42, `c:tea` for the tea listing, `c` for the listing of every category.
    pub group: String,
    /// The query, parsed and with its defaults filled in.
    pub query: serde_json::Value,
    /// The user, for a personal route; `None` on a public one, whoever asked.
    pub user: Option<u32>,
}

/// How the response's bytes depend on `Accept-Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The client accepts gzip: the compressed body.
    Gzip,
    /// It does not: the body as the handler wrote it.
    Identity,
}

impl Encoding {
    /// What a request's `Accept-Encoding` gets: gzip if listed and not refused with `q=0`.
    pub fn of(headers: &HeaderMap) -> Encoding {
        let accepts_gzip = headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|coding| {
                let mut parts = coding.split(';').map(str::trim);
                let name = parts.next().unwrap_or("");
                let refused = parts
                    .filter_map(|p| p.strip_prefix("q="))
                    .any(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0));
                name.eq_ignore_ascii_case("gzip") && !refused
            });
        if accepts_gzip {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

/// What is hashed into the key.
#[derive(Serialize)]
struct KeyParts<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a serde_json::Value,
    encoding: Encoding,
    user: Option<u32>,
}

// ANCHOR: response_key
/// The key of the response to `method path` as `described`, for a client whose headers are
/// `headers`: `<namespace>resp:{<group>}:<128-bit hash>`.
pub fn response_key(
    namespace: &Namespace,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    described: &Described,
) -> String {
    let parts = KeyParts {
        method: method.as_str(),
        path,
        query: &described.query,
        encoding: Encoding::of(headers),
        user: described.user,
    };
    let hashed = shared::keys::hashed("resp", &parts);
    let hash = hashed.trim_start_matches("resp:");
    format!("{}resp:{{{}}}:{hash}", namespace.prefix(), described.group)
}
// ANCHOR_END: response_key

/// The generation of `group`: raised by every invalidation of the group, read by a reader before it
/// loads, so that it cannot store what it loaded after a write removed the group's entries.
pub fn generation_key(namespace: &Namespace, group: &str) -> String {
    format!("{}gen:{{{group}}}", namespace.prefix())
}

/// The set of `group`'s entries, which an invalidation removes.
pub fn members_key(namespace: &Namespace, group: &str) -> String {
    format!("{}members:{{{group}}}", namespace.prefix())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn gzip_is_chosen_unless_refused() {
        assert_eq!(Encoding::of(&accepting("gzip")), Encoding::Gzip);
        assert_eq!(Encoding::of(&accepting("br, GZIP;q=0.5")), Encoding::Gzip);
        assert_eq!(Encoding::of(&accepting("gzip;q=0")), Encoding::Identity);
        assert_eq!(Encoding::of(&accepting("br")), Encoding::Identity);
        assert_eq!(Encoding::of(&HeaderMap::new()), Encoding::Identity);
    }

    #[test]
    fn the_key_changes_with_everything_the_answer_depends_on_and_nothing_else() {
        let ns = Namespace::adopt("t:");
        let described = |query: serde_json::Value, user| Described {
            group: "c".into(),
            query,
            user,
        };
        let base = described(serde_json::json!({"page": 1}), None);
        let key = |method: &Method, path: &str, headers: &HeaderMap, d: &Described| {
            response_key(&ns, method, path, headers, d)
        };
        let plain = HeaderMap::new();
        let first = key(&Method::GET, "/products", &plain, &base);
        assert!(first.starts_with("t:resp:{c}:"), "{first}");
        assert_eq!(first, key(&Method::GET, "/products", &plain, &base.clone()));
        for other in [
            key(&Method::HEAD, "/products", &plain, &base),
            key(&Method::GET, "/other", &plain, &base),
            key(&Method::GET, "/products", &accepting("gzip"), &base),
            key(
                &Method::GET,
                "/products",
                &plain,
                &described(serde_json::json!({"page": 2}), None),
            ),
            key(
                &Method::GET,
                "/products",
                &plain,
                &described(serde_json::json!({"page": 1}), Some(1)),
            ),
        ] {
            assert_ne!(first, other);
        }
        // Headers the response does not vary on change nothing.
        let mut noise = HeaderMap::new();
        noise.insert(header::USER_AGENT, HeaderValue::from_static("curl"));
        assert_eq!(first, key(&Method::GET, "/products", &noise, &base));
    }
}
