//! The runner, driven as a learner drives it: its binary, in a copy of the course's workspace.
//!
//! Each test works in a fresh copy (so that writing a solution over a stub, or a progress file,
//! never touches the course itself) whose stubs are restored from git as they were handed out.
//! The copies build into the course's own target folder, so that they reuse every dependency the
//! course has built instead of building a second copy of them all. Cargo names a workspace
//! member's build by its path *inside* the workspace, so a copy could otherwise hand the course a
//! build of the copy's solution: the copies build their own crates without debug information
//! ([`COPY_PROFILE`]), which cargo names differently, while the dependencies' settings, and so
//! their builds, stay the course's. Tests that build hold [`BUILDS`] for their whole length (and
//! under cargo-nextest, which runs each test in a process of its own, they are one test group in
//! `.config/nextest.toml`), so that each copy is created after the previous one's builds and
//! cargo, which compares file times, rebuilds it rather than reusing another copy's.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Held by every test that builds an exercise (see the module docs).
static BUILDS: Mutex<()> = Mutex::new(());

/// A first build of an exercise's dependencies on a 2-core machine takes a few minutes.
const FIRST_BUILD: Duration = Duration::from_secs(900);

/// How the copies' own crates are built (see the module docs): `debug = false`, where the course's
/// crates have line tables (the root `Cargo.toml`); dependencies set their own and are shared.
const COPY_PROFILE: (&str, &str) = ("CARGO_PROFILE_DEV_DEBUG", "false");

/// The course's target folder (`CARGO_TARGET_TMPDIR` is its `tmp/`), which the copies share.
fn course_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target folder")
        .to_path_buf()
}

/// The course being tested: the folder above this package.
fn course_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runner sits inside the course")
        .to_path_buf()
}

