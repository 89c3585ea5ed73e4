//! The writer's settings and what it counts.

use std::time::Duration;

/// How the writer batches, and what retention it enforces.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Records a transaction commits (`--batch-size`).
    pub batch_size: usize,
    /// Oldest a batch gets before a flush commits it (`--batch-window`).
    pub batch_window: Duration,
    /// Longest the facts of committed batches wait in memory, merged, before
    /// they are upserted (in wall-clock time or in the messages' time). The fact
    /// tables lag the messages by up to this, or a second when few facts are
    /// held (light traffic); [`super::Store::finish`] writes them all.
    pub facts_window: Duration,
    /// Most records held in memory while the database cannot be written.
    pub max_pending: usize,
    /// Messages and facts older than this are deleted (`--retain`); `None` keeps
    /// them forever.
    pub retain: Option<Duration>,
    /// Cap on the database's used bytes (`--max-db-size`); `None` for no cap.
    pub max_db_size: Option<u64>,
    /// Most messages (and fact rows of each table) one retention step deletes.
    pub retention_chunk: i64,
    /// How long a commit waits for another writer before it counts as failed.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            batch_window: Duration::from_secs(1),
            facts_window: Duration::from_secs(5),
            max_pending: 100_000,
            retain: Some(Duration::from_secs(30 * 24 * 3_600)),
            max_db_size: None,
            retention_chunk: 5_000,
            busy_timeout: Duration::from_millis(100),
        }
    }
}

/// What the writer did since it was opened (part of the `counters` rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Records committed.
    #[serde(rename = "store_committed")]
    pub committed: u64,
    /// Transactions that committed records.
    #[serde(rename = "store_batches")]
    pub batches: u64,
    /// Commits that failed and were rolled back (their records were retried).
    #[serde(rename = "store_failed_commits")]
    pub failed_commits: u64,
    /// Records lost: dropped from a full backlog, or unwritable at shutdown.
    #[serde(rename = "store_dropped")]
    pub dropped: u64,
    /// Records waiting in memory.
    #[serde(rename = "store_pending")]
    pub pending: u64,
    /// Messages deleted by retention.
    #[serde(rename = "store_expired")]
    pub expired: u64,
    /// Interned rows (names, answer data and sets, processes, endpoints) deleted
    /// by retention once nothing kept referred to them.
    #[serde(rename = "store_interned_expired", default)]
    pub interned_expired: u64,
}
