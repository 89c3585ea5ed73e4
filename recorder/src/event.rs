//! Turns raw ring-buffer records into [`Packet`]s, and boot-time stamps into
//! wall-clock time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dnsq_common::{
    LOOKUP_HEADER_LEN, LookupAnswerEvent, LookupEvent, MAX_ANSWER_ADDRESSES, MAX_LOOKUP_NAME,
    PacketHeader, SockOwner, direction, family, lookup_fn, proto,
};

use crate::record::{Direction, Transport};

/// One packet with a DNS port, as the kernel saw it.
#[derive(Debug, Clone)]
pub struct Packet {
    pub boot_ns: u64,
    pub cookie: u64,
    pub sock_cgroup_id: u64,
    /// The socket's owner as the kernel knew it when the packet passed.
    pub owner: Option<SockOwner>,
    pub direction: Direction,
    pub transport: Transport,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub ifindex: u32,
    pub tcp_seq: u32,
    pub tcp_flags: u8,
    /// True L4 payload length; the payload captured may be shorter (the cap).
    pub payload_len: u32,
}

impl Packet {
    /// The far end of the conversation, from the socket owner's point of view.
    pub fn remote(&self) -> (IpAddr, u16) {
        match self.direction {
            Direction::Sent => (self.dst, self.dport),
            Direction::Received => (self.src, self.sport),
        }
    }

    /// The socket owner's own address and port.
    pub fn local(&self) -> (IpAddr, u16) {
        match self.direction {
            Direction::Sent => (self.src, self.sport),
            Direction::Received => (self.dst, self.dport),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("ring buffer record of {0} bytes is shorter than the event header")]
    Short(usize),
    #[error("event claims {claimed} captured bytes but carries {present}")]
    Length { claimed: usize, present: usize },
    #[error("unknown {field} value {value} in event")]
    Field { field: &'static str, value: u8 },
}

const HEADER_LEN: usize = size_of::<PacketHeader>();

/// Parses one ring-buffer record: a [`PacketHeader`] followed by the payload,
/// which is handed back where it lies (UDP messages are decoded from it, TCP
/// reassembly copies what it keeps).
pub fn parse(record: &[u8]) -> Result<(Packet, &[u8]), EventError> {
    if record.len() < HEADER_LEN {
        return Err(EventError::Short(record.len()));
    }
    // SAFETY: PacketHeader is plain integers (any bit pattern is valid) and the
    // record holds at least HEADER_LEN bytes; the read tolerates any alignment.
    let header: PacketHeader = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
    let captured = header.captured_len as usize;
    let payload = record
        .get(HEADER_LEN..HEADER_LEN + captured)
        .ok_or(EventError::Length {
            claimed: captured,
            present: record.len() - HEADER_LEN,
        })?;
    let direction = match header.direction {
        direction::SENT => Direction::Sent,
        direction::RECEIVED => Direction::Received,
        value => {
            return Err(EventError::Field {
                field: "direction",
                value,
            });
        }
    };
    let transport = match header.proto {
        proto::UDP => Transport::Udp,
        proto::TCP => Transport::Tcp,
        value => {
            return Err(EventError::Field {
                field: "protocol",
                value,
            });
        }
    };
    let address = |bytes: [u8; 16]| -> Result<IpAddr, EventError> {
        match header.family {
            family::INET => Ok(IpAddr::V4(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            ))),
            family::INET6 => Ok(IpAddr::V6(Ipv6Addr::from(bytes))),
            value => Err(EventError::Field {
                field: "family",
                value,
            }),
        }
    };
    let packet = Packet {
        boot_ns: header.boot_ns,
        cookie: header.sock_cookie,
        sock_cgroup_id: header.sock_cgroup_id,
        owner: (header.owner_found != 0).then_some(header.owner),
        direction,
        transport,
        src: address(header.saddr)?,
        sport: header.sport,
        dst: address(header.daddr)?,
        dport: header.dport,
        ifindex: header.ifindex,
        tcp_seq: header.tcp_seq,
        tcp_flags: header.tcp_flags,
        payload_len: header.payload_len,
    };
    Ok((packet, payload))
}

/// The caller of a libc call, in the shape of a socket's owner (`hook` unknown),
/// from a [`LookupEvent`] or a [`LookupAnswerEvent`]: both carry the same caller
/// fields (a macro, as the two are distinct types).
macro_rules! caller_of {
    ($event:expr) => {{
        let event = &$event;
        let mut caller = SockOwner::zeroed();
        caller.pid = event.pid;
        caller.tid = event.tid;
        caller.uid = event.uid;
        caller.gid = event.gid;
        caller.cgroup_id = event.cgroup_id;
        caller.seen_boot_ns = event.boot_ns;
        caller.comm = event.comm;
        caller.process_comm = event.process_comm;
        caller.netns = event.netns;
        caller
    }};
}

/// A call of a libc resolver entry point, as the uprobes saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub boot_ns: u64,
    /// A `dnsq_common::lookup_fn` value.
    pub function: u32,
    /// The caller, in the same shape as a socket's owner (`hook` unknown).
    pub caller: SockOwner,
    /// The name as the application passed it (at most `MAX_LOOKUP_NAME - 1` bytes).
    pub name: Vec<u8>,
}

