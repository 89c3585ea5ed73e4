//! The recorder's one path for data: raw event → packet → (TCP reassembly) → DNS
//! message → decode → pair → attribute → sink.
//!
//! Messages whose socket owner the kernel did not know yet wait briefly (see
//! [`crate::attribution`]) before they go to the sink; everything else goes at once.
//!
//! Libc lookups (the uprobes' events, a ring buffer of their own) join the same
//! time-ordered queue before the resolver linker, which joins them to the DNS
//! queries a resolver daemon sends for them.

use std::{collections::VecDeque, sync::Arc, time::Instant};

use dnsq_common::lookup_fn;

use crate::{
    attribution::{Attributor, Owner, OwnerMap, SocketId},
    dns::{self, QuestionKey},
    event::{self, LibcEvent, Packet, WallClock},
    identities::Identities,
    pairing::{Pairer, QueryKey},
    procinfo::ProcInfo,
    record::{
        Attribution, LibcAnswer, LookupRecord, Malformed, MessageRecord, ProcessInfo, Rfc3339,
        Transport,
    },
    resolvers::ResolverLinker,
    tcp::{Reassembler, Segment, StreamKey, StreamOutput},
};

/// How long a message without a known owner waits for the kernel to learn it.
const ATTRIBUTION_WAIT_NS: u64 = 200_000_000;
/// Every record waits this long after its packet before it goes to the sink, in
/// time order: the resolver linker must see both ends of a local exchange in the
/// order they happened, even when one end waited for its owner.
const LINK_DELAY_NS: i64 = ATTRIBUTION_WAIT_NS as i64 + 50_000_000;
/// How long a query waits for its response before it counts as unanswered.
const QUERY_TIMEOUT_NS: i64 = 30_000_000_000;
/// Most queries in flight tracked for pairing.
const MAX_PENDING_QUERIES: usize = 65_536;
/// Most messages waiting for attribution; beyond it they are attributed at once.
const MAX_DEFERRED: usize = 65_536;
/// How often the boot-time → wall-clock offset is re-read.
const CLOCK_REFRESH_SECS: u64 = 10;
/// libc calls its own probed functions: `gethostbyname` calls `gethostbyname_r`,
/// `gethostbyname2` calls `gethostbyname2_r`, `getaddrinfo` calls
/// `gethostbyname2_r` in some paths (the internal call goes to the exported
/// function's address, so its uprobe fires too). A `_r` call by the same thread
/// for the same name this soon after one of the others is such an inner call,
/// not a lookup of its own. (Uprobes on entry cannot see the outer call return.)
const NESTED_CALL_NS: u64 = 1_000_000_000;
/// Recent outer calls remembered for that.
const MAX_OUTER_CALLS: usize = 256;
/// Calls remembered for their answers: the oldest goes first, so a call whose
/// answer comes after this many later calls (a slow lookup under a burst of
/// others) has its answer counted unmatched.
const MAX_RECENT_CALLS: usize = 1024;
/// While events keep coming (a consumer behind never finds the ring empty, so
/// the capture loop's tick never runs), the periodic work runs from the event
/// path this often: every this many events, if the last tick is this old.
const TICK_CHECK_EVENTS: u64 = 256;
const TICK_EVERY_NS: u64 = 20_000_000;

