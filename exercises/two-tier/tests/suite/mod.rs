//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace and database (`DATABASE_URL`, else SQLite); Redis is
//! `REDIS_URL`, or a private cluster with `REDIS_CLUSTER=1`, else a private server, and the
//! tests that pause Redis always start a private one. Every fetch below L1 is counted by the
//! given [`Source`], which is how the tests tell an L1 hit from a fetch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shared::exercise::{joined, quiet_repeated_todos, until};
use shared::pubsub::{Event, Subscription};
use shared::worker::Worker;
use shared::{DbOptions, Instance, ServerOptions, SetupError, Stage};

use super::subject::{Heard, Rates, Settings, Source, create_rates, listen};

/// How long a test waits for a message or a resubscription before failing.
const EVENT_WITHIN: Duration = Duration::from_secs(5);

/// The stage `opened` names, with the rates table: what every test starts from.
async fn seeded(opened: Result<Stage, SetupError>, needs: &str) -> Stage {
    quiet_repeated_todos();
    let stage = opened.expect(needs);
    create_rates(stage.db()).await.unwrap();
    stage
}

async fn stage() -> Stage {
    let opened = Stage::from_env("two-tier-exercise", DbOptions::default()).await;
    seeded(opened, "a Redis and a database for the tests").await
}

/// For a test that cuts every subscriber's connection on its Redis: the environment's Redis unless
/// others share it (`REDIS_URL`), then a private server.
async fn stage_of_its_own() -> Stage {
    let opened = Stage::of_its_own("two-tier-exercise", DbOptions::default()).await;
    seeded(opened, "a Redis and a database for the tests").await
}

async fn stage_with_private_redis() -> Stage {
    let db = DbOptions::default();
    let opened = Stage::private("two-tier-exercise", db, ServerOptions::default()).await;
    seeded(opened, "redis-server on PATH").await
}

/// The version of `currency`'s row, read on a connection of its own (not counted).
async fn committed_version(stage: &Stage, currency: &str) -> i64 {
    let mut setup = stage.db().setup().await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM rates WHERE currency = $1")
        .bind(currency)
        .fetch_one(&mut *setup)
        .await
        .unwrap();
    setup.commit().await.unwrap();
    version
}

/// One application instance: its rates, and (if it listens) what its backplane listener heard.
struct App {
    rates: Arc<Rates>,
    instance: Instance,
    listening: Option<(Arc<Heard>, Subscription, Worker)>,
}

impl App {
    /// An instance that does not listen to the backplane.
    async fn new(stage: &Stage, settings: Settings) -> App {
        let instance = stage.instance().await.unwrap();
        let source = Source::new(stage.db().clone(), &instance, settings);
        App {
            rates: Arc::new(Rates::new(source)),
            instance,
            listening: None,
        }
    }

    /// An instance whose listener hands every backplane event to `handle`.
    async fn listening(stage: &Stage, settings: Settings) -> App {
        let mut app = App::new(stage, settings).await;
        app.listening = Some(listen(app.rates.clone(), &app.instance).await);
        app
    }

    fn heard(&self) -> &Heard {
        &self.listening.as_ref().expect("a listening instance").0
    }

    fn fetches(&self) -> u64 {
        self.rates.source().fetches()
    }

    /// `currency`'s rate, which must be answered: a seeded currency, with Redis and the
    /// database up.
    async fn rate(&self, currency: &str) -> super::subject::Rate {
        self.rates.rate(currency).await.unwrap_or_else(|error| {
            panic!(
                "rate({currency:?}) of a seeded currency: expected Ok(its rate), got Err({error}). \
                 Source::fetch answers every seeded currency: is it given the currency asked for?"
            )
        })
    }

    /// `self.rates.set_rate(currency, micros_per_euro)` of a seeded currency: the committed rate.
    async fn set_rate(&self, currency: &str, micros_per_euro: i64) -> super::subject::Rate {
        match self.rates.set_rate(currency, micros_per_euro).await {
            Ok(Some(rate)) => rate,
            other => panic!(
                "set_rate({currency:?}, {micros_per_euro}) of a seeded currency: expected \
                 Ok(Some(the committed rate)), got {other:?}. Return what Source::commit_rate \
                 returned"
            ),
        }
    }
}

// ---- task 1: an L1 with a lifetime and a size ------------------------------------------------

