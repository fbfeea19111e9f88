//! The given parts of the sessions exercise: the timeouts, the store's connection and namespace,
//! where a session and a user's index live in Redis, the accounts that may log in, and the error a
//! login returns. Written for you; the tasks are in `lib.rs`. (The worked answer in
//! `solutions/sessions` includes this very file, so the two can never drift apart.)

use redis::RedisError;
use sha2::{Digest, Sha256};
use shared::{Namespace, RedisConn};

/// The name of the session cookie. A generic name: it tells an onlooker nothing about the
/// framework behind it (OWASP's advice).
pub const COOKIE_NAME: &str = "id";

/// How long a session may live. All in milliseconds, like the `now_ms` every call takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A session not used for this long is over: the *idle* timeout.
    pub idle_ms: u64,
    /// A session is over this long after it was created, however busy it is: the *absolute*
    /// timeout. A stolen cookie in steady use dies with it.
    pub absolute_ms: u64,
    /// A load pushes the idle deadline out only when more than this has passed since the last
    /// push, so that a burst of requests costs one write, not one each.
    pub refresh_after_ms: u64,
}

impl Default for Timeouts {
    /// 30 minutes idle, 8 hours absolute (a working day), a refresh at most once a minute.
    fn default() -> Self {
        Timeouts {
            idle_ms: 30 * 60 * 1000,
            absolute_ms: 8 * 60 * 60 * 1000,
            refresh_after_ms: 60 * 1000,
        }
    }
}

/// The sessions of one service instance. Every instance has its own connection; they share the
/// Redis, and so the sessions.
pub struct SessionStore {
    /// The Redis connection (clone it to get a `&mut` one: clones share the connection).
    pub redis: RedisConn,
    /// The prefix of every key; the key functions below apply it.
    pub namespace: Namespace,
    /// How long sessions live.
    pub timeouts: Timeouts,
}

impl SessionStore {
    /// Where the session whose ID is `id` lives: `...{session:<digest>}`, with the ID's
    /// [`id_digest`] in place of the ID, so that nothing in Redis (a key list, a replica, a
    /// backup, a slow log) hands out an ID that logs anyone in.
    pub fn session_key(&self, id: &str) -> String {
        self.session_key_of_digest(&id_digest(id))
    }

    /// Where the session whose ID has the digest `digest` lives: what a user's index lists.
    pub fn session_key_of_digest(&self, digest: &str) -> String {
        self.namespace.key(&format!("session:{digest}"))
    }

    /// Where the index of `user`'s sessions lives: a set of the digests of their session IDs, for
    /// "log out everywhere". It is in a hash slot of its own, not the sessions' (on a Redis
    /// Cluster, one script or transaction cannot touch both).
    pub fn user_index_key(&self, user: &str) -> String {
        self.namespace.key(&format!("user:{user}:sessions"))
    }
}

/// The SHA-256 of a session ID, in 64 lowercase hex digits: what Redis holds instead of the ID.
/// A digest cannot be turned back into the ID, and an ID of 128 random bits cannot be guessed from
/// its digest either.
pub fn id_digest(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The accounts that may log in: names and Argon2id password hashes in the PHC string format
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), the parameters OWASP recommends. The
/// hashes were computed once and pasted here: hashing is slow on purpose (about 20 ms each).
///
/// The demo passwords: alice's is `correct horse battery staple`, bob's
/// `hunter2 is not a password`.
pub struct Users {
    accounts: Vec<(&'static str, &'static str)>,
}

impl Users {
    /// alice and bob.
    pub fn demo() -> Users {
        Users {
            accounts: vec![
                (
                    "alice",
                    "$argon2id$v=19$m=19456,t=2,p=1$WhHOAX5ToXCdK0ToE2/AIQ$\
                     xzQOFwxx43UAwwIPg9e2Fpds82rKC1Fey1SvnUHsWMo",
                ),
                (
                    "bob",
                    "$argon2id$v=19$m=19456,t=2,p=1$sLU6F4QM4p9h1yVIqg5xPA$\
                     NX2FoKmrtXMOCON1mPxGGlPgsbIQXf+qTsT8/BYa37I",
                ),
            ],
        }
    }

    /// The PHC string of `name`'s password hash, or `None` if there is no such account.
    pub fn password_hash(&self, name: &str) -> Option<&'static str> {
        self.accounts
            .iter()
            .find(|(account, _)| *account == name)
            .map(|(_, hash)| *hash)
    }
}

/// A hash of a password no account has, with the same parameters as the accounts': verifying a
/// password against it takes as long as against a real account's, so that a login for a name that
/// does not exist is no faster than one with a wrong password (a faster answer tells an attacker
/// which names exist).
pub const NO_ACCOUNT_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$AG4LDXkVQvOMV5DhLbs2BA$\
                                   58iswX8fwUarjZVoozPCLIXUhPWCXZQbDavFUz0e77U";

/// Why a login failed.
#[derive(Debug)]
pub enum LoginError {
    /// No such user, or the wrong password: the same answer for both, so that a login form does
    /// not tell an attacker which names exist.
    BadCredentials,
    /// Redis answered with an error.
    Redis(RedisError),
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::BadCredentials => write!(f, "wrong user name or password"),
            LoginError::Redis(error) => write!(f, "the session store failed: {error}"),
        }
    }
}

impl std::error::Error for LoginError {}

impl From<RedisError> for LoginError {
    fn from(error: RedisError) -> Self {
        LoginError::Redis(error)
    }
}
