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
//! A uprobe never changes what the function does: the programs only read.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_user_str_bytes,
        generated::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
    },
    macros::uprobe,
    programs::ProbeContext,
};
use dnsq_common::{LOOKUP_HEADER_LEN, MAX_LOOKUP_NAME, counter, lookup_fn};

use crate::{
    maps::{LOOKUP_SCRATCH, LOOKUPS, bump},
    owner::{netns_inum, process_comm},
};

// match-proto:glibc:int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
#[uprobe]
pub fn dnsq_getaddrinfo(ctx: ProbeContext) -> u32 {
    on_lookup(&ctx, lookup_fn::GETADDRINFO);
    0
}

// match-proto:glibc:struct hostent *gethostbyname(const char *name)
#[uprobe]
pub fn dnsq_gethostbyname(ctx: ProbeContext) -> u32 {
    on_lookup(&ctx, lookup_fn::GETHOSTBYNAME);
    0
}

// match-proto:glibc:struct hostent *gethostbyname2(const char *name, int af)
#[uprobe]
pub fn dnsq_gethostbyname2(ctx: ProbeContext) -> u32 {
    on_lookup(&ctx, lookup_fn::GETHOSTBYNAME2);
    0
}

// match-proto:glibc:int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen, struct hostent **result, int *h_errnop)
#[uprobe]
pub fn dnsq_gethostbyname_r(ctx: ProbeContext) -> u32 {
    on_lookup(&ctx, lookup_fn::GETHOSTBYNAME_R);
    0
}

// match-proto:glibc:int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf, size_t buflen, struct hostent **result, int *h_errnop)
#[uprobe]
pub fn dnsq_gethostbyname2_r(ctx: ProbeContext) -> u32 {
    on_lookup(&ctx, lookup_fn::GETHOSTBYNAME2_R);
    0
}

/// Reads the name (argument 0) and sends the event. A NULL or empty name
/// (`getaddrinfo(NULL, "80", …)`: a service lookup) is no name lookup and is
/// skipped; a name that cannot be read, or a full ring buffer, is counted lost.
#[inline(always)]
fn on_lookup(ctx: &ProbeContext, function: u32) {
    let Some(name) = ctx.arg::<*const u8>(0) else {
        return;
    };
    if name.is_null() {
        return;
    }
    let Some(event) = LOOKUP_SCRATCH.get_ptr_mut(0) else {
        bump(counter::LOOKUPS_LOST);
        return;
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
            return;
        }
    };
    if len == 0 {
        return;
    }
    let uid_gid = bpf_get_current_uid_gid();
    event.pid = (pid_tgid >> 32) as u32;
    event.uid = uid_gid as u32;
    event.gid = (uid_gid >> 32) as u32;
    // SAFETY: helpers without pointer arguments.
    event.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    event.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    event.netns = netns_inum();
    event.function = function;
    event._pad = 0;
    event.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    event.process_comm = process_comm();
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
        return;
    }
    let total = LOOKUP_HEADER_LEN + len;
    // SAFETY: `total` ≤ size_of::<LookupEvent>(), the scratch value's size.
    let bytes = unsafe { core::slice::from_raw_parts((event as *const _) as *const u8, total) };
    match LOOKUPS.output::<[u8]>(bytes, 0) {
        Ok(()) => bump(counter::LOOKUPS_DELIVERED),
        Err(_) => bump(counter::LOOKUPS_LOST),
    }
}
