//! One batch of records → rows, inside the writer's transaction: the records'
//! messages packed into `message_chunks` (with their `malformed` and
//! `extra_questions` rows), a
//! `libc_lookups` row per libc lookup (its return filled in when it comes), the
//! batch's `time_index` minutes, and its facts, gathered for the writer to upsert.

use std::{
    collections::{VecDeque, hash_map::Entry},
    net::IpAddr,
    sync::Arc,
};

use foldhash::HashMap;
use rusqlite::{CachedStatement, Connection, params};

use super::{
    chunk::{self, Encoder, Ttls},
    facts::{DelegationKey, Facts, LookupKey, ResolutionKey},
    intern::{Caches, Interner},
    schema::{
        self, MinuteCounts, attribution, flags, libc_addresses, libc_function, libc_status, packed,
        role, section,
    },
};
use crate::{
    dns::{class_code, opcode_code, rcode_code, type_code},
    record::{
        Attribution, Direction, DnsContent, DnsMessage, LibcAnswer, LookupRecord, MessageRecord,
        ResourceRecord, Transport,
    },
};

const CNAME: i64 = 5;
const RTYPE_A: i64 = 1;
const RTYPE_AAAA: i64 = 28;

/// Writes one batch; [`Batch::finish`] adds what is aggregated over it.
pub(super) struct Batch<'a> {
    intern: Interner<'a>,
    insert_chunk: CachedStatement<'a>,
    insert_malformed: CachedStatement<'a>,
    insert_extra_question: CachedStatement<'a>,
    insert_lookup: CachedStatement<'a>,
    return_lookup: CachedStatement<'a>,
    /// The rows of the latest calls, which their returns fill in. The writer's,
    /// kept from batch to batch: a call and its return may be committed apart.
    call_rows: &'a mut CallRows,
    upsert_minute: CachedStatement<'a>,
    conn: &'a Connection,
    run_id: i64,
    /// The id the next message gets: one past the largest. The batch's
    /// transaction is the store's only writer.
    next_id: i64,
    /// The messages of the chunk being packed (the writer's: it keeps its
    /// buffers), and its first id and time.
    chunk: &'a mut Encoder,
    chunk_start: Option<(i64, i64)>,
    facts: Facts,
    /// minute → its ids and counts in this batch.
    minutes: HashMap<i64, MinuteSpan>,
    /// The minute of the previous message and its span so far: consecutive
    /// messages mostly share it, and spare the map.
    minute: Option<(i64, MinuteSpan)>,
    /// Answer-section records of the current message: (name id, type, rdata id,
    /// index in the section).
    answers: Vec<(i64, i64, i64, usize)>,
    /// The current message's answer set and TTLs, as JSON.
    records: String,
    ttls: String,
    /// The TTL every record of the current message has, if they all have one.
    same_ttl: Option<Option<u32>>,
}

/// Which call a lookup line is or answers: its caller's pid and thread and
/// the call's time.
fn call_key(record: &LookupRecord, call_time_ns: i64) -> CallKey {
    (record.process.pid, record.process.tid, call_time_ns)
}

/// A minute's messages in one batch: what its `time_index` row gets.
#[derive(Clone, Copy)]
struct MinuteSpan {
    first_id: i64,
    last_id: i64,
    counts: MinuteCounts,
}

impl MinuteSpan {
    fn merge(&mut self, other: &MinuteSpan) {
        self.first_id = self.first_id.min(other.first_id);
        self.last_id = self.last_id.max(other.last_id);
        self.counts.merge(&other.counts);
    }
}

/// The columns that come from the decoded message.
#[derive(Default, Clone, Copy)]
pub(super) struct DnsColumns {
    dns_id: Option<i64>,
    qname_id: Option<i64>,
    qtype: Option<i64>,
    qclass: Option<i64>,
    rcode: Option<i64>,
    answer_set_id: Option<i64>,
    edns_udp_size: Option<i64>,
    /// Questions the row does not hold (see [`Batch::extra_questions`]).
    extra_questions: bool,
}

/// What [`Batch::dns_columns`] made of one DNS content (a message but its ID),
/// kept for the next messages that share it (see `dns::RecentDecodes`): a
/// query asked again, an answer given again, the other loopback copy of a
/// packet. Its ids are the interner's, so it is kept in [`Caches`] and cleared
/// with them (a new message hour, a rollback).
pub(super) struct Made {
    /// Held so that its address, the key, is not reused.
    pub(super) content: Arc<DnsContent>,
    header: i64,
    /// Every column but `dns_id`.
    columns: DnsColumns,
    answers: Vec<(i64, i64, i64, usize)>,
    ttls: String,
    same_ttl: Option<Option<u32>>,
}

