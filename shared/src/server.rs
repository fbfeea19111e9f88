//! A private `redis-server` for lessons, tests and benchmarks.
//!
//! Every lesson needs a real Redis, and a learner should not have to start one by hand or risk
//! their own data. So when no `REDIS_URL` is given we start a throwaway server from PATH: bound to
//! loopback, with persistence off, logging to a file in its own temporary folder.
//!
//! Three rules keep it from causing trouble:
//!
//! - **It never outlives its owner.** Dropping the [`RedisServer`] kills it. If the owning process
//!   dies without running destructors (a panic with `panic=abort`, `kill -9`, a test binary that
//!   exits while a `static` still holds a server), Linux sends the server SIGKILL through the
//!   parent-death signal. That signal fires when the *thread* that spawned the child exits, and the
//!   test harness runs each test on its own short-lived thread, so every server is spawned from one
//!   helper thread that lives as long as the process.
//! - **It never inherits our stdout or stderr.** A child holding the pipe would make `cargo test`
//!   (and CI) wait for it forever.
//! - **It is ready before we return.** We wait until it answers PING, not for a fixed time.
//!
//! For fault-injection tests the handle can [`stop`](RedisServer::stop) the server,
//! [`restart`](RedisServer::restart) it on the same address, and [`pause`](RedisServer::pause)
//! its clients.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::SetupError;

/// How long a freshly started server gets to answer PING (it takes about 8 ms on a quiet machine).
/// Where `SAVE` writes the dataset, inside the server's own folder.
const DUMP_FILE: &str = "dump.rdb";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` (or `valkey-server`) process owned by this program.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Starts a private server on a free loopback port and waits until it answers PING.
    pub fn start() -> Result<Self, SetupError> {
        let binary = find_server_binary().ok_or(SetupError::RedisNotInstalled)?;
        // Another process may take the port between our probe and the server's bind, so a
        // server that exits at once is retried on a fresh port.
        let mut last_error = None;
        for _ in 0..5 {
            let server = RedisServer {
                binary: binary.clone(),
                port: free_port().map_err(SetupError::Io)?,
                dir: tempfile::Builder::new()
                    .prefix("caching-course-redis-")
                    .tempdir()
                    .map_err(SetupError::Io)?,
                child: Mutex::new(None),
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt was made"))
    }

    /// The URL a client connects to, e.g. `redis://127.0.0.1:41234/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's working folder, a temporary one removed on drop; its log is `redis.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit. Its data is gone: the
    /// server runs without persistence.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join(DUMP_FILE));
    }

    /// Saves the dataset to disk (`SAVE`), then kills the server: the next
    /// [`restart`](Self::restart) comes back with the data it held, as a server with persistence
    /// would after a crash. How tests make Redis come back with an old value still in it.
    pub fn stop_keeping_data(&self) -> Result<(), SetupError> {
        let reply = roundtrip(self.port, "SAVE\r\n").map_err(SetupError::Io)?;
        if !reply.starts_with("+OK") {
            return Err(SetupError::RedisCommand(reply));
        }
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Starts the server again on the same address, and waits until it answers PING.
    /// Connections made before the stop reconnect to it. It starts empty, unless it was stopped
    /// with [`stop_keeping_data`](Self::stop_keeping_data).
    pub fn restart(&self) -> Result<(), SetupError> {
        let running = self.child.lock().unwrap().is_some();
        if running {
            self.stop();
        }
        self.launch()
    }

    /// Makes the server hold every client command for `duration` (`CLIENT PAUSE`), the way a
    /// server stalled by a slow command or a fork looks from the outside. Returns at once.
    pub fn pause(&self, duration: Duration) -> Result<(), SetupError> {
        let reply = roundtrip(
            self.port,
            &format!("CLIENT PAUSE {}\r\n", duration.as_millis()),
        )
        .map_err(SetupError::Io)?;
        if reply.starts_with("+OK") {
            Ok(())
        } else {
            Err(SetupError::RedisCommand(reply))
        }
    }

    fn launch(&self) -> Result<(), SetupError> {
        let log = self.dir.path().join("redis.log");
        let mut command = Command::new(&self.binary);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--dbfilename", DUMP_FILE])
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        let mut child = spawn_from_long_lived_thread(command).map_err(SetupError::Io)?;

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(SetupError::RedisExited {
                    status: status.to_string(),
                    log: read_tail(&log),
                });
            }
            if roundtrip(self.port, "PING\r\n").is_ok_and(|reply| reply.starts_with("+PONG")) {
                *self.child.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SetupError::RedisNotReady {
                    log: read_tail(&log),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `redis-server`, else `valkey-server` (a drop-in fork), from PATH.
fn find_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["redis-server", "valkey-server"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Sends one inline command and returns the first reply line, with short timeouts throughout.
fn roundtrip(port: u16, command: &str) -> io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(command.as_bytes())?;
    let mut buf = [0u8; 128];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn read_tail(log: &Path) -> String {
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
            .name("redis-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the redis-spawner thread");
        Mutex::new(requests)
    });
    let (reply, result) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((command, reply))
        .map_err(|_| io::Error::other("the redis-spawner thread has stopped"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the redis-spawner thread has stopped"))?
}
