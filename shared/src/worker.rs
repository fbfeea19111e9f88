//! Background work that stops when asked, reports a panic, and never outlives its owner.
//!
//! Several lessons run work beside the requests: a subscription listening for messages, a
//! write-behind flusher, background refreshes. Left to `tokio::spawn`, such a task runs on after
//! the object that started it is gone, and its panic is never seen. So:
//!
//! - [`Worker`] is one long-lived task. It is handed a [`Stop`] it can wait on;
//!   [`Worker::stop`] signals it and waits for it to finish, returning its panic as an error;
//!   dropping the `Worker` aborts the task.
//! - [`Tasks`] is a set of short tasks started one after another (one background refresh each).
//!   [`Tasks::join`] waits for all of them and reports the first panic; dropping the set aborts
//!   the ones still running.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A background task panicked.
#[derive(Debug, thiserror::Error)]
#[error("background task {name:?} panicked: {message}")]
pub struct Panicked {
    /// The name the task was given.
    pub name: String,
    /// The panic's message, where it was a string.
    pub message: String,
}

/// One long-lived background task with a stop signal.
pub struct Worker {
    name: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// What a [`Worker`]'s task watches to learn that it should finish.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Returns once a stop has been asked for (at once if it already was).
    pub async fn requested(&mut self) {
        // An error means the Worker is gone, which is a stop too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether a stop has been asked for.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

impl Worker {
    /// Starts `body` on the runtime, handing it the [`Stop`] it should watch.
    pub fn spawn<F, Fut>(name: &str, body: F) -> Self
    where
        F: FnOnce(Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, watched) = watch::channel(false);
        Worker {
            name: name.to_string(),
            stop,
            task: Some(tokio::spawn(body(Stop(watched)))),
        }
    }

    /// Asks the task to stop and waits until it has; its panic, if it had one, is the error.
    pub async fn stop(mut self) -> Result<(), Panicked> {
        self.stop.send_replace(true);
        let task = self.task.take().expect("a worker is stopped once");
        joined(&self.name, task.await)
    }

    /// Whether the task has ended (finished, panicked or aborted).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A set of short background tasks, joined together.
pub struct Tasks {
    name: String,
    running: Mutex<JoinSet<()>>,
}

impl Tasks {
    /// An empty set; `name` labels its panics.
    pub fn new(name: &str) -> Self {
        Tasks {
            name: name.to_string(),
            running: Mutex::new(JoinSet::new()),
        }
    }

    /// Starts `task` in the background.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut running = self.running.lock().expect("tasks lock");
        // Forget the finished ones, so a long-lived set does not grow.
        while running.try_join_next().is_some() {}
        running.spawn(task);
    }

    /// Waits for every task started so far; the first panic among them is the error.
    pub async fn join(&self) -> Result<(), Panicked> {
        let mut running = std::mem::take(&mut *self.running.lock().expect("tasks lock"));
        let mut outcome = Ok(());
        while let Some(done) = running.join_next().await {
            if outcome.is_ok() {
                outcome = joined(&self.name, done);
            }
        }
        outcome
    }

    /// Aborts every task still running, and waits until each has ended (and dropped what it
    /// held).
    pub async fn abort(&self) {
        let mut running = std::mem::take(&mut *self.running.lock().expect("tasks lock"));
        running.shutdown().await;
    }
}

/// A joined task's result as ours: a panic becomes [`Panicked`], an abort is a normal end.
fn joined(name: &str, result: Result<(), tokio::task::JoinError>) -> Result<(), Panicked> {
    match result {
        Err(error) if error.is_panic() => {
            let payload = error.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".into());
            Err(Panicked {
                name: name.to_string(),
                message,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn stop_is_seen_and_the_task_finishes() {
        let finished = Arc::new(AtomicBool::new(false));
        let seen = finished.clone();
        let worker = Worker::spawn("test", |mut stop| async move {
            stop.requested().await;
            seen.store(true, Ordering::SeqCst);
        });
        assert!(!worker.is_finished());
        worker.stop().await.unwrap();
        assert!(finished.load(Ordering::SeqCst), "the task ran to its end");
    }

    #[tokio::test]
    async fn a_panic_is_reported_by_stop_and_by_join() {
        let worker = Worker::spawn("doomed", |_| async { panic!("boom") });
        let error = worker.stop().await.unwrap_err();
        assert_eq!(
            (error.name.as_str(), error.message.as_str()),
            ("doomed", "boom")
        );

        let tasks = Tasks::new("refreshes");
        tasks.spawn(async {});
        tasks.spawn(async { panic!("refresh {} failed", 7) });
        let error = tasks.join().await.unwrap_err();
        assert_eq!(error.message, "refresh 7 failed");
        tasks.join().await.expect("nothing left to join");
    }

    #[tokio::test]
    async fn dropping_the_worker_aborts_its_task() {
        let (_keep, mut never) = watch::channel(());
        let worker = Worker::spawn("forever", |_| async move {
            let _ = never.wait_for(|_| false).await;
        });
        let handle = worker.task.as_ref().unwrap().abort_handle();
        drop(worker);
        for _ in 0..100 {
            if handle.is_finished() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the task still runs after its Worker was dropped");
    }
}