/// The `libc_lookups` rows of the latest [`MAX_CALL_ROWS`] calls, by (pid,
/// thread, call time): where their returns go. A return comes microseconds to
/// seconds after its call (a DNS timeout), so nearly always while its call is
/// among the latest.
#[derive(Default)]
pub(super) struct CallRows {
    rows: HashMap<CallKey, i64>,
    /// Oldest first.
    order: VecDeque<CallKey>,
}

type CallKey = (Option<u32>, Option<u32>, i64);

const MAX_CALL_ROWS: usize = 4096;

impl CallRows {
    fn insert(&mut self, key: CallKey, id: i64) {
        // The same call again: its batch is being written once more after a
        // failed commit.
        if let Some(known) = self.rows.get_mut(&key) {
            *known = id;
            return;
        }
        if self.order.len() >= MAX_CALL_ROWS
            && let Some(oldest) = self.order.pop_front()
        {
            self.rows.remove(&oldest);
        }
        self.order.push_back(key);
        self.rows.insert(key, id);
    }

    /// The row of a call. Kept after its return has used it: should the
    /// return's transaction fail, it is written again with the next one.
    fn row(&self, key: &CallKey) -> Option<i64> {
        self.rows.get(key).copied()
    }
}

impl<'a> Batch<'a> {
    pub fn new(
        tx: &'a Connection,
        caches: &'a mut Caches,
        call_rows: &'a mut CallRows,
        chunk: &'a mut Encoder,
        mut facts: Facts,
        run_id: i64,
    ) -> rusqlite::Result<Self> {
        // What a batch that failed part-way left.
        chunk.clear();
        facts.clear();
        Ok(Self {
            intern: Interner::new(tx, caches)?,
            insert_chunk: tx.prepare_cached(
                "INSERT INTO message_chunks (last_id, first_id, first_ns, data) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?,
            insert_malformed: tx.prepare_cached(
                "INSERT INTO malformed (message_id, error, raw) VALUES (?1, ?2, ?3)",
            )?,
            insert_extra_question: tx.prepare_cached(
                "INSERT INTO extra_questions (message_id, position, qname_id, qtype, qclass) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            insert_lookup: tx.prepare_cached(
                "INSERT INTO libc_lookups (time_ns, run_id, process_id, qname_id, function) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            // The call time too: a row id handed out in a transaction that was
            // then rolled back (a full disk) may since be another call's.
            return_lookup: tx.prepare_cached(
                "UPDATE libc_lookups SET returned_ns = ?1, status = ?2, addresses = ?3 \
                 WHERE id = ?4 AND time_ns = ?5",
            )?,
            call_rows,
            upsert_minute: tx.prepare_cached(
                // A NULL count (a minute from before schema 10, or one retention
                // cut into) stays NULL: min() and max() of a NULL are NULL too.
                "INSERT INTO time_index (minute, first_id, last_id, messages, queries, \
                 responses, malformed, queries_sent, answered, first_ns, last_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (minute) DO UPDATE SET first_id = min(first_id, excluded.first_id), \
                 last_id = max(last_id, excluded.last_id), \
                 messages = messages + excluded.messages, queries = queries + excluded.queries, \
                 responses = responses + excluded.responses, \
                 malformed = malformed + excluded.malformed, \
                 queries_sent = queries_sent + excluded.queries_sent, \
                 answered = answered + excluded.answered, \
                 first_ns = min(first_ns, excluded.first_ns), \
                 last_ns = max(last_ns, excluded.last_ns)",
            )?,
            conn: tx,
            run_id,
            next_id: tx.query_row(schema::NEXT_MESSAGE_ID, [], |row| row.get(0))?,
            chunk,
            chunk_start: None,
            facts,
            minutes: HashMap::default(),
            minute: None,
            answers: Vec::new(),
            records: String::new(),
            ttls: String::new(),
            same_ttl: None,
        })
    }

    pub fn message(&mut self, record: &MessageRecord) -> rusqlite::Result<()> {
        self.intern
            .at_hour(record.time_ns.div_euclid(schema::NS_PER_HOUR));
        let received = record.direction == Direction::Received;
        let (local, remote, local_port, remote_port) = if received {
            (record.dst, record.src, record.dport, record.sport)
        } else {
            (record.src, record.dst, record.sport, record.dport)
        };
        let endpoint_id =
            self.intern
                .endpoint(local, remote, record.ifindex, record.interface.as_deref())?;
        let process = self.intern.process_row(&record.process)?;
        let process_id = process.map(|row| row.id);
        // An identity without a row (no pid) is read from the record.
        let (attribution, cgroup_id) = process.map_or(
            (record.process.attribution, record.process.cgroup_id),
            |row| (row.attribution, row.cgroup_id),
        );
        // The first client a local resolver acted for; the resolver a client used.
        let for_process_id = match record.on_behalf_of.first() {
            Some(client) => self.intern.process(client)?,
            None => None,
        };
        let via_process_id = match &record.via {
            Some(resolver) => self.intern.process(resolver)?,
            None => None,
        };

        let mut bits = attribution_bits(attribution) << flags::ATTRIBUTION_SHIFT;
        if received {
            bits |= flags::RECEIVED;
        }
        if record.transport == Transport::Tcp {
            bits |= flags::TCP;
        }
        if record.malformed.is_some() {
            bits |= flags::MALFORMED;
        }
        let columns = match &record.dns {
            Some(dns) => {
                let (header, columns) = self.dns_made(dns)?;
                bits |= header;
                columns
            }
            None => {
                self.clear_answers();
                DnsColumns::default()
            }
        };
        let latency_ns = record
            .pair
            .map(|pair| i64::try_from(pair.latency_ns).unwrap_or(i64::MAX));
        let socket_cgroup_id = Some(record.socket_cgroup_id)
            .filter(|id| *id != 0 && Some(*id) != cgroup_id)
            .map(|id| id as i64);
        let captured_len = Some(record.captured_len).filter(|len| *len != record.message_len);
        let (port_bits, ports) =
            pack_ports(local_port, remote_port, columns.dns_id.unwrap_or(0) as u16);
        // The first question stays in the row only when it is class IN.
        let (qname_id, qtype) = if columns.qclass.unwrap_or(1) == 1 {
            (columns.qname_id, columns.qtype)
        } else {
            (None, None)
        };
        let rcode_bits = (columns.rcode.unwrap_or(0) & 0xfff) << packed::RCODE_SHIFT;
        let id = self.next_id;
        // In `chunk::COLUMNS` order; `ttls` is packed from `ttls` below.
        let values = [
            Some(record.time_ns),
            Some(self.run_id),
            Some(bits | port_bits | rcode_bits),
            process_id,
            Some(endpoint_id),
            Some(record.socket_cookie as i64),
            Some(ports),
            qname_id,
            qtype,
            columns.answer_set_id,
            None,
            columns.edns_udp_size,
            Some(i64::from(record.message_len)),
            captured_len.map(i64::from),
            latency_ns,
            socket_cgroup_id,
            for_process_id,
            via_process_id,
        ];
        // Every TTL the same: that one integer; otherwise the JSON array.
        let ttls = match self.same_ttl {
            _ if self.ttls.is_empty() => Ttls::Null,
            Some(Some(ttl)) => Ttls::Integer(i64::from(ttl)),
            _ => Ttls::Text(&self.ttls),
        };
        self.chunk.push(&values, ttls);
        self.chunk_start.get_or_insert((id, record.time_ns));
        self.next_id += 1;
        if self.chunk.len() == chunk::MAX_MESSAGES {
            self.insert_chunk()?;
        }

        let minute = record.time_ns.div_euclid(schema::NS_PER_MINUTE);
        let span = match &mut self.minute {
            Some((current, span)) if *current == minute => {
                span.first_id = span.first_id.min(id);
                span.last_id = span.last_id.max(id);
                span
            }
            _ => {
                self.close_minute();
                let span = MinuteSpan {
                    first_id: id,
                    last_id: id,
                    counts: MinuteCounts::default(),
                };
                &mut self.minute.insert((minute, span)).1
            }
        };
        span.counts.add(bits, record.time_ns, latency_ns.is_some());

        if let Some(malformed) = &record.malformed {
            let raw = hex::decode(&malformed.raw_hex)
                .unwrap_or_else(|_| malformed.raw_hex.as_bytes().to_vec());
            self.insert_malformed
                .execute(params![id, malformed.error, raw])?;
        }
        if let Some(dns) = &record.dns {
            if columns.extra_questions {
                self.extra_questions(id, dns)?;
            }
            let fact_process_id = self.intern.fact_process(process_id, &record.process)?;
            self.add_facts(
                record,
                dns,
                &columns,
                fact_process_id,
                endpoint_id,
                latency_ns,
            )?;
        }
        Ok(())
    }

    /// A libc lookup: one `libc_lookups` row. Lookups without a process or a name
    /// (neither comes from the kernel) are not kept.
    /// A call's answer is no call: it fills in its call's row and adds the
    /// `resolutions` facts of its addresses (see [`Batch::libc_answer`]).
    pub fn lookup(&mut self, record: &LookupRecord) -> rusqlite::Result<()> {
        self.intern
            .at_hour(record.time_ns.div_euclid(schema::NS_PER_HOUR));
        let Some(process_id) = self.intern.process(&record.process)? else {
            return Ok(());
        };
        if record.name.is_empty() {
            return Ok(());
        }
        // As a question name: with its trailing dot (`names` lower-cases).
        let qname_id = if record.name.ends_with('.') {
            self.intern.name(&record.name)?
        } else {
            self.intern.name(&format!("{}.", record.name))?
        };
        if let Some(answer) = &record.answer {
            return self.libc_answer(record, answer, process_id, qname_id);
        }
        let function = libc_function::code(&record.function).unwrap_or(0);
        self.insert_lookup.execute(params![
            record.time_ns,
            self.run_id,
            process_id,
            qname_id,
            function
        ])?;
        self.call_rows.insert(
            call_key(record, record.time_ns),
            self.conn.last_insert_rowid(),
        );
        // A fact as well, which `dnsq by-process` and `name` read: a caller that
        // asks a daemon over a Unix socket has no other trace when the daemon
        // answers from its cache.
        if let Some(fact_process_id) = self
            .intern
            .fact_process(Some(process_id), &record.process)?
        {
            let key = LookupKey {
                qname_id,
                process_id: fact_process_id,
                role: role::LIBC,
                qtype: function,
                rcode: schema::RCODE_QUERY,
                hour: record.time_ns.div_euclid(schema::NS_PER_HOUR),
            };
            self.facts.lookup(key, record.time_ns, None);
        }
        Ok(())
    }

    /// What a libc call returned: into its call's `libc_lookups` row (what
    /// `dnsq tail` shows), and its addresses as `resolutions` facts of the
    /// caller: `dnsq who IP` then finds it also when no DNS message of anyone
    /// carried the answer (a daemon's cache, /etc/hosts). libc does not say
    /// through which CNAMEs or from which server, so the owner is the name
    /// asked and the server [`schema::NO_SERVER`].
    fn libc_answer(
        &mut self,
        record: &LookupRecord,
        answer: &LibcAnswer,
        process_id: i64,
        qname_id: i64,
    ) -> rusqlite::Result<()> {
        let call_row = self.call_rows.row(&call_key(record, answer.call_time_ns));
        if let Some(id) = call_row {
            self.return_lookup.execute(params![
                record.time_ns,
                answer.status,
                libc_addresses::text(&answer.addresses, answer.truncated),
                id,
                answer.call_time_ns,
            ])?;
        }
        let Some(process_id) = self
            .intern
            .fact_process(Some(process_id), &record.process)?
        else {
            return Ok(());
        };
        let hour = record.time_ns.div_euclid(schema::NS_PER_HOUR);
        // The return, on the row of its status (schema 17). A call this writer
        // counted leaves its call row, as an answered query does; a return
        // whose call it did not see (before the recorder started) is counted
        // as a return only.
        let returned = LookupKey {
            qname_id,
            process_id,
            role: role::LIBC,
            qtype: libc_function::code(&record.function).unwrap_or(0),
            rcode: libc_status::rcode(answer.status),
            hour,
        };
        let latency_ns = call_row.map(|_| answer.latency_ns.max(0));
        self.facts.lookup(returned, record.time_ns, latency_ns);
        if call_row.is_some() {
            self.facts.answered(LookupKey {
                rcode: schema::RCODE_QUERY,
                hour: answer.call_time_ns.div_euclid(schema::NS_PER_HOUR),
                ..returned
            });
        }
        for address in &answer.addresses {
            let rtype = match address {
                IpAddr::V4(_) => RTYPE_A,
                IpAddr::V6(_) => RTYPE_AAAA,
            };
            let key = ResolutionKey {
                rdata_id: self.intern.rdata(&address.to_string())?,
                hour,
                rtype,
                name_id: qname_id,
                qname_id,
                process_id,
                endpoint_id: schema::NO_SERVER,
            };
            self.facts.resolution(key, record.time_ns);
        }
        Ok(())
    }

    /// Inserts the chunk of the messages packed so far, if any.
    fn insert_chunk(&mut self) -> rusqlite::Result<()> {
        let Some((first_id, first_ns)) = self.chunk_start.take() else {
            return Ok(());
        };
        let blob = self.chunk.finish();
        self.insert_chunk
            .execute(params![self.next_id - 1, first_id, first_ns, blob])?;
        Ok(())
    }

    /// Inserts the last chunk and upserts the batch's time-index minutes;
    /// returns its facts.
    pub fn finish(mut self) -> rusqlite::Result<Facts> {
        self.insert_chunk()?;
        self.close_minute();
        for (minute, span) in &self.minutes {
            let counts = &span.counts;
            self.upsert_minute.execute(params![
                minute,
                span.first_id,
                span.last_id,
                counts.messages,
                counts.queries,
                counts.responses,
                counts.malformed,
                counts.queries_sent,
                counts.answered,
                counts.first_ns,
                counts.last_ns,
            ])?;
        }
        Ok(self.facts)
    }

    /// Moves the current minute's range into `minutes`.
    fn close_minute(&mut self) {
        if let Some((minute, span)) = self.minute.take() {
            match self.minutes.entry(minute) {
                Entry::Occupied(mut entry) => entry.get_mut().merge(&span),
                Entry::Vacant(entry) => {
                    entry.insert(span);
                }
            }
        }
    }

    /// The message's header bits and columns, and its answers and TTLs in
    /// `answers`, `ttls` and `same_ttl`: made once for each content (see
    /// [`Made`]), so that a message asked or answered again, or the other
    /// loopback copy of a packet, costs no look-up of its names and data. A
    /// shared content's text is not even read: on a busy host the decoder's
    /// cache keeps it, long out of the processor's caches.
    fn dns_made(&mut self, dns: &DnsMessage) -> rusqlite::Result<(i64, DnsColumns)> {
        let dns_id = Some(i64::from(dns.id));
        if let Some(made) = self.intern.made(&dns.content) {
            self.answers.clone_from(&made.answers);
            self.ttls.clone_from(&made.ttls);
            self.same_ttl = made.same_ttl;
            return Ok((
                made.header,
                DnsColumns {
                    dns_id,
                    ..made.columns
                },
            ));
        }
        self.clear_answers();
        let header = header_bits(dns);
        let columns = self.dns_columns(dns)?;
        self.intern.remember_made(Made {
            content: Arc::clone(&dns.content),
            header,
            columns: DnsColumns {
                dns_id: None,
                ..columns
            },
            answers: self.answers.clone(),
            ttls: self.ttls.clone(),
            same_ttl: self.same_ttl,
        });
        Ok((header, columns))
    }

    /// Empties `answers`, `ttls` and `same_ttl` for a message that has none yet.
    fn clear_answers(&mut self) {
        self.answers.clear();
        self.ttls.clear();
        self.same_ttl = None;
    }

    fn dns_columns(&mut self, dns: &DnsMessage) -> rusqlite::Result<DnsColumns> {
        let mut columns = DnsColumns {
            dns_id: Some(i64::from(dns.id)),
            rcode: rcode_code(&dns.rcode).map(i64::from),
            edns_udp_size: dns.edns.map(|edns| i64::from(edns.udp_size)),
            ..DnsColumns::default()
        };
        if let Some(question) = dns.questions.first() {
            columns.qname_id = Some(self.intern.name(&question.name)?);
            columns.qtype = type_code(&question.qtype).map(i64::from);
            columns.qclass = class_code(&question.class).map(i64::from);
        }
        columns.extra_questions =
            dns.questions.len() > 1 || columns.qclass.is_some_and(|class| class != 1);
        self.records.clear();
        let sections = [
            (section::ANSWER, &dns.answers),
            (section::AUTHORITY, &dns.authority),
            (section::ADDITIONAL, &dns.additional),
        ];
        for (section, rrs) in sections {
            for (index, rr) in rrs.iter().enumerate() {
                let (name_id, rtype, class, rdata_id) = self.resource_record(rr)?;
                let open = if self.records.is_empty() { "[[" } else { ",[" };
                self.records.push_str(open);
                for (i, value) in [section, name_id, rtype, class, rdata_id]
                    .into_iter()
                    .enumerate()
                {
                    if i > 0 {
                        self.records.push(',');
                    }
                    push_int(&mut self.records, value);
                }
                self.records.push(']');
                self.same_ttl = match (self.ttls.is_empty(), self.same_ttl) {
                    (true, _) => Some(Some(rr.ttl)),
                    (false, Some(Some(ttl))) if ttl == rr.ttl => Some(Some(ttl)),
                    _ => Some(None),
                };
                self.ttls.push(if self.ttls.is_empty() { '[' } else { ',' });
                push_int(&mut self.ttls, i64::from(rr.ttl));
                if section == section::ANSWER {
                    self.answers.push((name_id, rtype, rdata_id, index));
                }
            }
        }
        if !self.records.is_empty() {
            self.records.push(']');
            self.ttls.push(']');
            columns.answer_set_id = Some(self.intern.answer_set(&self.records)?);
        }
        Ok(columns)
    }

    fn resource_record(&mut self, rr: &ResourceRecord) -> rusqlite::Result<(i64, i64, i64, i64)> {
        let name_id = self.intern.name(&rr.name)?;
        let rtype = type_code(&rr.rtype).map_or(0, i64::from);
        let class = class_code(&rr.class).map_or(0, i64::from);
        let rdata_id = self.intern.rdata(&rr.data)?;
        Ok((name_id, rtype, class, rdata_id))
    }

    /// The questions after the first, and a first one of another class than IN:
    /// rows of `extra_questions`.
    fn extra_questions(&mut self, id: i64, dns: &DnsMessage) -> rusqlite::Result<()> {
        // A first question of another class than IN is kept here too (the
        // `messages` row has no class column).
        let skip = match dns.questions.first() {
            Some(first) if class_code(&first.class).map_or(1, i64::from) != 1 => 0,
            _ => 1,
        };
        for (position, question) in dns.questions.iter().enumerate().skip(skip) {
            let qname_id = self.intern.name(&question.name)?;
            let qtype = type_code(&question.qtype).map_or(0, i64::from);
            let qclass = class_code(&question.class).map_or(0, i64::from);
            self.insert_extra_question.execute(params![
                id,
                position as i64,
                qname_id,
                qtype,
                qclass
            ])?;
        }
        Ok(())
    }

    fn add_facts(
        &mut self,
        record: &MessageRecord,
        dns: &DnsMessage,
        columns: &DnsColumns,
        process_id: Option<i64>,
        endpoint_id: i64,
        latency_ns: Option<i64>,
    ) -> rusqlite::Result<()> {
        let time_ns = record.time_ns;
        let hour = time_ns.div_euclid(schema::NS_PER_HOUR);
        let process_id = process_id.unwrap_or(schema::UNKNOWN_PROCESS);
        let received = record.direction == Direction::Received;
        if let Some(qname_id) = columns.qname_id {
            // Client: sent the query / received the response.
            let role = if received == dns.response {
                role::CLIENT
            } else {
                role::SERVER
            };
            let rcode = if dns.response {
                schema::response_rcode(columns.rcode.unwrap_or(0), dns.flags.tc)
            } else {
                schema::RCODE_QUERY
            };
            let key = LookupKey {
                process_id,
                hour,
                role,
                qname_id,
                qtype: columns.qtype.unwrap_or(0),
                rcode,
            };
            self.facts.lookup(key, time_ns, latency_ns);
            if let (Some(pair), true) = (record.pair, dns.response) {
                // The query was answered: from now on it counts on this row.
                self.facts.answered(LookupKey {
                    hour: pair.query_time_ns.div_euclid(schema::NS_PER_HOUR),
                    rcode: schema::RCODE_QUERY,
                    ..key
                });
            }
        }
        // This process (a resolver) worked for that client on this name.
        let delegation = |qname_id, client_process_id| DelegationKey {
            resolver_process_id: process_id,
            hour,
            qname_id,
            qtype: columns.qtype.unwrap_or(0),
            client_process_id,
        };
        if !dns.response {
            // A resolver daemon's query for a name that processes had asked libc
            // for (they sent no query of their own): a delegation to each.
            if !received && let Some(qname_id) = columns.qname_id {
                for client in record.on_behalf_of.iter().filter(|p| p.from_libc_call()) {
                    let client_id = self.intern.process(client)?;
                    let Some(client_process_id) = self.intern.fact_process(client_id, client)?
                    else {
                        continue;
                    };
                    let key = delegation(qname_id, client_process_id);
                    self.facts.delegation(key, time_ns, false);
                }
            }
            return Ok(());
        }
        // A local resolver's answer to a local client it could name.
        if let (Some(from_cache), Some(client), Some(qname_id)) = (
            record.from_cache,
            record.on_behalf_of.first(),
            columns.qname_id,
        ) && !received
            && let client_id = self.intern.process(client)?
            && let Some(client_process_id) = self.intern.fact_process(client_id, client)?
        {
            let key = delegation(qname_id, client_process_id);
            self.facts.delegation(key, time_ns, from_cache);
        }
        for &(name_id, rtype, rdata_id, index) in &self.answers {
            if received {
                let key = ResolutionKey {
                    rdata_id,
                    hour,
                    rtype,
                    name_id,
                    qname_id: columns.qname_id.unwrap_or(name_id),
                    process_id,
                    endpoint_id,
                };
                self.facts.resolution(key, time_ns);
            }
            if rtype == CNAME {
                let target_id = self.intern.name(&dns.answers[index].data)?;
                self.facts.cname(target_id, name_id, time_ns);
            }
        }
        Ok(())
    }
}

/// The `bits` that say where port 53 is and the `ports` column (schema.rs
/// [`packed`]): the DNS id as a signed 16-bit number on top keeps the value in
/// 4 bytes when one port is 53, in 6 otherwise.
pub(super) fn pack_ports(local: u16, remote: u16, dns_id: u16) -> (i64, i64) {
    let id = i64::from(dns_id as i16);
    if remote == 53 {
        (packed::REMOTE_PORT_53, (id << 16) | i64::from(local))
    } else if local == 53 {
        (packed::LOCAL_PORT_53, (id << 16) | i64::from(remote))
    } else {
        (0, (id << 32) | (i64::from(local) << 16) | i64::from(remote))
    }
}

/// Decimal digits of `value`, without going through `fmt`.
fn push_int(out: &mut String, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push('-');
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

fn attribution_bits(attribution: Option<Attribution>) -> i64 {
    match attribution {
        Some(Attribution::Socket) => attribution::SOCKET,
        Some(Attribution::SocketLate) => attribution::SOCKET_LATE,
        Some(Attribution::Procfs) => attribution::PROCFS,
        Some(Attribution::Unknown) | None => attribution::UNKNOWN,
    }
}

fn header_bits(dns: &DnsMessage) -> i64 {
    let mut bits = 0;
    let header = [
        (dns.response, flags::RESPONSE),
        (dns.flags.aa, flags::AA),
        (dns.flags.tc, flags::TC),
        (dns.flags.rd, flags::RD),
        (dns.flags.ra, flags::RA),
        (dns.flags.ad, flags::AD),
        (dns.flags.cd, flags::CD),
    ];
    for (set, bit) in header {
        if set {
            bits |= bit;
        }
    }
    if let Some(edns) = dns.edns {
        bits |= flags::EDNS;
        if edns.dnssec_ok {
            bits |= flags::DNSSEC_OK;
        }
        bits |= i64::from(edns.version) << flags::EDNS_VERSION_SHIFT;
    }
    let opcode = opcode_code(&dns.opcode).unwrap_or(0);
    bits | (i64::from(opcode) << flags::OPCODE_SHIFT)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{
        pipeline::Sink,
        record::{
            Attribution, Direction, DnsContent, DnsMessage, LookupRecord, MessageRecord,
            ProcessInfo, Question, Transport,
        },
    };

    fn process(pid: u32, comm: &str, attribution: Option<Attribution>) -> ProcessInfo {
        ProcessInfo {
            attribution,
            pid: Some(pid),
            tid: Some(pid),
            uid: Some(0),
            gid: Some(0),
            comm: Some(comm.to_owned()),
            ..ProcessInfo::default()
        }
    }

    /// systemd-resolved's upstream query for `name`, on behalf of `clients`.
    fn upstream_query(time_ns: i64, name: &str, clients: Vec<ProcessInfo>) -> MessageRecord {
        MessageRecord {
            kind: "message".into(),
            time: crate::record::Rfc3339(time_ns),
            time_ns,
            direction: Direction::Sent,
            transport: Transport::Udp,
            src: "198.18.0.1".parse().unwrap(),
            sport: 40_000,
            dst: "198.18.0.2".parse().unwrap(),
            dport: 53,
            ifindex: 2,
            interface: None,
            socket_cookie: 7,
            socket_cgroup_id: 1,
            process: process(150, "systemd-resolve", Some(Attribution::Socket)).into(),
            message_len: 40,
            captured_len: 40,
            dns: Some(
                DnsMessage::new(
                    9,
                    DnsContent {
                        questions: vec![Question {
                            name: name.to_owned(),
                            qtype: "A".to_owned().into(),
                            class: "IN".to_owned().into(),
                        }],
                        ..DnsContent::default()
                    },
                )
                .into(),
            ),
            malformed: None,
            pair: None,
            via: None,
            on_behalf_of: clients.into_iter().map(Arc::new).collect(),
            from_cache: None,
        }
    }

    /// Every row `sql` selects, as a tuple.
    fn select<T>(conn: &rusqlite::Connection, sql: &str) -> Vec<T>
    where
        T: for<'a> TryFrom<&'a rusqlite::Row<'a>, Error = rusqlite::Error>,
    {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |row| T::try_from(row))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn libc_lookups_and_their_delegations_are_stored() {
        let dir = std::env::temp_dir().join(format!("dnsq-insert-libc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("dnsq.db");
        let mut store = crate::store::open_for_writing(&db).unwrap();
        let now = super::super::writer::now_ns();
        let app = process(812, "curl", None);
        store
            .write_lookup(LookupRecord {
                kind: "lookup".into(),
                time: crate::record::Rfc3339(now),
                time_ns: now,
                function: "gethostbyname2_r".into(),
                name: "GitHub.com".into(),
                process: app.clone().into(),
                answer: None,
            })
            .unwrap();
        // What a call returned: no call of its own, but facts.
        store
            .write_lookup(LookupRecord {
                kind: "lookup_answer".into(),
                time: crate::record::Rfc3339(now + 500),
                time_ns: now + 500,
                function: "gethostbyname2_r".into(),
                name: "GitHub.com".into(),
                process: app.clone().into(),
                answer: Some(crate::record::LibcAnswer {
                    call_time_ns: now,
                    latency_ns: 500,
                    status: 0,
                    error: None,
                    addresses: vec![
                        "192.0.2.80".parse().unwrap(),
                        "2001:db8::80".parse().unwrap(),
                    ],
                    truncated: false,
                }),
            })
            .unwrap();
        // A return whose call is not the one above (another call time) fills
        // in nothing; a call with no return keeps NULLs.
        let mut stray = LookupRecord {
            kind: "lookup_answer".into(),
            time: crate::record::Rfc3339(now + 600),
            time_ns: now + 600,
            function: "getaddrinfo".into(),
            name: "GitHub.com".into(),
            process: app.clone().into(),
            answer: Some(crate::record::LibcAnswer {
                call_time_ns: now - 1,
                latency_ns: 601,
                status: -2,
                error: Some("EAI_NONAME".into()),
                addresses: vec![],
                truncated: false,
            }),
        };
        store.write_lookup(stray.clone()).unwrap();
        stray.kind = "lookup".into();
        stray.answer = None;
        stray.time_ns = now + 700;
        store.write_lookup(stray).unwrap();
        // Linked through the lookup: a delegation. Linked through a local
        // exchange (a client with an attribution): counted on the resolver's
        // answer to that client instead, not here.
        store
            .write(upstream_query(now + 1_000, "github.com.", vec![app]))
            .unwrap();
        let socket_client = process(813, "dig", Some(Attribution::Socket));
        store
            .write(upstream_query(
                now + 2_000,
                "example.com.",
                vec![socket_client],
            ))
            .unwrap();
        store.finish("test").unwrap();
        drop(store);

        let conn = rusqlite::Connection::open(&db).unwrap();
        type Call = (String, i64, i64, Option<i64>, Option<i64>, Option<String>);
        let calls: Vec<Call> = select(
            &conn,
            "SELECT n.name, l.function, p.pid, l.returned_ns, l.status, l.addresses \
             FROM libc_lookups l \
             JOIN names n ON n.id = l.qname_id JOIN processes p ON p.id = l.process_id \
             ORDER BY l.id",
        );
        let returned = "192.0.2.80 2001:db8::80".to_owned();
        assert_eq!(
            calls,
            [
                (
                    "github.com.".to_owned(),
                    5,
                    812,
                    Some(now + 500),
                    Some(0),
                    Some(returned)
                ),
                ("github.com.".to_owned(), 1, 812, None, None, None),
            ]
        );
        // And facts, the rows `dnsq by-process` reads, of curl without its
        // thread: the call of gethostbyname2_r (5) returned, so it left its call
        // row (-1) for the row of its status (65536 + 0), paired with its
        // latency; the stray return (EAI_NONAME, -2) is a return whose call was
        // not seen (paired 0); the call with no return stays a call.
        // (pid, function, rcode, count, paired, latency_sum_ns, tid)
        type Fact = (i64, i64, i64, i64, i64, i64, Option<i64>);
        let facts: Vec<Fact> = select(
            &conn,
            "SELECT p.pid, l.qtype, l.rcode, l.count, l.paired, l.latency_sum_ns, p.tid \
             FROM lookups l JOIN processes p ON p.id = l.process_id WHERE l.role = 2 \
             ORDER BY l.qtype DESC, l.rcode",
        );
        assert_eq!(
            facts,
            [
                (812, 5, super::libc_status::rcode(0), 1, 1, 500, None),
                (812, 1, -1, 1, 0, 0, None),
                (812, 1, super::libc_status::rcode(-2), 1, 0, 0, None),
            ]
        );
        // The answers are no calls: two calls in `libc_lookups`.
        let calls: i64 = conn
            .query_row("SELECT count(*) FROM libc_lookups", [], |row| row.get(0))
            .unwrap();
        assert_eq!(calls, 2);
        // Its addresses are resolutions of the name asked, to curl (without its
        // thread), from no server.
        type Answer = (String, i64, String, String, i64, Option<i64>, i64);
        let answers: Vec<Answer> = select(
            &conn,
            "SELECT d.data, r.rtype, n.name, q.name, p.pid, p.tid, r.endpoint_id \
             FROM resolutions r JOIN rdata d ON d.id = r.rdata_id \
             JOIN names n ON n.id = r.name_id JOIN names q ON q.id = r.qname_id \
             JOIN processes p ON p.id = r.process_id ORDER BY r.rtype",
        );
        let github = "github.com.".to_owned();
        assert_eq!(
            answers,
            [
                (
                    "192.0.2.80".to_owned(),
                    1,
                    github.clone(),
                    github.clone(),
                    812,
                    None,
                    0
                ),
                (
                    "2001:db8::80".to_owned(),
                    28,
                    github.clone(),
                    github,
                    812,
                    None,
                    0
                ),
            ]
        );
        let delegations: Vec<(i64, i64, String, i64, i64)> = select(
            &conn,
            "SELECT r.pid, c.pid, n.name, d.upstream, d.cached FROM delegations d \
             JOIN processes r ON r.id = d.resolver_process_id \
             JOIN processes c ON c.id = d.client_process_id \
             JOIN names n ON n.id = d.qname_id",
        );
        assert_eq!(delegations, [(150, 812, "github.com.".to_owned(), 1, 0)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn integers_as_text() {
        for value in [0, 7, 10, 65_535, -1, i64::MAX, i64::MIN] {
            let mut text = String::new();
            super::push_int(&mut text, value);
            assert_eq!(text, value.to_string());
        }
    }
}
