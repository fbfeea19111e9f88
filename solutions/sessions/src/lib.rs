//! # Solution: login sessions that end when they should
//!
//! The worked answer to `exercises/sessions`. Read the exercise first: the task descriptions are
//! the same here, the given parts are the exercise's own `given.rs`, included as it is, and only
//! the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/sessions/mistakes/<name>.patch`, run
//! `cargo test -p sessions-solution`, then `git apply -R` the same file.
//!
//! Every session is two keys in two hash slots: its record, and its digest in its user's index.
//! No script or transaction may span them on a Redis Cluster, so each change is a short sequence
//! of one-key steps in an order that fails safe: listed before written, deleted before unlisted.
//! An instance that dies half-way leaves at most an index entry for a session that does not exist,
//! which `logout_everywhere` and the index's TTL clear away; never a live session no index lists.

#![warn(missing_docs)]

#[path = "../../../exercises/sessions/src/given.rs"]
mod given;

use std::fmt;
use std::sync::LazyLock;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use rand::Rng;
use redis::{AsyncCommands, RedisResult, Script};

pub use given::{
    COOKIE_NAME, LoginError, NO_ACCOUNT_HASH, SessionStore, Timeouts, Users, id_digest,
};

/// A login session, as [`SessionStore::load`] found it.
///
/// Its ID is the key to the account: whoever sends it is logged in. So it is not a public field,
/// and it is never printed: read it with [`Session::secret_id`], where a reviewer sees it.
pub struct Session {
    id: String,
    /// Who is logged in.
    pub user: String,
    /// When the session was created (ms since 1970): the absolute deadline is
    /// `created_ms + absolute_ms`.
    pub created_ms: u64,
    /// When the idle deadline was last pushed out (ms since 1970): the idle deadline is
    /// `refreshed_ms + idle_ms`.
    pub refreshed_ms: u64,
    /// Whether the user has confirmed who they are for a sensitive action (task 3).
    pub elevated: bool,
}

impl Session {
    /// The session ID: what the cookie carries, and nothing else should.
    pub fn secret_id(&self) -> &str {
        &self.id
    }
}

/// ## Task 1c: a session that does not print its ID
///
/// A session is printed wherever someone logs a request or a `dbg!`: its `Debug` must show
/// `user`, `created_ms`, `refreshed_ms` and `elevated`, and the ID as `<redacted>`. The ID must
/// not appear in `{:?}` or `{:#?}`, whole or in part (a `#[derive(Debug)]` prints it: anyone who
/// reads the logs can log in as the user).
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &format_args!("<redacted>"))
            .field("user", &self.user)
            .field("created_ms", &self.created_ms)
            .field("refreshed_ms", &self.refreshed_ms)
            .field("elevated", &self.elevated)
            .finish()
    }
}

impl SessionStore {
    /// ## Task 1a: a session nobody can guess
    ///
    /// Creates a session for `user` at `now_ms` and returns it.
    ///
    /// - The ID is at least 16 bytes (128 bits) from `rand::rng()`, a generator seeded from the
    ///   operating system's, written as lowercase hex (32 digits or more), every bit of them
    ///   random: nothing from the clock, a counter or the user, which an attacker can guess. A
    ///   fresh ID on every call, even for the same user in the same millisecond. The tests
    ///   create dozens and look at every bit.
    /// - The record is a Redis hash at [`SessionStore::session_key`] with the fields `user`,
    ///   `created_ms` and `refreshed_ms` (both `now_ms`, as decimal text) and `elevated` (`0`).
    ///   The ID itself is stored nowhere in Redis, in no key and no value.
    /// - The record's key expires at the session's first deadline: its TTL is
    ///   `min(idle_ms, absolute_ms)`, set in the same call as the record (a script, or `MULTI`
    ///   ... `EXEC`), so that no session is ever without one, even if Redis fails between two
    ///   calls. The index's writes and its TTL likewise go in one call.
    /// - The ID's [`id_digest`] is added to the user's index, [`SessionStore::user_index_key`],
    ///   and the index's TTL is set to `absolute_ms` every time a session is added: never
    ///   shorter than the sessions it lists, and never without one. Add it to the index first,
    ///   then write the record: on a Redis Cluster they are in different slots, two calls, and
    ///   a listed session that does not exist is harmless where an unlisted one would survive
    ///   "log out everywhere".
    /// - The session returned has `created_ms` and `refreshed_ms` `now_ms`, `elevated` false.
    pub async fn create(&self, user: &str, now_ms: u64) -> redis::RedisResult<Session> {
        let id = new_id();
        let ttl_ms = self.timeouts.idle_ms.min(self.timeouts.absolute_ms);
        let session = Session {
            id,
            user: user.to_string(),
            created_ms: now_ms,
            refreshed_ms: now_ms,
            elevated: false,
        };
        self.save(&session, ttl_ms).await?;
        Ok(session)
    }

