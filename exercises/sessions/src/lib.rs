//! # Exercise: login sessions that end when they should
//!
//! A web shop runs as several instances behind a load balancer. A customer logs in on one, and
//! the next request may reach another, so the sessions live in Redis, where every instance sees
//! the same ones. You will write the session store three tasks deep: sessions that cannot be
//! guessed and end on time, a sliding expiry that does not cost a write per request, and login,
//! privilege change and logout done so that a planted or stolen ID buys an attacker as little as
//! possible (the rules are OWASP's Session Management Cheat Sheet). Run the graded tests with
//!
//! ```text
//! cargo test -p sessions-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests of one task run alone with
//! `cargo test -p sessions-exercise task1` (or `task2`, `task3`). They use a real Redis (a
//! Redis Cluster too, in CI), two service instances at once, and they read your keys, their
//! fields and their TTLs, and watch which commands reach the server. Stuck? Each task has a hint
//! in `exercises/sessions/HINTS.md` (also in the book), and a worked answer in
//! `solutions/sessions`.
//!
//! What you have to work with (all given, in `src/given.rs`):
//! - [`SessionStore`]: one service instance's connection, its namespace and its [`Timeouts`];
//! - where things live: [`SessionStore::session_key`] (a session, under the SHA-256 of its ID,
//!   [`id_digest`], never the ID itself), [`SessionStore::session_key_of_digest`] and
//!   [`SessionStore::user_index_key`] (a set of the digests of a user's sessions); the tests look
//!   there;
//! - [`Users`], the accounts with their Argon2id password hashes, [`NO_ACCOUNT_HASH`], and
//!   [`LoginError`]; [`COOKIE_NAME`];
//! - the crates `redis`, `rand` (`rand::rng().random::<[u8; 16]>()`, with `rand::Rng` in
//!   scope) and `argon2` (`argon2::{Argon2, PasswordHash, PasswordVerifier}`).
//!
//! Time is passed in: every call takes `now_ms`, milliseconds since 1970, so the tests can move a
//! session's clock by hours without waiting. A session's deadlines are checked against the times
//! stored in its record; the key's TTL in Redis is the backstop that removes a session nobody
//! loads again, and it is set relative to `now_ms` (`PEXPIRE key <deadline - now_ms>`).

#![warn(missing_docs)]

mod given;

use std::fmt;

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
        let _ = f;
        todo!("task 1c: print everything but the ID")
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
        let _ = (user, now_ms);
        todo!("task 1a: 16 random bytes as hex, the record with its TTL, the index with its TTL")
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
        let _ = (id, now_ms);
        todo!("task 1b and 2: read, check both deadlines, refresh past the threshold only")
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
        let _ = (session, now_ms, secure);
        todo!("task 1d: the ID, Max-Age to the absolute deadline, HttpOnly, SameSite, Secure")
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
        let _ = (users, name, password, previous, now_ms);
        todo!("task 3a: verify with argon2, create a new session, end the previous one")
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
        let _ = (id, now_ms);
        todo!("task 3b: a new ID that keeps created_ms, the old one ended")
    }

    /// ## Task 3c: logout, here and everywhere
    ///
    /// Ends the session `id`: deletes its record and removes its digest from its user's index.
    /// Returns whether its record was still in Redis (what `DEL` removed). Every instance refuses
    /// it at once.
    pub async fn logout(&self, id: &str) -> redis::RedisResult<bool> {
        let _ = id;
        todo!("task 3c: the record, then the index entry")
    }

    /// Ends every session of `user` (a stolen laptop, a changed password): deletes the record of
    /// every session the user's index lists, and the index's entries. Returns how many records
    /// it deleted: an entry whose record had already expired counts for nothing. Other users'
    /// sessions stay.
    pub async fn logout_everywhere(&self, user: &str) -> redis::RedisResult<usize> {
        let _ = user;
        todo!("task 3c: every session the index lists")
    }
}