#[tokio::test]
async fn task1_a_second_read_is_served_from_l1() {
    let stage = stage().await;
    let app = App::new(&stage, Settings::default()).await;
    let first = app.rate("GBP").await;
    assert_eq!(
        (first.micros_per_euro, first.version),
        (1_100_000, 1),
        "rate(\"GBP\") on a fresh instance: expected the seeded rate, 1,100,000 at version 1, \
         got {first:?}. Return what Source::fetch returned for the currency asked for"
    );
    let second = app.rate("GBP").await;
    assert_eq!(
        second, first,
        "a second rate(\"GBP\") right after the first: expected the same rate, {first:?}, got \
         {second:?}. L1 must hold the rate as it was fetched, under its currency"
    );
    assert_eq!(
        app.fetches(),
        1,
        "two reads of GBP: expected 1 fetch below L1, counted {}. Is the fetched rate kept in L1?",
        app.fetches()
    );
}

#[tokio::test]
async fn task1_an_l1_copy_lives_for_l1_ttl_and_no_longer() {
    let stage = stage().await;
    let settings = Settings {
        l1_ttl: Duration::from_millis(400),
        ..Settings::default()
    };
    let app = App::new(&stage, settings).await;
    app.rate("USD").await;
    let stored = Instant::now();
    app.rate("USD").await;
    if stored.elapsed() < Duration::from_millis(300) {
        assert_eq!(
            app.fetches(),
            1,
            "two reads of USD well within l1_ttl (400 ms) of each other: expected 1 fetch (the \
             second an L1 hit), counted {}. Is the fetched rate kept in L1 for l1_ttl?",
            app.fetches()
        );
    }
    tokio::time::sleep(Duration::from_millis(700).saturating_sub(stored.elapsed())).await;
    app.rate("USD").await;
    assert_eq!(
        app.fetches(),
        2,
        "700 ms after the copy was stored, past l1_ttl (400 ms), a read should fetch again: \
         expected 2 fetches, counted {}. Does the L1 have a time_to_live of settings.l1_ttl (not \
         l2_ttl, 600 s)?",
        app.fetches()
    );
}

#[tokio::test]
async fn task1_reading_a_copy_does_not_extend_its_life() {
    let stage = stage().await;
    let settings = Settings {
        l1_ttl: Duration::from_millis(500),
        ..Settings::default()
    };
    let app = App::new(&stage, settings).await;
    app.rate("PLN").await;
    let stored = Instant::now();
    // Read again at 300 ms, then at 650 ms: the copy stored at 0 expired at 500 ms, however
    // recently it was read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.rate("PLN").await;
    let second = stored.elapsed();
    tokio::time::sleep(Duration::from_millis(650).saturating_sub(stored.elapsed())).await;
    app.rate("PLN").await;
    let third = stored.elapsed();
    // Only a run whose reads landed where intended can tell (a busy machine may delay them).
    if second < Duration::from_millis(500) && third < Duration::from_millis(800) {
        assert_eq!(
            app.fetches(),
            2,
            "reads of PLN at 0, {} and {} ms with l1_ttl 500 ms: expected 2 fetches (the copy \
             stored at 0 expires at 500 ms), counted {}. A copy whose life restarts on every \
             read (time_to_idle) is never refreshed while it is read often: use time_to_live",
            second.as_millis(),
            third.as_millis(),
            app.fetches()
        );
    }
}

#[tokio::test]
async fn task1_l1_holds_at_most_l1_capacity_rates() {
    let stage = stage().await;
    let settings = Settings {
        l1_capacity: 3,
        ..Settings::default()
    };
    let app = App::new(&stage, settings).await;
    for currency in super::subject::CURRENCIES {
        app.rate(currency).await;
    }
    let held = app.rates.held().await;
    assert!(
        (1..=3).contains(&held),
        "rates held in L1 after reading all 8 currencies once, with l1_capacity 3: expected 1 \
         to 3 (at most l1_capacity; which ones the cache keeps is its own choice), got {held}. \
         More than 3: is the L1 built with max_capacity(settings.l1_capacity)? 0: are fetched \
         rates kept at all?"
    );
}

