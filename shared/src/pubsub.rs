//! A Redis subscription that survives reconnections and fans out to many receivers.
//!
//! A subscription takes a connection of its own, so an application instance holds **one** per
//! channel and hands each message to all its local receivers (tokio's broadcast channel), rather
//! than one subscription per waiting request.
//!
//! Pub/sub delivery is at most once: a message published while the subscription is reconnecting
//! is lost, and so is one that a slow receiver had no room for. A receiver that builds state from
//! messages (a local cache invalidated by them, say) must know when that happened, so both cases
//! reach it as [`Event::Missed`]: after it, anything it heard before may be out of date. The
//! subscription resubscribes on its own after any disconnection, counting each time in
//! [`Subscription::reconnects`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, oneshot};

use crate::worker::{Stop, Worker};

/// How long to wait between attempts to (re)subscribe while Redis is unreachable.
const RESUBSCRIBE_EVERY: Duration = Duration::from_millis(250);
/// How long one attempt to subscribe may take, and how long [`Subscription::open`] waits for the
/// first one before returning without it.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How many messages a receiver may fall behind before it gets [`Event::Missed`].
const BUFFER: usize = 1024;

/// What a receiver hears.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message's payload.
    Message(Arc<[u8]>),
    /// Messages may have been lost: the subscription reconnected, or this receiver fell behind.
    Missed,
}

/// One subscription to a channel, listening in the background.
pub struct Subscription {
    events: broadcast::Sender<Event>,
    reconnects: Arc<AtomicU64>,
    channel: String,
    _listener: Worker,
}

impl Subscription {
    /// Subscribes to `channel` in a background task that resubscribes after any disconnection.
    /// Waits up to a second for the first subscription; if Redis is unreachable it returns anyway,
    /// and receivers hear nothing until the subscription is made.
    pub async fn open(client: redis::Client, channel: &str) -> Self {
        let (events, _) = broadcast::channel(BUFFER);
        let reconnects = Arc::new(AtomicU64::new(0));
        let (ready, subscribed) = oneshot::channel();
        let listener = {
            let (events, reconnects, channel) =
                (events.clone(), reconnects.clone(), channel.to_string());
            Worker::spawn("pub/sub listener", move |stop| {
                listen(client, channel, events, reconnects, ready, stop)
            })
        };
        let _ = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed).await;
        Subscription {
            events,
            reconnects,
            channel: channel.to_string(),
            _listener: listener,
        }
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A new receiver, hearing every event from now on.
    pub fn receiver(&self) -> Receiver {
        Receiver(self.events.subscribe())
    }

    /// How many times the subscription was lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Hands every event from now on to `handle`, one at a time and in order, on a background
    /// task named `name`, until the returned worker is stopped or dropped or the subscription is
    /// gone: how an instance applies what a channel tells it (an L1 dropping what changed).
    pub fn handle_each<F, Fut>(&self, name: &str, mut handle: F) -> Worker
    where
        F: FnMut(Event) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let mut events = self.receiver();
        Worker::spawn(name, move |mut stop| async move {
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    () = stop.requested() => return,
                };
                match event {
                    Some(event) => handle(event).await,
                    None => return,
                }
            }
        })
    }
}

/// One receiver of a [`Subscription`]'s events.
pub struct Receiver(broadcast::Receiver<Event>);

impl Receiver {
    /// The next event; `None` once the subscription is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.0.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Event::Missed),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Keeps a subscription to `channel` open until stopped, forwarding every message to `events`.
async fn listen(
    client: redis::Client,
    channel: String,
    events: broadcast::Sender<Event>,
    reconnects: Arc<AtomicU64>,
    ready: oneshot::Sender<()>,
    mut stop: Stop,
) {
    let mut ready = Some(ready);
    while !stop.is_requested() {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        if let Ok(Ok(pubsub)) = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed).await {
            match ready.take() {
                Some(ready) => {
                    let _ = ready.send(());
                }
                None => {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                    // No receivers just means nobody is listening right now.
                    let _ = events.send(Event::Missed);
                }
            }
            let mut messages = pubsub.into_on_message();
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(message) => {
                            let _ = events.send(Event::Message(message.get_payload_bytes().into()));
                        }
                        None => break, // the connection is gone: resubscribe
                    },
                    () = stop.requested() => return,
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_EVERY) => {}
            () = stop.requested() => return,
        }
    }
}
