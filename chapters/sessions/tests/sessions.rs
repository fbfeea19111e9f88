//! What the lesson's sessions promise, over real HTTP on loopback between three instances, against
//! a real Redis and database (as the environment names them), and what the source's break.

use std::time::Duration;

use redis::AsyncCommands;
use reqwest::{Client, Method, StatusCode};
use sessions::accounts::{demo_name, demo_password};
use sessions::api::{Confirm, Login, Me};
use sessions::app::Running;
use sessions::client::{Answer, send};
use sessions::{Accounts, Clock, Deployment, Sessions, Timeouts};
use shared::{DbOptions, ServerOptions, Stage};
use tower_sessions::SessionStore;
use tower_sessions::cookie::time::{Duration as CookieDuration, OffsetDateTime};
use tower_sessions::session::{Id, Record};

/// Long enough that no test's real time runs into them: the tests move the clock instead.
const TIMEOUTS: Timeouts = Timeouts {
    idle: Duration::from_secs(600),
    absolute: Duration::from_secs(3_600),
    refresh_after: Duration::from_secs(60),
};

/// Three instances of one configuration, a client, and the stage under them.
struct Fixture {
    stage: Stage,
    deployment: Deployment,
    running: Running,
    client: Client,
}

/// The stage's database: the accounts' table only.
fn db_options() -> DbOptions {
    DbOptions {
        products: 1,
        users: 1,
        ..DbOptions::default()
    }
}

async fn fixture(sessions: Sessions) -> Fixture {
    let stage = Stage::from_env("sessions-test", db_options())
        .await
        .unwrap();
    fixture_on(stage, sessions).await
}

async fn fixture_on(stage: Stage, sessions: Sessions) -> Fixture {
    let accounts = Accounts::create(stage.db().clone(), 2).await.unwrap();
    let deployment = Deployment {
        sessions,
        conn: stage.conn(),
        namespace: stage.namespace().child(sessions.slug()),
        accounts,
        timeouts: TIMEOUTS,
        local_copy: Duration::from_secs(3_600),
        secure: false,
        clock: Clock::default(),
    };
    let running = deployment.start(3).await.unwrap();
    Fixture {
        stage,
        deployment,
        running,
        client: Client::new(),
    }
}

impl Fixture {
    async fn send(
        &self,
        instance: usize,
        method: Method,
        path: &str,
        id: Option<&str>,
        json: Option<&impl serde::Serialize>,
    ) -> Answer {
        send(
            &self.client,
            method,
            &self.running.url(instance, path),
            id,
            json,
        )
        .await
        .unwrap()
    }

    /// Logs user `user` in on `instance`, bringing the cookie `brought`; the answer.
    async fn login_with(
        &self,
        instance: usize,
        user: i64,
        password: &str,
        brought: Option<&str>,
    ) -> Answer {
        let form = Login {
            name: demo_name(user),
            password: password.to_owned(),
        };
        self.send(instance, Method::POST, "/login", brought, Some(&form))
            .await
    }

    /// Logs user `user` in with the right password; the new session's ID.
    async fn login(&self, instance: usize, user: i64) -> String {
        let answer = self
            .login_with(instance, user, &demo_password(user), None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "a login with the right password was refused: {}",
            answer.body
        );
        answer
            .new_id()
            .expect("a login sets the session cookie")
            .to_owned()
    }

    /// `GET /me` on `instance` with the session `id`: the status and, if signed in, who.
    async fn me(&self, instance: usize, id: &str) -> (StatusCode, Option<Me>) {
        let answer = self
            .send(instance, Method::GET, "/me", Some(id), None::<&()>)
            .await;
        (answer.status, serde_json::from_str(&answer.body).ok())
    }

    /// Which instances accept the session `id` (`GET /me` answers 200).
    async fn accepted_by(&self, id: &str) -> Vec<usize> {
        let mut accepted = Vec::new();
        for instance in 0..3 {
            if self.me(instance, id).await.0 == StatusCode::OK {
                accepted.push(instance);
            }
        }
        accepted
    }

    /// The number of the configuration's keys in Redis.
    async fn keys(&self) -> Vec<String> {
        self.deployment
            .namespace
            .keys(&mut self.stage.conn())
            .await
            .unwrap()
    }