#[tokio::test]
async fn task1_concurrent_misses_share_one_fetch() {
    let stage = stage().await;
    let app = App::new(&stage, Settings::default()).await;
    let reads: Vec<_> = (0..10)
        .map(|_| {
            let rates = app.rates.clone();
            tokio::spawn(async move { rates.rate("JPY").await.map(|r| r.version) })
        })
        .collect();
    for read in reads {
        let version = joined(read).await;
        assert!(
            matches!(version, Ok(1)),
            "one of 10 concurrent first reads of JPY: expected Ok(version 1), got {version:?}. \
             A read that waits for another's fetch gets that fetch's result"
        );
    }
    assert_eq!(
        app.fetches(),
        1,
        "10 concurrent first reads of JPY in one instance: expected 1 shared fetch, counted {}. \
         Checking L1, then fetching, then inserting lets every request fetch; moka's \
         try_get_with makes the others wait for the first.",
        app.fetches()
    );
}

#[tokio::test]
async fn task1_a_failed_fetch_is_an_error_and_nothing_is_kept() {
    let stage = stage().await;
    let app = App::new(&stage, Settings::default()).await;
    let unknown = app.rates.rate("XXX").await;
    assert!(
        unknown.is_err(),
        "rate(\"XXX\") of a currency the table does not have: expected Err (Source::fetch's \
         RowNotFound), got {unknown:?}. The fetch's error is the read's"
    );
    let again = app.rates.rate("XXX").await;
    assert!(
        again.is_err(),
        "a second rate(\"XXX\") of a currency the table does not have: expected Err, got \
         {again:?}"
    );
    assert_eq!(
        app.fetches(),
        2,
        "two reads of XXX, whose fetch fails: expected 2 fetches (a failed fetch keeps nothing, \
         so the second read fetches again), counted {}. Is an error, or a placeholder, kept in \
         L1?",
        app.fetches()
    );
}

// ---- task 2: the backplane -------------------------------------------------------------------

#[tokio::test]
async fn task2_a_change_reaches_the_other_instances_l1() {
    let stage = stage().await;
    let a = App::listening(&stage, Settings::default()).await;
    let b = App::listening(&stage, Settings::default()).await;
    a.rate("USD").await;
    let committed = b.set_rate("USD", 1_234_567).await;
    assert_eq!(
        (committed.micros_per_euro, committed.version),
        (1_234_567, 2),
        "set_rate(\"USD\", 1234567) of USD at version 1: expected the committed rate, \
         1,234,567 at version 2, got {committed:?}. Return what Source::commit_rate returned"
    );
    until(
        "instance a's listener to hand b's message to handle() (does set_rate() publish the \
         currency with Source::publish, and does handle() return?)",
        EVENT_WITHIN,
        || a.heard().messages.get() >= 1,
    )
    .await;
    let seen = a.rate("USD").await;
    assert_eq!(
        seen.version, 2,
        "instance a's rate(\"USD\") once its listener handed b's message to handle(): expected \
         version 2, got {seen:?}, the copy a held before the change. Does handle() drop the \
         copy of the currency the message names (its payload as UTF-8, e.g. USD)?"
    );
}

#[tokio::test]
async fn task2_the_writer_drops_its_own_copy() {
    let stage = stage().await;
    // No listener: the writer must not rely on hearing its own message.
    let b = App::new(&stage, Settings::default()).await;
    b.rate("CHF").await;
    b.set_rate("CHF", 950_000).await;
    let seen = b.rate("CHF").await;
    assert_eq!(
        (seen.micros_per_euro, seen.version),
        (950_000, 2),
        "the writer's own rate(\"CHF\") right after its set_rate(\"CHF\", 950000) returned: \
         expected 950,000 at version 2, got {seen:?}. This instance does not listen, so it \
         hears no message of its own: does set_rate drop this instance's own copy?"
    );
}

#[tokio::test]
async fn task2_the_write_deletes_the_redis_copy() {
    let stage = stage().await;
    let a = App::new(&stage, Settings::default()).await;
    a.rate("SEK").await;
    let key = a.rates.source().key("SEK");
    assert!(
        stage.conn().exists::<_, bool>(&key).await.unwrap(),
        "Redis's copy of SEK ({key}) after instance a's first rate(\"SEK\"): expected it \
         there, found none. Source::fetch stores what it loads in Redis: does rate() fetch \
         through Source::fetch on a miss?"
    );
    let b = App::new(&stage, Settings::default()).await;
    b.set_rate("SEK", 11_000_000).await;
    assert!(
        !stage.conn().exists::<_, bool>(&key).await.unwrap(),
        "Redis's copy of SEK ({key}) after set_rate(\"SEK\", ..) returned: expected it \
         deleted, found the old rate still there: every instance would refetch it from Redis \
         for up to l2_ttl. Does set_rate call Source::forget once the commit returned?"
    );
    let c = App::new(&stage, Settings::default()).await;
    let seen = c.rate("SEK").await;
    assert_eq!(
        seen.version, 2,
        "rate(\"SEK\") on a new instance after the change: expected version 2, got {seen:?}. \
         The old rate came from Redis, which should have forgotten it"
    );
}

