//! Waking the requests that wait for a load, the moment its value arrives.
//!
//! A waiter that polls ("is it there yet?" every 100 ms) adds up to a whole interval to its
//! latency and sends a GET per interval per waiter; shorten the interval and the GETs multiply.
//! Instead, the lock holder *publishes* the key on a Redis channel once the value is stored, and
//! the waiters are woken by the message. The message carries the value too, so a woken waiter
//! has its answer without another round trip: a thousand waiters do not turn into a thousand GETs
//! at the moment the value lands.
//!
//! Each application instance holds **one** subscription, not one per waiter, and fans each
//! message out to its local waiters ([`shared::pubsub`]). A waiter starts listening *before* it
//! looks at the cache one last time, so a value stored between that look and the wait cannot
//! slip past unannounced.
//!
//! Pub/sub delivery is at most once: a message sent while the subscription is reconnecting is
//! lost. So a waiter that hears it may have missed messages stops waiting and looks at the cache
//! again, and no waiter ever waits longer than the holder's lock has left to live: a lost wake-up
//! costs time, never correctness.

use std::time::Duration;

use shared::pubsub::{Event, Receiver, Subscription};

/// The message announcing that `key` was loaded: the key, a newline, then the encoded value
/// (empty if the load failed and the waiters should try the lock themselves).
pub fn announcement(key: &str, value: &[u8]) -> Vec<u8> {
    [key.as_bytes(), b"\n", value].concat()
}

/// The value `message` announces for `key`, if it is about `key`.
fn announced_value<'m>(message: &'m [u8], key: &str) -> Option<&'m [u8]> {
    message.strip_prefix(key.as_bytes())?.strip_prefix(b"\n")
}

/// One instance's subscription to the channel on which keys are announced.
pub struct Wakeups {
    subscription: Subscription,
}

impl Wakeups {
    /// Subscribes to `channel` with a connection of `client`'s (see [`Subscription::open`]).
    pub async fn subscribe(client: redis::Client, channel: &str) -> Self {
        Wakeups {
            subscription: Subscription::open(client, channel).await,
        }
    }

    /// The channel the lock holders publish on.
    pub fn channel(&self) -> &str {
        self.subscription.channel()
    }

    /// Starts listening for announcements. Call it before the last look at the cache.
    pub fn listen(&self) -> Waiter {
        Waiter {
            receiver: self.subscription.receiver(),
        }
    }
}

// ANCHOR: wait_for
/// One request's ear on the channel.
pub struct Waiter {
    receiver: Receiver,
}

impl Waiter {
    /// Waits until `key` is announced or `limit` has passed, and returns the announced value
    /// (empty if the load failed). `None` when the time ran out, or when messages may have been
    /// lost (a reconnection, or this waiter fell behind): either way, look in the cache.
    pub async fn wait_for(&mut self, key: &str, limit: Duration) -> Option<Vec<u8>> {
        let announced = async {
            loop {
                match self.receiver.recv().await {
                    Some(Event::Message(message)) => {
                        if let Some(value) = announced_value(&message, key) {
                            return Some(value.to_vec());
                        }
                    }
                    Some(Event::Missed) => return None,
                    None => std::future::pending().await,
                }
            }
        };
        tokio::time::timeout(limit, announced).await.ok().flatten()
    }
}
// ANCHOR_END: wait_for

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_is_about_its_key_only() {
        let message = announcement("k:1", b"{\"v\":1}");
        assert_eq!(announced_value(&message, "k:1"), Some(&b"{\"v\":1}"[..]));
        assert_eq!(
            announced_value(&message, "k:"),
            None,
            "a prefix of the key is another key"
        );
        assert_eq!(announced_value(&message, "k:10"), None);
        assert_eq!(
            announced_value(&announcement("k", b""), "k"),
            Some(&b""[..])
        );
    }
}
