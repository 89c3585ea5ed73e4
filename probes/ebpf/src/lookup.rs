//! Uprobes on libc's resolver entry points: which process asked for which name.
//!
//! An application that resolves through glibc with nss-resolve (systemd-resolved
//! over a Unix socket) or nscd sends no DNS packet itself: the packet programs see
//! only the resolver daemon. These uprobes run at the entry of `getaddrinfo`,
//! `gethostbyname`, `gethostbyname2`, `gethostbyname_r` and `gethostbyname2_r` in
//! every libc file the loader found, in the context of the calling task, so
//! "current" is the application. The recorder joins the event to the resolver's
//! query for the same name.
//!
//! A uretprobe on each reads what the call returned (the addresses of
//! `getaddrinfo`'s `addrinfo` list, of the `hostent` of the others), so `dnsq
//! who IP` finds the application even when the daemon answered from its cache
//! or the name came from /etc/hosts: no DNS packet of anyone carries that
//! answer.
//!
//! A uprobe never changes what the function does: the programs only read.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_user, bpf_probe_read_user_str_bytes,
        generated::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns, bpf_loop},
    },
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use dnsq_common::{
    LOOKUP_HEADER_LEN, LookupAnswerEvent, MAX_ADDRINFO_WALK, MAX_ANSWER_ADDRESSES, MAX_LOOKUP_NAME,
    STATUS_H_ERRNO, STATUS_NO_HOSTENT, counter, lookup_fn,
};

use crate::{
    maps::{ANSWER_SCRATCH, LIBC_CALLS, LOOKUP_SCRATCH, LOOKUPS, LibcCall, bump, output_answer},
    owner::{netns_inum, process_comm},
};

/// Fills the caller's fields of a `LookupEvent` or a `LookupAnswerEvent` (the
/// same in both; a macro, as the two are distinct types) from the current task
/// (in a uprobe, the caller) and its `bpf_get_current_pid_tgid()`, and stamps
/// the event.
macro_rules! fill_caller {
    ($event:expr, $pid_tgid:expr) => {{
        let uid_gid = bpf_get_current_uid_gid();
        $event.pid = ($pid_tgid >> 32) as u32;
        $event.uid = uid_gid as u32;
        $event.gid = (uid_gid >> 32) as u32;
        // SAFETY: helpers without pointer arguments.
        $event.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
        $event.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
        $event.netns = netns_inum();
        $event.comm = bpf_get_current_comm().unwrap_or([0; 16]);
        $event.process_comm = process_comm();
    }};
}

// match-proto:glibc:int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
#[uprobe]
pub fn dnsq_getaddrinfo(ctx: ProbeContext) -> u32 {
    on_call(&ctx, lookup_fn::GETADDRINFO, Some(3), None);
    0
}

// match-proto:glibc:struct hostent *gethostbyname(const char *name)
#[uprobe]
pub fn dnsq_gethostbyname(ctx: ProbeContext) -> u32 {
    on_call(&ctx, lookup_fn::GETHOSTBYNAME, None, None);
    0
}

// match-proto:glibc:struct hostent *gethostbyname2(const char *name, int af)
#[uprobe]
pub fn dnsq_gethostbyname2(ctx: ProbeContext) -> u32 {
    on_call(&ctx, lookup_fn::GETHOSTBYNAME2, None, None);
    0
}

// match-proto:glibc:int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen, struct hostent **result, int *h_errnop)
#[uprobe]
pub fn dnsq_gethostbyname_r(ctx: ProbeContext) -> u32 {
    on_call(&ctx, lookup_fn::GETHOSTBYNAME_R, Some(4), Some(5));
    0
}

// match-proto:glibc:int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf, size_t buflen, struct hostent **result, int *h_errnop)
#[uprobe]
pub fn dnsq_gethostbyname2_r(ctx: ProbeContext) -> u32 {
    on_call(&ctx, lookup_fn::GETHOSTBYNAME2_R, Some(5), Some(6));
    0
}

// The returns of the calls above (where each call's result goes is in LIBC_CALLS).
#[uretprobe]
pub fn dnsq_getaddrinfo_ret(ctx: RetProbeContext) -> u32 {
    on_return(&ctx, lookup_fn::GETADDRINFO);
    0
}