    /// ## Task 1b: a session that ends on time
    ///
    /// Returns the session whose ID is `id`, if it is valid at `now_ms`.
    ///
    /// - `None` for an ID without a record, and for a record that is not one [`Self::create`]
    ///   wrote: a missing field, a field that does not parse, a value that is not a hash (Redis
    ///   answers a hash command on it with a `WRONGTYPE` error). A corrupt record is no session:
    ///   never a panic, never an `Err`. Any other Redis error (Redis unreachable, a timeout) is
    ///   returned as the `Err` it is: not knowing is not "no session", and the service answers
    ///   it with a 503 rather than logging the user out.
    /// - A session is valid while `now_ms` is before both its idle deadline,
    ///   `refreshed_ms + idle_ms` (from the stored `refreshed_ms`, not from `created_ms`), and
    ///   its absolute deadline, `created_ms + absolute_ms`. At or past either, `load` returns
    ///   `None`, deletes the record and removes its digest from the user's index: an ended
    ///   session is gone at once, not when its TTL runs out.
    /// - Every call asks Redis. Keep no copy of a session in the process: another instance may
    ///   have logged it out a moment ago, and a session deleted from Redis (by any instance, or
    ///   by hand) is refused by the next `load`.
    ///
    /// ## Task 2: a sliding expiry without a write per request
    ///
    /// A valid session's idle deadline moves with its use, but a `load` writes only when more
    /// than `refresh_after_ms` has passed since the last refresh (`now_ms - refreshed_ms >
    /// refresh_after_ms`):
    ///
    /// - then it refreshes the session: `refreshed_ms` becomes `now_ms` in the record and in the
    ///   session returned, and the key's TTL is set to `min(now_ms + idle_ms, created_ms +
    ///   absolute_ms) - now_ms`: pushed out by the idle timeout, and never past the absolute
    ///   deadline;
    /// - otherwise it sends Redis no command that changes anything (no `HSET`, no `PEXPIRE`:
    ///   the tests watch every command that reaches the server, those of scripts too). A page
    ///   that loads twenty resources costs one write, not twenty.
    pub async fn load(&self, id: &str, now_ms: u64) -> redis::RedisResult<Option<Session>> {
        let key = self.session_key(id);
        let Some(mut session) = self.read(&key, id).await? else {
            return Ok(None);
        };
        let idle_deadline = session.refreshed_ms.saturating_add(self.timeouts.idle_ms);
        if now_ms >= idle_deadline.min(self.absolute_deadline(&session)) {
            self.end(&key, &session.user, &id_digest(id)).await?;
            return Ok(None);
        }
        if now_ms.saturating_sub(session.refreshed_ms) > self.timeouts.refresh_after_ms {
            let mut invocation = REFRESH.key(&key);
            invocation
                .arg(now_ms)
                .arg(self.ttl_ms(session.created_ms, now_ms));
            let refreshed: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
            if refreshed == 0 {
                // Logged out between the read and the refresh: it stays logged out.
                return Ok(None);
            }
            session.refreshed_ms = now_ms;
        }
        Ok(Some(session))
    }

    /// ## Task 1d: the cookie
    ///
    /// The value of the `Set-Cookie` header that hands `session` to the browser at `now_ms`:
    /// `id=<secret id>; Max-Age=<seconds>; Path=/; HttpOnly; SameSite=Lax`, and `; Secure` at
    /// the end when `secure` is true (only then: a browser drops a `Secure` cookie set over
    /// plain HTTP, as in local development).
    ///
    /// - The cookie's name is [`COOKIE_NAME`], its value the session's ID.
    /// - `HttpOnly`: scripts in the page cannot read it (an injected script cannot send it
    ///   away); `SameSite=Lax`: other sites' forms cannot post with it; `Path=/`; no `Domain`
    ///   (the cookie goes back to this host only).
    /// - `Max-Age` is the whole seconds left until the absolute deadline, `created_ms +
    ///   absolute_ms - now_ms` rounded down, 0 once past: the browser never keeps the cookie
    ///   longer than the server would accept it. (The idle deadline is the server's to
    ///   enforce.)
    ///
    /// The tests read the attributes in any order, their names in any case.
    pub fn set_cookie(&self, session: &Session, now_ms: u64, secure: bool) -> String {
        let left_ms = self.absolute_deadline(session).saturating_sub(now_ms);
        let mut cookie = format!(
            "{COOKIE_NAME}={}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax",
            session.id,
            left_ms / 1000
        );
        if secure {
            cookie.push_str("; Secure");
        }
        cookie
    }

