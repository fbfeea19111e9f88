//! Building an exercise and running its tests: `cargo` as a child process, within a time limit,
//! stopped cleanly on Ctrl-C.
//!
//! The child runs in a process group of its own, so the terminal's Ctrl-C reaches the runner
//! only. The first Ctrl-C lets the tests running now finish (a test that is killed cannot remove
//! its private SQLite folder or PostgreSQL schema); a second one stops them at once. A child that
//! outlives its time limit is killed with its whole group, so a stuck test never hangs the runner.
//! Either way the runner then removes what the killed tests left, and says what it removed.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::interrupt::Interrupts;
use crate::outcome::TestRun;

/// How long a first build may take (a fresh clone compiles Redis, sqlx and tokio) before the
/// runner gives up on it.
const BUILD_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Cargo, run in the course's root.
pub struct Cargo {
    program: OsString,
    root: PathBuf,
    interrupts: Interrupts,
    /// How long one run of tests may take.
    test_limit: Duration,
}

/// How a child process ended.
enum Ended {
    Exited {
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    /// It outlived its time limit and was killed.
    TimedOut,
    /// Ctrl-C was pressed twice and it was stopped.
    Interrupted,
}

/// What building an exercise's tests gave.
pub enum Build {
    /// It built; `warnings` is how many warnings the compiler gave.
    Built { warnings: usize },
    /// It did not; `diagnostics` is what the compiler said, without cargo's progress lines.
    Failed { diagnostics: String },
}

/// Why a step could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    /// Ctrl-C, twice.
    #[error("stopped by Ctrl-C")]
    Interrupted,
    /// The step outlived its limit.
    #[error(
        "{what} did not finish within {} s, and was stopped.\n\
         A likely cause: a loop that never ends, or a wait for something that never comes (a lock \
         never released, a channel never sent to). `{command}` shows where it hangs. Tests stopped \
         this way could not remove their private database schema or folder.",
        limit.as_secs()
    )]
    TimedOut {
        what: String,
        limit: Duration,
        command: String,
    },
}

impl Cargo {
    /// The `cargo` that started the runner (`$CARGO`), else the one on PATH.
    pub fn new(root: PathBuf, interrupts: Interrupts, test_limit: Duration) -> Cargo {
        let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Cargo {
            program,
            root,
            interrupts,
            test_limit,
        }
    }

    /// Builds `package`'s tests.
    pub async fn build(&self, package: &str) -> Result<Build> {
        let doing = format!("building {package} (the first build takes a few minutes)");
        match self
            .run(&["test", "--no-run", "-p", package], BUILD_LIMIT, &doing)
            .await?
        {
            Ended::Exited { status, stderr, .. } if status.success() => Ok(Build::Built {
                warnings: warning_count(&stderr),
            }),
            Ended::Exited { stderr, .. } => Ok(Build::Failed {
                diagnostics: diagnostics(&stderr),
            }),
            Ended::TimedOut => Err(Stopped::TimedOut {
                what: format!("building {package}"),
                limit: BUILD_LIMIT,
                command: format!("cargo test --no-run -p {package}"),
            }
            .into()),
            Ended::Interrupted => Err(Stopped::Interrupted.into()),
        }
    }

    /// Runs `package`'s tests whose names contain `filter` (all of them for `None`).
    pub async fn test(&self, package: &str, filter: Option<&str>) -> Result<TestRun> {
        let mut args = vec!["test", "-p", package];
        args.extend(filter);
        let command = format!("cargo {}", args.join(" "));
        let doing = format!("running {command}");
        match self.run(&args, self.test_limit, &doing).await? {
            Ended::Exited { stdout, stderr, .. } => Ok(TestRun::parse(&stdout, &stderr)),
            Ended::TimedOut => Err(Stopped::TimedOut {
                what: format!("`{command}`"),
                limit: self.test_limit,
                command,
            }
            .into()),
            Ended::Interrupted => Err(Stopped::Interrupted.into()),
        }
    }

