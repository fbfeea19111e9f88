//! Ctrl-C, counted: the first press asks the runner to stop once the step running now ends, the
//! second to stop at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The Ctrl-C presses seen so far. Clones share them.
#[derive(Clone)]
pub struct Interrupts {
    presses: Arc<AtomicUsize>,
    pressed: Arc<Notify>,
}

impl Interrupts {
    /// Takes over Ctrl-C for the rest of the run: from now on a press is counted, not fatal.
    pub fn listen() -> Interrupts {
        let interrupts = Interrupts {
            presses: Arc::new(AtomicUsize::new(0)),
            pressed: Arc::new(Notify::new()),
        };
        let counter = interrupts.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if counter.presses.fetch_add(1, Ordering::SeqCst) == 0 {
                    eprintln!(
                        "\nCtrl-C: stopping once the tests running now have finished, so that \
                         they clean up after themselves (Ctrl-C again to stop them at once)."
                    );
                }
                counter.pressed.notify_waiters();
            }
        });
        interrupts
    }

    /// Whether Ctrl-C was pressed: stop after this step.
    pub fn requested(&self) -> bool {
        self.presses.load(Ordering::SeqCst) >= 1
    }

    /// Whether Ctrl-C was pressed twice: stop now.
    pub fn stop_now(&self) -> bool {
        self.presses.load(Ordering::SeqCst) >= 2
    }

    /// Returns at the next press (at once if one was seen already).
    pub async fn pressed(&self) {
        let notified = self.pressed.notified();
        if self.requested() {
            return;
        }
        notified.await;
    }
}
