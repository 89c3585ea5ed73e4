//! `cgroup_skb` programs: copy every packet with a DNS port to user space.
//!
//! Attached to the cgroup v2 root, they run for every socket of every process on the
//! host, in every network namespace. A cgroup_skb buffer starts at the IP header.
//! The socket's owner comes from `SOCK_OWNERS` by socket cookie, never from
//! "current". Whatever happens, the packet is allowed (return 1).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::{
        bpf_get_socket_cookie, bpf_ktime_get_boot_ns, bpf_skb_cgroup_id, bpf_skb_load_bytes,
    },
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use dnsq_common::{
    MAX_PAYLOAD, PacketHeader, SockOwner, counter, direction, family, proto, tcp_flags,
};

use crate::maps::{
    SCRATCH, SOCK_OWNERS, bump, is_dns_port, output_event, payload_cap, poll_interval_ns,
};

const ALLOW: i32 = 1;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const HEADER_LEN: usize = core::mem::size_of::<PacketHeader>();

#[cgroup_skb(egress)]
pub fn dnsq_egress(ctx: SkBuffContext) -> i32 {
    capture(&ctx, direction::SENT);
    ALLOW
}

#[cgroup_skb(ingress)]
pub fn dnsq_ingress(ctx: SkBuffContext) -> i32 {
    capture(&ctx, direction::RECEIVED);
    ALLOW
}

/// Where the transport header starts and what it is. The addresses are read
/// only for DNS packets, straight into the event (`load_addresses`).
struct Network {
    family: u8,
    proto: u8,
    l4_offset: usize,
}

#[inline(always)]
fn capture(ctx: &SkBuffContext, dir: u8) {
    // SAFETY: the context pointer is valid for the program's run.
    let protocol = u16::from_be(unsafe { (*ctx.skb.skb).protocol } as u16);
    let network = match protocol {
        ETH_P_IP => parse_ipv4(ctx),
        ETH_P_IPV6 => parse_ipv6(ctx),
        _ => return,
    };
    let Some(network) = network else { return };
    if network.proto != proto::UDP && network.proto != proto::TCP {
        return;
    }
    // Source and destination ports lead both the UDP and the TCP header.
    let Some(ports) = read::<4>(ctx, network.l4_offset) else {
        return;
    };
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    if !is_dns_port(sport) && !is_dns_port(dport) {
        return;
    }
    // From here on the packet is DNS traffic: any failure is counted.
    if send_event(ctx, dir, &network, sport, dport).is_err() {
        bump(counter::LOST_PARSE_FAILED);
    }
}

/// `N` bytes at `offset` of the packet: loaded straight from its linear data
/// (direct packet access) when they are there, as a packet's headers nearly
/// always are, else copied by bpf_skb_load_bytes. These programs run for every
/// packet of the host: the two helper calls this saves were about a quarter of
/// a non-DNS packet's cost in the egress program (bpf_stats, iperf3 traffic).
#[inline(always)]
fn read<const N: usize>(ctx: &SkBuffContext, offset: usize) -> Option<[u8; N]> {
    // SAFETY: the context pointer is valid for the program's run.
    let (start, end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    if start + offset + N <= end {
        let mut bytes = [0u8; N];
        for (i, byte) in bytes.iter_mut().enumerate() {
            // SAFETY: within [data, data_end), checked above where the verifier
            // sees it.
            *byte = unsafe { *((start + offset + i) as *const u8) };
        }
        return Some(bytes);
    }
    ctx.load::<[u8; N]>(offset).ok()
}

#[inline(always)]
fn parse_ipv4(ctx: &SkBuffContext) -> Option<Network> {
    // Version and header length, …, flags and fragment offset (6–7), TTL,
    // protocol (9).
    let ip = read::<10>(ctx, 0)?;
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if header_len < 20 {
        return None;
    }
    // A non-first fragment has no transport header. (Egress runs before
    // fragmentation and ingress after reassembly, so this is rare.)
    let fragment_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    if fragment_offset != 0 {
        return None;
    }
    Some(Network {
        family: family::INET,
        proto: ip[9],
        l4_offset: header_len,
    })
}

/// IPv6 extension headers we step over (RFC 8200 §4); anything else ends the chain.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
/// More extension headers than this and we give up on the packet.
const MAX_IPV6_EXT_HEADERS: usize = 8;

#[inline(always)]
fn parse_ipv6(ctx: &SkBuffContext) -> Option<Network> {
    // The version word, payload length and next header (addresses come later).
    let ip = read::<8>(ctx, 0)?;
    let mut next = ip[6];
    let mut offset = 40usize;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let ext = read::<2>(ctx, offset)?;
                next = ext[0];
                offset += (usize::from(ext[1]) + 1) * 8;
            }
            IPV6_FRAGMENT => {
                let ext = read::<4>(ctx, offset)?;
                if u16::from_be_bytes([ext[2], ext[3]]) >> 3 != 0 {
                    return None; // not the first fragment
                }
                next = ext[0];
                offset += 8;
            }
            IPV6_AUTH => {
                let ext = read::<2>(ctx, offset)?;
                next = ext[0];
                offset += (usize::from(ext[1]) + 2) * 4;
            }
            _ => break,
        }
    }
    Some(Network {
        family: family::INET6,
        proto: next,
        l4_offset: offset,
    })
}

