//! Test fixtures: stores written by the recorder's own writer from hand-made
//! `MessageRecord`s, and a way to run the `dnsq` binary against them.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::{
    io::{BufRead, BufReader, Lines},
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use dnsq_recorder::{
    pipeline::Sink,
    record::{
        Attribution, Direction, DnsContent, DnsFlags, DnsMessage, LibcAnswer, LookupRecord,
        Malformed, MessageRecord, Pairing, ProcessInfo, Question, ResourceRecord, Rfc3339,
        Transport,
    },
    store::{Store, StoreError, StoreOptions, open_for_writing},
};

/// 2026-11-24T10:00:00Z.
pub const T0: i64 = 1_795_514_400_000_000_000;
pub const SECOND: i64 = 1_000_000_000;
pub const HOUR: i64 = 3_600 * SECOND;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dnsq-test-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens the store for writing, waiting out our own lock for up to 2 s. A test
/// that writes a store, drops its writer and opens it again can find the lock
/// (a `flock` on an open file description) still held by this very process:
/// another test's thread forked to spawn `dnsq` at that moment, and the child
/// holds a copy of the lock's descriptor until its exec closes it (seen once in
/// CI: `Locked { holder: Some(<the test's own pid>) }`).
fn open_again(path: &Path) -> Result<Store, StoreError> {
    for _ in 0..100 {
        match open_for_writing(path) {
            Err(StoreError::Locked { holder, .. }) if holder == Some(std::process::id()) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
    open_for_writing(path)
}

/// A store being written.
pub struct Writer {
    pub store: Store,
    pub written: Vec<MessageRecord>,
}

impl Writer {
    pub fn open(path: &Path) -> Self {
        let options = StoreOptions {
            // The fixtures are in the past: keep them.
            retain: None,
            // `commit` commits at once.
            batch_window: Duration::ZERO,
            ..StoreOptions::default()
        };
        let mut store = open_again(path)
            .expect("open the store")
            .with_options(options)
            .expect("options");
        store.start_run(r#"{"test":true}"#).expect("start a run");
        Self {
            store,
            written: Vec::new(),
        }
    }

    pub fn write(&mut self, record: MessageRecord) {
        self.written.push(record.clone());
        self.store.write(record).expect("write");
    }

    /// Commits what is pending, without ending the run.
    pub fn commit(&mut self) {
        self.store.flush().expect("flush");
    }

    pub fn finish(mut self) -> Vec<MessageRecord> {
        self.store.finish("test").expect("finish");
        self.written
    }
}

#[derive(Clone)]
pub struct Proc {
    pub pid: u32,
    pub comm: &'static str,
    pub exe: &'static str,
    pub uid: u32,
    pub cgroup: &'static str,
}

pub const CURL: Proc = Proc {
    pid: 4242,
    comm: "curl",
    exe: "/usr/bin/curl",
    uid: 1000,
    cgroup: "/user.slice/user-1000.slice/session-1.scope",
};
pub const NGINX: Proc = Proc {
    pid: 700,
    comm: "nginx",
    exe: "/usr/sbin/nginx",
    uid: 33,
    cgroup: "/system.slice/nginx.service",
};
pub const DNSMASQ: Proc = Proc {
    pid: 99,
    comm: "dnsmasq",
    exe: "/usr/sbin/dnsmasq",
    uid: 0,
    cgroup: "/system.slice/dnsmasq.service",
};

pub fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP")
}

pub const CLIENT_IP: &str = "192.0.2.7";
pub const SERVER_IP: &str = "198.18.0.1";

pub fn process(p: &Proc) -> ProcessInfo {
    ProcessInfo {
        attribution: Some(Attribution::Socket),
        pid: Some(p.pid),
        tid: Some(p.pid),
        uid: Some(p.uid),
        gid: Some(p.uid),
        comm: Some(p.comm.into()),
        thread: Some(p.comm.into()),
        exe: Some(p.exe.into()),
        cgroup_id: Some(4000 + u64::from(p.pid)),
        cgroup: Some(p.cgroup.into()),
        netns: Some(4_026_531_840),
        unit: None,
        container: None,
    }
    .with_owner()
}

pub struct Ask<'a> {
    pub time_ns: i64,
    pub process: Option<&'a Proc>,
    /// The process answered (a server) rather than asked.
    pub server_role: bool,
    pub name: &'a str,
    pub qtype: &'a str,
    pub id: u16,
}

pub fn ask<'a>(time_ns: i64, process: &'a Proc, name: &'a str, qtype: &'a str) -> Ask<'a> {
    Ask {
        time_ns,
        process: Some(process),
        server_role: false,
        name,
        qtype,
        id: (time_ns / 1000 % 65_536) as u16,
    }
}

