//! The fact tables (`resolutions`, `lookups`, `cnames`): aggregated in memory,
//! then upserted, so a name asked a thousand times costs one row write rather
//! than a thousand. Each batch's facts are gathered while its messages are
//! written; the writer keeps those of committed batches for a few seconds (see
//! `StoreOptions::facts_window`; a second when they are few) before upserting
//! them all at once: fact rows sit on random pages of their tables and indexes,
//! and each page a commit touches is written again.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

use rusqlite::{Connection, params, params_from_iter};

use super::schema::{NS_PER_HOUR, RCODE_QUERY};

/// Field order is the table's primary key order: sorted keys are upserted in
/// b-tree order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ResolutionKey {
    pub rdata_id: i64,
    pub hour: i64,
    pub rtype: i64,
    pub name_id: i64,
    pub qname_id: i64,
    pub process_id: i64,
    pub endpoint_id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct LookupKey {
    pub qname_id: i64,
    pub process_id: i64,
    pub role: i64,
    pub qtype: i64,
    pub rcode: i64,
    pub hour: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct DelegationKey {
    pub qname_id: i64,
    pub resolver_process_id: i64,
    pub qtype: i64,
    pub client_process_id: i64,
    pub hour: i64,
}

#[derive(Debug, Clone, Copy)]
struct Delegation {
    seen: Seen,
    upstream: i64,
    cached: i64,
}

/// Fact keys are row ids the writer got from SQLite, not values from the
/// network, so a fast unkeyed hash is safe for them (the FxHash mix).
type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_i64(&mut self, word: i64) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    first_ns: i64,
    last_ns: i64,
    count: i64,
}

impl Seen {
    fn new(time_ns: i64) -> Self {
        Self {
            first_ns: time_ns,
            last_ns: time_ns,
            count: 0,
        }
    }

    fn add(&mut self, other: &Seen) {
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.count += other.count;
    }

    fn at(&mut self, time_ns: i64) {
        self.first_ns = self.first_ns.min(time_ns);
        self.last_ns = self.last_ns.max(time_ns);
    }

    /// `first_offset_ns` and `span_ns` of a fact row of `hour` (schema 14): the
    /// first time from the start of the hour, the last from the first.
    fn offsets(&self, hour: i64) -> (i64, i64) {
        (
            self.first_ns - hour * NS_PER_HOUR,
            self.last_ns - self.first_ns,
        )
    }
}

/// The `DO UPDATE` of an upsert that merges a row's first and last times, kept
/// as offsets (schema 14): the earlier first, and the span from it to the
/// later last. SQLite evaluates every SET expression on the row's old values.
/// A macro, for `concat!`: the statements stay constant strings.
macro_rules! merge_offsets {
    () => {
        "first_offset_ns = min(first_offset_ns, excluded.first_offset_ns), \
         span_ns = max(first_offset_ns + span_ns, excluded.first_offset_ns + excluded.span_ns) \
         - min(first_offset_ns, excluded.first_offset_ns)"
    };
}

#[derive(Debug, Clone, Copy)]
struct Lookup {
    seen: Seen,
    paired: i64,
    latency_sum_ns: i64,
    latency_max_ns: i64,
}

impl Lookup {
    fn unpaired(seen: Seen) -> Self {
        Self {
            seen,
            paired: 0,
            latency_sum_ns: 0,
            latency_max_ns: 0,
        }
    }
}

/// Facts of one batch, or of several merged.
#[derive(Debug)]
pub(super) struct Facts {
    resolutions: IdMap<ResolutionKey, Seen>,
    lookups: IdMap<LookupKey, Lookup>,
    cnames: IdMap<(i64, i64), Seen>,
    delegations: IdMap<DelegationKey, Delegation>,
    /// Earliest and latest message time seen (MAX and MIN while empty).
    first_ns: i64,
    last_ns: i64,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            resolutions: IdMap::default(),
            lookups: IdMap::default(),
            cnames: IdMap::default(),
            delegations: IdMap::default(),
            first_ns: i64::MAX,
            last_ns: i64::MIN,
        }
    }
}

