//! What the recorder produces for each DNS message and each libc lookup: the JSON
//! that `--print` writes (one object per line) and what the store keeps. Field
//! names here are a public, stable interface: add fields, never rename them.

use std::{borrow::Cow, net::IpAddr, sync::Arc};

use serde::{Deserialize, Serialize};

/// A mnemonic (`A`, `IN`, `NOERROR`, `QUERY`, `message`): static text when the
/// code has a name (nearly always), owned for the rare `TYPE65534`, so decoding
/// allocates nothing for it.
pub type Code = Cow<'static, str>;

/// An instant as Unix nanoseconds, shown as RFC 3339 text in UTC with nanoseconds
/// (`2026-11-25T14:49:51.828114591Z`). The text is made only when the record is
/// serialized: the store keeps the number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rfc3339(pub i64);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::event::rfc3339(self.0))
    }
}

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        let instant: jiff::Timestamp = text.parse().map_err(serde::de::Error::custom)?;
        i64::try_from(instant.as_nanosecond())
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// One DNS message seen on one socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Always `"message"`; other kinds of lines (`"stats"`) may share the stream.
    pub kind: Code,
    /// Wall-clock time the packet passed the probe, RFC 3339 in UTC, nanoseconds.
    pub time: Rfc3339,
    /// The same instant as Unix nanoseconds.
    pub time_ns: i64,
    pub direction: Direction,
    pub transport: Transport,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// Interface index in the packet's network namespace (0 when the kernel had none).
    pub ifindex: u32,
    /// Interface name, when the packet's namespace is the recorder's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Shared: every message on an interface names it, and copying the name for
    // each cost an allocation a message.
    pub interface: Option<Arc<str>>,
    pub socket_cookie: u64,
    /// cgroup v2 id of the socket.
    pub socket_cgroup_id: u64,
    /// Shared: the messages of one process carry the same identity, built once.
    pub process: Arc<ProcessInfo>,
    /// True length of the DNS message (for TCP, without the 2-byte length prefix).
    pub message_len: u32,
    /// Bytes of it that were captured; less than `message_len` means truncated.
    pub captured_len: u32,
    /// The decoded message; absent when it could not be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Shared: on loopback the sender's and the receiver's copy of one packet are
    /// decoded once.
    pub dns: Option<Arc<DnsMessage>>,
    /// Present when the bytes were not a valid DNS message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<Malformed>,
    /// For a response: the query it answers, seen on the same socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair: Option<Pairing>,
    /// On a client's response from a resolver on this host (dnsmasq, unbound,
    /// systemd-resolved, ...): that resolver's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Arc<ProcessInfo>>,
    /// On a local resolver's upstream query and its answer: the processes whose
    /// queries caused it. On its response to a local client: that client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_behalf_of: Vec<Arc<ProcessInfo>>,
    /// On a local resolver's response to a local client: true when the resolver
    /// asked nobody upstream for it (it answered from its cache or its own data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cache: Option<bool>,
}

/// A process called a libc resolver entry point (`getaddrinfo`, `gethostbyname`,
/// `gethostbyname2`, `gethostbyname_r`, `gethostbyname2_r`) for a name: seen by a
/// uprobe, so also when the process sends no DNS packet itself (it asks
/// systemd-resolved or nscd over a Unix socket). The resolver's queries for the
/// name then carry this process in `on_behalf_of`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRecord {
    /// Always `"lookup"`.
    pub kind: String,
    /// Wall-clock time of the call, RFC 3339 in UTC, nanoseconds.
    pub time: Rfc3339,
    pub time_ns: i64,
    /// The libc function called.
    pub function: String,
    /// The name as the application passed it (no trailing dot added), bytes that
    /// are not printable ASCII escaped as `\DDD`. Cut at 255 bytes.
    pub name: String,
    /// The calling process and thread. `attribution` is absent: no socket is
    /// involved, the kernel saw the caller itself. Shared, like a message's.
    pub process: Arc<ProcessInfo>,
    /// On a `"lookup_answer"` line: what the call returned.
    /// Its `time` is the return's, `name` and `function` the call's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<LibcAnswer>,
}