#[uretprobe]
pub fn dnsq_gethostbyname_ret(ctx: RetProbeContext) -> u32 {
    on_return(&ctx, lookup_fn::GETHOSTBYNAME);
    0
}

#[uretprobe]
pub fn dnsq_gethostbyname2_ret(ctx: RetProbeContext) -> u32 {
    on_return(&ctx, lookup_fn::GETHOSTBYNAME2);
    0
}

#[uretprobe]
pub fn dnsq_gethostbyname_r_ret(ctx: RetProbeContext) -> u32 {
    on_return(&ctx, lookup_fn::GETHOSTBYNAME_R);
    0
}

#[uretprobe]
pub fn dnsq_gethostbyname2_r_ret(ctx: RetProbeContext) -> u32 {
    on_return(&ctx, lookup_fn::GETHOSTBYNAME2_R);
    0
}

/// The `LIBC_CALLS` key of this thread's call of `function`.
#[inline(always)]
fn call_key(tid: u32, function: u32) -> u64 {
    (u64::from(tid) << 32) | u64::from(function)
}

/// A call's entry: sends its event, and keeps where its result goes (argument
/// `out`, for the functions that write it through a pointer) and where its
/// `h_errno` goes (argument `h_errnop`) for the return.
#[inline(always)]
fn on_call(ctx: &ProbeContext, function: u32, out: Option<usize>, h_errnop: Option<usize>) {
    let key = call_key(bpf_get_current_pid_tgid() as u32, function);
    let call = on_lookup(ctx, function).and_then(|boot_ns| {
        let out = match out {
            Some(n) => ctx.arg::<u64>(n)?,
            None => 0,
        };
        // Not having it only costs the failure's reason.
        let h_errnop = h_errnop.and_then(|n| pointer_arg(ctx, n)).unwrap_or(0);
        Some(LibcCall {
            out,
            h_errnop,
            boot_ns,
        })
    });
    match call {
        // The answer is read at the return (a call's event that was not sent
        // has no answer sent either: user space could not name it).
        Some(call) => {
            if LIBC_CALLS.insert(&key, &call, 0).is_err() {
                bump(counter::LOOKUPS_LOST);
            }
        }
        // No earlier call of this thread may take this call's answer.
        None => {
            let _ = LIBC_CALLS.remove(&key);
        }
    }
}

/// Pointer argument `n` at the function's first instruction.
#[inline(always)]
fn pointer_arg(ctx: &ProbeContext, n: usize) -> Option<u64> {
    ctx.arg::<u64>(n).or_else(|| stack_arg(ctx, n))
}

/// Argument `n` (from the seventh: `gethostbyname2_r`'s `h_errnop`) where the
/// x86-64 calling convention puts it: on the stack, above the return address.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn stack_arg(ctx: &ProbeContext, n: usize) -> Option<u64> {
    // SAFETY: `regs` is the context the kernel passed; reading a field.
    let sp = unsafe { (*ctx.regs).rsp };
    let at = sp + 8 * (n as u64 - 5);
    // SAFETY: bpf_probe_read_user checks the address.
    unsafe { bpf_probe_read_user(at as *const u64) }.ok()
}

/// Other architectures pass eight arguments in registers (`ctx.arg`).
#[cfg(not(bpf_target_arch = "x86_64"))]
#[inline(always)]
fn stack_arg(_ctx: &ProbeContext, _n: usize) -> Option<u64> {
    None
}

