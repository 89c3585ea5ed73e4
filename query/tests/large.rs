//! A generated history of 300,000 messages: `export` streams it in constant
//! memory (peak RSS measured with wait4), and the fact-table commands stay quick.
//! Timings are printed (`--nocapture`), never asserted.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Instant,
};

use common::*;

const MESSAGES: usize = 300_000;
/// Between one query and the next: the history spans 3 hours.
const STEP_NS: i64 = 72_000_000;
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Runs `dnsq args`, counting stdout lines as they come; returns the line count,
/// the exit status and the peak RSS in KiB.
///
/// The peak is `VmHWM` of /proc/PID/status, polled: the high-water mark of the
/// program's own memory. (`wait4`'s `ru_maxrss` would not do: across `execve`
/// Linux keeps the high-water mark of the memory the child was forked with,
/// here the test process's, writer included.)
fn run_counting(db: &std::path::Path, args: &[&str]) -> (usize, i32, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnsq"))
        .args(args)
        .env("DNSQ_DB", db)
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn dnsq");
    let stdout = child.stdout.take().expect("stdout");
    let counter = std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 16, stdout);
        let mut lines = 0;
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).expect("read") > 0 {
            lines += 1;
            buf.clear();
        }
        lines
    });
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let lines = counter.join().expect("the counting thread");
    (lines, status.code().unwrap_or(-1), peak_kib)
}

#[test]
fn export_streams_a_large_history_in_constant_memory() {
    let dir = TempDir::new("large");
    let db = dir.path("dnsq.db");
    let started = Instant::now();
    let mut w = Writer::open(&db);
    let procs = [CURL, NGINX, DNSMASQ];
    let names: Vec<String> = (0..2_000)
        .map(|i| format!("host{i}.example.com."))
        .collect();
    let mut in_second_hour = 0;
    for i in 0..MESSAGES / 2 {
        let time = T0 + i as i64 * STEP_NS;
        let name = &names[i % names.len()];
        let a = ask(time, &procs[i % procs.len()], name, "A");
        let ip = format!("198.18.{}.{}", (i / 250) % 250, i % 250);
        let edge = format!("edge{}.example.net.", i % 7);
        let query = a.query();
        let response = a.response(
            250_000 + (i as i64 % 1000) * 1000,
            "NOERROR",
            &[
                (name.as_str(), "CNAME", edge.as_str()),
                (edge.as_str(), "A", ip.as_str()),
            ],
        );
        for record in [query, response] {
            if (T0 + HOUR..T0 + 2 * HOUR).contains(&record.time_ns) {
                in_second_hour += 1;
            }
            w.store.write_record(record);
        }
    }
    w.finish();
    let size = std::fs::metadata(&db).expect("db").len();
    eprintln!(
        "wrote {MESSAGES} messages through the writer in {:.2?} ({} MiB)",
        started.elapsed(),
        size >> 20
    );

    for format in ["csv", "jsonl"] {
        let started = Instant::now();
        let (lines, code, rss) = run_counting(&db, &["export", "--format", format]);
        eprintln!(
            "export --format {format}: {lines} lines in {:.2?}, peak RSS {} MiB",
            started.elapsed(),
            rss / 1024
        );
        assert_eq!(code, 0);
        let header = usize::from(format == "csv");
        assert_eq!(lines, MESSAGES + header);
        assert!(rss > 0 && rss < RSS_LIMIT_KIB, "peak RSS {rss} KiB");
    }

    // A window in the middle: exactly its messages.
    let (lines, code, _) = run_counting(
        &db,
        &[
            "export",
            "--format",
            "jsonl",
            "--since",
            "2026-11-24T11:00Z",
            "--until",
            "2026-11-24T12:00Z",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(lines, in_second_hour);

    for args in [
        vec!["who", "198.18.3.7"],
        vec!["by-process", "nginx", "--limit", "20"],
        vec!["name", "host42.example.com"],
        vec!["name", "*.example.com", "--limit", "20"],
        vec!["top", "domains"],
        vec!["top", "processes"],
        vec!["tail", "-n", "100"],
        vec!["stats"],
        // Filtered by the cgroup's owner: a third of everything.
        vec!["export", "--format", "csv", "--unit", "nginx.service"],
        vec!["top", "domains", "--unit", "nginx"],
        vec!["name", "*.example.com", "--limit", "20", "--unit", "nginx*"],
        vec!["stats", "--unit", "dnsmasq.service"],
    ] {
        let started = Instant::now();
        let (lines, code, _) = run_counting(&db, &args);
        eprintln!("{args:?}: {lines} lines in {:.2?}", started.elapsed());
        assert_eq!(code, 0, "{args:?}");
    }
}

trait WriteRecord {
    fn write_record(&mut self, record: dnsq_recorder::record::MessageRecord);
}

impl WriteRecord for dnsq_recorder::store::Store {
    fn write_record(&mut self, record: dnsq_recorder::record::MessageRecord) {
        use dnsq_recorder::pipeline::Sink;
        self.write(record).expect("write");
    }
}