impl Facts {
    /// Distinct facts held.
    pub fn len(&self) -> usize {
        self.resolutions.len() + self.lookups.len() + self.cnames.len() + self.delegations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest message time counted (`None` while empty).
    pub fn first_ns(&self) -> Option<i64> {
        (self.first_ns != i64::MAX).then_some(self.first_ns)
    }

    /// The span of message time these facts and `other`'s cover, in nanoseconds.
    pub fn span_ns(&self, other: &Facts) -> i64 {
        let first = self.first_ns.min(other.first_ns);
        let last = self.last_ns.max(other.last_ns);
        last.saturating_sub(first).max(0)
    }

    fn saw(&mut self, time_ns: i64) {
        self.first_ns = self.first_ns.min(time_ns);
        self.last_ns = self.last_ns.max(time_ns);
    }

    /// Forgets every fact, keeping the maps' room: a batch's facts and the held
    /// ones fill to about the same size again and again, and growing a map
    /// from nothing rehashes it at every doubling.
    pub fn clear(&mut self) {
        self.resolutions.clear();
        self.lookups.clear();
        self.cnames.clear();
        self.delegations.clear();
        self.first_ns = i64::MAX;
        self.last_ns = i64::MIN;
    }

    /// Adds `other`'s counts to these, and empties `other` (see [`Self::clear`]).
    pub fn merge(&mut self, other: &mut Facts) {
        self.saw(other.first_ns);
        self.saw(other.last_ns);
        for (key, seen) in other.resolutions.drain() {
            self.resolutions
                .entry(key)
                .and_modify(|mine| mine.add(&seen))
                .or_insert(seen);
        }
        for (key, seen) in other.cnames.drain() {
            self.cnames
                .entry(key)
                .and_modify(|mine| mine.add(&seen))
                .or_insert(seen);
        }
        for (key, delegation) in other.delegations.drain() {
            self.delegations
                .entry(key)
                .and_modify(|mine| {
                    mine.seen.add(&delegation.seen);
                    mine.upstream += delegation.upstream;
                    mine.cached += delegation.cached;
                })
                .or_insert(delegation);
        }
        for (key, lookup) in other.lookups.drain() {
            self.lookups
                .entry(key)
                .and_modify(|mine| {
                    mine.seen.add(&lookup.seen);
                    mine.paired += lookup.paired;
                    mine.latency_sum_ns = mine.latency_sum_ns.saturating_add(lookup.latency_sum_ns);
                    mine.latency_max_ns = mine.latency_max_ns.max(lookup.latency_max_ns);
                })
                .or_insert(lookup);
        }
        other.clear();
    }

    pub fn resolution(&mut self, key: ResolutionKey, time_ns: i64) {
        self.saw(time_ns);
        let seen = self
            .resolutions
            .entry(key)
            .or_insert_with(|| Seen::new(time_ns));
        seen.at(time_ns);
        seen.count += 1;
    }

    /// A message: a query on its [`RCODE_QUERY`] row, a response on its rcode's
    /// row (`latency_ns` when it answered a query the pairer saw).
    pub fn lookup(&mut self, key: LookupKey, time_ns: i64, latency_ns: Option<i64>) {
        self.saw(time_ns);
        let lookup = self
            .lookups
            .entry(key)
            .or_insert_with(|| Lookup::unpaired(Seen::new(time_ns)));
        lookup.seen.at(time_ns);
        lookup.seen.count += 1;
        if let Some(latency) = latency_ns {
            lookup.paired += 1;
            lookup.latency_sum_ns = lookup.latency_sum_ns.saturating_add(latency);
            lookup.latency_max_ns = lookup.latency_max_ns.max(latency);
        }
    }

    /// A query (`query`: its [`RCODE_QUERY`] row) was answered: it is counted on
    /// the response's row from now on (as `paired`), so it leaves the query row.
    /// Usually the query is still here and the two cancel, and a query row that
    /// falls to nothing is not written; when the query's row was written with an
    /// earlier flush, the negative count is taken off the stored row.
    pub fn answered(&mut self, query: LookupKey) {
        debug_assert_eq!(query.rcode, RCODE_QUERY);
        let lookup = self.lookups.entry(query).or_insert_with(|| {
            // Not seen at any time: the stored row keeps its first and last.
            Lookup::unpaired(Seen {
                first_ns: i64::MAX,
                last_ns: i64::MIN,
                count: 0,
            })
        });
        lookup.seen.count -= 1;
    }

    /// A local resolver answered a local client, from upstream or from its cache.
    pub fn delegation(&mut self, key: DelegationKey, time_ns: i64, from_cache: bool) {
        self.saw(time_ns);
        let delegation = self.delegations.entry(key).or_insert_with(|| Delegation {
            seen: Seen::new(time_ns),
            upstream: 0,
            cached: 0,
        });
        delegation.seen.at(time_ns);
        delegation.seen.count += 1;
        if from_cache {
            delegation.cached += 1;
        } else {
            delegation.upstream += 1;
        }
    }

    /// `name_id` is an alias of `target_id`.
    pub fn cname(&mut self, target_id: i64, name_id: i64, time_ns: i64) {
        self.saw(time_ns);
        let seen = self
            .cnames
            .entry((target_id, name_id))
            .or_insert_with(|| Seen::new(time_ns));
        seen.at(time_ns);
        seen.count += 1;
    }

    /// Adds the batch's facts to the tables.
    pub fn upsert(&self, tx: &Connection) -> rusqlite::Result<()> {
        let mut resolutions = tx.prepare_cached(concat!(
            "INSERT INTO resolutions (rdata_id, hour, rtype, name_id, qname_id, process_id, \
                 endpoint_id, first_offset_ns, span_ns, count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (rdata_id, hour, rtype, name_id, qname_id, process_id, endpoint_id) \
                 DO UPDATE SET ",
            merge_offsets!(),
            ", count = count + excluded.count"
        ))?;
        for (key, seen) in sorted(&self.resolutions) {
            let (first_offset_ns, span_ns) = seen.offsets(key.hour);
            resolutions.execute(params![
                key.rdata_id,
                key.hour,
                key.rtype,
                key.name_id,
                key.qname_id,
                key.process_id,
                key.endpoint_id,
                first_offset_ns,
                span_ns,
                seen.count,
            ])?;
        }
        let mut lookups = tx.prepare_cached(concat!(
            "INSERT INTO lookups (process_id, hour, role, qname_id, qtype, rcode, count, \
                 paired, latency_sum_ns, latency_max_ns, first_offset_ns, span_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (qname_id, process_id, role, qtype, rcode, hour) \
                 DO UPDATE SET count = count + excluded.count, paired = paired + excluded.paired, \
                 latency_sum_ns = latency_sum_ns + excluded.latency_sum_ns, \
                 latency_max_ns = max(latency_max_ns, excluded.latency_max_ns), ",
            merge_offsets!()
        ))?;
        // Query rows whose queries were answered after the row was written (the
        // query and its response fell in different flushes): their queries move
        // to the response rows, and a row left with none is deleted.
        let mut unanswer = tx.prepare_cached(
            "UPDATE lookups SET count = count + ?7 \
             WHERE qname_id = ?1 AND process_id = ?2 AND role = ?3 AND qtype = ?4 \
             AND rcode = ?5 AND hour = ?6",
        )?;
        let mut forget = tx.prepare_cached(
            "DELETE FROM lookups WHERE qname_id = ?1 AND process_id = ?2 AND role = ?3 \
             AND qtype = ?4 AND rcode = ?5 AND hour = ?6 AND count <= 0",
        )?;
        for (key, lookup) in sorted(&self.lookups) {
            let count = lookup.seen.count;
            if count == 0 && lookup.paired == 0 {
                // Queries answered within this flush: nothing left to count.
                continue;
            }
            if count < 0 {
                let row = [
                    key.qname_id,
                    key.process_id,
                    key.role,
                    key.qtype,
                    key.rcode,
                    key.hour,
                ];
                unanswer.execute(params_from_iter(row.iter().chain([&count])))?;
                forget.execute(row)?;
                continue;
            }
            let (first_offset_ns, span_ns) = lookup.seen.offsets(key.hour);
            lookups.execute(params![
                key.process_id,
                key.hour,
                key.role,
                key.qname_id,
                key.qtype,
                key.rcode,
                lookup.seen.count,
                lookup.paired,
                lookup.latency_sum_ns,
                lookup.latency_max_ns,
                first_offset_ns,
                span_ns,
            ])?;
        }
        let mut cnames = tx.prepare_cached(
            "INSERT INTO cnames (target_id, name_id, first_ns, last_ns, count) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (target_id, name_id) \
             DO UPDATE SET first_ns = min(first_ns, excluded.first_ns), \
             last_ns = max(last_ns, excluded.last_ns), count = count + excluded.count",
        )?;
        let mut delegations = tx.prepare_cached(concat!(
            "INSERT INTO delegations (resolver_process_id, hour, qname_id, qtype, \
                 client_process_id, upstream, cached, first_offset_ns, span_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (qname_id, resolver_process_id, qtype, client_process_id, hour) \
                 DO UPDATE SET upstream = upstream + excluded.upstream, \
                 cached = cached + excluded.cached, ",
            merge_offsets!()
        ))?;
        for (key, delegation) in sorted(&self.delegations) {
            let (first_offset_ns, span_ns) = delegation.seen.offsets(key.hour);
            delegations.execute(params![
                key.resolver_process_id,
                key.hour,
                key.qname_id,
                key.qtype,
                key.client_process_id,
                delegation.upstream,
                delegation.cached,
                first_offset_ns,
                span_ns,
            ])?;
        }
        for ((target_id, name_id), seen) in sorted(&self.cnames) {
            cnames.execute(params![
                target_id,
                name_id,
                seen.first_ns,
                seen.last_ns,
                seen.count
            ])?;
        }
        Ok(())
    }
}

/// Entries in key order: consecutive upserts then touch neighbouring pages.
fn sorted<K: Ord, V>(map: &IdMap<K, V>) -> Vec<(&K, &V)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}