/// Where finished records go: stdout JSON (`--print`) or the store.
pub trait Sink {
    fn write(&mut self, record: MessageRecord) -> anyhow::Result<()>;
    /// A libc lookup. Every sink keeps them: the store has a table for them.
    fn write_lookup(&mut self, record: LookupRecord) -> anyhow::Result<()>;
    fn flush(&mut self) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PipelineStats {
    /// Ring-buffer records received.
    pub events: u64,
    /// Records that were not a valid event (a recorder/probe mismatch).
    pub bad_events: u64,
    /// DNS messages handed to the sink.
    pub messages: u64,
    pub malformed: u64,
    /// Messages whose owner was found by none of the means.
    pub unattributed: u64,
    pub unanswered_queries: u64,
    /// Messages linked to the local resolver or the clients behind them.
    pub resolver_links: u64,
    /// Libc lookup events received from the kernel.
    pub lookup_events: u64,
    /// Libc lookups handed to the sink.
    pub lookups: u64,
    /// What calls returned, handed to the sink (`"lookup_answer"` records).
    pub lookup_answers: u64,
    /// Answers whose call was not among the recent calls remembered.
    pub lookup_answers_unmatched: u64,
    /// Lookup events not handed on: libc's own inner call of another probed
    /// function (`gethostbyname` → `gethostbyname_r`), or a numeric address
    /// (`getaddrinfo("192.0.2.1", …)` asks nobody), and their answers.
    pub lookups_skipped: u64,
    /// Messages that shared the decoding of a message seen lately with the same
    /// bytes but perhaps the ID (see [`dns::RecentDecodes`]).
    pub decodes_shared: u64,
}

struct Waiting {
    record: MessageRecord,
    question: Option<QuestionKey>,
    socket: SocketId,
    due_boot_ns: u64,
}

/// A record in the time-ordered queue before the resolver linker.
enum Linked {
    /// With its question key, for the linker.
    Message(MessageRecord, Option<QuestionKey>),
    Lookup(LookupRecord),
}

impl Linked {
    fn time_ns(&self) -> i64 {
        match self {
            Self::Message(record, _) => record.time_ns,
            Self::Lookup(record) => record.time_ns,
        }
    }
}

/// A call whose answer has not come yet (each thread has at most a few under
/// way: libc's inner calls).
struct RecentCall {
    tid: u32,
    pid: u32,
    boot_ns: u64,
    name: Vec<u8>,
    /// Handed on (not an inner call, not a numeric address).
    kept: bool,
    /// What its inner `_r` call returned: `gethostbyname`'s own `h_errno` is
    /// thread-local storage no program can find, but it is the inner call's,
    /// which the inner call's probe reads through its `h_errnop`.
    inner_status: Option<i32>,
}

/// A `getaddrinfo`/`gethostbyname`/`gethostbyname2` call, whose inner `_r` calls
/// are skipped.
struct OuterCall {
    tid: u32,
    pid: u32,
    name: Vec<u8>,
    boot_ns: u64,
}

pub struct Pipeline<M, S> {
    clock: WallClock,
    clock_read: Instant,
    /// TCP streams; each keeps its latest packet (without payload) to describe the
    /// messages it gives out.
    streams: Reassembler<Packet>,
    stream_output: Vec<(Packet, StreamOutput)>,
    pairer: Pairer,
    resolvers: ResolverLinker,
    /// Attributed records and lookups waiting for `LINK_DELAY_NS`, ordered by time.
    linking: VecDeque<Linked>,
    outer_calls: VecDeque<OuterCall>,
    /// Calls waiting for their answers.
    recent_calls: VecDeque<RecentCall>,
    attributor: Attributor<M>,
    identities: Identities,
    decodes: dns::RecentDecodes,
    waiting: VecDeque<Waiting>,
    sink: S,
    stats: PipelineStats,
    /// Boot time of the last [`Self::tick`].
    last_tick_ns: u64,
}

impl<M: OwnerMap, S: Sink> Pipeline<M, S> {
    pub fn new(attributor: Attributor<M>, procinfo: ProcInfo, sink: S) -> Self {
        Self {
            clock: WallClock::now(),
            clock_read: Instant::now(),
            streams: Reassembler::new(Default::default()),
            stream_output: Vec::new(),
            pairer: Pairer::new(QUERY_TIMEOUT_NS, MAX_PENDING_QUERIES),
            resolvers: ResolverLinker::default(),
            linking: VecDeque::new(),
            outer_calls: VecDeque::new(),
            recent_calls: VecDeque::new(),
            attributor,
            identities: Identities::new(procinfo),
            decodes: dns::RecentDecodes::new(),
            waiting: VecDeque::new(),
            sink,
            stats: PipelineStats::default(),
            last_tick_ns: WallClock::boot_now_ns(),
        }
    }

