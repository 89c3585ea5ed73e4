//! Reading `messages` rows in rowid order with the interned rows they point to:
//! [`Reader::message_rows`] lends each one out as a [`MessageRow`] (for writing
//! messages out without building owned strings), [`Reader::messages`] rebuilds
//! each as a [`MessageRecord`].

use std::{net::IpAddr, ops::ControlFlow, rc::Rc, sync::Arc};

use rusqlite::{OptionalExtension, Row, params, types::ValueRef};

use super::{
    IdRange, MessageQuery, ProcessFilter, ReadError, Reader, StoredEndpoint, StoredProcess,
    class_name, opcode_name, rcode_name, type_name,
};
use crate::{
    record::{
        Attribution, Direction, DnsContent, DnsFlags, DnsMessage, Edns, Malformed, MessageRecord,
        Pairing, ProcessInfo, Question, ResourceRecord, Rfc3339, Transport,
    },
    store::{
        chunk::{Chunk, column},
        schema::{self, MinuteCounts, flags},
    },
};

/// One record of an answer set with its strings resolved (TTL aside).
#[derive(Debug)]
pub(super) struct SetRecord {
    section: i64,
    name: Rc<str>,
    rtype: String,
    class: String,
    data: Rc<str>,
}

/// The compact `messages` row (schema 6): \[with the resolver links (as
/// stores have them from schema 3 on), without\]\[oldest first, newest first\].
/// `ttls` is column [`COMPACT_TTLS`].
const COMPACT: [[&str; 2]; 2] = [
    [
        "SELECT id, time_ns, bits, process_id, endpoint_id, ports, socket_cookie, qname_id, \
         qtype, answer_set_id, ttls, edns_udp_size, message_len, captured_len, latency_ns, \
         socket_cgroup_id, via_process_id, for_process_id \
         FROM messages WHERE id BETWEEN ?1 AND ?2 ORDER BY id ASC",
        "SELECT id, time_ns, bits, process_id, endpoint_id, ports, socket_cookie, qname_id, \
         qtype, answer_set_id, ttls, edns_udp_size, message_len, captured_len, latency_ns, \
         socket_cgroup_id, via_process_id, for_process_id \
         FROM messages WHERE id BETWEEN ?1 AND ?2 ORDER BY id DESC",
    ],
    [
        "SELECT id, time_ns, bits, process_id, endpoint_id, ports, socket_cookie, qname_id, \
         qtype, answer_set_id, ttls, edns_udp_size, message_len, captured_len, latency_ns, \
         socket_cgroup_id FROM messages WHERE id BETWEEN ?1 AND ?2 ORDER BY id ASC",
        "SELECT id, time_ns, bits, process_id, endpoint_id, ports, socket_cookie, qname_id, \
         qtype, answer_set_id, ttls, edns_udp_size, message_len, captured_len, latency_ns, \
         socket_cgroup_id FROM messages WHERE id BETWEEN ?1 AND ?2 ORDER BY id DESC",
    ],
];
const COMPACT_TTLS: usize = 10;

/// The chunks holding ids `?1..=?2` (schema 15), \[oldest first, newest
/// first\]. The rowid range ends at the chunk holding `?2`: one seek, where a
/// condition on `first_id` would read on to the table's end.
const CHUNKS: [&str; 2] = [
    "SELECT last_id, first_id, data FROM message_chunks WHERE last_id BETWEEN ?1 AND \
     coalesce((SELECT min(last_id) FROM message_chunks WHERE last_id >= ?2), ?2) \
     ORDER BY last_id ASC",
    "SELECT last_id, first_id, data FROM message_chunks WHERE last_id BETWEEN ?1 AND \
     coalesce((SELECT min(last_id) FROM message_chunks WHERE last_id >= ?2), ?2) \
     ORDER BY last_id DESC",
];

/// What [`Reader::stored_messages`] hands each message to, with its `ttls`.
type VisitStored<'v, E> =
    dyn FnMut(&StoredMessage, ValueRef<'_>) -> Result<ControlFlow<()>, E> + 'v;

/// Answer sets whose text is larger than this are not cached (bounds the memory
/// a hostile or huge answer set can take).
const MAX_CACHED_SET_BYTES: usize = 16 * 1024;

/// A question of a message: the name borrowed, type and class as codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuestionRef<'a> {
    pub name: &'a str,
    pub qtype: u16,
    pub qclass: u16,
}

/// A resource record of a message, borrowed from the reader's caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub name: &'a str,
    pub rtype: &'a str,
    pub class: &'a str,
    pub ttl: u32,
    pub data: &'a str,
}

/// The TTLs of a message's answer set, as stored: none, one for every record,
/// or one each (in the set's order).
#[derive(Debug, Default)]
struct Ttls {
    all: Option<u32>,
    each: Vec<u32>,
}

impl Ttls {
    fn get(&self, index: usize) -> u32 {
        match self.all {
            Some(ttl) => ttl,
            None => self.each.get(index).copied().unwrap_or(0),
        }
    }

    /// From the `ttls` column: NULL, an integer (every record's TTL) or a JSON
    /// array of integers.
    fn read(&mut self, value: ValueRef<'_>, id: i64) -> Result<(), ReadError> {
        self.all = None;
        self.each.clear();
        let corrupt =
            |what: &dyn std::fmt::Display| ReadError::Corrupt(format!("message {id} ttls: {what}"));
        match value {
            ValueRef::Null => {}
            ValueRef::Integer(ttl) => {
                self.all = Some(u32::try_from(ttl).map_err(|e| corrupt(&e))?);
            }
            ValueRef::Text(text) => {
                if !parse_ttls(text, &mut self.each) {
                    self.each = serde_json::from_slice(text).map_err(|e| corrupt(&e))?;
                }
            }
            _ => return Err(corrupt(&"not text")),
        }
        Ok(())
    }
}