/// Reads the name (argument 0) and sends the event; returns the event's
/// `boot_ns` when it was sent. A NULL or empty name (`getaddrinfo(NULL, "80",
/// …)`: a service lookup) is no name lookup and is skipped; a name that cannot be
/// read, or a full ring buffer, is counted lost.
#[inline(always)]
fn on_lookup(ctx: &ProbeContext, function: u32) -> Option<u64> {
    let name = ctx.arg::<*const u8>(0)?;
    if name.is_null() {
        return None;
    }
    let Some(event) = LOOKUP_SCRATCH.get_ptr_mut(0) else {
        bump(counter::LOOKUPS_LOST);
        return None;
    };
    // SAFETY: the per-CPU scratch slot; see the check before the output below for
    // what happens if another task on this CPU takes it meanwhile.
    let event = unsafe { &mut *event };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // First, so that a task that preempted this one and reused the slot is seen.
    // SAFETY: a plain write to the slot (volatile: it is read back below).
    unsafe { core::ptr::write_volatile(&mut event.tid, tid) };
    // SAFETY: the helper writes at most `event.name.len()` bytes and NUL-terminates.
    let len = match unsafe { bpf_probe_read_user_str_bytes(name, &mut event.name) } {
        Ok(bytes) => bytes.len(),
        Err(_) => {
            // Not readable without a page fault (or not a valid pointer): counted.
            bump(counter::LOOKUPS_LOST);
            return None;
        }
    };
    if len == 0 {
        return None;
    }
    fill_caller!(event, pid_tgid);
    event.function = function;
    event._pad = 0;
    // Bound for the verifier: the helper never returns more than the buffer.
    let len = if len < MAX_LOOKUP_NAME {
        len
    } else {
        MAX_LOOKUP_NAME - 1
    };
    event.name_len = len as u32;
    // Uprobe programs run preemptible (migration disabled, not preemption): a task
    // that ran this program on this CPU meanwhile would have overwritten the slot.
    // Rare; such an event is counted lost rather than sent mixed.
    // SAFETY: a plain read of the slot; volatile, or the compiler would fold in
    // the value this program wrote.
    if unsafe { core::ptr::read_volatile(&event.tid) } != tid {
        bump(counter::LOOKUPS_LOST);
        return None;
    }
    let boot_ns = event.boot_ns;
    let total = LOOKUP_HEADER_LEN + len;
    // SAFETY: `total` ≤ size_of::<LookupEvent>(), the scratch value's size.
    let bytes = unsafe { core::slice::from_raw_parts((event as *const _) as *const u8, total) };
    match LOOKUPS.output::<[u8]>(bytes, 0) {
        Ok(()) => {
            bump(counter::LOOKUPS_DELIVERED);
            Some(boot_ns)
        }
        Err(_) => {
            bump(counter::LOOKUPS_LOST);
            None
        }
    }
}

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

/// Sends what the thread's call of `function` returned: its status and the
/// addresses (`getaddrinfo`: its `addrinfo` list; the `gethostbyname` family:
/// the `hostent`'s address list). A return without a recorded call (the call
/// began before the probes were attached, or its event was not sent) sends
/// nothing; a full ring buffer is counted lost.
#[inline(always)]
fn on_return(ctx: &RetProbeContext, function: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let key = call_key(tid, function);
    // SAFETY: the value is copied out at once.
    let Some(call) = (unsafe { LIBC_CALLS.get(&key) }).copied() else {
        return;
    };
    let _ = LIBC_CALLS.remove(&key);
    let Some(event) = ANSWER_SCRATCH.get_ptr_mut(0) else {
        bump(counter::LOOKUPS_LOST);
        return;
    };
    // SAFETY: the per-CPU scratch slot; taken over meanwhile is checked below, as
    // in `on_lookup`.
    let event = unsafe { &mut *event };
    // SAFETY: a plain write to the slot (volatile: it is read back below).
    unsafe { core::ptr::write_volatile(&mut event.tid, tid) };
    event.count = 0;
    event.truncated = 0;
    event._pad = 0;
    event.call_boot_ns = call.boot_ns;
    if function == lookup_fn::GETADDRINFO {
        let status: i32 = ctx.ret();
        event.status = status;
        if status == 0 {
            read_addresses(call.out, event);
        }
    } else {
        // The `hostent`: returned, or written through `result` (the `_r`
        // functions return an error number; `*result` is NULL on failure).
        let hostent = if call.out == 0 {
            ctx.ret::<u64>()
        } else {
            // SAFETY: bpf_probe_read_user checks the address.
            unsafe { bpf_probe_read_user(call.out as *const u64) }.unwrap_or(0)
        };
        if hostent == 0 {
            // SAFETY: bpf_probe_read_user checks the address.
            let h_errno = (call.h_errnop != 0)
                .then(|| unsafe { bpf_probe_read_user(call.h_errnop as *const i32) }.ok())
                .flatten();
            event.status = h_errno.map_or(STATUS_NO_HOSTENT, |h_errno| STATUS_H_ERRNO + h_errno);
        } else {
            event.status = 0;
            read_hostent(hostent, event);
        }
    }
    fill_caller!(event, pid_tgid);
    event.function = lookup_fn::ANSWER | function;
    // SAFETY: a plain read of the slot (see `on_lookup`).
    if unsafe { core::ptr::read_volatile(&event.tid) } != tid {
        bump(counter::LOOKUPS_LOST);
        return;
    }
    match output_answer(event) {
        Ok(()) => bump(counter::LOOKUPS_DELIVERED),
        Err(_) => bump(counter::LOOKUPS_LOST),
    }
}

