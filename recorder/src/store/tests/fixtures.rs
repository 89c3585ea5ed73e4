//! Records and databases for the store's tests.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use rusqlite::Connection;

use crate::{
    record::{
        Attribution, Direction, DnsContent, DnsFlags, DnsMessage, Edns, Malformed, MessageRecord,
        Pairing, ProcessInfo, Question, ResourceRecord, Transport,
    },
    store::schema::NS_PER_HOUR,
};

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "dnsq-store-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(unique);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `<dir>/dnsq.db`
    pub fn db(&self) -> PathBuf {
        self.0.join("dnsq.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A second connection to inspect what the writer committed.
pub fn inspect(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// Every row `sql` returns, as SQLite's values.
pub fn query_rows(db: &Connection, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let mut statement = db.prepare(sql).unwrap();
    let columns = statement.column_count();
    statement
        .query_map([], |row| (0..columns).map(|c| row.get(c)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The rows of every table but `runs` (its times are the wall clock's), by table.
pub fn table_rows(db: &Connection) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let tables: Vec<String> = db
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'runs' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|table| {
            let rows = query_rows(db, &format!("SELECT * FROM \"{table}\""));
            (table, rows)
        })
        .collect()
}

/// [`inspect`] with the messages unpacked into a TEMP `messages` table (a
/// snapshot: see [`unpack_messages`](crate::store::chunk::unpack_messages)).
pub fn inspect_unpacked(path: &Path) -> Connection {
    let conn = inspect(path);
    crate::store::chunk::unpack_messages(&conn).unwrap();
    conn
}

/// The integer `sql` selects. SQL that reads `messages` reads them as they are
/// now (in this connection's transaction), chunks unpacked: see
/// [`unpack_messages`](crate::store::chunk::unpack_messages).
pub fn count(conn: &Connection, sql: &str) -> i64 {
    if sql.contains("messages") {
        crate::store::chunk::unpack_messages(conn).unwrap();
    }
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// The start of the previous hour: recent enough for the default retention, and
/// a response a few milliseconds later falls in the same hour.
pub fn t0() -> i64 {
    let now = super::super::writer::now_ns();
    now - now % NS_PER_HOUR - NS_PER_HOUR
}

pub const MS: i64 = 1_000_000;

pub const CLIENT: &str = "10.0.0.2";
pub const SERVER: &str = "10.0.0.53";

pub fn process(pid: u32, comm: &str) -> ProcessInfo {
    ProcessInfo {
        attribution: Some(Attribution::Socket),
        pid: Some(pid),
        tid: Some(pid),
        uid: Some(1000),
        gid: Some(1000),
        comm: Some(comm.to_owned()),
        thread: Some(comm.to_owned()),
        exe: Some(format!("/usr/bin/{comm}")),
        cgroup_id: Some(4242),
        cgroup: Some("/user.slice/user-1000.slice/session-1.scope".to_owned()),
        netns: Some(4_026_531_840),
        unit: Some("session-1.scope".to_owned()),
        container: None,
    }
}

pub fn unknown_process() -> ProcessInfo {
    ProcessInfo {
        attribution: Some(Attribution::Unknown),
        ..ProcessInfo::default()
    }
}

pub fn rr(name: &str, rtype: &str, ttl: u32, data: &str) -> ResourceRecord {
    ResourceRecord {
        name: name.to_owned(),
        rtype: rtype.to_owned().into(),
        class: "IN".to_owned().into(),
        ttl,
        data: data.to_owned(),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn envelope(time_ns: i64, direction: Direction, client_port: u16) -> MessageRecord {
    // The client's socket: it sends to the server and receives from it.
    let (src, sport, dst, dport) = match direction {
        Direction::Sent => (ip(CLIENT), client_port, ip(SERVER), 53),
        Direction::Received => (ip(SERVER), 53, ip(CLIENT), client_port),
    };
    MessageRecord {
        kind: "message".to_owned().into(),
        time: crate::record::Rfc3339(time_ns),
        time_ns,
        direction,
        transport: Transport::Udp,
        src,
        sport,
        dst,
        dport,
        ifindex: 2,
        interface: Some("eth0".into()),
        socket_cookie: 0x8000_0000_0000_1234,
        socket_cgroup_id: 4242,
        process: process(4321, "curl").into(),
        message_len: 40,
        captured_len: 40,
        dns: None,
        malformed: None,
        pair: None,
        via: None,
        on_behalf_of: Vec::new(),
        from_cache: None,
    }
}

/// `curl` asks `name` (A unless `qtype` says otherwise).
pub fn query(time_ns: i64, name: &str, qtype: &str, id: u16) -> MessageRecord {
    MessageRecord {
        dns: Some(
            DnsMessage::new(
                id,
                DnsContent {
                    response: false,
                    opcode: "QUERY".to_owned().into(),
                    rcode: "NOERROR".to_owned().into(),
                    flags: DnsFlags {
                        rd: true,
                        ..DnsFlags::default()
                    },
                    questions: vec![Question {
                        name: name.to_owned(),
                        qtype: qtype.to_owned().into(),
                        class: "IN".to_owned().into(),
                    }],
                    edns: Some(Edns {
                        udp_size: 1232,
                        version: 0,
                        dnssec_ok: false,
                    }),
                    ..DnsContent::default()
                },
            )
            .into(),
        ),
        ..envelope(time_ns, Direction::Sent, 40_000 + id)
    }
}

/// The response `curl` received to `query`, `latency_ms` later.
pub fn response(
    query: &MessageRecord,
    latency_ms: i64,
    rcode: &str,
    answers: Vec<ResourceRecord>,
    authority: Vec<ResourceRecord>,
) -> MessageRecord {
    let asked = query.dns.as_ref().unwrap();
    let time_ns = query.time_ns + latency_ms * MS;
    MessageRecord {
        dns: Some(
            DnsMessage::new(
                asked.id,
                DnsContent {
                    response: true,
                    rcode: rcode.to_owned().into(),
                    flags: DnsFlags {
                        rd: true,
                        ra: true,
                        ..DnsFlags::default()
                    },
                    answers,
                    authority,
                    ..DnsContent::clone(asked)
                },
            )
            .into(),
        ),
        pair: Some(Pairing {
            query_time_ns: query.time_ns,
            latency_ns: (latency_ms * MS) as u64,
        }),
        message_len: 120,
        captured_len: 120,
        process: query.process.clone(),
        ..envelope(time_ns, Direction::Received, query.sport)
    }
}

/// www.example.com → edge.example.net → e1.cdn.example → two addresses.
pub fn cname_chain_answers() -> Vec<ResourceRecord> {
    vec![
        rr("www.Example.com.", "CNAME", 300, "edge.example.net."),
        rr("edge.example.net.", "CNAME", 60, "e1.cdn.example."),
        rr("e1.cdn.example.", "A", 20, "192.0.2.1"),
        rr("e1.cdn.example.", "A", 20, "192.0.2.2"),
    ]
}

pub fn soa() -> ResourceRecord {
    rr(
        "example.com.",
        "SOA",
        900,
        "ns.example.com. hostmaster.example.com. 1 7200 3600 1209600 900",
    )
}

pub fn malformed(time_ns: i64) -> MessageRecord {
    MessageRecord {
        malformed: Some(Malformed {
            error: "unexpected end of input".to_owned(),
            raw_hex: "12348180000100".to_owned(),
        }),
        message_len: 7,
        captured_len: 7,
        ..envelope(time_ns, Direction::Received, 40_999)
    }
}