/// Where and by whom a fixture message was seen: the parts of a record the
/// fixtures vary besides its DNS content.
pub struct Wire {
    pub time_ns: i64,
    pub process: ProcessInfo,
    /// Sent by `process` (else received).
    pub sent: bool,
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
    pub ifindex: u32,
    pub interface: &'static str,
    pub socket_cookie: u64,
    /// Message length, all of it captured.
    pub len: u32,
}

/// A UDP message record: `wire` around `dns`.
pub fn record(wire: Wire, dns: DnsMessage) -> MessageRecord {
    MessageRecord {
        kind: "message".into(),
        time: Rfc3339(wire.time_ns),
        time_ns: wire.time_ns,
        direction: if wire.sent {
            Direction::Sent
        } else {
            Direction::Received
        },
        transport: Transport::Udp,
        src: wire.src.0,
        sport: wire.src.1,
        dst: wire.dst.0,
        dport: wire.dst.1,
        ifindex: wire.ifindex,
        interface: Some(wire.interface.into()),
        socket_cookie: wire.socket_cookie,
        socket_cgroup_id: wire.process.cgroup_id.unwrap_or(0),
        process: wire.process.into(),
        message_len: wire.len,
        captured_len: wire.len,
        dns: Some(dns.into()),
        malformed: None,
        pair: None,
        via: None,
        on_behalf_of: Vec::new(),
        from_cache: None,
    }
}

/// A recursive query (RD) for `name`, or its NOERROR response (RA) without answers.
pub fn dns(id: u16, response: bool, name: &str, qtype: &str) -> DnsMessage {
    DnsMessage::new(
        id,
        DnsContent {
            response,
            opcode: "QUERY".into(),
            rcode: "NOERROR".into(),
            flags: DnsFlags {
                rd: true,
                ra: response,
                ..DnsFlags::default()
            },
            questions: vec![Question {
                name: name.into(),
                qtype: qtype.to_owned().into(),
                class: "IN".into(),
            }],
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            edns: None,
        },
    )
}

/// Answer records from (name, type, data), the TTL by position.
pub fn answers(list: &[(&str, &str, &str)], ttl: impl Fn(usize) -> u32) -> Vec<ResourceRecord> {
    list.iter()
        .enumerate()
        .map(|(index, (name, rtype, data))| ResourceRecord {
            name: (*name).into(),
            rtype: (*rtype).to_owned().into(),
            class: "IN".into(),
            ttl: ttl(index),
            data: (*data).into(),
        })
        .collect()
}

impl Ask<'_> {
    fn base(&self, response: bool, time_ns: i64) -> MessageRecord {
        // A client sends queries and receives responses; a server the opposite.
        let sent = response == self.server_role;
        let (client, server) = (
            (ip(CLIENT_IP), 40_000 + self.id % 1000),
            (ip(SERVER_IP), 53),
        );
        let (src, dst) = if response {
            (server, client)
        } else {
            (client, server)
        };
        let process = match self.process {
            Some(p) => process(p),
            None => ProcessInfo {
                attribution: Some(Attribution::Unknown),
                ..ProcessInfo::default()
            },
        };
        let wire = Wire {
            time_ns,
            process,
            sent,
            src,
            dst,
            ifindex: 2,
            interface: "eth0",
            socket_cookie: 77 + u64::from(self.id),
            len: 40,
        };
        record(wire, dns(self.id, response, self.name, self.qtype))
    }

    pub fn query(&self) -> MessageRecord {
        self.base(false, self.time_ns)
    }

    /// The response, `latency_ns` after the query, with these answers
    /// (name, type, data).
    pub fn response(
        &self,
        latency_ns: i64,
        rcode: &str,
        answers: &[(&str, &str, &str)],
    ) -> MessageRecord {
        let mut record = self.base(true, self.time_ns + latency_ns);
        record.pair = Some(Pairing {
            query_time_ns: self.time_ns,
            latency_ns: latency_ns as u64,
        });
        record.message_len = 100;
        record.captured_len = 100;
        if let Some(dns) = record.dns.as_mut().map(Arc::make_mut) {
            dns.rcode = rcode.to_owned().into();
            dns.answers = self::answers(answers, |index| 300 - index as u32);
        }
        record
    }
}

pub fn malformed(time_ns: i64, p: &Proc) -> MessageRecord {
    let mut record = ask(time_ns, p, "x.", "A").query();
    record.dns = None;
    record.message_len = 3;
    record.captured_len = 3;
    record.malformed = Some(Malformed {
        error: "message shorter than its header".into(),
        raw_hex: "abcdef".into(),
    });
    record
}

