//! Rendered pages through three layers: L1 in the instance's memory, L2 in Redis, L3 on the
//! instance's disk, and the renderer (a database query and a template) behind them.
//!
//! This is the source's "advanced caching system" rebuilt: its memory, Redis and disk levels, its
//! compression above a size, its warming at start and its prefetching of related keys. What it
//! got wrong is put right where it happens: compressed values carry a header and a checksum
//! ([`packed`](crate::packed)); the disk layer hashes its file names and keeps a budget
//! ([`disk`](crate::disk)); warming gives each key its own TTL, so the warmed keys do not all
//! expire in the same second ([`Pages::warm`]); a prefetch is counted against the hits it earns,
//! so the demo can say whether it paid.
//!
//! A page lists a category's items, ten to a page. Its staleness is bounded by the TTLs: a
//! price change shows on a page within `l2_ttl` (plus `l1_ttl` on an instance that held it),
//! which the chapter states beside the product endpoint, whose reads are never stale.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use redis::AsyncCommands;
use shared::budget;
use shared::metrics::Counter;
use shared::{Database, Namespace, RedisConn};
use sqlx::Row;
use tokio::task::JoinSet;

use crate::disk::DiskCache;
use crate::packed;

/// Products per page.
pub const PAGE_SIZE: usize = 10;
/// The last page number served: pages past the items are empty, and caching an empty page for
/// every number a client can type would fill the caches with them.
pub const LAST_PAGE: u32 = 100;

/// A page's address: a category and a page number from 1.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The category.
    pub category: String,
    /// The page, from 1.
    pub page: u32,
}

impl PageKey {
    /// The cache key, the same in every layer.
    pub fn key(&self) -> String {
        shared::keys::hashed("page", &(&self.category, self.page))
    }

    /// The page a reader of this one most likely asks for next, if there is one.
    pub fn next(&self) -> Option<PageKey> {
        (self.page < LAST_PAGE).then(|| PageKey {
            category: self.category.clone(),
            page: self.page + 1,
        })
    }
}

/// The first `n` pages a shop's visitors ask for: page 1 of each category, then page 2, ...
pub fn first_pages(n: u32) -> Vec<PageKey> {
    let categories = shared::db::items::CATEGORIES;
    (0..n as usize)
        .map(|i| PageKey {
            category: categories[i % categories.len()].to_string(),
            page: (i / categories.len()) as u32 + 1,
        })
        .collect()
}

/// How long each layer keeps a page, and what is compressed.
#[derive(Clone, Debug)]
pub struct PageSettings {
    /// L1's TTL.
    pub l1_ttl: Duration,
    /// L1's capacity, in pages.
    pub l1_capacity: u64,
    /// The TTL of L2 and L3, before jitter.
    pub ttl: Duration,
    /// Each key's TTL is drawn from `ttl * (1 ± jitter)`.
    pub jitter: f64,
    /// Values from this many bytes are compressed.
    pub compress_from: usize,
    /// After a read of page `n`, render page `n + 1` in the background if no layer has it.
    pub prefetch: bool,
    /// How long a Redis call may take before the layers below answer.
    pub redis_timeout: Duration,
}

/// Which layers a configuration has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layers {
    /// L1 in memory.
    pub l1: bool,
    /// L2 in Redis.
    pub l2: bool,
    /// L3 on disk.
    pub l3: bool,
}

/// Where a page came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// L1.
    Memory,
    /// L2.
    Redis,
    /// L3.
    Disk,
    /// Rendered for this request.
    Rendered,
}

/// What the pages counted.
#[derive(Default, Debug)]
pub struct PageStats {
    /// Answers from L1.
    pub l1_hits: Counter,
    /// Answers from L2.
    pub l2_hits: Counter,
    /// Answers from L3.
    pub l3_hits: Counter,
    /// Pages rendered for a request (a query each).
    pub renders: Counter,
    /// Pages a prefetch put in L1 (rendered, or brought up from L2 or L3).
    pub prefetches: Counter,
    /// Of those, the pages a prefetch rendered: the extra loads prefetching costs.
    pub prefetch_renders: Counter,
    /// Redis calls that failed or ran out of time: answered by the layers below.
    pub redis_errors: Counter,
    /// Reads answered by a page a prefetch put in L1 (rendered, or brought up from L2 or L3),
    /// before anything else read it.
    pub prefetch_hits: Counter,
    /// Values in Redis that did not unpack: read as misses.
    pub corrupt: Counter,
    /// Bytes of pages rendered, and of the same pages as stored: the compression ratio.
    pub rendered_bytes: Counter,
    /// See `rendered_bytes`.
    pub stored_bytes: Counter,
}