// `saddr` and `daddr` are one 32-byte run of the header, 8-byte aligned: both are
// written a word at a time or loaded at once.
const _: () = assert!(core::mem::offset_of!(PacketHeader, saddr) % 8 == 0);
const _: () = assert!(
    core::mem::offset_of!(PacketHeader, daddr) == core::mem::offset_of!(PacketHeader, saddr) + 16
);

/// Copies the packet's addresses into the event's header: IPv6 as they are, IPv4
/// in the first 4 bytes of each, the rest zero.
#[inline(always)]
fn load_addresses(ctx: &SkBuffContext, family: u8, header: &mut PacketHeader) -> Result<(), ()> {
    let addresses = header.saddr.as_mut_ptr().cast::<u64>();
    if family == family::INET6 {
        // SAFETY: 32 bytes from `saddr` are `saddr` and `daddr` (asserted above).
        let ret = unsafe {
            bpf_skb_load_bytes(
                ctx.skb.skb.cast::<c_void>(),
                8,
                addresses.cast::<c_void>(),
                32,
            )
        };
        return if ret == 0 { Ok(()) } else { Err(()) };
    }
    let [s0, s1, s2, s3, d0, d1, d2, d3] = read::<8>(ctx, 12).ok_or(())?;
    // SAFETY: four aligned words within `saddr` and `daddr` (asserted above).
    unsafe {
        addresses.write(u64::from_ne_bytes([s0, s1, s2, s3, 0, 0, 0, 0]));
        addresses.add(1).write(0);
        addresses
            .add(2)
            .write(u64::from_ne_bytes([d0, d1, d2, d3, 0, 0, 0, 0]));
        addresses.add(3).write(0);
    }
    Ok(())
}

/// `*to = *from`, a word at a time: the compiler makes a struct copy a call to a
/// byte-by-byte memmove here (80 iterations a packet).
#[inline(always)]
fn copy_owner(to: &mut SockOwner, from: &SockOwner) {
    const WORDS: usize = size_of::<SockOwner>() / 8;
    const _: () = assert!(size_of::<SockOwner>() % 8 == 0 && align_of::<SockOwner>() == 8);
    let to = (to as *mut SockOwner).cast::<u64>();
    let from = (from as *const SockOwner).cast::<u64>();
    for i in 0..WORDS {
        // SAFETY: both are whole, aligned `SockOwner`s of WORDS words.
        unsafe { to.add(i).write(from.add(i).read()) };
    }
}

/// `*to = SockOwner::zeroed()`, a word at a time (see `copy_owner`; volatile, or
/// the compiler turns the loop back into a byte-by-byte memset).
#[inline(always)]
fn zero_owner(to: &mut SockOwner) {
    let to = (to as *mut SockOwner).cast::<u64>();
    for i in 0..size_of::<SockOwner>() / 8 {
        // SAFETY: as in `copy_owner`.
        unsafe { to.add(i).write_volatile(0) };
    }
}

