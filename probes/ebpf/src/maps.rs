//! Maps and small helpers shared by both probe families.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_probe_read_kernel, generated::bpf_ktime_get_boot_ns},
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use dnsq_common::{
    DEFAULT_PAYLOAD_CAP, DEFAULT_RING_BYTES, EXES_CAPACITY, ExePath, LIBC_CALLS_CAPACITY,
    LOOKUP_RING_BYTES, LookupAnswerEvent, LookupEvent, PORT_BITMAP_WORDS, PacketEvent,
    SOCK_OWNERS_CAPACITY, SockOwner, WAKEUP_FRACTION, counter,
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

/// A resolver call under way: where its result goes and the call's event
/// stamp, for the uretprobe.
#[derive(Clone, Copy)]
pub struct LibcCall {
    /// Where the result is written: `getaddrinfo`'s `struct addrinfo **res`,
    /// the `_r` functions' `struct hostent **result`; 0 for `gethostbyname` and
    /// `gethostbyname2`, which return it.
    pub out: u64,
    /// The `_r` functions' `int *h_errnop`: why no `hostent` came back; 0 for
    /// the others (`gethostbyname`'s `h_errno` is thread-local storage, which a
    /// program cannot find: user space takes it from libc's inner `_r` call).
    pub h_errnop: u64,
    /// `boot_ns` of the call's `LookupEvent`.
    pub boot_ns: u64,
}

/// (thread id << 32 | function) → its call under way (lookup.rs). Keyed by the
/// function too: libc's own inner calls (`gethostbyname` → `gethostbyname_r`)
/// are under way at once on one thread.
#[map(name = "LIBC_CALLS")]
pub static LIBC_CALLS: LruHashMap<u64, LibcCall> =
    LruHashMap::with_max_entries(LIBC_CALLS_CAPACITY, 0);

/// Where an answer event is assembled (bigger than the BPF stack allows).
#[map(name = "ANSWER_SCRATCH")]
pub static ANSWER_SCRATCH: PerCpuArray<LookupAnswerEvent> = PerCpuArray::with_max_entries(1, 0);

/// Pid → the executable it runs, for processes gone before /proc is read (exec.rs).
#[map(name = "EXES")]
pub static EXES: LruHashMap<u32, ExePath> = LruHashMap::with_max_entries(EXES_CAPACITY, 0);

/// Where an executable's path is assembled (bigger than the BPF stack allows).
#[map(name = "EXE_SCRATCH")]
pub static EXE_SCRATCH: PerCpuArray<ExePath> = PerCpuArray::with_max_entries(1, 0);

/// Payload bytes copied per event; set by the loader (`--payload-cap`).
#[unsafe(no_mangle)]
static PAYLOAD_CAP: u32 = DEFAULT_PAYLOAD_CAP;

#[inline(always)]
pub fn payload_cap() -> u32 {
    // SAFETY: a plain read of a global the loader rewrites before load; volatile so the
    // compiler does not fold in the default.
    unsafe { core::ptr::read_volatile(&PAYLOAD_CAP) }
}

/// Unread bytes in `EVENTS` at which the reader is woken (at every multiple of
/// it); set by the loader to the ring's size / `WAKEUP_FRACTION`. 0: the kernel's
/// default for every event, a wakeup whenever the reader has caught up.
#[unsafe(no_mangle)]
static EVENTS_WAKEUP_BYTES: u32 = DEFAULT_RING_BYTES / WAKEUP_FRACTION;

/// The reader's poll interval (ns), set by the loader (`loader::POLL_EVERY`). A
/// packet on a socket whose process was first seen on it less than this long ago
/// wakes a reader that has caught up, as the kernel does by default: the reader
/// reads /proc for a new process, and a short-lived client (dig, getent) may be
/// gone after one poll interval. And an event wakes the reader when no event has
/// for this long ([`quiet_for_a_poll`]).
#[unsafe(no_mangle)]
static POLL_INTERVAL_NS: u64 = 20_000_000;

#[inline(always)]
pub fn poll_interval_ns() -> u64 {
    // SAFETY: as for payload_cap.
    unsafe { core::ptr::read_volatile(&POLL_INTERVAL_NS) }
}

/// Boot time (ns) of the last wakeup an event forced, on either ring.
#[map(name = "LAST_WAKEUP")]
pub static LAST_WAKEUP: Array<u64> = Array::with_max_entries(1, 0);

/// Whether an event at `now_ns` wakes the reader because none has for a poll
/// interval; if so, the time is noted. This is what lets the reader, once no
/// event has come for two poll intervals, stop polling and sleep (main.rs
/// `capture`): the first event after the quiet wakes it. Under steady traffic it
/// adds at most one wakeup a poll interval. Two CPUs may both see the old time
/// and both wake the reader: harmless.
#[inline(always)]
fn quiet_for_a_poll(now_ns: u64) -> bool {
    let Some(last) = LAST_WAKEUP.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: a valid slot of a one-entry array; a torn or stale value costs at
    // most one wakeup more or less, which the reader's own poll covers.
    unsafe {
        // Another CPU may have noted a later time than ours: saturating.
        if now_ns.saturating_sub(*last) < poll_interval_ns() {
            return false;
        }
        *last = now_ns;
    }
    true
}

/// Copies an event to `EVENTS` (`now_ns`: its boot time). The reader polls the
/// ring on a timer while events come, so most events wake nobody (a wakeup is an
/// irq_work and a cross-CPU wakeup, a VM exit on a guest, costlier than the rest
/// of the program): an event wakes the reader when the unread data crosses a
/// multiple of `EVENTS_WAKEUP_BYTES` (so that a ring filling up is read before it
/// overflows), when no event has for a poll interval (an idle reader sleeps), and,
/// with `new_owner`, when the reader has caught up (the kernel's default).
#[inline(always)]
pub fn output_event(bytes: &[u8], new_owner: bool, now_ns: u64) -> Result<(), i32> {
    // SAFETY: as for payload_cap.
    let threshold = u64::from(unsafe { core::ptr::read_volatile(&EVENTS_WAKEUP_BYTES) });
    let flags = if threshold == 0 {
        0
    } else {
        let before = EVENTS.query(u64::from(BPF_RB_AVAIL_DATA));
        // A record takes an 8-byte header and is padded to 8 bytes.
        let after = before + ((bytes.len() as u64 + 8 + 7) & !7);
        if before / threshold != after / threshold || quiet_for_a_poll(now_ns) {
            u64::from(BPF_RB_FORCE_WAKEUP)
        } else if new_owner {
            0
        } else {
            u64::from(BPF_RB_NO_WAKEUP)
        }
    };
    EVENTS.output::<[u8]>(bytes, flags)
}

/// Copies a `getaddrinfo` answer to `LOOKUPS` without waking the reader, which
/// reads the ring on its timer while events come: nothing waits for an answer, and a
/// wakeup (an irq_work and a cross-CPU wakeup, a VM exit on a guest) costs the
/// calling application more than the rest of the program (bpf_stats here: a
/// call's program took ~22 µs a run when every event woke the reader, ~1 µs
/// without). Only an answer that takes the unread data across a multiple of an
/// eighth of the ring wakes it, so a burst is read before the ring overflows, or
/// one that comes when no event has woken the reader for a poll interval (it may
/// be asleep: see `output_event`).
///
/// A call's event keeps the kernel's default (it wakes a reader that has caught
/// up), but the unread answer of an earlier call usually means the reader has
/// not, so calls mostly wait for the poll too. Nothing about a call needs the
/// reader sooner: its caller's executable and cgroup path are known after the
/// caller exits (`EXES`, the cgroup tree), as for packets.
#[inline(always)]
pub fn output_answer(event: &LookupAnswerEvent) -> Result<(), i32> {
    const THRESHOLD: u64 = (LOOKUP_RING_BYTES / WAKEUP_FRACTION) as u64;
    let before = LOOKUPS.query(u64::from(BPF_RB_AVAIL_DATA));
    // A record takes an 8-byte header and is padded to 8 bytes.
    let after = before + ((size_of::<LookupAnswerEvent>() as u64 + 8 + 7) & !7);
    // SAFETY: a helper call without arguments.
    let now_ns = unsafe { bpf_ktime_get_boot_ns() };
    let flags = if before / THRESHOLD != after / THRESHOLD || quiet_for_a_poll(now_ns) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    LOOKUPS.output::<LookupAnswerEvent>(event, u64::from(flags))
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

/// The fields exec.rs walks, in the order of its `field` module (0: unknown).
#[unsafe(no_mangle)]
static EXE_OFFSETS: [u32; 11] = [0; 11];

#[inline(always)]
pub fn exe_offsets() -> [u32; 11] {
    // SAFETY: as for task_offsets.
    unsafe { core::ptr::read_volatile(&EXE_OFFSETS) }
}

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

/// The kernel pointer at `base + offset`.
///
/// # Safety
/// Reads only through `bpf_probe_read_kernel`, which checks the address.
#[inline(always)]
pub unsafe fn read_ptr(base: *const u8, offset: u32) -> Result<*const u8, ()> {
    // SAFETY: see above.
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<*const u8>()) }.map_err(|_| ())
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
