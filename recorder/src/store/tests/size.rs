//! Bytes a message costs on disk, on synthetic traffic shaped like a busy server:
//! 1,000 messages a second for 200 s, a thousand names asked with a skew (each
//! mostly by one of a dozen programs), A/AAAA/HTTPS, CNAME chains, round-robin
//! answers, NXDOMAINs, changing TTLs, ports and socket cookies. Run with
//! `--nocapture` to see it; `DNSQ_TEST_NAMES=3000` makes the traffic more diverse
//! (more distinct facts an hour, so more bytes a message).

use std::time::Instant;

use super::{fixtures::*, writer::open_quiet};
use crate::{
    pipeline::Sink,
    record::{Direction, MessageRecord, ResourceRecord},
    store::StoreOptions,
};

/// CPU time of this thread (SQLite works in it), in nanoseconds.
fn thread_cpu_ns() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: one valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec * 1_000_000_000 + now.tv_nsec
}

/// xorshift64*: reproducible and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Skewed towards 0: a few names are asked most of the time.
    fn skewed(&mut self, n: u64) -> u64 {
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((x * x * x) * n as f64) as u64
    }
}

const PROGRAMS: &[&str] = &[
    "firefox",
    "curl",
    "apt",
    "systemd-resolve",
    "python3",
    "sshd",
    "chrome",
    "postfix",
    "ntpd",
    "node",
    "java",
    "snapd",
];

const MESSAGES: i64 = 200_000;

/// A name's answer: stable per name (a CNAME chain for a third of them, one to
/// four addresses), in a rotated order as round-robin servers give it.
fn answers(rng: &mut Rng, name: &str, qtype: &str, n: u64) -> Vec<ResourceRecord> {
    let mut records = Vec::new();
    let mut owner = name.to_owned();
    for hop in 0..n % 3 {
        let target = format!("edge{}-{hop}.cdn{}.example.net.", n % 97, n % 13);
        records.push(rr(&owner, "CNAME", 30 + rng.below(3_600) as u32, &target));
        owner = target;
    }
    let ttl = 1 + rng.below(300) as u32;
    let addresses = 1 + n % 4;
    let rotate = rng.below(addresses);
    for i in 0..addresses {
        let i = (i + rotate) % addresses;
        let data = if qtype == "AAAA" {
            format!("2001:db8:{:x}::{:x}", n % 4096, i + 1)
        } else {
            format!("198.51.{}.{}", n % 250, i + 1)
        };
        records.push(rr(&owner, qtype, ttl, &data));
    }
    records
}

/// [`MESSAGES`] messages of the traffic described above, as query/response pairs.
fn traffic(names: u64, mut each: impl FnMut(MessageRecord, MessageRecord)) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // 1,000 messages a second, a busy host, within one hour.
    let start = t0();
    let step = 1_000_000;
    let mut written = 0;
    while written < MESSAGES {
        let time = start + written * step;
        let n = rng.skewed(names);
        let name = format!("host{n}.service{}.example.com.", n % 50);
        let qtype = match rng.below(20) {
            0..=8 => "A",
            9..=17 => "AAAA",
            _ => "HTTPS",
        };
        // Most names are asked by one program, some by any.
        let program = if rng.below(10) == 0 {
            rng.skewed(PROGRAMS.len() as u64) as usize
        } else {
            (n % PROGRAMS.len() as u64) as usize
        };
        let mut q = query(time, &name, qtype, rng.below(65_536) as u16);
        q.process = process(1_000 + program as u32, PROGRAMS[program]).into();
        q.sport = 32_768 + rng.below(28_000) as u16;
        q.socket_cookie = rng.next() >> 1;
        q.message_len = 30 + name.len() as u32;
        q.captured_len = q.message_len;
        let latency = 1 + rng.below(40) as i64;
        // One name in 12 does not exist; one answer in 100 is a failure.
        let mut r = match (n % 12 == 5, rng.below(100)) {
            (true, _) => response(&q, latency, "NXDOMAIN", vec![], vec![soa()]),
            (false, 0) => response(&q, latency, "SERVFAIL", vec![], vec![]),
            _ => {
                let records = if qtype == "HTTPS" {
                    vec![]
                } else {
                    answers(&mut rng, &name, qtype, n)
                };
                response(&q, latency, "NOERROR", records, vec![])
            }
        };
        r.sport = q.sport;
        r.dport = q.sport;
        r.direction = Direction::Received;
        r.message_len = 60 + 30 * r.dns.as_ref().unwrap().answers.len() as u32;
        r.captured_len = r.message_len;
        each(q, r);
        written += 2;
    }
}

#[test]
fn bytes_per_message() {
    let names: u64 = std::env::var("DNSQ_TEST_NAMES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let dir = TempDir::new("bytes");
    let mut store = open_quiet(&dir.db())
        .with_options(StoreOptions {
            retain: None,
            ..StoreOptions::default()
        })
        .unwrap();
    store.start_run("{}").unwrap();
    // The records alone first, to tell their making from the writer's work.
    let cpu_began = thread_cpu_ns();
    traffic(names, |q, r| drop((q, r)));
    let making_ns = thread_cpu_ns() - cpu_began;
    let began = Instant::now();
    let cpu_began = thread_cpu_ns();
    traffic(names, |q, r| {
        store.write(q).unwrap();
        store.write(r).unwrap();
    });
    let stats = store.finish("signal").unwrap();
    let elapsed = began.elapsed();
    let cpu_ns = thread_cpu_ns() - cpu_began - making_ns;
    drop(store);
    assert_eq!(stats.committed, MESSAGES as u64);

    let db = inspect(&dir.db());
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let bytes = std::fs::metadata(dir.db()).unwrap().len();
    let per_message = bytes as f64 / MESSAGES as f64;
    let table = |name: &str| -> Option<i64> {
        db.query_row(
            "SELECT sum(pgsize) FROM dbstat WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .ok()
    };
    eprintln!(
        "{MESSAGES} messages: {bytes} bytes, {per_message:.1} B/message, {:.2} µs/message \
         ({:.2} µs of the writer's CPU; messages table {:?} B; names {}, \
         rdata {}, answer sets {}, lookups {}, resolutions {})",
        elapsed.as_secs_f64() * 1e6 / MESSAGES as f64,
        cpu_ns as f64 / 1e3 / MESSAGES as f64,
        table("messages"),
        count(&db, "SELECT count(*) FROM names"),
        count(&db, "SELECT count(*) FROM rdata"),
        count(&db, "SELECT count(*) FROM answer_sets"),
        count(&db, "SELECT count(*) FROM lookups"),
        count(&db, "SELECT count(*) FROM resolutions"),
    );
    // A regression bound for the default traffic (other DNSQ_TEST_NAMES differ).
    if std::env::var_os("DNSQ_TEST_NAMES").is_none() {
        assert!(per_message < 120.0, "{per_message:.1} bytes a message");
    }
}
