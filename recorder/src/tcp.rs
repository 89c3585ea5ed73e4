//! Reassembles DNS-over-TCP streams into DNS messages.
//!
//! Each direction of a TCP connection is a byte stream of messages, each after a
//! 2-byte big-endian length (RFC 1035 §4.2.2, RFC 7766 §8). The kernel hands us every
//! segment that carries data (and every SYN, FIN and RST) on a watched port, per socket
//! and direction, as it passes the hook: possibly out of order, retransmitted, or with
//! its payload cut at the capture limit.
//!
//! - A SYN fixes where the data starts (ISN + 1). A stream first seen mid-connection
//!   (the recorder started late, or the stream was evicted) starts at the first segment
//!   seen and is parsed from there; if that is not a message boundary the result is
//!   `Broken` or undecodable output, never a panic.
//! - Retransmitted and overlapping bytes are trimmed by sequence number (wrapping
//!   arithmetic). Segments ahead of a hole wait, within [`Limits`], for it to fill.
//! - Bytes that never come (cut by the capture limit, or given up on when the
//!   out-of-order buffer is full or the stream closes or idles) leave a hole. When the
//!   hole lies inside a message whose length prefix was seen, that message comes out
//!   `Broken` and the stream stays in step: the next message starts where the prefix
//!   said. When the hole covers a length prefix, the start of the next message cannot
//!   be found: the 2-byte framing has no marker to search for, and any two bytes look
//!   like a length. The stream is then *desynchronised*: it reports once and discards
//!   its data until FIN or RST.
//! - FIN or RST ends the stream; a partial message comes out `Broken`. The closed
//!   stream is remembered (until it idles out) so that late retransmissions are not
//!   read as a new stream.
//!
//! Memory is bounded by [`Limits`]: the number of streams, the bytes held per stream,
//! and the bytes held in all.

use dnsq_common::tcp_flags;
use foldhash::HashMap;

/// One direction of one TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub cookie: u64,
    /// True for the bytes the socket's owner sent.
    pub sent: bool,
}

/// One TCP segment as the kernel saw it.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Sequence number of the segment (of the SYN itself, for a SYN).
    pub seq: u32,
    /// [`tcp_flags`] bits.
    pub flags: u8,
    /// The captured payload: the first bytes of `payload_len`.
    pub payload: &'a [u8],
    /// The true payload length.
    pub payload_len: u32,
    /// When the segment passed (`CLOCK_BOOTTIME`), for idling out.
    pub now_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutput {
    /// One whole DNS message, without its length prefix.
    Message(Vec<u8>),
    /// Bytes that do not make a whole message.
    Broken {
        /// The message bytes seen (without the length prefix when that was seen; a lone
        /// first byte of a prefix otherwise).
        bytes: Vec<u8>,
        /// The length the prefix announced, when it was seen.
        declared_len: Option<u16>,
        reason: String,
    },
}

/// Bounds on what the reassembler holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams tracked at once (closed ones included). A new stream beyond it evicts
    /// the one idle longest, closed ones first. Default 4096.
    pub max_streams: usize,
    /// Bytes one stream may hold: its partial message plus out-of-order segments. A
    /// message is at most 65535 + 2 bytes, so the default, 128 KiB, always fits one
    /// with room for as much waiting behind a hole.
    pub max_stream_bytes: usize,
    /// Bytes held by all streams together. Beyond it the streams idle longest give
    /// their data up (desynchronised, as after a hole). Default 32 MiB.
    pub max_total_bytes: usize,
    /// Out-of-order segments one stream may hold. Default 16.
    pub max_out_of_order: usize,
    /// A stream without segments for this long is dropped. Default 30 s: DNS clients
    /// and servers close idle connections within seconds (RFC 7766 §6.2.3).
    pub idle_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: 4096,
            max_stream_bytes: 128 * 1024,
            max_total_bytes: 32 * 1024 * 1024,
            max_out_of_order: 16,
            idle_ns: 30_000_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpStats {
    /// Streams being reassembled now (closed ones not counted).
    pub streams_open: usize,
    /// Streams dropped or desynchronised to respect the limits.
    pub streams_evicted: u64,
    /// Holes: stream bytes never seen (capture limit, or given up on).
    pub gaps: u64,
    /// Streams that lost their framing and discarded data until their end.
    pub desyncs: u64,
    /// Segments that arrived ahead of a hole and waited.
    pub out_of_order_buffered: u64,
    /// Times the out-of-order buffer was full and a hole was given up on.
    pub out_of_order_overflows: u64,
    /// Bytes held now.
    pub bytes_buffered: usize,
    /// Data bytes thrown away unread (desynchronised or closed streams).
    pub bytes_discarded: u64,
}

/// Why bytes are missing, for `Broken` reasons.
#[derive(Clone, Copy)]
enum Hole {
    NotCaptured,
    BufferFull,
    NeverArrived,
}

