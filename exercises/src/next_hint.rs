//! Hints, one at a time: each call shows the next one for the task and records how many were
//! shown, so the next call (or tomorrow's) goes on from there. The worked answer's path is shown
//! only once the task has passed.

use anyhow::Result;

use crate::course::{Course, TaskRef};
use crate::progress::Progress;

/// Shows `task`'s next hint (or, when it is done, where the worked answer is).
pub fn show_next(course: &Course, task: TaskRef) -> Result<()> {
    let mut progress = Progress::load(course)?;
    let hints = &task.task.hints;
    if progress.is_done(task) {
        println!(
            "{} is done. Compare with the worked answer: {} (it holds the answers to the \
             exercise's other tasks too).",
            task.label(),
            task.exercise.solution().display()
        );
        return Ok(());
    }
    let shown = progress.hints_shown(task);
    if shown >= hints.len() {
        println!(
            "You have seen all {} hints for {}; here they are again:\n",
            hints.len(),
            task.label()
        );
        for (number, hint) in hints.iter().enumerate() {
            println!("{}", numbered(number + 1, hints.len(), hint));
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
        println!(
            "Ask again for the next one: cargo exercises hint {} {}",
            task.exercise.name, task.task.number
        );
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
