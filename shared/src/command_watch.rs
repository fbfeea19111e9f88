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
    /// `["SET", "EVALSHA"]` (the commands scripts ran are left out). The end is marked by an
    /// `ECHO` the watch sends itself, so every command sent before this call is in the list, and
    /// nothing is waited for by time.
    pub async fn since_last(&mut self) -> Vec<String> {
        self.since_last_in_full()
            .await
            .into_iter()
            .filter(|sent| !sent.by_script)
            .map(|sent| sent.name)
            .collect()
    }

    /// Every command since the last call, in order, with its arguments, those scripts ran
    /// included: for a rule about arguments ("no time passed in", "the body is not asked for").
    pub async fn since_last_in_full(&mut self) -> Vec<Sent> {
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
            sent.extend(Sent::parse(&line));
        }
    }
}

/// One command as `MONITOR` reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Whether a script ran it (`redis.call`), rather than a client sending it.
    pub by_script: bool,
    /// Its name, upper case: `HMGET`.
    pub name: String,
    /// Its arguments, unquoted; a byte that is not printable stays escaped as `MONITOR` prints
    /// it (`\x00`).
    pub args: Vec<String>,
}

impl Sent {
    /// Reads a `MONITOR` line: `1700000000.123456 [0 127.0.0.1:51234] "SET" "key" "va\"lue"`; a
    /// script's own commands say `[0 lua]`.
    fn parse(line: &str) -> Option<Sent> {
        let (client, command) = line.split_once("] ")?;
        let mut quoted = Vec::new();
        let mut chars = command.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut part = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('x') => part.push_str("\\x"), // a byte that is not printable
                        Some('n') => part.push('\n'),
                        Some('r') => part.push('\r'),
                        Some('t') => part.push('\t'),
                        Some(c) => part.push(c),
                        None => {}
                    },
                    c => part.push(c),
                }
            }
            quoted.push(part);
        }
        let mut parts = quoted.into_iter();
        Some(Sent {
            by_script: client.ends_with(" lua"),
            name: parts.next()?.to_ascii_uppercase(),
            args: parts.collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Sent;

    #[test]
    fn a_monitor_line_is_read_with_its_arguments_and_its_origin() {
        let line = r#"1700000000.123456 [0 127.0.0.1:51234] "hmget" "k" "a b" "say \"hi\"""#;
        let sent = Sent::parse(line).unwrap();
        assert_eq!(sent.name, "HMGET");
        assert_eq!(sent.args, ["k", "a b", "say \"hi\""]);
        let binary = Sent::parse(r#"1.0 [0 127.0.0.1:1] "SET" "k" "\x00\n""#).unwrap();
        assert_eq!(binary.args, ["k", "\\x00\n"]);
        assert!(!sent.by_script);
        assert!(Sent::parse(r#"1.0 [0 lua] "GET" "k""#).unwrap().by_script);
        assert_eq!(Sent::parse("OK"), None);
    }
}
