//! Putting an exercise back as it was handed out.
//!
//! The stubs are not copied anywhere: `exercises/stubs.txt` names each stub file by its git
//! object id, and the runner asks git for that object. The id is the file's content, so it finds
//! the stub however many commits of your own you have made on top of it. CI checks that the list
//! matches the committed stubs.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::course::{Course, Exercise};
use crate::progress::Progress;

/// The list of stub files and their git object ids, relative to the course's root.
pub const STUBS: &str = "exercises/stubs.txt";

/// One stub file: where it goes and what it holds.
struct Stub {
    path: PathBuf,
    text: Vec<u8>,
}

/// Restores `exercise`'s stub files after asking (unless `yes`), and forgets its progress.
/// Returns whether it did.
pub fn reset(course: &Course, exercise: &Exercise, yes: bool) -> Result<bool> {
    let stubs = stubs_of(course, exercise)?;
    let changed: Vec<&Stub> = stubs
        .iter()
        .filter(|stub| fs::read(course.root.join(&stub.path)).ok().as_ref() != Some(&stub.text))
        .collect();
    if changed.is_empty() {
        println!(
            "{} is already as it was handed out; nothing to reset.",
            exercise.name
        );
        return Ok(false);
    }
    println!(
        "This puts back the stub of {} and forgets its progress. Your work in these files will \
         be lost:",
        exercise.name
    );
    for stub in &changed {
        println!("  {}", stub.path.display());
    }
    if !yes && !confirmed()? {
        println!("Nothing changed.");
        return Ok(false);
    }
    for stub in changed {
        fs::write(course.root.join(&stub.path), &stub.text)
            .with_context(|| format!("writing {}", stub.path.display()))?;
    }
    let mut progress = Progress::load(course)?;
    progress.forget(&exercise.name)?;
    println!("{} is back to its stub.", exercise.name);
    Ok(true)
}

/// Asks on the terminal; only "y" or "yes" is a yes.
fn confirmed() -> Result<bool> {
    print!("Reset? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// The stub files of `exercise`, read from git by the ids `stubs.txt` gives.
fn stubs_of(course: &Course, exercise: &Exercise) -> Result<Vec<Stub>> {
    let list =
        fs::read_to_string(course.root.join(STUBS)).with_context(|| format!("reading {STUBS}"))?;
    let mut stubs = Vec::new();
    for line in list.lines().filter(|line| !line.starts_with('#')) {
        let Some((id, path)) = line.split_once(' ') else {
            continue;
        };
        if !Path::new(path).starts_with(&exercise.dir) {
            continue;
        }
        stubs.push(Stub {
            path: PathBuf::from(path),
            text: git_object(&course.root, id, path)?,
        });
    }
    if stubs.is_empty() {
        bail!("{STUBS} lists no stub files of {}", exercise.name);
    }
    Ok(stubs)
}

/// The content of git object `id` (the stub of `path`).
fn git_object(root: &Path, id: &str, path: &str) -> Result<Vec<u8>> {
    let output = Command::new("git")
        .args(["cat-file", "blob", id])
        .current_dir(root)
        .output()
        .context("running git, which holds the stubs: is git installed?")?;
    if !output.status.success() {
        bail!(
            "git has no copy of the stub of {path} (object {id}): {}\
             Reset needs the course's git history; in a clone of the repository it is there. \
             Otherwise download the file from the course's repository.",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}