impl Hole {
    fn text(self) -> &'static str {
        match self {
            Hole::NotCaptured => "not captured (capture limit)",
            Hole::BufferFull => "missing when the out-of-order buffer filled",
            Hole::NeverArrived => "never seen",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Synced,
    /// Framing lost: data is discarded until FIN or RST.
    Desynced,
    /// FIN or RST seen; kept so that late retransmissions are recognised.
    Closed,
}

/// A segment waiting for the bytes before it.
struct Pending {
    seq: u32,
    data: Vec<u8>,
    len: u32,
    fin: bool,
}

struct Stream<C> {
    ctx: C,
    last_ns: u64,
    state: State,
    /// Sequence number of the first data byte known (ISN + 1, or the first seen).
    origin: u32,
    /// Sequence number of the next byte in order.
    next_seq: u32,
    /// Unconsumed bytes in order: the start of the next message.
    buf: Vec<u8>,
    /// Bytes still to drop: the rest of a message already reported `Broken`.
    skip: u32,
    pending: Vec<Pending>,
    pending_bytes: usize,
}

/// Where a stream's output goes while it is being worked on.
struct Work<'a> {
    out: &'a mut Vec<StreamOutput>,
    stats: &'a mut TcpStats,
    limits: &'a Limits,
}

impl<C> Stream<C> {
    fn new(ctx: C, now_ns: u64, seq: u32) -> Self {
        Self {
            ctx,
            last_ns: now_ns,
            state: State::Synced,
            origin: seq,
            next_seq: seq,
            buf: Vec::new(),
            skip: 0,
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    fn held(&self) -> usize {
        self.buf.len() + self.pending_bytes
    }

    fn restart(&mut self, seq: u32) {
        self.state = State::Synced;
        self.origin = seq;
        self.next_seq = seq;
        self.clear();
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.skip = 0;
        self.pending.clear();
        self.pending_bytes = 0;
    }

    /// The data of one segment (`len` bytes at `seq`, the first `data.len()` captured).
    fn segment(&mut self, seq: u32, data: &[u8], len: u32, fin: bool, work: &mut Work<'_>) {
        if self.state != State::Synced {
            work.stats.bytes_discarded += u64::from(len);
            if fin {
                self.state = State::Closed;
            }
            return;
        }
        let fin_reached = if ahead(seq, self.next_seq) {
            self.wait(
                Pending {
                    seq,
                    data: data.to_vec(),
                    len,
                    fin,
                },
                work,
            )
        } else {
            let fin = self.in_order(seq, data, len, fin, work);
            self.drain_pending(work) || fin
        };
        if fin_reached {
            self.close("connection closed mid-message", work);
        }
    }

    /// A segment that starts at or before `next_seq`. Returns whether its FIN is reached.
    fn in_order(
        &mut self,
        seq: u32,
        data: &[u8],
        len: u32,
        fin: bool,
        work: &mut Work<'_>,
    ) -> bool {
        let seen = self.next_seq.wrapping_sub(seq);
        if seen >= len {
            return fin; // a retransmission, or a bare FIN
        }
        let captured = data.len().min(len as usize);
        let fresh = data.get(seen as usize..captured).unwrap_or_default();
        self.feed(fresh, work);
        let missing = len - seen.max(captured as u32);
        if missing > 0 {
            self.hole(missing, Hole::NotCaptured, work);
        }
        fin
    }

    /// Bytes that follow `next_seq` directly.
    fn feed(&mut self, bytes: &[u8], work: &mut Work<'_>) {
        self.next_seq = self.next_seq.wrapping_add(bytes.len() as u32);
        if self.state != State::Synced {
            work.stats.bytes_discarded += bytes.len() as u64;
            return;
        }
        let skipped = bytes.len().min(self.skip as usize);
        self.skip -= skipped as u32;
        self.buf
            .extend_from_slice(bytes.get(skipped..).unwrap_or_default());
        let mut at = 0;
        while let Some((prefix, rest)) = self.buf.get(at..).and_then(|b| b.split_first_chunk::<2>())
        {
            let len = usize::from(u16::from_be_bytes(*prefix));
            if len == 0 {
                work.out.push(StreamOutput::Broken {
                    bytes: Vec::new(),
                    declared_len: Some(0),
                    reason: "zero-length message".into(),
                });
            } else if let Some(message) = rest.get(..len) {
                work.out.push(StreamOutput::Message(message.to_vec()));
            } else {
                break;
            }
            at += 2 + len;
        }
        self.buf.drain(..at);
    }

    /// `missing` bytes at `next_seq` will never be seen.
    fn hole(&mut self, missing: u32, why: Hole, work: &mut Work<'_>) {
        if missing == 0 {
            return;
        }
        work.stats.gaps += 1;
        self.next_seq = self.next_seq.wrapping_add(missing);
        if self.state != State::Synced {
            return;
        }
        if self.skip >= missing {
            self.skip -= missing; // inside a message already reported
            return;
        }
        let missing = missing - self.skip;
        self.skip = 0;
        if let Some(declared) = self.declared_len() {
            // Bytes still to come of the message being assembled (at least one).
            let rest = (2 + usize::from(declared)).saturating_sub(self.buf.len());
            if missing as usize <= rest {
                self.skip = (rest - missing as usize) as u32;
                let reason = format!("{missing} bytes of the message {}", why.text());
                work.out.push(self.take_partial(reason));
                return;
            }
        }
        let reason = format!(
            "{missing} bytes {}, across a length prefix: the rest of the connection cannot \
             be split into messages",
            why.text()
        );
        work.out.push(self.take_partial(reason));
        self.desync(work);
    }

    fn desync(&mut self, work: &mut Work<'_>) {
        work.stats.desyncs += 1;
        work.stats.bytes_discarded += self.held() as u64;
        self.state = State::Desynced;
        self.clear();
    }

    fn declared_len(&self) -> Option<u16> {
        self.buf
            .first_chunk::<2>()
            .map(|prefix| u16::from_be_bytes(*prefix))
    }

    /// The partial message, as `Broken`.
    fn take_partial(&mut self, reason: String) -> StreamOutput {
        let declared_len = self.declared_len();
        let bytes = match declared_len {
            Some(_) => self.buf.get(2..).unwrap_or_default().to_vec(),
            None => self.buf.clone(),
        };
        self.buf.clear();
        StreamOutput::Broken {
            bytes,
            declared_len,
            reason,
        }
    }

    /// Holds a segment that is ahead of `next_seq`; when the limits are hit, gives up
    /// on the earliest hole. Returns whether a FIN is reached.
    fn wait(&mut self, segment: Pending, work: &mut Work<'_>) -> bool {
        work.stats.out_of_order_buffered += 1;
        self.pending_bytes += segment.data.len();
        self.pending.push(segment);
        let mut fin = false;
        while self.state == State::Synced
            && (self.pending.len() > work.limits.max_out_of_order
                || self.held() > work.limits.max_stream_bytes)
        {
            work.stats.out_of_order_overflows += 1;
            if !self.skip_to_pending(Hole::BufferFull, work) {
                break;
            }
            fin |= self.drain_pending(work);
        }
        fin
    }

    /// Gives up on the bytes before the earliest waiting segment. False if none waits.
    fn skip_to_pending(&mut self, why: Hole, work: &mut Work<'_>) -> bool {
        let next = self.next_seq;
        let Some(first) = self
            .pending
            .iter()
            .map(|p| p.seq)
            .min_by_key(|&seq| seq.wrapping_sub(next))
        else {
            return false;
        };
        self.hole(first.wrapping_sub(next), why, work);
        true
    }

    /// Takes in the waiting segments that `next_seq` has reached. Returns whether a
    /// FIN is reached.
    fn drain_pending(&mut self, work: &mut Work<'_>) -> bool {
        let mut fin = false;
        while self.state == State::Synced {
            let next = self.next_seq;
            let Some(index) = self.pending.iter().position(|p| !ahead(p.seq, next)) else {
                break;
            };
            let segment = self.pending.swap_remove(index);
            self.pending_bytes -= segment.data.len();
            fin |= self.in_order(segment.seq, &segment.data, segment.len, segment.fin, work);
        }
        fin
    }

    /// Ends the stream: what waits behind holes is read, a partial message comes out
    /// `Broken` with `reason`.
    fn close(&mut self, reason: &str, work: &mut Work<'_>) {
        while self.state == State::Synced {
            self.drain_pending(work);
            if !self.skip_to_pending(Hole::NeverArrived, work) {
                break;
            }
        }
        if self.state == State::Synced && !self.buf.is_empty() {
            work.out.push(self.take_partial(reason.to_owned()));
        }
        self.state = State::Closed;
        self.clear();
    }
}

/// Whether `seq` is after `next` (in sequence space, RFC 9293 §3.4).
fn ahead(seq: u32, next: u32) -> bool {
    (seq.wrapping_sub(next) as i32) > 0
}

/// Reassembles the DNS-over-TCP streams of many sockets. `C` is the caller's
/// description of a stream (for the recorder, its latest packet), handed back with
/// every output.
pub struct Reassembler<C> {
    limits: Limits,
    streams: HashMap<StreamKey, Stream<C>>,
    /// Bytes held by all streams.
    bytes: usize,
    stats: TcpStats,
    scratch: Vec<StreamOutput>,
}

impl<C: Clone> Reassembler<C> {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            streams: HashMap::default(),
            bytes: 0,
            stats: TcpStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Takes one segment of stream `key`. `ctx` replaces the stream's stored context.
    /// Outputs (this stream's, and those of streams evicted to make room) come with
    /// their stream's context.
    pub fn push(
        &mut self,
        key: StreamKey,
        ctx: &C,
        segment: Segment<'_>,
        out: &mut Vec<(C, StreamOutput)>,
    ) {
        let syn = segment.flags & tcp_flags::SYN != 0;
        let fin = segment.flags & tcp_flags::FIN != 0;
        let rst = segment.flags & tcp_flags::RST != 0;
        let captured = u32::try_from(segment.payload.len()).unwrap_or(u32::MAX);
        let len = segment.payload_len.max(captured);
        // A SYN takes one sequence number; its data (TCP Fast Open) follows it.
        let seq = if syn {
            segment.seq.wrapping_add(1)
        } else {
            segment.seq
        };
        if !self.streams.contains_key(&key) {
            if !syn && len == 0 {
                return; // a FIN or RST with nothing in flight
            }
            if self.streams.len() >= self.limits.max_streams {
                self.evict_for_room(out);
            }
            self.streams
                .insert(key, Stream::new(ctx.clone(), segment.now_ns, seq));
        }
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        stream.ctx = ctx.clone();
        stream.last_ns = segment.now_ns;
        let before = stream.held();
        let mut work = Work {
            out: &mut self.scratch,
            stats: &mut self.stats,
            limits: &self.limits,
        };
        if syn && (stream.state == State::Closed || seq != stream.origin) {
            // A new connection on the socket (a repeated SYN has the same ISN).
            stream.close("a new connection started mid-message", &mut work);
            stream.restart(seq);
        }
        if rst {
            // An RST's payload is not stream data (RFC 9293 §3.5.3).
            stream.close("connection reset mid-message", &mut work);
        } else if len > 0 || fin {
            stream.segment(seq, segment.payload, len, fin, &mut work);
        }
        self.bytes = self.bytes.saturating_sub(before) + stream.held();
        out.extend(
            self.scratch
                .drain(..)
                .map(|item| (stream.ctx.clone(), item)),
        );
        if self.bytes > self.limits.max_total_bytes {
            self.shed(key, out);
        }
    }

    /// Drops the streams idle longer than `limits.idle_ns`. Their data is read as far
    /// as it goes; a partial message comes out `Broken`.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<(C, StreamOutput)>) {
        let idle_ns = self.limits.idle_ns;
        let idle: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| now_ns.saturating_sub(s.last_ns) > idle_ns)
            .map(|(key, _)| *key)
            .collect();
        let reason = format!(
            "connection idle for {} s mid-message",
            idle_ns / 1_000_000_000
        );
        for key in idle {
            self.remove(key, &reason, out);
        }
    }

