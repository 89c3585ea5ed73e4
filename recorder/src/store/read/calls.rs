//! Reading `libc_lookups`: the libc resolver calls applications made, each with
//! what it returned (schema 13 on), as the recorder's `"lookup"` JSON lines.

use std::{ops::ControlFlow, sync::Arc};

use super::{ProcessFilter, ReadError, Reader, rebuild::process_info};
use crate::{
    record::{LibcAnswer, LookupRecord, ProcessInfo, Rfc3339},
    store::schema::{libc_addresses, libc_function},
};

/// Which calls [`Reader::libc_calls`] visits.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallQuery<'a> {
    /// Only rows after this `libc_lookups.id` (0: all)…
    pub after_id: i64,
    /// …and up to this one.
    pub last_id: Option<i64>,
    /// Only calls with `since_ns <= time_ns < until_ns`.
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// Visit from the newest row down.
    pub newest_first: bool,
    /// Only the calls of these processes.
    pub processes: Option<&'a ProcessFilter>,
}

/// A stored call: its row id and the call, with `answer` when its return was
/// recorded. `name` is the name as stored (lower-cased, with a trailing dot),
/// `time_ns` the call's.
#[derive(Clone, Debug)]
pub struct StoredCall {
    pub id: i64,
    pub record: LookupRecord,
}

/// \[stores with the returns (schema 13), without\]\[oldest first, newest first\].
const CALLS: [[&str; 2]; 2] = [
    [
        "SELECT id, time_ns, process_id, qname_id, function, returned_ns, status, addresses \
         FROM libc_lookups WHERE id > ?1 AND id <= ?2 ORDER BY id ASC",
        "SELECT id, time_ns, process_id, qname_id, function, returned_ns, status, addresses \
         FROM libc_lookups WHERE id > ?1 AND id <= ?2 ORDER BY id DESC",
    ],
    [
        "SELECT id, time_ns, process_id, qname_id, function, NULL, NULL, NULL \
         FROM libc_lookups WHERE id > ?1 AND id <= ?2 ORDER BY id ASC",
        "SELECT id, time_ns, process_id, qname_id, function, NULL, NULL, NULL \
         FROM libc_lookups WHERE id > ?1 AND id <= ?2 ORDER BY id DESC",
    ],
];

/// How far out of time order rows can arrive: each CPU's events are in order,
/// and the reader drains the ring every 100 ms while events come.
const ARRIVAL_SLACK_NS: i64 = 10_000_000_000;

/// One `libc_lookups` row's columns.
struct CallRow {
    id: i64,
    time_ns: i64,
    process_id: i64,
    qname_id: i64,
    function: i64,
    returned_ns: Option<i64>,
    status: Option<i64>,
    addresses: Option<String>,
}

impl CallRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            time_ns: row.get(1)?,
            process_id: row.get(2)?,
            qname_id: row.get(3)?,
            function: row.get(4)?,
            returned_ns: row.get(5)?,
            status: row.get(6)?,
            addresses: row.get(7)?,
        })
    }
}

impl Reader {
    /// The largest `libc_lookups.id`, 0 when there is none: where following
    /// new calls starts.
    pub fn max_call_id(&self) -> Result<i64, ReadError> {
        Ok(self
            .conn
            .prepare_cached("SELECT coalesce(max(id), 0) FROM libc_lookups")?
            .query_row([], |row| row.get(0))?)
    }

    /// The calls `query` selects, in row order (the order they arrived, which
    /// is time order but for calls on different CPUs moments apart), handed to
    /// `visit` until it breaks. The scan stops once rows are well past the
    /// window, so a window near the newest end reads little of a long history.
    pub fn libc_calls<E: From<ReadError>>(
        &self,
        query: &CallQuery<'_>,
        mut visit: impl FnMut(StoredCall) -> Result<ControlFlow<()>, E>,
    ) -> Result<(), E> {
        let sql = CALLS[usize::from(!self.features.libc_returns)][usize::from(query.newest_first)];
        let mut statement = self.conn.prepare_cached(sql).map_err(ReadError::from)?;
        let mut rows = statement
            .query([query.after_id, query.last_id.unwrap_or(i64::MAX)])
            .map_err(ReadError::from)?;
        let (since, until) = (
            query.since_ns.unwrap_or(i64::MIN),
            query.until_ns.unwrap_or(i64::MAX),
        );
        while let Some(row) = rows.next().map_err(ReadError::from)? {
            let row = CallRow::read(row).map_err(ReadError::from)?;
            // Rows are in arrival order, which is time order give or take the
            // reordering between CPUs: past the window by more than that, no
            // later row is in it.
            let past = if query.newest_first {
                row.time_ns < since.saturating_sub(ARRIVAL_SLACK_NS)
            } else {
                row.time_ns >= until.saturating_add(ARRIVAL_SLACK_NS)
            };
            if past {
                break;
            }
            if row.time_ns < since || row.time_ns >= until {
                continue;
            }
            if query
                .processes
                .is_some_and(|only| !only.matches(Some(row.process_id), None))
            {
                continue;
            }
            if visit(self.call(row)?)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    fn call(&self, row: CallRow) -> Result<StoredCall, ReadError> {
        let process = match self.process(row.process_id)? {
            Some(process) => process_info(&process, None),
            None => ProcessInfo::default(),
        };
        let answer = match (row.returned_ns, row.status) {
            (Some(returned_ns), Some(status)) => {
                let text = row.addresses.unwrap_or_default();
                let (addresses, truncated) = libc_addresses::parse(&text).ok_or_else(|| {
                    ReadError::Corrupt(format!("libc call {}: addresses {text:?}", row.id))
                })?;
                let status = i32::try_from(status).map_err(|_| {
                    ReadError::Corrupt(format!("libc call {}: status {status}", row.id))
                })?;
                Some(LibcAnswer {
                    call_time_ns: row.time_ns,
                    latency_ns: returned_ns - row.time_ns,
                    status,
                    error: LibcAnswer::error_name(row.function as u32, status).map(str::to_owned),
                    addresses,
                    truncated,
                })
            }
            _ => None,
        };
        Ok(StoredCall {
            id: row.id,
            record: LookupRecord {
                kind: "lookup".into(),
                time: Rfc3339(row.time_ns),
                time_ns: row.time_ns,
                function: libc_function::name(row.function)
                    .unwrap_or("unknown")
                    .into(),
                name: self.name(row.qname_id)?.to_string(),
                process: Arc::new(process),
                answer,
            },
        })
    }
}
