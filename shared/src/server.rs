//! A private `redis-server` for lessons, tests and benchmarks.
//!
//! Every lesson needs a real Redis, and a learner should not have to start one by hand or risk
//! their own data. So when no `REDIS_URL` is given we start a throwaway server from PATH: bound to
//! loopback, logging to a file in its own temporary folder, and ready (its own log says it
//! listens, and it answers PING) before [`RedisServer::start`] returns. It is a child process
//! that never outlives its owner and never holds our stdout ([`crate::process`]).
//!
//! By default it keeps nothing on disk. [`ServerOptions`] turn on an append-only file (fsynced
//! every second or on every write) or a memory limit with an eviction policy, for the lessons
//! that show what each setting loses. For fault injection the handle can
//! [`stop`](RedisServer::stop) the server cleanly, [`crash`](RedisServer::crash) it (`kill -9`),
//! [`restart`](RedisServer::restart) it on the same address, and [`pause`](RedisServer::pause)
//! its clients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::command_watch::CommandWatch;
use crate::error::SetupError;
use crate::process::{self, free_port, log_tail, roundtrip};
use crate::sweep::OwnedDir;

/// Where `SAVE` writes the dataset, inside the server's own folder.
const DUMP_FILE: &str = "dump.rdb";
/// How long a freshly started server gets to answer PING (it takes about 8 ms on a quiet machine).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a private server writes to disk, and so what a crash loses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: a stop or a crash loses every key. The default, and what a cache usually runs.
    #[default]
    Off,
    /// An append-only file fsynced once a second (`appendfsync everysec`): a crash loses up to
    /// about a second of acknowledged writes; a clean stop loses nothing.
    AofEverySec,
    /// An append-only file fsynced before every write is acknowledged (`appendfsync always`):
    /// nothing acknowledged is lost, and every write waits for the disk.
    AofAlways,
}

/// A memory limit and what Redis does when it is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxMemory {
    /// `maxmemory`, in bytes.
    pub bytes: u64,
    /// `maxmemory-policy`, e.g. `allkeys-lru`, `allkeys-lfu`, `volatile-ttl` or `noeviction`.
    pub policy: String,
}

/// How to run a private server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// What it writes to disk.
    pub persistence: Persistence,
    /// A memory limit and eviction policy; `None` for no limit.
    pub max_memory: Option<MaxMemory>,
    /// A password clients must give (`requirepass`); `None` for none.
    pub password: Option<String>,
}

