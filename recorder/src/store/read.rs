//! The read side of the store, for `dnsq` and anything else that reads the history:
//! opening the database read-only, turning a time range into a rowid range through
//! `time_index`, and rebuilding whole [`MessageRecord`](crate::record::MessageRecord)s from the interned rows —
//! the same JSON `dnsq-recorder --print` writes.
//!
//! Reading never gets in the writer's way: the store is in WAL mode, every call is
//! its own short read transaction, and the interned rows (names, rdata, processes,
//! endpoints, answer sets) go through small caches of fixed size, so streaming
//! millions of messages runs in constant memory.
//!
//! Rows written under schema 1 have no thread name (`process.thread` is then
//! absent); `socket_cgroup_id` is stored only when it differs from the process's
//! cgroup id, and comes back as that otherwise (0 when neither is known).
//!
//! Schema 2 and 3 stores are both read. What schema 3 added — the `delegations`
//! facts and the messages' resolver links (`via`, `on_behalf_of`) — is simply
//! absent from a schema 2 store: see [`Reader::has_delegations`]. The store keeps
//! one process of `on_behalf_of` (the first), and neither its nor `via`'s
//! attribution (`None` when read back), nor `from_cache` (absent; the
//! `delegations` facts count what was answered from a resolver's cache).

use std::{
    cell::RefCell,
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    rc::Rc,
};

use rusqlite::{Connection, OptionalExtension};

use self::{cache::Caches, open::Features};
use super::schema::{self, MinuteCounts, NS_PER_MINUTE};
use crate::service::{CgroupOwner, Container, owner_of_cgroup};

mod cache;
mod calls;
mod open;
mod rebuild;

pub use calls::{CallQuery, StoredCall};
pub use rebuild::{MessageRow, QuestionRef, RecordRef};

/// The names of DNS codes, exactly as the decoder writes them.
pub use crate::dns::{class_name, opcode_name, rcode_name, type_name};

/// Why the store could not be read. Everything but [`ReadError::Sqlite`] and
/// [`ReadError::Corrupt`] happens in [`Reader::open`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("{}: no such file (is the recorder writing elsewhere? see --db / DNSQ_DB)", .path.display())]
    Missing { path: PathBuf },
    #[error("{}: permission denied: reading needs read access to the file (and to its -wal and -shm files while the recorder runs)", .path.display())]
    PermissionDenied { path: PathBuf },
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not an SQLite database", .path.display())]
    NotADatabase { path: PathBuf },
    #[error("{}: an empty database (has the recorder run yet?)", .path.display())]
    NoSchema { path: PathBuf },
    #[error("{}: another program's SQLite database, not a dnsq store", .path.display())]
    Foreign { path: PathBuf },
    #[error("{}: database is schema {found}, this dnsq reads schema {expected} and later: run the recorder once to upgrade it", .path.display())]
    SchemaTooOld {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{}: database is schema {found}, newer than the schema {expected} this dnsq reads: this dnsq is too old", .path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{}: cannot open its write-ahead log read-only ({error}): its -wal and -shm files exist while the recorder runs; while it is stopped, reading needs write access to {}", .path.display(), .dir.display())]
    WalUnavailable {
        path: PathBuf,
        dir: PathBuf,
        error: rusqlite::Error,
    },
    /// Self-contained messages: the SQLite error is part of the text, not a
    /// `source`, so that printing the error chain does not repeat it.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("inconsistent database: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for ReadError {
    fn from(error: rusqlite::Error) -> Self {
        ReadError::Sqlite(error)
    }
}

/// A time range `[since, until)` in ns; `None`: no bound.
pub type TimeRange = (Option<i64>, Option<i64>);

/// Message rowids, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub first: i64,
    pub last: i64,
}

/// Which messages [`Reader::messages`] visits.
#[derive(Clone, Copy, Debug)]
pub struct MessageQuery<'a> {
    pub ids: IdRange,
    /// Only messages with `since_ns <= time_ns < until_ns`.
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// Visit from the newest rowid down.
    pub newest_first: bool,
    /// Only the messages of these processes (checked before a message is
    /// rebuilt, so the others cost almost nothing).
    pub processes: Option<&'a ProcessFilter>,
}

impl MessageQuery<'_> {
    pub fn ids(ids: IdRange) -> Self {
        Self {
            ids,
            since_ns: None,
            until_ns: None,
            newest_first: false,
            processes: None,
        }
    }
}

/// A set of processes, for [`MessageQuery::processes`].
#[derive(Clone, Debug, Default)]
pub struct ProcessFilter {
    /// `processes.id`s.
    pub process_ids: HashSet<i64>,
    /// cgroup ids: a message whose process is unknown matches when its socket's
    /// cgroup is one of these.
    pub socket_cgroup_ids: HashSet<u64>,
}

