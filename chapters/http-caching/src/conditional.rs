//! Conditional requests (RFC 9110 §8.8 and §13): "send it only if it changed".
//!
//! A client that kept a response sends its `ETag` back in `If-None-Match`. If the current
//! response would carry a matching ETag, the answer is `304 Not Modified` with no body: the client
//! uses its copy. With the ETag stored beside the cached body, the cache answers that from a few
//! bytes of Redis, without reading the body and without the database.
//!
//! Three details the usual versions get wrong:
//!
//! - `If-None-Match` uses the *weak* comparison: `W/"7"` matches `"7"`; it may list several tags,
//!   or be `*` (any current representation);
//! - a `304` must repeat the headers a `200` would have sent that describe caching: `ETag`,
//!   `Cache-Control`, `Vary` (and `Age` from a cache), or the client's copy loses them;
//! - one resource has one representation per content coding, and a strong ETag names one
//!   representation, so a gzipped body must not carry the identity body's ETag. Here the
//!   compressed one gets `"7-gzip"` ([`etag_per_encoding`]); nginx weakens the tag instead (`W/"7"`),
//!   which is also correct, but lets two byte-different bodies pass as one.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

// ANCHOR: matches
/// Whether `if_none_match` matches `etag` by the weak comparison: the opaque tags are equal,
/// whether or not either is marked weak (`W/`), or the header is `*`.
pub fn matches(if_none_match: &HeaderValue, etag: &str) -> bool {
    let Ok(listed) = if_none_match.to_str() else {
        return false;
    };
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    let current = opaque(etag);
    listed
        .split(',')
        .any(|tag| tag.trim() == "*" || opaque(tag) == current)
}
// ANCHOR_END: matches

/// The headers a `304` repeats from the `200` it stands for.
pub const REPEATED: [header::HeaderName; 4] = [
    header::ETAG,
    header::CACHE_CONTROL,
    header::VARY,
    header::AGE,
];

/// A `304 Not Modified` carrying `headers`' validators and caching headers, and no body.
pub fn not_modified(headers: &HeaderMap) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    for name in REPEATED {
        for value in headers.get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

// ANCHOR: etag_per_encoding
/// Gives a compressed response an ETag of its own: `"7"` becomes `"7-gzip"`. Placed outside the
/// compression layer, so it sees what compression did. Weak tags are left as they are: they
/// already claim only that the two bodies mean the same.
pub async fn etag_per_encoding(mut response: Response<Body>) -> Response<Body> {
    let coding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let strong = response
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|tag| tag.starts_with('"'))
        .map(str::to_string);
    if let (Some(coding), Some(tag)) = (coding, strong) {
        let tagged = format!("{}-{coding}\"", tag.trim_end_matches('"'));
        if let Ok(value) = HeaderValue::from_str(&tagged) {
            response.headers_mut().insert(header::ETAG, value);
        }
    }
    response
}
// ANCHOR_END: etag_per_encoding

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weak_comparison_lists_and_star() {
        let header = |s: &'static str| HeaderValue::from_static(s);
        assert!(matches(&header("\"7\""), "\"7\""));
        assert!(matches(&header("W/\"7\""), "\"7\""));
        assert!(matches(&header("\"7\""), "W/\"7\""));
        assert!(matches(&header("\"6\", \"7\""), "\"7\""));
        assert!(matches(&header("*"), "\"7\""));
        assert!(!matches(&header("\"6\""), "\"7\""));
        assert!(!matches(&header("\"7-gzip\""), "\"7\""));
        assert!(!matches(&header("\"17\""), "\"7\""));
    }
}
