//! Maps and small helpers shared by both probe families.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use dnsq_common::{
    DEFAULT_PAYLOAD_CAP, DEFAULT_RING_BYTES, PORT_BITMAP_WORDS, PacketEvent, SOCK_OWNERS_CAPACITY,
    SockOwner, counter,
};

/// Packet events for user space. Its size is set by the loader (`--ring-buffer-size`).
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Socket cookie → the task that last used the socket in process context.
#[map(name = "SOCK_OWNERS")]
pub static SOCK_OWNERS: LruHashMap<u64, SockOwner> =
    LruHashMap::with_max_entries(SOCK_OWNERS_CAPACITY, 0);

/// Bitmap of DNS ports: bit `p % 64` of word `p / 64` is set when port `p` is watched.
#[map(name = "PORTS")]
pub static PORTS: Array<u64> = Array::with_max_entries(PORT_BITMAP_WORDS, 0);

/// Event counters, per CPU; user space sums them. Indexes in `dnsq_common::counter`.
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Where a packet event is assembled (too big for the 512-byte stack).
#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<PacketEvent> = PerCpuArray::with_max_entries(1, 0);

/// Payload bytes copied per event; set by the loader (`--payload-cap`).
#[unsafe(no_mangle)]
static PAYLOAD_CAP: u32 = DEFAULT_PAYLOAD_CAP;

#[inline(always)]
pub fn payload_cap() -> u32 {
    // SAFETY: a plain read of a global the loader rewrites before load; volatile so the
    // compiler does not fold in the default.
    unsafe { core::ptr::read_volatile(&PAYLOAD_CAP) }
}

#[inline(always)]
pub fn bump(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, and BPF programs are not preempted on their CPU.
        unsafe { *slot += 1 }
    }
}

#[inline(always)]
pub fn is_dns_port(port: u16) -> bool {
    match PORTS.get(u32::from(port >> 6)) {
        Some(word) => (*word >> (port & 63)) & 1 == 1,
        None => false,
    }
}