/// Integer ids as the list of an SQL `IN (…)`, in order: digits, `-` and `,`.
pub fn sql_id_list(ids: impl IntoIterator<Item = i64>) -> String {
    let mut sorted: Vec<i64> = ids.into_iter().collect();
    sorted.sort_unstable();
    let mut text = String::with_capacity(sorted.len() * 6);
    for (index, id) in sorted.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&id.to_string());
    }
    text
}

impl ProcessFilter {
    /// `AND (process_id IN (…) OR (process_id IS NULL AND socket_cgroup_id IN
    /// (…)))`: [`ProcessFilter::matches`] as SQL on `messages` rows.
    pub fn sql(&self) -> String {
        format!(
            " AND (process_id IN ({}) OR (process_id IS NULL AND socket_cgroup_id IN ({})))",
            sql_id_list(self.process_ids.iter().copied()),
            sql_id_list(self.socket_cgroup_ids.iter().map(|&id| id as i64)),
        )
    }

    /// Whether a message with this `process_id` and stored `socket_cgroup_id`
    /// matches.
    pub fn matches(&self, process_id: Option<i64>, socket_cgroup_id: Option<i64>) -> bool {
        match process_id {
            Some(id) => self.process_ids.contains(&id),
            None => {
                socket_cgroup_id.is_some_and(|id| self.socket_cgroup_ids.contains(&(id as u64)))
            }
        }
    }
}

/// A row of `processes`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredProcess {
    pub pid: u32,
    pub tid: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Empty when unknown.
    pub comm: String,
    /// The name of the thread that sent or received (schema 2 on).
    pub thread: Option<String>,
    pub exe: Option<String>,
    pub cgroup_id: Option<u64>,
    pub cgroup: Option<String>,
    pub netns: Option<u64>,
    /// The unit and container `cgroup` names (worked out once per row read).
    pub owner: CgroupOwner,
    /// `owner.container` in full ([`crate::service::Container::full`]), made once.
    pub container: Option<String>,
}

/// A row of `endpoints`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEndpoint {
    pub local_ip: IpAddr,
    pub remote_ip: IpAddr,
    pub ifindex: u32,
    pub interface: Option<String>,
}

/// A read-only connection to the store.
pub struct Reader {
    conn: Connection,
    path: PathBuf,
    features: Features,
    cache: RefCell<Caches>,
}

