//! The faults, one after another, each between two stretches of steady traffic.

use std::time::{Duration, Instant};

use anyhow::Context;
use capstone::Deployment;
use capstone::deployment::Running;
use shared::Stage;

use super::Options;

/// The faults in the order they are injected.
pub const FAULTS: [Fault; 4] = [
    Fault::RedisKilled,
    Fault::RedisPaused,
    Fault::DatabaseRestarted,
    Fault::InstanceKilled,
];

/// A fault the run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of redis-server, restarted after the fault's length on the same port, with its
    /// append-only file (fsynced at every write: the views' queue is not lost).
    RedisKilled,
    /// `CLIENT PAUSE` for the fault's length: a server that takes connections and answers nothing.
    RedisPaused,
    /// PostgreSQL restarted by the command given (skipped on SQLite, or without a command).
    DatabaseRestarted,
    /// The second instance killed, restarted after the fault's length on the same port.
    InstanceKilled,
}

impl Fault {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Fault::RedisKilled => "Redis killed, restarted",
            Fault::RedisPaused => "Redis paused",
            Fault::DatabaseRestarted => "PostgreSQL restarted",
            Fault::InstanceKilled => "instance 2 killed, restarted",
        }
    }
}

/// One fault as it happened.
#[derive(Clone, Debug)]
pub struct Phase {
    /// The fault.
    pub fault: Fault,
    /// When it began, from the run's start.
    pub began: Duration,
    /// When what failed was back (restarted, unpaused).
    pub ended: Duration,
    /// When the next fault began (or the traffic ended): the window its effects are counted in.
    pub until: Duration,
    /// Why it was not injected, if it was not.
    pub skipped: Option<String>,
}

/// Steady traffic, then each fault and steady traffic after it; returns what happened when.
pub async fn inject(
    stage: &Stage,
    deployment: &Deployment,
    running: &mut Running,
    start: Instant,
    options: &Options,
) -> anyhow::Result<Vec<Phase>> {
    let mut phases: Vec<Phase> = Vec::new();
    tokio::time::sleep(options.steady).await;
    for fault in FAULTS {
        let began = start.elapsed();
        if let Some(last) = phases.last_mut() {
            last.until = began;
        }
        let skipped = match fault {
            Fault::RedisKilled => {
                stage.server().crash();
                tokio::time::sleep(options.fault).await;
                restart_redis(stage).await?;
                None
            }
            Fault::RedisPaused => {
                stage.server().pause(options.fault)?;
                tokio::time::sleep(options.fault).await;
                None
            }
            Fault::DatabaseRestarted => restart_database(stage, options).await?,
            Fault::InstanceKilled => {
                running.kill(1).await?;
                tokio::time::sleep(options.fault).await;
                deployment.restart(stage, running, 1).await?;
                None
            }
        };
        let ended = start.elapsed();
        phases.push(Phase {
            fault,
            began,
            ended,
            until: ended,
            skipped,
        });
        tokio::time::sleep(options.steady).await;
    }
    if let Some(last) = phases.last_mut() {
        last.until = start.elapsed();
    }
    Ok(phases)
}

/// Starts the killed server again (it waits for it to answer `PING`, letting the other tasks
/// run on the runtime's other threads meanwhile).
async fn restart_redis(stage: &Stage) -> anyhow::Result<()> {
    tokio::task::block_in_place(|| stage.server().restart())
        .context("redis-server did not come back")
}

/// Restarts PostgreSQL with the command given, or says why not.
async fn restart_database(stage: &Stage, options: &Options) -> anyhow::Result<Option<String>> {
    if stage.db().backend() != "postgres" {
        return Ok(Some(
            "SQLite: a file opened in this process, nothing to restart".into(),
        ));
    }
    let Some(command) = &options.restart_postgres else {
        return Ok(Some(
            "no --restart-postgres command given (e.g. 'sudo pg_ctlcluster 15 main restart')"
                .into(),
        ));
    };
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .await
        .with_context(|| format!("could not run the --restart-postgres command `{command}`"))?;
    anyhow::ensure!(
        status.success(),
        "the --restart-postgres command `{command}` failed ({status}): check that it restarts \
         the server DATABASE_URL names, and that this user may run it"
    );
    Ok(None)
}