/// A page in L1, and whether a prefetch put it there and nobody has read it since.
struct Held {
    html: Arc<Vec<u8>>,
    /// The layer the page was found in when it was put in L1.
    source: Source,
    prefetched: AtomicBool,
}

/// A page no layer had and the renderer could not make: the database failed (shared by every
/// request that waited for the same lookup).
pub type Failed = Arc<sqlx::Error>;

/// One instance's pages.
pub struct Pages {
    db: Arc<Database>,
    layers: Layers,
    l1: moka::future::Cache<String, Arc<Held>>,
    conn: RedisConn,
    namespace: Namespace,
    disk: Option<DiskCache>,
    settings: PageSettings,
    /// The prefetches in flight, awaited by [`Pages::settle`].
    prefetching: Mutex<JoinSet<()>>,
    /// What it counted.
    pub stats: Arc<PageStats>,
}

/// Prefetches in flight at most, per instance.
const MAX_PREFETCHES: usize = 16;

impl Pages {
    /// The pages of one instance; `disk` is its L3 (`None` without one).
    pub fn new(
        db: Arc<Database>,
        conn: RedisConn,
        namespace: Namespace,
        layers: Layers,
        disk: Option<DiskCache>,
        settings: PageSettings,
    ) -> Arc<Self> {
        let l1 = moka::future::Cache::builder()
            .max_capacity(settings.l1_capacity)
            .time_to_live(settings.l1_ttl)
            .build();
        Arc::new(Pages {
            db,
            layers: Layers {
                l3: layers.l3 && disk.is_some(),
                ..layers
            },
            l1,
            conn,
            namespace,
            disk,
            settings,
            prefetching: Mutex::default(),
            stats: Arc::default(),
        })
    }

    /// Waits for the prefetches in flight (before the instance stops).
    pub async fn settle(&self) {
        let mut prefetching =
            std::mem::take(&mut *self.prefetching.lock().expect("never poisoned"));
        while prefetching.join_next().await.is_some() {}
    }

    /// Drops every page this instance holds, in L1 and on its disk (after an administrator
    /// cleared Redis).
    pub async fn forget(&self) {
        self.forget_memory();
        if let Some(disk) = &self.disk {
            disk.clear().await;
        }
    }

    /// Drops every page from L1 only: what a restart of the instance does (the disk stays).
    pub fn forget_memory(&self) {
        self.l1.invalidate_all();
    }

    /// The disk layer, if there is one.
    pub fn disk(&self) -> Option<&DiskCache> {
        self.disk.as_ref()
    }

    /// Page `key`'s HTML, and where it came from.
    pub async fn page(self: &Arc<Self>, key: &PageKey) -> Result<(Arc<Vec<u8>>, Source), Failed> {
        let answer = self.lookup(key, false).await?;
        if let (true, true, Some(next)) = (self.settings.prefetch, self.layers.l1, key.next()) {
            let pages = self.clone();
            let mut prefetching = self.prefetching.lock().expect("never poisoned");
            while prefetching.try_join_next().is_some() {}
            // A bounded number in flight: under a burst, prefetching is the first thing dropped.
            if prefetching.len() < MAX_PREFETCHES {
                prefetching.spawn(async move { pages.prefetch(&next).await });
            }
        }
        Ok(answer)
    }

    /// Page `key`'s HTML and where it came from, without prefetching the next one: a read that
    /// measures the layers, not one a visitor makes.
    pub async fn read(&self, key: &PageKey) -> Result<(Arc<Vec<u8>>, Source), Failed> {
        self.lookup(key, false).await
    }

