//! Which commands a test's code sent: `MONITOR`, read up to a marker.
//!
//! Some rules are about commands, not values: "one round trip", "no `KEYS`", "the script, not a
//! read and a write". A test checks them by watching what reached the server. `MONITOR` streams
//! every command every client sends; the watch sends an `ECHO` of its own and reads up to it, so a
//! test gets exactly the commands sent before it asked, without waiting on a clock.

use std::time::Duration;

use crate::error::SetupError;
use crate::redact::redact;

/// The commands clients sent a server, as `MONITOR` reports them (see
/// [`RedisServer::watch_commands`](crate::RedisServer::watch_commands)).
pub struct CommandWatch {
    lines: std::pin::Pin<Box<dyn futures_util::Stream<Item = String> + Send>>,
    marker: redis::aio::MultiplexedConnection,
    marks: u64,
}

impl CommandWatch {
    /// Starts watching the server at `url` (a single server: `MONITOR` sees one node).
    pub async fn start(url: &str) -> Result<CommandWatch, SetupError> {
        let unreachable = |cause| SetupError::RedisUnreachable {
            url: redact(url),
            cause,
        };
        let client = redis::Client::open(url).map_err(unreachable)?;
        let lines = client
            .get_async_monitor()
            .await
            .map_err(unreachable)?
            .into_on_message::<String>();
        let marker = client
            .get_multiplexed_async_connection()
            .await
            .map_err(unreachable)?;
        let mut watch = CommandWatch {
            lines: Box::pin(lines),
            marker,
            marks: 0,
        };
        watch.since_last().await; // the marker connection's own setup
        Ok(watch)
    }

    /// The names of the commands clients sent since the last call, in order, e.g.
    /// `["SET", "EVALSHA"]`. The end is marked by an `ECHO` the watch sends itself, so every
    /// command sent before this call is in the list, and nothing is waited for by time.
    pub async fn since_last(&mut self) -> Vec<String> {
        use futures_util::StreamExt;
        self.marks += 1;
        let mark = format!("course-command-watch-{}", self.marks);
        let _: String = redis::cmd("ECHO")
            .arg(&mark)
            .query_async(&mut self.marker)
            .await
            .expect("ECHO on the watched server");
        let mut sent = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next())
                .await
                .ok()
                .flatten()
                .expect("MONITOR reported the watch's own ECHO within 5 s");
            if line.contains(&mark) {
                return sent;
            }
            // `1700000000.123456 [0 127.0.0.1:51234] "SET" "key" ...`; a script's own commands
            // say `[0 lua]`.
            let Some((client, command)) = line.split_once("] ") else {
                continue;
            };
            if client.ends_with(" lua") {
                continue;
            }
            if let Some(name) = command.split('"').nth(1) {
                sent.push(name.to_ascii_uppercase());
            }
        }
    }
}
