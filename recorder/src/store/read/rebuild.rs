//! Rebuilding [`MessageRecord`]s from `messages` rows and the interned rows they
//! point to, streamed in rowid order.

use std::{ops::ControlFlow, rc::Rc};

use rusqlite::{OptionalExtension, Row, params};

use super::{
    MessageQuery, ReadError, Reader, StoredProcess, class_name, opcode_name, rcode_name, type_name,
};
use crate::{
    record::{
        Attribution, Direction, DnsFlags, DnsMessage, Edns, Malformed, MessageRecord, Pairing,
        ProcessInfo, Question, ResourceRecord, Transport,
    },
    service::Container,
    store::schema::{self, flags},
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

/// Answer sets whose text is larger than this are not cached (bounds the memory
/// a hostile or huge answer set can take).
const MAX_CACHED_SET_BYTES: usize = 16 * 1024;

impl Reader {
    /// Rebuilds the messages `query` selects, in rowid order, and hands each to
    /// `visit` until it breaks. Returns the last rowid read (whether or not it
    /// passed the time filter), for following new messages from there.
    pub fn messages<E: From<ReadError>>(
        &self,
        query: &MessageQuery<'_>,
        mut visit: impl FnMut(MessageRecord) -> Result<ControlFlow<()>, E>,
    ) -> Result<Option<i64>, E> {
        let order = if query.newest_first { "DESC" } else { "ASC" };
        let since = query.since_ns.unwrap_or(i64::MIN);
        let until = query.until_ns.unwrap_or(i64::MAX);
        let (first, last) = (query.ids.first, query.ids.last);
        // Schema 3's resolver links, when the store has them.
        let peers = if self.features.message_peers {
            "via_process_id, for_process_id"
        } else {
            "NULL, NULL"
        };
        let mut main = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, time_ns, flags, process_id, endpoint_id, local_port, remote_port, \
                 socket_cookie, dns_id, qname_id, qtype, qclass, rcode, answer_set_id, ttls, \
                 edns_udp_size, message_len, captured_len, latency_ns, socket_cgroup_id, {peers} \
                 FROM messages WHERE id BETWEEN ?1 AND ?2 ORDER BY id {order}"
            ))
            .map_err(ReadError::from)?;
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
        let mut rows = main.query(params![first, last]).map_err(ReadError::from)?;
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
        while let Some(row) = rows.next().map_err(ReadError::from)? {
            let stored = StoredMessage::from_row(row).map_err(ReadError::from)?;
            last_id = Some(stored.id);
            let mut bad = None;
            while let Some(next) = malformed.peek() {
                match next {
                    Ok((id, ..)) if before(*id, stored.id) => {
                        malformed.next();
                    }
                    Ok((id, ..)) if *id == stored.id => {
                        if let Some(Ok((_, error, raw))) = malformed.next() {
                            bad = Some(Malformed {
                                error,
                                raw_hex: hex::encode(raw),
                            });
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
            let mut questions = Vec::new();
            while let Some(next) = extra.peek() {
                match next {
                    Ok((id, ..)) if before(*id, stored.id) => {
                        extra.next();
                    }
                    Ok((id, name_id, qtype, qclass)) if *id == stored.id => {
                        let (name_id, qtype, qclass) = (*name_id, *qtype, *qclass);
                        extra.next();
                        questions.push(self.question(name_id, qtype, qclass)?);
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
                continue;
            }
            if let Some(filter) = query.processes
                && !filter.matches(stored.process_id, stored.socket_cgroup_id)
            {
                continue;
            }
            let record = self.rebuild(stored, bad, questions)?;
            if visit(record)?.is_break() {
                break;
            }
        }
        Ok(last_id)
    }

    /// [`crate::event::rfc3339`], formatting each second once: a stream has
    /// many messages a second.
    fn rfc3339(&self, ns: i64) -> String {
        let (second, fraction) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
        let mut cached = self.second.borrow_mut();
        match cached.as_ref() {
            Some((s, prefix)) if *s == second => format!("{prefix}.{fraction:09}Z"),
            _ => {
                let text = crate::event::rfc3339(ns);
                // `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`; anything else is not cached.
                if text.len() == 30 && text.as_bytes()[19] == b'.' {
                    *cached = Some((second, text[..19].to_owned()));
                }
                text
            }
        }
    }

    fn question(&self, name_id: i64, qtype: i64, qclass: i64) -> Result<Question, ReadError> {
        Ok(Question {
            name: self.name(name_id)?.to_string(),
            qtype: type_name(qtype as u16),
            class: class_name(qclass as u16),
        })
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
                rtype: type_name(rtype as u16),
                class: class_name(class as u16),
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

    fn rebuild(
        &self,
        m: StoredMessage,
        malformed: Option<Malformed>,
        extra_questions: Vec<Question>,
    ) -> Result<MessageRecord, ReadError> {
        let f = m.flags;
        let direction = if f & flags::RECEIVED != 0 {
            Direction::Received
        } else {
            Direction::Sent
        };
        let endpoint = self.endpoint(m.endpoint_id)?;
        let local = (endpoint.local_ip, m.local_port);
        let remote = (endpoint.remote_ip, m.remote_port);
        let ((src, sport), (dst, dport)) = match direction {
            Direction::Sent => (local, remote),
            Direction::Received => (remote, local),
        };
        let attribution = match (f & flags::ATTRIBUTION_MASK) >> flags::ATTRIBUTION_SHIFT {
            schema::attribution::SOCKET => Attribution::Socket,
            schema::attribution::SOCKET_LATE => Attribution::SocketLate,
            schema::attribution::PROCFS => Attribution::Procfs,
            _ => Attribution::Unknown,
        };
        let stored = match m.process_id {
            Some(id) => self.process(id)?,
            None => None,
        };
        let process = match stored.as_deref() {
            None => ProcessInfo {
                attribution: Some(attribution),
                ..ProcessInfo::default()
            },
            Some(p) => process_info(p, Some(attribution)),
        };
        // The store keeps neither the peers' attribution nor more than the
        // first process of `on_behalf_of`.
        let peer = |id: Option<i64>| -> Result<Option<ProcessInfo>, ReadError> {
            Ok(match id {
                Some(id) => self.process(id)?.map(|p| process_info(&p, None)),
                None => None,
            })
        };
        let via = peer(m.via_process_id)?;
        let on_behalf_of: Vec<ProcessInfo> = peer(m.for_process_id)?.into_iter().collect();
        let dns = if f & flags::MALFORMED != 0 {
            None
        } else {
            Some(self.dns_message(&m, extra_questions)?)
        };
        Ok(MessageRecord {
            kind: "message".into(),
            time: self.rfc3339(m.time_ns),
            time_ns: m.time_ns,
            direction,
            transport: if f & flags::TCP != 0 {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            src,
            sport,
            dst,
            dport,
            ifindex: endpoint.ifindex,
            interface: endpoint.interface.clone(),
            socket_cookie: m.socket_cookie as u64,
            socket_cgroup_id: m
                .socket_cgroup_id
                .map(|id| id as u64)
                .or(process.cgroup_id)
                .unwrap_or(0),
            process,
            message_len: m.message_len,
            captured_len: m.captured_len.unwrap_or(m.message_len),
            dns,
            malformed,
            pair: m.latency_ns.map(|latency| Pairing {
                query_time_ns: m.time_ns.saturating_sub(latency),
                latency_ns: latency.max(0) as u64,
            }),
            via,
            on_behalf_of,
            from_cache: None,
        })
    }

    fn dns_message(
        &self,
        m: &StoredMessage,
        extra_questions: Vec<Question>,
    ) -> Result<DnsMessage, ReadError> {
        let f = m.flags;
        let mut questions = Vec::with_capacity(1 + extra_questions.len());
        if let Some(name_id) = m.qname_id {
            questions.push(self.question(name_id, m.qtype.unwrap_or(0), m.qclass.unwrap_or(1))?);
        }
        questions.extend(extra_questions);
        let (mut answers, mut authority, mut additional) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(set_id) = m.answer_set_id {
            let ttls: Vec<u32> = match m.ttls.as_deref() {
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| ReadError::Corrupt(format!("message {} ttls: {e}", m.id)))?,
                None => Vec::new(),
            };
            for (index, record) in self.answer_set(set_id)?.iter().enumerate() {
                let rr = ResourceRecord {
                    name: record.name.to_string(),
                    rtype: record.rtype.clone(),
                    class: record.class.clone(),
                    ttl: ttls.get(index).copied().unwrap_or(0),
                    data: record.data.to_string(),
                };
                match record.section {
                    schema::section::ANSWER => answers.push(rr),
                    schema::section::AUTHORITY => authority.push(rr),
                    _ => additional.push(rr),
                }
            }
        }
        Ok(DnsMessage {
            id: m.dns_id.unwrap_or(0) as u16,
            response: f & flags::RESPONSE != 0,
            opcode: opcode_name(((f & flags::OPCODE_MASK) >> flags::OPCODE_SHIFT) as u8),
            rcode: rcode_name(m.rcode.unwrap_or(0) as u16),
            flags: DnsFlags {
                aa: f & flags::AA != 0,
                tc: f & flags::TC != 0,
                rd: f & flags::RD != 0,
                ra: f & flags::RA != 0,
                ad: f & flags::AD != 0,
                cd: f & flags::CD != 0,
            },
            questions,
            answers,
            authority,
            additional,
            edns: (f & flags::EDNS != 0).then(|| Edns {
                udp_size: m.edns_udp_size.unwrap_or(0) as u16,
                version: ((f & flags::EDNS_VERSION_MASK) >> flags::EDNS_VERSION_SHIFT) as u8,
                dnssec_ok: f & flags::DNSSEC_OK != 0,
            }),
        })
    }
}

fn process_info(p: &StoredProcess, attribution: Option<Attribution>) -> ProcessInfo {
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
        container: p.owner.container.as_ref().map(Container::full),
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
    ttls: Option<String>,
    edns_udp_size: Option<i64>,
    message_len: u32,
    captured_len: Option<u32>,
    latency_ns: Option<i64>,
    socket_cgroup_id: Option<i64>,
    via_process_id: Option<i64>,
    for_process_id: Option<i64>,
}

impl StoredMessage {
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
            ttls: row.get(14)?,
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
mod tests {
    use rusqlite::Connection;

    use super::*;

    #[test]
    fn cached_times_match_the_recorders() {
        let dir = std::env::temp_dir().join(format!("dnsq-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.db");
        let mut conn = Connection::open(&path).expect("create");
        crate::store::MIGRATIONS
            .to_latest(&mut conn)
            .expect("the schema");
        let reader = Reader::open(&path).expect("open");
        for ns in [
            0,
            -1,
            1_795_514_400_000_000_007,
            1_795_514_400_999_999_999,
            1_795_514_401_000_000_000,
            1_795_514_400_500_000_000,
        ] {
            assert_eq!(reader.rfc3339(ns), crate::event::rfc3339(ns), "{ns}");
        }
        drop(reader);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
