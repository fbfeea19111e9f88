//! L3: a cache on the instance's local disk, under L1 (memory) and L2 (Redis).
//!
//! A rendered template costs a database query and some formatting; Redis holds it for every
//! instance, but a Redis restart (or an eviction under `maxmemory`) empties L2 for all of them at
//! once, and each instance's L1 is small. A local disk is large, survives a restart of Redis and
//! of the process, and a read of a page from the page cache costs tens of microseconds.
//!
//! The source's disk layer got four things wrong, and each has a line here:
//!
//! - **The file name.** The source used the key as the file name, so a key of `../../etc/passwd`
//!   names a file outside the folder. Here the name is the hex SHA-256 of the key: 64 characters
//!   from `[0-9a-f]`, always inside the folder, whatever the key holds.
//! - **What it reads back.** The source unpickled the file (which runs whatever the file says).
//!   Here a file is [`packed`](crate::packed) bytes: a header, a checksum, a payload; anything
//!   else, a torn write included, is a miss and the file is removed.
//! - **Half-written files.** A file is written under a temporary name and renamed into place, so
//!   a reader sees the old file or the new one, never part of one (rename is atomic on POSIX).
//! - **"Unlimited".** A disk fills up. The folder has a byte budget, kept by a moka index of the
//!   files weighed by their size: when the total passes the budget, the least recently used
//!   files are deleted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use sha2::{Digest, Sha256};
use shared::metrics::Counter;

use crate::packed::{self, Unpacked};

/// What the disk layer counted.
#[derive(Default, Debug)]
pub struct DiskStats {
    /// Reads answered from a file.
    pub hits: Counter,
    /// Reads that found no file, or an expired one.
    pub misses: Counter,
    /// Files that were not ours or were damaged: read as misses, removed.
    pub corrupt: Counter,
    /// Files deleted to keep the folder within its budget.
    pub evicted: Counter,
}

/// One instance's disk layer: a folder and a byte budget.
pub struct DiskCache {
    dir: PathBuf,
    /// File name to its size, least recently used evicted first past the budget.
    files: moka::sync::Cache<String, u32>,
    /// What it counted.
    pub stats: Arc<DiskStats>,
}

impl DiskCache {
    /// The disk layer in `dir` (which must exist), at most `budget` bytes of files. Files a
    /// previous run left are indexed (their expiry is still in their header); temporary files of
    /// a write that never finished are removed.
    pub fn open(dir: &Path, budget: u64) -> std::io::Result<Self> {
        let stats = Arc::new(DiskStats::default());
        let (folder, counted) = (dir.to_path_buf(), stats.clone());
        let files = moka::sync::Cache::builder()
            .max_capacity(budget)
            .weigher(|_name: &String, size: &u32| *size)
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(move |name: Arc<String>, _size, cause| {
                // A replaced entry is the file just rewritten; an explicit removal deleted its
                // own file. Only the budget deletes files here.
                if cause == RemovalCause::Size {
                    let _ = std::fs::remove_file(folder.join(name.as_str()));
                    counted.evicted.inc();
                }
            })
            .build();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                std::fs::remove_file(entry.path())?;
            } else if is_file_name(&name) {
                files.insert(name, entry.metadata()?.len() as u32);
            }
        }
        files.run_pending_tasks();
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            files,
            stats,
        })
    }

    // ANCHOR: file_name
    /// The file that holds `key`: the hex SHA-256 of the key, so no key can name a path outside
    /// the folder (`../`, `/`, a NUL) and two keys never share a file.
    pub fn file_name(key: &str) -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
    // ANCHOR_END: file_name

    /// The path of `key`'s file.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(Self::file_name(key))
    }

    /// `key`'s value and its expiry, if its file is there, whole, ours and not expired at
    /// `now_ms`. Anything else is a miss; a damaged or expired file is removed.
    pub async fn get(&self, key: &str, now_ms: u64) -> Option<(Vec<u8>, u64)> {
        let name = Self::file_name(key);
        let path = self.dir.join(&name);
        let read = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).ok()?;
            Some(packed::unpack(&bytes, now_ms))
        })
        .await
        .expect("reading a file does not panic");
        match read {
            Some(Ok(found)) => {
                self.files.get(&name); // most recently used now
                self.stats.hits.inc();
                Some(found)
            }
            Some(Err(why)) => {
                if let Unpacked::Corrupt(_) = why {
                    self.stats.corrupt.inc();
                }
                self.remove(&name);
                self.stats.misses.inc();
                None
            }
            None => {
                // Gone (removed by hand, or by an eviction racing a rewrite): not in the budget.
                self.files.invalidate(&name);
                self.stats.misses.inc();
                None
            }
        }
    }

    // ANCHOR: put
    /// Stores `packed` bytes as `key`'s file: written under a temporary name, then renamed into
    /// place, so a concurrent reader (or a crash) never meets half a file. Then the budget is
    /// enforced.
    pub async fn put(&self, key: &str, packed: Vec<u8>) -> std::io::Result<()> {
        let name = Self::file_name(key);
        let size = packed.len() as u32;
        let dir = self.dir.clone();
        let file = name.clone();
        tokio::task::spawn_blocking(move || {
            let mut temporary = tempfile::Builder::new().suffix(".tmp").tempfile_in(&dir)?;
            temporary.write_all(&packed)?;
            temporary
                .persist(dir.join(file))
                .map_err(|failed| failed.error)?;
            Ok::<_, std::io::Error>(())
        })
        .await
        .expect("writing a file does not panic")?;
        self.files.insert(name, size);
        self.files.run_pending_tasks();
        Ok(())
    }
    // ANCHOR_END: put

    /// Bytes of files the index holds.
    pub fn bytes(&self) -> u64 {
        self.files.run_pending_tasks();
        self.files.weighted_size()
    }

    /// How many files the index holds.
    pub fn files(&self) -> u64 {
        self.files.run_pending_tasks();
        self.files.entry_count()
    }

    /// Removes every file of the layer (an administrator's clear), on a blocking thread: there
    /// may be thousands.
    pub async fn clear(&self) {
        let names: Vec<String> = self.files.iter().map(|(name, _)| (*name).clone()).collect();
        self.files.invalidate_all();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            for name in names {
                // Already gone is fine; one that cannot be removed is read as a miss next time.
                let _ = std::fs::remove_file(dir.join(name));
            }
        })
        .await
        .expect("removing files does not panic");
    }

    /// Removes a file and its index entry.
    fn remove(&self, name: &str) {
        self.files.invalidate(name);
        // Already gone is fine; a file that cannot be removed is read as a miss again next time.
        let _ = std::fs::remove_file(self.dir.join(name));
    }
}

/// Whether `name` is one of this layer's file names.
fn is_file_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|byte| byte.is_ascii_hexdigit())
}