/// A `redis-server` (or `valkey-server`) process owned by this program.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    /// A cluster node's bus port (see [`crate::cluster`]); `None` for a standalone server.
    cluster_port: Option<u16>,
    options: ServerOptions,
    dir: OwnedDir,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Whether a private server can be started here (`redis-server` or `valkey-server` on PATH).
    /// A demo whose part stops, restarts or limits a server of its own asks before it starts,
    /// even when `REDIS_URL` names one, so that a missing binary is said at once and not after
    /// the first reports ([`SetupError::PrivateServerNeeded`]).
    pub fn can_start() -> bool {
        find_server_binary().is_some()
    }

    /// Starts a private server with no persistence on a free loopback port, and waits until it
    /// answers PING.
    pub fn start() -> Result<Self, SetupError> {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a private server run as `options` say, and waits until it answers PING.
    pub fn start_with(options: ServerOptions) -> Result<Self, SetupError> {
        Self::start_as(options, false)
    }

    /// Starts an empty cluster node (`cluster-enabled yes`), with no slots and no peers yet:
    /// [`crate::cluster::RedisCluster`] assigns both.
    pub(crate) fn start_cluster_node() -> Result<Self, SetupError> {
        Self::start_as(ServerOptions::default(), true)
    }

    fn start_as(options: ServerOptions, cluster: bool) -> Result<Self, SetupError> {
        let binary = find_server_binary().ok_or(SetupError::RedisNotInstalled)?;
        // Another process may take the port between our probe and the server's bind, so a
        // server that exits at once is retried on a fresh port.
        let mut last_error = None;
        for _ in 0..5 {
            let server = RedisServer {
                binary: binary.clone(),
                port: free_port().map_err(SetupError::Io)?,
                // Redis would put the bus at port + 10000, which can be past 65535 for the
                // high ports the kernel hands out, so the bus gets a free port of its own.
                cluster_port: match cluster {
                    true => Some(free_port().map_err(SetupError::Io)?),
                    false => None,
                },
                options: options.clone(),
                dir: OwnedDir::new("redis").map_err(SetupError::Io)?,
                child: Mutex::new(None),
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt was made"))
    }

    /// The URL a client connects to, e.g. `redis://127.0.0.1:41234/`, with the password if the
    /// server has one.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A cluster node's bus port, which the other nodes talk to it on; `None` for a standalone
    /// server.
    pub fn cluster_port(&self) -> Option<u16> {
        self.cluster_port
    }

    /// The server's working folder, a temporary one removed on drop; its log is `redis.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// Stops the server cleanly (SIGTERM): with an append-only file, everything acknowledged is
    /// on disk and comes back on [`restart`](Self::restart); without persistence, every key is
    /// gone.
    pub fn stop(&self) {
        self.end(libc::SIGTERM);
    }

    /// Kills the server the way a crash or an OOM kill does (SIGKILL): no chance to flush. With
    /// `AofEverySec` the last second of writes may be lost; with `AofAlways` nothing acknowledged
    /// is; without persistence, every key is gone.
    pub fn crash(&self) {
        self.end(libc::SIGKILL);
    }

    fn end(&self, signal: libc::c_int) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            process::signal_and_wait(&mut child, signal);
        }
        if self.options.persistence == Persistence::Off {
            // A dataset kept by `stop_keeping_data` is for the next restart only.
            let _ = std::fs::remove_file(self.dir.path().join(DUMP_FILE));
        }
    }

    /// Saves the dataset to disk (`SAVE`), then kills the server: the next
    /// [`restart`](Self::restart) comes back with the data it held, whatever the persistence
    /// setting. How tests make Redis come back with an old value still in it.
    pub fn stop_keeping_data(&self) -> Result<(), SetupError> {
        self.command("SAVE")?;
        if let Some(mut child) = self.child.lock().unwrap().take() {
            process::signal_and_wait(&mut child, libc::SIGKILL);
        }
        Ok(())
    }

    /// Starts the server again on the same address and folder, and waits until it answers PING.
    /// Connections made before the stop reconnect to it. It comes back with what its
    /// persistence kept (see [`Persistence`]), or what [`stop_keeping_data`] saved.
    ///
    /// [`stop_keeping_data`]: Self::stop_keeping_data
    pub fn restart(&self) -> Result<(), SetupError> {
        let running = self.child.lock().unwrap().is_some();
        if running {
            self.crash();
        }
        self.launch()
    }

    /// Makes the server hold every client command for `duration` (`CLIENT PAUSE`), the way a
    /// server stalled by a slow command or a fork looks from the outside. Returns at once.
    pub fn pause(&self, duration: Duration) -> Result<(), SetupError> {
        self.command(&format!("CLIENT PAUSE {}", duration.as_millis()))
    }

    /// Starts watching the commands clients send this server (`MONITOR`), for tests that check
    /// what an operation sends: one atomic script rather than a read and a write, one `SET` with
    /// its TTL rather than a `SET` and an `EXPIRE`. The commands a script runs are not counted:
    /// they are the script's, not the client's.
    pub async fn watch_commands(&self) -> Result<CommandWatch, SetupError> {
        CommandWatch::start(&self.url()).await
    }

    /// Sends one command that answers `+OK`, outside any client library (authenticated first if
    /// the server wants a password).
    pub(crate) fn command(&self, command: &str) -> Result<(), SetupError> {
        let auth = self.options.password.as_ref().map(|p| format!("AUTH {p}"));
        let commands: Vec<&str> = auth.iter().map(String::as_str).chain([command]).collect();
        let reply = roundtrip(self.port, &commands).map_err(SetupError::Io)?;
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
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--dbfilename", DUMP_FILE])
            .arg("--logfile")
            .arg(&log)
            .args(persistence_args(self.options.persistence));
        if let Some(bus) = self.cluster_port {
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--cluster-config-file", "nodes.conf"]);
        }
        if let Some(password) = &self.options.password {
            command.args(["--requirepass", password]);
        }
        if let Some(limit) = &self.options.max_memory {
            command
                .args(["--maxmemory", &limit.bytes.to_string()])
                .args(["--maxmemory-policy", &limit.policy]);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let readies_before = readies(&log);
        let mut child = process::spawn_owned(command).map_err(SetupError::Io)?;

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(SetupError::RedisExited {
                    status: status.to_string(),
                    log: log_tail(&log),
                });
            }
            // A PONG alone could come from another server that took the port between our probe
            // and our bind (ours then fails to bind and exits): only our own log saying it
            // listens proves the port is ours. A server with a password answers NOAUTH: it is
            // up, and that is all we ask.
            let listening = readies(&log) > readies_before;
            let reply = roundtrip(self.port, &["PING"]);
            if listening
                && reply
                    .is_ok_and(|reply| reply.starts_with("+PONG") || reply.starts_with("-NOAUTH"))
            {
                *self.child.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SetupError::RedisNotReady {
                    log: log_tail(&log),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.crash();
    }
}

/// How many times a server's log says it is listening: the log is appended to across restarts,
/// so a launch looks for one more than there was before it.
fn readies(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .to_lowercase()
        .matches("ready to accept connections")
        .count()
}

/// The command-line flags for `persistence`.
fn persistence_args(persistence: Persistence) -> &'static [&'static str] {
    match persistence {
        Persistence::Off => &["--appendonly", "no"],
        Persistence::AofEverySec => &["--appendonly", "yes", "--appendfsync", "everysec"],
        Persistence::AofAlways => &["--appendonly", "yes", "--appendfsync", "always"],
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
