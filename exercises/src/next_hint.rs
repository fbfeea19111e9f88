//! Hints, one at a time: each call shows the next one for the task and records how many were
//! shown, so the next call (or tomorrow's) goes on from there. Once the task has passed, the
//! worked answer's path comes first, and the hints stay there for whoever wants them.

use anyhow::Result;

use crate::course::{Course, TaskRef};
use crate::progress::Progress;

/// How the learner asks for the next hint where this one is shown.
#[derive(Clone, Copy)]
pub enum AskAgain {
    /// From the shell: the command names the task.
    Command,
    /// In watch mode: a key.
    Key,
}

/// Shows `task`'s next hint (when it is done, where the worked answer is, first).
pub fn show_next(course: &Course, task: TaskRef, again: AskAgain) -> Result<()> {
    let mut progress = Progress::load(course)?;
    let hints = &task.task.hints;
    if progress.is_done(task) {
        println!(
            "{} is done. Compare with the worked answer: {} (it holds the answers to the \
             exercise's other tasks too).\n",
            task.label(),
            task.exercise.solution().display()
        );
    }
    let shown = progress.hints_shown(task);
    if shown >= hints.len() {
        // Not all of them again: the last one, and where the rest of the help is.
        println!(
            "You have seen all {} hints for {}. The last one:\n",
            hints.len(),
            task.label()
        );
        if let Some(last) = hints.last() {
            println!("{}", numbered(hints.len(), hints.len(), last));
        }
        println!(
            "The chapter's section on this pattern, and the task's doc comments, say the rest."
        );
        return Ok(());
    }
    println!("Hint for {}:\n", task.label());
    println!("{}", numbered(shown + 1, hints.len(), &hints[shown]));
    progress.set_hints_shown(task, shown + 1)?;
    if shown + 1 < hints.len() {
        match again {
            AskAgain::Command => println!(
                "Ask again for the next one: cargo exercises hint {} {}",
                task.exercise.name, task.task.number
            ),
            AskAgain::Key => println!("Type h and Enter again for the next one."),
        }
    } else {
        println!("That was the last hint for this task.");
    }
    Ok(())
}

/// "Hint 1 of 2:" and the hint, indented.
fn numbered(number: usize, of: usize, hint: &str) -> String {
    let body: Vec<String> = hint.lines().map(|line| format!("  {line}")).collect();
    format!("Hint {number} of {of}:\n{}\n", body.join("\n"))
}
