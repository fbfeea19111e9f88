//! The demo binary: a small run reports exact figures, and bad input exits non-zero with advice.

use std::process::Command;

use shared::process::DemoOutput;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_cache-aside"), args).expect("run the demo")
}

/// Runs the demo on the single server `--redis-url` names, whatever `REDIS_CLUSTER` says.
fn demo_on_a_server(args: &[&str]) -> DemoOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cache-aside"));
    command.args(args).env_remove("REDIS_CLUSTER");
    shared::process::run_owned_text(command).expect("run the demo")
}

/// Runs the demo, asserts that it failed, and returns what it printed on stderr.
fn refused(args: &[&str]) -> String {
    let out = demo(args);
    assert!(!out.status.success(), "the demo accepted {args:?}");
    out.stderr
}

#[test]
fn a_serial_run_reports_one_load_per_distinct_key() {
    let out = demo(&[
        "--requests",
        "400",
        "--keys",
        "50",
        "--concurrency",
        "1",
        "--db-latency-ms",
        "0",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[0]["strategy"], "database only");
    assert_eq!(rows[0]["db_queries"], 400);
    assert_eq!(rows[1]["strategy"], "cache-aside, cold start");
    // One task, so no two misses overlap: each distinct key is loaded exactly once.
    let loads = rows[1]["db_queries"].as_u64().unwrap();
    assert!((20..=50).contains(&loads), "{loads}");
    let hit_ratio = rows[1]["hit_ratio"].as_f64().unwrap();
    assert!(
        (hit_ratio - (400 - loads) as f64 / 400.0).abs() < 1e-9,
        "{hit_ratio}"
    );
    assert_eq!(rows[1]["redis_errors"], 0);
    // The same requests again: every key they read is cached, so nothing reaches the database.
    assert_eq!(rows[2]["strategy"], "cache-aside, warm");
    assert_eq!(
        (
            rows[2]["db_queries"].as_u64(),
            rows[2]["hit_ratio"].as_f64()
        ),
        (Some(0), Some(1.0)),
        "the warm row's (db queries, hit ratio): the second pass over the same reads should be \
         all hits; a miss there means its counts include the cold pass's"
    );
    assert_eq!(report["settings"]["db latency"], "0 ms");
    assert!(!report["conclusion"].as_str().unwrap().is_empty());
}

#[test]
fn markdown_output_is_a_table_the_book_can_include() {
    let out = demo(&[
        "--requests",
        "200",
        "--keys",
        "20",
        "--db-latency-ms",
        "0",
        "--format",
        "markdown",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let markdown = out.stdout;
    let rows: Vec<&str> = markdown.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(
        rows.len(),
        5,
        "a header, an alignment row and three rows (the database, the cache cold and warm): \
         {markdown}"
    );
    assert!(
        rows[0].starts_with("| strategy | requests/s |"),
        "{markdown}"
    );
    assert!(rows[2].starts_with("| database only | "), "{markdown}");
    assert!(
        rows[3].starts_with("| cache-aside, cold start | "),
        "{markdown}"
    );
    assert!(rows[4].starts_with("| cache-aside, warm | "), "{markdown}");
    // Which conclusion depends on the machine (a win, a draw or a loss at 0 ms): whichever it
    // is, it closes the report as a paragraph of its own, after a blank line.
    let lines: Vec<&str> = markdown.trim_end().lines().collect();
    let (conclusion, before) = (lines[lines.len() - 1], lines[lines.len() - 2]);
    assert!(
        before.is_empty() && !conclusion.starts_with(['|', '*']) && conclusion.contains("database"),
        "expected the conclusion as the last paragraph, found {conclusion:?} after {before:?}: {markdown}"
    );
    assert!(
        !markdown.contains('┆'),
        "no terminal box drawing: {markdown}"
    );
}

#[test]
fn a_url_that_is_not_redis_says_what_one_looks_like() {
    let err = refused(&["--redis-url", "http://localhost:6379"]);
    assert!(err.contains("redis://HOST:PORT/DB"), "{err}");
}

#[test]
fn an_unreachable_redis_says_how_to_fix_it() {
    let err = refused(&["--redis-url", "redis://127.0.0.1:1/"]);
    assert!(err.contains("Is the server running?"), "{err}");
}

#[test]
fn a_bad_database_url_names_the_accepted_forms() {
    let err = refused(&["--database-url", "mysql://nowhere/db", "--requests", "10"]);
    assert!(err.contains("postgres://"), "{err}");
}

#[test]
fn an_unreachable_database_is_not_called_a_bad_url() {
    let err = refused(&[
        "--database-url",
        "postgres://course@127.0.0.1:1/course",
        "--requests",
        "10",
    ]);
    assert!(err.contains("cannot reach the database"), "{err}");
}

#[test]
fn no_redis_on_path_gives_the_install_commands() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cache-aside"));
    command.env("PATH", "/nonexistent").env_remove("REDIS_URL");
    let out = shared::process::run_owned_text(command).unwrap();
    assert!(!out.status.success());
    let err = &out.stderr;
    assert!(err.contains("sudo apt-get install redis-server"), "{err}");
    assert!(
        err.contains("brew install redis") && err.contains("REDIS_URL"),
        "{err}"
    );
}

#[test]
fn flags_out_of_range_are_refused_by_name() {
    let out = demo(&["--requests", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--requests"), "{}", out.stderr);
    let out = demo(&["--write-ratio", "1.5"]);
    assert!(out.stderr.contains("from 0 to 1"), "{}", out.stderr);
    // A negative number gets the range, not "unexpected argument".
    let out = demo(&["--requests", "-1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = &out.stderr;
    assert!(
        err.contains("--requests") && err.contains("from 1 to 10000000, got '-1'"),
        "--requests -1: expected the range message, got: {err}"
    );
}

/// A private server that wants the password `s3cret-pw`, and its address without it.
fn server_with_password() -> (shared::RedisServer, String) {
    let server = shared::RedisServer::start_with(shared::ServerOptions {
        password: Some("s3cret-pw".into()),
        ..shared::ServerOptions::default()
    })
    .expect("redis-server on PATH");
    let bare = format!("redis://127.0.0.1:{}/", server.port());
    (server, bare)
}

#[test]
fn a_redis_password_is_asked_for_checked_and_never_printed() {
    let (server, bare) = server_with_password();
    let small = ["--requests", "200", "--keys", "50", "--db-latency-ms", "0"];
    let run = |url: &str| demo_on_a_server(&[&["--redis-url", url][..], &small].concat());

    let out = run(&bare);
    assert!(!out.status.success(), "no password: the demo ran anyway");
    let err = &out.stderr;
    assert!(
        err.contains("requires a password"),
        "no password in the URL: {err}"
    );
    assert!(
        err.contains("redis://:PASSWORD@"),
        "the advice shows the form: {err}"
    );

    let wrong = bare.replace("redis://", "redis://:Wr0ng-pw@");
    let out = run(&wrong);
    let err = &out.stderr;
    assert!(
        !out.status.success() && err.contains("refused the password"),
        "wrong password: {err}"
    );
    assert!(
        !err.contains("Wr0ng-pw"),
        "the wrong password was printed: {err}"
    );

    let db99 = format!("{}99", server.url());
    let err = run(&db99).stderr;
    assert!(
        err.contains("no such database number"),
        "database 99: {err}"
    );

    let out = run(&server.url());
    let (stdout, err) = (out.stdout.as_str(), out.stderr);
    assert!(out.status.success(), "the right password: {err}");
    assert!(
        stdout.contains("redis: redis://:***@127.0.0.1:"),
        "the report names the Redis: {stdout}"
    );
    assert!(
        !stdout.contains("s3cret-pw") && !err.contains("s3cret-pw"),
        "the password was printed: {stdout}{err}"
    );
}

#[test]
fn help_never_shows_the_urls_it_reads_from_the_environment() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cache-aside"));
    command
        .arg("--help")
        .env("REDIS_URL", "redis://:s3cret-pw@127.0.0.1:1/")
        .env(
            "DATABASE_URL",
            "postgres://ann:db-s3cret@127.0.0.1:1/course",
        );
    let out = shared::process::run_owned_text(command).expect("run the demo");
    let help = out.stdout.as_str();
    assert!(out.status.success(), "--help failed: {}", out.stderr);
    assert!(
        help.contains("REDIS_URL") && help.contains("DATABASE_URL"),
        "--help should name the variables it reads; it printed: {help}"
    );
    assert!(
        !help.contains("s3cret"),
        "--help printed a password taken from the environment (clap shows env values unless \
         told not to): {help}"
    );
}

#[test]
fn a_password_with_a_slash_is_hidden_too() {
    // Nothing listens on port 1: the error names the URL, which must come out redacted. (On a
    // single server: with REDIS_CLUSTER set the URL is shown as redis+cluster://.)
    let out = demo_on_a_server(&["--redis-url", "redis://:s3cret/pw@127.0.0.1:1/"]);
    assert!(!out.status.success(), "the demo accepted an unparsable URL");
    let err = &out.stderr;
    assert!(
        !err.contains("s3cret"),
        "a password holding `/` was printed in the error: {err}"
    );
    assert!(
        err.contains("redis://:***@127.0.0.1:1/"),
        "the error should name the Redis with its password hidden: {err}"
    );
}

#[test]
fn a_named_sqlite_file_is_created_for_the_run_and_removed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("course.db");
    let url = format!("sqlite://{}", file.display());
    let args = ["--database-url", &url, "--requests", "200", "--keys", "50"];
    for run in 1..=2 {
        let out = demo(&args);
        assert!(out.status.success(), "run {run} on {url}: {}", out.stderr);
        assert!(!file.exists(), "run {run} left {} behind", file.display());
    }

    // A file the course did not create is refused, and left as it was.
    std::fs::write(&file, b"somebody's data").unwrap();
    let err = refused(&args);
    assert!(
        err.contains("existing SQLite file"),
        "an existing file: {err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"somebody's data");

    // A folder that does not exist gets SQLite advice, not a host and a password to check.
    let nowhere = format!("sqlite://{}/no/such/folder/course.db", dir.path().display());
    let err = refused(&["--database-url", &nowhere]);
    assert!(
        err.contains("cannot create the SQLite file"),
        "a missing folder: {err}"
    );
    assert!(!err.contains("password"), "SQLite advice only: {err}");
}
