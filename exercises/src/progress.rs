//! Where you are: a plain text file in the repository, `exercises/progress.txt`.
//!
//! One line per finished task and one per task whose hints you have opened, so the file reads as
//! what it is, survives restarts, and can be copied into another clone (or committed with your
//! answers). Lines the runner does not know are kept as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::course::{Course, TaskRef};

/// The file's place, relative to the course's root.
pub const FILE: &str = "exercises/progress.txt";

const HEADER: &str = "\
# Your progress through the caching course's exercises, kept by `cargo exercises`.
# \"done EXERCISE TASK\": the task's tests passed. \"hints EXERCISE TASK N\": N hints shown.
# Copy this file into another clone of the course to carry your progress there.
";

/// The recorded progress.
pub struct Progress {
    path: PathBuf,
    done: BTreeSet<(String, String)>,
    hints: BTreeMap<(String, String), usize>,
    other: Vec<String>,
}

impl Progress {
    /// The course's progress file; none yet is no progress.
    pub fn load(course: &Course) -> Result<Progress> {
        let path = course.root.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error).context(format!("reading {}", path.display())),
        };
        let mut progress = Progress {
            path,
            done: BTreeSet::new(),
            hints: BTreeMap::new(),
            other: Vec::new(),
        };
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["done", exercise, task] => {
                    progress.done.insert(key(exercise, task));
                }
                ["hints", exercise, task, shown] if shown.parse::<usize>().is_ok() => {
                    let shown = shown.parse().unwrap_or(0);
                    progress.hints.insert(key(exercise, task), shown);
                }
                // The runner's own header is written again by `save`; a comment of yours is kept.
                _ if line.trim().is_empty() || HEADER.lines().any(|own| own == line) => {}
                _ => progress.other.push(line.to_string()),
            }
        }
        Ok(progress)
    }

    /// Whether `task` passed.
    pub fn is_done(&self, task: TaskRef) -> bool {
        self.done.contains(&key_of(task))
    }

    /// The first task not yet done, in the course's order.
    pub fn first_unfinished<'c>(&self, course: &'c Course) -> Option<TaskRef<'c>> {
        course.tasks().find(|task| !self.is_done(*task))
    }

    /// The first task not yet done from `start` on (`start` itself if it is not done), in the
    /// course's order; past the last task, the first not done anywhere. How a learner who
    /// started at a later exercise goes on from there, not back to the first.
    pub fn first_unfinished_from<'c>(
        &self,
        course: &'c Course,
        start: TaskRef<'c>,
    ) -> Option<TaskRef<'c>> {
        course
            .tasks()
            .skip_while(|task| !same(*task, start))
            .find(|task| !self.is_done(*task))
            .or_else(|| self.first_unfinished(course))
    }

    /// How many of the course's tasks are done.
    pub fn done_count(&self, course: &Course) -> usize {
        course.tasks().filter(|task| self.is_done(*task)).count()
    }

    /// Records whether `task` passed, and writes the file.
    pub fn set_done(&mut self, task: TaskRef, done: bool) -> Result<()> {
        let changed = if done {
            self.done.insert(key_of(task))
        } else {
            self.done.remove(&key_of(task))
        };
        if changed { self.save() } else { Ok(()) }
    }

    /// How many of `task`'s hints were shown.
    pub fn hints_shown(&self, task: TaskRef) -> usize {
        self.hints.get(&key_of(task)).copied().unwrap_or(0)
    }

    /// Records that `shown` hints of `task` were shown, and writes the file.
    pub fn set_hints_shown(&mut self, task: TaskRef, shown: usize) -> Result<()> {
        self.hints.insert(key_of(task), shown);
        self.save()
    }

    /// Forgets everything about `exercise` (a reset), and writes the file.
    pub fn forget(&mut self, exercise: &str) -> Result<()> {
        self.done.retain(|(name, _)| name != exercise);
        self.hints.retain(|(name, _), _| name != exercise);
        self.save()
    }

    /// Writes the file whole through a temporary file beside it, so that an interrupted write
    /// leaves the old file, never half of the new one.
    fn save(&self) -> Result<()> {
        let mut text = String::from(HEADER);
        for (exercise, task) in &self.done {
            text.push_str(&format!("done {exercise} {task}\n"));
        }
        for ((exercise, task), shown) in &self.hints {
            text.push_str(&format!("hints {exercise} {task} {shown}\n"));
        }
        for line in &self.other {
            text.push_str(line);
            text.push('\n');
        }
        let folder = self.path.parent().unwrap_or(Path::new("."));
        let mut file = tempfile::NamedTempFile::new_in(folder)
            .with_context(|| format!("writing {}", self.path.display()))?;
        file.write_all(text.as_bytes())?;
        file.persist(&self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(())
    }
}

fn key(exercise: &str, task: &str) -> (String, String) {
    (exercise.to_string(), task.to_string())
}

/// Whether two references name the same task.
fn same(a: TaskRef, b: TaskRef) -> bool {
    key_of(a) == key_of(b)
}

fn key_of(task: TaskRef) -> (String, String) {
    key(&task.exercise.name, &task.task.name)
}