#[tokio::test]
async fn task2_others_hear_of_a_change_only_after_its_commit() {
    let stage = stage().await;
    let a = App::listening(&stage, Settings::default()).await;
    a.rate("NOK").await;
    // The change's UPDATE now waits 300 ms before it runs: a message sent before the commit
    // arrives while the old rate is still the committed one.
    stage.db().set_latency(Duration::from_millis(300));
    let b = App::new(&stage, Settings::default()).await;
    let change = {
        let rates = b.rates.clone();
        tokio::spawn(async move { rates.set_rate("NOK", 12_000_000).await })
    };
    until(
        "instance a's listener to hand b's message to handle() (does set_rate() publish the \
         currency with Source::publish, and does handle() return?)",
        EVENT_WITHIN,
        || a.heard().messages.get() >= 1,
    )
    .await;
    a.rate("NOK").await; // the page a request renders as soon as the message arrives
    let committed = joined(change).await;
    assert!(
        matches!(&committed, Ok(Some(rate)) if rate.version == 2),
        "set_rate(\"NOK\", 12000000) of NOK at version 1: expected Ok(Some(the committed rate, \
         version 2)), got {committed:?}"
    );
    stage.db().set_latency(Duration::ZERO);
    let seen = a.rate("NOK").await;
    assert_eq!(
        seen.version, 2,
        "once set_rate returned, instance a should show version 2; it showed {seen:?}, which it \
         fetched when the message came. Was the message published before the commit, while \
         Redis and the database still held version 1?"
    );
}

#[tokio::test]
async fn task2_nothing_is_forgotten_or_dropped_before_the_commit() {
    let stage = stage().await;
    let b = App::new(&stage, Settings::default()).await;
    b.rate("CHF").await; // L1 and Redis hold version 1
    let key = b.rates.source().key("CHF");
    // The change's UPDATE now waits 300 ms before it runs.
    stage.db().set_latency(Duration::from_millis(300));
    stage.db().reset_queries();
    let change = {
        let rates = b.rates.clone();
        tokio::spawn(async move { rates.set_rate("CHF", 990_000).await })
    };
    until(
        "set_rate(\"CHF\", ..)'s UPDATE to start (does set_rate() commit with \
         Source::commit_rate?)",
        EVENT_WITHIN,
        || stage.db().queries() >= 1,
    )
    .await;
    let in_redis = stage.conn().exists::<_, bool>(&key).await.unwrap();
    let in_l1 = b.rates.holds("CHF");
    // Looked at after the copies: if the row is still at version 1, the commit had not returned.
    let committed = committed_version(&stage, "CHF").await;
    let returned = joined(change).await;
    assert!(
        matches!(&returned, Ok(Some(rate)) if rate.version == 2),
        "set_rate(\"CHF\", 990000) of CHF at version 1: expected Ok(Some(the committed rate, \
         version 2)), got {returned:?}"
    );
    stage.db().set_latency(Duration::ZERO);
    if committed == 1 {
        assert!(
            in_redis && in_l1,
            "while set_rate(\"CHF\", ..)'s commit was still in flight (the row at version 1): \
             expected Redis's copy and this instance's L1 copy both still there, found Redis: \
             {in_redis}, L1: {in_l1}. Forgotten or dropped before the commit, a copy is \
             refetched from the row not yet changed and cached again: forget and drop after \
             the commit returned"
        );
    }
}