/// The main fixture: curl resolving through a CNAME, nginx resolving an IPv6
/// address, dnsmasq answering, an NXDOMAIN, hostile names, a malformed message,
/// an unattributed one and an old one. Returns the records in the order written.
pub fn standard(path: &Path) -> Vec<MessageRecord> {
    let mut w = Writer::open(path);
    // Two days earlier: outside the windows the tests use.
    let old = ask(T0 - 48 * HOUR, &CURL, "old.example.org.", "A");
    w.write(old.query());
    w.write(old.response(
        1_000_000,
        "NOERROR",
        &[("old.example.org.", "A", "203.0.113.5")],
    ));

    let www = ask(T0, &CURL, "www.example.com.", "A");
    w.write(www.query());
    // dnsmasq receives it and answers (the server side of the same question).
    let served = Ask {
        process: Some(&DNSMASQ),
        server_role: true,
        ..ask(T0 + 10_000, &DNSMASQ, "www.example.com.", "A")
    };
    w.write(served.query());
    let chain = [
        ("www.example.com.", "CNAME", "edge.example.net."),
        ("edge.example.net.", "A", "198.18.0.10"),
    ];
    w.write(served.response(200_000, "NOERROR", &chain));
    w.write(www.response(268_255, "NOERROR", &chain));

    let api = ask(T0 + 60 * SECOND, &NGINX, "api.example.com.", "AAAA");
    w.write(api.query());
    w.write(api.response(
        1_500_000,
        "NOERROR",
        &[("api.example.com.", "AAAA", "2001:db8::10")],
    ));

    let missing = ask(T0 + 120 * SECOND, &CURL, "missing.example.com.", "A");
    w.write(missing.query());
    w.write(missing.response(900_000, "NXDOMAIN", &[]));

    // Hostile bytes: an escape sequence, CSV metacharacters, a formula.
    let evil = ask(T0 + 180 * SECOND, &CURL, "evil\x1b[31m.example.com.", "A");
    w.write(evil.query());
    w.write(evil.response(
        500_000,
        "NOERROR",
        &[("evil\x1b[31m.example.com.", "A", "198.18.0.66")],
    ));
    let csv = ask(T0 + 181 * SECOND, &CURL, "a,b\"c\nd.example.com.", "TXT");
    w.write(csv.query());
    let formula = ask(T0 + 182 * SECOND, &CURL, "=1+1.example.com.", "A");
    w.write(formula.query());

    w.write(malformed(T0 + 240 * SECOND, &CURL));
    let unknown = Ask {
        process: None,
        ..ask(T0 + 300 * SECOND, &CURL, "nobody.example.com.", "A")
    };
    w.write(unknown.query());

    w.store.record_counters(&serde_json::json!({
        "delivered": 15, "lost_ringbuf_full": 3, "lost_load_failed": 1, "store_dropped": 0
    }));
    w.finish()
}

/// Runs `dnsq` with `DNSQ_DB=db` in UTC.
pub fn dnsq(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnsq"))
        .args(args)
        .env("DNSQ_DB", db)
        .env("TZ", "UTC")
        .env_remove("NO_COLOR")
        .output()
        .expect("run dnsq")
}

/// `dnsq tail -f --json` with `args` against `db`, read a line at a time.
/// Killed when dropped, and after 30 s in any case: a line that never comes
/// ends the read instead of hanging the test.
pub struct Follow {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Follow {
    pub fn start(db: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dnsq"))
            .args(["tail", "-f", "--json"])
            .args(args)
            .env("DNSQ_DB", db)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn dnsq tail -f");
        let pid = child.id().to_string();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(30));
            let _ = Command::new("kill").arg(pid).status();
        });
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { child, lines }
    }

    /// The next line, as JSON.
    pub fn next(&mut self) -> serde_json::Value {
        let line = self.lines.next().expect("a line").expect("read");
        serde_json::from_str(&line).expect("JSON")
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A libc call as the uprobe reports it (no socket, so no attribution).
pub fn libc_call(time_ns: i64, p: &Proc, function: &str, name: &str) -> LookupRecord {
    LookupRecord {
        kind: "lookup".into(),
        time: Rfc3339(time_ns),
        time_ns,
        function: function.into(),
        name: name.into(),
        process: Arc::new(ProcessInfo {
            attribution: None,
            ..process(p)
        }),
        answer: None,
    }
}

/// The return of `call`, `latency_ns` after it, with getaddrinfo's `status`.
pub fn libc_return(
    call: &LookupRecord,
    latency_ns: i64,
    status: i32,
    addresses: Vec<IpAddr>,
) -> LookupRecord {
    let time_ns = call.time_ns + latency_ns;
    LookupRecord {
        kind: "lookup_answer".into(),
        time: Rfc3339(time_ns),
        time_ns,
        answer: Some(LibcAnswer {
            call_time_ns: call.time_ns,
            latency_ns,
            status,
            error: LibcAnswer::error_name(1, status).map(str::to_owned),
            addresses,
            truncated: false,
        }),
        ..call.clone()
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit status and returns stdout.
#[track_caller]
pub fn expect(output: &Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status; stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// The JSON lines of stdout.
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}