    /// The remaining TTL of every session key, in ms.
    async fn session_ttls(&self) -> Vec<i64> {
        let mut conn = self.stage.conn();
        let mut ttls = Vec::new();
        for key in self.keys().await {
            if key.contains("session:") {
                ttls.push(conn.pttl(&key).await.unwrap());
            }
        }
        ttls
    }

    /// Redis writes sent by all instances so far.
    fn writes(&self) -> u64 {
        self.running.commands().1
    }

    async fn close(self) {
        let Fixture {
            stage,
            deployment,
            running,
            ..
        } = self;
        running.stop().await.unwrap();
        // The accounts hold the database: let go of them before the stage closes it.
        drop(deployment);
        stage.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_sets_no_cookie_where_the_source_lets_anyone_in() {
    let lesson = fixture(Sessions::Lesson).await;
    let answer = lesson.login_with(0, 1, "guess", None).await;
    assert_eq!(
        (answer.status, answer.set_cookie.is_some()),
        (StatusCode::UNAUTHORIZED, false),
        "a login with a wrong password: expected 401 and no cookie, got {} and cookie {:?}",
        answer.status,
        answer.set_cookie
    );
    assert!(
        lesson.keys().await.is_empty(),
        "a refused login left keys in Redis: {:?}",
        lesson.keys().await
    );
    lesson.close().await;

    let source = fixture(Sessions::Source).await;
    let answer = source.login_with(0, 1, "guess", None).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the source's login checks no password, so a guess should get in; it answered {}",
        answer.status
    );
    source.close().await;
}

#[tokio::test]
async fn the_id_has_128_random_bits_and_is_only_in_the_cookie_never_a_body_or_a_key() {
    let f = fixture(Sessions::Lesson).await;
    let first = f.login_with(0, 1, &demo_password(1), None).await;
    let id = first.new_id().expect("a login sets the cookie").to_owned();
    let second = f.login(1, 1).await;
    // tower-sessions' ID is an i128 in URL-safe base64 without padding: 22 characters.
    assert!(
        id.len() >= 22 && id != second,
        "session IDs should carry at least 128 bits (22 base64 characters) and differ per login: \
         got {id:?} and {second:?}"
    );
    assert!(
        !first.body.contains(&id),
        "the login's body contains the session ID: {}",
        first.body
    );
    let cookie = first.set_cookie.unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "the session cookie lacks {attribute}: {cookie}"
        );
    }
    let max_age: i64 = cookie
        .split("; ")
        .find_map(|part| part.strip_prefix("Max-Age="))
        .expect("the cookie has a Max-Age")
        .parse()
        .unwrap();
    let idle = TIMEOUTS.idle.as_secs() as i64;
    assert!(
        (idle - 5..=idle).contains(&max_age),
        "the cookie's Max-Age should be the idle timeout ({idle} s) after a login; found {max_age}"
    );
    for key in f.keys().await {
        assert!(
            !key.contains(&id) && !key.contains(&second),
            "a Redis key contains a session ID (whoever lists keys could log in): {key}"
        );
    }
    f.close().await;
}

#[tokio::test]
async fn every_session_key_has_a_ttl_no_longer_than_the_idle_timeout() {
    let f = fixture(Sessions::Lesson).await;
    f.login(0, 1).await;
    f.send(1, Method::POST, "/cart/7", None, None::<&()>).await;
    let mut conn = f.stage.conn();
    let keys = f.keys().await;
    assert_eq!(
        keys.len(),
        3,
        "expected a signed-in session, an anonymous one and one user index: {keys:?}"
    );
    let idle = TIMEOUTS.idle.as_millis() as i64;
    for key in keys {
        let ttl: i64 = conn.pttl(&key).await.unwrap();
        let most = if key.contains("user:") {
            TIMEOUTS.absolute.as_millis() as i64
        } else {
            idle
        };
        assert!(
            (most - 5_000..=most).contains(&ttl),
            "{key}: expected a TTL a little under {most} ms, found {ttl} (-1 is none)"
        );
    }
    f.close().await;
}

