//! Process-context hooks that record who owns each DNS socket.
//!
//! All of these run in the context of the task making the system call, so
//! `bpf_get_current_*` is that task. Each records the owner under the socket's cookie
//! in `SOCK_OWNERS`, where the packet programs look it up. The owner is "whoever last
//! used the socket", which also covers sockets passed between processes and sockets
//! opened before the recorder started (from their first send/recv on).
//!
//! Every hook allows the operation (returns 1 for cgroup hooks): dnsq observes only.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_kernel,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_socket_cookie,
            bpf_ktime_get_boot_ns,
        },
    },
    macros::{btf_tracepoint, cgroup_sock, cgroup_sock_addr},
    programs::{BtfTracePointContext, SockAddrContext, SockContext},
};
use dnsq_common::{OwnerHook, SockOwner, counter, family};

use crate::maps::{SOCK_OWNERS, bump, is_dns_port, netns_offsets, read_ptr, task_offsets};

/// The process's name: `current->group_leader->comm`. The thread's own name
/// (`bpf_get_current_comm`) is a worker's in threaded programs (`isc-net-0000` for
/// dig), and short-lived processes are gone before user space can ask /proc.
#[inline(always)]
pub(crate) fn process_comm() -> [u8; 16] {
    let (leader_offset, comm_offset) = task_offsets();
    if leader_offset == 0 || comm_offset == 0 {
        return [0; 16];
    }
    // SAFETY: bpf_get_current_task has no arguments; the pointers are only ever
    // dereferenced through bpf_probe_read_kernel, which checks them.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let Ok(leader) = read_ptr(task, leader_offset) else {
            return [0; 16];
        };
        bpf_probe_read_kernel(leader.add(comm_offset as usize).cast::<[u8; 16]>())
            .unwrap_or([0; 16])
    }
}

/// `current->nsproxy->net_ns->ns.inum`: the process's network namespace, which
/// /proc can no longer tell once a short-lived client has exited.
#[inline(always)]
pub(crate) fn netns_inum() -> u32 {
    let [nsproxy_offset, net_ns_offset, inum_offset] = netns_offsets();
    if nsproxy_offset == 0 || net_ns_offset == 0 {
        return 0;
    }
    // SAFETY: as in process_comm: pointers are only read through
    // bpf_probe_read_kernel.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let Ok(nsproxy) = read_ptr(task, nsproxy_offset) else {
            return 0;
        };
        let Ok(net) = read_ptr(nsproxy, net_ns_offset) else {
            return 0;
        };
        bpf_probe_read_kernel(net.add(inum_offset as usize).cast::<u32>()).unwrap_or(0)
    }
}

/// Cgroup hooks return 1 to let the operation proceed.
const ALLOW: i32 = 1;

#[inline(always)]
fn record_owner(cookie: u64, hook: OwnerHook) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    // Sockets are used over and over by the same thread (a resolver's loop): skip the
    // map write when nothing changed.
    // SAFETY: the value is copied out before anything else touches the map entry.
    let known = unsafe { SOCK_OWNERS.get(&cookie) }.copied();
    if let Some(known) = known
        && known.pid == pid
        && known.tid == tid
    {
        return;
    }
    let first_hook = known.map_or(hook as u32, |known| known.first_hook);
    // Another thread of the same process keeps the time the process was first
    // seen here: a packet wakes the reader only for a process new on its socket
    // (maps.rs `output_event`), not for threads taking turns (dnsperf's sender and
    // receiver).
    let seen_boot_ns = match known {
        Some(known) if known.pid == pid => known.seen_boot_ns,
        // SAFETY: a helper call without pointer arguments.
        _ => unsafe { bpf_ktime_get_boot_ns() },
    };
    let uid_gid = bpf_get_current_uid_gid();
    let owner = SockOwner {
        pid,
        tid,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        // SAFETY: helper calls without pointer arguments.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        seen_boot_ns,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        process_comm: process_comm(),
        netns: netns_inum(),
        _pad: 0,
        hook: hook as u32,
        first_hook,
    };
    match SOCK_OWNERS.insert(&cookie, &owner, 0) {
        Ok(()) => bump(counter::OWNER_UPDATES),
        Err(_) => bump(counter::OWNER_UPDATE_FAILED),
    }
}

