//! What runs that were killed left behind, found and removed by the next run.
//!
//! A run removes its temporary folders and its PostgreSQL schema when it ends, whichever way it
//! ends, except one: `kill -9` (or a second Ctrl-C in the exercise runner, which kills the
//! tests) gives it no chance. So every such thing is made with a mark of its owner that the
//! kernel or the server drops when the owner dies, and a later run removes whatever has lost
//! its owner:
//!
//! - a temporary folder holds a file, `.owner`, that its owner keeps locked (`flock`) while it
//!   lives; the kernel releases the lock when the process dies, however it dies;
//! - a PostgreSQL schema is made under an advisory lock named after it, held by a connection the
//!   owner keeps open; the server releases it when that connection goes.
//!
//! Nothing that still has an owner is touched, so runs side by side (tests in parallel) are
//! safe. Redis keys need no sweep of this kind: a demo's keys carry TTLs (see
//! [`crate::stage`] for those that cannot).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Row};

/// The start of the name of every temporary folder the course makes.
pub const FOLDER_PREFIX: &str = "caching-course-";
/// The file in a folder that its owner keeps locked.
const OWNER_FILE: &str = ".owner";
/// A folder with no owner file, from a version of the course that made none, is removed once it
/// is this old (a folder being made this moment has none for an instant, so age decides).
const UNMARKED_AFTER: Duration = Duration::from_secs(3_600);

/// A temporary folder removed when this value is dropped, marked as owned while it lives.
pub struct OwnedDir {
    // Field order matters: the folder goes before its lock is released.
    dir: tempfile::TempDir,
    _owner: File,
}

impl OwnedDir {
    /// A new folder `caching-course-<what>-XXXXXX` in the temporary folder, locked as ours;
    /// before the process's first, the folders killed runs left there are removed (and named on
    /// stderr). Once per process is enough: a folder a killed run left does not appear later, and
    /// a test binary that makes hundreds of folders would otherwise read the temporary folder
    /// hundreds of times.
    pub fn new(what: &str) -> std::io::Result<Self> {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            let removed = temp_folders();
            if !removed.is_empty() {
                let names: Vec<_> = removed.iter().map(|p| p.display().to_string()).collect();
                eprintln!(
                    "Removed {} temporary folder(s) left by runs that were killed: {}",
                    removed.len(),
                    names.join(", ")
                );
            }
        });
        let dir = tempfile::Builder::new()
            .prefix(&format!("{FOLDER_PREFIX}{what}-"))
            .tempdir()?;
        // Locked under another name, then renamed: a sweep never finds `.owner` unlocked while
        // its owner lives. (The lock belongs to the open file, so the rename keeps it.)
        let locking = dir.path().join(".owner.new");
        let owner = File::create(&locking)?;
        // SAFETY: flock(2) on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(owner.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        std::fs::rename(&locking, dir.path().join(OWNER_FILE))?;
        Ok(OwnedDir { dir, _owner: owner })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the course's temporary folders whose owner is gone; the folders removed.
pub fn temp_folders() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with(FOLDER_PREFIX);
        if is_ours && path.is_dir() && !owned(&path) && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Whether a folder's owner is alive: its owner file is locked (we cannot lock it), or it has no
/// owner file and is too young to judge.
fn owned(dir: &Path) -> bool {
    let Ok(owner) = File::open(dir.join(OWNER_FILE)) else {
        let age = std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        return age.is_none_or(|age| age < UNMARKED_AFTER);
    };
    // SAFETY: flock(2) on a file descriptor we own; no memory is involved. The lock we may take
    // is released when `owner` is closed at the end of this function.
    unsafe { libc::flock(owner.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// Takes the advisory lock that marks `schema` as owned, on the connection the owner keeps open
/// for as long as it uses the schema. Take it before creating the schema, so that no sweep ever
/// sees the schema unowned.
pub async fn own_schema(conn: &mut AnyConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(schema)
        .execute(conn)
        .await?;
    Ok(())
}

/// Drops the course's schemas (`course_...`) in the PostgreSQL database `conn` is on whose owner
/// is gone; the schemas dropped.
pub async fn schemas(conn: &mut AnyConnection) -> Result<Vec<String>, sqlx::Error> {
    let names: Vec<String> = sqlx::query(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'course\\_%' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| row.get(0))
    .collect();
    let mut dropped = Vec::new();
    for name in names {
        let free: bool = sqlx::query("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(&name)
            .fetch_one(&mut *conn)
            .await?
            .get(0);
        if !free {
            continue;
        }
        let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
        let dropped_now = sqlx::query(&sql).execute(&mut *conn).await;
        sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(&name)
            .execute(&mut *conn)
            .await?;
        dropped_now?;
        dropped.push(name);
    }
    Ok(dropped)
}

/// [`schemas`] in the PostgreSQL database at `url`, on a connection of its own.
pub async fn schemas_at(url: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await?;
    let dropped = schemas(&mut conn).await;
    conn.close().await?;
    dropped
}