// ANCHOR: fixation
#[tokio::test]
async fn login_rotates_the_id_so_a_planted_one_stays_anonymous_where_the_source_signs_it_in() {
    for sessions in [Sessions::Lesson, Sessions::Source] {
        let f = fixture(sessions).await;
        // The attacker gets an anonymous session of their own and plants its ID in the victim's
        // browser; the victim logs in with it.
        let planted = f
            .send(0, Method::POST, "/cart/1", None, None::<&()>)
            .await
            .new_id()
            .expect("a cart starts a session")
            .to_owned();
        let login = f.login_with(1, 1, &demo_password(1), Some(&planted)).await;
        assert_eq!(login.status, StatusCode::OK, "the victim's login failed");
        let accepted = f.accepted_by(&planted).await;
        match sessions {
            // Instance 0 still holds its own copy from before the login (not signed in), so the
            // attacker tries the others.
            Sessions::Source => assert!(
                accepted.contains(&1) && accepted.contains(&2),
                "the source's login keeps the ID, so the planted one should be signed in on the \
                 instances without an older copy; accepted by {accepted:?}"
            ),
            _ => {
                let victims = login.new_id().expect("a login sets a new cookie");
                assert_ne!(victims, planted, "the login kept the planted ID: fixation");
                assert!(
                    accepted.is_empty(),
                    "the planted ID should be refused after the victim's login; instances {accepted:?} \
                     accept it (the old session was not deleted at rotation)"
                );
                assert_eq!(
                    f.me(2, victims).await.0,
                    StatusCode::OK,
                    "the victim's new session is refused"
                );
            }
        }
        f.close().await;
    }
}
// ANCHOR_END: fixation

#[tokio::test]
async fn a_privilege_change_asks_the_password_rotates_and_keeps_the_login_time() {
    let f = fixture(Sessions::Lesson).await;
    let before = f.login(0, 2).await;
    let wrong = Confirm {
        password: "guess".into(),
    };
    let refused = f
        .send(1, Method::POST, "/admin", Some(&before), Some(&wrong))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "administration with a wrong password: expected 403, got {}",
        refused.status
    );
    let right = Confirm {
        password: demo_password(2),
    };
    let granted = f
        .send(1, Method::POST, "/admin", Some(&before), Some(&right))
        .await;
    let after = granted
        .new_id()
        .expect("a privilege change sets a new cookie");
    assert_ne!(after, before, "the privilege change kept the session ID");
    assert!(
        f.accepted_by(&before).await.is_empty(),
        "the ID from before the privilege change is still accepted"
    );
    assert_eq!(
        f.me(2, after).await,
        (
            StatusCode::OK,
            Some(Me {
                user: 2,
                admin: true
            })
        )
    );
    // Used every 9 minutes (under the idle timeout) the session still ends an hour after the
    // login, not an hour after the privilege change.
    let mut accepted_past_limit = 0;
    for step in 1..=7 {
        f.deployment.clock.advance(Duration::from_secs(9 * 60));
        if f.me(step, after).await.0 == StatusCode::OK && step * 9 >= 60 {
            accepted_past_limit += 1;
        }
    }
    assert_eq!(
        accepted_past_limit, 0,
        "requests accepted an hour or more after the login: the rotation restarted the absolute \
         timeout"
    );
    f.close().await;
}

#[tokio::test]
async fn idle_and_absolute_timeouts_are_enforced_by_the_server_where_the_source_slides_forever() {
    for sessions in [Sessions::Lesson, Sessions::Source] {
        let f = fixture(sessions).await;
        // Idle: ten minutes unused.
        let idle = f.login(0, 1).await;
        // Absolute: used every 5 minutes for 70 minutes.
        let busy = f.login(0, 2).await;
        let mut accepted_past_limit = 0;
        for step in 1..=14u64 {
            f.deployment.clock.advance(Duration::from_secs(5 * 60));
            if f.me(step as usize, &busy).await.0 == StatusCode::OK && step * 5 >= 60 {
                accepted_past_limit += 1;
            }
        }
        let idle_status = f.me(1, &idle).await.0;
        match sessions {
            Sessions::Source => assert!(
                accepted_past_limit > 0,
                "the source's sliding expiry should accept a busy session past an hour"
            ),
            _ => {
                assert_eq!(
                    accepted_past_limit, 0,
                    "a session used every 5 minutes was accepted {accepted_past_limit} times \
                     after its 60-minute absolute timeout"
                );
                assert_eq!(
                    idle_status,
                    StatusCode::UNAUTHORIZED,
                    "a session unused for over the idle timeout was accepted"
                );
                let left = f.session_ttls().await;
                assert!(
                    left.is_empty(),
                    "the ended sessions should be deleted in Redis, not only refused: \
                     {} session keys left",
                    left.len()
                );
            }
        }
        f.close().await;
    }
}