    /// ## Task 3a: login, with a new ID every time
    ///
    /// Logs `name` in with `password` at `now_ms`. `previous` is the session ID the browser sent
    /// with the login form, if any.
    ///
    /// - Check the password against the user's hash in `users` with argon2:
    ///   `PasswordHash::new(hash)` and `Argon2::default().verify_password(password.as_bytes(),
    ///   &hash)`. An unknown name or a wrong password is [`LoginError::BadCredentials`], and
    ///   writes nothing to Redis: `previous` too stays as it was. (Verify against
    ///   [`NO_ACCOUNT_HASH`] for an unknown name, so that both take as long.)
    /// - A login creates a new session, as [`Self::create`] does, with an ID it never had
    ///   before: never `previous`, even when `previous` is a valid session, of this user or
    ///   another. An attacker who planted an ID of their own in the victim's browser (session
    ///   fixation) would otherwise be logged in as the victim once the victim logs in.
    /// - The previous session, if there is one, is ended as [`Self::logout`] ends it: its record
    ///   and its index entry are gone.
    pub async fn login(
        &self,
        users: &Users,
        name: &str,
        password: &str,
        previous: Option<&str>,
        now_ms: u64,
    ) -> Result<Session, LoginError> {
        let hash = users.password_hash(name);
        let password = password.to_string();
        // Argon2 takes tens of milliseconds of CPU on purpose: off the async threads.
        let verified = tokio::task::spawn_blocking(move || {
            let hash = PasswordHash::new(hash.unwrap_or(NO_ACCOUNT_HASH));
            hash.is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .await
        .expect("verifying a password does not panic");
        if !verified || hash.is_none() {
            return Err(LoginError::BadCredentials);
        }
        // The browser's session ends whoever it belonged to: only the new ID logs in.
        if let Some(previous) = previous {
            self.logout(previous).await?;
        }
        Ok(self.create(name, now_ms).await?)
    }

    /// ## Task 3b: a privilege change rotates the ID too
    ///
    /// The user of session `id` has confirmed who they are (typed their password again) before a
    /// sensitive action: returns their elevated session, or `None` if `id` is not valid at
    /// `now_ms` (as [`Self::load`] says, which may end it), creating no session and listing none
    /// then.
    ///
    /// - The elevated session has a new ID, the same `user`, `elevated` true, and the same
    ///   `created_ms`: its absolute deadline does not move (a rotation is not a way to live
    ///   for ever). `refreshed_ms` is `now_ms`, and its key's TTL `min(now_ms + idle_ms,
    ///   created_ms + absolute_ms) - now_ms`.
    /// - It is in the user's index (with the index's TTL set as in task 1a), and the old
    ///   session is ended as [`Self::logout`] ends it: the old ID is refused from now on.
    pub async fn elevate(&self, id: &str, now_ms: u64) -> redis::RedisResult<Option<Session>> {
        let Some(old) = self.load(id, now_ms).await? else {
            return Ok(None);
        };
        let session = Session {
            id: new_id(),
            user: old.user,
            created_ms: old.created_ms,
            refreshed_ms: now_ms,
            elevated: true,
        };
        self.save(&session, self.ttl_ms(session.created_ms, now_ms))
            .await?;
        self.logout(id).await?;
        Ok(Some(session))
    }

    /// ## Task 3c: logout, here and everywhere
    ///
    /// Ends the session `id`: deletes its record and removes its digest from its user's index.
    /// Returns whether its record was still in Redis (what `DEL` removed). Every instance refuses
    /// it at once.
    pub async fn logout(&self, id: &str) -> redis::RedisResult<bool> {
        let key = self.session_key(id);
        let user: Option<String> = match self.redis.clone().hget(&key, "user").await {
            Ok(user) => user,
            Err(error) if error.code() == Some("WRONGTYPE") => None,
            Err(error) => return Err(error),
        };
        let deleted: i64 = self.redis.clone().del(&key).await?;
        if let Some(user) = user {
            let _: i64 = self
                .redis
                .clone()
                .srem(self.user_index_key(&user), id_digest(id))
                .await?;
        }
        Ok(deleted == 1)
    }

    /// Ends every session of `user` (a stolen laptop, a changed password): deletes the record of
    /// every session the user's index lists, and the index's entries. Returns how many records
    /// it deleted: an entry whose record had already expired counts for nothing. Other users'
    /// sessions stay.
    pub async fn logout_everywhere(&self, user: &str) -> redis::RedisResult<usize> {
        let index = self.user_index_key(user);
        let digests: Vec<String> = self.redis.clone().smembers(&index).await?;
        let mut ended = 0;
        for digest in digests {
            // Entry by entry, not the whole index at once: a session listed after SMEMBERS
            // stays listed for the next "log out everywhere".
            ended += self
                .end(&self.session_key_of_digest(&digest), user, &digest)
                .await?;
        }
        Ok(ended)
    }
}

/// Writes a session's record and its TTL in one step (one key: a script runs whole, on a cluster
/// too), so that no record is ever without a TTL. KEYS[1]: the record. ARGV: the TTL in ms, then
/// the fields and values.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
",
    )
});