/// Where the walk of an `addrinfo` list is, between steps of `bpf_loop`.
struct Walk {
    /// The next entry (0: the list is done).
    next: u64,
    /// Entries of the event's arrays used.
    count: u32,
    truncated: u32,
    /// The last address kept: family, and its 16 bytes.
    last: (u64, u64, u64),
}

/// Walks the `addrinfo` list at `*res` (the caller's memory) into `event`: each
/// IPv4 and IPv6 address once, in order. glibc repeats an address once per
/// socket type, next to each other, so comparing with the previous one drops
/// the repeats. A list longer than the walk, more addresses than the event
/// holds, or memory that cannot be read sets `truncated`. The steps run under
/// `bpf_loop`, which the verifier checks once rather than once per step.
#[inline(always)]
fn read_addresses(res: u64, event: &mut LookupAnswerEvent) {
    // SAFETY: bpf_probe_read_user checks the address; a fault is an error.
    let Ok(next) = (unsafe { bpf_probe_read_user(res as *const u64) }) else {
        event.truncated = 1;
        return;
    };
    let mut walk = Walk {
        next,
        count: 0,
        truncated: 0,
        last: (0, 0, 0),
    };
    // SAFETY: the callback gets `walk` back as its context, on this stack.
    unsafe {
        bpf_loop(
            MAX_ADDRINFO_WALK,
            walk_step as *mut c_void,
            (&mut walk as *mut Walk).cast(),
            0,
        )
    };
    if walk.next != 0 {
        walk.truncated = 1;
    }
    event.count = walk.count;
    event.truncated = walk.truncated;
}

/// One entry of the list (`bpf_loop`'s callback: 0 goes on, 1 stops). The event
/// is this CPU's scratch slot, looked up again (the callback cannot be handed a
/// map value).
extern "C" fn walk_step(_index: u64, context: *mut c_void) -> i64 {
    // SAFETY: `read_addresses` passes its `Walk`.
    let walk = unsafe { &mut *context.cast::<Walk>() };
    if walk.next == 0 {
        return 1;
    }
    let Some(event) = ANSWER_SCRATCH.get_ptr_mut(0) else {
        walk.truncated = 1;
        return 1;
    };
    // SAFETY: the per-CPU scratch slot the caller is filling.
    let event = unsafe { &mut *event };
    // struct addrinfo (LP64): ai_flags, ai_family, ai_socktype, ai_protocol (4
    // bytes each), ai_addrlen (4 + 4 padding), ai_addr at 24, ai_canonname at
    // 32, ai_next at 40. Little-endian: ai_family is the high half of the first
    // word.
    // SAFETY: bpf_probe_read_user checks the address; a fault is an error.
    let Ok(entry) = (unsafe { bpf_probe_read_user(walk.next as *const [u64; 6]) }) else {
        walk.truncated = 1;
        return 1;
    };
    walk.next = entry[5];
    let sockaddr = entry[3];
    let address = match (entry[0] >> 32) as u32 {
        // sockaddr_in: family, port (2 bytes each), then the address.
        // SAFETY: as above.
        AF_INET => match unsafe { bpf_probe_read_user((sockaddr + 4) as *const u32) } {
            Ok(v4) => (4u64, u64::from(v4), 0u64),
            Err(_) => return 0,
        },
        // sockaddr_in6: family, port, flow info (4), then the address.
        // SAFETY: as above.
        AF_INET6 => match unsafe { bpf_probe_read_user((sockaddr + 8) as *const [u64; 2]) } {
            Ok(v6) => (6u64, v6[0], v6[1]),
            Err(_) => return 0,
        },
        _ => return 0,
    };
    if walk.count > 0 && address == walk.last {
        return 0;
    }
    let index = walk.count as usize;
    let (Some(family), Some(slot)) = (
        event.families.get_mut(index),
        event.addresses.get_mut(index),
    ) else {
        walk.truncated = 1;
        return 1;
    };
    *family = address.0 as u8;
    *slot = [address.1, address.2];
    walk.last = address;
    walk.count += 1;
    0
}

