//! Child processes that never outlive the program, and a few words with a server on loopback.
//!
//! The private Redis servers (one, or the six of a cluster) are child processes. Two rules keep
//! them from causing trouble, and they live here so every kind of server obeys them:
//!
//! - **A child never outlives its owner.** If the owning process dies without running
//!   destructors (a panic with `panic=abort`, `kill -9`, a test binary that exits while a
//!   `static` still holds a server), Linux sends the child SIGKILL through the parent-death
//!   signal. That signal fires when the *thread* that spawned the child exits, and the test
//!   harness runs each test on its own short-lived thread, so every child is spawned from one
//!   helper thread that lives as long as the process.
//! - **A child never inherits our stdout or stderr.** A child holding the pipe would make
//!   `cargo test` (and CI) wait for it forever; callers pass `Stdio::null()` or a file.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Spawns `command` so that it dies with this process (see the module docs).
pub fn spawn_owned(mut command: Command) -> io::Result<Child> {
    die_with_parent(&mut command);
    spawn_from_long_lived_thread(command)
}

/// Runs `command` to the end, as a child that dies with this process, and returns what it
/// printed and how it exited. How the demos' tests run a demo: a killed test run must not leave
/// the demo (and the demo's own Redis) running.
pub fn run_owned(mut command: Command) -> io::Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn_owned(command)?.wait_with_output()
}

/// What a demo printed, as text, and how it exited.
pub struct DemoOutput {
    /// How it exited.
    pub status: std::process::ExitStatus,
    /// Its report.
    pub stdout: String,
    /// Its notes, warnings and errors.
    pub stderr: String,
}

/// Runs the demo `binary` with `args` in the test's own environment (the backend its leg chose),
/// as a child that dies with the test: what it printed, as text, and how it exited. How the
/// demos' tests run a demo.
pub fn demo_output(binary: &str, args: &[&str]) -> io::Result<DemoOutput> {
    let mut command = Command::new(binary);
    command.args(args);
    run_owned_text(command)
}

/// Runs the demo `binary` with `args` on the Redis at `redis_url`, as a learner who set
/// `REDIS_URL` would: no cluster, the private SQLite database, and `command` adjusted as `adjust`
/// says (say, an empty `PATH`). How the demos' tests check what a demo does on someone else's
/// Redis.
pub fn run_demo_on(
    binary: &str,
    redis_url: &str,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> io::Result<DemoOutput> {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env("REDIS_URL", redis_url)
        .env_remove("REDIS_CLUSTER")
        .env_remove("DATABASE_URL");
    adjust(&mut command);
    run_owned_text(command)
}

/// Runs `command` with [`run_owned`]; what it printed, as text.
pub fn run_owned_text(command: Command) -> io::Result<DemoOutput> {
    let out = run_owned(command)?;
    Ok(DemoOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// For a demo with a part that needs a private `redis-server` of its own whatever `REDIS_URL`
/// says: runs `binary` with `REDIS_URL` set (to a private server this starts) and no
/// `redis-server` on `PATH`, and checks that it fails at once, before any report, naming `part`,
/// the flag `skip` that leaves the part out, and the install command. Panics (it is a test's
/// check) with what it found otherwise.
pub fn check_advice_without_redis_server(binary: &str, part: &str, skip: &str) {
    let server = crate::RedisServer::start().expect("redis-server on PATH");
    let out = run_demo_on(binary, &server.url(), &[], |command| {
        command.env("PATH", "/nonexistent");
    })
    .expect("run the demo");
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains(part)
            && stderr.contains(skip)
            && stderr.contains("apt-get install redis-server"),
        "the demo with REDIS_URL set and no redis-server on PATH: expected a failure naming \
         {part}, the install command and {skip}, got {:?} with stderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.trim().is_empty(),
        "nothing is measured before that advice; stdout:\n{stdout}"
    );
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to `child` and waits for it to exit.
pub fn signal_and_wait(child: &mut Child, signal: libc::c_int) {
    #[cfg(unix)]
    {
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
    }
    #[cfg(not(unix))]
    let _ = (child.kill(), signal);
    let _ = child.wait();
}

/// A loopback port nobody is listening on right now. Another process may take it before we
/// bind it, so callers retry on a fresh port when their server fails to start.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Sends inline commands, one a line, to a server on loopback and returns the last reply line,
/// with short timeouts throughout. Every command must answer with one line. Used where a client
/// library would be too much: readiness checks and fault injection on a server that may be
/// half-dead.
pub fn roundtrip(port: u16, commands: &[&str]) -> io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let text: String = commands.iter().map(|c| format!("{c}\r\n")).collect();
    stream.write_all(text.as_bytes())?;
    let mut replies = Vec::new();
    let mut buf = [0u8; 512];
    while replies.iter().filter(|b| **b == b'\n').count() < commands.len() {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        replies.extend_from_slice(&buf[..n]);
    }
    let replies = String::from_utf8_lossy(&replies).into_owned();
    Ok(replies.lines().last().unwrap_or_default().to_string())
}

/// The last five lines of a log file, for error messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it exits.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Other systems have no parent-death signal; `Drop` is the only cleanup there.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from a helper thread that lives until the process exits, so the parent-death
/// signal fires when the process ends, not when the calling (test) thread does.
fn spawn_from_long_lived_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the child-spawner thread");
        Mutex::new(requests)
    });
    let (reply, result) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((command, reply))
        .map_err(|_| io::Error::other("the child-spawner thread has stopped"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the child-spawner thread has stopped"))?
}