    // ANCHOR: lookup
    /// Through the layers in order; a page found low is copied into the layers above it.
    /// Concurrent misses of one page in one instance wait for a single lookup (moka's entry
    /// API), so a cold page costs one render per instance, not one per request.
    async fn lookup(
        &self,
        key: &PageKey,
        prefetch: bool,
    ) -> Result<(Arc<Vec<u8>>, Source), Failed> {
        if !self.layers.l1 {
            let (html, source) = self.below(key, prefetch).await?;
            self.count(source, prefetch);
            return Ok((Arc::new(html), source));
        }
        let entry = self
            .l1
            .entry(key.key())
            .or_try_insert_with(async {
                let (html, source) = self.below(key, prefetch).await?;
                let prefetched = prefetch;
                Ok::<_, sqlx::Error>(Arc::new(Held {
                    html: Arc::new(html),
                    source,
                    prefetched: AtomicBool::new(prefetched),
                }))
            })
            .await?;
        let held = entry.value();
        if prefetch && entry.is_fresh() {
            self.stats.prefetches.inc();
        }
        let source = if entry.is_fresh() {
            held.source
        } else {
            if !prefetch && held.prefetched.swap(false, Ordering::Relaxed) {
                self.stats.prefetch_hits.inc();
            }
            Source::Memory
        };
        self.count(source, prefetch);
        Ok((held.html.clone(), source))
    }
    // ANCHOR_END: lookup

    /// Counts a request's answer by layer (a prefetch is no request).
    fn count(&self, source: Source, prefetch: bool) {
        if prefetch {
            return;
        }
        match source {
            Source::Memory => self.stats.l1_hits.inc(),
            Source::Redis => self.stats.l2_hits.inc(),
            Source::Disk => self.stats.l3_hits.inc(),
            Source::Rendered => {}
        }
    }

    /// The layers under L1: Redis, the disk, then the renderer.
    async fn below(&self, key: &PageKey, prefetch: bool) -> Result<(Vec<u8>, Source), sqlx::Error> {
        let cache_key = key.key();
        let now = shared::clock::now_ms();
        if let Some(html) = self.in_redis(&cache_key, now).await {
            return Ok((html, Source::Redis));
        }
        if let Some(html) = self.on_disk(&cache_key, now).await {
            return Ok((html, Source::Disk));
        }
        Ok((self.render(key, prefetch).await?, Source::Rendered))
    }

    /// L2's copy, if there is one and it unpacks.
    async fn in_redis(&self, cache_key: &str, now: u64) -> Option<Vec<u8>> {
        if !self.layers.l2 {
            return None;
        }
        let mut conn = self.conn.clone();
        let get = conn.get::<_, Option<Vec<u8>>>(self.namespace.key(cache_key));
        let stored = budget::within(self.settings.redis_timeout, &self.stats.redis_errors, get);
        match packed::unpack(&stored.await??, now) {
            Ok((html, _)) => Some(html),
            Err(_) => {
                self.stats.corrupt.inc();
                None
            }
        }
    }

    /// L3's copy, put back into L2 for the other instances if it was not there, with what is
    /// left of its lifetime (not a new one: a page may not outlive the TTL it was rendered with).
    async fn on_disk(&self, cache_key: &str, now: u64) -> Option<Vec<u8>> {
        if !self.layers.l3 {
            return None;
        }
        let (html, expires) = self.disk.as_ref()?.get(cache_key, now).await?;
        if self.layers.l2 {
            let packed = packed::pack(&html, expires, self.settings.compress_from);
            let left = Duration::from_millis(expires.saturating_sub(now));
            self.store_in_redis(cache_key, &packed, left).await;
        }
        Some(html)
    }

    /// Renders the page (one query), and stores it in L2 and L3 with a jittered TTL.
    async fn render(&self, key: &PageKey, prefetch: bool) -> Result<Vec<u8>, sqlx::Error> {
        let html = render(&self.db, key).await?;
        if prefetch {
            self.stats.prefetch_renders.inc();
        } else {
            self.stats.renders.inc();
        }
        self.store(&key.key(), &html).await;
        Ok(html)
    }

