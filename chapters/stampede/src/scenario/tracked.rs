//! The demo's source: product pages that also count *refresh episodes*.
//!
//! A load of a key that starts while no other load of that key is running begins an episode, and
//! loads that overlap it join it. Without protection an expiry of a hot key is one episode of
//! many loads; with it, one of one. "Loads per refresh" in the steady table is loads / episodes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use shared::{Database, Product};
use stampede::{LoadError, ProductPages, Source};

/// Product pages, watched.
pub struct Tracked {
    pages: ProductPages,
    in_flight: Mutex<HashMap<String, u32>>,
    episodes: AtomicU64,
}

impl Tracked {
    pub fn new(db: std::sync::Arc<Database>) -> Self {
        Tracked {
            pages: ProductPages::new(db),
            in_flight: Mutex::new(HashMap::new()),
            episodes: AtomicU64::new(0),
        }
    }

    /// How many refresh episodes have begun.
    pub fn episodes(&self) -> u64 {
        self.episodes.load(Ordering::Relaxed)
    }
}

impl Source for Tracked {
    type Value = Product;

    async fn load(&self, key: &str) -> Result<Product, LoadError> {
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            let running = in_flight.entry(key.to_string()).or_insert(0);
            if *running == 0 {
                self.episodes.fetch_add(1, Ordering::Relaxed);
            }
            *running += 1;
        }
        let loaded = self.pages.load(key).await;
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        if let Some(running) = in_flight.get_mut(key) {
            *running -= 1;
            if *running == 0 {
                in_flight.remove(key);
            }
        }
        loaded
    }
}