/// Where the walk of a `hostent`'s address list is, between steps of `bpf_loop`.
struct HostentWalk {
    /// `h_addr_list`: an array of pointers, NULL-terminated.
    list: u64,
    /// 4 or 6.
    family: u64,
    count: u32,
    truncated: u32,
    done: u32,
}

/// Reads the addresses of a `hostent` (the caller's memory) into `event`:
/// `struct hostent` (LP64) is h_name, h_aliases (8 bytes each), h_addrtype and
/// h_length (4 each), then h_addr_list at 24. More addresses than the event
/// holds, or memory that cannot be read, sets `truncated`.
#[inline(always)]
fn read_hostent(hostent: u64, event: &mut LookupAnswerEvent) {
    // SAFETY: bpf_probe_read_user checks the address; a fault is an error.
    let Ok(fields) = (unsafe { bpf_probe_read_user((hostent + 16) as *const [u64; 2]) }) else {
        event.truncated = 1;
        return;
    };
    let family = match fields[0] as u32 {
        AF_INET => 4,
        AF_INET6 => 6,
        _ => return,
    };
    let mut walk = HostentWalk {
        list: fields[1],
        family,
        count: 0,
        truncated: 0,
        done: 0,
    };
    // SAFETY: the callback gets `walk` back as its context, on this stack.
    unsafe {
        bpf_loop(
            MAX_ANSWER_ADDRESSES as u32 + 1,
            hostent_step as *mut c_void,
            (&mut walk as *mut HostentWalk).cast(),
            0,
        )
    };
    event.count = walk.count;
    event.truncated = walk.truncated | u32::from(walk.done == 0);
}

/// One address of the list (`bpf_loop`'s callback: 0 goes on, 1 stops).
extern "C" fn hostent_step(index: u64, context: *mut c_void) -> i64 {
    // SAFETY: `read_hostent` passes its `HostentWalk`.
    let walk = unsafe { &mut *context.cast::<HostentWalk>() };
    // SAFETY: as above.
    let Ok(at) = (unsafe { bpf_probe_read_user((walk.list + 8 * index) as *const u64) }) else {
        walk.truncated = 1;
        return 1;
    };
    if at == 0 {
        walk.done = 1;
        return 1;
    }
    let address = if walk.family == 4 {
        // SAFETY: as above.
        match unsafe { bpf_probe_read_user(at as *const u32) } {
            Ok(v4) => [u64::from(v4), 0],
            Err(_) => return 0,
        }
    } else {
        // SAFETY: as above.
        match unsafe { bpf_probe_read_user(at as *const [u64; 2]) } {
            Ok(v6) => v6,
            Err(_) => return 0,
        }
    };
    let Some(event) = ANSWER_SCRATCH.get_ptr_mut(0) else {
        walk.truncated = 1;
        return 1;
    };
    // SAFETY: the per-CPU scratch slot the caller is filling.
    let event = unsafe { &mut *event };
    let index = walk.count as usize;
    let (Some(family), Some(slot)) = (
        event.families.get_mut(index),
        event.addresses.get_mut(index),
    ) else {
        walk.truncated = 1;
        return 1;
    };
    *family = walk.family as u8;
    *slot = address;
    walk.count += 1;
    0
}
