//! Retention: `--retain` (age) and `--max-db-size` (used pages), enforced a little
//! at a time so that no step holds the write lock for long. Each step deletes at
//! most one chunk of the oldest messages (ids are in arrival order, which is time
//! order to within a second) and their side rows, and at most one chunk of old
//! facts of each table. Freed pages are reused by later inserts; nothing is
//! vacuumed. The recorder's `counters` samples go with the facts, but for the
//! last one of each run before the cut-off. Interned rows (`names`, `rdata`, `answer_sets`, `processes`,
//! `endpoints`) go once nothing can refer to them (schema 11, see
//! `Retention::collect_interned`).

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::schema::{LOOKUPS_HOURS, NS_PER_HOUR, NS_PER_MINUTE};

/// Between steps when the last one found nothing more to delete.
const IDLE_INTERVAL: Duration = Duration::from_secs(5);
/// Between steps while there is a backlog (each flush, in practice).
const BEHIND_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub retain: Option<Duration>,
    pub max_db_size: Option<u64>,
    /// Most messages, and most rows of each fact table, deleted in one step.
    pub chunk: i64,
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    pub messages: u64,
    pub facts: u64,
    /// Interned rows deleted.
    pub interned: u64,
    /// The database is over the size cap and holds no message left to delete.
    pub stuck_over_size: bool,
    /// A sweep of `resolutions` or `lookups` is part way through (more steps
    /// follow soon).
    pub sweeping: bool,
}

/// A fact table without an index on hour, and the column whose rows of one
/// value have their old hours in one range of an index: `resolutions` (schema
/// 8: its key starts with (rdata_id, hour)) and `lookups` (schema 16: the
/// (process_id, hour) index).
struct SweptTable {
    /// The first value of the column from `?1` on.
    next: &'static str,
    /// Deletes rows of value `?1` before hour `?2` (at most `?3`, when
    /// `bounded`).
    delete: &'static str,
    bounded: bool,
    /// Values one step looks at.
    per_step: usize,
}

/// An answer has a row an hour for each name and process that got it: few.
const RESOLUTIONS: SweptTable = SweptTable {
    next: "SELECT rdata_id FROM resolutions WHERE rdata_id >= ?1 ORDER BY rdata_id LIMIT 1",
    delete: "DELETE FROM resolutions WHERE rdata_id = ?1 AND hour < ?2",
    bounded: false,
    per_step: 2_000,
};

/// A process can have a row an hour for each name it asked: many, so a step
/// deletes at most its chunk of one process's rows and goes on from there.
const LOOKUPS: SweptTable = SweptTable {
    next: "SELECT process_id FROM lookups WHERE process_id >= ?1 ORDER BY process_id LIMIT 1",
    delete: "DELETE FROM lookups WHERE (qname_id, process_id, role, qtype, rcode, hour) IN \
             (SELECT qname_id, process_id, role, qtype, rcode, hour FROM lookups \
              WHERE process_id = ?1 AND hour < ?2 LIMIT ?3)",
    bounded: true,
    per_step: 2_000,
};

/// A pass over a [`SweptTable`]: it walks the column's values in order, some
/// each step, deleting each one's rows before the cut-off hour; a new pass
/// starts when the cut-off moves to a later hour.
#[derive(Debug, Default, Clone, Copy)]
struct Sweep {
    /// The cut-off hour of the current or last pass.
    hour: Option<i64>,
    /// The next value to look at; `None` once the pass is done.
    next: Option<i64>,
}

#[derive(Debug, Default)]
pub(super) struct Retention {
    last: Option<Instant>,
    behind: bool,
    /// `cnames` and `delegations` (keyed by name since schema 5) have no index on
    /// time: they are small, and swept whole once an hour of cut-off.
    swept_hour: Option<i64>,
    /// The last sweep of `counters` stopped at its chunk: more is due.
    counters_behind: bool,
    resolutions: Sweep,
    lookups: Sweep,
}