    pub fn stats(&self) -> PipelineStats {
        PipelineStats {
            unanswered_queries: self.pairer.unanswered,
            resolver_links: self.resolvers.linked,
            decodes_shared: self.decodes.shared,
            ..self.stats
        }
    }

    /// Whether anything waits here for time to pass ([`Self::tick`]): records
    /// held for linking or for their owner, or part of a TCP message.
    pub fn holds_records(&self) -> bool {
        !self.linking.is_empty() || !self.waiting.is_empty() || self.streams.holds_data()
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// One ring-buffer record.
    pub fn handle_event(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stats.events += 1;
        if self.stats.events.is_multiple_of(TICK_CHECK_EVENTS)
            && WallClock::boot_now_ns().saturating_sub(self.last_tick_ns) >= TICK_EVERY_NS
        {
            self.tick()?;
        }
        match event::parse(bytes) {
            Ok((packet, payload)) => self.handle_packet(packet, payload),
            Err(error) => {
                self.stats.bad_events += 1;
                tracing::warn!(%error, "dropping an event the recorder cannot read");
                Ok(())
            }
        }
    }

    /// One record of the lookup ring buffer.
    pub fn handle_lookup_event(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stats.lookup_events += 1;
        let lookup = match event::parse_libc(bytes) {
            Ok(LibcEvent::Call(lookup)) => lookup,
            Ok(LibcEvent::Answer(answer)) => return self.handle_lookup_answer(&answer),
            Err(error) => {
                self.stats.bad_events += 1;
                tracing::warn!(%error, "dropping a lookup event the recorder cannot read");
                return Ok(());
            }
        };
        let skip = self.nested(&lookup) || numeric(&lookup.name);
        self.remember_call(&lookup, !skip);
        if skip {
            self.stats.lookups_skipped += 1;
            return Ok(());
        }
        let time_ns = self.clock.to_unix_ns(lookup.boot_ns);
        let record = LookupRecord {
            kind: "lookup".into(),
            time: Rfc3339(time_ns),
            time_ns,
            function: lookup_fn::name(lookup.function).unwrap_or("unknown").into(),
            name: LookupRecord::escape_name(&lookup.name),
            process: self.caller(&lookup.caller),
            answer: None,
        };
        self.enqueue(Linked::Lookup(record))
    }

    /// What a call returned: named by the call it answers (the thread's call
    /// stamped as the answer says). The answer to a call that was not handed on
    /// (libc's own inner call, a numeric address) is skipped too; one to a call
    /// not seen (or no longer remembered) is counted unmatched.
    fn handle_lookup_answer(&mut self, answer: &event::LookupAnswer) -> anyhow::Result<()> {
        // From the newest: the call is nearly always one of the last.
        let at = self.recent_calls.iter().rposition(|call| {
            call.tid == answer.caller.tid
                && call.pid == answer.caller.pid
                && call.boot_ns == answer.call_boot_ns
        });
        let Some(call) = at.and_then(|at| self.recent_calls.remove(at)) else {
            self.stats.lookup_answers_unmatched += 1;
            return Ok(());
        };
        if !call.kept {
            self.stats.lookups_skipped += 1;
            self.pass_to_outer_call(&call, answer.status);
            return Ok(());
        }
        // A gethostbyname/gethostbyname2 that failed: why is its inner call's.
        let status = match call.inner_status {
            Some(inner) if answer.status == dnsq_common::STATUS_NO_HOSTENT => inner,
            _ => answer.status,
        };
        let name = LookupRecord::escape_name(&call.name);
        let call_time_ns = self.clock.to_unix_ns(call.boot_ns);
        let time_ns = self.clock.to_unix_ns(answer.boot_ns);
        let record = LookupRecord {
            kind: "lookup_answer".into(),
            time: Rfc3339(time_ns),
            time_ns,
            function: lookup_fn::name(answer.function).unwrap_or("unknown").into(),
            name,
            process: self.caller(&answer.caller),
            answer: Some(LibcAnswer {
                call_time_ns,
                latency_ns: time_ns - call_time_ns,
                status,
                error: LibcAnswer::error_name(answer.function, status).map(str::to_owned),
                addresses: answer.addresses.clone(),
                truncated: answer.truncated,
            }),
        };
        self.enqueue(Linked::Lookup(record))
    }

    /// Hands the status of a skipped call (libc's inner `_r` call) to the call
    /// it was made in: the thread's newest call for the same name, made before
    /// it and handed on. Only a failure's `h_errno` is of use there.
    fn pass_to_outer_call(&mut self, inner: &RecentCall, status: i32) {
        if status == 0 || status == dnsq_common::STATUS_NO_HOSTENT {
            return;
        }
        let outer = self.recent_calls.iter_mut().rev().find(|call| {
            call.tid == inner.tid
                && call.pid == inner.pid
                && call.boot_ns < inner.boot_ns
                && call.name.eq_ignore_ascii_case(&inner.name)
        });
        if let Some(outer) = outer.filter(|call| call.kept) {
            outer.inner_status = Some(status);
        }
    }

    /// Remembers a call for its answer (the latest [`MAX_RECENT_CALLS`]).
    fn remember_call(&mut self, lookup: &event::Lookup, kept: bool) {
        if self.recent_calls.len() >= MAX_RECENT_CALLS {
            self.recent_calls.pop_front();
        }
        self.recent_calls.push_back(RecentCall {
            tid: lookup.caller.tid,
            pid: lookup.caller.pid,
            boot_ns: lookup.boot_ns,
            name: lookup.name.clone(),
            kept,
            inner_status: None,
        });
    }

    /// The process of a libc call: the kernel saw the caller itself, so there is
    /// no socket and no attribution.
    fn caller(&mut self, caller: &dnsq_common::SockOwner) -> Arc<ProcessInfo> {
        let (_, owner) = Owner::from_kernel(caller);
        let mut process = self.identities.build(Attribution::Socket, Some(owner));
        process.attribution = None;
        Arc::new(process)
    }

    /// Whether `lookup` is libc's inner `_r` call of an outer call just seen on
    /// the same thread for the same name; remembers outer calls (the latest of
    /// each thread).
    fn nested(&mut self, lookup: &event::Lookup) -> bool {
        let (pid, tid) = (lookup.caller.pid, lookup.caller.tid);
        match lookup.function {
            lookup_fn::GETHOSTBYNAME_R | lookup_fn::GETHOSTBYNAME2_R => {
                self.outer_calls.iter().any(|call| {
                    call.tid == tid
                        && call.pid == pid
                        && call.name.eq_ignore_ascii_case(&lookup.name)
                        && lookup.boot_ns.saturating_sub(call.boot_ns) <= NESTED_CALL_NS
                })
            }
            _ => {
                self.outer_calls
                    .retain(|call| call.tid != tid || call.pid != pid);
                if self.outer_calls.len() >= MAX_OUTER_CALLS {
                    self.outer_calls.pop_front();
                }
                self.outer_calls.push_back(OuterCall {
                    tid,
                    pid,
                    name: lookup.name.clone(),
                    boot_ns: lookup.boot_ns,
                });
                false
            }
        }
    }

    fn handle_packet(&mut self, packet: Packet, payload: &[u8]) -> anyhow::Result<()> {
        match packet.transport {
            Transport::Udp => self.handle_message(&packet, payload, packet.payload_len, None),
            Transport::Tcp => {
                let key = StreamKey {
                    cookie: packet.cookie,
                    sent: packet.direction == crate::record::Direction::Sent,
                };
                let segment = Segment {
                    seq: packet.tcp_seq,
                    flags: packet.tcp_flags,
                    payload,
                    payload_len: packet.payload_len,
                    now_ns: packet.boot_ns,
                };
                self.reassemble(|streams, output| streams.push(key, &packet, segment, output))
            }
        }
    }

    /// Runs one step of TCP reassembly and handles the messages it gives out, each
    /// described by the latest packet of its stream.
    fn reassemble(
        &mut self,
        step: impl FnOnce(&mut Reassembler<Packet>, &mut Vec<(Packet, StreamOutput)>),
    ) -> anyhow::Result<()> {
        let mut output = std::mem::take(&mut self.stream_output);
        step(&mut self.streams, &mut output);
        let result = self.handle_stream_output(&mut output);
        output.clear();
        self.stream_output = output;
        result
    }

    fn handle_stream_output(
        &mut self,
        output: &mut Vec<(Packet, StreamOutput)>,
    ) -> anyhow::Result<()> {
        for (packet, item) in output.drain(..) {
            match item {
                StreamOutput::Message(bytes) => {
                    self.handle_message(&packet, &bytes, bytes.len() as u32, None)?;
                }
                StreamOutput::Broken {
                    bytes,
                    declared_len,
                    reason,
                } => {
                    let true_len = declared_len.map_or(bytes.len() as u32, u32::from);
                    let why = format!("TCP stream: {reason}");
                    self.handle_message(&packet, &bytes, true_len, Some(why))?;
                }
            }
        }
        Ok(())
    }

    /// Builds the record for one DNS message and sends it on (or parks it until its
    /// owner is known).
    fn handle_message(
        &mut self,
        packet: &Packet,
        bytes: &[u8],
        true_len: u32,
        broken: Option<String>,
    ) -> anyhow::Result<()> {
        let time_ns = self.clock.to_unix_ns(packet.boot_ns);
        let (decoded, malformed) = match broken {
            Some(error) => (None, Some(malformed(error, bytes))),
            None => match self.decodes.decode(bytes) {
                Ok(decoded) => (Some(decoded), None),
                Err(error) if (bytes.len() as u32) < true_len => (
                    None,
                    Some(malformed(
                        format!("captured {} of {true_len} bytes: {error}", bytes.len()),
                        bytes,
                    )),
                ),
                Err(error) => (None, Some(malformed(error.to_string(), bytes))),
            },
        };
        if malformed.is_some() {
            self.stats.malformed += 1;
        }
        let (dns, question) = decoded.map_or((None, None), |decoded| {
            (Some(decoded.message), decoded.question)
        });
        let pair = dns.as_ref().and_then(|message| {
            let key = QueryKey {
                cookie: packet.cookie,
                remote: packet.remote(),
                id: message.id,
                question: question.clone().unwrap_or_default(),
            };
            if message.response {
                self.pairer.response(&key, time_ns)
            } else {
                self.pairer.query(key, time_ns);
                None
            }
        });
        let record = MessageRecord {
            kind: "message".into(),
            time: Rfc3339(time_ns),
            time_ns,
            direction: packet.direction,
            transport: packet.transport,
            src: packet.src,
            sport: packet.sport,
            dst: packet.dst,
            dport: packet.dport,
            ifindex: packet.ifindex,
            interface: None,
            socket_cookie: packet.cookie,
            socket_cgroup_id: packet.sock_cgroup_id,
            process: Arc::default(),
            message_len: true_len,
            captured_len: bytes.len() as u32,
            dns,
            malformed,
            pair,
            via: None,
            on_behalf_of: Vec::new(),
            from_cache: None,
        };
        let found = match packet.owner.as_ref() {
            Some(kernel) => Some(self.identities.of_kernel_owner(kernel, packet.boot_ns)),
            None => self
                .attributor
                .late(packet.cookie)
                .map(|owner| Arc::new(self.identities.build(Attribution::SocketLate, Some(owner)))),
        };
        match found {
            Some(process) => self.emit(record, question, process),
            None => {
                let socket = SocketId {
                    cookie: packet.cookie,
                    transport: packet.transport,
                    local: packet.local(),
                    remote: packet.remote(),
                };
                self.waiting.push_back(Waiting {
                    record,
                    question,
                    socket,
                    due_boot_ns: packet.boot_ns + ATTRIBUTION_WAIT_NS,
                });
                if self.waiting.len() > MAX_DEFERRED {
                    self.release_waiting(u64::MAX)?;
                }
                Ok(())
            }
        }
    }

    fn emit(
        &mut self,
        mut record: MessageRecord,
        question: Option<QuestionKey>,
        process: Arc<ProcessInfo>,
    ) -> anyhow::Result<()> {
        record.interface = self
            .identities
            .procinfo()
            .interface(record.ifindex, process.netns);
        if process.attribution == Some(Attribution::Unknown) {
            self.stats.unattributed += 1;
        }
        record.process = process;
        self.enqueue(Linked::Message(record, question))
    }

    /// Into the time-ordered queue before the linker.
    fn enqueue(&mut self, item: Linked) -> anyhow::Result<()> {
        // Nothing held and nothing waiting for its owner (the steady state): the
        // item would go in and straight out again; it goes on without the two
        // copies of a whole record.
        if self.linking.is_empty() && self.waiting.is_empty() {
            return self.release(item);
        }
        let time_ns = item.time_ns();
        // Nearly every item is the newest: append without searching (a binary
        // search over a long queue of large records is a cache miss a step).
        if self
            .linking
            .back()
            .is_none_or(|newest| newest.time_ns() <= time_ns)
        {
            self.linking.push_back(item);
        } else {
            let at = self
                .linking
                .partition_point(|held| held.time_ns() <= time_ns);
            self.linking.insert(at, item);
        }
        if self.linking.len() > MAX_DEFERRED {
            self.release_linked(1)?;
        }
        // Only a message still waiting for its owner can come out of time order:
        // everything older than the oldest of those can go on now (all of it when
        // none waits), which keeps this queue short under load.
        match self.waiting.front().map(|waiting| waiting.record.time_ns) {
            None => self.release_linked(usize::MAX),
            Some(oldest) => self.release_linked_while(|held| held.time_ns() < oldest),
        }
    }

    /// Sends on the records at the front of the queue while `due` holds for them.
    fn release_linked_while(&mut self, due: impl Fn(&Linked) -> bool) -> anyhow::Result<()> {
        while self.linking.front().is_some_and(&due) {
            self.release_linked(1)?;
        }
        Ok(())
    }

    /// Sends on the records whose delay is over (at most `most`), oldest first, after
    /// the resolver linker has seen them.
    fn release_linked_until(&mut self, unix_now: i64) -> anyhow::Result<()> {
        self.release_linked_while(|held| held.time_ns().saturating_add(LINK_DELAY_NS) <= unix_now)
    }

    fn release_linked(&mut self, most: usize) -> anyhow::Result<()> {
        for _ in 0..most {
            match self.linking.pop_front() {
                None => break,
                Some(item) => self.release(item)?,
            }
        }
        Ok(())
    }

    /// Through the resolver linker to the sink.
    fn release(&mut self, item: Linked) -> anyhow::Result<()> {
        match item {
            Linked::Message(mut record, question) => {
                self.resolvers.annotate(&mut record, question.as_ref());
                self.stats.messages += 1;
                self.sink.write(record)
            }
            Linked::Lookup(record) => {
                if record.answer.is_some() {
                    self.stats.lookup_answers += 1;
                } else {
                    // The call, not its answer, is what a daemon's query for the
                    // name follows.
                    self.resolvers.lookup(&record);
                    self.stats.lookups += 1;
                }
                self.sink.write_lookup(record)
            }
        }
    }

    /// Attributes the waiting messages that are due by `boot_ns`.
    fn release_waiting(&mut self, boot_ns: u64) -> anyhow::Result<()> {
        while let Some(front) = self.waiting.front() {
            if front.due_boot_ns > boot_ns {
                break;
            }
            let Some(waiting) = self.waiting.pop_front() else {
                break;
            };
            let (attribution, owner) = self.attributor.resolve(&waiting.socket);
            let process = Arc::new(self.identities.build(attribution, owner));
            self.emit(waiting.record, waiting.question, process)?;
        }
        Ok(())
    }

    /// Periodic work: due attributions, idle TCP streams, stale queries, the clock.
    pub fn tick(&mut self) -> anyhow::Result<()> {
        let now = WallClock::boot_now_ns();
        self.last_tick_ns = now;
        self.release_waiting(now)?;
        self.expire_streams(now)?;
        self.release_linked_until(self.clock.to_unix_ns(now))?;
        self.pairer.expire(self.clock.to_unix_ns(now));
        self.resolvers.expire(self.clock.to_unix_ns(now));
        if self.clock_read.elapsed().as_secs() >= CLOCK_REFRESH_SECS {
            self.clock = WallClock::now();
            self.clock_read = Instant::now();
        }
        shrink_after_burst(&mut self.linking);
        shrink_after_burst(&mut self.waiting);
        self.sink.flush()
    }

    /// Idle TCP streams end; a partial message becomes a malformed record.
    fn expire_streams(&mut self, now: u64) -> anyhow::Result<()> {
        self.reassemble(|streams, output| streams.expire(now, output))
    }

    /// At shutdown: nothing waits any more, partial TCP messages included.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.reassemble(|streams, output| streams.drain(output))?;
        self.release_waiting(u64::MAX)?;
        self.release_linked(usize::MAX)?;
        self.sink.flush()
    }
}

/// Gives back most of a queue's buffer once the burst that grew it has passed.
/// The queues hold whole records (256 bytes each), and everything behind a
/// message waiting for its owner waits too: a new socket's first message under
/// 50k queries/s grew `linking` to 32–64k slots (8–16 MiB) for the rest of the
/// run. The hysteresis (a quarter full, then half) keeps a steady queue from
/// being reallocated over and over.
fn shrink_after_burst<T>(queue: &mut VecDeque<T>) {
    const KEEP: usize = 1024;
    if queue.capacity() > KEEP && queue.len() < queue.capacity() / 4 {
        queue.shrink_to((queue.len() * 2).max(KEEP));
    }
}

/// An IPv4 or IPv6 address (with an optional `%zone`): libc resolves it without
/// asking anyone.
fn numeric(name: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(name) else {
        return false;
    };
    let address = text.split_once('%').map_or(text, |(address, _)| address);
    address.parse::<std::net::IpAddr>().is_ok()
}

fn malformed(error: String, bytes: &[u8]) -> Malformed {
    Malformed {
        error,
        raw_hex: hex::encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::shrink_after_burst;

    #[test]
    fn a_queue_gives_its_buffer_back_after_a_burst_but_not_while_busy() {
        let mut queue: VecDeque<u64> = (0..100_000).collect();
        let burst = queue.capacity();
        // Busy: half full stays as it is.
        queue.truncate(burst / 2);
        shrink_after_burst(&mut queue);
        assert_eq!(queue.capacity(), burst);
        // The burst is over: a few left, kept in order.
        while queue.len() > 10 {
            queue.pop_front();
        }
        shrink_after_burst(&mut queue);
        assert!(queue.capacity() < 2 * 1024, "{}", queue.capacity());
        assert_eq!(queue.front(), Some(&(burst as u64 / 2 - 10)));
        assert_eq!(queue.len(), 10);
        // Small queues are left alone.
        let before = queue.capacity();
        shrink_after_burst(&mut queue);
        assert_eq!(queue.capacity(), before);
    }
}
