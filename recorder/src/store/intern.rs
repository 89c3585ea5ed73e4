//! Repeated strings and identities stored once: `names`, `rdata`, `answer_sets`,
//! `processes`, `endpoints`. In-memory caches answer for values already stored;
//! a miss costs an `INSERT … ON CONFLICT DO NOTHING RETURNING id` (the common
//! case for a miss: the value is new) and, when another batch had it, a SELECT.
//!
//! The caches use the standard library's randomly keyed hasher: names and answer
//! data come from the network, and a fixed hash could be flooded.
//!
//! Each row's `last_hour` (schema 11) is raised to the current message hour
//! whenever the database is asked for it, and the caches start empty at each new
//! message hour, so every row used in an hour is asked for in it: a row whose
//! `last_hour` is older than every row that could refer to it is unused, and
//! retention deletes it (see `retention::collect_interned`).

use std::{borrow::Cow, collections::VecDeque, net::IpAddr, sync::Arc};

use foldhash::HashMap;
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use super::insert::Made;
use crate::record::{Attribution, DnsContent, ProcessInfo};

/// Entries each cache holds before it starts again empty (the database is the
/// truth; the caches only spare it the look-ups of recurring values).
const CACHE_LIMIT: usize = 200_000;
/// Contents whose columns are kept ([`Caches::made`]): as many as the decoder
/// keeps decodings to share.
const MADE_LIMIT: usize = crate::dns::RecentDecodes::KEPT;
/// Processes compared field by field before the keyed cache.
const RECENT_PROCESSES: usize = 8;

/// The interfaces seen with one (local, remote, ifindex), and their endpoint rows.
type Interfaces = Vec<(Option<String>, i64)>;

/// A process identity's row and what a message's columns take from the identity
/// (see [`Interner::process_row`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct ProcessRow {
    pub id: i64,
    pub attribution: Option<Attribution>,
    pub cgroup_id: Option<u64>,
}

/// The row of the recent process at `at`, moved one step to the front (a swap,
/// not a shift): the processes in use gather there.
fn step_forward(recent: &mut VecDeque<(Arc<ProcessInfo>, ProcessRow)>, at: usize) -> ProcessRow {
    if at > 0 {
        recent.swap(at - 1, at);
        return recent[at - 1].1;
    }
    recent[at].1
}

/// Ids of rows already in the database. Cleared whenever a transaction rolls
/// back, since ids handed out inside it no longer exist, and at each new message
/// hour (see the module's documentation).
#[derive(Default)]
pub(super) struct Caches {
    /// The newest message hour interned for (`None` after clearing): what
    /// `last_hour` is set to.
    hour: Option<i64>,
    names: HashMap<String, i64>,
    rdata: HashMap<String, i64>,
    answer_sets: HashMap<String, i64>,
    processes: HashMap<String, i64>,
    /// The last processes seen: most messages come from a few, and comparing
    /// them spares building their key. The records' own shared identities, so
    /// that the same one is recognised by its address before its contents.
    recent_processes: VecDeque<(Arc<ProcessInfo>, ProcessRow)>,
    endpoints: HashMap<(IpAddr, IpAddr, u32), Interfaces>,
    /// Process row → the same process without its thread (see `fact_process`).
    thread_less: HashMap<i64, i64>,
    /// The last value of each kind, compared before hashing.
    last_name: Last,
    last_rdata: Last,
    last_answer_set: Last,
    last_thread_less: Option<(i64, i64)>,
    last_endpoint: LastEndpoint,
    /// What messages were made into, by the address of their shared content.
    made: HashMap<usize, Made>,
}

/// The last endpoint looked up: (local, remote, ifindex, row) and interface.
#[derive(Default)]
struct LastEndpoint {
    key: Option<(IpAddr, IpAddr, u32, i64)>,
    interface: Option<String>,
}

impl LastEndpoint {
    fn get(
        &self,
        local: IpAddr,
        remote: IpAddr,
        ifindex: u32,
        interface: Option<&str>,
    ) -> Option<i64> {
        match self.key {
            Some((l, r, i, id))
                if (l, r, i) == (local, remote, ifindex)
                    && self.interface.as_deref() == interface =>
            {
                Some(id)
            }
            _ => None,
        }
    }