impl Reader {
    /// Opens `path` read-only (`SQLITE_OPEN_READ_ONLY`, `PRAGMA query_only`) and
    /// checks that it is a dnsq store of a schema this reads: 2 up to
    /// [`schema::SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let owned = || path.to_path_buf();
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Err(ReadError::NotADatabase { path: owned() }),
            Ok(_) => {}
            Err(e) => return Err(open::io_error(path, e)),
        }
        // SQLite reports an unreadable file as "unable to open"; say what it is.
        if let Err(e) = std::fs::File::open(path) {
            return Err(open::io_error(path, e));
        }
        let conn = match open::connect(path, false) {
            Err(ReadError::Sqlite(first)) if open::is_cantopen(&first) => {
                // The WAL index could not be created beside a database whose
                // directory this user may not write. Try once more through a
                // `mode=ro` URI (never `immutable`, which would read a file the
                // recorder is changing as if it could not change).
                open::connect(path, true).map_err(|e| match e {
                    ReadError::Sqlite(error) => ReadError::WalUnavailable {
                        path: owned(),
                        dir: path
                            .parent()
                            .filter(|p| !p.as_os_str().is_empty())
                            .unwrap_or(Path::new("."))
                            .to_path_buf(),
                        error,
                    },
                    other => other,
                })?
            }
            other => other?,
        };
        let features = open::check_schema(&conn, path)?;
        Ok(Self {
            conn,
            path: owned(),
            features,
            cache: RefCell::new(Caches::new()),
        })
    }

    /// The connection, for queries of the fact tables.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's schema version (`PRAGMA user_version` when opened).
    pub fn schema_version(&self) -> u32 {
        self.features.version
    }

    /// Whether the store has the `delegations` facts (schema 3: which local
    /// resolver answered which local client).
    pub fn has_delegations(&self) -> bool {
        self.features.delegations
    }

    /// Whether messages carry their resolver links (`via_process_id`,
    /// `for_process_id`; schema 3).
    pub fn has_message_peers(&self) -> bool {
        self.features.message_peers
    }

    /// Whether `libc_lookups` rows keep what each call returned (schema 13).
    pub fn has_libc_returns(&self) -> bool {
        self.features.libc_returns
    }

    /// The newest message's rowid.
    pub fn max_id(&self) -> Result<Option<i64>, ReadError> {
        Ok(self.id_bounds()?.1)
    }

    /// The oldest and the newest message's rowid.
    fn id_bounds(&self) -> Result<(Option<i64>, Option<i64>), ReadError> {
        let sql = if self.features.message_chunks {
            schema::MESSAGE_ID_BOUNDS
        } else {
            // Two subqueries: each is one rowid b-tree lookup, where the combined
            // form scans the whole table.
            "SELECT (SELECT MIN(id) FROM messages), (SELECT MAX(id) FROM messages)"
        };
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?)
    }

    /// The rowids that can hold messages with `since_ns <= time_ns < until_ns`:
    /// `time_index` has a row a minute; the range is widened by a minute on each
    /// side (arrival order is time order only to within a second), so callers
    /// filter on `time_ns` too ([`MessageQuery`] does). `None`: no messages there.
    pub fn id_range(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<Option<IdRange>, ReadError> {
        let (min_id, max_id) = self.id_bounds()?;
        let (Some(min_id), Some(max_id)) = (min_id, max_id) else {
            return Ok(None);
        };
        let newest: Option<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT minute, last_id FROM time_index ORDER BY minute DESC LIMIT 1")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let Some((newest_minute, newest_indexed)) = newest else {
            // No index yet: every message is a candidate.
            return Ok(Some(IdRange {
                first: min_id,
                last: max_id,
            }));
        };
        let first = match since_ns {
            None => min_id,
            Some(since) => {
                let minute = since.div_euclid(NS_PER_MINUTE).saturating_sub(1);
                self.conn
                    .prepare_cached(
                        "SELECT first_id FROM time_index WHERE minute >= ?1 ORDER BY minute LIMIT 1",
                    )?
                    .query_row([minute], |row| row.get::<_, i64>(0))
                    .optional()?
                    // Everything indexed is older: only what the index has not
                    // caught up with yet can match.
                    .unwrap_or(newest_indexed.saturating_add(1))
            }
        };
        let last = match until_ns {
            None => max_id,
            Some(until) => {
                let minute = until
                    .saturating_sub(1)
                    .div_euclid(NS_PER_MINUTE)
                    .saturating_add(1);
                if minute >= newest_minute {
                    max_id
                } else {
                    match self
                        .conn
                        .prepare_cached(
                            "SELECT last_id FROM time_index WHERE minute <= ?1 \
                             ORDER BY minute DESC LIMIT 1",
                        )?
                        .query_row([minute], |row| row.get::<_, i64>(0))
                        .optional()?
                    {
                        Some(id) => id,
                        None => return Ok(None),
                    }
                }
            }
        };
        let (first, last) = (first.max(min_id), last.min(max_id));
        Ok((first <= last).then_some(IdRange { first, last }))
    }

    /// The message counts of the window `since_ns <= time_ns < until_ns` that
    /// `time_index` holds (schema 10): those of its counted minutes that lie
    /// wholly inside the window, summed. Also the parts of the window those
    /// minutes do not cover (the partial minutes at its ends, minutes not
    /// counted), as `[since, until)` ranges, `None` for no bound, oldest first:
    /// the caller counts their messages itself (the whole window on an older
    /// store).
    pub fn minute_counts(
        &self,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
    ) -> Result<(MinuteCounts, Vec<TimeRange>), ReadError> {
        let mut counts = MinuteCounts::default();
        if !self.features.minute_counts {
            return Ok((counts, vec![(since_ns, until_ns)]));
        }
        // Minute m is wholly inside when since <= m * N and (m + 1) * N <= until.
        let first_minute = since_ns.map_or(i64::MIN, |since| {
            since.div_euclid(NS_PER_MINUTE) + i64::from(since.rem_euclid(NS_PER_MINUTE) != 0)
        });
        let last_minute = until_ns.map_or(i64::MAX, |until| until.div_euclid(NS_PER_MINUTE) - 1);
        let mut uncounted = Vec::new();
        let mut covered_to = since_ns;
        let mut statement = self.conn.prepare_cached(
            "SELECT minute, messages, queries, responses, malformed, queries_sent, answered, \
             first_ns, last_ns FROM time_index \
             WHERE minute BETWEEN ?1 AND ?2 AND messages IS NOT NULL ORDER BY minute",
        )?;
        let mut rows = statement.query((first_minute, last_minute))?;
        while let Some(row) = rows.next()? {
            let minute: i64 = row.get(0)?;
            let start = minute * NS_PER_MINUTE;
            if covered_to.is_none_or(|covered| covered < start) {
                uncounted.push((covered_to, Some(start)));
            }
            covered_to = Some(start + NS_PER_MINUTE);
            counts.merge(&MinuteCounts {
                messages: row.get(1)?,
                queries: row.get(2)?,
                responses: row.get(3)?,
                malformed: row.get(4)?,
                queries_sent: row.get(5)?,
                answered: row.get(6)?,
                first_ns: row.get(7)?,
                last_ns: row.get(8)?,
            });
        }
        let open_end = match (covered_to, until_ns) {
            (Some(covered), Some(until)) => covered < until,
            _ => true,
        };
        if open_end {
            uncounted.push((covered_to, until_ns));
        }
        Ok((counts, uncounted))
    }

    /// A name by `names.id`.
    pub fn name(&self, id: i64) -> Result<Rc<str>, ReadError> {
        if let Some(hit) = self.cache.borrow_mut().names.get(id) {
            return Ok(hit);
        }
        let name: Rc<str> = self
            .conn
            .prepare_cached("SELECT name FROM names WHERE id = ?1")?
            .query_row([id], |row| row.get::<_, String>(0))
            .optional()?
            .ok_or_else(|| ReadError::Corrupt(format!("no name {id}")))?
            .into();
        self.cache.borrow_mut().names.put(id, name.clone());
        Ok(name)
    }

    /// Record data by `rdata.id`.
    pub fn rdata(&self, id: i64) -> Result<Rc<str>, ReadError> {
        if let Some(hit) = self.cache.borrow_mut().rdata.get(id) {
            return Ok(hit);
        }
        let data: Rc<str> = self
            .conn
            .prepare_cached("SELECT data FROM rdata WHERE id = ?1")?
            .query_row([id], |row| row.get::<_, String>(0))
            .optional()?
            .ok_or_else(|| ReadError::Corrupt(format!("no rdata {id}")))?
            .into();
        self.cache.borrow_mut().rdata.put(id, data.clone());
        Ok(data)
    }

    /// A process by `processes.id`; `None` for [`schema::UNKNOWN_PROCESS`].
    pub fn process(&self, id: i64) -> Result<Option<Rc<StoredProcess>>, ReadError> {
        if id == schema::UNKNOWN_PROCESS {
            return Ok(None);
        }
        if let Some(hit) = self.cache.borrow_mut().processes.get(id) {
            return Ok(Some(hit));
        }
        let process = Rc::new(
            self.conn
                .prepare_cached(
                    "SELECT pid, tid, uid, gid, comm, exe, cgroup_id, cgroup, netns, thread \
                     FROM processes WHERE id = ?1",
                )?
                .query_row([id], |row| {
                    let cgroup: Option<String> = row.get(7)?;
                    let owner: CgroupOwner =
                        cgroup.as_deref().map(owner_of_cgroup).unwrap_or_default();
                    let container = owner.container.as_ref().map(Container::full);
                    Ok(StoredProcess {
                        pid: row.get(0)?,
                        tid: row.get(1)?,
                        // -1: unknown.
                        uid: row.get::<_, i64>(2).map(|v| u32::try_from(v).ok())?,
                        gid: row.get::<_, i64>(3).map(|v| u32::try_from(v).ok())?,
                        comm: row.get(4)?,
                        thread: row.get(9)?,
                        exe: row.get(5)?,
                        cgroup_id: row.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                        owner,
                        container,
                        cgroup,
                        netns: row.get::<_, Option<i64>>(8)?.map(|v| v as u64),
                    })
                })
                .optional()?
                .ok_or_else(|| ReadError::Corrupt(format!("no process {id}")))?,
        );
        self.cache.borrow_mut().processes.put(id, process.clone());
        Ok(Some(process))
    }

    /// An endpoint by `endpoints.id`.
    pub fn endpoint(&self, id: i64) -> Result<Rc<StoredEndpoint>, ReadError> {
        if let Some(hit) = self.cache.borrow_mut().endpoints.get(id) {
            return Ok(hit);
        }
        let (local, remote, ifindex, interface): (Vec<u8>, Vec<u8>, i64, Option<String>) = self
            .conn
            .prepare_cached(
                "SELECT local_ip, remote_ip, ifindex, interface FROM endpoints WHERE id = ?1",
            )?
            .query_row([id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?
            .ok_or_else(|| ReadError::Corrupt(format!("no endpoint {id}")))?;
        let endpoint = Rc::new(StoredEndpoint {
            local_ip: ip_from_blob(&local)?,
            remote_ip: ip_from_blob(&remote)?,
            ifindex: ifindex as u32,
            interface,
        });
        self.cache.borrow_mut().endpoints.put(id, endpoint.clone());
        Ok(endpoint)
    }
}

fn ip_from_blob(bytes: &[u8]) -> Result<IpAddr, ReadError> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Ok(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Ok(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        Err(ReadError::Corrupt(format!(
            "an address of {} bytes",
            bytes.len()
        )))
    }
}
