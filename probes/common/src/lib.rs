//! Types shared by the kernel programs (`dnsq-ebpf`) and the recorder.
//!
//! Everything here crosses the kernel/user boundary as raw bytes, so every type is
//! `#[repr(C)]`, made of integers only, with explicit padding, and its size is pinned
//! by a const assert: a layout change that is not made on both sides fails to build.
#![no_std]

use core::mem::size_of;

/// Largest DNS payload a single event can carry. The per-CPU scratch buffer is this
/// big plus the header; the kernel caps per-CPU map values at 32 KiB.
pub const MAX_PAYLOAD: usize = 16 * 1024;

/// Default payload cap when the user does not set one.
pub const DEFAULT_PAYLOAD_CAP: u32 = MAX_PAYLOAD as u32;

/// Number of 64-bit words in the port bitmap (one bit per port).
pub const PORT_BITMAP_WORDS: u32 = 65536 / 64;

/// Capacity of the socket-cookie → owner map. LRU: the oldest sockets go first.
pub const SOCK_OWNERS_CAPACITY: u32 = 65536;

/// Default ring buffer size in bytes (a power of two, a multiple of the page size).
/// The recorder maps the data twice (so records never wrap), so it costs twice
/// this in resident memory. An event is its 168-byte header and the message: at
/// 50k queries/s (200k messages/s on loopback, ~50 MB/s) 8 MiB holds about 0.17 s
/// of backlog, at 5k queries/s well over a second; nothing was lost at 50k in the
/// benchmark's runs (BENCHMARKS.md). Hosts busier than that can raise it.
pub const DEFAULT_RING_BYTES: u32 = 8 * 1024 * 1024;

/// Names of maps and programs, shared so the loader and the programs cannot drift.
pub mod names {
    pub const EVENTS: &str = "EVENTS";
    pub const SOCK_OWNERS: &str = "SOCK_OWNERS";
    pub const PORTS: &str = "PORTS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const SCRATCH: &str = "SCRATCH";
    pub const PAYLOAD_CAP: &str = "PAYLOAD_CAP";
    pub const TASK_GROUP_LEADER_OFFSET: &str = "TASK_GROUP_LEADER_OFFSET";
    pub const TASK_COMM_OFFSET: &str = "TASK_COMM_OFFSET";
    pub const NETNS_OFFSETS: &str = "NETNS_OFFSETS";
    pub const LOOKUPS: &str = "LOOKUPS";
    pub const LOOKUP_SCRATCH: &str = "LOOKUP_SCRATCH";
    pub const EVENTS_WAKEUP_BYTES: &str = "EVENTS_WAKEUP_BYTES";
    pub const POLL_INTERVAL_NS: &str = "POLL_INTERVAL_NS";
    pub const EXES: &str = "EXES";
    pub const EXE_SCRATCH: &str = "EXE_SCRATCH";
    pub const EXE_OFFSETS: &str = "EXE_OFFSETS";
}

/// The packet programs do not wake the reader for each event (a wakeup is an
/// irq_work and a cross-CPU wakeup, a VM exit on a guest) but when the unread data
/// in `EVENTS` passes a multiple of `ring size / WAKEUP_FRACTION`, for a process
/// new on its socket, or when no event has woken it for a poll interval (so that
/// an idle reader can sleep); the reader also polls on a short timer while events
/// come.
pub const WAKEUP_FRACTION: u32 = 8;

/// Which hook last recorded a socket's owner. Sent as a `u32` (no `Pod` on enums).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerHook {
    Unknown = 0,
    Connect = 1,
    SendmsgAddr = 2,
    PostBind = 3,
    SockSend = 4,
    SockRecv = 5,
    /// Written into the map by the recorder's user-space fallback.
    UserSpace = 6,
}

impl OwnerHook {
    pub const fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Connect,
            2 => Self::SendmsgAddr,
            3 => Self::PostBind,
            4 => Self::SockSend,
            5 => Self::SockRecv,
            6 => Self::UserSpace,
            _ => Self::Unknown,
        }
    }
}