/// What a libc resolver call returned: the addresses the application got,
/// whichever way libc found them (a DNS server, a daemon's cache over a Unix
/// socket, /etc/hosts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibcAnswer {
    /// When the call began: the `time_ns` of its `"lookup"` line.
    pub call_time_ns: i64,
    /// How long the call ran: from its call to its return.
    #[serde(default)]
    pub latency_ns: i64,
    /// getaddrinfo's return value: 0, or an `EAI_*` code; for the
    /// `gethostbyname` family 0, or when no `hostent` came back 16 + `h_errno`
    /// (17 `HOST_NOT_FOUND`, 18 `TRY_AGAIN`, 19 `NO_RECOVERY`, 20 `NO_DATA`),
    /// or 1 when `h_errno` was not read.
    pub status: i32,
    /// What a failure's status means (`EAI_NONAME`, …; `HOST_NOT_FOUND`, …,
    /// `no hostent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Each address once, in the order the call gave them.
    pub addresses: Vec<IpAddr>,
    /// The result held more addresses than were read (16 at most).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl LibcAnswer {
    /// What a failed call's status means: a glibc `EAI_*` code for
    /// `getaddrinfo` (`function`, a `dnsq_common::lookup_fn` value); for the
    /// others their `h_errno`, or no `hostent` when it was not read.
    pub fn error_name(function: u32, status: i32) -> Option<&'static str> {
        if status != 0 && function != dnsq_common::lookup_fn::GETADDRINFO {
            // netdb.h's h_errno values.
            return Some(match status - dnsq_common::STATUS_H_ERRNO {
                -1 => "NETDB_INTERNAL",
                1 => "HOST_NOT_FOUND",
                2 => "TRY_AGAIN",
                3 => "NO_RECOVERY",
                4 => "NO_DATA",
                _ => "no hostent",
            });
        }
        Some(match status {
            0 => return None,
            libc::EAI_BADFLAGS => "EAI_BADFLAGS",
            libc::EAI_NONAME => "EAI_NONAME",
            libc::EAI_AGAIN => "EAI_AGAIN",
            libc::EAI_FAIL => "EAI_FAIL",
            libc::EAI_NODATA => "EAI_NODATA",
            libc::EAI_FAMILY => "EAI_FAMILY",
            libc::EAI_SOCKTYPE => "EAI_SOCKTYPE",
            libc::EAI_SERVICE => "EAI_SERVICE",
            // glibc's EAI_ADDRFAMILY (a GNU extension the libc crate lacks).
            -9 => "EAI_ADDRFAMILY",
            libc::EAI_MEMORY => "EAI_MEMORY",
            libc::EAI_SYSTEM => "EAI_SYSTEM",
            libc::EAI_OVERFLOW => "EAI_OVERFLOW",
            _ => "EAI_unknown",
        })
    }
}

impl LookupRecord {
    /// A name from an application, as text: printable ASCII as it is (the
    /// application's text is already in presentation format: `\.` is a dot
    /// inside a label), anything else as `\DDD` like DNS names.
    pub fn escape_name(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        for &b in bytes {
            match b {
                0x21..=0x7e => out.push(char::from(b)),
                _ => {
                    out.push('\\');
                    out.push(char::from(b'0' + b / 100));
                    out.push(char::from(b'0' + b / 10 % 10));
                    out.push(char::from(b'0' + b % 10));
                }
            }
        }
        out
    }

    /// The name as a DNS question name is compared: lower-case, no trailing dot.
    pub fn match_key(name: &str) -> String {
        let name = name.strip_suffix('.').unwrap_or(name);
        name.to_ascii_lowercase()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The process sent it.
    Sent,
    /// The process received it.
    Received,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

/// How the process behind a message was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attribution {
    /// The kernel knew the socket's owner when the packet passed.
    Socket,
    /// The kernel learnt the owner from the socket's next send or receive, shortly
    /// after the packet (sockets older than the recorder, accepted TCP sockets).
    SocketLate,
    /// Found by the user-space fallback: the socket in /proc/*/net and /proc/*/fd.
    Procfs,
    /// Not found. The identity fields are absent rather than guessed.
    Unknown,
}

impl ProcessInfo {
    /// A process known from its call of a libc resolver function rather than
    /// from a socket (see [`LookupRecord`]).
    pub fn from_libc_call(&self) -> bool {
        self.attribution.is_none() && self.pid.is_some()
    }

    /// Fills `unit` and `container` from `cgroup`.
    pub fn with_owner(mut self) -> Self {
        let owner = self
            .cgroup
            .as_deref()
            .map(crate::service::owner_of_cgroup)
            .unwrap_or_default();
        self.unit = owner.unit;
        self.container = owner.container.map(|container| container.full());
        self
    }
}

/// The process that sent or received a message. Fields are absent when unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// How the process behind a socket was found. Absent for a process seen
    /// calling a libc resolver function (a `lookup`, or an `on_behalf_of` entry
    /// that came from one): the kernel saw that process itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Name of the thread that sent or received (differs from `comm` in threaded
    /// programs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The systemd unit the cgroup path names (`nginx.service`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The container the cgroup path names (`docker:<id>`, `k8s pod <uid> …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Inode number of the process's network namespace (as in `net:[4026531840]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<u64>,
}