/// `[300,60]` (what the writer stores) into `out`; false for anything else.
fn parse_ttls(text: &[u8], out: &mut Vec<u32>) -> bool {
    let Some(inner) = text.strip_prefix(b"[").and_then(|t| t.strip_suffix(b"]")) else {
        return false;
    };
    if inner.is_empty() {
        return true;
    }
    for part in inner.split(|&b| b == b',') {
        if part.is_empty() || part.len() > 10 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let value = part
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        match u32::try_from(value) {
            Ok(v) => out.push(v),
            Err(_) => return false,
        }
    }
    true
}

/// One stored message and the interned rows it points to, borrowed: what
/// [`Reader::message_rows`] lends its visitor. Holds what a rebuilt
/// [`MessageRecord`] would, without its owned strings.
pub struct MessageRow<'a> {
    m: &'a StoredMessage,
    /// The first question's name ("" when the row has none).
    first_name: &'a str,
    endpoint: &'a StoredEndpoint,
    process: Option<&'a StoredProcess>,
    via: Option<&'a StoredProcess>,
    on_behalf_of: Option<&'a StoredProcess>,
    set: &'a [SetRecord],
    ttls: &'a Ttls,
    malformed: Option<(&'a str, &'a [u8])>,
    extra_questions: &'a [(Rc<str>, i64, i64)],
}

impl<'a> MessageRow<'a> {
    pub fn id(&self) -> i64 {
        self.m.id
    }

    pub fn time_ns(&self) -> i64 {
        self.m.time_ns
    }

    pub fn direction(&self) -> Direction {
        if self.m.flags & flags::RECEIVED != 0 {
            Direction::Received
        } else {
            Direction::Sent
        }
    }

    pub fn transport(&self) -> Transport {
        if self.m.flags & flags::TCP != 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    /// Source and destination addresses and ports.
    pub fn src_dst(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        let local = (self.endpoint.local_ip, self.m.local_port);
        let remote = (self.endpoint.remote_ip, self.m.remote_port);
        match self.direction() {
            Direction::Sent => (local, remote),
            Direction::Received => (remote, local),
        }
    }

    pub fn endpoint(&self) -> &'a StoredEndpoint {
        self.endpoint
    }

    pub fn socket_cookie(&self) -> u64 {
        self.m.socket_cookie as u64
    }

    /// The socket's cgroup id (the process's when not stored; 0 when neither is
    /// known).
    pub fn socket_cgroup_id(&self) -> u64 {
        self.m
            .socket_cgroup_id
            .map(|id| id as u64)
            .or(self.process.and_then(|p| p.cgroup_id))
            .unwrap_or(0)
    }

    /// The process that sent or received it, when known.
    pub fn process(&self) -> Option<&'a StoredProcess> {
        self.process
    }

    pub fn attribution(&self) -> Attribution {
        match (self.m.flags & flags::ATTRIBUTION_MASK) >> flags::ATTRIBUTION_SHIFT {
            schema::attribution::SOCKET => Attribution::Socket,
            schema::attribution::SOCKET_LATE => Attribution::SocketLate,
            schema::attribution::PROCFS => Attribution::Procfs,
            _ => Attribution::Unknown,
        }
    }

    /// The local resolver that answered it (a client's message).
    pub fn via(&self) -> Option<&'a StoredProcess> {
        self.via
    }

    /// The (first) client a local resolver acted for.
    pub fn on_behalf_of(&self) -> Option<&'a StoredProcess> {
        self.on_behalf_of
    }

    pub fn message_len(&self) -> u32 {
        self.m.message_len
    }

    pub fn captured_len(&self) -> u32 {
        self.m.captured_len.unwrap_or(self.m.message_len)
    }

    /// The paired query's latency (responses).
    pub fn latency_ns(&self) -> Option<u64> {
        self.m.latency_ns.map(|latency| latency.max(0) as u64)
    }

    /// The decode error and bytes of a message that did not decode.
    pub fn malformed(&self) -> Option<(&'a str, &'a [u8])> {
        self.malformed
    }

    /// Whether it decoded as DNS (the DNS accessors below are meaningless
    /// otherwise).
    pub fn is_dns(&self) -> bool {
        self.m.flags & flags::MALFORMED == 0
    }

    pub fn dns_id(&self) -> u16 {
        self.m.dns_id.unwrap_or(0) as u16
    }

    pub fn is_response(&self) -> bool {
        self.m.flags & flags::RESPONSE != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.m.flags & flags::OPCODE_MASK) >> flags::OPCODE_SHIFT) as u8
    }

    pub fn rcode(&self) -> u16 {
        self.m.rcode.unwrap_or(0) as u16
    }

    /// The questions, in order.
    pub fn questions(&self) -> impl Iterator<Item = QuestionRef<'a>> + 'a {
        let first = self.m.qname_id.map(|_| QuestionRef {
            name: self.first_name,
            qtype: self.m.qtype.unwrap_or(0) as u16,
            qclass: self.m.qclass.unwrap_or(1) as u16,
        });
        first
            .into_iter()
            .chain(
                self.extra_questions
                    .iter()
                    .map(|(name, qtype, qclass)| QuestionRef {
                        name,
                        qtype: *qtype as u16,
                        qclass: *qclass as u16,
                    }),
            )
    }

    /// The records of one section (`schema::section`), in order.
    pub fn records(&self, section: i64) -> impl Iterator<Item = RecordRef<'a>> + 'a {
        let ttls = self.ttls;
        self.set
            .iter()
            .enumerate()
            .filter(move |(_, r)| {
                r.section == section
                    || (section == schema::section::ADDITIONAL
                        && r.section != schema::section::ANSWER
                        && r.section != schema::section::AUTHORITY)
            })
            .map(move |(index, r)| RecordRef {
                name: &r.name,
                rtype: &r.rtype,
                class: &r.class,
                ttl: ttls.get(index),
                data: &r.data,
            })
    }

    /// The answer section.
    pub fn answers(&self) -> impl Iterator<Item = RecordRef<'a>> + 'a {
        self.records(schema::section::ANSWER)
    }
}

