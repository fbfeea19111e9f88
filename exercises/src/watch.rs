//! Watch mode: run the current task, and again each time a file of its exercise changes; when it
//! passes, say what it taught and go on to the next one.
//!
//! File events come from `notify` (inotify on Linux, FSEvents on macOS), debounced so that an
//! editor's save (often a write, a rename and a metadata change) is one re-run. An event is only a
//! reason to look: building and testing *read* the sources, which some backends report too, so a
//! re-run needs a source file whose time or size differs from when the last run started. While
//! waiting, a line on the terminal asks for a hint (`h`) or quits (`q`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;

use crate::next_hint;
use crate::progress::Progress;
use crate::session::Session;

/// How watch mode ended.
pub enum Ended {
    /// Every task is done, or `q` was typed.
    Finished,
    /// Ctrl-C.
    Interrupted,
}

/// Runs watch mode from `start` (an exercise and a task; by default the first unfinished task)
/// until every task is done, `q`, or Ctrl-C.
pub async fn watch(session: &Session, start: Option<(String, usize)>) -> Result<Ended> {
    let course = &session.course;
    let (changed, mut changes) = mpsc::unbounded_channel();
    let mut debouncer = new_debouncer(
        Duration::from_millis(250),
        move |events: DebounceEventResult| {
            if events.is_ok() {
                let _ = changed.send(());
            }
        },
    )
    .context("starting to watch files")?;
    let mut commands = terminal_lines();
    let mut watched = None;
    let mut chosen = match start {
        Some((exercise, number)) => Some(course.exercise(&exercise)?.task(number)?),
        None => None,
    };
    let mut last = None;
    loop {
        let progress = Progress::load(course)?;
        // The task chosen to start with; after a pass, the next unfinished one after it.
        let task = match (chosen.take(), last) {
            (Some(task), _) => Some(task),
            (None, Some(last)) => progress.first_unfinished_from(course, last),
            (None, None) => progress.first_unfinished(course),
        };
        let Some(task) = task else {
            println!("Every task of every exercise is done. Well cached.");
            return Ok(Ended::Finished);
        };
        last = Some(task);
        let folder = folder_of(course, task);
        if watched.as_ref() != Some(&folder) {
            if let Some(old) = watched.take() {
                let _ = debouncer.watcher().unwatch(&old);
            }
            debouncer
                .watcher()
                .watch(&folder, RecursiveMode::Recursive)
                .with_context(|| format!("watching {}", folder.display()))?;
            watched = Some(folder);
        }
        let before = sources(folder_of(course, task));
        // Each run under a line of its own, with the time: which output is the latest is plain.
        println!("\n──── {} · {} ────", clock(), task.label());
        let passed = session.attempt(task).await?;
        if session.interrupts.requested() {
            return Ok(Ended::Interrupted);
        }
        if passed {
            println!();
            continue;
        }
        println!(
            "\nWatching {} for changes. Type h and Enter for a hint, q and Enter to quit.",
            task.exercise.dir.display()
        );
        loop {
            tokio::select! {
                Some(()) = changes.recv() => {
                    let now = sources(folder_of(course, task));
                    if let Some(path) = first_difference(&before, &now) {
                        let shown = path.strip_prefix(&course.root).unwrap_or(path);
                        println!(
                            "\n{} changed: running {} task {} again.\n",
                            shown.display(),
                            task.exercise.name,
                            task.task.number
                        );
                        break;
                    }
                }
                Some(command) = commands.recv() => match command.trim() {
                    "q" => return Ok(Ended::Finished),
                    "h" => next_hint::show_next(course, task, next_hint::AskAgain::Key)?,
                    _ => println!("h and Enter: a hint. q and Enter: quit."),
                },
                _ = session.interrupts.pressed() => return Ok(Ended::Interrupted),
            }
        }
    }
}

/// The time of day, `14:03:27 UTC`.
fn clock() -> String {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let day = seconds % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// The folder of `task`'s exercise.
fn folder_of(course: &crate::course::Course, task: crate::course::TaskRef) -> PathBuf {
    course.root.join(&task.exercise.dir)
}

/// The exercise's sources as they are now: each Rust file and manifest under `folder` (outside
/// any `target`), with its modification time and size.
fn sources(folder: PathBuf) -> BTreeMap<PathBuf, (SystemTime, u64)> {
    let mut found = BTreeMap::new();
    let mut folders = vec![folder];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if entry.file_name() != "target" {
                    folders.push(path);
                }
            } else if is_source(&path) {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.insert(path, (modified, meta.len()));
            }
        }
    }
    found
}

/// A file that was added, removed or changed between `before` and `now`.
fn first_difference<'a>(
    before: &'a BTreeMap<PathBuf, (SystemTime, u64)>,
    now: &'a BTreeMap<PathBuf, (SystemTime, u64)>,
) -> Option<&'a Path> {
    now.iter()
        .find(|(path, stamp)| before.get(*path) != Some(*stamp))
        .map(|(path, _)| path.as_path())
        .or_else(|| {
            before
                .keys()
                .find(|path| !now.contains_key(*path))
                .map(PathBuf::as_path)
        })
}

/// Whether a change to `path` can change the build: Rust sources and manifests, not an editor's
/// swap or backup files.
fn is_source(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "rs")
        || path.file_name().is_some_and(|name| name == "Cargo.toml")
}

/// The lines typed on the terminal, read on a thread of their own. At the end of input (no
/// terminal, as in a script) nothing more comes.
fn terminal_lines() -> mpsc::UnboundedReceiver<String> {
    let (sender, lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}