/// `connect()`/`sendto()` on an IPv4 or IPv6 socket: `user_port` is the destination.
#[inline(always)]
fn on_sock_addr(ctx: &SockAddrContext, hook: OwnerHook) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let user_port = unsafe { (*ctx.sock_addr).user_port };
    // user_port holds the port in network byte order in its low 16 bits.
    if is_dns_port(u16::from_be(user_port as u16)) {
        // SAFETY: bpf_get_socket_cookie takes the context of a sock_addr program.
        let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
        record_owner(cookie, hook);
    }
    ALLOW
}

// match-proto:v6.18:net/ipv4/af_inet.c:int __inet_stream_connect(...) / ip4_datagram_connect
#[cgroup_sock_addr(connect4)]
pub fn dnsq_connect4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, OwnerHook::Connect)
}

#[cgroup_sock_addr(connect6)]
pub fn dnsq_connect6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, OwnerHook::Connect)
}

// match-proto:v6.18:net/ipv4/udp.c:int udp_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)
// (runs only for unconnected UDP sends that name a destination)
#[cgroup_sock_addr(sendmsg4)]
pub fn dnsq_sendmsg4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, OwnerHook::SendmsgAddr)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn dnsq_sendmsg6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, OwnerHook::SendmsgAddr)
}

#[inline(always)]
fn on_post_bind(ctx: &SockContext) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let src_port = unsafe { (*ctx.sock).src_port };
    // src_port is in host byte order here, unlike user_port above.
    if is_dns_port(src_port as u16) {
        // SAFETY: bpf_get_socket_cookie takes the context of a cgroup/sock program.
        let cookie = unsafe { bpf_get_socket_cookie(ctx.sock.cast()) };
        record_owner(cookie, OwnerHook::PostBind);
    }
    ALLOW
}

// match-proto:v6.18:net/ipv4/af_inet.c:int __inet_bind(...) (BPF_CGROUP_RUN_PROG_INET4_POST_BIND)
#[cgroup_sock(post_bind4)]
pub fn dnsq_post_bind4(ctx: SockContext) -> i32 {
    on_post_bind(&ctx)
}

#[cgroup_sock(post_bind6)]
pub fn dnsq_post_bind6(ctx: SockContext) -> i32 {
    on_post_bind(&ctx)
}

/// Offsets into `struct sock_common`, unchanged since Linux 4.x: `skc_dport` (be16)
/// at 12, `skc_num` (host-order local port) at 14, `skc_family` at 16. Rust eBPF has
/// no CO-RE; these three fields sit in the fixed head of the struct, before any field
/// that configuration options move.
const SKC_PORTPAIR_OFFSET: usize = 12;
const SKC_FAMILY_OFFSET: usize = 16;

#[inline(always)]
fn on_sock_io(ctx: &BtfTracePointContext, hook: OwnerHook) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return 0;
    }
    // SAFETY: the argument is BTF-typed (`struct sock *`), so the verifier checks
    // these loads against the struct's fields and makes them fault-safe; they cost a
    // load each, where bpf_probe_read_kernel cost a helper call each on every
    // send and receive of the host.
    let (portpair, family_id) = unsafe {
        (
            core::ptr::read_volatile(sk.add(SKC_PORTPAIR_OFFSET).cast::<u32>()),
            core::ptr::read_volatile(sk.add(SKC_FAMILY_OFFSET).cast::<u16>()),
        )
    };
    if family_id != u16::from(family::INET) && family_id != u16::from(family::INET6) {
        return 0;
    }
    // Little-endian load of {be16 dport, u16 num}.
    let remote_port = u16::from_be(portpair as u16);
    let local_port = (portpair >> 16) as u16;
    if is_dns_port(remote_port) || is_dns_port(local_port) {
        // SAFETY: the tracepoint's first argument is a BTF-typed `struct sock *`, which
        // the tracing flavour of bpf_get_socket_cookie accepts.
        let cookie = unsafe { bpf_get_socket_cookie(sk as *mut c_void) };
        record_owner(cookie, hook);
    }
    0
}

// match-proto:v6.18:net/socket.c:trace_sock_send_length(struct sock *sk, int ret, int flags)
#[btf_tracepoint(function = "sock_send_length")]
pub fn dnsq_sock_send(ctx: BtfTracePointContext) -> i32 {
    on_sock_io(&ctx, OwnerHook::SockSend)
}

// match-proto:v6.18:net/socket.c:trace_sock_recv_length(struct sock *sk, int ret, int flags)
#[btf_tracepoint(function = "sock_recv_length")]
pub fn dnsq_sock_recv(ctx: BtfTracePointContext) -> i32 {
    on_sock_io(&ctx, OwnerHook::SockRecv)
}
