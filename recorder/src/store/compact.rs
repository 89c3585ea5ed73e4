//! `dnsq-recorder compact`: the database rewritten by SQLite's VACUUM, offline.
//!
//! A month of recording scatters each table's pages through the file (fact rows
//! are upserted by name, hour after hour) and retention leaves free pages behind
//! (reused, never returned). Neither costs the recorder, but a query that finds
//! the history out of the page cache reads the scattered pages one by one: on
//! the benchmark's 10-million-message history (2026-11-27), the compacted copy
//! answered `who`, `by-process` and `name` with a cold page cache in 46.0, 114.6
//! and 44.3 ms against 85.9, 121.9 and 103.4, and took 535 MB instead of 587.
//! VACUUM rewrites the whole file (9–13 s for that one) and holds the write lock
//! throughout, which the recorder cannot give up while it records, so this is a
//! command for a maintenance window: it takes the writer's lock and refuses to
//! run while a recorder holds it.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use super::{
    StoreError,
    open::{lock_writer, open_connection},
};

/// What [`compact`] did.
#[derive(Debug, Clone, Copy)]
pub struct Compacted {
    /// The database and its write-ahead log, before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub elapsed: Duration,
}

/// Rewrites the store at `path` with VACUUM (as the recorder opens it first: a
/// store of an older schema is brought up to date, another program's database
/// or a newer store is refused). Needs the writer's lock ([`StoreError::Locked`]
/// while a recorder runs) and free disk space of up to twice the database's size
/// while it runs; readers (`dnsq`) may go on reading.
pub fn compact(path: &Path) -> Result<Compacted, StoreError> {
    if let Err(source) = std::fs::metadata(path) {
        return Err(StoreError::File {
            path: path.to_owned(),
            source,
        });
    }
    let _lock = lock_writer(path)?;
    let conn = open_connection(path)?;
    let bytes_before = on_disk(path);
    let started = Instant::now();
    conn.execute_batch("VACUUM")?;
    // VACUUM went through the write-ahead log: copy it back and give its space
    // back too.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(Compacted {
        bytes_before,
        bytes_after: on_disk(path),
        elapsed: started.elapsed(),
    })
}

/// Bytes of the database file and its -wal file (0 for one that is missing).
fn on_disk(path: &Path) -> u64 {
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path) + size(Path::new(&wal))
}