/// Pushes a session's idle deadline out: the new `refreshed_ms` and TTL, but only if the record
/// is still there. An `HSET` on a session another instance logged out a moment ago would bring a
/// part of it back. KEYS[1]: the record. ARGV: now in ms, the TTL in ms.
static REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
end
redis.call('HSET', KEYS[1], 'refreshed_ms', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

/// Adds a digest to a user's index and sets the index's TTL, in one step. KEYS[1]: the index.
/// ARGV: the digest, the TTL in ms.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

/// The fields of a session's record, in the order [`SessionStore::read`] asks for them.
const FIELDS: [&str; 4] = ["user", "created_ms", "refreshed_ms", "elevated"];

/// A new session ID: 16 bytes from the thread's CSPRNG (ChaCha, seeded from the operating system),
/// in 32 hex digits.
fn new_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl SessionStore {
    /// The session's record at `key` (whose ID is `id`), or `None` if there is none or it is not
    /// one this store wrote.
    async fn read(&self, key: &str, id: &str) -> RedisResult<Option<Session>> {
        let fields: Vec<Option<String>> = match redis::cmd("HMGET")
            .arg(key)
            .arg(&FIELDS)
            .query_async(&mut self.redis.clone())
            .await
        {
            Ok(fields) => fields,
            Err(error) if error.code() == Some("WRONGTYPE") => return Ok(None),
            Err(error) => return Err(error),
        };
        let parse = || -> Option<Session> {
            let [user, created, refreshed, elevated] =
                <[Option<String>; 4]>::try_from(fields).ok()?;
            Some(Session {
                id: id.to_string(),
                user: user?,
                created_ms: created?.parse().ok()?,
                refreshed_ms: refreshed?.parse().ok()?,
                elevated: match elevated?.as_str() {
                    "1" => true,
                    "0" => false,
                    _ => return None,
                },
            })
        };
        Ok(parse())
    }

    /// Lists `session` in its user's index, then writes its record with a TTL of `ttl_ms`.
    async fn save(&self, session: &Session, ttl_ms: u64) -> RedisResult<()> {
        let digest = id_digest(&session.id);
        let mut list = LIST.key(self.user_index_key(&session.user));
        list.arg(&digest).arg(self.timeouts.absolute_ms.max(1));
        let _: i64 = list.invoke_async(&mut self.redis.clone()).await?;

        let mut save = SAVE.key(self.session_key_of_digest(&digest));
        save.arg(ttl_ms.max(1))
            .arg("user")
            .arg(&session.user)
            .arg("created_ms")
            .arg(session.created_ms)
            .arg("refreshed_ms")
            .arg(session.refreshed_ms)
            .arg("elevated")
            .arg(if session.elevated { "1" } else { "0" });
        let _: i64 = save.invoke_async(&mut self.redis.clone()).await?;
        Ok(())
    }

    /// Deletes the record at `key`, then removes `digest` from `user`'s index. Returns 1 if there
    /// was a record, else 0.
    async fn end(&self, key: &str, user: &str, digest: &str) -> RedisResult<usize> {
        let deleted: usize = self.redis.clone().del(key).await?;
        let _: i64 = self
            .redis
            .clone()
            .srem(self.user_index_key(user), digest)
            .await?;
        Ok(deleted)
    }

    /// When `session` ends however busy it is.
    fn absolute_deadline(&self, session: &Session) -> u64 {
        session.created_ms.saturating_add(self.timeouts.absolute_ms)
    }

    /// The TTL, from `now_ms`, of a session created at `created_ms` and refreshed now: until the
    /// sooner of its two deadlines, and at least 1 ms (`PEXPIRE key 0` would delete it).
    fn ttl_ms(&self, created_ms: u64, now_ms: u64) -> u64 {
        let idle_deadline = now_ms.saturating_add(self.timeouts.idle_ms);
        let absolute_deadline = created_ms.saturating_add(self.timeouts.absolute_ms);
        idle_deadline
            .min(absolute_deadline)
            .saturating_sub(now_ms)
            .max(1)
    }
}