#[tokio::test]
async fn task2_redis_forgets_before_anyone_is_told() {
    let stage = stage_with_private_redis().await;
    let b = App::new(&stage, Settings::default()).await;
    b.rate("SEK").await;
    let mut sent = stage.server().watch_commands().await.unwrap();
    b.set_rate("SEK", 11_500_000).await;
    let commands = sent.since_last().await;
    assert_eq!(
        commands,
        ["DEL", "PUBLISH"],
        "commands set_rate(\"SEK\", ..) sent to Redis: expected exactly DEL (forget), then \
         PUBLISH, got {commands:?}. An instance told before Redis forgot drops its copy and \
         refetches the old rate from Redis; any other command (a SET of the new rate, a second \
         DEL) is not set_rate's to send"
    );
}

#[tokio::test]
async fn task2_the_writer_drops_its_copy_after_redis_forgot() {
    let stage = stage().await;
    let b = App::new(&stage, Settings::default()).await;
    b.rate("NOK").await; // L1 and Redis hold version 1
    // set_rate commits, then waits at the door of forget() until the test lets it through.
    let door = b.rates.source().hold_forgets().await;
    let change = {
        let rates = b.rates.clone();
        tokio::spawn(async move { rates.set_rate("NOK", 12_500_000).await })
    };
    until(
        "set_rate(\"NOK\", ..) to reach Source::forget once its commit returned (does set_rate() \
         call forget?)",
        EVENT_WITHIN,
        || b.rates.source().forgets() >= 1,
    )
    .await;
    // A request reads NOK on the writer's instance while Redis still holds version 1.
    let during = b.rate("NOK").await;
    drop(door);
    let committed = joined(change).await;
    assert!(
        matches!(&committed, Ok(Some(rate)) if rate.version == 2),
        "set_rate(\"NOK\", 12500000) of NOK at version 1: expected Ok(Some(the committed rate, \
         version 2)), got {committed:?}"
    );
    let seen = b.rate("NOK").await;
    assert_eq!(
        seen.version, 2,
        "the writer's own rate(\"NOK\") once its set_rate returned: expected version 2, got \
         {seen:?}. A read between the commit and forget() got version {} and kept it in L1: if \
         the L1 copy is dropped before Redis forgets, that read refetches the old rate from \
         Redis's copy. Drop after forget",
        during.version
    );
}

#[tokio::test]
async fn task2_an_unknown_currency_sends_nothing() {
    let stage = stage_with_private_redis().await;
    let b = App::new(&stage, Settings::default()).await;
    let mut sent = stage.server().watch_commands().await.unwrap();
    let unknown = b.rates.set_rate("XXX", 1).await;
    let commands = sent.since_last().await;
    assert!(
        matches!(unknown, Ok(None)) && commands.is_empty(),
        "set_rate(\"XXX\", 1) of a currency the table does not have: expected Ok(None) and no \
         command to Redis, got {unknown:?} and {commands:?}. Nothing was committed, so nothing \
         is to be forgotten or told"
    );
}

#[tokio::test]
async fn task2_a_lost_subscription_empties_l1() {
    let stage = stage_of_its_own().await;
    let a = App::listening(&stage, Settings::default()).await;
    for currency in ["USD", "GBP", "JPY"] {
        a.rate(currency).await;
    }
    let before = a.rates.held().await;
    assert_eq!(
        before, 3,
        "rates held in L1 after reading USD, GBP and JPY once each (l1_capacity 100): expected \
         3, got {before}. Is every fetched rate kept in L1?"
    );
    let killed = a.instance.kill_subscribers().await.unwrap();
    assert!(
        killed >= 1,
        "subscriber connections cut by the test's CLIENT KILL TYPE pubsub: expected at least 1 \
         (instance a's backplane listener), got {killed}. The listener is the given listen()'s: \
         this is the test's setup failing, not your code"
    );
    until(
        "instance a's subscription to be made again and Event::Missed handled (does handle() \
         return?)",
        EVENT_WITHIN,
        || a.heard().missed.get() >= 1,
    )
    .await;
    let held = a.rates.held().await;
    assert_eq!(
        held, 0,
        "rates held in L1 once handle(Event::Missed) returned: expected 0 (the subscription was \
         lost, so any message may have been missed), got {held}. Does handle() drop every copy \
         (invalidate_all) on Event::Missed?"
    );
}

// ---- task 3: the in-flight race --------------------------------------------------------------