impl Retention {
    /// Deletes at most `chunk` rows of each interned table that nothing refers
    /// to any more: those whose `last_hour` is older, by a margin, than every
    /// row that can refer to one. A row used in an hour has its `last_hour` at
    /// least that hour, less one for the second loopback copy of a packet that
    /// crosses the hour and reuses the first one's ids (`insert::Batch`). What can
    /// refer to one: messages and their side rows, `lookups`, `libc_lookups`,
    /// `resolutions` (no index on hour: known only once a sweep pass has
    /// finished), `delegations` and `cnames` (swept whole), answer sets (their
    /// names and data are marked whenever they are), and what the writer holds.
    /// The newest row of each table stays, so that no id is ever handed out
    /// again (a reader's cache may still know the old one).
    fn collect_interned(
        &self,
        tx: &Connection,
        sweep: &Sweep,
        in_use_from_hour: Option<i64>,
        chunk: i64,
    ) -> rusqlite::Result<u64> {
        let (Some(swept_hour), Some(sweep_hour), None) = (self.swept_hour, sweep.hour, sweep.next)
        else {
            return Ok(0);
        };
        let mut from = swept_hour.min(sweep_hour);
        if let Some(hour) = in_use_from_hour {
            from = from.min(hour);
        }
        // Arrival order is time order to within a second: an hour of slack.
        for oldest in [OLDEST_MESSAGE_NS, OLDEST_LIBC_LOOKUP_NS] {
            if let Some(ns) = oldest_ns(tx, oldest)? {
                from = from.min(ns.div_euclid(NS_PER_HOUR) - 1);
            }
        }
        if let Some(hour) = oldest_lookup_hour(tx)? {
            from = from.min(hour);
        }
        // Used in an hour: `last_hour` at least that hour less one.
        let unused_before = from.saturating_sub(1);
        let mut deleted = 0;
        for table in INTERNED_TABLES {
            let sql = format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
                 WHERE last_hour < ?1 AND id < (SELECT max(id) FROM {table}) LIMIT ?2)"
            );
            deleted += tx.prepare_cached(&sql)?.execute([unused_before, chunk])? as u64;
        }
        Ok(deleted)
    }

    pub fn due(&self, now: Instant, limits: &Limits) -> bool {
        if limits.retain.is_none() && limits.max_db_size.is_none() {
            return false;
        }
        let interval = if self.behind {
            BEHIND_INTERVAL
        } else {
            IDLE_INTERVAL
        };
        self.last
            .is_none_or(|last| now.saturating_duration_since(last) >= interval)
    }

    /// One step, in its own short transaction. `in_use_from_hour`: the oldest
    /// message hour of the ids the writer holds in memory (its caches and the
    /// facts it has not written yet), which must not be deleted.
    pub fn step(
        &mut self,
        conn: &mut Connection,
        limits: &Limits,
        now: Instant,
        now_ns: i64,
        in_use_from_hour: Option<i64>,
    ) -> rusqlite::Result<Step> {
        self.last = Some(now);
        self.behind = false;
        let chunk = limits.chunk.max(1);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The oldest message, and the newest that deleting it takes with it: a
        // chunk goes whole.
        let (min_id, first_end): (Option<i64>, Option<i64>) =
            tx.query_row(OLDEST_MESSAGE_IDS, [], |r| Ok((r.get(0)?, r.get(1)?)))?;

        let cutoff_ns = limits.retain.map(|retain| {
            now_ns.saturating_sub(i64::try_from(retain.as_nanos()).unwrap_or(i64::MAX))
        });
        let mut cut = None;
        if let Some(cutoff_ns) = cutoff_ns {
            cut = tx.query_row(
                "SELECT max(last_id) FROM time_index WHERE minute < ?1",
                [cutoff_ns.div_euclid(NS_PER_MINUTE)],
                |r| r.get::<_, Option<i64>>(0),
            )?;
        }
        let over_size = match limits.max_db_size {
            Some(cap) => used_bytes(&tx)? > cap,
            None => false,
        };
        let mut sweep = self.resolutions;
        let mut lookups = self.lookups;
        let mut step = Step::default();
        if let Some(min_id) = min_id {
            // At most `chunk` messages, or the first chunk when it holds more.
            let most = (min_id + chunk - 1).max(first_end.unwrap_or(min_id));
            if over_size {
                cut = Some(cut.unwrap_or(min_id).max(most));
            }
            let cut = cut.map(|cut| cut.min(most));
            if let Some(cut) = cut.filter(|cut| *cut >= min_id) {
                step.messages = delete_messages(&tx, cut)?;
            }
        }

        // Facts: older than the cut-off, and under size pressure older than the
        // oldest message still kept.
        let mut fact_cut_ns = cutoff_ns;
        if over_size {
            let oldest = match oldest_ns(&tx, OLDEST_MESSAGE_NS)? {
                Some(oldest) => oldest,
                None => oldest_fact_ns(&tx)?.map_or(i64::MIN, |ns| ns + NS_PER_HOUR),
            };
            fact_cut_ns = Some(fact_cut_ns.map_or(oldest, |cut| cut.max(oldest)));
        }
        if let Some(fact_cut_ns) = fact_cut_ns {
            let hour = fact_cut_ns.div_euclid(NS_PER_HOUR);
            step.facts += lookups.step(&tx, &LOOKUPS, hour, chunk)?;
            step.facts += delete_old_libc_lookups(&tx, fact_cut_ns, chunk)?;
            step.facts += sweep.step(&tx, &RESOLUTIONS, hour, chunk)?;
            step.sweeping = sweep.next.is_some() || lookups.next.is_some();
            let new_hour = self.swept_hour != Some(hour);
            // cnames go by `last_ns`, which the cut-off passes within an hour under
            // size pressure; delegations go by hour, so a second sweep in the same
            // hour would find nothing.
            if over_size || new_hour {
                step.facts +=
                    tx.execute("DELETE FROM cnames WHERE last_ns < ?1", [fact_cut_ns])? as u64;
            }
            if new_hour {
                step.facts += tx.execute("DELETE FROM delegations WHERE hour < ?1", [hour])? as u64;
            }
            if new_hour || self.counters_behind {
                let deleted = delete_old_counters(&tx, fact_cut_ns, chunk)?;
                self.counters_behind = deleted >= chunk as u64;
                step.facts += deleted;
            }
            self.swept_hour = Some(hour);
        }
        step.interned = self.collect_interned(&tx, &sweep, in_use_from_hour, chunk)?;
        tx.commit()?;
        // Only now: a step that rolls back walks the same answers again.
        self.resolutions = sweep;
        self.lookups = lookups;
        step.stuck_over_size = over_size && step.messages == 0 && step.facts == 0;
        self.behind = step.messages >= chunk as u64
            || step.facts >= chunk as u64
            || step.interned >= chunk as u64
            || step.sweeping
            || (over_size && !step.stuck_over_size);
        Ok(step)
    }
}

