//! The demo's crash: a flusher in a child process, killed with SIGKILL right after a commit and
//! before its acknowledgement, the worst moment, and a second child that takes over.
//!
//! A child is this same binary, told its role through its environment (the Redis URL and the
//! database's, which carry passwords, never go on a command line that `ps` shows). It prints one
//! line when it reaches its hold point, and its counters as JSON when it has drained.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shared::db::Attachment;
use shared::{Database, Namespace, Stage};
use write_behind::write::create_queues;
use write_behind::{
    Acknowledged, Apply, FlushStats, Flusher, HoldPoint, Layout, Settings, WriteBehind,
};

use super::summary::Line;
use super::{Demo, write_behind_workload};

const ROLE: &str = "COURSE_WRITE_BEHIND_FLUSHER";
/// The commit after which the first child flusher stops dead: late enough for full batches.
const HOLD_AFTER: u64 = 10;
const HELD: &str = "held after a commit, before its acknowledgement";

/// What a child flusher is asked to do.
pub struct Role {
    apply: Apply,
    /// Stop dead after this many commits; 0: run until stdin closes, then drain.
    hold_after: u64,
    shards: u16,
    batch_size: usize,
    latency_us: u64,
    namespace: String,
    redis_url: String,
    database: Attachment,
}

/// The role this process was started in, if it is a child flusher.
pub fn role_from_env() -> Option<Role> {
    let spec = std::env::var(ROLE).ok()?;
    let mut parts = spec.split(',');
    let apply = match parts.next()? {
        "increments" => Apply::Increments,
        _ => Apply::Versioned,
    };
    Some(Role {
        apply,
        hold_after: parts.next()?.parse().ok()?,
        shards: parts.next()?.parse().ok()?,
        batch_size: parts.next()?.parse().ok()?,
        latency_us: parts.next()?.parse().ok()?,
        namespace: std::env::var("COURSE_NAMESPACE").ok()?,
        redis_url: std::env::var("REDIS_URL").ok()?,
        database: Attachment::from_env()?,
    })
}

/// Runs a child flusher to its end: held (and killed), or drained.
pub fn run(role: Role) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    match runtime.block_on(flush(role)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("child flusher: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn flush(role: Role) -> anyhow::Result<()> {
    let latency = Duration::from_micros(role.latency_us);
    let db = Arc::new(Database::attach(role.database.clone(), latency).await?);
    let layout = Layout::new(Namespace::adopt(&role.namespace), role.shards);
    let settings = Settings {
        shards: role.shards,
        batch_size: role.batch_size,
        ..Settings::default()
    };
    let name = format!("child-{}", std::process::id());
    let flusher = Arc::new(Flusher::new(db, layout, settings, role.apply, &name));
    let held =
        (role.hold_after > 0).then(|| flusher.hold_at(HoldPoint::AfterCommit, role.hold_after));
    let running = flusher.clone().start(&role.redis_url).await?;
    let _notices = super::announce_db_outages(flusher.clone());
    if let Some(held) = held {
        held.await?;
        println!("{HELD}");
        std::io::stdout().flush()?;
        std::future::pending::<()>().await;
    }
    // Until the parent closes our stdin: its workload is done.
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await?;
    running.drain().await?;
    println!("{}", serde_json::to_string(&flusher.metrics.snapshot())?);
    Ok(())
}

/// A child flusher, killed when dropped: a run stopped half-way (Ctrl-C drops the demo's future)
/// must not leave it recreating queues after the clean-up has removed them.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        // Both do nothing once the child has been waited for.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child flusher on `layout`'s queues.
fn spawn(stage: &Stage, layout_prefix: &str, spec: String) -> anyhow::Result<Owned> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(ROLE, spec)
        .env("COURSE_NAMESPACE", layout_prefix)
        .env("REDIS_URL", stage.redis_url())
        .envs(stage.db().attachment().to_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Its notices (a database outage) and errors reach the learner as they happen.
        .stderr(Stdio::inherit());
    Ok(Owned(shared::process::spawn_owned(command)?))
}

/// The row's label for a run applying results as `apply` says.
pub fn label(apply: Apply) -> &'static str {
    match apply {
        Apply::Versioned => "write-behind, flusher killed",
        Apply::Increments => "increments replayed, flusher killed",
    }
}

/// Write-behind with its flusher in a child process, killed after its tenth commit and before
/// acknowledging it, while the workload runs; a second child takes over and drains.
pub async fn run_with_crash(
    apply: Apply,
    demo: &Demo<'_>,
    layout: &Layout,
) -> anyhow::Result<Line> {
    let (stage, settings, workload) = (demo.stage, &demo.settings, &demo.workload);
    let label = label(apply);
    let conn = stage.conn();
    create_queues(&conn, layout).await?;
    let prefix = layout.namespace_prefix();
    let spec = |hold: u64| {
        let apply = match apply {
            Apply::Versioned => "versioned",
            Apply::Increments => "increments",
        };
        let latency = stage.db().latency().as_micros();
        format!(
            "{apply},{hold},{},{},{latency}",
            settings.shards, settings.batch_size
        )
    };
    let mut doomed = spawn(stage, &prefix, spec(HOLD_AFTER))?;
    let doomed_out = doomed.0.stdout.take().context("the child's stdout")?;
    let held = tokio::task::spawn_blocking(move || {
        BufReader::new(doomed_out)
            .lines()
            .any(|line| line.is_ok_and(|line| line == HELD))
    });

    let db = stage.db().clone();
    let writer = Arc::new(WriteBehind::new(
        conn,
        db.clone(),
        layout.clone(),
        settings.clone(),
    ));
    let acks = Arc::new(Acknowledged::default());
    let workload_done = Arc::new(tokio::sync::Notify::new());
    let run = {
        let (writer, acks, workload) = (writer.clone(), acks.clone(), workload.clone());
        let done = workload_done.clone();
        tokio::spawn(async move {
            let run = write_behind_workload(&writer, &acks, &workload, label).await;
            done.notify_one();
            run
        })
    };
    // Killed at its hold point, mid-run. One that never gets there (a workload too small for
    // that many commits) is killed once the workload has ended, or after 30 s.
    let held_in_time = tokio::select! {
        held = held => matches!(held, Ok(true)),
        _ = workload_done.notified() => false,
        _ = tokio::time::sleep(Duration::from_secs(30)) => false,
    };
    shared::process::signal_and_wait(&mut doomed.0, libc::SIGKILL);
    if !held_in_time {
        eprintln!(
            "{label}: the first flusher never reached commit {HOLD_AFTER} (too few writes for \
             that many commits?); killed at the end of the workload instead"
        );
    }

    let mut heir = spawn(stage, &prefix, spec(0))?;
    let run = run.await?;
    drop(heir.0.stdin.take()); // the workload is done: drain and report
    let mut heir_out = heir.0.stdout.take().context("the second child's stdout")?;
    let report = tokio::task::spawn_blocking(move || {
        let mut report = Vec::new();
        heir_out.read_to_end(&mut report).map(|_| report)
    })
    .await??;
    // Its stdout closed: it has drained and is exiting.
    let status = heir.0.wait()?;
    anyhow::ensure!(
        status.success(),
        "the second flusher failed ({status}); its error is above"
    );
    let stats: FlushStats =
        serde_json::from_slice(&report).context("the second flusher's report")?;
    let line = Line::new(label, &run, stats.transactions + HOLD_AFTER, Some(stats));
    Ok(line.audited(acks.audit(&db).await?))
}
