//! The counted database: exact counts under concurrency, latency, seed data, bad URLs.
//!
//! These run against `DATABASE_URL` when it is set (PostgreSQL, in a schema of their own that each
//! test drops), else against a private SQLite file, so both backends answer the same queries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::db::{seed_product, seed_user};
use shared::{Database, DbOptions};

fn options() -> DbOptions {
    DbOptions {
        url: std::env::var("DATABASE_URL").ok(),
        ..DbOptions::default()
    }
}

async fn open() -> Database {
    Database::open(options()).await.unwrap()
}

#[tokio::test]
async fn seed_rows_are_deterministic_and_setup_is_not_counted() {
    let db = open().await;
    assert_eq!(db.queries(), 0);
    assert_eq!(db.user(42).await.unwrap(), Some(seed_user(42)));
    assert_eq!(db.user(100_000).await.unwrap(), None);
    assert_eq!(db.product(7).await.unwrap(), Some(seed_product(7)));
    assert_eq!(db.queries(), 3);
    // The seed has zeros and empties on purpose.
    assert_eq!(seed_user(10).karma, 0);
    assert_eq!(seed_user(14).bio, "");
    db.close().await.unwrap();
}

/// A lesson's own table, created outside the count, as a lesson's setup does.
async fn with_ledger(db: &Database) {
    let mut setup = db.setup().await.unwrap();
    sqlx::query("CREATE TABLE ledger (id BIGINT PRIMARY KEY, amount BIGINT NOT NULL)")
        .execute(&mut *setup)
        .await
        .unwrap();
    setup.commit().await.unwrap();
}

