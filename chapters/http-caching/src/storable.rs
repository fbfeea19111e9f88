//! What a shared cache may store, and for how long (RFC 9111 §3 and §5.2.2).
//!
//! The source material's middleware stored every response it saw, errors included, for 300
//! seconds. A shared cache, one whose entries are served to every user, may store a response only
//! when nothing in it belongs to one user and its lifetime is stated:
//!
//! - a `200`, or a `404` chosen to be cached, for no longer than [`NEGATIVE_TTL_CAP`] (a product
//!   that does not exist yet should not stay missing for a minute after it is created). Errors,
//!   redirects and everything else pass through;
//! - never with `Set-Cookie` (the cookie is somebody's), `private` or `no-store`, nor `Vary: *`,
//!   nor a `Vary` on a header the key does not cover; nor `no-cache`, which allows storing only to
//!   a cache that asks the origin before each reuse, and this one never asks;
//! - for a request that carried `Authorization`, only if the response says `public` or
//!   `s-maxage` (§3.5): otherwise it may be personal even though nothing above says so;
//! - for `s-maxage` if given (the lifetime for shared caches), else `max-age`; without either, not
//!   at all.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};

/// The longest a `404` is kept.
pub const NEGATIVE_TTL_CAP: Duration = Duration::from_secs(5);

/// The directives of a `Cache-Control` header that decide storing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `public`: any cache may store it, even for an authorised request.
    pub public: bool,
    /// `private`: only the user's own (browser) cache may.
    pub private: bool,
    /// `no-store`: nobody may.
    pub no_store: bool,
    /// `no-cache`: a cache may store it, but must ask the origin before every reuse.
    pub no_cache: bool,
    /// `max-age`, in seconds.
    pub max_age: Option<u64>,
    /// `s-maxage`, in seconds: `max-age` for shared caches.
    pub s_maxage: Option<u64>,
}

impl CacheControl {
    /// The directives of every `Cache-Control` header in `headers`; unknown ones are ignored.
    pub fn of(headers: &HeaderMap) -> CacheControl {
        let mut parsed = CacheControl::default();
        let directives = headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','));
        for directive in directives {
            let (name, value) = match directive.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds = value.and_then(|v| v.parse().ok());
            match name.to_ascii_lowercase().as_str() {
                "public" => parsed.public = true,
                "private" => parsed.private = true,
                "no-store" => parsed.no_store = true,
                "no-cache" => parsed.no_cache = true,
                "max-age" => parsed.max_age = seconds,
                "s-maxage" => parsed.s_maxage = seconds,
                _ => {}
            }
        }
        parsed
    }
}

/// Why a response was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Its status is not one the cache keeps.
    Status(StatusCode),
    /// It sets a cookie.
    SetsCookie,
    /// It is `private` or `no-store`.
    Private,
    /// It is `no-cache`: every reuse must be revalidated, which this cache does not do.
    MustRevalidate,
    /// It varies on something the key does not cover (or on everything, `Vary: *`).
    Varies,
    /// The request was authorised and the response does not say it may be shared.
    Authorised,
    /// It states no lifetime for a shared cache.
    NoLifetime,
}

// ANCHOR: storable
/// How long a shared cache may keep `status` with `headers`, sent for a request that did (or did
/// not) carry `Authorization`; or why it may not. `covered_vary` lists the request headers the key
/// covers, lower case.
pub fn storable(
    status: StatusCode,
    headers: &HeaderMap,
    authorised: bool,
    covered_vary: &[&str],
) -> Result<Duration, NotStored> {
    if status != StatusCode::OK && status != StatusCode::NOT_FOUND {
        return Err(NotStored::Status(status));
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetsCookie);
    }
    let control = CacheControl::of(headers);
    if control.private || control.no_store {
        return Err(NotStored::Private);
    }
    if control.no_cache {
        return Err(NotStored::MustRevalidate);
    }
    let varies_beyond_the_key = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .any(|name| !covered_vary.contains(&name.as_str()));
    if varies_beyond_the_key {
        return Err(NotStored::Varies);
    }
    if authorised && !control.public && control.s_maxage.is_none() {
        return Err(NotStored::Authorised);
    }
    let seconds = control.s_maxage.or(control.max_age).filter(|&s| s > 0);
    let lifetime = Duration::from_secs(seconds.ok_or(NotStored::NoLifetime)?);
    Ok(if status == StatusCode::NOT_FOUND {
        lifetime.min(NEGATIVE_TTL_CAP)
    } else {
        lifetime
    })
}
// ANCHOR_END: storable

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    const ENC: &[&str] = &["accept-encoding"];

    #[test]
    fn a_public_page_is_kept_for_s_maxage_and_a_404_for_at_most_the_cap() {
        let public = headers(&[(header::CACHE_CONTROL, "public, max-age=10, s-maxage=60")]);
        assert_eq!(
            storable(StatusCode::OK, &public, true, ENC),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            storable(StatusCode::NOT_FOUND, &public, false, ENC),
            Ok(NEGATIVE_TTL_CAP)
        );
        let short = headers(&[(header::CACHE_CONTROL, "max-age=3")]);
        assert_eq!(
            storable(StatusCode::NOT_FOUND, &short, false, ENC),
            Ok(Duration::from_secs(3))
        );
    }

    #[test]
    fn what_belongs_to_one_user_or_states_no_lifetime_is_refused() {
        let public = (header::CACHE_CONTROL, "public, max-age=60");
        for (status, set, authorised, why) in [
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![public.clone()],
                false,
                NotStored::Status(StatusCode::INTERNAL_SERVER_ERROR),
            ),
            (
                StatusCode::BAD_REQUEST,
                vec![public.clone()],
                false,
                NotStored::Status(StatusCode::BAD_REQUEST),
            ),
            (
                StatusCode::OK,
                vec![public.clone(), (header::SET_COOKIE, "id=1")],
                false,
                NotStored::SetsCookie,
            ),
            (
                StatusCode::OK,
                vec![(header::CACHE_CONTROL, "private, max-age=60")],
                false,
                NotStored::Private,
            ),
            (
                StatusCode::OK,
                vec![(header::CACHE_CONTROL, "no-store")],
                false,
                NotStored::Private,
            ),
            (
                StatusCode::OK,
                vec![public.clone(), (header::VARY, "*")],
                false,
                NotStored::Varies,
            ),
            (
                StatusCode::OK,
                vec![public.clone(), (header::VARY, "Accept-Encoding, Cookie")],
                false,
                NotStored::Varies,
            ),
            (
                StatusCode::OK,
                vec![(header::CACHE_CONTROL, "max-age=60")],
                true,
                NotStored::Authorised,
            ),
            (
                StatusCode::OK,
                vec![(header::CACHE_CONTROL, "public")],
                false,
                NotStored::NoLifetime,
            ),
            (StatusCode::OK, vec![], false, NotStored::NoLifetime),
        ] {
            assert_eq!(
                storable(status, &headers(&set), authorised, ENC),
                Err(why),
                "{set:?}"
            );
        }
        let varies_on_encoding = headers(&[public, (header::VARY, "accept-encoding")]);
        assert!(storable(StatusCode::OK, &varies_on_encoding, false, ENC).is_ok());
    }
}
