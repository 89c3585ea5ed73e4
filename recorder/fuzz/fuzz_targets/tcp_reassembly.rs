//! TCP stream reassembly never panics and never holds more than its limits allow,
//! whatever segments arrive in whatever order.
//!
//! Input: a sequence of segments, each `[stream, flags, seq delta (2 bytes),
//! captured length, true length extra]` followed by the captured bytes.
#![no_main]

use dnsq_recorder::tcp::{Limits, Reassembler, Segment, StreamKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits so that the fuzzer reaches eviction and overflow paths.
    let limits = Limits {
        max_streams: 4,
        max_stream_bytes: 4096,
        max_total_bytes: 8192,
        max_out_of_order: 4,
        idle_ns: 1_000,
    };
    let mut reassembler = Reassembler::<u8>::new(limits);
    let mut out = Vec::new();
    let mut seqs = [0u32; 8];
    let mut now = 0u64;
    let mut rest = data;
    while let [stream, flags, d0, d1, captured, extra, tail @ ..] = rest {
        let index = usize::from(stream & 7);
        let captured = usize::from(*captured).min(tail.len());
        let (payload, next) = tail.split_at(captured);
        rest = next;
        // Mostly forward, sometimes back (retransmissions, reordering).
        let delta = i16::from_be_bytes([*d0, *d1]) as i32;
        let seq = seqs[index].wrapping_add(delta as u32);
        seqs[index] = seq.wrapping_add(captured as u32);
        now += u64::from(*extra & 0x0f) * 100;
        let key = StreamKey { cookie: u64::from(index as u8 >> 1), sent: index & 1 == 0 };
        let segment = Segment {
            seq,
            flags: *flags,
            payload,
            payload_len: (captured + usize::from(*extra >> 4)) as u32,
            now_ns: now,
        };
        reassembler.push(key, &stream, segment, &mut out);
        if extra & 0x0f == 0x0f {
            reassembler.expire(now, &mut out);
        }
        let stats = reassembler.stats();
        assert!(stats.streams_open <= limits.max_streams);
        assert!(stats.bytes_buffered <= limits.max_total_bytes, "{stats:?}");
        out.clear();
    }
    reassembler.drain(&mut out);
    assert_eq!(reassembler.stats().bytes_buffered, 0);
});