#[inline(always)]
fn send_event(
    ctx: &SkBuffContext,
    dir: u8,
    network: &Network,
    sport: u16,
    dport: u16,
) -> Result<(), ()> {
    let skb: *mut __sk_buff = ctx.skb.skb;
    let (payload_offset, tcp_seq, flags) = if network.proto == proto::UDP {
        (network.l4_offset + 8, 0u32, 0u8)
    } else {
        let tcp = read::<14>(ctx, network.l4_offset).ok_or(())?;
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        let data_offset = usize::from(tcp[12] >> 4) * 4;
        (network.l4_offset + data_offset, seq, tcp[13])
    };
    let skb_len = ctx.len() as usize;
    let payload_len = skb_len.saturating_sub(payload_offset) as u32;
    // Pure TCP ACKs carry nothing for DNS; SYN/FIN/RST tell the reassembler where a
    // stream starts and ends.
    if network.proto == proto::TCP
        && payload_len == 0
        && flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) == 0
    {
        return Ok(());
    }

    let event = SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: the per-CPU scratch slot is ours for the duration of this run.
    let event = unsafe { &mut *event };
    let header = &mut event.header;
    // SAFETY: helpers that take the program's own context.
    header.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    header.sock_cookie = unsafe { bpf_get_socket_cookie(skb.cast::<c_void>()) };
    header.sock_cgroup_id = unsafe { bpf_skb_cgroup_id(skb) };
    // The scratch slot keeps the previous event's bytes: clear the padding too.
    header._pad = 0;
    // SAFETY: the value is copied out at once.
    match unsafe { SOCK_OWNERS.get(&header.sock_cookie) } {
        Some(owner) => {
            copy_owner(&mut header.owner, owner);
            header.owner_found = 1;
        }
        None => {
            zero_owner(&mut header.owner);
            header.owner_found = 0;
            bump(counter::OWNER_UNKNOWN);
        }
    }
    load_addresses(ctx, network.family, header)?;
    // SAFETY: the context pointer is valid for the program's run.
    header.ifindex = unsafe { (*skb).ifindex };
    header.tcp_seq = tcp_seq;
    header.payload_len = payload_len;
    header.sport = sport;
    header.dport = dport;
    header.family = network.family;
    header.proto = network.proto;
    header.direction = dir;
    header.tcp_flags = flags;

    let cap = payload_cap();
    let mut captured = if payload_len < cap { payload_len } else { cap };
    // Bound for the verifier, which must see the copy fit the scratch buffer.
    if captured > MAX_PAYLOAD as u32 {
        captured = MAX_PAYLOAD as u32;
    }
    if captured > 0 {
        // SAFETY: `captured` ≤ MAX_PAYLOAD, the size of `payload`.
        let ret = unsafe {
            bpf_skb_load_bytes(
                skb.cast::<c_void>(),
                payload_offset as u32,
                event.payload.as_mut_ptr().cast::<c_void>(),
                captured,
            )
        };
        if ret != 0 {
            bump(counter::LOST_LOAD_FAILED);
            return Ok(());
        }
    }
    event.header.captured_len = captured;

    let total = HEADER_LEN + captured as usize;
    // SAFETY: `total` ≤ size_of::<PacketEvent>(), and the scratch value is that big.
    let bytes = unsafe { core::slice::from_raw_parts((event as *const _) as *const u8, total) };
    // A process new on this socket may be short-lived: see `output_event`.
    let new_owner = event.header.owner_found == 1
        && event
            .header
            .boot_ns
            .saturating_sub(event.header.owner.seen_boot_ns)
            < poll_interval_ns();
    match output_event(bytes, new_owner, event.header.boot_ns) {
        Ok(()) => bump(counter::DELIVERED),
        Err(_) => bump(counter::LOST_RINGBUF_FULL),
    }
    Ok(())
}