/// What a thread's resolver call returned, as the uretprobe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupAnswer {
    /// The function that returned (a `dnsq_common::lookup_fn` value).
    pub function: u32,
    /// At the return.
    pub boot_ns: u64,
    /// `boot_ns` of the call ([`Lookup::boot_ns`]).
    pub call_boot_ns: u64,
    /// The caller at the return, in the same shape as [`Lookup::caller`].
    pub caller: SockOwner,
    /// getaddrinfo's return value (0 or an `EAI_*` code); for the `gethostbyname`
    /// family 0, `dnsq_common::STATUS_H_ERRNO` + `h_errno`, or
    /// `dnsq_common::STATUS_NO_HOSTENT`.
    pub status: i32,
    /// Each address once, in the order the call gave them.
    pub addresses: Vec<IpAddr>,
    /// The result held more than the event could carry.
    pub truncated: bool,
}

/// A record of the lookup ring buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibcEvent {
    Call(Lookup),
    Answer(LookupAnswer),
}

/// Parses one record of the lookup ring buffer: a call or an answer, told apart
/// by `function` (at the same offset in both).
pub fn parse_libc(record: &[u8]) -> Result<LibcEvent, EventError> {
    const AT: usize = std::mem::offset_of!(LookupEvent, function);
    let function = record
        .get(AT..AT + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    if function.is_some_and(|f| f & lookup_fn::ANSWER != 0) {
        parse_answer(record).map(LibcEvent::Answer)
    } else {
        parse_lookup(record).map(LibcEvent::Call)
    }
}

fn parse_answer(record: &[u8]) -> Result<LookupAnswer, EventError> {
    if record.len() != size_of::<LookupAnswerEvent>() {
        return Err(EventError::Length {
            claimed: size_of::<LookupAnswerEvent>(),
            present: record.len(),
        });
    }
    // SAFETY: LookupAnswerEvent is plain integers and arrays of them (any bit
    // pattern is valid) and `record` is exactly its size; any alignment is read.
    let event: LookupAnswerEvent = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
    let function = event.function & !lookup_fn::ANSWER;
    if lookup_fn::name(function).is_none() {
        return Err(EventError::Field {
            field: "function",
            value: event.function.min(255) as u8,
        });
    }
    let count = event.count as usize;
    if count > MAX_ANSWER_ADDRESSES {
        return Err(EventError::Length {
            claimed: count,
            present: MAX_ANSWER_ADDRESSES,
        });
    }
    let mut addresses = Vec::with_capacity(count);
    for (family, words) in event.families[..count].iter().zip(&event.addresses) {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&words[0].to_ne_bytes());
        bytes[8..].copy_from_slice(&words[1].to_ne_bytes());
        addresses.push(match family {
            4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
            6 => IpAddr::V6(Ipv6Addr::from(bytes)),
            &value => {
                return Err(EventError::Field {
                    field: "family",
                    value,
                });
            }
        });
    }
    let caller = caller_of!(event);
    Ok(LookupAnswer {
        function,
        boot_ns: event.boot_ns,
        call_boot_ns: event.call_boot_ns,
        caller,
        status: event.status,
        addresses,
        truncated: event.truncated != 0,
    })
}