    /// Runs cargo with `args` to its end, its time limit, or a second Ctrl-C, with a spinner
    /// saying what it is `doing` (on a terminal only).
    async fn run(&self, args: &[&str], limit: Duration, doing: &str) -> Result<Ended> {
        let spinner = ProgressBar::new_spinner()
            .with_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .expect("a valid template"),
            )
            .with_message(doing.to_string());
        spinner.enable_steady_tick(Duration::from_millis(120));
        let ended = self.run_quietly(args, limit).await;
        spinner.finish_and_clear();
        ended
    }

    async fn run_quietly(&self, args: &[&str], limit: Duration) -> Result<Ended> {
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .current_dir(&self.root)
            .env("CARGO_TERM_COLOR", "never")
            // The failure's own message is what the runner shows; the manual command gives the
            // backtrace to whoever wants it.
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = shared::process::spawn_owned(command)
            .with_context(|| format!("starting {:?}: is cargo installed?", self.program))?;
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Ended::Exited {
                    status,
                    stdout: stdout.join().unwrap_or_default(),
                    stderr: stderr.join().unwrap_or_default(),
                });
            }
            if started.elapsed() > limit {
                stop_group(&mut child, libc::SIGKILL);
                remove_what_killed_tests_left().await;
                return Ok(Ended::TimedOut);
            }
            if self.interrupts.stop_now() {
                stop_group(&mut child, libc::SIGINT);
                remove_what_killed_tests_left().await;
                return Ok(Ended::Interrupted);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Removes what tests that were just killed had no time to remove (their private folders, and
/// their PostgreSQL schemas if `DATABASE_URL` names one), and says what it removed, or what it
/// could not and the command that removes it. Only what lost its owner goes ([`shared::sweep`]):
/// another run's tests beside this one keep theirs.
async fn remove_what_killed_tests_left() {
    for folder in shared::sweep::temp_folders() {
        eprintln!(
            "Removed {}, left by the tests that were stopped.",
            folder.display()
        );
    }
    let Ok(url) = std::env::var("DATABASE_URL") else {
        return;
    };
    if !url.starts_with("postgres") {
        return;
    }
    match shared::sweep::schemas_at(&url).await {
        Ok(schemas) => {
            for schema in schemas {
                eprintln!(
                    "Removed the PostgreSQL schema {schema}, left by the tests that were stopped."
                );
            }
        }
        Err(error) => eprintln!(
            "Could not look for PostgreSQL schemas the stopped tests left ({error}). To remove \
             them: psql \"$DATABASE_URL\" -c 'DROP SCHEMA <name> CASCADE' for each course_ \
             schema no run is using (the next run of the course removes them too)."
        ),
    }
}

/// Reads a child's output on a thread of its own, so a full pipe never stalls the child.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Sends `signal` to the child's whole group (cargo and the test binary it runs), gives it two
/// seconds, then kills what is left.
fn stop_group(child: &mut Child, signal: libc::c_int) {
    let group = child.id() as libc::pid_t;
    // SAFETY: killpg(2) on the group we created for this child; no memory is involved.
    unsafe { libc::killpg(group, signal) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::killpg(group, libc::SIGKILL) };
    let _ = child.wait();
}

/// The compiler's own words: cargo's stderr without its progress lines.
fn diagnostics(stderr: &str) -> String {
    const PROGRESS: [&str; 10] = [
        "Compiling",
        "Checking",
        "Finished",
        "Running",
        "Blocking",
        "Executable",
        "Downloaded",
        "Downloading",
        "Updating",
        "Locking",
    ];
    stderr
        .lines()
        .filter(|line| {
            let word = line.trim_start().split(' ').next().unwrap_or_default();
            !(line.starts_with(' ') && PROGRESS.contains(&word))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sum of cargo's "generated N warnings" lines.
fn warning_count(stderr: &str) -> usize {
    stderr
        .lines()
        .filter_map(|line| {
            let (_, after) = line.split_once(" generated ")?;
            after.split(' ').next()?.parse::<usize>().ok()
        })
        .sum()
}
