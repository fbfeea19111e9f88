//! One run of the runner against the course: build an exercise, run a task's tests, say what
//! happened, and record it.

use std::time::Duration;

use anyhow::Result;

use crate::cargo::{Build, Cargo};
use crate::course::{Course, Exercise, TaskRef};
use crate::interrupt::Interrupts;
use crate::outcome::TestRun;
use crate::preflight;
use crate::progress::Progress;
use crate::report;

/// The course, and cargo to run its tests.
pub struct Session {
    pub course: Course,
    pub cargo: Cargo,
    pub interrupts: Interrupts,
}

impl Session {
    /// Checks that the tests will have a Redis and a database (saying which), takes over Ctrl-C,
    /// and readies cargo with `time_limit` per test run.
    pub async fn open(course: Course, time_limit: Duration) -> Result<Session> {
        println!("{}", preflight::check().await?);
        let interrupts = Interrupts::listen();
        let cargo = Cargo::new(course.root.clone(), interrupts.clone(), time_limit);
        Ok(Session {
            course,
            cargo,
            interrupts,
        })
    }

    /// Builds `task`'s exercise and runs the task's tests; prints the result and records it.
    /// Returns whether the task passed.
    pub async fn attempt(&self, task: TaskRef<'_>) -> Result<bool> {
        println!("{}", report::heading(task));
        if !self.builds(task.exercise).await? {
            return Ok(false);
        }
        let run = self
            .cargo
            .test(&task.exercise.package, Some(&task.task.name))
            .await?;
        print!("{}", report::task_result(task, &run));
        self.record(task, &run)
    }

    /// Builds `exercise`'s tests; on failure prints the compiler's words and says so.
    pub async fn builds(&self, exercise: &Exercise) -> Result<bool> {
        match self.cargo.build(&exercise.package).await? {
            Build::Built { warnings: 0 } => Ok(true),
            Build::Built { warnings } => {
                println!(
                    "  (the build gave {warnings} warning(s): `cargo build --tests -p {}` shows them)",
                    exercise.package
                );
                Ok(true)
            }
            Build::Failed { diagnostics } => {
                println!(
                    "{diagnostics}\n{} does not build yet (above). Build it yourself: \
                     cargo test --no-run -p {}",
                    exercise.name, exercise.package
                );
                Ok(false)
            }
        }
    }

    /// Records whether `task` passed in `run`, and on a pass says what it taught.
    pub fn record(&self, task: TaskRef, run: &TestRun) -> Result<bool> {
        let passed = run.task_passed(&task.task.name);
        let mut progress = Progress::load(&self.course)?;
        progress.set_done(task, passed)?;
        if passed {
            let complete = task.exercise.task_refs().all(|t| progress.is_done(t));
            print!("{}", report::taught(task, complete));
        }
        Ok(passed)
    }
}
