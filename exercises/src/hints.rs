//! An exercise's `HINTS.md`, read as the runner hands it out.
//!
//! The file is written for people first (the book includes its hints, folded): one
//! `<details>` block per task, whose `<summary>` is "Task N: title" and whose top-level list items
//! are the hints, one nudge each; then a list under "When a task passes" with one
//! "- Task N: …" line each, what the task taught. The runner shows the hints one at a time, and the
//! closing line when the task's tests pass.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The hints file of one exercise.
pub struct Hints {
    tasks: Vec<TaskHints>,
}

/// What `HINTS.md` says about one task.
pub struct TaskHints {
    /// N in "Task N".
    pub number: usize,
    /// The rest of the summary line.
    pub title: String,
    /// The list items of its `<details>` block, each without its "- ".
    pub hints: Vec<String>,
    /// Its line under "When a task passes".
    pub taught: String,
}

impl Hints {
    /// Reads and checks `path`: every task has a title, at least one hint and a closing line.
    pub fn read(path: &Path) -> Result<Hints> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let hints = Hints::parse(&text);
        for task in &hints.tasks {
            if task.hints.is_empty() {
                bail!(
                    "{}: task {} has no hints (list items in its <details> block)",
                    path.display(),
                    task.number
                );
            }
            if task.taught.is_empty() {
                bail!(
                    "{}: task {} has no line \"- Task {}: …\" under \"When a task passes\"",
                    path.display(),
                    task.number,
                    task.number
                );
            }
        }
        Ok(hints)
    }

    fn parse(text: &str) -> Hints {
        let mut tasks: Vec<TaskHints> = Vec::new();
        let mut inside: Option<usize> = None; // index into `tasks` of the open <details> block
        let mut taught: Option<usize> = None; // index into `tasks` of the closing line being read
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(summary) = trimmed
                .strip_prefix("<summary>")
                .and_then(|rest| rest.strip_suffix("</summary>"))
            {
                if let Some((number, title)) = task_heading(summary) {
                    tasks.push(TaskHints {
                        number,
                        title: title.to_string(),
                        hints: Vec::new(),
                        taught: String::new(),
                    });
                    inside = Some(tasks.len() - 1);
                }
            } else if trimmed == "</details>" {
                inside = None;
            } else if let Some(index) = inside {
                let hints = &mut tasks[index].hints;
                if let Some(item) = line.strip_prefix("- ") {
                    hints.push(item.to_string());
                } else if let Some(last) = hints.last_mut().filter(|_| !trimmed.is_empty()) {
                    last.push('\n');
                    last.push_str(trimmed);
                }
            } else if let Some((number, line)) = line.strip_prefix("- ").and_then(task_heading) {
                taught = tasks.iter().position(|task| task.number == number);
                if let Some(index) = taught {
                    tasks[index].taught = line.to_string();
                }
            } else if let Some(index) = taught.filter(|_| line.starts_with("  ")) {
                tasks[index].taught.push(' ');
                tasks[index].taught.push_str(trimmed);
            } else {
                taught = None;
            }
        }
        Hints { tasks }
    }

    /// What the file says about task `number`.
    pub fn task(&self, number: usize) -> Option<&TaskHints> {
        self.tasks.iter().find(|task| task.number == number)
    }
}

/// "Task 2: listings and price changes" as (2, "listings and price changes").
fn task_heading(text: &str) -> Option<(usize, &str)> {
    let (number, rest) = text.strip_prefix("Task ")?.split_once(':')?;
    Some((number.trim().parse().ok()?, rest.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_the_list_items_of_each_block_and_the_closing_lines_follow() {
        let text = "# Hints\n\n<!-- ANCHOR: hints -->\n<details>\n<summary>Task 1: the page</summary>\n\n\
                    - first, which\n  goes on\n- second\n\n</details>\n\n<details>\n\
                    <summary>Task 2: the list</summary>\n\n- only\n\n</details>\n<!-- ANCHOR_END: hints -->\n\n\
                    ## When a task passes\n\n- Task 1: pages,\n  wrapped.\n- Task 2: lists.\n";
        let hints = Hints::parse(text);
        let one = hints.task(1).expect("task 1 parsed");
        assert_eq!(one.title, "the page");
        assert_eq!(one.hints, vec!["first, which\ngoes on", "second"]);
        assert_eq!(one.taught, "pages, wrapped.");
        let two = hints.task(2).expect("task 2 parsed");
        assert_eq!(two.hints, vec!["only"]);
        assert_eq!(two.taught, "lists.");
        assert!(hints.task(3).is_none());
    }
}