impl Reader {
    /// Reads the messages `query` selects, in rowid order, and lends each to
    /// `visit` until it breaks. Returns the last rowid read (whether or not it
    /// passed the time filter), for following new messages from there.
    pub fn message_rows<E: From<ReadError>>(
        &self,
        query: &MessageQuery<'_>,
        mut visit: impl FnMut(&MessageRow<'_>) -> Result<ControlFlow<()>, E>,
    ) -> Result<Option<i64>, E> {
        let order = if query.newest_first { "DESC" } else { "ASC" };
        let since = query.since_ns.unwrap_or(i64::MIN);
        let until = query.until_ns.unwrap_or(i64::MAX);
        let (first, last) = (query.ids.first, query.ids.last);
        // The rare side tables are read beside the messages in the same order (a
        // merge join) rather than looked up once per message.
        let mut malformed_stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT message_id, error, raw FROM malformed \
                 WHERE message_id BETWEEN ?1 AND ?2 ORDER BY message_id {order}"
            ))
            .map_err(ReadError::from)?;
        let mut extra_stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT message_id, qname_id, qtype, qclass FROM extra_questions \
                 WHERE message_id BETWEEN ?1 AND ?2 ORDER BY message_id {order}, position"
            ))
            .map_err(ReadError::from)?;
        let mut malformed = malformed_stmt
            .query_map(params![first, last], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(ReadError::from)?
            .peekable();
        let mut extra = extra_stmt
            .query_map(params![first, last], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(ReadError::from)?
            .peekable();
        // Whether side-table row `id` comes before message `current` in this order.
        let before = |id: i64, current: i64| {
            if query.newest_first {
                id > current
            } else {
                id < current
            }
        };
        let mut last_id = None;
        // Reused from message to message.
        let mut ttls = Ttls::default();
        let mut extra_ids: Vec<(i64, i64, i64)> = Vec::new();
        let mut extra_questions: Vec<(Rc<str>, i64, i64)> = Vec::new();
        self.stored_messages(first, last, query.newest_first, |stored, ttls_value| {
            last_id = Some(stored.id);
            let mut bad = None;
            while let Some(next) = malformed.peek() {
                match next {
                    Ok((id, ..)) if before(*id, stored.id) => {
                        malformed.next();
                    }
                    Ok((id, ..)) if *id == stored.id => {
                        if let Some(Ok((_, error, raw))) = malformed.next() {
                            bad = Some((error, raw));
                        }
                    }
                    Ok(_) => break,
                    Err(_) => {
                        if let Some(Err(e)) = malformed.next() {
                            return Err(ReadError::from(e).into());
                        }
                    }
                }
            }
            extra_ids.clear();
            while let Some(next) = extra.peek() {
                match next {
                    Ok((id, ..)) if before(*id, stored.id) => {
                        extra.next();
                    }
                    Ok((id, name_id, qtype, qclass)) if *id == stored.id => {
                        extra_ids.push((*name_id, *qtype, *qclass));
                        extra.next();
                    }
                    Ok(_) => break,
                    Err(_) => {
                        if let Some(Err(e)) = extra.next() {
                            return Err(ReadError::from(e).into());
                        }
                    }
                }
            }
            if stored.time_ns < since || stored.time_ns >= until {
                return Ok(ControlFlow::Continue(()));
            }
            if let Some(filter) = query.processes
                && !filter.matches(stored.process_id, stored.socket_cgroup_id)
            {
                return Ok(ControlFlow::Continue(()));
            }
            ttls.read(ttls_value, stored.id)?;
            extra_questions.clear();
            for &(name_id, qtype, qclass) in &extra_ids {
                extra_questions.push((self.name(name_id)?, qtype, qclass));
            }
            let endpoint = self.endpoint(stored.endpoint_id)?;
            let process = match stored.process_id {
                Some(id) => self.process(id)?,
                None => None,
            };
            let via = match stored.via_process_id {
                Some(id) => self.process(id)?,
                None => None,
            };
            let on_behalf_of = match stored.for_process_id {
                Some(id) => self.process(id)?,
                None => None,
            };
            let dns = stored.flags & flags::MALFORMED == 0;
            let set = match stored.answer_set_id {
                Some(id) if dns => Some(self.answer_set(id)?),
                _ => None,
            };
            let first_name = match stored.qname_id {
                Some(id) if dns => Some(self.name(id)?),
                _ => None,
            };
            let view = MessageRow {
                m: stored,
                first_name: first_name.as_deref().unwrap_or(""),
                endpoint: &endpoint,
                process: process.as_deref(),
                via: via.as_deref(),
                on_behalf_of: on_behalf_of.as_deref(),
                set: set.as_deref().unwrap_or(&[]),
                ttls: &ttls,
                malformed: bad.as_ref().map(|(e, raw)| (e.as_str(), raw.as_slice())),
                extra_questions: &extra_questions,
            };
            visit(&view)
        })?;
        Ok(last_id)
    }

    /// Counts the messages with ids `ids` and `since_ns <= time_ns < until_ns`
    /// (of the processes `processes` selects) as the writer counts a minute's,
    /// reading nothing but the messages themselves.
    pub fn count_messages(
        &self,
        ids: IdRange,
        since_ns: Option<i64>,
        until_ns: Option<i64>,
        processes: Option<&ProcessFilter>,
    ) -> Result<MinuteCounts, ReadError> {
        let since = since_ns.unwrap_or(i64::MIN);
        let until = until_ns.unwrap_or(i64::MAX);
        let mut counts = self.count_message_rows(ids, since, until, processes)?;
        if self.features.message_chunks {
            let mut add = |stored: &StoredMessage, _: ValueRef<'_>| {
                let selected = processes.is_none_or(|filter| {
                    filter.matches(stored.process_id, stored.socket_cgroup_id)
                });
                if selected && stored.time_ns >= since && stored.time_ns < until {
                    counts.add(stored.flags, stored.time_ns, stored.latency_ns.is_some());
                }
                Ok::<_, ReadError>(ControlFlow::Continue(()))
            };
            let _ = self.chunked_messages(ids.first, ids.last, false, &mut add)?;
        }
        Ok(counts)
    }

    /// [`Reader::count_messages`] of the rows of `messages` (stored before
    /// schema 15): SQLite adds them up itself, classified as
    /// `MinuteCounts::add` does, faster than reading them out (`stats --unit`
    /// on the benchmark's 10M messages as rows: 2.6 s against 6.5 s; 2.9 s as
    /// chunks).
    fn count_message_rows(
        &self,
        ids: IdRange,
        since: i64,
        until: i64,
        processes: Option<&ProcessFilter>,
    ) -> Result<MinuteCounts, ReadError> {
        let filter = processes.map(ProcessFilter::sql).unwrap_or_default();
        let mut scan = self.conn.prepare_cached(&format!(
            "SELECT COUNT(*), \
                    TOTAL((flags & {mal}) = 0 AND (flags & {resp}) = 0), \
                    TOTAL((flags & {mal}) = 0 AND (flags & {resp}) != 0), \
                    TOTAL((flags & {mal}) != 0), \
                    TOTAL((flags & {mal}) = 0 AND (flags & ({resp} | {recv})) = 0), \
                    TOTAL((flags & {mal}) = 0 AND (flags & ({resp} | {recv})) = ({resp} | {recv}) \
                          AND latency_ns IS NOT NULL), \
                    MIN(time_ns), MAX(time_ns) \
             FROM messages WHERE id BETWEEN ?1 AND ?2 AND time_ns >= ?3 AND time_ns < ?4{filter}",
            mal = flags::MALFORMED,
            resp = flags::RESPONSE,
            recv = flags::RECEIVED,
        ))?;
        Ok(scan.query_row((ids.first, ids.last, since, until), |row| {
            Ok(MinuteCounts {
                messages: row.get(0)?,
                queries: row.get::<_, f64>(1)? as i64,
                responses: row.get::<_, f64>(2)? as i64,
                malformed: row.get::<_, f64>(3)? as i64,
                queries_sent: row.get::<_, f64>(4)? as i64,
                answered: row.get::<_, f64>(5)? as i64,
                first_ns: row.get::<_, Option<i64>>(6)?.unwrap_or_default(),
                last_ns: row.get::<_, Option<i64>>(7)?.unwrap_or_default(),
            })
        })?)
    }

    /// The stored messages with ids `first..=last`, in id order (oldest or
    /// newest first), with each one's `ttls` value, until `visit` breaks: the
    /// rows of `messages` (written before schema 15) and the chunks after them.
    fn stored_messages<E: From<ReadError>>(
        &self,
        first: i64,
        last: i64,
        newest_first: bool,
        mut visit: impl FnMut(&StoredMessage, ValueRef<'_>) -> Result<ControlFlow<()>, E>,
    ) -> Result<(), E> {
        let chunks = self.features.message_chunks;
        if chunks
            && newest_first
            && self
                .chunked_messages(first, last, true, &mut visit)?
                .is_break()
        {
            return Ok(());
        }
        if self
            .message_table_rows(first, last, newest_first, &mut visit)?
            .is_break()
        {
            return Ok(());
        }
        if chunks && !newest_first {
            // The last of the two: whether it broke off changes nothing.
            let _ = self.chunked_messages(first, last, false, &mut visit)?;
        }
        Ok(())
    }

    /// [`Reader::stored_messages`] of the `messages` table.
    fn message_table_rows<E: From<ReadError>>(
        &self,
        first: i64,
        last: i64,
        newest_first: bool,
        visit: &mut VisitStored<'_, E>,
    ) -> Result<ControlFlow<()>, E> {
        // The compact row (schema 6) with static SQL; older rows with schema
        // 3's resolver links when the store has them.
        let compact = self.features.compact_messages;
        let mut main = if compact {
            self.conn.prepare_cached(
                COMPACT[usize::from(!self.features.message_peers)][usize::from(newest_first)],
            )
        } else {
            let peers = if self.features.message_peers {
                "via_process_id, for_process_id"
            } else {
                "NULL, NULL"
            };
            let order = if newest_first { "DESC" } else { "ASC" };
            self.conn.prepare_cached(&format!(
                "SELECT id, time_ns, flags, process_id, endpoint_id, local_port, remote_port, \
                 socket_cookie, dns_id, qname_id, qtype, qclass, rcode, answer_set_id, ttls, \
                 edns_udp_size, message_len, captured_len, latency_ns, socket_cgroup_id, {peers} \
                 FROM messages WHERE id BETWEEN ?1 AND ?2 ORDER BY id {order}"
            ))
        }
        .map_err(ReadError::from)?;
        let ttls_column = if compact { COMPACT_TTLS } else { 14 };
        let mut rows = main.query(params![first, last]).map_err(ReadError::from)?;
        while let Some(row) = rows.next().map_err(ReadError::from)? {
            let stored = if compact {
                StoredMessage::from_compact_row(row)
            } else {
                StoredMessage::from_row(row)
            }
            .map_err(ReadError::from)?;
            let ttls = row.get_ref(ttls_column).map_err(ReadError::from)?;
            if visit(&stored, ttls)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// [`Reader::stored_messages`] of `message_chunks` (schema 15).
    fn chunked_messages<E: From<ReadError>>(
        &self,
        first: i64,
        last: i64,
        newest_first: bool,
        visit: &mut VisitStored<'_, E>,
    ) -> Result<ControlFlow<()>, E> {
        let mut statement = self
            .conn
            .prepare_cached(CHUNKS[usize::from(newest_first)])
            .map_err(ReadError::from)?;
        let mut rows = statement
            .query(params![first, last])
            .map_err(ReadError::from)?;
        let mut chunk = Chunk::default();
        while let Some(row) = rows.next().map_err(ReadError::from)? {
            let last_id: i64 = row.get(0).map_err(ReadError::from)?;
            let first_id: i64 = row.get(1).map_err(ReadError::from)?;
            let corrupt = |what: &dyn std::fmt::Display| {
                ReadError::Corrupt(format!("message chunk {first_id}..={last_id}: {what}"))
            };
            let blob = row
                .get_ref(2)
                .and_then(|value| value.as_blob().map_err(rusqlite::Error::from))
                .map_err(|e| corrupt(&e))?;
            chunk
                .decode_ids(first_id, last_id, blob)
                .map_err(|e| corrupt(&e))?;
            let (lo, hi) = (first.max(first_id), last.min(last_id));
            let mut id = if newest_first { hi } else { lo };
            while lo <= id && id <= hi {
                let index = (id - first_id) as usize;
                let stored = StoredMessage::from_chunk(&chunk, index, id);
                if visit(&stored, chunk.ttls(index).into())?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
                id += if newest_first { -1 } else { 1 };
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Rebuilds the messages `query` selects, in rowid order, and hands each to
    /// `visit` until it breaks. Returns the last rowid read (whether or not it
    /// passed the time filter), for following new messages from there.
    pub fn messages<E: From<ReadError>>(
        &self,
        query: &MessageQuery<'_>,
        mut visit: impl FnMut(MessageRecord) -> Result<ControlFlow<()>, E>,
    ) -> Result<Option<i64>, E> {
        self.message_rows(query, |row| visit(self.rebuild(row)))
    }

    fn answer_set(&self, id: i64) -> Result<Rc<[SetRecord]>, ReadError> {
        if let Some(hit) = self.cache.borrow_mut().sets.get(id) {
            return Ok(hit);
        }
        let text: String = self
            .conn
            .prepare_cached("SELECT records FROM answer_sets WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?
            .ok_or_else(|| ReadError::Corrupt(format!("no answer set {id}")))?;
        let raw: Vec<(i64, i64, i64, i64, i64)> = serde_json::from_str(&text)
            .map_err(|e| ReadError::Corrupt(format!("answer set {id}: {e}")))?;
        let mut size = 0;
        let mut records = Vec::with_capacity(raw.len());
        for (section, name_id, rtype, class, rdata_id) in raw {
            let record = SetRecord {
                section,
                name: self.name(name_id)?,
                rtype: type_name(rtype as u16).into_owned(),
                class: class_name(class as u16).into_owned(),
                data: self.rdata(rdata_id)?,
            };
            size += record.name.len() + record.data.len() + 32;
            records.push(record);
        }
        let records: Rc<[SetRecord]> = records.into();
        if size <= MAX_CACHED_SET_BYTES {
            self.cache.borrow_mut().sets.put(id, records.clone());
        }
        Ok(records)
    }

    fn rebuild(&self, row: &MessageRow<'_>) -> MessageRecord {
        let m = row.m;
        let ((src, sport), (dst, dport)) = row.src_dst();
        let attribution = row.attribution();
        let process = match row.process {
            None => ProcessInfo {
                attribution: Some(attribution),
                ..ProcessInfo::default()
            },
            Some(p) => process_info(p, Some(attribution)),
        };
        // The store keeps neither the peers' attribution nor more than the
        // first process of `on_behalf_of`.
        let peer = |p: Option<&StoredProcess>| p.map(|p| Arc::new(process_info(p, None)));
        MessageRecord {
            kind: "message".into(),
            time: Rfc3339(m.time_ns),
            time_ns: m.time_ns,
            direction: row.direction(),
            transport: row.transport(),
            src,
            sport,
            dst,
            dport,
            ifindex: row.endpoint.ifindex,
            interface: row.endpoint.interface.as_deref().map(Arc::from),
            socket_cookie: row.socket_cookie(),
            socket_cgroup_id: row.socket_cgroup_id(),
            process: Arc::new(process),
            message_len: m.message_len,
            captured_len: row.captured_len(),
            dns: row.is_dns().then(|| Arc::new(dns_message(row))),
            malformed: row.malformed.map(|(error, raw)| Malformed {
                error: error.to_owned(),
                raw_hex: hex::encode(raw),
            }),
            pair: m.latency_ns.map(|latency| Pairing {
                query_time_ns: m.time_ns.saturating_sub(latency),
                latency_ns: latency.max(0) as u64,
            }),
            via: peer(row.via),
            on_behalf_of: peer(row.on_behalf_of).into_iter().collect(),
            from_cache: None,
        }
    }
}

fn dns_message(row: &MessageRow<'_>) -> DnsMessage {
    let m = row.m;
    let f = m.flags;
    let owned = |records: &mut dyn Iterator<Item = RecordRef<'_>>| -> Vec<ResourceRecord> {
        records
            .map(|r| ResourceRecord {
                name: r.name.to_owned(),
                rtype: r.rtype.to_owned().into(),
                class: r.class.to_owned().into(),
                ttl: r.ttl,
                data: r.data.to_owned(),
            })
            .collect()
    };
    DnsMessage::new(
        row.dns_id(),
        DnsContent {
            response: row.is_response(),
            opcode: opcode_name(row.opcode()),
            rcode: rcode_name(row.rcode()),
            flags: DnsFlags {
                aa: f & flags::AA != 0,
                tc: f & flags::TC != 0,
                rd: f & flags::RD != 0,
                ra: f & flags::RA != 0,
                ad: f & flags::AD != 0,
                cd: f & flags::CD != 0,
            },
            questions: row
                .questions()
                .map(|q| Question {
                    name: q.name.to_owned(),
                    qtype: type_name(q.qtype),
                    class: class_name(q.qclass),
                })
                .collect(),
            answers: owned(&mut row.records(schema::section::ANSWER)),
            authority: owned(&mut row.records(schema::section::AUTHORITY)),
            additional: owned(&mut row.records(schema::section::ADDITIONAL)),
            edns: (f & flags::EDNS != 0).then(|| Edns {
                udp_size: m.edns_udp_size.unwrap_or(0) as u16,
                version: ((f & flags::EDNS_VERSION_MASK) >> flags::EDNS_VERSION_SHIFT) as u8,
                dnssec_ok: f & flags::DNSSEC_OK != 0,
            }),
        },
    )
}

/// Local port, remote port and DNS id from the compact row's `bits` and `ports`.
fn unpack_ports(bits: i64, ports: i64) -> (u16, u16, u16) {
    let low = (ports & 0xffff) as u16;
    if bits & schema::packed::REMOTE_PORT_53 != 0 {
        (low, 53, ((ports >> 16) & 0xffff) as u16)
    } else if bits & schema::packed::LOCAL_PORT_53 != 0 {
        (53, low, ((ports >> 16) & 0xffff) as u16)
    } else {
        (
            ((ports >> 16) & 0xffff) as u16,
            low,
            ((ports >> 32) & 0xffff) as u16,
        )
    }
}

pub(super) fn process_info(p: &StoredProcess, attribution: Option<Attribution>) -> ProcessInfo {
    ProcessInfo {
        attribution,
        pid: Some(p.pid),
        tid: p.tid,
        uid: p.uid,
        gid: p.gid,
        comm: Some(p.comm.clone()).filter(|c| !c.is_empty()),
        thread: p.thread.clone(),
        exe: p.exe.clone(),
        cgroup_id: p.cgroup_id,
        cgroup: p.cgroup.clone(),
        netns: p.netns,
        // As `ProcessInfo::with_owner` would, from the row's cached owner.
        unit: p.owner.unit.clone(),
        container: p.container.clone(),
    }
}

/// The integer columns of one `messages` row.
struct StoredMessage {
    id: i64,
    time_ns: i64,
    flags: i64,
    process_id: Option<i64>,
    endpoint_id: i64,
    local_port: u16,
    remote_port: u16,
    socket_cookie: i64,
    dns_id: Option<i64>,
    qname_id: Option<i64>,
    qtype: Option<i64>,
    qclass: Option<i64>,
    rcode: Option<i64>,
    answer_set_id: Option<i64>,
    edns_udp_size: Option<i64>,
    message_len: u32,
    captured_len: Option<u32>,
    latency_ns: Option<i64>,
    socket_cgroup_id: Option<i64>,
    via_process_id: Option<i64>,
    for_process_id: Option<i64>,
}

impl StoredMessage {
    /// A row of [`COMPACT`]: `bits` and `ports` unpacked (schema.rs
    /// [`packed`](schema::packed)).
    fn from_compact_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let bits: i64 = row.get(2)?;
        let ports: i64 = row.get(5)?;
        let (local_port, remote_port, dns_id) = unpack_ports(bits, ports);
        let qname_id: Option<i64> = row.get(7)?;
        let peers = row.as_ref().column_count() > 16;
        Ok(Self {
            id: row.get(0)?,
            time_ns: row.get(1)?,
            flags: bits & schema::packed::FLAGS_MASK,
            process_id: row.get(3)?,
            endpoint_id: row.get(4)?,
            local_port,
            remote_port,
            socket_cookie: row.get(6)?,
            dns_id: Some(i64::from(dns_id)),
            qname_id,
            qtype: row.get(8)?,
            qclass: qname_id.map(|_| 1),
            rcode: Some((bits & schema::packed::RCODE_MASK) >> schema::packed::RCODE_SHIFT),
            answer_set_id: row.get(9)?,
            edns_udp_size: row.get(11)?,
            message_len: row.get(12)?,
            captured_len: row.get(13)?,
            latency_ns: row.get(14)?,
            socket_cgroup_id: row.get(15)?,
            via_process_id: peers.then(|| row.get(16)).transpose()?.flatten(),
            for_process_id: peers.then(|| row.get(17)).transpose()?.flatten(),
        })
    }

    /// The `index`th message of a chunk, `id` its id.
    fn from_chunk(chunk: &Chunk, index: usize, id: i64) -> Self {
        let get = |column| chunk.get(index, column);
        let bits = get(column::BITS).unwrap_or(0);
        let (local_port, remote_port, dns_id) = unpack_ports(bits, get(column::PORTS).unwrap_or(0));
        let qname_id = get(column::QNAME_ID);
        Self {
            id,
            time_ns: get(column::TIME_NS).unwrap_or(0),
            flags: bits & schema::packed::FLAGS_MASK,
            process_id: get(column::PROCESS_ID),
            endpoint_id: get(column::ENDPOINT_ID).unwrap_or(0),
            local_port,
            remote_port,
            socket_cookie: get(column::SOCKET_COOKIE).unwrap_or(0),
            dns_id: Some(i64::from(dns_id)),
            qname_id,
            qtype: get(column::QTYPE),
            qclass: qname_id.map(|_| 1),
            rcode: Some((bits & schema::packed::RCODE_MASK) >> schema::packed::RCODE_SHIFT),
            answer_set_id: get(column::ANSWER_SET_ID),
            edns_udp_size: get(column::EDNS_UDP_SIZE),
            message_len: get(column::MESSAGE_LEN).map_or(0, |len| len as u32),
            captured_len: get(column::CAPTURED_LEN).map(|len| len as u32),
            latency_ns: get(column::LATENCY_NS),
            socket_cgroup_id: get(column::SOCKET_CGROUP_ID),
            via_process_id: get(column::VIA_PROCESS_ID),
            for_process_id: get(column::FOR_PROCESS_ID),
        }
    }

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            time_ns: row.get(1)?,
            flags: row.get(2)?,
            process_id: row.get(3)?,
            endpoint_id: row.get(4)?,
            local_port: row.get(5)?,
            remote_port: row.get(6)?,
            socket_cookie: row.get(7)?,
            dns_id: row.get(8)?,
            qname_id: row.get(9)?,
            qtype: row.get(10)?,
            qclass: row.get(11)?,
            rcode: row.get(12)?,
            answer_set_id: row.get(13)?,
            edns_udp_size: row.get(15)?,
            message_len: row.get(16)?,
            captured_len: row.get(17)?,
            latency_ns: row.get(18)?,
            socket_cgroup_id: row.get(19)?,
            via_process_id: row.get(20)?,
            for_process_id: row.get(21)?,
        })
    }
}

#[cfg(test)]
mod packing_tests {
    use super::*;

    #[test]
    fn ports_and_ids_unpack_as_packed() {
        for (local, remote, id) in [
            (53, 40_000, 0),
            (40_000, 53, 65_535),
            (53, 53, 32_768),
            (5353, 40_000, 32_767),
            (65_535, 65_535, 65_535),
            (0, 0, 0),
            (12_345, 53, 1),
        ] {
            let (bits, ports) = crate::store::insert::pack_ports(local, remote, id);
            assert_eq!(unpack_ports(bits, ports), (local, remote, id));
            // Small enough for SQLite's 4-byte integers when a port is 53.
            if local == 53 || remote == 53 {
                assert!(i32::try_from(ports).is_ok(), "{ports}");
            }
        }
    }

    #[test]
    fn ttls_are_read_from_integers_and_arrays() {
        let mut ttls = Ttls::default();
        ttls.read(ValueRef::Integer(300), 1).unwrap();
        assert_eq!((ttls.get(0), ttls.get(5)), (300, 300));
        ttls.read(ValueRef::Text(b"[300,60,20]"), 1).unwrap();
        assert_eq!((ttls.get(0), ttls.get(2), ttls.get(3)), (300, 20, 0));
        ttls.read(ValueRef::Text(b"[ 7 , 8 ]"), 1).unwrap();
        assert_eq!((ttls.get(0), ttls.get(1)), (7, 8));
        ttls.read(ValueRef::Null, 1).unwrap();
        assert_eq!(ttls.get(0), 0);
        assert!(ttls.read(ValueRef::Text(b"nope"), 1).is_err());
    }
}

#[cfg(test)]
mod migration_tests {
    use std::ops::ControlFlow;

    use rusqlite::{Connection, types::Value};

    use crate::store::{
        MIGRATIONS,
        read::{IdRange, MessageQuery, ReadError, Reader},
    };

    fn all_messages(path: &std::path::Path) -> Vec<String> {
        let reader = Reader::open(path).expect("open");
        let mut out = Vec::new();
        for newest_first in [false, true] {
            let query = MessageQuery {
                newest_first,
                ..MessageQuery::ids(IdRange {
                    first: 1,
                    last: 100,
                })
            };
            reader
                .messages(&query, |record| -> Result<_, ReadError> {
                    out.push(serde_json::to_string(&record).expect("json"));
                    Ok(ControlFlow::Continue(()))
                })
                .expect("read");
        }
        out
    }

    /// Schema 4 rows read the same before and after the compact-row migration:
    /// ports on either side or neither at 53, DNS ids above 32767, rcodes, equal
    /// and unequal TTLs, another class than IN, extra questions, malformed bytes.
    #[test]
    fn compact_rows_read_as_the_rows_they_replace() {
        let dir = std::env::temp_dir().join(format!("dnsq-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.db");
        let mut conn = Connection::open(&path).expect("create");
        MIGRATIONS.to_version(&mut conn, 4).expect("schema 4");
        conn.execute_batch(
            "INSERT INTO runs (id, started_ns, version, config) VALUES (1, 10, '0', '{}');
             INSERT INTO names (id, name) VALUES (1, 'a.example.'), (2, 'b.example.');
             INSERT INTO rdata (id, data) VALUES (1, '192.0.2.1'), (2, '192.0.2.2');
             INSERT INTO processes (id, pid, uid, gid, comm, key, cgroup)
                 VALUES (1, 9, 0, 0, 'dig', 'p1', '/system.slice/x.service'),
                        (2, 99, 0, 0, 'dnsmasq', 'p2', NULL);
             INSERT INTO endpoints (id, local_ip, remote_ip, ifindex)
                 VALUES (1, x'7f000001', x'7f000035', 1),
                        (2, x'fd000000000000000000000000000001', x'fd000000000000000000000000000002', 2);
             INSERT INTO answer_sets (id, records) VALUES
                 (1, '[[0,1,1,1,1],[0,1,1,1,2]]'), (2, '[[0,1,1,1,1],[1,2,6,1,2],[2,2,1,1,2]]');
             INSERT INTO messages (id, time_ns, run_id, flags, process_id, endpoint_id, local_port,
                 remote_port, socket_cookie, dns_id, qname_id, qtype, qclass, rcode, answer_set_id,
                 ttls, edns_udp_size, message_len, captured_len, latency_ns, socket_cgroup_id,
                 for_process_id, via_process_id) VALUES
                 (1, 1000, 1, 4352, 1, 1, 40000, 53, 5, 40000, 1, 1, 1, NULL, NULL, NULL, 1232, 40, NULL, NULL, NULL, NULL, 2),
                 (2, 2000, 1, 4869, 1, 1, 40000, 53, 5, 40000, 1, 1, 1, 3, 1, '[300,300]', 1232, 80, NULL, 1000, NULL, NULL, 2),
                 (3, 3000, 1, 790, 2, 2, 53, 41000, -7, 65535, 1, 28, 1, 0, 2, '[300,60,5]', NULL, 90, 20, 7, 77, 1, NULL),
                 (4, 4000, 1, 65536, NULL, 1, 53, 53, 8, 32767, 2, 16, 3, 2, NULL, NULL, NULL, 30, NULL, NULL, 5, NULL, NULL),
                 (5, 5000, 1, 9, NULL, 1, 5353, 40001, 9, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3, NULL, NULL, NULL, NULL, NULL),
                 (6, 6000, 1, 3840, 1, 2, 5353, 40001, 10, 0, 2, 65535, 1, 4095, 1, '[4294967295,4294967295]', 4096, 65535, NULL, NULL, NULL, NULL, NULL);
             INSERT INTO extra_questions (message_id, position, qname_id, qtype, qclass)
                 VALUES (4, 1, 1, 1, 1);
             INSERT INTO malformed (message_id, error, raw) VALUES (5, 'short', x'010203');",
        )
        .expect("rows");
        let before = all_messages(&path);
        assert_eq!(before.len(), 12);
        MIGRATIONS.to_latest(&mut conn).expect("migrate");
        let bits: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'bits'",
                [],
                |r| r.get(0),
            )
            .expect("bits");
        assert_eq!(bits, 1);
        // `flags` reads as before; the other old columns decode as the
        // migration says.
        type Old = (i64, i64, i64, Option<i64>, Option<i64>);
        let old: Vec<Old> = conn
            .prepare(
                "SELECT flags, CASE WHEN bits & 32768 THEN 53 ELSE (ports >> (CASE WHEN bits & 16384 THEN 0 ELSE 16 END)) & 65535 END, \
                 CASE WHEN bits & 16384 THEN 53 ELSE ports & 65535 END, \
                 CASE WHEN bits & 8 THEN NULL ELSE (ports >> (CASE WHEN bits & 49152 THEN 16 ELSE 32 END)) & 65535 END, \
                 CASE WHEN bits & 8 THEN NULL ELSE (bits >> 28) & 4095 END \
                 FROM messages ORDER BY id",
            )
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(old[0], (4352, 40000, 53, Some(40000), Some(0)));
        assert_eq!(old[2], (790, 53, 41000, Some(65535), Some(0)));
        assert_eq!(old[3], (65536, 53, 53, Some(32767), Some(2)));
        assert_eq!(old[4], (9, 5353, 40001, None, None));
        assert_eq!(old[5], (3840, 5353, 40001, Some(0), Some(4095)));
        let ttls: Vec<Option<Value>> = conn
            .prepare("SELECT ttls FROM messages ORDER BY id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(ttls[1], Some(Value::Integer(300)));
        assert_eq!(ttls[2], Some(Value::Text("[300,60,5]".into())));
        assert_eq!(ttls[5], Some(Value::Integer(4_294_967_295)));
        drop(conn);
        let after = all_messages(&path);
        assert_eq!(before, after);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