/// The process behind a socket, recorded in process context (connect, sendmsg,
/// bind, send/recv) and keyed by the socket cookie in `SOCK_OWNERS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOwner {
    /// Thread group id: what user space calls the pid.
    pub pid: u32,
    /// Kernel task id: what user space calls the thread id.
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// cgroup v2 id of the task (the inode number of its cgroup directory).
    pub cgroup_id: u64,
    /// `bpf_ktime_get_boot_ns` when this process (pid) was first seen on the socket.
    pub seen_boot_ns: u64,
    /// Name of the thread that used the socket.
    pub comm: [u8; 16],
    /// Name of its process (the thread group leader's `comm`); all zero when the
    /// loader could not find `task_struct`'s layout in the kernel's BTF.
    pub process_comm: [u8; 16],
    /// Inode number of the task's network namespace (`net:[N]`), 0 if unknown.
    pub netns: u32,
    pub _pad: u32,
    /// An [`OwnerHook`] value.
    pub hook: u32,
    /// The [`OwnerHook`] that first learnt this socket's owner: it tells a socket
    /// seen from its creation (connect, sendto, bind) from one older than the
    /// recorder (first seen sending or receiving).
    pub first_hook: u32,
}
const _: () = assert!(size_of::<SockOwner>() == 80);

impl SockOwner {
    pub const fn zeroed() -> Self {
        Self {
            pid: 0,
            tid: 0,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            seen_boot_ns: 0,
            comm: [0; 16],
            process_comm: [0; 16],
            netns: 0,
            _pad: 0,
            hook: 0,
            first_hook: 0,
        }
    }
}

/// `PacketHeader::direction` values.
pub mod direction {
    /// Seen on cgroup egress: the socket's owner sent it.
    pub const SENT: u8 = 1;
    /// Seen on cgroup ingress: delivered to the socket's owner.
    pub const RECEIVED: u8 = 2;
}

/// `PacketHeader::family` values (the `AF_*` numbers).
pub mod family {
    pub const INET: u8 = 2;
    pub const INET6: u8 = 10;
}

/// `PacketHeader::proto` values (IP protocol numbers).
pub mod proto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// TCP flag bits as in the TCP header's 13th byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
}

/// One packet with a DNS port, as the packet programs send it. The captured payload
/// bytes follow the header directly in the ring buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PacketHeader {
    /// `bpf_ktime_get_boot_ns()`; the recorder turns it into wall-clock time.
    pub boot_ns: u64,
    /// Cookie of the socket the packet belongs to (0 if there was none).
    pub sock_cookie: u64,
    /// cgroup v2 id of the socket (`bpf_skb_cgroup_id`).
    pub sock_cgroup_id: u64,
    /// The socket's owner as `SOCK_OWNERS` knew it when the packet passed;
    /// meaningful only when `owner_found != 0`.
    pub owner: SockOwner,
    /// Source and destination addresses; IPv4 uses the first four bytes.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub ifindex: u32,
    /// TCP sequence number of the first payload byte (0 for UDP).
    pub tcp_seq: u32,
    /// True length of the L4 payload (the DNS message or TCP stream bytes).
    pub payload_len: u32,
    /// How many payload bytes follow this header (≤ payload_len, ≤ the cap).
    pub captured_len: u32,
    /// Host byte order.
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub proto: u8,
    pub direction: u8,
    pub tcp_flags: u8,
    pub owner_found: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<PacketHeader>() == 168);

/// The per-CPU scratch area a packet event is assembled in before it is copied
/// to the ring buffer with its exact length (the BPF stack is only 512 bytes).
#[repr(C)]
pub struct PacketEvent {
    pub header: PacketHeader,
    pub payload: [u8; MAX_PAYLOAD],
}
const _: () = assert!(size_of::<PacketEvent>() == 168 + MAX_PAYLOAD);
// The kernel refuses per-CPU map values over 32 KiB.
const _: () = assert!(size_of::<PacketEvent>() <= 32 * 1024);