    // ANCHOR: store
    /// Stores a page in L2 and L3, packed, each key with a TTL of its own.
    async fn store(&self, cache_key: &str, html: &[u8]) {
        if !self.layers.l2 && !self.layers.l3 {
            return;
        }
        let ttl = self.ttl();
        let expires = shared::clock::now_ms() + ttl.as_millis() as u64;
        let packed = packed::pack(html, expires, self.settings.compress_from);
        self.stats.rendered_bytes.add(html.len() as u64);
        self.stats.stored_bytes.add(packed.len() as u64);
        if self.layers.l2 {
            self.store_in_redis(cache_key, &packed, ttl).await;
        }
        if let (true, Some(disk)) = (self.layers.l3, &self.disk) {
            // A disk that cannot take the file leaves a miss for next time, nothing worse.
            let _ = disk.put(cache_key, packed).await;
        }
    }

    /// A TTL drawn from `ttl * (1 ± jitter)`: keys stored together expire apart.
    fn ttl(&self) -> Duration {
        let spread = self.settings.jitter.clamp(0.0, 0.9);
        let factor = rand::rng().random_range((1.0 - spread)..=(1.0 + spread));
        self.settings.ttl.mul_f64(factor)
    }
    // ANCHOR_END: store

    /// Stores packed bytes in Redis for `ttl`, within the time budget. Redis down: the page is
    /// served all the same, and stored next time.
    async fn store_in_redis(&self, cache_key: &str, packed: &[u8], ttl: Duration) {
        let mut conn = self.conn.clone();
        let millis = ttl.as_millis().max(1) as u64;
        let set = conn.pset_ex::<_, _, ()>(self.namespace.key(cache_key), packed, millis);
        budget::within(self.settings.redis_timeout, &self.stats.redis_errors, set).await;
    }

    /// Renders `key` into L1 (and below) if no layer has it, so the reader's next page is a hit.
    async fn prefetch(&self, key: &PageKey) {
        if self.l1.contains_key(&key.key()) {
            return;
        }
        // A failed prefetch costs nothing but itself.
        let _ = self.lookup(key, true).await;
    }

    // ANCHOR: warm
    /// Renders `keys` into L2 and L3 before traffic arrives, each with its own jittered TTL: the
    /// source warmed every key with the same TTL, so all of them expired in the same second and
    /// the renderer met the whole traffic at once.
    pub async fn warm(&self, keys: &[PageKey]) -> Result<usize, sqlx::Error> {
        for key in keys {
            let html = render(&self.db, key).await?;
            self.store(&key.key(), &html).await;
        }
        Ok(keys.len())
    }
    // ANCHOR_END: warm
}

/// One page's HTML: a query for ten of the category's items, and a template around them.
pub async fn render(db: &Database, key: &PageKey) -> Result<Vec<u8>, sqlx::Error> {
    let offset = i64::from(key.page.saturating_sub(1)) * PAGE_SIZE as i64;
    let items = {
        let mut conn = db.connection().await?;
        sqlx::query(
            "SELECT id, price_cents FROM items WHERE category = $1 ORDER BY id LIMIT $2 OFFSET $3",
        )
        .bind(&key.category)
        .bind(PAGE_SIZE as i64)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?
    };
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{category}, page \
         {page}</title><link rel=\"stylesheet\" href=\"/assets/site.css\"></head>\n<body><header>\
         <nav><a href=\"/\">Home</a> <a href=\"/pages/{category}/1\">{category}</a></nav></header>\n\
         <main><h1>{category}</h1><ul class=\"products\">\n",
        category = key.category,
        page = key.page
    );
    for row in &items {
        let id: i64 = row.try_get("id")?;
        let price: i64 = row.try_get("price_cents")?;
        html.push_str(&format!(
            "<li class=\"product\" data-id=\"{id}\"><a href=\"/products/{id}\">Item {id}</a> \
             <span class=\"price\">{euros}.{cents:02}</span><p class=\"blurb\">Item {id} from our \
             {category} range: chosen, tasted and packed by the shop, delivered in two days.</p></li>\n",
            euros = price / 100,
            cents = price % 100,
            category = key.category,
        ));
    }
    html.push_str(&format!(
        "</ul><nav class=\"pages\"><a href=\"/pages/{category}/{next}\">next page</a></nav></main>\
         \n<footer>Prices include VAT. Page {page}.</footer></body></html>\n",
        category = key.category,
        next = key.page.saturating_add(1),
        page = key.page
    ));
    Ok(html.into_bytes())
}