/// Starts a fetch of USD on instance `a` that returns version 1 although version 2 is committed
/// (Redis still holds version 1, and is paused so the fetch stays in flight), hands `event` to
/// `a.handle` while it runs, and returns `a` with what the fetch returned (and the stage, which
/// must outlive `a`).
async fn fetch_overtaken_by(event: Event) -> (Stage, App, super::subject::Rate) {
    let stage = stage_with_private_redis().await;
    let settings = Settings {
        redis_timeout: Duration::from_secs(2),
        ..Settings::default()
    };
    let other = App::new(&stage, settings.clone()).await;
    other.rate("USD").await; // Redis now holds version 1
    let changed = other
        .rates
        .source()
        .commit_rate("USD", 1_200_000)
        .await
        .expect("the test's commit of a new USD rate: the database answered an error");
    assert_eq!(
        changed.as_ref().map(|r| r.version),
        Some(2),
        "the test's own commit of a new USD rate (Source::commit_rate, before any of your code \
         runs): expected version 2, got {changed:?}: this is the test's setup failing, not \
         your code"
    );

    let a = App::new(&stage, settings).await;
    stage.server().pause(Duration::from_millis(300)).unwrap();
    let fetch = {
        let rates = a.rates.clone();
        tokio::spawn(async move { rates.rate("USD").await })
    };
    until(
        "instance a's rate(\"USD\") to start a fetch (does rate() call Source::fetch on a \
         miss?)",
        EVENT_WITHIN,
        || a.fetches() >= 1,
    )
    .await;
    a.rates.handle(event).await; // the change is heard while the fetch waits for Redis
    let fetched = joined(fetch).await.unwrap_or_else(|error| {
        panic!(
            "rate(\"USD\"), whose fetch waited for a paused Redis (300 ms, within a 2 s \
             redis_timeout): expected Ok(the rate it fetched), got Err({error}). A drop during \
             the fetch keeps the fetched rate out of L1, and still returns it to its caller"
        )
    });
    (stage, a, fetched)
}

#[tokio::test]
async fn task3_a_change_heard_during_a_fetch_does_not_stay_in_l1() {
    let (_stage, a, fetched) = fetch_overtaken_by(Event::Message(b"USD".as_slice().into())).await;
    assert!(
        !a.rates.holds("USD"),
        "a message for USD arrived while rate(\"USD\") was fetching; the fetch returned version \
         {}, which must not stay in L1. Is something raised when handle drops a copy, and \
         compared by rate after the fetch stored its value?",
        fetched.version
    );
}

#[tokio::test]
async fn task3_a_flush_during_a_fetch_also_wins() {
    let (_stage, a, fetched) = fetch_overtaken_by(Event::Missed).await;
    assert!(
        !a.rates.holds("USD"),
        "Event::Missed arrived while rate(\"USD\") was fetching; the fetch returned version {}, \
         which must not stay in L1. Does dropping every copy raise the same thing dropping one \
         does?",
        fetched.version
    );
}

#[tokio::test]
async fn task3_the_writers_own_drop_also_keeps_an_old_fetch_out() {
    let stage = stage().await;
    let b = App::new(&stage, Settings::default()).await;
    // b's fetch of CZK reads version 1 from the database, then waits at the door.
    let door = b.rates.source().hold_fetches().await;
    let fetch = {
        let rates = b.rates.clone();
        tokio::spawn(async move { rates.rate("CZK").await })
    };
    until(
        "b's rate(\"CZK\") to read the database through Source::fetch (does rate() call \
         Source::fetch on a miss?)",
        EVENT_WITHIN,
        || b.rates.source().loads() >= 1,
    )
    .await;
    let committed = b.set_rate("CZK", 25_000_000).await;
    assert_eq!(
        committed.version, 2,
        "set_rate(\"CZK\", 25000000) of CZK at version 1: expected the committed rate at \
         version 2, got {committed:?}"
    );
    drop(door);
    let fetched = joined(fetch).await.unwrap_or_else(|error| {
        panic!(
            "rate(\"CZK\"), whose fetch read the database before a change committed: expected \
             Ok(the rate it fetched, version 1), got Err({error}). A drop during the fetch keeps \
             the fetched rate out of L1, and still returns it to its caller"
        )
    });
    assert!(
        !b.rates.holds("CZK"),
        "b's own set_rate(\"CZK\", ..) committed version 2 while b's fetch held version {}; that \
         fetch must not stay in L1. Does set_rate's own drop raise what handle's drops raise?",
        fetched.version
    );
}