    /// At shutdown: every stream ends, partial messages come out `Broken`.
    pub fn drain(&mut self, out: &mut Vec<(C, StreamOutput)>) {
        let keys: Vec<StreamKey> = self.streams.keys().copied().collect();
        for key in keys {
            self.remove(key, "recorder stopped mid-message", out);
        }
    }

    /// Whether any stream holds data not given out yet.
    pub fn holds_data(&self) -> bool {
        self.bytes > 0
    }

    pub fn stats(&self) -> TcpStats {
        TcpStats {
            streams_open: self
                .streams
                .values()
                .filter(|s| s.state != State::Closed)
                .count(),
            bytes_buffered: self.bytes,
            ..self.stats
        }
    }

    fn remove(&mut self, key: StreamKey, reason: &str, out: &mut Vec<(C, StreamOutput)>) {
        let Some(mut stream) = self.streams.remove(&key) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(stream.held());
        let mut work = Work {
            out: &mut self.scratch,
            stats: &mut self.stats,
            limits: &self.limits,
        };
        stream.close(reason, &mut work);
        out.extend(
            self.scratch
                .drain(..)
                .map(|item| (stream.ctx.clone(), item)),
        );
    }

    /// Makes room for one more stream: drops the one idle longest, closed ones first.
    fn evict_for_room(&mut self, out: &mut Vec<(C, StreamOutput)>) {
        let victim = self
            .streams
            .iter()
            .min_by_key(|(_, s)| (s.state != State::Closed, s.last_ns))
            .map(|(key, s)| (*key, s.state));
        if let Some((key, state)) = victim {
            if state != State::Closed {
                self.stats.streams_evicted += 1;
            }
            self.remove(
                key,
                "stream evicted mid-message (too many TCP streams)",
                out,
            );
        }
    }

