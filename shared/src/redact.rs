//! Passwords never printed: every URL the course shows goes through [`redact`].
//!
//! A URL's password sits between the first `:` of its user information and the `@` before the
//! host. People paste passwords unencoded, so a password may itself hold `/`, `:` or `@`: the host
//! is what follows the *last* `@`, and everything from the first `:` up to it is hidden. When in
//! doubt (an `@` further on, in a path or a query) this hides too much, never too little.

/// `url` with its password, if it has one, replaced by `***`: `redis://:***@host:6379/`,
/// `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let Some(at) = url[scheme_end..].rfind('@').map(|i| scheme_end + i) else {
        return url.to_string();
    };
    match url[scheme_end..at].find(':').map(|i| scheme_end + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "redis://:s3cret@10.0.0.1:6379/0",
                "redis://:***@10.0.0.1:6379/0",
            ),
            (
                "postgres://ann:p@ss:w0rd@db/course",
                "postgres://ann:***@db/course",
            ),
            // A `/` in the password once ended the search for the `@` early.
            ("redis://:s3cret/x@host/", "redis://:***@host/"),
            ("redis://:a?b#c@host:6380/2", "redis://:***@host:6380/2"),
            // Nothing to hide.
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://user@host/", "redis://user@host/"),
            ("sqlite:///tmp/a@b.db", "sqlite:///tmp/a@b.db"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "redact({url:?})");
        }
    }
}