async fn ledger_rows(db: &Database) -> i64 {
    let mut conn = db.connection().await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM ledger")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_transaction_commits_its_statements_together_and_counts_each() {
    let db = open().await;
    with_ledger(&db).await;
    assert_eq!(db.queries(), 0, "setup is not counted");

    let mut tx = db.begin().await.unwrap();
    for (id, amount) in [(1, 10), (2, -10)] {
        sqlx::query("INSERT INTO ledger (id, amount) VALUES ($1, $2)")
            .bind(id)
            .bind(amount)
            .execute(tx.conn().await)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(
        db.queries(),
        2,
        "two statements in one transaction are two queries"
    );
    assert_eq!(ledger_rows(&db).await, 2);

    // The second statement fails (a duplicate id): the first is rolled back with it.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO ledger (id, amount) VALUES (3, 5)")
        .execute(tx.conn().await)
        .await
        .unwrap();
    let duplicate = sqlx::query("INSERT INTO ledger (id, amount) VALUES (1, 5)")
        .execute(tx.conn().await)
        .await;
    assert!(duplicate.is_err(), "id 1 exists");
    drop(tx);
    assert_eq!(
        ledger_rows(&db).await,
        2,
        "row 3 was rolled back with the failed insert"
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_exact_under_concurrency() {
    let db = Arc::new(open().await);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                for j in 0..20 {
                    db.user((i * 20 + j) % 100 + 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(db.queries(), 1_000);
    db.reset_queries();
    assert_eq!(db.queries(), 0);
    Arc::into_inner(db).unwrap().close().await.unwrap();
}

#[tokio::test]
async fn latency_is_added_to_each_query() {
    let db = Database::open(DbOptions {
        latency: Duration::from_millis(30),
        ..options()
    })
    .await
    .unwrap();
    let start = Instant::now();
    db.user(1).await.unwrap();
    db.user(2).await.unwrap();
    // A lower bound only: the latency is a floor, never a ceiling.
    assert!(start.elapsed() >= Duration::from_millis(60));
    db.set_latency(Duration::ZERO);
    assert_eq!(db.latency(), Duration::ZERO);
    db.close().await.unwrap();
}

#[tokio::test]
async fn writes_are_visible_and_counted() {
    let db = open().await;
    let mut user = seed_user(3);
    user.name = "Renamed".into();
    assert!(db.update_user(&user).await.unwrap());
    assert_eq!(db.user(3).await.unwrap().unwrap().name, "Renamed");
    assert!(db.set_price(5, 999).await.unwrap());
    assert_eq!(db.product(5).await.unwrap().unwrap().price_cents, 999);
    assert!(!db.set_price(9_999, 1).await.unwrap(), "no such product");
    assert_eq!(db.queries(), 5);
    db.close().await.unwrap();
}

#[tokio::test]
async fn category_queries_return_empty_lists_and_zero_counts() {
    let db = open().await;
    let teas = db.products_in_category("tea", None).await.unwrap();
    assert_eq!(teas.len(), 20);
    assert!(
        teas.windows(2)
            .all(|w| w[0].price_cents <= w[1].price_cents)
    );
    let cheap = db.products_in_category("tea", Some(1_000)).await.unwrap();
    assert!(cheap.iter().all(|p| p.price_cents <= 1_000) && cheap.len() < teas.len());
    assert!(
        db.products_in_category("socks", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.out_of_stock_count("socks").await.unwrap(), 0);
    assert!(db.out_of_stock_count("tea").await.unwrap() > 0);
    db.close().await.unwrap();
}

#[tokio::test]
async fn search_matches_a_name_prefix_and_a_karma_floor() {
    let db = open().await;
    let found = db.search_users("Ada", 100, 50).await.unwrap();
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|u| u.name.starts_with("Ada") && u.karma >= 100)
    );
    assert!(found.windows(2).all(|w| w[0].id < w[1].id));
    let expected = (1..=100)
        .map(seed_user)
        .filter(|u| u.name.starts_with("Ada") && u.karma >= 100)
        .count();
    assert_eq!(found.len(), expected);
    assert!(db.search_users("Zed", 0, 50).await.unwrap().is_empty());
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_bad_url_names_the_accepted_forms() {
    let err = Database::open(DbOptions {
        url: Some("mysq://nowhere".into()),
        ..DbOptions::default()
    })
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("postgres://USER:PASSWORD@HOST:PORT/DB"),
        "{err}"
    );
}

#[tokio::test]
async fn a_run_removes_the_folders_killed_runs_left_and_no_live_ones() {
    // A killed run's folder: its owner file is there, and nobody holds its lock.
    let dead = std::env::temp_dir().join(format!(
        "caching-course-test-dead-{:08x}",
        rand::random::<u32>()
    ));
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join(".owner"), "").unwrap();
    std::fs::write(dead.join("course.db"), "left").unwrap();
    // A run alive beside it, with a folder of its own.
    let live = shared::sweep::OwnedDir::new("test-live").unwrap();
    // The sweep a run makes before its first folder (once per process: in this test binary,
    // whichever test made a folder first has already had it, so it is called here directly).
    let removed = shared::sweep::temp_folders();
    // (Another test's first folder may have swept it a moment earlier: gone is what counts.)
    assert!(
        !dead.exists(),
        "{} (a killed run's folder, its owner lock free) should have been removed by the sweep; \
         it removed {removed:?}",
        dead.display()
    );
    assert!(
        live.path().exists() && !removed.contains(&live.path().to_path_buf()),
        "a live run's folder was removed: {}",
        live.path().display()
    );
}

#[tokio::test]
async fn a_run_drops_the_schemas_killed_runs_left_and_no_live_ones() {
    let Some(url) = options().url.filter(|u| u.starts_with("postgres")) else {
        return; // a PostgreSQL matter: the SQLite legs have no schemas
    };
    let dead = format!("course_dead{:04x}", rand::random::<u16>());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {dead}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let live = open().await;
    let next = open().await;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'course\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(
        !schemas.contains(&dead),
        "schema {dead} (made by a run that holds no lock on it: a killed one) should have been \
         dropped when the next run opened; schemas: {schemas:?}"
    );
    let live_schema = live.attachment().schema.clone().unwrap();
    assert!(
        schemas.contains(&live_schema),
        "a live run's schema {live_schema} was dropped by the next run; schemas: {schemas:?}"
    );
    next.close().await.unwrap();
    live.close().await.unwrap();
}
