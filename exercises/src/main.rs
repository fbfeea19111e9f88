//! # The exercise runner
//!
//! `cargo exercises` (an alias for `cargo run -p exercises --`, set in `.cargo/config.toml`)
//! shows where you are in the course's exercises; `next` runs the first unfinished task's
//! tests, `watch` re-runs them each time you save, `hint` hands out hints one at a time, `check`
//! runs everything, and `reset` puts an exercise back as it was handed out.
//!
//! The runner knows nothing of any lesson: it reads the exercises from the workspace, their tasks
//! from the suites' test names, and their hints from each `HINTS.md` (see [`course`]). Your
//! progress is a plain text file, `exercises/progress.txt` (see [`progress`]).

mod cargo;
mod course;
mod hints;
mod interrupt;
mod next_hint;
mod outcome;
mod preflight;
mod progress;
mod report;
mod reset;
mod session;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::cargo::Stopped;
use crate::course::{Course, TaskRef};
use crate::progress::Progress;
use crate::session::Session;

/// The caching course's exercise runner: your progress, the next task, hints one at a time, and a
/// watch mode that re-runs a task as you save.
///
/// Each lesson's exercise has two or three graded tasks; a task is done when all of its tests
/// pass. Without a command, the runner shows the board. Progress is kept in
/// exercises/progress.txt, a plain text file you can copy to another clone.
///
/// The tests use REDIS_URL (else a private redis-server per test, or a private cluster with
/// REDIS_CLUSTER=1) and DATABASE_URL (else a private SQLite file); the runner checks them before
/// running anything.
///
/// Exit status: 0 when what ran passed, 1 when a task did not pass yet (or its code does not
/// build), 2 when the tests could not run (no Redis, no database, not in the course's folder),
/// 130 after Ctrl-C.
#[derive(Parser)]
#[command(name = "cargo exercises", bin_name = "cargo exercises", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// How long one run of a task's tests may take before it is stopped as hung, in seconds.
    #[arg(long, global = true, default_value_t = 600, value_name = "SECONDS")]
    time_limit: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Every exercise's tasks, done or not yet, and what to do next (the default).
    Board,
    /// Run the first unfinished task's tests once (or EXERCISE's, or its task TASK: start
    /// anywhere), show what failed, and record a pass.
    Next {
        /// An exercise, e.g. two-tier (default: the course's first unfinished task).
        exercise: Option<String>,
        /// A task number (default: the exercise's first unfinished task).
        task: Option<usize>,
    },
    /// Run the first unfinished task's tests (or EXERCISE's, or its task TASK), then again each
    /// time a file of its exercise changes; on a pass, go on to the next unfinished task after
    /// it. Type h (Enter) for a hint, again for the next one, q to quit.
    Watch {
        /// An exercise, e.g. two-tier (default: the course's first unfinished task).
        exercise: Option<String>,
        /// A task number (default: the exercise's first unfinished task).
        task: Option<usize>,
    },
    /// The next hint for the first unfinished task, or for EXERCISE's task TASK. Once a task is
    /// done, where its worked answer is.
    Hint {
        /// An exercise, e.g. cache-aside (default: the first unfinished task's).
        exercise: Option<String>,
        /// A task number (default: the exercise's first unfinished task).
        task: Option<usize>,
    },
    /// Run every task of every exercise (or of EXERCISE) and record what passes.
    Check {
        /// Only this exercise, e.g. cache-aside.
        exercise: Option<String>,
    },
    /// Put EXERCISE's source files back as they were handed out, and forget its progress. Asks
    /// first.
    Reset {
        /// The exercise, e.g. cache-aside.
        exercise: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            if let Some(Stopped::Interrupted) = error.downcast_ref() {
                return ExitCode::from(130);
            }
            eprintln!("\nerror: {error:#}");
            if error.downcast_ref::<Stopped>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let course = Course::find()?;
    let time_limit = Duration::from_secs(cli.time_limit);
    let command = cli.command.unwrap_or(Command::Board);
    match command {
        Command::Board => {
            print!("{}", report::board(&course, &Progress::load(&course)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Hint { exercise, task } => {
            let progress = Progress::load(&course)?;
            let task = chosen_task(&course, &progress, exercise.as_deref(), task)?;
            match task {
                Some(task) => next_hint::show_next(&course, task, next_hint::AskAgain::Command)?,
                None => println!("Every task is done: no hints left to give."),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reset { exercise, yes } => {
            let exercise = course.exercise(&exercise)?;
            reset::reset(&course, exercise, yes)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Next { exercise, task } => {
            let start = start_of(&course, exercise.as_deref(), task)?;
            next(&Session::open(course, time_limit).await?, start).await
        }
        Command::Watch { exercise, task } => {
            let start = start_of(&course, exercise.as_deref(), task)?;
            let session = Session::open(course, time_limit).await?;
            match watch::watch(&session, start).await? {
                watch::Ended::Finished => Ok(ExitCode::SUCCESS),
                watch::Ended::Interrupted => Ok(ExitCode::from(130)),
            }
        }
        Command::Check { exercise } => {
            let session = Session::open(course, time_limit).await?;
            check(&session, exercise.as_deref()).await
        }
    }
}

/// `next`: the chosen task (by default the first unfinished one), once.
async fn next(session: &Session, start: Option<(String, usize)>) -> Result<ExitCode> {
    let course = &session.course;
    let Some(task) = resolve(course, start)? else {
        println!("Every task of every exercise is done. Well cached.");
        return Ok(ExitCode::SUCCESS);
    };
    let passed = session.attempt(task).await?;
    if session.interrupts.requested() {
        return Err(Stopped::Interrupted.into());
    }
    if !passed {
        return Ok(ExitCode::from(1));
    }
    if let Some(next) = Progress::load(course)?.first_unfinished_from(course, task) {
        println!(
            "Next: {}. Run it with: cargo exercises next {} {}",
            next.label(),
            next.exercise.name,
            next.task.number
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `check`: every task of the chosen exercises, one test run per exercise.
async fn check(session: &Session, only: Option<&str>) -> Result<ExitCode> {
    let course = &session.course;
    let exercises = match only {
        Some(name) => vec![course.exercise(name)?],
        None => course.exercises.iter().collect(),
    };
    let mut all_passed = true;
    for exercise in exercises {
        println!("── {} ──", exercise.name);
        if !session.builds(exercise).await? {
            let mut progress = Progress::load(course)?;
            for task in exercise.task_refs() {
                progress.set_done(task, false)?;
            }
            all_passed = false;
            continue;
        }
        let run = session.cargo.test(&exercise.package, None).await?;
        for task in exercise.task_refs() {
            let passed = run.of_task(&task.task.name).filter(|r| r.passed).count();
            let total = run.of_task(&task.task.name).count();
            let word = if run.task_passed(&task.task.name) {
                "✓ done"
            } else {
                all_passed = false;
                "· not yet"
            };
            println!(
                "  task {} ({}): {word}, {passed} of {total} tests pass",
                task.task.number, task.task.title
            );
            // A task begun and not passing: its failing tests and their messages, as `next`
            // shows them. (An untouched stub's would only be a list of todo!()s.)
            let begun = run
                .of_task(&task.task.name)
                .any(|r| r.failure.as_ref().is_some_and(|f| !f.is_todo()));
            if begun && !run.task_passed(&task.task.name) {
                for line in report::task_result(task, &run).lines() {
                    println!("    {line}");
                }
            }
            let mut progress = Progress::load(course)?;
            progress.set_done(task, run.task_passed(&task.task.name))?;
        }
        if session.interrupts.requested() {
            return Err(Stopped::Interrupted.into());
        }
    }
    println!();
    print!("{}", report::board(course, &Progress::load(course)?));
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Where `next` or `watch` starts: the task named, else the exercise's first unfinished one,
/// else the course's; as names, because the session takes the course over. A wrong name is
/// said here, before anything is built.
fn start_of(
    course: &Course,
    exercise: Option<&str>,
    task: Option<usize>,
) -> Result<Option<(String, usize)>> {
    let chosen = chosen_task(course, &Progress::load(course)?, exercise, task)?;
    Ok(chosen.map(|task| (task.exercise.name.clone(), task.task.number)))
}

/// The task a `next` or `watch` chose, found again in `course` (by default the first unfinished).
fn resolve(course: &Course, start: Option<(String, usize)>) -> Result<Option<TaskRef<'_>>> {
    match start {
        Some((exercise, number)) => Ok(Some(course.exercise(&exercise)?.task(number)?)),
        None => Ok(Progress::load(course)?.first_unfinished(course)),
    }
}

/// The task `hint` is about: the one named, else the exercise's first unfinished one, else the
/// course's.
fn chosen_task<'c>(
    course: &'c Course,
    progress: &Progress,
    exercise: Option<&str>,
    task: Option<usize>,
) -> Result<Option<TaskRef<'c>>> {
    let Some(name) = exercise else {
        return Ok(progress.first_unfinished(course));
    };
    let exercise = course.exercise(name)?;
    match task {
        Some(number) => exercise.task(number).map(Some),
        None => Ok(exercise
            .task_refs()
            .find(|task| !progress.is_done(*task))
            .or_else(|| exercise.task_refs().last())),
    }
}