/// A copy of the course's workspace, removed when dropped.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// Copies the course (sources only, no build output, no progress file) and restores each
    /// exercise's stub from git, in case the course's own copy holds a learner's work.
    fn new() -> Workspace {
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tempfile::Builder::new()
            .prefix("runner-workspace-")
            .tempdir_in(scratch)
            .expect("a scratch folder for the copy");
        let root = course_root();
        for entry in [
            "Cargo.toml",
            "Cargo.lock",
            ".cargo",
            "shared",
            "shared-http",
            "chapters",
            "exercises",
            "solutions",
        ] {
            copy(&root.join(entry), &dir.path().join(entry));
        }
        let workspace = Workspace { dir };
        workspace.restore_stubs();
        workspace
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    fn write(&self, relative: &str, text: &str) {
        fs::write(self.path(relative), text).expect("writing into the copy");
    }

    /// The progress file, or "" if there is none.
    fn progress(&self) -> String {
        self.read("exercises/progress.txt")
    }

    /// Puts `lesson`'s worked answer where its exercise's source is, as a learner who solved
    /// every task would have it. (The answer includes the exercise's `given.rs` by a relative
    /// path that resolves to the same file from either place.)
    fn solve(&self, lesson: &str) {
        let answer = self.read(&format!("solutions/{lesson}/src/lib.rs"));
        assert!(
            !answer.is_empty(),
            "solutions/{lesson}/src/lib.rs is missing"
        );
        self.write(&format!("exercises/{lesson}/src/lib.rs"), &answer);
    }

    /// Applies (or with `reverse`, takes back) the patch at `relative`, as `git apply` does
    /// outside a repository: the copy lives inside the course's folder, and git must not take the
    /// course's repository for the copy's.
    fn apply(&self, relative: &str, reverse: bool) {
        let mut git = Command::new("git");
        git.arg("apply");
        if reverse {
            git.arg("-R");
        }
        let status = git
            .arg(relative)
            .current_dir(self.dir.path())
            .env_remove("GIT_DIR")
            .env(
                "GIT_CEILING_DIRECTORIES",
                self.dir.path().parent().expect("a parent"),
            )
            .status()
            .expect("running git apply");
        assert!(
            status.success(),
            "git apply (reverse: {reverse}) {relative} failed in the copy"
        );
    }

    /// Every stub file exactly as `exercises/stubs.txt` names it in git. Without a git history
    /// (an unpacked archive) the copied files are taken as they are.
    fn restore_stubs(&self) {
        let list = self.read("exercises/stubs.txt");
        for line in list.lines().filter(|line| !line.starts_with('#')) {
            let Some((id, path)) = line.split_once(' ') else {
                continue;
            };
            let Ok(output) = Command::new("git")
                .args(["cat-file", "blob", id])
                .current_dir(course_root())
                .output()
            else {
                return;
            };
            if output.status.success() {
                fs::write(self.path(path), output.stdout).expect("restoring a stub");
            }
        }
    }

    /// The runner with `args`, in this copy, building into the course's target folder with the
    /// copies' own profile.
    fn runner(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_exercises"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("CARGO_TARGET_DIR", course_target())
            .env(COPY_PROFILE.0, COPY_PROFILE.1)
            .env("GIT_DIR", course_root().join(".git"))
            .stdin(Stdio::null());
        command
    }

    /// Runs the runner with `args` to its end.
    fn run(&self, args: &[&str]) -> Ran {
        Ran::from(
            self.runner(args).output().expect("starting the runner"),
            args,
        )
    }

    /// Runs the runner with `args`, typing `input` on its terminal.
    fn run_with_input(&self, args: &[&str], input: &str) -> Ran {
        let mut child = self
            .runner(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the runner");
        child
            .stdin
            .take()
            .expect("a piped stdin")
            .write_all(input.as_bytes())
            .expect("typing into the runner");
        Ran::from(
            child.wait_with_output().expect("waiting for the runner"),
            args,
        )
    }
}

/// What one run of the runner printed, and its exit status.
struct Ran {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn from(output: Output, args: &[&str]) -> Ran {
        Ran {
            what: format!("`exercises {}`", args.join(" ")),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Fails unless the run exited with `code`.
    fn exited(&self, code: i32, why: &str) -> &Ran {
        assert_eq!(
            self.code,
            Some(code),
            "{} exited with {:?}, expected {code} ({why}).\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Fails unless stdout says `text`.
    fn says(&self, text: &str, why: &str) -> &Ran {
        assert!(
            self.stdout.contains(text),
            "{} did not print {text:?} ({why}).\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Fails if stdout says `text`.
    fn never_says(&self, text: &str, why: &str) -> &Ran {
        assert!(
            !self.stdout.contains(text),
            "{} printed {text:?}, which it must not ({why}).\nstdout:\n{}",
            self.what,
            self.stdout
        );
        self
    }
}

/// The lessons with an exercise, in the order the board lists them.
fn lessons() -> Vec<String> {
    let manifest = fs::read_to_string(course_root().join("Cargo.toml")).expect("the root manifest");
    let mut lessons: Vec<String> = Vec::new();
    for line in manifest.lines() {
        let Some(lesson) = line.trim().strip_prefix("\"exercises/") else {
            continue;
        };
        let lesson = lesson.trim_end_matches(['"', ',']).to_string();
        if !lessons.contains(&lesson) {
            lessons.push(lesson);
        }
    }
    assert!(
        !lessons.is_empty(),
        "the root Cargo.toml lists no exercises"
    );
    lessons
}

/// How many graded tasks `lesson`'s suite has (tests named `taskN_…`).
fn task_count(lesson: &str) -> usize {
    let suite =
        fs::read_to_string(course_root().join(format!("exercises/{lesson}/tests/suite/mod.rs")))
            .expect("the exercise's suite");
    (1..10)
        .take_while(|n| suite.contains(&format!("fn task{n}_")))
        .count()
}

fn lock_builds() -> MutexGuard<'static, ()> {
    BUILDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn on_the_stubs_the_board_shows_every_task_not_yet() {
    let workspace = Workspace::new();
    let ran = workspace.run(&[]);
    ran.exited(0, "the board is the default command");
    let mut total = 0;
    for lesson in lessons() {
        let tasks = task_count(&lesson);
        total += tasks;
        let row = ran
            .stdout
            .lines()
            .find(|line| line.contains(&format!(" {lesson} ")))
            .unwrap_or_else(|| panic!("the board has no row for {lesson}:\n{}", ran.stdout));
        assert_eq!(
            row.matches("not yet").count(),
            tasks,
            "{lesson}'s row should show its {tasks} tasks as not yet on the stubs: {row}"
        );
        assert!(
            row.contains(&format!("0 of {tasks}")),
            "{lesson}'s row: {row}"
        );
    }
    ran.says(
        &format!("0 of {total} tasks done"),
        "nothing is done on the stubs",
    )
    .never_says("✓", "no task is done on the stubs")
    .says("Next: cache-aside task 1", "the first task is next")
    .says("cargo exercises next", "the board says what to run");
    assert!(
        !workspace.path("exercises/progress.txt").exists(),
        "showing the board wrote the progress file; only progress should"
    );
}

#[test]
fn hints_come_one_at_a_time_and_the_answer_only_after_a_pass() {
    let workspace = Workspace::new();
    for lesson in lessons() {
        for task in 1..=task_count(&lesson) {
            let number = task.to_string();
            let args = ["hint", lesson.as_str(), number.as_str()];
            let first = workspace.run(&args);
            first
                .exited(0, "a hint is always there")
                .says(
                    &format!("Hint for {lesson} task {task}:"),
                    "the hint names its task",
                )
                .says("Hint 1 of", "the first call shows the first hint")
                .never_says("Hint 2 of", "one hint at a time")
                .never_says("solutions/", "the answer's path only after the task passes");
            assert!(
                workspace
                    .progress()
                    .contains(&format!("hints {lesson} task{task} 1")),
                "after one hint of {lesson} task {task}, the progress file should record 1 shown:\n{}",
                workspace.progress()
            );
            let second = workspace.run(&args);
            let total: usize = first
                .stdout
                .split("Hint 1 of ")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok())
                .expect("\"Hint 1 of N:\"");
            if total > 1 {
                second.says("Hint 2 of", "the second call shows the second hint");
            } else {
                second.says("You have seen all 1 hints", "a one-hint task says so");
            }
            second.never_says("solutions/", "the answer's path only after the task passes");
        }
    }
    let unknown = workspace.run(&["hint", "no-such-lesson"]);
    unknown.exited(2, "an exercise that does not exist");
    assert!(
        unknown.stderr.contains("the exercises are: cache-aside"),
        "an unknown exercise should get the list of the real ones; stderr:\n{}",
        unknown.stderr
    );
    let outside = tempfile::tempdir().expect("a folder outside the course");
    let output = Command::new(env!("CARGO_BIN_EXE_exercises"))
        .current_dir(outside.path())
        .output()
        .expect("starting the runner");
    let ran = Ran::from(output, &[]);
    ran.exited(2, "run outside the course's folder");
    assert!(
        ran.stderr.contains("not inside the caching course"),
        "outside the course, the runner should say so; stderr:\n{}",
        ran.stderr
    );

    // A passed task (as the runner records one) shows where the answer is.
    workspace.write("exercises/progress.txt", "done stampede task2\n");
    workspace
        .run(&["hint", "stampede", "2"])
        .exited(0, "a hint for a done task")
        .says(
            "solutions/stampede/src/lib.rs",
            "a done task's hint points at the answer",
        );
    workspace
        .run(&["hint", "stampede", "3"])
        .never_says("solutions/", "task 3 is not done");
}

#[test]
fn without_redis_the_runner_says_what_to_do_and_exits_2() {
    let workspace = Workspace::new();
    let empty_path = tempfile::tempdir().expect("an empty folder for PATH");
    let output = workspace
        .runner(&["next"])
        .env("PATH", empty_path.path())
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER")
        .output()
        .expect("starting the runner");
    let ran = Ran::from(output, &["next"]);
    ran.exited(
        2,
        "no redis-server on PATH and no REDIS_URL: the tests cannot run",
    );
    assert!(
        ran.stderr.contains("no redis-server")
            && ran.stderr.contains("apt-get install redis-server"),
        "the runner should say that redis-server is missing and how to install it; stderr:\n{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("REDIS_URL"),
        "the advice should mention REDIS_URL, the other way out; stderr:\n{}",
        ran.stderr
    );
    ran.never_says("──", "nothing is built or run before Redis is there");

    // A REDIS_URL where nothing listens: the advice names that cause, within the bound.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = closed.local_addr().expect("its address").port();
    drop(closed);
    let output = workspace
        .runner(&["next"])
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}/"))
        .env_remove("REDIS_CLUSTER")
        .output()
        .expect("starting the runner");
    let ran = Ran::from(output, &["next"]);
    ran.exited(2, "REDIS_URL names a port nobody listens on");
    assert!(
        ran.stderr.contains(&format!("127.0.0.1:{port}")) && ran.stderr.contains("running"),
        "the runner should say it could not reach the Redis at port {port} and ask whether it is \
         running; stderr:\n{}",
        ran.stderr
    );
}

#[test]
fn a_session_from_stub_to_solution_is_recorded_and_reset() {
    let _builds = lock_builds();
    let workspace = Workspace::new();
    // A learner's own note in the progress file, which the runner must keep.
    workspace.write("exercises/progress.txt", "# started on the train\n");

    // The stub: not started, with the command to run the task by hand.
    workspace
        .run(&["next"])
        .exited(1, "task 1 does not pass on the stub")
        .says("── cache-aside task 1 of", "next runs the first task")
        .says(
            "not started: the stub's todo!() at exercises/cache-aside/src/lib.rs",
            "a stub's failure is shown as not started, where it panics",
        )
        .says(
            "cargo test -p cache-aside-exercise task1",
            "the command to run it by hand",
        )
        .never_says("task2_", "next runs the first unfinished task's tests only");
    // Anywhere: a later task of the exercise, by number.
    workspace
        .run(&["next", "cache-aside", "2"])
        .exited(1, "task 2 does not pass on the stub")
        .says(
            "── cache-aside task 2 of",
            "next EXERCISE TASK runs that task",
        )
        .never_says("task1_", "only the chosen task's tests");
    let check = workspace.run(&["check", "cache-aside"]);
    check.exited(1, "no task of the stub passes");
    for task in 1..=task_count("cache-aside") {
        check.says(&format!("task {task} ("), "check reports every task");
    }
    check
        .never_says("✓ done", "no task of the stub passes")
        .says("0 of 3", "the board after the check");
    assert!(
        !workspace
            .progress()
            .lines()
            .any(|line| line.starts_with("done ")),
        "a failing task was recorded as done:\n{}",
        workspace.progress()
    );

    // Code that does not compile: the compiler's own words, and no test run.
    let stub = workspace.read("exercises/cache-aside/src/lib.rs");
    workspace.write(
        "exercises/cache-aside/src/lib.rs",
        &format!("{stub}\nfn half_written( {{\n"),
    );
    workspace
        .run(&["next"])
        .exited(1, "code that does not build does not pass")
        .says("error", "the compiler's diagnostics are shown")
        .says(
            "exercises/cache-aside/src/lib.rs",
            "the diagnostics point at the learner's file",
        )
        .says(
            "cache-aside does not build yet",
            "the runner says why no test ran",
        )
        .never_says("task1_", "no test runs when the build fails");

    // A classic mistake: the failure is the assertion's own message.
    let patch = "solutions/cache-aside/mistakes/no-negative-cache.patch";
    workspace.apply(patch, false);
    workspace.solve("cache-aside");
    workspace
        .run(&["next"])
        .exited(1, "the answer without negative caching fails task 1")
        .says(
            "✗ task1_an_unknown_product_costs_one_query",
            "the test that catches the mistake",
        )
        .says("must be cached too", "the assertion's own message")
        .says(
            "(at exercises/cache-aside/tests/suite/mod.rs:",
            "where the assertion is",
        )
        .says(
            "✓ task1_second_read_is_a_hit",
            "the tests that pass are listed as passing",
        );
    workspace
        .run(&["check", "cache-aside"])
        .exited(1, "the mistake fails task 1 in check too")
        .says(
            "must be cached too",
            "check shows a begun task's failing test in its own words",
        );

    // The worked answer: check turns every task of the exercise done and records it.
    workspace.apply(patch, true);
    workspace.solve("cache-aside");
    workspace
        .run(&["check", "cache-aside"])
        .exited(0, "the worked answer passes every task")
        .says("task 3 (", "check reports every task")
        .says("3 of 3", "the board after the check");
    let progress = workspace.progress();
    assert!(
        progress.contains("# started on the train"),
        "the learner's own comment line was dropped from the progress file:\n{progress}"
    );
    for task in 1..=3 {
        assert!(
            progress.contains(&format!("done cache-aside task{task}")),
            "after check, the progress file should record cache-aside task {task} as done:\n{progress}"
        );
    }
    workspace
        .run(&[])
        .says("3 of ", "the board counts the three done tasks")
        .says(
            "Next: stampede task 1",
            "the next unfinished task is the next exercise's first",
        );
    workspace.run(&["hint", "cache-aside", "1"]).says(
        "solutions/cache-aside/src/lib.rs",
        "a passed task's hint shows the answer's path",
    );

    // Reset: nothing without a yes; with one, the stub is back and its progress forgotten.
    let solved = workspace.read("exercises/cache-aside/src/lib.rs");
    workspace
        .run_with_input(&["reset", "cache-aside"], "n\n")
        .exited(0, "declining is not an error")
        .says(
            "exercises/cache-aside/src/lib.rs",
            "reset names the files it would replace",
        )
        .says("Nothing changed", "a no keeps everything");
    assert_eq!(
        workspace.read("exercises/cache-aside/src/lib.rs"),
        solved,
        "answering no to reset changed the learner's file"
    );
    workspace
        .run_with_input(&["reset", "cache-aside"], "y\n")
        .exited(0, "reset after a yes")
        .says("back to its stub", "reset says what it did");
    let stub = workspace.read("exercises/cache-aside/src/lib.rs");
    assert!(
        stub.contains("todo!(") && stub != solved,
        "after reset, exercises/cache-aside/src/lib.rs should be the stub again (with its todo!()s)"
    );
    assert!(
        !workspace.progress().contains("cache-aside"),
        "reset should forget cache-aside's progress:\n{}",
        workspace.progress()
    );
}

#[test]
fn watch_reruns_on_a_change_and_moves_on_when_the_task_passes() {
    let _builds = lock_builds();
    let workspace = Workspace::new();
    let mut child = workspace
        .runner(&["watch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the runner");
    let lines = lines_of(&mut child);
    let mut stdin = child.stdin.take().expect("a piped stdin");
    let mut seen = Vec::new();
    let mut expect = |text: &str, within: Duration, why: &str| {
        let deadline = Instant::now() + within;
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    panic!(
                        "watch mode did not print {text:?} within {within:?} ({why}). It printed:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    };
    expect(
        "UTC · cache-aside task 1:",
        FIRST_BUILD,
        "each run starts under a line with the time and the task",
    );
    expect(
        "Watching exercises/cache-aside for changes",
        FIRST_BUILD,
        "after the stub's run, watch mode waits for a change",
    );
    // h, and h again: the first hint, then the next one.
    stdin.write_all(b"h\n").expect("typing h");
    expect(
        "Hint 1 of",
        Duration::from_secs(30),
        "h gives the first hint",
    );
    stdin.write_all(b"h\n").expect("typing h again");
    expect(
        "Hint 2 of",
        Duration::from_secs(30),
        "h again gives the next hint",
    );
    workspace.solve("cache-aside");
    let change = Duration::from_secs(120);
    expect(
        "exercises/cache-aside/src/lib.rs changed",
        change,
        "saving the exercise's source is seen",
    );
    expect(
        "cache-aside task 1 is done",
        change,
        "the answer passes task 1",
    );
    expect(
        "What it taught:",
        change,
        "a pass says what the task taught",
    );
    expect(
        "── cache-aside task 2 of",
        change,
        "then watch mode moves on to task 2",
    );
    expect("cache-aside is complete", change, "and on through task 3");
    expect(
        "Watching exercises/stampede for changes",
        FIRST_BUILD,
        "then to the next exercise, whose stub fails",
    );
    stdin.write_all(b"q\n").expect("typing q");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling the runner") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("watch mode did not quit within 30 s of q");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "q should end watch mode with status 0"
    );
    let progress = workspace.progress();
    for task in 1..=3 {
        assert!(
            progress.contains(&format!("done cache-aside task{task}")),
            "watch mode should have recorded cache-aside task {task} as done:\n{progress}"
        );
    }
    assert!(
        !progress.contains("done stampede"),
        "the stampede stub was recorded as done:\n{progress}"
    );
}

#[test]
fn a_hung_task_is_stopped_at_the_time_limit_or_a_second_ctrl_c_with_nothing_left_behind() {
    let _builds = lock_builds();
    let workspace = Workspace::new();
    let stub = workspace.read("exercises/cache-aside/src/lib.rs");
    let todo = "todo!(\"task 1: cache-aside read of one product, with negative caching\")";
    assert!(
        stub.contains(todo),
        "the cache-aside stub no longer has task 1's todo!()"
    );
    // Blocks the test's runtime thread, so no timeout inside the test can fire: a true hang.
    let hung = stub.replace(
        todo,
        "std::thread::sleep(std::time::Duration::from_secs(3600)); todo!()",
    );
    workspace.write("exercises/cache-aside/src/lib.rs", &hung);
    // Tests killed at the limit cannot clean up after themselves, so this run keeps everything
    // private: a SQLite file and a redis-server per test (not DATABASE_URL's schemas or
    // REDIS_URL's keys), their folders in a TMPDIR of this test's own, removed with it.
    // The limit counts from the start of the test run (the build is before it, under a limit of
    // its own): 5 s is ample for the tests to start and make their folders, and not a CI minute.
    let scratch = tempfile::tempdir().expect("a scratch TMPDIR");
    let output = workspace
        .runner(&["next", "--time-limit", "5"])
        .env("TMPDIR", scratch.path())
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER")
        .output()
        .expect("starting the runner");
    let ran = Ran::from(output, &["next", "--time-limit", "5"]);
    ran.exited(1, "a task whose tests hang does not pass");
    assert!(
        ran.stderr.contains("did not finish within 5 s") && ran.stderr.contains("never ends"),
        "the runner should say the tests outlived the limit and what usually causes that; \
         stderr:\n{}",
        ran.stderr
    );
    let copy = workspace.path("");
    let left: Vec<String> = fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter(|entry| {
            fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&copy))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "processes still running in the copy after the time limit (pids {left:?}): the runner \
         should kill cargo and the test binary together"
    );
    let folders = course_folders(scratch.path());
    assert!(
        folders.is_empty() && ran.stderr.contains("left by the tests that were stopped"),
        "the tests killed at the time limit could not remove their folders, so the runner should \
         (and say so): found {folders:?} left in TMPDIR; stderr:\n{}",
        ran.stderr
    );

    // A second Ctrl-C kills the tests too: what they left goes, and the runner says so.
    let mut runner = workspace
        .runner(&["next"])
        .env("TMPDIR", scratch.path())
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the runner");
    let stderr = runner.stderr.take().expect("a piped stderr");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    // The tests are at work (and hung) once their private folders exist.
    let started = Instant::now();
    while course_folders(scratch.path()).is_empty() {
        assert!(
            started.elapsed() < FIRST_BUILD && runner.try_wait().unwrap().is_none(),
            "the hung tests never made their private folders in TMPDIR"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = runner.id() as libc::pid_t;
    // SAFETY: kill(2) on the runner we started; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let mut said = Vec::new();
    // The second press only once the first was heard: two at once may count as one.
    loop {
        match lines.recv_timeout(FIRST_BUILD) {
            Ok(line) if line.starts_with("Ctrl-C") => break,
            Ok(line) => said.push(line),
            Err(_) => panic!("the runner never answered the first Ctrl-C; it said: {said:?}"),
        }
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = runner.wait().expect("waiting for the runner");
    said.extend(lines.iter());
    assert_eq!(
        status.code(),
        Some(130),
        "the runner stopped by a second Ctrl-C should exit 130; it said: {said:?}"
    );
    let folders = course_folders(scratch.path());
    assert!(
        folders.is_empty()
            && said
                .iter()
                .any(|l| l.contains("left by the tests that were stopped")),
        "after a second Ctrl-C killed the tests, the runner should remove the folders they left \
         and say so: found {folders:?} left in TMPDIR; it said: {said:?}"
    );
}

/// The course's temporary folders in `tmp`.
fn course_folders(tmp: &Path) -> Vec<PathBuf> {
    fs::read_dir(tmp)
        .expect("reading the scratch TMPDIR")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("caching-course-")
        })
        .map(|e| e.path())
        .collect()
}

/// `child`'s stdout, line by line, as it prints.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("a piped stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Copies a file or a folder, leaving out build output and a progress file.
fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).expect("creating a folder in the copy");
        for entry in fs::read_dir(from).expect("reading a folder of the course") {
            let entry = entry.expect("a folder entry");
            let name = entry.file_name();
            if name == "target" || name == "progress.txt" {
                continue;
            }
            copy(&entry.path(), &to.join(name));
        }
    } else if from.is_file() {
        fs::copy(from, to).unwrap_or_else(|error| panic!("copying {}: {error}", from.display()));
    }
}