    fn set(
        &mut self,
        local: IpAddr,
        remote: IpAddr,
        ifindex: u32,
        interface: Option<&str>,
        id: i64,
    ) {
        self.key = Some((local, remote, ifindex, id));
        match (interface, &mut self.interface) {
            (Some(name), Some(kept)) => {
                kept.clear();
                kept.push_str(name);
            }
            (name, kept) => *kept = name.map(str::to_owned),
        }
    }
}

/// The last value looked up in one cache and its id. A response's answers
/// repeat its question's name, and the messages of one exchange (query and
/// answer, on both sides of a local resolver) follow each other: a comparison
/// spares hashing the value again.
#[derive(Default)]
struct Last {
    value: String,
    id: Option<i64>,
}

impl Last {
    fn get(&self, value: &str) -> Option<i64> {
        self.id.filter(|_| self.value == value)
    }

    fn set(&mut self, value: &str, id: i64) {
        self.value.clear();
        self.value.push_str(value);
        self.id = Some(id);
    }
}

impl Caches {
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The message hour the cached rows were last marked used in.
    pub fn hour(&self) -> Option<i64> {
        self.hour
    }
}

/// The caches and the statements behind them, for one transaction.
pub(super) struct Interner<'a> {
    caches: &'a mut Caches,
    insert_name: CachedStatement<'a>,
    insert_rdata: CachedStatement<'a>,
    insert_answer_set: CachedStatement<'a>,
    insert_process: CachedStatement<'a>,
    insert_endpoint: CachedStatement<'a>,
    select_endpoint: CachedStatement<'a>,
}