/// Size of the `LOOKUPS` ring buffer (a power of two, a multiple of the page size).
pub const LOOKUP_RING_BYTES: u32 = 256 * 1024;

/// Bytes of a looked-up name a [`LookupEvent`] can hold, its terminating NUL
/// included: names are cut at `MAX_LOOKUP_NAME - 1` bytes (no DNS name in
/// presentation format is longer than 254).
pub const MAX_LOOKUP_NAME: usize = 256;

/// The libc resolver entry points the uprobes watch, as `LookupEvent::function`.
/// Every one takes the name as its first argument.
pub mod lookup_fn {
    pub const GETADDRINFO: u32 = 1;
    pub const GETHOSTBYNAME: u32 = 2;
    pub const GETHOSTBYNAME2: u32 = 3;
    pub const GETHOSTBYNAME_R: u32 = 4;
    pub const GETHOSTBYNAME2_R: u32 = 5;

    /// (function id, libc symbol, uprobe program), in attach order.
    pub const ALL: [(u32, &str, &str); 5] = [
        (GETADDRINFO, "getaddrinfo", "dnsq_getaddrinfo"),
        (GETHOSTBYNAME, "gethostbyname", "dnsq_gethostbyname"),
        (GETHOSTBYNAME2, "gethostbyname2", "dnsq_gethostbyname2"),
        (GETHOSTBYNAME_R, "gethostbyname_r", "dnsq_gethostbyname_r"),
        (
            GETHOSTBYNAME2_R,
            "gethostbyname2_r",
            "dnsq_gethostbyname2_r",
        ),
    ];

    /// Set in `function` on a [`super::LookupAnswerEvent`]: what a call of the
    /// function in the other bits returned (sent by a uretprobe on the same ring
    /// buffer; `function` is at the same offset in both events).
    pub const ANSWER: u32 = 0x80;
    pub const GETADDRINFO_ANSWER: u32 = ANSWER | GETADDRINFO;

    /// The return probes: (function id, symbol, uretprobe program, how the
    /// recorder lists it), in attach order.
    pub const RETURNS: [(u32, &str, &str, &str); 5] = [
        (
            GETADDRINFO,
            "getaddrinfo",
            "dnsq_getaddrinfo_ret",
            "getaddrinfo (return)",
        ),
        (
            GETHOSTBYNAME,
            "gethostbyname",
            "dnsq_gethostbyname_ret",
            "gethostbyname (return)",
        ),
        (
            GETHOSTBYNAME2,
            "gethostbyname2",
            "dnsq_gethostbyname2_ret",
            "gethostbyname2 (return)",
        ),
        (
            GETHOSTBYNAME_R,
            "gethostbyname_r",
            "dnsq_gethostbyname_r_ret",
            "gethostbyname_r (return)",
        ),
        (
            GETHOSTBYNAME2_R,
            "gethostbyname2_r",
            "dnsq_gethostbyname2_r_ret",
            "gethostbyname2_r (return)",
        ),
    ];

    /// The symbol's name for a function id.
    pub const fn name(id: u32) -> Option<&'static str> {
        match id {
            GETADDRINFO => Some("getaddrinfo"),
            GETHOSTBYNAME => Some("gethostbyname"),
            GETHOSTBYNAME2 => Some("gethostbyname2"),
            GETHOSTBYNAME_R => Some("gethostbyname_r"),
            GETHOSTBYNAME2_R => Some("gethostbyname2_r"),
            _ => None,
        }
    }
}

