//! What the disk layer is for: Redis loses the pages (an eviction under memory pressure, a
//! restart without persistence, a failover to an empty replica), the instances keep their disks,
//! and the next reads come from there instead of the renderer.

use std::time::{Duration, Instant};

use capstone::pages::Source;
use capstone::{Deployment, Running};
use shared::metrics::Latency;

/// Pages read after the loss: each category's first ten.
const PAGES: u32 = 40;

/// What the reads after the loss found.
pub struct AfterLoss {
    /// Pages Redis lost (keys unlinked).
    pub unlinked: u64,
    /// Files and bytes on the instances' disks when Redis lost them.
    pub disk: (u64, u64),
    /// Reads answered by each layer (L1, L2, L3, rendered), and their latencies.
    pub reads: [(u64, Latency); 4],
}

/// Unlinks every page from Redis, empties both instances' L1 (the disks stay), and reads the
/// first [`PAGES`] pages, alternating instances, timing each read in the instance.
pub async fn measure(deployment: &Deployment, running: &Running) -> anyhow::Result<AfterLoss> {
    let mut conn = running.services[0].conn.clone();
    let pattern = deployment.shared.cache_namespace.child("pages").pattern();
    let unlinked = shared::namespace::unlink_matching(&mut conn, &pattern, 500).await?;
    let mut disk = (0, 0);
    for service in &running.services {
        service.pages.settle().await;
        service.pages.forget_memory();
        if let Some(layer) = service.pages.disk() {
            disk = (disk.0 + layer.files(), disk.1 + layer.bytes());
        }
    }
    let mut reads: [(u64, Latency); 4] = Default::default();
    for (i, key) in capstone::pages::first_pages(PAGES).iter().enumerate() {
        let pages = &running.services[i % running.services.len()].pages;
        let started = Instant::now();
        let (_, source) = pages.read(key).await?;
        let layer = layer_of(source);
        reads[layer].0 += 1;
        reads[layer].1.record(started.elapsed());
    }
    Ok(AfterLoss {
        unlinked: unlinked.keys as u64,
        disk,
        reads,
    })
}

/// The index of a source in the tables: L1, L2, L3, rendered.
fn layer_of(source: Source) -> usize {
    match source {
        Source::Memory => 0,
        Source::Redis => 1,
        Source::Disk => 2,
        Source::Rendered => 3,
    }
}

/// The median of `latency`, if anything was recorded.
pub fn median(latency: &Latency) -> Option<Duration> {
    (latency.summary().count > 0).then(|| Duration::from_micros(latency.at_quantile(0.5)))
}

/// One row of the table: a layer, the reads it answered, their median.
#[derive(serde::Serialize)]
pub struct LayerRow {
    /// The layer.
    pub layer: &'static str,
    /// Reads it answered.
    pub reads: u64,
    /// Their median, in microseconds (none if it answered none).
    pub median_us: Option<u64>,
}

/// The rows of `after`.
pub fn rows(after: &AfterLoss) -> Vec<LayerRow> {
    let names = ["L1: memory", "L2: Redis", "L3: disk", "rendered"];
    names
        .iter()
        .zip(&after.reads)
        .map(|(layer, (reads, latency))| LayerRow {
            layer,
            reads: *reads,
            median_us: median(latency).map(|d| d.as_micros() as u64),
        })
        .collect()
}

impl shared::report::Row for LayerRow {
    fn headers() -> Vec<&'static str> {
        vec!["answered by", "reads", "median"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.layer.to_string(),
            shared::report::count(self.reads),
            self.median_us
                .map_or("–".to_string(), shared::report::micros),
        ]
    }
}

/// What the rows say.
pub fn conclude(after: &AfterLoss) -> String {
    let (disk, rendered) = (&after.reads[2], &after.reads[3]);
    let total: u64 = after.reads.iter().map(|(n, _)| n).sum();
    let mut said = format!(
        "Redis lost {} pages; the instances' disks held {} files ({} KiB). The disk answered {} of \
         the {} reads that followed",
        shared::report::count(after.unlinked),
        shared::report::count(after.disk.0),
        shared::report::count(after.disk.1 / 1024),
        disk.0,
        total,
    );
    said += &match (median(&disk.1), median(&rendered.1)) {
        (Some(from_disk), Some(render)) => format!(
            ", at a median of {} against {} for a render (a query with the database's added \
             latency, and the template).",
            shared::report::micros(from_disk.as_micros() as u64),
            shared::report::micros(render.as_micros() as u64)
        ),
        _ => ".".to_string(),
    };
    said
}