#[tokio::test]
async fn the_deadline_moves_only_past_the_threshold_one_write_instead_of_one_per_request() {
    let f = fixture(Sessions::Lesson).await;
    let id = f.login(0, 1).await;
    let before = f.writes();
    for instance in 0..6 {
        assert_eq!(f.me(instance, &id).await.0, StatusCode::OK);
    }
    assert_eq!(
        f.writes() - before,
        0,
        "requests within the refresh threshold should write nothing to Redis"
    );
    f.deployment
        .clock
        .advance(TIMEOUTS.refresh_after + Duration::from_secs(1));
    for instance in 0..6 {
        assert_eq!(f.me(instance, &id).await.0, StatusCode::OK);
    }
    assert_eq!(
        f.writes() - before,
        1,
        "past the threshold, one request should push the deadline out (one SET) and the next \
         ones write nothing"
    );
    // The TTL is the idle timeout again, counted from the refresh (the clock is 61 s ahead of
    // Redis's, so the deadline is 61 s further in Redis's time).
    let ttls = f.session_ttls().await;
    let expected =
        (TIMEOUTS.idle + TIMEOUTS.refresh_after + Duration::from_secs(1)).as_millis() as i64;
    assert!(
        ttls.len() == 1 && (expected - 5_000..=expected).contains(&ttls[0]),
        "after the refresh the key's TTL should be about {expected} ms; found {ttls:?}"
    );
    f.close().await;

    for (sessions, why) in [
        (Sessions::EveryRequest, "the lesson's without a threshold"),
        (Sessions::Source, "the source's sliding expiry"),
    ] {
        let f = fixture(sessions).await;
        let id = f.login(0, 1).await;
        let before = f.writes();
        for instance in 0..6 {
            assert_eq!(f.me(instance, &id).await.0, StatusCode::OK);
        }
        assert!(
            f.writes() - before >= 6,
            "{why} should write on every request: {} writes for 6 requests",
            f.writes() - before
        );
        f.close().await;
    }
}

#[tokio::test]
async fn near_the_absolute_limit_the_ttl_never_goes_past_it() {
    let f = fixture(Sessions::Lesson).await;
    let id = f.login(0, 1).await;
    // 55 minutes in, used every 5: the next refresh may give at most 5 more minutes.
    for _ in 0..11 {
        f.deployment.clock.advance(Duration::from_secs(5 * 60));
        assert_eq!(f.me(0, &id).await.0, StatusCode::OK);
    }
    let ttls = f.session_ttls().await;
    // The clock is 55 minutes ahead of Redis's: 5 minutes left on it is 60 in Redis's time.
    let most = (TIMEOUTS.absolute).as_millis() as i64;
    assert!(
        ttls.len() == 1 && ttls[0] <= most && ttls[0] > most - 5_000,
        "5 minutes before the absolute limit, the refreshed TTL should stop at the limit \
         ({most} ms in Redis's time), not a whole idle timeout later; found {ttls:?}"
    );
    f.close().await;
}

// ANCHOR: logout
#[tokio::test]
async fn a_logout_on_one_instance_is_refused_by_every_other_at_once() {
    for sessions in [Sessions::Lesson, Sessions::Source] {
        let f = fixture(sessions).await;
        let id = f.login(0, 1).await;
        assert_eq!(
            f.accepted_by(&id).await,
            vec![0, 1, 2],
            "a fresh session should work on every instance"
        );
        let logout = f
            .send(1, Method::POST, "/logout", Some(&id), None::<&()>)
            .await;
        assert_eq!(
            (logout.status, logout.new_id()),
            (StatusCode::NO_CONTENT, Some("")),
            "a logout should answer 204 and remove the cookie"
        );
        let accepted = f.accepted_by(&id).await;
        match sessions {
            Sessions::Source => assert_eq!(
                accepted,
                vec![0, 2],
                "the source's instances keep their own copy: the two that did not log out \
                 should still accept the session"
            ),
            _ => assert!(
                accepted.is_empty(),
                "after a logout on instance 1, instances {accepted:?} still accept the session"
            ),
        }
        f.close().await;
    }
}
// ANCHOR_END: logout