/// A call of a libc resolver entry point (`getaddrinfo`, `gethostbyname*`), as the
/// uprobes send it on the `LOOKUPS` ring buffer: who called, and for which name.
/// Everything comes from the calling task ("current" is the caller in a uprobe).
/// Only the first `LOOKUP_HEADER_LEN + name_len` bytes are sent.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LookupEvent {
    /// `bpf_ktime_get_boot_ns()` at the call.
    pub boot_ns: u64,
    /// cgroup v2 id of the calling task.
    pub cgroup_id: u64,
    /// Thread group id (the pid) and task id (the thread) of the caller.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Inode number of the caller's network namespace, 0 if unknown.
    pub netns: u32,
    /// A [`lookup_fn`] value.
    pub function: u32,
    /// Bytes of `name` that are the name (no NUL), ≤ `MAX_LOOKUP_NAME - 1`.
    pub name_len: u32,
    pub _pad: u32,
    /// Name of the calling thread.
    pub comm: [u8; 16],
    /// Name of its process (`current->group_leader->comm`); all zero when the
    /// loader could not find `task_struct`'s layout.
    pub process_comm: [u8; 16],
    /// The name as the application passed it (NUL-terminated C string bytes).
    pub name: [u8; MAX_LOOKUP_NAME],
}
/// Bytes of a [`LookupEvent`] before `name`.
pub const LOOKUP_HEADER_LEN: usize = 80;
const _: () = assert!(core::mem::offset_of!(LookupEvent, name) == LOOKUP_HEADER_LEN);
const _: () = assert!(size_of::<LookupEvent>() == LOOKUP_HEADER_LEN + MAX_LOOKUP_NAME);
const _: () = assert!(size_of::<LookupEvent>() == 336);

/// Capacity of `LIBC_CALLS`, the resolver calls under way ((thread id, function)
/// → where the result goes). LRU: a thread that never returned (killed in the
/// call) does not hold a slot for ever.
pub const LIBC_CALLS_CAPACITY: u32 = 4096;

/// Distinct addresses one [`LookupAnswerEvent`] holds.
pub const MAX_ANSWER_ADDRESSES: usize = 16;

/// `addrinfo` entries the uretprobe walks: glibc gives one per address and socket
/// type (three per address when the caller's hints leave the type open).
pub const MAX_ADDRINFO_WALK: u32 = 48;

/// A `gethostbyname`-family answer's status when the call returned no `hostent`
/// (the name was not found, or the lookup failed) and why is not known.
pub const STATUS_NO_HOSTENT: i32 = 1;

/// A `gethostbyname`-family answer's status when the call returned no `hostent`
/// and its `h_errno` was read: this plus `h_errno` (`HOST_NOT_FOUND` 1,
/// `TRY_AGAIN` 2, `NO_RECOVERY` 3, `NO_DATA` 4; `NETDB_INTERNAL` -1).
pub const STATUS_H_ERRNO: i32 = 16;

/// What a resolver call returned, as its uretprobe sends it on `LOOKUPS` (the
/// whole struct): the first 40 bytes are laid out as in [`LookupEvent`], so
/// `function` ([`lookup_fn::ANSWER`] set) tells the two apart. The name is the
/// call's: user space pairs the answer with the [`LookupEvent`] of the same
/// thread stamped `call_boot_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LookupAnswerEvent {
    /// `bpf_ktime_get_boot_ns()` at the return.
    pub boot_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub netns: u32,
    /// The call's [`lookup_fn`] value with [`lookup_fn::ANSWER`] set.
    pub function: u32,
    /// getaddrinfo's return value: 0, or an `EAI_*` code (negative in glibc).
    /// The `gethostbyname` family: 0 when it returned a `hostent`,
    /// [`STATUS_H_ERRNO`] + `h_errno` when not (the `_r` functions), or
    /// [`STATUS_NO_HOSTENT`] (`h_errno` not read: `gethostbyname`,
    /// `gethostbyname2`).
    pub status: i32,
    /// Entries of `addresses` used.
    pub count: u32,
    pub comm: [u8; 16],
    pub process_comm: [u8; 16],
    /// `boot_ns` of the call's [`LookupEvent`].
    pub call_boot_ns: u64,
    /// 1 when the result held more addresses (or entries) than were read.
    pub truncated: u32,
    pub _pad: u32,
    /// 4 or 6 for each address.
    pub families: [u8; MAX_ANSWER_ADDRESSES],
    /// The addresses as the `sockaddr`s hold them (network order; an IPv4
    /// address in the first 4 bytes), in the order getaddrinfo gave them, each
    /// once (repeats for other socket types dropped).
    pub addresses: [[u64; 2]; MAX_ANSWER_ADDRESSES],
}
const _: () = assert!(core::mem::offset_of!(LookupAnswerEvent, function) == 36);
const _: () = assert!(core::mem::offset_of!(LookupEvent, function) == 36);
const _: () = assert!(size_of::<LookupAnswerEvent>() == 112 + 16 * MAX_ANSWER_ADDRESSES);

