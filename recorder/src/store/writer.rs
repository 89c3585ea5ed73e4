//! The batched writer, the recorder's [`Sink`] when it stores: records wait in
//! memory and are committed in one transaction per batch, when the batch is full
//! or, at a flush, older than the batch window. A commit that fails (database
//! locked, disk full, read-only) is rolled back and retried later with back-off;
//! the records stay in memory meanwhile, up to a bound beyond which the oldest
//! are dropped and counted. Nothing here ever stops the pipeline.
//!
//! Facts (see [`super::facts`]) of committed batches are held, merged, for up to
//! `StoreOptions::facts_window` (a second when few: [`LIGHT_FACTS`]) and upserted
//! with a later batch or flush, or, few of a batch that did not fill (light
//! traffic), with their batch; a flush runs a
//! retention step when one is due (see [`super::retention`]).

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::{
    StoreError, StoreOptions, StoreStats,
    chunk::Encoder,
    facts::Facts,
    insert::{Batch, CallRows},
    intern::Caches,
    retention::{self, Limits, Retention},
};
use crate::{
    pipeline::Sink,
    record::{LookupRecord, MessageRecord},
};

/// How long one flush (or write) may spend committing a backlog.
const COMMIT_BUDGET: Duration = Duration::from_millis(250);
/// Back-off after a failed commit: doubled on each failure, up to the maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// One warning per kind of trouble per this.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Most counter samples kept while the database cannot be written.
const MAX_PENDING_COUNTERS: usize = 1_000;
/// Most distinct facts held before they are upserted, whatever their age.
const MAX_PENDING_FACTS: usize = 50_000;
/// Held facts fewer than this are upserted once [`LIGHT_HOLD`] old (or with
/// their batch, when it did not fill) rather than after the whole facts window.
/// Holding merges a name asked many times into one upsert, which pays under load; under light traffic it saves next to nothing,
/// and `dnsq who` would lag `dnsq tail` by the window (5 s by default: a query
/// made by hand and asked about at once was "not in the recorded history").
/// Under load the held facts pass this long before they are a second old.
const LIGHT_FACTS: usize = 256;
const LIGHT_HOLD: Duration = Duration::from_secs(1);
/// Commit attempts at shutdown.
const FINISH_ATTEMPTS: u32 = 3;

/// Facts of committed batches, not yet upserted.
#[derive(Default)]
struct HeldFacts {
    held: Facts,
    /// When `held` stopped being empty.
    since: Option<Instant>,
    /// Upsert with the next commit, due or not (shutdown).
    flush: bool,
    /// The last batch's facts, emptied, for the next batch to fill: their maps
    /// keep their room (see [`Facts::clear`]).
    spare: Facts,
}