/// A decoded DNS message (RFC 1035 §4.1): its ID and the rest of it, which
/// messages with the same bytes but the ID share (a host asks the same questions
/// over and over, each time with another ID: see `dns::RecentDecodes`). Reads as
/// its [`DnsContent`]; serialized as one object, the ID first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsMessage {
    pub id: u16,
    #[serde(flatten)]
    pub content: Arc<DnsContent>,
}

impl DnsMessage {
    pub fn new(id: u16, content: DnsContent) -> Self {
        Self {
            id,
            content: Arc::new(content),
        }
    }
}

impl std::ops::Deref for DnsMessage {
    type Target = DnsContent;

    fn deref(&self) -> &DnsContent {
        &self.content
    }
}

/// Copy on write: changing a message never changes another that shares its
/// content.
impl std::ops::DerefMut for DnsMessage {
    fn deref_mut(&mut self) -> &mut DnsContent {
        Arc::make_mut(&mut self.content)
    }
}

/// A DNS message but its ID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsContent {
    /// QR bit: false for a query, true for a response.
    pub response: bool,
    /// `QUERY`, `NOTIFY`, `UPDATE`, … or the number.
    pub opcode: Code,
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, … (extended with the EDNS high bits).
    pub rcode: Code,
    pub flags: DnsFlags,
    pub questions: Vec<Question>,
    pub answers: Vec<ResourceRecord>,
    pub authority: Vec<ResourceRecord>,
    /// Additional records except the EDNS OPT pseudo-record, which is `edns`.
    pub additional: Vec<ResourceRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edns: Option<Edns>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsFlags {
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    pub ad: bool,
    pub cd: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Fully qualified, with the trailing dot; unprintable bytes escaped as `\DDD`.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, … or `TYPE65534` for unknown types.
    #[serde(rename = "type")]
    pub qtype: Code,
    pub class: Code,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: Code,
    pub class: Code,
    pub ttl: u32,
    /// Presentation format (RFC 1035 §5.1): `192.0.2.1`, `target.example.`, …;
    /// for types without one, RFC 3597 `\# <len> <hex>`.
    pub data: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// Bytes that are not a DNS message, kept so nothing is lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Malformed {
    pub error: String,
    /// The captured bytes, hex-encoded.
    pub raw_hex: String,
}

/// Links a response to its query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// When the query passed, Unix nanoseconds.
    pub query_time_ns: i64,
    pub latency_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_names_are_escaped_like_dns_names() {
        assert_eq!(
            LookupRecord::escape_name(b"www.Example.test"),
            "www.Example.test"
        );
        assert_eq!(
            LookupRecord::escape_name(b"a b\x1b[31m\xff"),
            "a\\032b\\027[31m\\255"
        );
        assert_eq!(LookupRecord::escape_name(br"a\.b"), r"a\.b");
        assert_eq!(
            LookupRecord::match_key("WWW.Example.Test."),
            "www.example.test"
        );
        assert_eq!(
            LookupRecord::match_key("www.example.test"),
            "www.example.test"
        );
    }

    #[test]
    fn times_are_text_in_json() {
        let time = Rfc3339(1_795_618_191_000_000_007);
        let json = serde_json::to_string(&time).unwrap();
        assert_eq!(json, "\"2026-11-25T14:49:51.000000007Z\"");
        assert_eq!(serde_json::from_str::<Rfc3339>(&json).unwrap(), time);
        // Other offsets and precisions are read too; what is not a time is an error.
        let offset: Rfc3339 = serde_json::from_str("\"2026-11-25T15:49:51+01:00\"").unwrap();
        assert_eq!(offset, Rfc3339(1_795_618_191_000_000_000));
        assert!(serde_json::from_str::<Rfc3339>("\"yesterday\"").is_err());
    }

    #[test]
    fn lookup_json_shape() {
        let record = LookupRecord {
            kind: "lookup".into(),
            time: Rfc3339(1_795_618_191_828_114_591),
            time_ns: 1_795_618_191_828_114_591,
            function: "getaddrinfo".into(),
            name: "www.example.test".into(),
            process: ProcessInfo {
                pid: Some(7),
                comm: Some("curl".into()),
                ..ProcessInfo::default()
            }
            .into(),
            answer: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            "{\"kind\":\"lookup\",\"time\":\"2026-11-25T14:49:51.828114591Z\",\
             \"time_ns\":1795618191828114591,\"function\":\"getaddrinfo\",\
             \"name\":\"www.example.test\",\"process\":{\"pid\":7,\"comm\":\"curl\"}}"
        );
        let back: LookupRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
    }
}