    /// Over the memory limit: the streams idle longest (other than `current`, unless it
    /// is the only one) give up their data and stay desynchronised to their end, so
    /// that what follows is not misread as a new stream.
    fn shed(&mut self, current: StreamKey, out: &mut Vec<(C, StreamOutput)>) {
        while self.bytes > self.limits.max_total_bytes {
            let victim = self
                .streams
                .iter_mut()
                .filter(|(_, s)| s.held() > 0)
                .min_by_key(|(key, s)| (**key == current, s.last_ns));
            let Some((_, stream)) = victim else {
                break;
            };
            let held = stream.held();
            let mut work = Work {
                out: &mut self.scratch,
                stats: &mut self.stats,
                limits: &self.limits,
            };
            work.stats.streams_evicted += 1;
            let reason = "TCP reassembly memory limit reached: the rest of the connection is \
                          not decoded";
            if !stream.buf.is_empty() {
                work.out.push(stream.take_partial(reason.into()));
            }
            stream.desync(&mut work);
            self.bytes = self.bytes.saturating_sub(held);
            out.extend(
                self.scratch
                    .drain(..)
                    .map(|item| (stream.ctx.clone(), item)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u8 = tcp_flags::SYN;
    const FIN: u8 = tcp_flags::FIN;
    const RST: u8 = tcp_flags::RST;
    const KEY: StreamKey = StreamKey {
        cookie: 1,
        sent: true,
    };

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for message in messages {
            bytes.extend_from_slice(&(message.len() as u16).to_be_bytes());
            bytes.extend_from_slice(message);
        }
        bytes
    }

    fn message(len: usize, fill: u8) -> Vec<u8> {
        (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
    }

    /// A reassembler whose context is a number, and what it said so far.
    struct Test {
        r: Reassembler<u32>,
        out: Vec<(u32, StreamOutput)>,
        now: u64,
    }

    impl Test {
        fn new() -> Self {
            Self::with(Limits::default())
        }
        fn with(limits: Limits) -> Self {
            Self {
                r: Reassembler::new(limits),
                out: Vec::new(),
                now: 1_000,
            }
        }
        /// A segment whose payload was captured whole.
        fn push(&mut self, key: StreamKey, ctx: u32, seq: u32, flags: u8, payload: &[u8]) {
            self.push_capped(key, ctx, seq, flags, payload, payload.len() as u32);
        }
        fn push_capped(
            &mut self,
            key: StreamKey,
            ctx: u32,
            seq: u32,
            flags: u8,
            payload: &[u8],
            len: u32,
        ) {
            self.now += 1;
            let segment = Segment {
                seq,
                flags,
                payload,
                payload_len: len,
                now_ns: self.now,
            };
            self.r.push(key, &ctx, segment, &mut self.out);
        }
        fn take(&mut self) -> Vec<(u32, StreamOutput)> {
            std::mem::take(&mut self.out)
        }
        /// The output, checked to be whole messages.
        fn messages(&mut self) -> Vec<Vec<u8>> {
            self.take()
                .into_iter()
                .map(|(_, item)| match item {
                    StreamOutput::Message(bytes) => bytes,
                    broken => panic!("unexpected {broken:?}"),
                })
                .collect()
        }
    }

    fn broken(item: &StreamOutput) -> (&[u8], Option<u16>, &str) {
        match item {
            StreamOutput::Broken {
                bytes,
                declared_len,
                reason,
            } => (bytes, *declared_len, reason),
            StreamOutput::Message(_) => panic!("expected Broken, got a message"),
        }
    }

    #[test]
    fn one_message_in_one_segment() {
        let mut t = Test::new();
        t.push(KEY, 1, 1000, SYN, &[]);
        t.push(KEY, 2, 1001, 0, &framed(&[b"hello"]));
        assert_eq!(
            t.take(),
            vec![(2, StreamOutput::Message(b"hello".to_vec()))]
        );
        assert_eq!(t.r.stats().streams_open, 1);
        assert_eq!(t.r.stats().bytes_buffered, 0);
    }

    #[test]
    fn three_messages_in_one_segment() {
        let mut t = Test::new();
        t.push(KEY, 1, 1000, SYN, &[]);
        t.push(KEY, 1, 1001, 0, &framed(&[b"one", b"two", b"three"]));
        assert_eq!(
            t.messages(),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn one_message_over_five_segments() {
        let mut t = Test::new();
        let body = message(300, 7);
        let bytes = framed(&[&body]);
        t.push(KEY, 1, 41, SYN, &[]);
        // The length prefix split 1 + 1, then the body in three.
        let mut seq = 42;
        for part in [
            &bytes[..1],
            &bytes[1..2],
            &bytes[2..100],
            &bytes[100..250],
            &bytes[250..],
        ] {
            assert!(t.out.is_empty());
            t.push(KEY, 1, seq, 0, part);
            seq += part.len() as u32;
        }
        assert_eq!(t.messages(), vec![body]);
    }

    #[test]
    fn retransmissions_are_trimmed() {
        let mut t = Test::new();
        let bytes = framed(&[b"first", b"second"]);
        t.push(KEY, 1, 0, SYN, &[]);
        t.push(KEY, 1, 1, 0, &bytes[..4]);
        t.push(KEY, 1, 1, 0, &bytes[..4]);
        // Overlaps what came, and brings the rest.
        t.push(KEY, 1, 3, 0, &bytes[2..]);
        t.push(KEY, 1, 1, 0, &bytes);
        assert_eq!(t.messages(), vec![b"first".to_vec(), b"second".to_vec()]);
    }

    #[test]
    fn out_of_order_waits_for_the_hole() {
        let mut t = Test::new();
        let bytes = framed(&[b"first", b"second", b"third"]);
        t.push(KEY, 1, 99, SYN, &[]);
        t.push(KEY, 1, 100 + 12, 0, &bytes[12..]);
        t.push(KEY, 1, 100 + 5, 0, &bytes[5..12]);
        assert!(t.out.is_empty());
        assert_eq!(t.r.stats().out_of_order_buffered, 2);
        assert!(t.r.stats().bytes_buffered > 0);
        t.push(KEY, 1, 100, 0, &bytes[..5]);
        assert_eq!(
            t.messages(),
            vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
        );
        assert_eq!(t.r.stats().bytes_buffered, 0);
    }

    #[test]
    fn zero_length_prefix_is_broken_and_framing_continues() {
        let mut t = Test::new();
        t.push(KEY, 1, 0, SYN, &[]);
        let mut bytes = vec![0, 0];
        bytes.extend(framed(&[b"after"]));
        t.push(KEY, 1, 1, 0, &bytes);
        let out = t.take();
        assert_eq!(broken(&out[0].1), (&[][..], Some(0), "zero-length message"));
        assert_eq!(out[1].1, StreamOutput::Message(b"after".to_vec()));
    }

    #[test]
    fn gap_across_a_prefix_desynchronises_until_fin() {
        let mut t = Test::new();
        let bytes = framed(&[b"whole", b"lost one", b"lost two"]);
        t.push(KEY, 1, 0, SYN, &[]);
        // The capture ends one byte into the second prefix.
        t.push_capped(KEY, 2, 1, 0, &bytes[..8], bytes.len() as u32);
        let out = t.take();
        assert_eq!(out[0], (2, StreamOutput::Message(b"whole".to_vec())));
        let (partial, declared, reason) = broken(&out[1].1);
        assert_eq!((partial, declared), (&[0][..], None));
        assert!(
            reason.contains("not captured") && reason.contains("cannot be split"),
            "{reason}"
        );
        assert_eq!(out.len(), 2);
        let stats = t.r.stats();
        assert_eq!((stats.gaps, stats.desyncs), (1, 1));
        // Everything until FIN is discarded, even bytes that look like a message.
        let after = 1 + bytes.len() as u32;
        t.push(KEY, 3, after, 0, &framed(&[b"looks fine"]));
        t.push(KEY, 3, after + 12, FIN, &[]);
        assert!(t.out.is_empty());
        assert_eq!(t.r.stats().streams_open, 0);
    }

    #[test]
    fn gap_inside_a_message_keeps_the_framing() {
        let mut t = Test::new();
        let big = message(20_000, 1);
        let bytes = framed(&[&big, b"next"]);
        t.push(KEY, 1, 0, SYN, &[]);
        // A 20 000-byte segment (loopback MSS is ~64 KiB) cut at 16 KiB, then the last
        // two bytes of the big message and the next one.
        t.push_capped(KEY, 1, 1, 0, &bytes[..16_384], 20_000);
        let out = t.take();
        let (partial, declared, reason) = broken(&out[0].1);
        assert_eq!((partial, declared), (&big[..16_382], Some(20_000)));
        assert!(
            reason.contains("3616 bytes of the message not captured"),
            "{reason}"
        );
        t.push(KEY, 1, 20_001, 0, &bytes[20_000..]);
        assert_eq!(t.messages(), vec![b"next".to_vec()]);
        assert_eq!(t.r.stats().desyncs, 0);
    }

    #[test]
    fn fin_and_rst_mid_message() {
        let mut t = Test::new();
        let bytes = framed(&[b"complete", b"partial"]);
        t.push(KEY, 1, 0, SYN, &[]);
        t.push(KEY, 1, 1, FIN, &bytes[..14]);
        let out = t.take();
        assert_eq!(out[0].1, StreamOutput::Message(b"complete".to_vec()));
        assert_eq!(
            broken(&out[1].1),
            (&b"pa"[..], Some(7), "connection closed mid-message")
        );
        assert_eq!(t.r.stats().streams_open, 0);
        // A late retransmission of the closed stream is not read as a new stream.
        t.push(KEY, 1, 1, 0, &bytes[..10]);
        assert!(t.out.is_empty());

        let other = StreamKey {
            cookie: 2,
            sent: false,
        };
        t.push(other, 5, 7, 0, &bytes[..12]);
        t.push(other, 6, 19, RST, &[]);
        assert_eq!(
            broken(&t.take()[1].1),
            (&b""[..], Some(7), "connection reset mid-message")
        );
    }

    #[test]
    fn fin_ahead_of_data_waits_for_it() {
        let mut t = Test::new();
        let bytes = framed(&[b"one", b"two"]);
        t.push(KEY, 1, 0, SYN, &[]);
        t.push(KEY, 1, 6, FIN, &bytes[5..]);
        t.push(KEY, 1, 1, 0, &bytes[..5]);
        assert_eq!(t.messages(), vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(t.r.stats().streams_open, 0);
    }

    #[test]
    fn idle_streams_expire_with_their_context() {
        let mut t = Test::new();
        t.push(KEY, 7, 0, SYN, &[]);
        t.push(KEY, 8, 1, 0, &framed(&[b"abcdef"])[..5]);
        let last = t.now;
        let idle = Limits::default().idle_ns;
        t.r.expire(last + idle, &mut t.out);
        assert!(t.out.is_empty());
        t.r.expire(last + idle + 1, &mut t.out);
        let out = t.take();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 8);
        let (partial, declared, reason) = broken(&out[0].1);
        assert_eq!((partial, declared), (&b"abc"[..], Some(6)));
        assert!(reason.contains("idle"), "{reason}");
        assert_eq!(t.r.stats().streams_open, 0);
    }

    #[test]
    fn expiry_reads_what_waited_behind_a_hole() {
        let mut t = Test::new();
        let bytes = framed(&[b"lost", b"kept"]);
        t.push(KEY, 1, 0, SYN, &[]);
        t.push(KEY, 1, 1, 0, &bytes[..3]);
        t.push(KEY, 1, 7, 0, &bytes[6..]);
        t.r.expire(u64::MAX, &mut t.out);
        let out = t.take();
        let (partial, declared, reason) = broken(&out[0].1);
        assert_eq!((partial, declared), (&b"l"[..], Some(4)));
        assert!(
            reason.contains("3 bytes of the message never seen"),
            "{reason}"
        );
        assert_eq!(out[1].1, StreamOutput::Message(b"kept".to_vec()));
    }

    #[test]
    fn too_many_streams_evicts_the_longest_idle() {
        let mut t = Test::with(Limits {
            max_streams: 2,
            ..Limits::default()
        });
        let key = |cookie| StreamKey {
            cookie,
            sent: false,
        };
        let partial = &framed(&[b"xyz"])[..3];
        t.push(key(1), 10, 100, 0, partial);
        t.push(key(2), 20, 100, 0, partial);
        t.push(key(1), 11, 103, 0, &[]); // empty: nothing in flight changes
        t.push(key(1), 11, 103, 0, b"y");
        assert!(t.out.is_empty());
        t.push(key(3), 30, 100, 0, partial);
        let out = t.take();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 20);
        assert!(broken(&out[0].1).2.contains("too many"));
        assert_eq!(t.r.stats().streams_evicted, 1);
        assert_eq!(t.r.stats().streams_open, 2);
    }

    #[test]
    fn out_of_order_overflow_gives_up_the_hole() {
        let mut t = Test::with(Limits {
            max_out_of_order: 2,
            ..Limits::default()
        });
        let bytes = framed(&[b"aaaa", b"bbbb", b"cccc", b"dddd"]);
        t.push(KEY, 1, 0, SYN, &[]);
        // The first message's body never comes; the others wait, then overflow.
        t.push(KEY, 1, 1, 0, &bytes[..2]);
        for start in [6, 12, 18] {
            t.push(KEY, 1, 1 + start as u32, 0, &bytes[start..start + 6]);
        }
        let out = t.take();
        let (partial, declared, reason) = broken(&out[0].1);
        assert_eq!((partial, declared), (&b""[..], Some(4)));
        assert!(reason.contains("out-of-order buffer"), "{reason}");
        let rest: Vec<&StreamOutput> = out[1..].iter().map(|(_, item)| item).collect();
        assert_eq!(
            rest,
            vec![
                &StreamOutput::Message(b"bbbb".to_vec()),
                &StreamOutput::Message(b"cccc".to_vec()),
                &StreamOutput::Message(b"dddd".to_vec()),
            ]
        );
        assert_eq!(t.r.stats().out_of_order_overflows, 1);
    }

    #[test]
    fn memory_limit_sheds_the_longest_idle_stream() {
        let mut t = Test::with(Limits {
            max_total_bytes: 1000,
            ..Limits::default()
        });
        let big = framed(&[&message(900, 0)]);
        let key = |cookie| StreamKey { cookie, sent: true };
        t.push(key(1), 1, 0, 0, &big[..600]);
        t.push(key(2), 2, 0, 0, &big[..600]);
        let out = t.take();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 1);
        assert!(broken(&out[0].1).2.contains("memory limit"));
        assert_eq!(t.r.stats().bytes_buffered, 600);
        // Stream 1 discards the rest of its connection.
        t.push(key(1), 1, 600, 0, &big[600..]);
        assert!(t.out.is_empty());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut t = Test::new();
        let bytes = framed(&[&message(40, 3), &message(30, 9)]);
        let isn = u32::MAX - 10;
        t.push(KEY, 1, isn, SYN, &[]);
        let start = isn.wrapping_add(1);
        // Out of order across the wrap, then the piece before it.
        t.push(KEY, 1, start.wrapping_add(20), 0, &bytes[20..]);
        t.push(KEY, 1, start, 0, &bytes[..25]);
        assert_eq!(t.messages(), vec![message(40, 3), message(30, 9)]);
        t.push(KEY, 1, start.wrapping_add(bytes.len() as u32), FIN, &[]);
        assert_eq!(t.r.stats().streams_open, 0);
    }

    #[test]
    fn drain_reports_partial_messages() {
        let mut t = Test::new();
        t.push(KEY, 4, 0, 0, &framed(&[b"abc"])[..4]);
        t.r.drain(&mut t.out);
        let out = t.take();
        assert_eq!(out[0].0, 4);
        assert_eq!(broken(&out[0].1).0, b"ab");
        assert_eq!(t.r.stats(), TcpStats::default());
    }

    use crate::test_rng::Rng;

    #[test]
    fn random_splits_duplicates_and_reordering() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut waited = 0;
        for trial in 0..300 {
            let messages: Vec<Vec<u8>> = (0..1 + rng.below(20))
                .map(|_| (0..1 + rng.below(700)).map(|_| rng.next() as u8).collect())
                .collect();
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let bytes = framed(&refs);
            let isn = if trial % 3 == 0 {
                u32::MAX - rng.below(2000) as u32
            } else {
                rng.next() as u32
            };
            let start = isn.wrapping_add(1);
            // Cut the stream into segments (offset, length).
            let mut segments = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let len = (1 + rng.below(400)).min(bytes.len() - at);
                segments.push((at, len));
                at += len;
            }
            // Deliveries: in order, then neighbours swapped, duplicates and merged
            // retransmissions added a little later.
            let mut order = segments.clone();
            for _ in 0..rng.below(segments.len() + 1) {
                let i = rng.below(order.len());
                let j = (i + 1 + rng.below(3)).min(order.len() - 1);
                order.swap(i, j);
            }
            for _ in 0..rng.below(4) {
                let i = rng.below(segments.len());
                let (offset, len) = segments[i];
                let merged = match segments.get(i + 1) {
                    Some(&(_, next)) if rng.below(2) == 0 => len + next,
                    _ => len,
                };
                let to = (i + rng.below(4)).min(order.len());
                order.insert(to, (offset, merged));
            }
            let mut t = Test::new();
            t.push(KEY, 0, isn, SYN, &[]);
            for (offset, len) in order {
                t.push(
                    KEY,
                    0,
                    start.wrapping_add(offset as u32),
                    0,
                    &bytes[offset..offset + len],
                );
            }
            t.push(KEY, 0, start.wrapping_add(bytes.len() as u32), FIN, &[]);
            assert_eq!(t.messages(), messages, "trial {trial}");
            let stats = t.r.stats();
            assert_eq!(
                (stats.streams_open, stats.bytes_buffered, stats.gaps),
                (0, 0, 0)
            );
            waited += stats.out_of_order_buffered;
        }
        assert!(waited > 300, "{waited}");
    }

    #[test]
    fn arbitrary_segments_never_panic() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut t = Test::with(Limits {
            max_streams: 8,
            max_stream_bytes: 4096,
            max_total_bytes: 16 * 1024,
            max_out_of_order: 4,
            idle_ns: 50,
        });
        let data: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
        for _ in 0..50_000 {
            let key = StreamKey {
                cookie: rng.below(12) as u64,
                sent: rng.below(2) == 0,
            };
            let from = rng.below(data.len());
            let captured = rng.below(600).min(data.len() - from);
            let len = captured as u32 + [0, 0, 0, rng.below(70_000) as u32][rng.below(4)];
            let seq = rng.below(3000) as u32 ^ [0, u32::MAX - 1500][rng.below(2)];
            let flags = [0, 0, 0, 0, SYN, FIN, RST, SYN | FIN][rng.below(8)];
            t.push_capped(key, 0, seq, flags, &data[from..from + captured], len);
            if rng.below(100) == 0 {
                t.r.expire(t.now, &mut t.out);
            }
            t.out.clear();
            let stats = t.r.stats();
            assert!(stats.bytes_buffered <= 16 * 1024);
        }
        t.r.drain(&mut t.out);
        assert_eq!(t.r.stats().bytes_buffered, 0);
    }
}