/// Parses one record of the lookup ring buffer: a [`LookupEvent`] cut after its
/// name.
pub fn parse_lookup(record: &[u8]) -> Result<Lookup, EventError> {
    if record.len() < LOOKUP_HEADER_LEN {
        return Err(EventError::Short(record.len()));
    }
    let mut bytes = [0u8; size_of::<LookupEvent>()];
    let present = record.len().min(bytes.len());
    bytes[..present].copy_from_slice(&record[..present]);
    // SAFETY: LookupEvent is plain integers and byte arrays (any bit pattern is
    // valid) and `bytes` is exactly its size; the read tolerates any alignment.
    let event: LookupEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let len = event.name_len as usize;
    if len >= MAX_LOOKUP_NAME || LOOKUP_HEADER_LEN + len > record.len() {
        return Err(EventError::Length {
            claimed: len,
            present: record.len() - LOOKUP_HEADER_LEN,
        });
    }
    if lookup_fn::name(event.function).is_none() {
        return Err(EventError::Field {
            field: "function",
            value: event.function.min(255) as u8,
        });
    }
    let caller = caller_of!(event);
    Ok(Lookup {
        boot_ns: event.boot_ns,
        function: event.function,
        caller,
        name: event.name[..len].to_vec(),
    })
}

/// Converts `CLOCK_BOOTTIME` stamps (what BPF has) into Unix time. The offset is
/// re-read now and then so clock steps (NTP) are followed.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    offset_ns: i64,
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; both clocks always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl WallClock {
    pub fn now() -> Self {
        let real = clock_ns(libc::CLOCK_REALTIME);
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        Self {
            offset_ns: real - boot,
        }
    }

    pub fn boot_now_ns() -> u64 {
        clock_ns(libc::CLOCK_BOOTTIME) as u64
    }

    pub fn to_unix_ns(self, boot_ns: u64) -> i64 {
        self.offset_ns + boot_ns as i64
    }
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-11-24T10:00:00.123456789Z`.
///
/// Written by hand (one per message): the same text as jiff's `{:.9}`, which
/// the tests check, at a fraction of the cost. Every `i64` of nanoseconds is a
/// year between 1677 and 2262, so the year always has four digits.
pub fn rfc3339(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    let mut out = [0u8; 30];
    let mut put = |at: usize, value: u32, width: usize| {
        let mut value = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, of_day / 3_600, 2);
    put(14, of_day / 60 % 60, 2);
    put(17, of_day % 60, 2);
    put(20, nanos, 9);
    for (at, b) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (29, b'Z'),
    ] {
        out[at] = b;
    }
    // Digits and separators only: always ASCII.
    std::str::from_utf8(&out).map_or_else(|_| unix_ns.to_string(), str::to_owned)
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> PacketHeader {
        PacketHeader {
            boot_ns: 5,
            sock_cookie: 77,
            sock_cgroup_id: 1,
            owner: SockOwner::zeroed(),
            saddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [127, 0, 0, 53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ifindex: 1,
            tcp_seq: 0,
            payload_len: 4,
            captured_len: 3,
            sport: 40000,
            dport: 53,
            family: family::INET,
            proto: proto::UDP,
            direction: direction::SENT,
            tcp_flags: 0,
            owner_found: 0,
            _pad: 0,
        }
    }

    fn bytes(h: &PacketHeader, payload: &[u8]) -> Vec<u8> {
        // SAFETY: reading the header's own bytes.
        let raw = unsafe {
            std::slice::from_raw_parts((h as *const PacketHeader).cast::<u8>(), HEADER_LEN)
        };
        [raw, payload].concat()
    }

    #[test]
    fn parses_header_and_payload() {
        let record = bytes(&header(), &[1, 2, 3]);
        let (p, payload) = parse(&record).unwrap();
        assert_eq!(payload, [1, 2, 3]);
        assert_eq!(p.payload_len, 4);
        assert_eq!(p.src, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(p.remote(), ("127.0.0.53".parse().unwrap(), 53));
        assert_eq!(p.direction, Direction::Sent);
        assert!(p.owner.is_none());
    }

    #[test]
    fn rejects_lying_lengths_and_fields() {
        assert!(matches!(parse(&[0; 10]), Err(EventError::Short(10))));
        assert!(matches!(
            parse(&bytes(&header(), &[1])),
            Err(EventError::Length {
                claimed: 3,
                present: 1
            })
        ));
        let mut h = header();
        h.family = 99;
        assert!(matches!(
            parse(&bytes(&h, &[1, 2, 3])),
            Err(EventError::Field {
                field: "family",
                ..
            })
        ));
    }

    fn lookup_bytes(name: &[u8], function: u32) -> Vec<u8> {
        let mut event = LookupEvent {
            boot_ns: 9,
            cgroup_id: 1,
            pid: 42,
            tid: 43,
            uid: 1000,
            gid: 1000,
            netns: 4026531840,
            function,
            name_len: name.len() as u32,
            _pad: 0,
            comm: *b"worker\0\0\0\0\0\0\0\0\0\0",
            process_comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            name: [0; MAX_LOOKUP_NAME],
        };
        event.name[..name.len()].copy_from_slice(name);
        // SAFETY: reading the event's own bytes.
        let raw = unsafe {
            std::slice::from_raw_parts(
                (&event as *const LookupEvent).cast::<u8>(),
                size_of::<LookupEvent>(),
            )
        };
        raw[..LOOKUP_HEADER_LEN + name.len()].to_vec()
    }

    #[test]
    fn parses_lookups() {
        let lookup = parse_lookup(&lookup_bytes(b"www.example.test", 1)).unwrap();
        assert_eq!(lookup.name, b"www.example.test");
        assert_eq!(lookup.function, 1);
        assert_eq!((lookup.caller.pid, lookup.caller.tid), (42, 43));
        assert_eq!(&lookup.caller.process_comm[..4], b"curl");
        assert_eq!(lookup.boot_ns, 9);
    }

    #[test]
    fn rejects_lying_lookups() {
        assert!(matches!(parse_lookup(&[0; 10]), Err(EventError::Short(10))));
        let mut bytes = lookup_bytes(b"abc", 1);
        bytes.truncate(bytes.len() - 1);
        assert!(matches!(
            parse_lookup(&bytes),
            Err(EventError::Length { claimed: 3, .. })
        ));
        assert!(matches!(
            parse_lookup(&lookup_bytes(b"abc", 77)),
            Err(EventError::Field {
                field: "function",
                ..
            })
        ));
        let mut bytes = lookup_bytes(b"abc", 1);
        bytes[40..44].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_lookup(&bytes).is_err());
    }

    fn answer_bytes(addresses: &[IpAddr]) -> Vec<u8> {
        let mut event = LookupAnswerEvent {
            boot_ns: 20,
            cgroup_id: 1,
            pid: 42,
            tid: 43,
            uid: 1000,
            gid: 1000,
            netns: 4026531840,
            function: lookup_fn::GETADDRINFO_ANSWER,
            status: 0,
            count: addresses.len() as u32,
            comm: *b"worker\0\0\0\0\0\0\0\0\0\0",
            process_comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            call_boot_ns: 9,
            truncated: 0,
            _pad: 0,
            families: [0; MAX_ANSWER_ADDRESSES],
            addresses: [[0; 2]; MAX_ANSWER_ADDRESSES],
        };
        for (index, address) in addresses.iter().enumerate() {
            let mut bytes = [0u8; 16];
            match address {
                IpAddr::V4(v4) => {
                    event.families[index] = 4;
                    bytes[..4].copy_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    event.families[index] = 6;
                    bytes = v6.octets();
                }
            }
            event.addresses[index] = [
                u64::from_ne_bytes(bytes[..8].try_into().unwrap()),
                u64::from_ne_bytes(bytes[8..].try_into().unwrap()),
            ];
        }
        // SAFETY: reading the event's own bytes.
        unsafe {
            std::slice::from_raw_parts(
                (&event as *const LookupAnswerEvent).cast::<u8>(),
                size_of::<LookupAnswerEvent>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn parses_answers_and_tells_them_from_calls() {
        let addresses: Vec<IpAddr> =
            vec!["198.18.7.1".parse().unwrap(), "fd00::7:1".parse().unwrap()];
        let Ok(LibcEvent::Answer(answer)) = parse_libc(&answer_bytes(&addresses)) else {
            panic!("not an answer");
        };
        assert_eq!(answer.addresses, addresses);
        assert_eq!((answer.boot_ns, answer.call_boot_ns), (20, 9));
        assert_eq!((answer.caller.pid, answer.caller.tid), (42, 43));
        assert_eq!((answer.status, answer.truncated), (0, false));
        assert!(matches!(
            parse_libc(&lookup_bytes(b"www.example.test", 1)),
            Ok(LibcEvent::Call(_))
        ));
        // Another function's answer says which function returned.
        let mut bytes = answer_bytes(&addresses);
        bytes[36..40]
            .copy_from_slice(&(lookup_fn::ANSWER | lookup_fn::GETHOSTBYNAME_R).to_ne_bytes());
        let Ok(LibcEvent::Answer(answer)) = parse_libc(&bytes) else {
            panic!("not an answer");
        };
        assert_eq!(answer.function, lookup_fn::GETHOSTBYNAME_R);
        // Lies: no such function, a cut record, a count over the array, an
        // unknown family.
        let mut bytes = answer_bytes(&addresses);
        bytes[36..40].copy_from_slice(&(lookup_fn::ANSWER | 77).to_ne_bytes());
        assert!(matches!(
            parse_libc(&bytes),
            Err(EventError::Field {
                field: "function",
                ..
            })
        ));
        let mut bytes = answer_bytes(&addresses);
        bytes.pop();
        assert!(matches!(parse_libc(&bytes), Err(EventError::Length { .. })));
        let mut bytes = answer_bytes(&addresses);
        bytes[44..48].copy_from_slice(&17u32.to_ne_bytes());
        assert!(matches!(parse_libc(&bytes), Err(EventError::Length { .. })));
        let mut bytes = answer_bytes(&addresses);
        bytes[96] = 5;
        assert!(matches!(
            parse_libc(&bytes),
            Err(EventError::Field {
                field: "family",
                value: 5
            })
        ));
    }

    #[test]
    fn formats_time_like_jiff() {
        let jiff = |ns: i64| {
            format!(
                "{:.9}",
                jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap()
            )
        };
        let mut ns: i64 = 0x1234_5678_9abc_def0;
        let mut samples = vec![
            0,
            -1,
            1,
            i64::MIN,
            i64::MAX,
            951_782_400_000_000_000,   // 2000-02-29
            1_795_618_191_828_114_591, // 2026-11-25
            -86_400_000_000_000,
            4_107_542_399_999_999_999, // 2100-02-28T23:59:59.999999999
        ];
        for _ in 0..20_000 {
            // xorshift: spread over the whole range.
            ns ^= ns << 13;
            ns ^= ((ns as u64) >> 7) as i64;
            ns ^= ns << 17;
            samples.push(ns);
        }
        for ns in samples {
            assert_eq!(rfc3339(ns), jiff(ns), "{ns}");
        }
    }

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339(1_000_000_000_123), "1970-01-01T00:16:40.000000123Z");
    }
}