impl HeldFacts {
    /// Whether the held facts (with a batch's new ones) should be upserted now.
    fn due(&self, options: &StoreOptions, now: Instant, batch: Option<&Facts>) -> bool {
        let empty = Facts::default();
        let batch = batch.unwrap_or(&empty);
        if self.held.is_empty() && batch.is_empty() {
            return false;
        }
        let window = options.facts_window;
        let count = self.held.len() + batch.len();
        self.flush
            || count >= MAX_PENDING_FACTS
            || self.since.is_some_and(|since| {
                let held_for = now.saturating_duration_since(since);
                held_for >= window || (count < LIGHT_FACTS && held_for >= LIGHT_HOLD)
            })
            || self.held.span_ns(batch) >= i64::try_from(window.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// Failed commits since the last one that worked.
struct Trouble {
    since: Instant,
    failures: u64,
    backoff: Duration,
    retry_at: Instant,
}

/// The store opened for writing; see [`super::open_for_writing`].
pub struct Store {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
    run_id: Option<i64>,
    pending: VecDeque<MessageRecord>,
    /// Committed records kept for [`Self::take_spent`] (when asked to keep them).
    spent: Option<Vec<MessageRecord>>,
    /// Libc lookups waiting; every commit writes all of them.
    pending_lookups: VecDeque<LookupRecord>,
    /// (time_ns, JSON) samples waiting for the next commit.
    pending_counters: VecDeque<(i64, String)>,
    /// When the oldest record of the current batch arrived.
    batch_since: Option<Instant>,
    caches: Caches,
    /// Where the returns of recent libc calls go (see [`CallRows`]).
    call_rows: CallRows,
    /// Packs each batch's messages; kept so that its buffers keep their size.
    chunk: Encoder,
    facts: HeldFacts,
    stats: StoreStats,
    trouble: Option<Trouble>,
    warned: HashMap<&'static str, Instant>,
    retention: Retention,
    finished: bool,
    /// The single-writer lock (see `open_for_writing`), held as long as the store.
    lock: Option<std::fs::File>,
}

impl Store {
    pub(super) fn new(
        conn: Connection,
        path: PathBuf,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        conn.busy_timeout(options.busy_timeout)?;
        Ok(Self {
            conn,
            path,
            options,
            run_id: None,
            pending: VecDeque::new(),
            spent: None,
            pending_lookups: VecDeque::new(),
            pending_counters: VecDeque::new(),
            batch_since: None,
            caches: Caches::default(),
            call_rows: CallRows::default(),
            chunk: Encoder::default(),
            facts: HeldFacts::default(),
            stats: StoreStats::default(),
            trouble: None,
            warned: HashMap::new(),
            retention: Retention::default(),
            finished: false,
            lock: None,
        })
    }

    pub(super) fn holding(mut self, lock: std::fs::File) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Replaces the batching and retention settings.
    pub fn with_options(mut self, options: StoreOptions) -> Result<Self, StoreError> {
        self.conn.busy_timeout(options.busy_timeout)?;
        self.options = StoreOptions {
            batch_size: options.batch_size.max(1),
            max_pending: options.max_pending.max(options.batch_size),
            ..options
        };
        Ok(self)
    }

    /// Writes from here on as a bulk load: no journal, no syncs, and a page cache
    /// of up to `cache_kib` KiB that holds the indexes the fact upserts walk. Only
    /// for a database nobody reads before [`Store::end_bulk_load`] and that may be
    /// thrown away: without a journal a crash or a failed commit can leave it
    /// corrupt. The benchmark's generated history is written so (in about two
    /// thirds of the time: its fact indexes outgrow the writer's 4 MiB cache, and
    /// WAL writes every page twice). The rows written are the same either way.
    pub fn begin_bulk_load(&mut self, cache_kib: i64) -> Result<(), StoreError> {
        let _mode: String =
            self.conn
                .pragma_update_and_check(None, "journal_mode", "OFF", |row| row.get(0))?;
        self.conn.pragma_update(None, "synchronous", "OFF")?;
        self.conn.pragma_update(None, "cache_size", -cache_kib)?;
        Ok(())
    }

    /// Back to the settings [`open_for_writing`](super::open_for_writing) gives
    /// (write-ahead logging, synced commits, the 4 MiB cache) after
    /// [`Store::begin_bulk_load`]: the file is then as a recorder leaves it.
    pub fn end_bulk_load(&mut self) -> Result<(), StoreError> {
        super::open::configure(&self.conn)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The current `runs` row, once [`Store::start_run`] (or the first commit)
    /// made one.
    pub fn run_id(&self) -> Option<i64> {
        self.run_id
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            pending: (self.pending.len() + self.pending_lookups.len()) as u64,
            ..self.stats
        }
    }

    /// Records that this recorder started, with its configuration (JSON). Call it
    /// before the first record; messages written without it belong to a run with
    /// an empty configuration.
    pub fn start_run(&mut self, config_json: &str) -> Result<i64, StoreError> {
        let previous: Option<(i64, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT id, stopped_ns FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if let Some((run, None)) = previous {
            tracing::info!(
                run,
                "the previous recorder run did not stop cleanly; its stored messages are kept"
            );
        }
        let id = insert_run(&self.conn, config_json)?;
        self.run_id = Some(id);
        Ok(id)
    }

    /// Adds a `counters` row (totals since the run started, a JSON object) with
    /// the next commit, which this attempts at once.
    pub fn record_counters(&mut self, values: &impl serde::Serialize) {
        let values = serde_json::to_string(values).unwrap_or_else(|_| "{}".to_owned());
        if self.pending_counters.len() >= MAX_PENDING_COUNTERS {
            self.pending_counters.pop_front();
        }
        self.pending_counters.push_back((now_ns(), values));
        let now = Instant::now();
        if self.may_try(now) {
            let _ = self.commit_pending(now, true);
        }
    }

    /// Commits every record still in memory now, ignoring back-off, until none is
    /// left or a commit fails (what is left then is [`Store::finish`]'s to retry
    /// or count as dropped). At shutdown, before the last counters row.
    pub fn commit_all(&mut self) {
        // commit_pending itself does not wait for the back-off.
        while !self.pending.is_empty() || !self.pending_lookups.is_empty() {
            if self.commit_pending(Instant::now(), true).is_err() {
                return;
            }
        }
    }

    /// At shutdown: commits everything still in memory (ignoring back-off, a few
    /// attempts) and records the run's stop. Records that cannot be written are
    /// counted as dropped and reported in the error.
    pub fn finish(&mut self, stop_reason: &str) -> Result<StoreStats, StoreError> {
        self.finished = true;
        self.facts.flush = true;
        let mut failure;
        let mut attempts = 0;
        loop {
            self.trouble = None;
            match self.commit_pending(Instant::now(), true) {
                Ok(()) if self.nothing_waits() => {
                    failure = None;
                    break;
                }
                // The time budget ran out, not the database: go on.
                Ok(()) => {}
                Err(error) => {
                    failure = Some(error);
                    attempts += 1;
                    if attempts >= FINISH_ATTEMPTS {
                        break;
                    }
                    std::thread::sleep(FIRST_BACKOFF * attempts);
                }
            }
        }
        let stopped = match self.run_id {
            Some(run_id) => self
                .conn
                .execute(
                    "UPDATE runs SET stopped_ns = ?1, stop_reason = ?2 WHERE id = ?3",
                    params![now_ns(), stop_reason, run_id],
                )
                .map(drop),
            None => Ok(()),
        };
        if let Some(source) = failure {
            let count = self.pending.len() + self.pending_lookups.len();
            self.stats.dropped += count as u64;
            self.pending.clear();
            self.pending_lookups.clear();
            self.pending_counters.clear();
            return Err(StoreError::Unwritten { count, source });
        }
        stopped?;
        Ok(self.stats())
    }

    /// The writer's connection, for tests that tamper with it.
    #[cfg(test)]
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// One retention step now, whatever the interval.
    #[cfg(test)]
    pub(super) fn retention_now(&mut self) -> rusqlite::Result<retention::Step> {
        let limits = Limits {
            retain: self.options.retain,
            max_db_size: self.options.max_db_size,
            chunk: self.options.retention_chunk,
        };
        let in_use = self.in_use_from_hour();
        let step =
            self.retention
                .step(&mut self.conn, &limits, Instant::now(), now_ns(), in_use)?;
        self.stats.expired += step.messages;
        self.stats.interned_expired += step.interned;
        Ok(step)
    }

    /// Whether a commit may be tried now (not during back-off).
    fn may_try(&self, now: Instant) -> bool {
        self.trouble.as_ref().is_none_or(|t| now >= t.retry_at)
    }

    fn push(&mut self, record: MessageRecord) {
        if self.pending.is_empty() {
            self.batch_since = Some(Instant::now());
        }
        self.pending.push_back(record);
        if self.pending.len() > self.options.max_pending {
            self.pending.pop_front();
            self.stats.dropped += 1;
            if self.should_warn("backlog full") {
                tracing::warn!(
                    dropped = self.stats.dropped,
                    pending = self.pending.len(),
                    "the store's backlog is full: dropping the oldest records"
                );
            }
        }
        if self.pending.len() >= self.options.batch_size {
            let now = Instant::now();
            if self.may_try(now) {
                let _ = self.commit_pending(now, false);
            }
        }
    }

    fn push_lookup(&mut self, record: LookupRecord) {
        if self.pending.is_empty() && self.pending_lookups.is_empty() {
            self.batch_since = Some(Instant::now());
        }
        self.pending_lookups.push_back(record);
        if self.pending_lookups.len() > self.options.max_pending {
            self.pending_lookups.pop_front();
            self.stats.dropped += 1;
            if self.should_warn("backlog full") {
                tracing::warn!(
                    dropped = self.stats.dropped,
                    pending = self.pending_lookups.len(),
                    "the store's backlog is full: dropping the oldest libc lookups"
                );
            }
        }
        if self.pending_lookups.len() >= self.options.batch_size {
            let now = Instant::now();
            if self.may_try(now) {
                let _ = self.commit_pending(now, false);
            }
        }
    }

    /// Periodic work: a due batch, then a retention step.
    fn tick(&mut self, now: Instant) {
        let due = !self.pending_counters.is_empty()
            || self.facts.due(&self.options, now, None)
            || self.pending.len() >= self.options.batch_size
            || self.pending_lookups.len() >= self.options.batch_size
            || self.batch_since.is_some_and(|since| {
                now.saturating_duration_since(since) >= self.options.batch_window
            });
        if due && self.may_try(now) {
            let _ = self.commit_pending(now, true);
        }
        if self.trouble.is_none() {
            self.retention_step(now);
        }
    }

    /// Commits pending records in batches: all of them (`partial`), or only full
    /// batches; stops at the first failure or when the time budget is spent.
    fn commit_pending(&mut self, now: Instant, partial: bool) -> rusqlite::Result<()> {
        let deadline = now + COMMIT_BUDGET;
        loop {
            let count = self.pending.len().min(self.options.batch_size);
            let full = count == self.options.batch_size;
            let lookups_due = !self.pending_lookups.is_empty()
                && (partial || self.pending_lookups.len() >= self.options.batch_size);
            if (count == 0 || !(full || partial))
                && !lookups_due
                && self.pending_counters.is_empty()
                && !self.facts.due(&self.options, now, None)
            {
                return Ok(());
            }
            let count = if full || partial { count } else { 0 };
            // A batch the window closed before it filled: light traffic.
            match self.commit_batch(count, !full) {
                Ok(()) => self.committed(count),
                Err(error) => {
                    self.failed(&error);
                    return Err(error);
                }
            }
            if self.pending.is_empty() {
                self.batch_since = None;
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    /// One transaction: the first `count` pending records and every pending
    /// counter sample. Under `light` traffic (a batch that did not fill) few
    /// facts are upserted with their messages rather than held: holding them
    /// would merge next to nothing, and `dnsq who` would lag `dnsq tail` by
    /// another second.
    fn commit_batch(&mut self, count: usize, light: bool) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let run_id = match self.run_id {
            Some(id) => id,
            None => insert_run(&tx, "{}")?,
        };
        let mut batch = Batch::new(
            &tx,
            &mut self.caches,
            &mut self.call_rows,
            &mut self.chunk,
            std::mem::take(&mut self.facts.spare),
            run_id,
        )?;
        for record in self.pending.iter().take(count) {
            batch.message(record)?;
        }
        for lookup in &self.pending_lookups {
            batch.lookup(lookup)?;
        }
        let mut facts = batch.finish()?;
        let flush_facts = self.facts.due(&self.options, Instant::now(), Some(&facts))
            || (light && self.facts.held.len() + facts.len() < LIGHT_FACTS);
        if flush_facts {
            self.facts.held.upsert(&tx)?;
            facts.upsert(&tx)?;
        }
        for (time_ns, values) in &self.pending_counters {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO counters (run_id, time_ns, \"values\") VALUES (?1, ?2, ?3)",
            )?
            .execute(params![run_id, time_ns, values])?;
        }
        tx.commit()?;
        self.pending_lookups.clear();
        self.run_id = Some(run_id);
        if flush_facts {
            self.facts.held.clear();
            self.facts.since = None;
        } else if !facts.is_empty() {
            self.facts.since.get_or_insert_with(Instant::now);
            self.facts.held.merge(&mut facts);
        }
        self.facts.spare = facts;
        Ok(())
    }

    fn nothing_waits(&self) -> bool {
        self.pending.is_empty()
            && self.pending_lookups.is_empty()
            && self.pending_counters.is_empty()
            && self.facts.held.is_empty()
    }

    /// From now on, committed records are kept for [`Self::take_spent`] instead of
    /// dropped here. A record's text and shared identities were allocated by the
    /// pipeline's thread: freeing them on the store's thread cost the allocator a
    /// cross-thread free of each, and the two threads bounced the cache line of
    /// every shared identity's reference count between them.
    pub(super) fn keep_spent(&mut self) {
        self.spent.get_or_insert_with(Vec::new);
    }

    /// The committed records kept since the last call (see [`Self::keep_spent`]).
    pub(super) fn take_spent(&mut self) -> Vec<MessageRecord> {
        self.spent.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn committed(&mut self, count: usize) {
        let records = self.pending.drain(..count);
        match &mut self.spent {
            Some(spent) => spent.extend(records),
            None => drop(records),
        }
        self.pending_counters.clear();
        self.stats.committed += count as u64;
        if count > 0 {
            self.stats.batches += 1;
        }
        if let Some(trouble) = self.trouble.take() {
            tracing::info!(
                failed_commits = trouble.failures,
                after_secs = trouble.since.elapsed().as_secs(),
                pending = self.pending.len(),
                "writing to the store resumed"
            );
            self.warned.clear();
        }
    }

    fn failed(&mut self, error: &rusqlite::Error) {
        // Ids handed out inside the rolled-back transaction are gone.
        self.caches.clear();
        self.stats.failed_commits += 1;
        let now = Instant::now();
        let trouble = self.trouble.get_or_insert(Trouble {
            since: now,
            failures: 0,
            backoff: FIRST_BACKOFF / 2,
            retry_at: now,
        });
        trouble.failures += 1;
        trouble.backoff = (trouble.backoff * 2).min(MAX_BACKOFF);
        trouble.retry_at = now + trouble.backoff;
        let kind = error_kind(error);
        if self.should_warn(kind) {
            tracing::warn!(
                %error,
                kind,
                path = %self.path.display(),
                pending = self.pending.len(),
                "could not write to the store; keeping the records in memory and retrying"
            );
        }
    }

    fn retention_step(&mut self, now: Instant) {
        let limits = Limits {
            retain: self.options.retain,
            max_db_size: self.options.max_db_size,
            chunk: self.options.retention_chunk,
        };
        if !self.retention.due(now, &limits) {
            return;
        }
        let in_use = self.in_use_from_hour();
        match self
            .retention
            .step(&mut self.conn, &limits, now, now_ns(), in_use)
        {
            Ok(step) => {
                self.stats.expired += step.messages;
                self.stats.interned_expired += step.interned;
                if step.stuck_over_size && self.should_warn("over size") {
                    let used = retention::used_bytes(&self.conn).unwrap_or(0);
                    tracing::warn!(
                        used,
                        cap = limits.max_db_size,
                        "the store is over --max-db-size but has no messages left to delete"
                    );
                }
            }
            Err(error) => {
                if self.should_warn("retention") {
                    tracing::warn!(%error, "retention step failed; it will be retried");
                }
            }
        }
    }

    /// The oldest message hour of the interned ids held in memory: the caches'
    /// and the facts not yet written (retention keeps those rows).
    fn in_use_from_hour(&self) -> Option<i64> {
        let facts = self
            .facts
            .held
            .first_ns()
            .map(|ns| ns.div_euclid(super::schema::NS_PER_HOUR));
        match (self.caches.hour(), facts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn should_warn(&mut self, kind: &'static str) -> bool {
        let now = Instant::now();
        match self.warned.get(kind) {
            Some(last) if now.saturating_duration_since(*last) < WARN_EVERY => false,
            _ => {
                self.warned.insert(kind, now);
                true
            }
        }
    }
}

impl Sink for Store {
    fn write(&mut self, record: MessageRecord) -> anyhow::Result<()> {
        self.push(record);
        Ok(())
    }

    fn write_lookup(&mut self, record: LookupRecord) -> anyhow::Result<()> {
        self.push_lookup(record);
        Ok(())
    }

    /// Commits a batch older than the window and runs retention; failures are
    /// logged and retried, never returned.
    fn flush(&mut self) -> anyhow::Result<()> {
        self.tick(Instant::now());
        Ok(())
    }
}

impl Drop for Store {
    /// A store dropped without [`Store::finish`] (an error path) still tries once
    /// to save what it holds; the run stays without a stop, as after a crash.
    fn drop(&mut self) {
        if !self.finished && !self.nothing_waits() {
            self.trouble = None;
            self.facts.flush = true;
            let _ = self.commit_pending(Instant::now(), true);
        }
    }
}

fn insert_run(conn: &Connection, config_json: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "INSERT INTO runs (started_ns, version, hostname, config) VALUES (?1, ?2, ?3, ?4) \
         RETURNING id",
        params![now_ns(), env!("CARGO_PKG_VERSION"), hostname(), config_json],
        |row| row.get(0),
    )
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_owned()).filter(|name| !name.is_empty())
}

pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Kinds of failure, each warned about at most once a minute.
fn error_kind(error: &rusqlite::Error) -> &'static str {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) => "busy",
        Some(ErrorCode::DatabaseLocked) => "locked",
        Some(ErrorCode::DiskFull) => "disk full",
        Some(ErrorCode::ReadOnly) => "read-only",
        Some(ErrorCode::SystemIoFailure) => "I/O error",
        Some(ErrorCode::DatabaseCorrupt) => "corrupt",
        Some(ErrorCode::PermissionDenied) => "permission denied",
        Some(ErrorCode::CannotOpen) => "cannot open",
        _ => "other",
    }
}