/// The time of the first message / `libc_lookups` row (in arrival order: rowid
/// order is time order to within a second), NULL when empty. Rows of `messages`
/// (from before schema 15) come before every chunk.
const OLDEST_MESSAGE_NS: &str = "SELECT coalesce(\
     (SELECT time_ns FROM messages ORDER BY id LIMIT 1), \
     (SELECT first_ns FROM message_chunks ORDER BY last_id LIMIT 1))";
/// The oldest message's id and the last id of its chunk (itself for a row).
const OLDEST_MESSAGE_IDS: &str = "SELECT \
     coalesce((SELECT min(id) FROM messages), \
              (SELECT first_id FROM message_chunks ORDER BY last_id LIMIT 1)), \
     coalesce((SELECT min(id) FROM messages), (SELECT min(last_id) FROM message_chunks))";
const OLDEST_LIBC_LOOKUP_NS: &str = "SELECT (SELECT time_ns FROM libc_lookups ORDER BY id LIMIT 1)";

/// One of the `OLDEST_*_NS` queries.
fn oldest_ns(tx: &Connection, sql: &str) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached(sql)?.query_row([], |r| r.get(0))
}

/// Tables of interned rows, each with an index on `last_hour` (schema 11).
const INTERNED_TABLES: [&str; 5] = ["names", "rdata", "answer_sets", "processes", "endpoints"];

