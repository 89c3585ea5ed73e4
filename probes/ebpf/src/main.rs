//! dnsq's kernel programs.
//!
//! The families, one file each:
//! - [`packet`]: `cgroup_skb` ingress/egress on the cgroup v2 root. Sees every packet of
//!   every socket on the host (all network namespaces), keeps those with a DNS port and
//!   copies them to the `EVENTS` ring buffer. Always allows the packet.
//! - [`owner`]: process-context hooks (connect, sendmsg, post_bind, and the
//!   `sock_send_length`/`sock_recv_length` tracepoints) that record which task uses a
//!   DNS socket, keyed by socket cookie. A packet program must never use "current":
//!   the receive path often runs in the sender's or a softirq's context.
//! - [`lookup`]: uprobes on libc's resolver entry points (`getaddrinfo`,
//!   `gethostbyname*`), which see the name an application asks for even when it
//!   never sends a DNS packet itself (nss-resolve, nscd), and a uretprobe on
//!   `getaddrinfo` that reads the addresses the call returned. Sent on `LOOKUPS`.
//! - [`exec`]: `sched_process_exec`/`sched_process_fork` tracepoints that keep each
//!   new process's executable path in `EXES`, for clients gone before user space
//!   can read /proc.
#![no_std]
#![no_main]

mod exec;
mod lookup;
mod maps;
mod owner;
mod packet;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a program the verifier accepts: every index is bounds-checked.
    loop {}
}

// "Dual MIT/GPL" is GPL-compatible, which bpf_probe_read_kernel requires.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
