//! Maps and small helpers shared by both probe families.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use dnsq_common::{
    DEFAULT_PAYLOAD_CAP, DEFAULT_RING_BYTES, LOOKUP_RING_BYTES, LookupEvent, PORT_BITMAP_WORDS,
    PacketEvent, SOCK_OWNERS_CAPACITY, SockOwner, counter,
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

/// Libc lookup events for user space: a ring of their own, so that packet events
/// keep their format and a burst of one kind cannot crowd out the other.
#[map(name = "LOOKUPS")]
pub static LOOKUPS: RingBuf = RingBuf::with_byte_size(LOOKUP_RING_BYTES, 0);

/// Where a lookup event is assembled (the name alone is half the BPF stack).
#[map(name = "LOOKUP_SCRATCH")]
pub static LOOKUP_SCRATCH: PerCpuArray<LookupEvent> = PerCpuArray::with_max_entries(1, 0);

/// Payload bytes copied per event; set by the loader (`--payload-cap`).
#[unsafe(no_mangle)]
static PAYLOAD_CAP: u32 = DEFAULT_PAYLOAD_CAP;

#[inline(always)]
pub fn payload_cap() -> u32 {
    // SAFETY: a plain read of a global the loader rewrites before load; volatile so the
    // compiler does not fold in the default.
    unsafe { core::ptr::read_volatile(&PAYLOAD_CAP) }
}

/// Offsets of `group_leader` and `comm` in the kernel's `task_struct`, read from
/// its BTF by the loader (0: unknown, and the process name is left empty). The
/// probes cannot use CO-RE relocations from Rust yet; these globals stand in.
#[unsafe(no_mangle)]
static TASK_GROUP_LEADER_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static TASK_COMM_OFFSET: u32 = 0;

/// `task_struct.nsproxy`, `nsproxy.net_ns`, `net.ns.inum` (0: unknown).
#[unsafe(no_mangle)]
static NETNS_OFFSETS: [u32; 3] = [0; 3];

#[inline(always)]
pub fn netns_offsets() -> [u32; 3] {
    // SAFETY: as for task_offsets.
    unsafe { core::ptr::read_volatile(&NETNS_OFFSETS) }
}

#[inline(always)]
pub fn task_offsets() -> (u32, u32) {
    // SAFETY: plain reads of globals the loader rewrites before load (volatile so
    // the defaults are not folded in).
    unsafe {
        (
            core::ptr::read_volatile(&TASK_GROUP_LEADER_OFFSET),
            core::ptr::read_volatile(&TASK_COMM_OFFSET),
        )
    }
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