impl Sweep {
    /// Deletes the rows before `hour` of the next values of `table`'s column:
    /// at most [`SweptTable::per_step`] values, stopping once `chunk` rows are
    /// gone.
    fn step(
        &mut self,
        tx: &Connection,
        table: &SweptTable,
        hour: i64,
        chunk: i64,
    ) -> rusqlite::Result<u64> {
        if self.hour != Some(hour) {
            self.hour = Some(hour);
            self.next = Some(i64::MIN);
        }
        let mut next = tx.prepare_cached(table.next)?;
        let mut delete = tx.prepare_cached(table.delete)?;
        let mut deleted = 0;
        for _ in 0..table.per_step {
            let Some(from) = self.next else {
                break;
            };
            let value: Option<i64> = next.query_row([from], |row| row.get(0)).optional()?;
            let Some(value) = value else {
                self.next = None;
                break;
            };
            if table.bounded {
                let most = chunk - deleted as i64;
                let now = delete.execute([value, hour, most])? as u64;
                deleted += now;
                if now as i64 >= most {
                    // This value may have more: the next step starts with it.
                    self.next = Some(value);
                    break;
                }
            } else {
                deleted += delete.execute([value, hour])? as u64;
            }
            self.next = value.checked_add(1);
            if deleted >= chunk as u64 {
                break;
            }
        }
        Ok(deleted)
    }
}

/// Deletes messages with ids up to `cut` and everything hanging off them; a
/// chunk that holds `cut` but also newer messages is kept whole.
pub(super) fn delete_messages(tx: &Connection, cut: i64) -> rusqlite::Result<u64> {
    let holding: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT first_id, last_id FROM message_chunks WHERE last_id >= ?1 \
             ORDER BY last_id LIMIT 1",
        )?
        .query_row([cut], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let cut = match holding {
        Some((first_id, last_id)) if first_id <= cut && cut < last_id => first_id - 1,
        _ => cut,
    };
    let chunked: i64 = tx.query_row(
        "SELECT coalesce(sum(last_id - first_id + 1), 0) FROM message_chunks WHERE last_id <= ?1",
        [cut],
        |r| r.get(0),
    )?;
    tx.execute("DELETE FROM message_chunks WHERE last_id <= ?1", [cut])?;
    // `main.`: a connection may have unpacked the messages into a TEMP table of
    // that name (chunk::unpack_messages).
    let rows = tx.execute("DELETE FROM main.messages WHERE id <= ?1", [cut])?;
    let deleted = rows as u64 + chunked as u64;
    tx.execute("DELETE FROM malformed WHERE message_id <= ?1", [cut])?;
    tx.execute("DELETE FROM extra_questions WHERE message_id <= ?1", [cut])?;
    tx.execute("DELETE FROM time_index WHERE last_id <= ?1", [cut])?;
    // A minute cut into no longer holds what it counted (schema 10): NULL, so
    // readers count what is left of it from `messages`.
    tx.execute(
        "UPDATE time_index SET first_id = ?1 + 1, messages = NULL, queries = NULL, \
         responses = NULL, malformed = NULL, queries_sent = NULL, answered = NULL, \
         first_ns = NULL, last_ns = NULL WHERE first_id <= ?1",
        [cut],
    )?;
    Ok(deleted)
}

/// Deletes at most `chunk` of the oldest `libc_lookups` rows older than
/// `cut_ns`. The table is in arrival order (rowid ≈ time order) with no index on
/// time: the oldest rowids are looked at, nothing else.
fn delete_old_libc_lookups(tx: &Connection, cut_ns: i64, chunk: i64) -> rusqlite::Result<u64> {
    let deleted = tx
        .prepare_cached(
            "DELETE FROM libc_lookups WHERE id IN \
             (SELECT id FROM libc_lookups ORDER BY id LIMIT ?2) AND time_ns < ?1",
        )?
        .execute([cut_ns, chunk])?;
    Ok(deleted as u64)
}

