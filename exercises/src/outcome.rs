//! What a run of tests said, read from the test harness's plain output: which tests passed, and
//! for each one that failed, the assertion's own message and where it was raised.
//!
//! The harness prints `test NAME ... ok` (or `FAILED`) per test, then a `---- NAME stdout ----`
//! section per failure holding what the test printed, including `thread '…' panicked at FILE:LINE:COL:`
//! and the panic's message. That format has been stable for years and needs no nightly flag.

/// One test's result.
pub struct TestResult {
    /// The name without the module path: `task1_second_read_is_a_hit`.
    pub name: String,
    pub passed: bool,
    /// For a failure: the first panic's message and place, if the output has one.
    pub failure: Option<Failure>,
}

/// Why a test failed, in its own words.
pub struct Failure {
    /// `exercises/cache-aside/tests/suite/mod.rs:110:5`.
    pub location: String,
    /// The panic's message, as the assertion wrote it.
    pub message: String,
}

impl Failure {
    /// Whether this is an exercise stub's `todo!()`: the task was not started.
    pub fn is_todo(&self) -> bool {
        self.message.starts_with("not yet implemented")
    }
}

/// The results of one `cargo test` run.
pub struct TestRun {
    pub results: Vec<TestResult>,
    /// When no test ran at all (a build that failed after all): cargo's stderr.
    pub stderr: String,
}

impl TestRun {
    /// Reads a run's `stdout` (the harness's report) and keeps `stderr` for when nothing ran.
    pub fn parse(stdout: &str, stderr: &str) -> TestRun {
        let mut results: Vec<TestResult> = Vec::new();
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("test ") else {
                continue;
            };
            let (name, passed) = if let Some(name) = rest.strip_suffix(" ... ok") {
                (name, true)
            } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
                (name, false)
            } else {
                continue;
            };
            results.push(TestResult {
                name: short_name(name).to_string(),
                passed,
                failure: None,
            });
        }
        for (name, section) in failure_sections(stdout) {
            if let Some(result) = results
                .iter_mut()
                .find(|result| result.name == short_name(name))
            {
                result.failure = Some(first_panic(&section));
            }
        }
        TestRun {
            results,
            stderr: stderr.to_string(),
        }
    }

    /// Whether every test of `task` (names starting with `task`) passed, and at least one ran.
    pub fn task_passed(&self, task: &str) -> bool {
        let mut ran = self.of_task(task).peekable();
        ran.peek().is_some() && ran.all(|result| result.passed)
    }

    /// The results of `task`'s tests.
    pub fn of_task<'a>(&'a self, task: &'a str) -> impl Iterator<Item = &'a TestResult> {
        let prefix = format!("{task}_");
        self.results
            .iter()
            .filter(move |result| result.name.starts_with(&prefix))
    }
}

/// `suite::task1_x` as `task1_x`.
fn short_name(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// Each `---- NAME stdout ----` section: the name and the lines under it.
fn failure_sections(stdout: &str) -> Vec<(&str, String)> {
    let mut sections: Vec<(&str, String)> = Vec::new();
    let mut open = false;
    for line in stdout.lines() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|rest| rest.strip_suffix(" stdout ----"))
        {
            sections.push((name, String::new()));
            open = true;
        } else if line == "failures:" || line.starts_with("test result:") {
            // The list of failed names that closes the sections, or the binary's summary.
            open = false;
        } else if let Some((_, text)) = sections.last_mut().filter(|_| open) {
            text.push_str(line);
            text.push('\n');
        }
    }
    sections
}

/// The first panic in a failure's output: where it was raised and what it said, without the
/// backtrace note. Output with no panic in it (a test that returned an error) is the message.
fn first_panic(section: &str) -> Failure {
    let mut lines = section.lines();
    for line in lines.by_ref() {
        // `thread 'NAME' panicked at …`, or with newer toolchains `thread 'NAME' (ID) panicked at …`.
        let place = line
            .strip_prefix("thread '")
            .and_then(|rest| rest.split_once(" panicked at "));
        if let Some((_, place)) = place {
            let location = place.trim_end_matches(':').to_string();
            let message: Vec<&str> = lines
                .take_while(|line| {
                    !line.starts_with("note: ")
                        && !line.starts_with("stack backtrace:")
                        && !line.starts_with("thread '")
                })
                .collect();
            return Failure {
                location,
                message: message.join("\n").trim().to_string(),
            };
        }
    }
    Failure {
        location: String::new(),
        message: section.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
running 3 tests
test suite::task1_a ... ok
test suite::task1_b ... FAILED
test suite::task2_c ... FAILED

failures:

---- suite::task1_b stdout ----

thread 'suite::task1_b' panicked at exercises/x/tests/suite/mod.rs:10:5:
assertion `left == right` failed: the second read went to the database
  left: 2
 right: 1
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

---- suite::task2_c stdout ----
some log line

thread 'tokio-runtime-worker' (4242) panicked at exercises/x/src/lib.rs:40:9:
not yet implemented: task 2
thread 'suite::task2_c' panicked at exercises/x/tests/suite/mod.rs:20:5:
the call panicked


failures:
    suite::task1_b
    suite::task2_c

test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out
";

    #[test]
    fn results_and_the_first_panic_of_each_failure_are_read() {
        let run = TestRun::parse(OUTPUT, "");
        let names: Vec<(&str, bool)> = run
            .results
            .iter()
            .map(|result| (result.name.as_str(), result.passed))
            .collect();
        assert_eq!(
            names,
            vec![("task1_a", true), ("task1_b", false), ("task2_c", false)]
        );
        let b = run.results[1]
            .failure
            .as_ref()
            .expect("task1_b's failure read");
        assert_eq!(b.location, "exercises/x/tests/suite/mod.rs:10:5");
        assert_eq!(
            b.message,
            "assertion `left == right` failed: the second read went to the database\n  left: 2\n right: 1"
        );
        assert!(!b.is_todo());
        let c = run.results[2]
            .failure
            .as_ref()
            .expect("task2_c's failure read");
        assert_eq!(c.location, "exercises/x/src/lib.rs:40:9");
        assert!(
            c.is_todo(),
            "the stub's todo!() is the first panic: {}",
            c.message
        );
        assert!(!run.task_passed("task1"));
        assert!(
            !run.task_passed("task3"),
            "a task none of whose tests ran has not passed"
        );
    }
}