impl<'a> Interner<'a> {
    pub fn new(tx: &'a Connection, caches: &'a mut Caches) -> rusqlite::Result<Self> {
        Ok(Self {
            caches,
            insert_name: tx.prepare_cached(
                "INSERT INTO names (name, last_hour) VALUES (?1, ?2) ON CONFLICT (name) \
                 DO UPDATE SET last_hour = max(coalesce(last_hour, ?2), ?2) RETURNING id",
            )?,
            insert_rdata: tx.prepare_cached(
                "INSERT INTO rdata (data, last_hour) VALUES (?1, ?2) ON CONFLICT (data) \
                 DO UPDATE SET last_hour = max(coalesce(last_hour, ?2), ?2) RETURNING id",
            )?,
            insert_answer_set: tx.prepare_cached(
                "INSERT INTO answer_sets (records, last_hour) VALUES (?1, ?2) \
                 ON CONFLICT (records) \
                 DO UPDATE SET last_hour = max(coalesce(last_hour, ?2), ?2) RETURNING id",
            )?,
            insert_process: tx.prepare_cached(
                "INSERT INTO processes (pid, tid, uid, gid, comm, exe, cgroup_id, cgroup, netns, \
                 thread, key, last_hour) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (key) \
                 DO UPDATE SET last_hour = max(coalesce(last_hour, ?12), ?12) RETURNING id",
            )?,
            // Endpoints are looked up (and marked used) before they are inserted:
            // UNIQUE does not stop rows that differ only by a NULL interface.
            select_endpoint: tx.prepare_cached(
                "UPDATE endpoints SET last_hour = max(coalesce(last_hour, ?5), ?5) \
                 WHERE local_ip = ?1 AND remote_ip = ?2 AND ifindex = ?3 AND interface IS ?4 \
                 RETURNING id",
            )?,
            insert_endpoint: tx.prepare_cached(
                "INSERT INTO endpoints (local_ip, remote_ip, ifindex, interface, last_hour) \
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )?,
        })
    }

    /// What a message with this content was made into, since the caches last
    /// started empty.
    pub fn made(&self, content: &Arc<DnsContent>) -> Option<&Made> {
        self.caches.made.get(&content_key(content))
    }

    pub fn remember_made(&mut self, made: Made) {
        let key = content_key(&made.content);
        remember(&mut self.caches.made, key, made, MADE_LIMIT);
    }

    /// Marks what follows as used in message hour `hour`: at a newer hour than
    /// the caches', they start again empty, so that each row used is asked for
    /// (and marked) in the database again.
    pub fn at_hour(&mut self, hour: i64) {
        if self.caches.hour.is_none_or(|cached| hour > cached) {
            self.caches.clear();
            self.caches.hour = Some(hour);
        }
    }

    /// A DNS name, lower-cased (names compare without regard to ASCII case,
    /// RFC 4343).
    pub fn name(&mut self, name: &str) -> rusqlite::Result<i64> {
        let name = lower(name);
        if let Some(id) = self.caches.last_name.get(&name) {
            return Ok(id);
        }
        let id = match self.caches.names.get(name.as_ref()) {
            Some(&id) => id,
            None => {
                let id = intern(&mut self.insert_name, &name, self.caches.hour)?;
                remember(
                    &mut self.caches.names,
                    name.as_ref().to_owned(),
                    id,
                    CACHE_LIMIT,
                );
                id
            }
        };
        self.caches.last_name.set(&name, id);
        Ok(id)
    }

    pub fn rdata(&mut self, data: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.caches.last_rdata.get(data) {
            return Ok(id);
        }
        let id = match self.caches.rdata.get(data) {
            Some(&id) => id,
            None => {
                let id = intern(&mut self.insert_rdata, data, self.caches.hour)?;
                remember(&mut self.caches.rdata, data.to_owned(), id, CACHE_LIMIT);
                id
            }
        };
        self.caches.last_rdata.set(data, id);
        Ok(id)
    }

    pub fn answer_set(&mut self, records: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.caches.last_answer_set.get(records) {
            return Ok(id);
        }
        let id = match self.caches.answer_sets.get(records) {
            Some(&id) => id,
            None => {
                let id = intern(&mut self.insert_answer_set, records, self.caches.hour)?;
                remember(
                    &mut self.caches.answer_sets,
                    records.to_owned(),
                    id,
                    CACHE_LIMIT,
                );
                id
            }
        };
        self.caches.last_answer_set.set(records, id);
        Ok(id)
    }

    /// `None` when the process is unknown (no pid).
    /// The process as the fact tables count it: without the thread. A resolving
    /// library's worker threads would otherwise multiply every fact row (and the
    /// time `dnsq by-process` takes to add them up).
    pub fn fact_process(
        &mut self,
        id: Option<i64>,
        process: &ProcessInfo,
    ) -> rusqlite::Result<Option<i64>> {
        let Some(id) = id else {
            return Ok(None);
        };
        // The cached answers first, which spare reading `process` (see
        // `process_row`): only a row with a thread is ever a key of them.
        match self.caches.last_thread_less {
            Some((last, fact)) if last == id => return Ok(Some(fact)),
            _ => {}
        }
        if let Some(&fact) = self.caches.thread_less.get(&id) {
            self.caches.last_thread_less = Some((id, fact));
            return Ok(Some(fact));
        }
        if process.tid.is_none() && process.thread.is_none() {
            return Ok(Some(id));
        }
        let whole = Arc::new(ProcessInfo {
            tid: None,
            thread: None,
            ..process.clone()
        });
        let fact = self.process(&whole)?;
        if let Some(fact) = fact {
            if self.caches.thread_less.len() >= 65_536 {
                self.caches.thread_less.clear();
            }
            self.caches.thread_less.insert(id, fact);
            self.caches.last_thread_less = Some((id, fact));
        }
        Ok(fact)
    }

    pub fn process(&mut self, process: &Arc<ProcessInfo>) -> rusqlite::Result<Option<i64>> {
        Ok(self.process_row(process)?.map(|row| row.id))
    }

    /// The row of `process` (`None` for an identity without a pid), with what a
    /// message's columns take from it. A recent identity is recognised by its
    /// address alone, without reading it: the pipeline's thread shares it and
    /// bumps its reference count for every message, and reading it from here
    /// moved that cache line between the cores twice a message.
    pub fn process_row(
        &mut self,
        process: &Arc<ProcessInfo>,
    ) -> rusqlite::Result<Option<ProcessRow>> {
        let recent = &mut self.caches.recent_processes;
        if let Some(at) = recent
            .iter()
            .position(|(seen, _)| Arc::ptr_eq(seen, process))
        {
            return Ok(Some(step_forward(recent, at)));
        }
        // Identities without a pid are never kept.
        let Some(pid) = process.pid else {
            return Ok(None);
        };
        if let Some(at) = recent.iter().position(|(seen, _)| seen == process) {
            // An equal identity built anew (the pipeline rebuilds them now and
            // then): keep the new one, which the next messages share.
            recent[at].0 = Arc::clone(process);
            return Ok(Some(step_forward(recent, at)));
        }
        let uid = process.uid.map_or(-1, i64::from);
        let gid = process.gid.map_or(-1, i64::from);
        let comm = process.comm.as_deref().unwrap_or("");
        let cgroup_id = process.cgroup_id.map(|id| id as i64);
        let netns = process.netns.map(|id| id as i64);
        // Canonical text of every column: a JSON array, so no value can run into
        // the next.
        let key = serde_json::json!([
            pid,
            process.tid,
            uid,
            gid,
            comm,
            process.exe,
            cgroup_id,
            process.cgroup,
            netns,
            process.thread,
        ])
        .to_string();
        let id = match self.caches.processes.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.insert_process.query_row(
                    params![
                        pid,
                        process.tid,
                        uid,
                        gid,
                        comm,
                        process.exe,
                        cgroup_id,
                        process.cgroup,
                        netns,
                        process.thread,
                        key,
                        self.caches.hour,
                    ],
                    |row| row.get(0),
                )?;
                remember(&mut self.caches.processes, key, id, CACHE_LIMIT);
                id
            }
        };
        let row = ProcessRow {
            id,
            attribution: process.attribution,
            cgroup_id: process.cgroup_id,
        };
        let recent = &mut self.caches.recent_processes;
        recent.truncate(RECENT_PROCESSES - 1);
        recent.push_front((Arc::clone(process), row));
        Ok(Some(row))
    }

    pub fn endpoint(
        &mut self,
        local: IpAddr,
        remote: IpAddr,
        ifindex: u32,
        interface: Option<&str>,
    ) -> rusqlite::Result<i64> {
        if let Some(id) = self
            .caches
            .last_endpoint
            .get(local, remote, ifindex, interface)
        {
            return Ok(id);
        }
        let known = self.caches.endpoints.get(&(local, remote, ifindex));
        if let Some(&(_, id)) =
            known.and_then(|seen| seen.iter().find(|(name, _)| name.as_deref() == interface))
        {
            self.caches
                .last_endpoint
                .set(local, remote, ifindex, interface, id);
            return Ok(id);
        }
        let (local_ip, remote_ip) = (ip_bytes(local), ip_bytes(remote));
        let hour = self.caches.hour;
        let existing = self
            .select_endpoint
            .query_row(
                params![local_ip, remote_ip, ifindex, interface, hour],
                |row| row.get(0),
            )
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => self.insert_endpoint.query_row(
                params![local_ip, remote_ip, ifindex, interface, hour],
                |row| row.get(0),
            )?,
        };
        if self.caches.endpoints.len() >= CACHE_LIMIT {
            self.caches.endpoints.clear();
        }
        self.caches
            .endpoints
            .entry((local, remote, ifindex))
            .or_default()
            .push((interface.map(str::to_owned), id));
        self.caches
            .last_endpoint
            .set(local, remote, ifindex, interface, id);
        Ok(id)
    }
}

/// The id of `value` in a table of unique strings: inserted when new, its
/// `last_hour` raised when another batch already had it.
fn intern(
    upsert: &mut CachedStatement<'_>,
    value: &str,
    hour: Option<i64>,
) -> rusqlite::Result<i64> {
    upsert.query_row(params![value, hour], |row| row.get(0))
}

/// `value` under `key`, in a cache that starts again empty at `limit` entries.
fn remember<K: Eq + std::hash::Hash, V>(cache: &mut HashMap<K, V>, key: K, value: V, limit: usize) {
    if cache.len() >= limit {
        cache.clear();
    }
    cache.insert(key, value);
}

/// [`Caches::made`]'s key: the shared content's address (the entry holds the
/// content, so the address is not reused while it is there).
fn content_key(content: &Arc<DnsContent>) -> usize {
    Arc::as_ptr(content) as usize
}

fn lower(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}
