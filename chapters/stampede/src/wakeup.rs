//! Waking the requests that wait for a load, the moment its value arrives.
//!
//! A waiter that polls ("is it there yet?" every 100 ms) adds up to a whole interval to its
//! latency and sends a GET per interval per waiter; shorten the interval and the GETs multiply.
//! Instead, the lock holder *publishes* the key on a Redis channel once the value is stored, and
//! the waiters are woken by the message. The message carries the value too, so a woken waiter
//! has its answer without another round trip: a thousand waiters do not turn into a thousand GETs
//! at the moment the value lands.
//!
//! Each application instance holds **one** subscription, not one per waiter (a subscription takes
//! a connection of its own), and fans each message out to its local waiters through a tokio
//! broadcast channel. A waiter starts listening *before* it looks at the cache one last time, so a
//! value stored between that look and the wait cannot slip past unannounced.
//!
//! Pub/sub delivery is at most once: a message sent while the subscription is reconnecting is
//! lost. That is why a waiter never waits longer than the holder's lock has left to live; a lost
//! wake-up costs time, never correctness.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// How long to wait between attempts to (re)subscribe while Redis is unreachable.
const RESUBSCRIBE_EVERY: Duration = Duration::from_millis(250);
/// How long `subscribe` waits for the first subscription before returning without it.
const FIRST_SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);

/// A message on the channel: which key was loaded, and its encoded value (empty if the load
/// failed and the waiters should try the lock themselves). On the wire it is the key, a newline,
/// then the value.
#[derive(Debug)]
pub struct Announcement {
    pub key: String,
    pub value: Vec<u8>,
}

impl Announcement {
    pub fn to_bytes(key: &str, value: &[u8]) -> Vec<u8> {
        [key.as_bytes(), b"\n", value].concat()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let newline = bytes.iter().position(|b| *b == b'\n')?;
        Some(Announcement {
            key: String::from_utf8(bytes[..newline].to_vec()).ok()?,
            value: bytes[newline + 1..].to_vec(),
        })
    }
}

/// One instance's subscription to the channel on which keys are announced.
pub struct Wakeups {
    announced: broadcast::Sender<Arc<Announcement>>,
    channel: String,
    listener: JoinHandle<()>,
}

impl Wakeups {
    /// Subscribes to `channel` in a background task that resubscribes after any disconnection.
    /// Waits up to a second for the first subscription; if Redis is unreachable it returns anyway
    /// and waiters fall back on their time limits until the subscription is made.
    pub async fn subscribe(client: redis::Client, channel: String) -> Self {
        let (announced, _) = broadcast::channel(1024);
        let (ready, subscribed) = oneshot::channel();
        let listener = tokio::spawn(listen(client, channel.clone(), announced.clone(), ready));
        let _ = tokio::time::timeout(FIRST_SUBSCRIBE_WAIT, subscribed).await;
        Wakeups {
            announced,
            channel,
            listener,
        }
    }

    /// The channel the lock holders publish on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Starts listening for announcements. Call it before the last look at the cache.
    pub fn listen(&self) -> Waiter {
        Waiter {
            announced: self.announced.subscribe(),
        }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

// ANCHOR: wait_for
/// One request's ear on the channel.
pub struct Waiter {
    announced: broadcast::Receiver<Arc<Announcement>>,
}

impl Waiter {
    /// Waits until `key` is announced or `limit` has passed, and returns the announcement. `None`
    /// when the time ran out, or when this waiter fell behind the channel's buffer and may have
    /// missed it: either way, look in the cache.
    pub async fn wait_for(&mut self, key: &str, limit: Duration) -> Option<Arc<Announcement>> {
        let announced = async {
            loop {
                match self.announced.recv().await {
                    Ok(announced) if announced.key == key => return Some(announced),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => return None,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        tokio::time::timeout(limit, announced).await.ok().flatten()
    }
}

// ANCHOR_END: wait_for

/// Keeps a subscription to `channel` open, forwarding every message's payload to `announced`.
async fn listen(
    client: redis::Client,
    channel: String,
    announced: broadcast::Sender<Arc<Announcement>>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        if let Ok(Ok(pubsub)) = tokio::time::timeout(FIRST_SUBSCRIBE_WAIT, subscribed).await {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                if let Some(announcement) = Announcement::from_bytes(message.get_payload_bytes()) {
                    // No receivers just means nobody is waiting right now.
                    let _ = announced.send(Arc::new(announcement));
                }
            }
        }
        tokio::time::sleep(RESUBSCRIBE_EVERY).await;
    }
}