#[tokio::test]
async fn log_out_everywhere_ends_each_session_of_the_user_and_no_one_elses() {
    let f = fixture(Sessions::Lesson).await;
    let laptop = f.login(0, 1).await;
    let phone = f.login(1, 1).await;
    let other = f.login(2, 2).await;
    let answer = f
        .send(
            2,
            Method::POST,
            "/logout-everywhere",
            Some(&laptop),
            None::<&()>,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.body.contains("\"sessions\":2"),
        "both of user 1's sessions should have been ended: {}",
        answer.body
    );
    for (id, what) in [(&laptop, "the laptop's"), (&phone, "the phone's")] {
        assert!(
            f.accepted_by(id).await.is_empty(),
            "{what} session survived log out everywhere"
        );
    }
    assert_eq!(
        f.accepted_by(&other).await,
        vec![0, 1, 2],
        "another user's session was ended"
    );
    f.close().await;
}

#[tokio::test]
async fn a_save_after_a_logout_cannot_bring_the_session_back() {
    let f = fixture(Sessions::Lesson).await;
    let store = &f.running.stores[0];
    let mut record = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: OffsetDateTime::now_utc() + CookieDuration::minutes(5),
    };
    store.create(&mut record).await.unwrap();
    // Another instance logs the session out while this one is still answering a request...
    f.running.stores[1].delete(&record.id).await.unwrap();
    // ...which then saves it.
    store.save(&record).await.unwrap();
    assert!(
        store.load(&record.id).await.unwrap().is_none(),
        "a save after the delete brought the session back (SET without XX)"
    );
    f.close().await;
}

#[tokio::test]
async fn a_corrupt_record_is_no_session_not_an_error() {
    let f = fixture(Sessions::Lesson).await;
    let id = f.login(0, 1).await;
    let mut conn = f.stage.conn();
    for key in f.keys().await {
        if key.contains("session:") {
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg("{not json")
                .arg("KEEPTTL")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    assert_eq!(
        f.me(1, &id).await.0,
        StatusCode::UNAUTHORIZED,
        "a session record that does not decode should be no session (401), not an error"
    );
    f.close().await;
}

#[tokio::test]
async fn redis_holds_no_trace_of_a_session_id_neither_in_a_key_nor_in_a_value() {
    let f = fixture(Sessions::Lesson).await;
    let id = f.login(0, 1).await;
    // The cookie's value, and the number tower-sessions' JSON of a record would write for it.
    let number = id.parse::<Id>().expect("a session ID").0.to_string();
    let mut conn = f.stage.conn();
    for key in f.keys().await {
        let value: String = if key.contains("session:") {
            conn.get(&key).await.unwrap()
        } else {
            let members: Vec<String> = conn.smembers(&key).await.unwrap();
            members.join(" ")
        };
        for (trace, what) in [(&id, "the cookie's value"), (&number, "the ID as a number")] {
            assert!(
                !key.contains(trace.as_str()) && !value.contains(trace.as_str()),
                "{key} holds {what}: whoever reads Redis (a replica, a backup, MONITOR) could \
                 log in. Its value: {value}"
            );
        }
    }
    f.close().await;
}

#[tokio::test]
async fn with_redis_down_a_request_is_refused_with_503_neither_let_in_nor_logged_out() {
    // A private server, since this test stops it.
    let stage = Stage::private("sessions-test", db_options(), ServerOptions::default())
        .await
        .unwrap();
    let f = fixture_on(stage, Sessions::Lesson).await;
    let id = f.login(0, 1).await;
    f.stage.server().stop();
    let answer = f.send(1, Method::GET, "/me", Some(&id), None::<&()>).await;
    assert_eq!(
        (answer.status, answer.new_id()),
        (StatusCode::SERVICE_UNAVAILABLE, None),
        "GET /me with Redis stopped: expected 503 and the cookie left alone (the session is \
         neither checked nor ended), found {} and Set-Cookie {:?}",
        answer.status,
        answer.set_cookie
    );
    f.close().await;
}