/// Deletes at most `chunk` `counters` rows older than `cut_ns` (a row every 10
/// s of every run: 4.5 MB a day, which no other step deleted). The newest row
/// of each run before the cut stays: it stands for the run's totals at the
/// cut, so that `dnsq stats` over a window reaching back before it counts from
/// there rather than from the run's start. Runs are few (one a start); each is
/// two seeks into the table's (run_id, time_ns) key.
fn delete_old_counters(tx: &Connection, cut_ns: i64, chunk: i64) -> rusqlite::Result<u64> {
    let runs: Vec<i64> = tx
        .prepare_cached("SELECT id FROM runs WHERE started_ns < ?1 ORDER BY id")?
        .query_map([cut_ns], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut newest_before =
        tx.prepare_cached("SELECT max(time_ns) FROM counters WHERE run_id = ?1 AND time_ns < ?2")?;
    let mut delete = tx.prepare_cached(
        "DELETE FROM counters WHERE run_id = ?1 AND time_ns IN \
         (SELECT time_ns FROM counters WHERE run_id = ?1 AND time_ns < ?2 LIMIT ?3)",
    )?;
    let mut deleted = 0;
    for run in runs {
        let left = chunk - deleted as i64;
        if left <= 0 {
            break;
        }
        let kept: Option<i64> = newest_before.query_row((run, cut_ns), |row| row.get(0))?;
        if let Some(kept) = kept {
            deleted += delete.execute((run, kept, left))? as u64;
        }
    }
    Ok(deleted)
}

/// The oldest hour of `lookups` (by its index on hour). A received answer is a
/// `resolutions` row and a `lookups` row of the same hour, so `resolutions` (no
/// index on hour) is no older.
fn oldest_fact_ns(tx: &Connection) -> rusqlite::Result<Option<i64>> {
    Ok(oldest_lookup_hour(tx)?.map(|hour| hour * NS_PER_HOUR))
}

/// The first hour `lookups` holds (see [`LOOKUPS_HOURS`]).
fn oldest_lookup_hour(tx: &Connection) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached(LOOKUPS_HOURS)?
        .query_row([], |r| r.get::<_, Option<i64>>(0))
}

/// Bytes of the database in use: its pages less the free ones.
pub(super) fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name| conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
    let used = pragma("page_count")? - pragma("freelist_count")?;
    Ok(u64::try_from(used * pragma("page_size")?).unwrap_or(0))
}

/// A duration such as `30d`, `12h`, `1h30m`, `1s`, `500ms` (or ISO 8601 `P30D`);
/// days are 24 hours. `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let hint = "e.g. 30d, 12h, 1s or 500ms";
    let span: jiff::Span = text
        .parse()
        .map_err(|error| format!("invalid duration {text:?} ({hint}): {error}"))?;
    let duration = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|error| format!("invalid duration {text:?} ({hint}): {error}"))?;
    Duration::try_from(duration).map_err(|_| format!("invalid duration {text:?}: negative"))
}

/// `--retain`: a duration; `0` keeps everything forever (`None`).
pub fn parse_retain(text: &str) -> Result<Option<Duration>, String> {
    parse_duration(text).map(|duration| Some(duration).filter(|d| !d.is_zero()))
}

/// `--max-db-size`: bytes with an optional binary suffix, `K`, `M`, `G`, `T`
/// (also `KB`, `KiB`, …; all powers of 1024). `0` means no cap (`None`).
pub fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let invalid = || format!("invalid size {text:?} (e.g. 500M, 2G or 0 for no limit)");
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(invalid()),
    };
    let bytes = number.checked_mul(1 << shift).ok_or_else(invalid)?;
    Ok(Some(bytes).filter(|bytes| *bytes != 0))
}