/// Capacity of the pid → executable map (`EXES`). LRU: the processes that exec'd
/// longest ago go first; user space reads an entry within a second or so of the
/// process's first DNS packet or libc lookup.
pub const EXES_CAPACITY: u32 = 8192;

/// Bytes of [`ExePath::names`]. A path component is read into its second half
/// at most (`NAME_MAX` is 255), so a path longer than half of it is cut.
pub const EXE_NAMES_BYTES: usize = 512;

/// The executable a process runs (`current->mm->exe_file`), as the `sched_process_exec`
/// tracepoint walked its dentries, stored in `EXES` under the pid (and copied to a
/// forked child's pid). User space reads it when /proc no longer can: a
/// short-lived client (getent, dig, curl from cron) is often gone before the
/// recorder gets to /proc/PID/exe.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExePath {
    /// The process (tgid) the path was assembled for; the probe checks it is
    /// still its own before storing (a task that preempted it may have reused
    /// the per-CPU scratch slot).
    pub pid: u32,
    pub _pad: u32,
    /// Bytes of `names` used.
    pub len: u32,
    /// Non-zero when the walk stopped before the root (path too long or too
    /// deep, or a pointer unreadable): `names` is then not the whole path.
    pub truncated: u32,
    /// The path's components, each NUL-terminated, the file's own name first and
    /// the top directory last (the walk goes up from the file).
    pub names: [u8; EXE_NAMES_BYTES],
}
const _: () = assert!(size_of::<ExePath>() == 16 + EXE_NAMES_BYTES);

/// Indexes into the `COUNTERS` per-CPU array.
pub mod counter {
    /// Events written to the ring buffer.
    pub const DELIVERED: u32 = 0;
    /// Events lost because the ring buffer was full.
    pub const LOST_RINGBUF_FULL: u32 = 1;
    /// DNS-port packets whose payload could not be read (event not sent).
    pub const LOST_LOAD_FAILED: u32 = 2;
    /// Events sent without a known socket owner.
    pub const OWNER_UNKNOWN: u32 = 3;
    /// Times a socket owner was recorded.
    pub const OWNER_UPDATES: u32 = 4;
    /// Owner records that could not be stored in SOCK_OWNERS.
    pub const OWNER_UPDATE_FAILED: u32 = 5;
    /// Packets that matched a DNS port but whose headers could not be parsed.
    pub const LOST_PARSE_FAILED: u32 = 6;
    /// Libc lookup events written to the `LOOKUPS` ring buffer.
    pub const LOOKUPS_DELIVERED: u32 = 7;
    /// Libc lookup events lost: the ring buffer was full, or the name could not
    /// be read from the caller's memory.
    pub const LOOKUPS_LOST: u32 = 8;
    /// Executables recorded in `EXES` at an exec (or copied at a fork).
    pub const EXES_RECORDED: u32 = 9;
    /// Executables that could not be recorded: a pointer of the walk unreadable,
    /// the path too long, or the map update failed.
    pub const EXES_FAILED: u32 = 10;
    pub const COUNT: u32 = 11;
}

#[cfg(feature = "user")]
mod user {
    use super::*;

    // SAFETY: plain integer structs with explicit padding; any bit pattern is valid.
    unsafe impl aya::Pod for SockOwner {}
    // SAFETY: as above.
    unsafe impl aya::Pod for PacketHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for LookupEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for LookupAnswerEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ExePath {}
}
