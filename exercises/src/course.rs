//! What the course holds: its exercises, in the order the lessons come, and each exercise's tasks.
//!
//! Nothing here is written down twice. The exercises are the workspace members under
//! `exercises/` (so the lessons' order is the order of the root `Cargo.toml`), a task is the group
//! of graded tests whose names start with its name (`task1_…`), and its title, hints and closing
//! word come from the exercise's `HINTS.md`. Adding an exercise to the workspace adds it here.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::hints::Hints;

/// The course's folder and its exercises.
pub struct Course {
    /// The workspace root: the folder with the root `Cargo.toml`.
    pub root: PathBuf,
    /// Every exercise, in the lessons' order.
    pub exercises: Vec<Exercise>,
}

/// One lesson's exercise: a package under `exercises/`.
pub struct Exercise {
    /// The lesson's name, the folder's: `cache-aside`.
    pub name: String,
    /// The package `cargo test -p` takes: `cache-aside-exercise`.
    pub package: String,
    /// The folder, relative to the root: `exercises/cache-aside`.
    pub dir: PathBuf,
    /// Its tasks, first to last.
    pub tasks: Vec<Task>,
}

/// One graded task: the tests whose names start with `name`.
pub struct Task {
    /// `task1`: the prefix of its tests' names, and the filter that runs them alone.
    pub name: String,
    /// Its number, from 1.
    pub number: usize,
    /// The title of its hint in `HINTS.md` ("the product page").
    pub title: String,
    /// Its tests' function names, as written in the suite.
    pub tests: Vec<String>,
    /// Its hints, one nudge each, in the order they are handed out.
    pub hints: Vec<String>,
    /// What it taught, said when it passes.
    pub taught: String,
}

/// A task named by its exercise and its place: what progress, `next` and `hint` talk about.
#[derive(Clone, Copy)]
pub struct TaskRef<'a> {
    pub exercise: &'a Exercise,
    pub task: &'a Task,
}

impl TaskRef<'_> {
    /// "cache-aside task 1: the product page".
    pub fn label(&self) -> String {
        format!(
            "{} task {}: {}",
            self.exercise.name, self.task.number, self.task.title
        )
    }

    /// The command that runs this task's tests by hand: the one the runner runs.
    pub fn command(&self) -> String {
        format!("cargo test -p {} {}", self.exercise.package, self.task.name)
    }
}

/// The part of a `Cargo.toml` the runner reads: a workspace's members, a package's name.
#[derive(Deserialize)]
struct Manifest {
    workspace: Option<Workspace>,
    package: Option<Package>,
}

#[derive(Deserialize)]
struct Workspace {
    members: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
}

impl Course {
    /// The course around the current folder: the nearest folder upwards whose `Cargo.toml` is a
    /// workspace with members under `exercises/`.
    pub fn find() -> Result<Course> {
        let here = std::env::current_dir().context("reading the current folder")?;
        for folder in here.ancestors() {
            let manifest = folder.join("Cargo.toml");
            if !manifest.is_file() {
                continue;
            }
            let members = read_manifest(&manifest)?
                .workspace
                .map(|workspace| workspace.members)
                .unwrap_or_default();
            if members
                .iter()
                .any(|member| member.starts_with("exercises/"))
            {
                return Course::load(folder, &members);
            }
        }
        bail!(
            "{} is not inside the caching course: no Cargo.toml above it lists exercises.\n\
             Run the runner from the course's folder (the clone of the repository).",
            here.display()
        )
    }

    fn load(root: &Path, members: &[String]) -> Result<Course> {
        let mut exercises = Vec::new();
        for member in members {
            let Some(name) = member.strip_prefix("exercises/") else {
                continue;
            };
            exercises.push(Exercise::load(root, name)?);
        }
        Ok(Course {
            root: root.to_path_buf(),
            exercises,
        })
    }

    /// The exercise called `name`, or an error that lists the names there are.
    pub fn exercise(&self, name: &str) -> Result<&Exercise> {
        self.exercises
            .iter()
            .find(|exercise| exercise.name == name)
            .with_context(|| {
                let names: Vec<&str> = self.exercises.iter().map(|e| e.name.as_str()).collect();
                format!(
                    "there is no exercise called '{name}'; the exercises are: {}",
                    names.join(", ")
                )
            })
    }

    /// Every task of every exercise, in the course's order.
    pub fn tasks(&self) -> impl Iterator<Item = TaskRef<'_>> {
        self.exercises
            .iter()
            .flat_map(|exercise| exercise.task_refs())
    }

    /// How many tasks the course has.
    pub fn task_count(&self) -> usize {
        self.exercises
            .iter()
            .map(|exercise| exercise.tasks.len())
            .sum()
    }
}

impl Exercise {
    fn load(root: &Path, name: &str) -> Result<Exercise> {
        let dir = Path::new("exercises").join(name);
        let package = read_manifest(&root.join(&dir).join("Cargo.toml"))?
            .package
            .with_context(|| format!("{}/Cargo.toml has no [package]", dir.display()))?
            .name;
        let hints = Hints::read(&root.join(&dir).join("HINTS.md"))?;
        let mut tasks: Vec<Task> = Vec::new();
        for test in graded_tests(&root.join(&dir).join("tests"))? {
            let prefix = test.split('_').next().unwrap_or_default().to_string();
            match tasks.iter_mut().find(|task| task.name == prefix) {
                Some(task) => task.tests.push(test),
                None => {
                    let number = prefix["task".len()..].parse().unwrap_or(0);
                    let hint = hints.task(number).with_context(|| {
                        format!(
                            "{}/HINTS.md has no <details> block for task {number}, which has tests",
                            dir.display()
                        )
                    })?;
                    tasks.push(Task {
                        name: prefix,
                        number,
                        title: hint.title.clone(),
                        tests: vec![test],
                        hints: hint.hints.clone(),
                        taught: hint.taught.clone(),
                    });
                }
            }
        }
        tasks.sort_by_key(|task| task.number);
        if tasks.is_empty() {
            bail!(
                "{} has no graded tests (functions named task1_…)",
                dir.display()
            );
        }
        Ok(Exercise {
            name: name.to_string(),
            package,
            dir,
            tasks,
        })
    }

    /// Its tasks, each with a reference to the exercise.
    pub fn task_refs(&self) -> impl Iterator<Item = TaskRef<'_>> {
        self.tasks.iter().map(move |task| TaskRef {
            exercise: self,
            task,
        })
    }

    /// Its task number `number`, or an error that says how many it has.
    pub fn task(&self, number: usize) -> Result<TaskRef<'_>> {
        self.task_refs()
            .find(|found| found.task.number == number)
            .with_context(|| {
                format!(
                    "{} has tasks 1 to {}, not {number}",
                    self.name,
                    self.tasks.len()
                )
            })
    }

    /// The worked answer's source, shown once a task is done.
    pub fn solution(&self) -> PathBuf {
        Path::new("solutions").join(&self.name).join("src/lib.rs")
    }
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// The names of the graded tests under `tests`: every `fn taskN_…` in its Rust files, in the order
/// they are written.
fn graded_tests(tests: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    collect_rust_files(tests, &mut files)?;
    files.sort();
    let mut names = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file)?;
        for line in text.lines() {
            let Some((_, after)) = line.split_once("fn task") else {
                continue;
            };
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let digits = name.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 && name[digits..].starts_with('_') {
                names.push(format!("task{name}"));
            }
        }
    }
    Ok(names)
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rust_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    Ok(())
}
