//! What the runner prints: the board, and the result of one task's tests.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Table};

use crate::course::{Course, TaskRef};
use crate::outcome::{TestResult, TestRun};
use crate::progress::Progress;

/// How many failures are shown in full; the rest by name and first line.
const SHOWN_IN_FULL: usize = 3;

/// The board: a row per exercise, a cell per task, and what to do next.
pub fn board(course: &Course, progress: &Progress) -> String {
    let widest = course
        .exercises
        .iter()
        .map(|e| e.tasks.len())
        .max()
        .unwrap_or(0);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("exercise")];
    header.extend((1..=widest).map(|n| Cell::new(format!("task {n}"))));
    header.push(Cell::new("done"));
    table.set_header(header);
    for exercise in &course.exercises {
        let mut row = vec![Cell::new(&exercise.name)];
        let mut done = 0;
        for task in exercise.task_refs() {
            if progress.is_done(task) {
                done += 1;
                row.push(Cell::new("✓ done"));
            } else {
                row.push(Cell::new("· not yet"));
            }
        }
        row.extend((exercise.tasks.len()..widest).map(|_| Cell::new("")));
        row.push(Cell::new(format!("{done} of {}", exercise.tasks.len())));
        table.add_row(row);
    }
    let mut text = format!("{table}\n");
    let done = progress.done_count(course);
    text.push_str(&format!(
        "{done} of {} tasks done (recorded in {}).\n",
        course.task_count(),
        crate::progress::FILE
    ));
    match progress.first_unfinished(course) {
        Some(next) => text.push_str(&format!(
            "Next: {}.\n  cargo exercises next     runs its tests once\n  \
             cargo exercises watch    runs them again each time you save\n  \
             cargo exercises hint     a hint, one at a time\n",
            next.label()
        )),
        None => text.push_str("Every task is done. Well cached.\n"),
    }
    text
}

/// The heading of a task's run.
pub fn heading(task: TaskRef) -> String {
    format!(
        "── {} task {} of {}: {} ──",
        task.exercise.name,
        task.task.number,
        task.exercise.tasks.len(),
        task.task.title
    )
}

/// The result of running `task`'s tests: each test, the failures in their own words, and what to
/// do next.
pub fn task_result(task: TaskRef, run: &TestRun) -> String {
    let mut results: Vec<&TestResult> = run.of_task(&task.task.name).collect();
    // In the order the suite states them, which is the order the task's argument goes.
    results.sort_by_key(|result| task.task.tests.iter().position(|test| *test == result.name));
    let mut text = String::new();
    if results.is_empty() {
        text.push_str(&format!(
            "No test of {} ran. What cargo said:\n{}\n",
            task.task.name,
            run.stderr.trim()
        ));
        return text;
    }
    let mut failures_shown = 0;
    for result in &results {
        if result.passed {
            text.push_str(&format!("  ✓ {}\n", result.name));
            continue;
        }
        text.push_str(&format!("  ✗ {}\n", result.name));
        let Some(failure) = &result.failure else {
            continue;
        };
        let lines: Vec<&str> = if failures_shown < SHOWN_IN_FULL {
            failure.message.lines().collect()
        } else {
            failure.message.lines().take(1).collect()
        };
        failures_shown += 1;
        if failure.is_todo() {
            text.push_str(&format!(
                "      not started: the stub's todo!() at {} ({})\n",
                failure.location,
                failure.message.trim_start_matches("not yet implemented: ")
            ));
            continue;
        }
        // A long message (a key, a list of what was found) is wrapped as the other text is:
        // a terminal would wrap it anyway, at the wrong place, and the book shows this output.
        for line in lines {
            text.push_str(&wrapped_from("      ", line, "        "));
        }
        if !failure.location.is_empty() {
            text.push_str(&format!("      (at {})\n", failure.location));
        }
    }
    let passed = results.iter().filter(|result| result.passed).count();
    if passed == results.len() {
        text.push_str(&format!(
            "All {} tests pass: {} task {} is done.\n",
            results.len(),
            task.exercise.name,
            task.task.number
        ));
    } else {
        text.push_str(&format!(
            "{passed} of {} tests pass: not yet.\n  Run them yourself: {}\n  Stuck? cargo exercises hint\n",
            results.len(),
            task.command()
        ));
    }
    text
}

/// What a task taught, and for an exercise's last task where the worked answer is.
pub fn taught(task: TaskRef, exercise_complete: bool) -> String {
    let mut text = wrapped(&format!("What it taught: {}", task.task.taught), "  ");
    if exercise_complete {
        text.push_str(&format!(
            "{} is complete. Compare with the worked answer: {}\n",
            task.exercise.name,
            task.exercise.solution().display()
        ));
    }
    text
}

/// `text` in lines of at most 100 characters, the later ones indented by `indent`.
fn wrapped(text: &str, indent: &str) -> String {
    wrapped_from("", text, indent)
}

/// [`wrapped`], the first line indented by `first`. A line that fits is kept as it is, spaces
/// and all (a message may align columns); only a longer one is rewrapped at its spaces.
fn wrapped_from(first: &str, text: &str, indent: &str) -> String {
    if first.chars().count() + text.chars().count() <= 100 {
        return format!("{first}{text}\n");
    }
    let mut lines = vec![first.to_string()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.trim().is_empty() && line.chars().count() + 1 + word.chars().count() > 100 {
            lines.push(format!("{indent}{word}"));
        } else {
            if !line.trim().is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::wrapped_from;

    #[test]
    fn a_long_message_line_is_wrapped_and_a_short_one_kept_as_it_is() {
        let short = "found   3 keys";
        assert_eq!(
            wrapped_from("      ", short, "        "),
            format!("      {short}\n")
        );
        let long = "after a failed load the lock course:stampede-exercise:ccb4cdb3:{listing:tea}:lock \
                    is still held: expected it released. Did a `?` on the load return early?";
        let text = wrapped_from("      ", long, "        ");
        assert!(text.lines().count() > 1, "{text}");
        for line in text.lines() {
            assert!(
                line.chars().count() <= 100,
                "a line of {} characters: {line}",
                line.chars().count()
            );
        }
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>(),
            long.split_whitespace().collect::<Vec<_>>()
        );
    }
}
