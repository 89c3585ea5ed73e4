//! What one batch of records becomes: rows, interned strings, facts.

use std::time::Duration;

use rusqlite::Connection;

use super::fixtures::*;
use crate::{
    pipeline::Sink,
    record::{Direction, DnsContent, DnsMessage, MessageRecord},
    store::{
        Store, StoreOptions, open_for_writing,
        schema::{NS_PER_HOUR, RCODE_QUERY, UNKNOWN_PROCESS, attribution, flags, role},
    },
};

/// A store that never commits by itself (huge batch, long window) and keeps
/// everything, so each test decides when to commit.
pub fn open_quiet(path: &std::path::Path) -> Store {
    open_batched(path, 1_000_000)
}

/// A store that commits every `batch_size` records (and when told to; its
/// window is long) and keeps everything.
pub fn open_batched(path: &std::path::Path, batch_size: usize) -> Store {
    open_for_writing(path)
        .unwrap()
        .with_options(StoreOptions {
            batch_size,
            batch_window: Duration::from_secs(3_600),
            retain: None,
            ..StoreOptions::default()
        })
        .unwrap()
}

/// A quiet store ([`open_quiet`]) that upserts its facts with every commit.
fn open_flushing_facts(path: &std::path::Path) -> Store {
    let quiet = open_quiet(path);
    let options = StoreOptions {
        facts_window: Duration::ZERO,
        ..quiet.options().clone()
    };
    quiet.with_options(options).unwrap()
}

fn name_id(conn: &Connection, name: &str) -> i64 {
    conn.query_row("SELECT id FROM names WHERE name = ?1", [name], |r| r.get(0))
        .unwrap_or_else(|_| panic!("no names row for {name}"))
}

#[test]
fn query_and_response_with_a_cname_chain() {
    let dir = TempDir::new("chain");
    let mut store = open_quiet(&dir.db());
    store.start_run("{\"ports\":[53]}").unwrap();
    let q = query(t0(), "WWW.example.com.", "A", 0x1234);
    let r = response(&q, 5, "NOERROR", cname_chain_answers(), vec![]);
    store.write(q).unwrap();
    store.write(r).unwrap();
    assert_eq!(
        count(&inspect(&dir.db()), "SELECT count(*) FROM messages"),
        0
    );
    let stats = store.finish("signal").unwrap();
    assert_eq!((stats.committed, stats.batches, stats.pending), (2, 1, 0));

    let db = inspect_unpacked(&dir.db());
    let www = name_id(&db, "www.example.com.");
    let edge = name_id(&db, "edge.example.net.");
    let e1 = name_id(&db, "e1.cdn.example.");
    type Row = (
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Row> = db
        .prepare(
            "SELECT flags, qname_id, qtype, (bits >> 28) & 4095, answer_set_id, ttls, latency_ns \
             FROM messages ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let socket = attribution::SOCKET << flags::ATTRIBUTION_SHIFT;
    let (qflags, qname, qtype, _, qset, qttls, qlatency) = rows[0].clone();
    assert_eq!(qflags, socket | flags::RD | flags::EDNS);
    assert_eq!(
        (qname, qtype, qset, qttls, qlatency),
        (www, Some(1), None, None, None)
    );
    let (rflags, rname, _, rcode, rset, rttls, rlatency) = rows[1].clone();
    assert_eq!(
        rflags,
        socket | flags::RECEIVED | flags::RESPONSE | flags::RD | flags::RA | flags::EDNS
    );
    assert_eq!((rname, rcode, rlatency), (www, Some(0), Some(5 * MS)));
    assert_eq!(rttls.as_deref(), Some("[300,60,20,20]"));
    let records: String = db
        .query_row(
            "SELECT records FROM answer_sets WHERE id = ?1",
            [rset.unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    let a1: i64 = db
        .query_row("SELECT id FROM rdata WHERE data = '192.0.2.1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let records: Vec<[i64; 5]> = serde_json::from_str(&records).unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0][..4], [0, www, 5, 1]);
    assert_eq!(records[2], [0, e1, 1, 1, a1]);

    // Identity: ports, endpoint, process and run.
    let (local_port, remote_port, cookie, dns_id): (i64, i64, i64, i64) = db
        .query_row(
            "SELECT CASE WHEN bits & 32768 THEN 53 ELSE (ports >> (CASE WHEN bits & 16384 THEN 0 ELSE 16 END)) & 65535 END, \
             CASE WHEN bits & 16384 THEN 53 ELSE ports & 65535 END, socket_cookie, (ports >> (CASE WHEN bits & 49152 THEN 16 ELSE 32 END)) & 65535 \
             FROM messages WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (local_port, remote_port, dns_id),
        (40_000 + 0x1234, 53, 0x1234)
    );
    assert_eq!(cookie as u64, 0x8000_0000_0000_1234);
    let (local, remote, interface): (Vec<u8>, Vec<u8>, String) = db
        .query_row(
            "SELECT local_ip, remote_ip, interface FROM endpoints",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (local, remote, interface.as_str()),
        (vec![10, 0, 0, 2], vec![10, 0, 0, 53], "eth0")
    );
    let (comm, exe, thread): (String, String, String) = db
        .query_row("SELECT comm, exe, thread FROM processes", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (comm.as_str(), exe.as_str(), thread.as_str()),
        ("curl", "/usr/bin/curl", "curl")
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM messages WHERE socket_cgroup_id IS NULL"
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM runs WHERE stop_reason = 'signal'"
        ),
        1
    );

    // Facts.
    let hour = t0() / NS_PER_HOUR;
    let resolved: Vec<(i64, i64, i64)> = db
        .prepare("SELECT name_id, qname_id, rtype FROM resolutions WHERE rdata_id = ?1")
        .unwrap()
        .query_map([a1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(resolved, vec![(e1, www, 1)]);
    assert_eq!(count(&db, "SELECT count(*) FROM resolutions"), 4);
    let cnames: Vec<(i64, i64)> = db
        .prepare("SELECT name_id, target_id FROM cnames ORDER BY name_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(cnames, vec![(www, edge), (edge, e1)]);
    let lookups: Vec<(i64, i64, i64, i64, i64, i64)> = db
        .prepare(
            "SELECT hour, role, rcode, count, paired, latency_sum_ns FROM lookups \
             WHERE qname_id = ?1 ORDER BY rcode",
        )
        .unwrap()
        .query_map([www], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // The answered query is the response row's `paired`: no query row.
    assert_eq!(lookups, vec![(hour, role::CLIENT, 0, 1, 1, 5 * MS)]);
}

/// A query counts on its query row until its response is seen, then on the
/// response's row; when the two are upserted in different flushes the stored
/// query row gives the query back (and goes when it has none left).
#[test]
fn an_answered_query_moves_from_the_query_row_to_the_response_row() {
    let dir = TempDir::new("answered");
    let mut store = open_flushing_facts(&dir.db());
    let rows = |db: &Connection| -> Vec<(i64, i64, i64, i64)> {
        db.prepare("SELECT qname_id, rcode, count, paired FROM lookups ORDER BY qname_id, rcode")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let answered = query(t0(), "a.example.", "A", 1);
    let unanswered = query(t0() + MS, "b.example.", "A", 2);
    let twice = query(t0() + 2 * MS, "a.example.", "A", 3);
    for q in [&answered, &unanswered, &twice] {
        store.write(q.clone()).unwrap();
    }
    store.commit_all();
    let db = inspect(&dir.db());
    let (a, b) = (name_id(&db, "a.example."), name_id(&db, "b.example."));
    assert_eq!(
        rows(&db),
        vec![(a, RCODE_QUERY, 2, 0), (b, RCODE_QUERY, 1, 0)]
    );

    store
        .write(response(&answered, 4, "NOERROR", vec![], vec![]))
        .unwrap();
    store.commit_all();
    assert_eq!(
        rows(&db),
        vec![(a, RCODE_QUERY, 1, 0), (a, 0, 1, 1), (b, RCODE_QUERY, 1, 0)]
    );

    store
        .write(response(&twice, 4, "NXDOMAIN", vec![], vec![]))
        .unwrap();
    store.finish("signal").unwrap();
    assert_eq!(
        rows(&db),
        vec![(a, 0, 1, 1), (a, 3, 1, 1), (b, RCODE_QUERY, 1, 0)]
    );
}

/// Fact rows keep their first and last times as offsets (schema 14): a row
/// upserted in three flushes, the second earlier than the first and the third
/// later than both, reads back with the earliest first and the latest last
/// time, exactly.
#[test]
fn fact_rows_merge_their_first_and_last_times_across_flushes() {
    let dir = TempDir::new("fact-times");
    let mut store = open_flushing_facts(&dir.db());
    let answers = || vec![rr("www.example.com.", "A", 300, "192.0.2.1")];
    // Nanoseconds apart, in one hour: a millisecond-rounded time would show.
    let flushes = [t0() + 1_000 * MS + 1, t0() + 7, t0() + 2_000 * MS + 3];
    let mut id = 0;
    for time in flushes {
        id += 1;
        let asked = query(time, "www.example.com.", "A", id);
        store.write(asked.clone()).unwrap();
        store
            .write(response(&asked, 3, "NOERROR", answers(), vec![]))
            .unwrap();
        store.commit_all();
    }
    store.finish("signal").unwrap();
    let db = inspect(&dir.db());
    let times = |sql: &str| -> (i64, i64, i64) {
        db.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
    };
    let (first, last) = (t0() + 7 + 3 * MS, t0() + 2_003 * MS + 3);
    assert_eq!(
        times("SELECT first_ns, last_ns, paired FROM lookups WHERE rcode = 0"),
        (first, last, 3)
    );
    assert_eq!(
        times("SELECT first_ns, last_ns, count FROM resolutions"),
        (first, last, 3)
    );
    // What is stored: the first time from the start of its hour, the last from
    // the first.
    assert_eq!(
        times("SELECT first_offset_ns, span_ns, hour * 3600000000000 FROM resolutions"),
        (first - t0(), last - first, t0())
    );
}

#[test]
fn nxdomain_malformed_unknown_process_and_server_side() {
    let dir = TempDir::new("kinds");
    let mut store = open_quiet(&dir.db());
    let q = query(t0(), "nope.example.com.", "AAAA", 7);
    let nx = response(&q, 2, "NXDOMAIN", vec![], vec![soa()]);
    let mut unattributed = query(t0() + MS, "who.example.", "A", 8);
    unattributed.process = unknown_process().into();
    unattributed.socket_cgroup_id = 777;
    // The same host's DNS server: received a query, sent its response.
    let mut served = query(t0() + 2 * MS, "srv.example.", "A", 9);
    served.direction = Direction::Received;
    served.process = process(53, "dnsmasq").into();
    let mut answer = response(
        &served,
        1,
        "NOERROR",
        vec![rr("srv.example.", "A", 5, "192.0.2.9")],
        vec![],
    );
    answer.direction = Direction::Sent;
    for record in [
        q,
        nx,
        malformed(t0() + 3 * MS),
        unattributed,
        served,
        answer,
    ] {
        store.write(record).unwrap();
    }
    store.finish("signal").unwrap();

    let db = inspect(&dir.db());
    assert_eq!(count(&db, "SELECT count(*) FROM messages"), 6);
    let nope = name_id(&db, "nope.example.com.");
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT (bits >> 28) & 4095 FROM messages WHERE qname_id = {nope} AND flags & {} != 0",
                flags::RESPONSE
            )
        ),
        3
    );
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM lookups WHERE qname_id = {nope} AND rcode = 3 AND qtype = 28"
            )
        ),
        1
    );
    // The SOA is in the authority section of the answer set, not a resolution.
    let records: String = db
        .query_row(
            &format!("SELECT records FROM answer_sets a JOIN messages m ON m.answer_set_id = a.id WHERE m.qname_id = {nope}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(records.starts_with("[[1,"), "{records}");
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM resolutions WHERE qname_id = {nope}")
        ),
        0
    );

    // Malformed: raw bytes kept, no DNS columns.
    let (error, raw): (String, Vec<u8>) = db
        .query_row("SELECT error, raw FROM malformed", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(error, "unexpected end of input");
    assert_eq!(raw, vec![0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00]);
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM messages WHERE flags & {} != 0 AND qname_id IS NULL AND ports >> 16 = 0",
                flags::MALFORMED
            )
        ),
        1
    );

    // Unknown process: NULL in messages, 0 in facts, the socket's cgroup kept.
    let who = name_id(&db, "who.example.");
    let (process, cgroup, bits): (Option<i64>, Option<i64>, i64) = db
        .query_row(
            &format!(
                "SELECT process_id, socket_cgroup_id, flags FROM messages WHERE qname_id = {who}"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((process, cgroup), (None, Some(777)));
    assert_eq!(
        bits & flags::ATTRIBUTION_MASK,
        attribution::UNKNOWN << flags::ATTRIBUTION_SHIFT
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT process_id FROM lookups WHERE qname_id = {who}")
        ),
        UNKNOWN_PROCESS
    );

    // Server side: role 1, and a sent response is not a resolution. The query
    // it answered is on the response's row (paired), not a row of its own.
    let srv = name_id(&db, "srv.example.");
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM lookups WHERE qname_id = {srv} AND role = {} \
                 AND rcode = 0 AND count = 1 AND paired = 1",
                role::SERVER
            )
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM lookups WHERE qname_id = {srv}")
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM lookups WHERE qname_id = {srv} AND role = {}",
                role::CLIENT
            )
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM resolutions WHERE qname_id = {srv}")
        ),
        0
    );
    // Each process twice: as messages name it (with its thread) and as the fact
    // tables count it (without).
    assert_eq!(count(&db, "SELECT count(*) FROM processes"), 4);
}

#[test]
fn repeated_strings_are_stored_once() {
    let dir = TempDir::new("intern");
    let mut store = open_for_writing(dir.db())
        .unwrap()
        .with_options(StoreOptions {
            batch_size: 100,
            retain: None,
            ..StoreOptions::default()
        })
        .unwrap();
    for i in 0..500 {
        let q = query(
            t0() + i * MS,
            if i % 2 == 0 {
                "www.example.com."
            } else {
                "WWW.EXAMPLE.COM."
            },
            "A",
            1,
        );
        let r = response(&q, 1, "NOERROR", cname_chain_answers(), vec![]);
        store.write(q).unwrap();
        store.write(r).unwrap();
    }
    let stats = store.finish("signal").unwrap();
    assert_eq!((stats.committed, stats.batches), (1000, 10));
    let db = inspect(&dir.db());
    assert_eq!(count(&db, "SELECT count(*) FROM messages"), 1000);
    // www.example.com., edge.example.net., e1.cdn.example.
    assert_eq!(count(&db, "SELECT count(*) FROM names"), 3);
    // edge.example.net., e1.cdn.example., two addresses.
    assert_eq!(count(&db, "SELECT count(*) FROM rdata"), 4);
    assert_eq!(count(&db, "SELECT count(*) FROM answer_sets"), 1);
    // The process with its thread (messages) and without (facts).
    assert_eq!(count(&db, "SELECT count(*) FROM processes"), 2);
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT l.process_id) FROM lookups l JOIN processes p \
             ON p.id = l.process_id WHERE p.tid IS NULL AND p.thread IS NULL"
        ),
        1
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT process_id) FROM lookups"),
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM endpoints"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM cnames"), 2);
    // Every query was answered within the flush: no query rows.
    assert_eq!(
        count(&db, "SELECT count(*) FROM lookups WHERE rcode = -1"),
        0
    );
    assert_eq!(
        count(&db, "SELECT sum(count) FROM lookups WHERE rcode = 0"),
        500
    );
    assert_eq!(
        count(&db, "SELECT sum(paired) FROM lookups WHERE rcode = 0"),
        500
    );
    assert_eq!(
        count(&db, "SELECT sum(count) FROM resolutions WHERE rtype = 1"),
        1000
    );
    // One time_index row per minute touched, covering every id.
    let (first, last): (i64, i64) = db
        .query_row(
            "SELECT min(first_id), max(last_id) FROM time_index",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((first, last), (1, 1000));
}

#[test]
fn batches_commit_by_count_and_by_window() {
    let dir = TempDir::new("batching");
    let mut store = open_for_writing(dir.db())
        .unwrap()
        .with_options(StoreOptions {
            batch_size: 10,
            batch_window: Duration::from_millis(200),
            retain: None,
            ..StoreOptions::default()
        })
        .unwrap();
    for i in 0..25 {
        store.write(query(t0() + i, "a.example.", "A", 1)).unwrap();
    }
    assert_eq!((store.stats().committed, store.stats().pending), (20, 5));
    store.flush().unwrap();
    assert_eq!(store.stats().committed, 20, "the window has not passed");
    std::thread::sleep(Duration::from_millis(250));
    store.flush().unwrap();
    assert_eq!(
        (
            store.stats().committed,
            store.stats().pending,
            store.stats().batches
        ),
        (25, 0, 3)
    );
    assert_eq!(
        count(&inspect(&dir.db()), "SELECT count(*) FROM messages"),
        25
    );
}

/// Few facts of a batch that did not fill (light traffic) are upserted with
/// it, so that `dnsq who` does not lag `dnsq tail`; few of a full batch wait a
/// second; many (load) are held for the whole facts window, where merging them
/// pays.
#[test]
fn few_facts_go_with_their_light_batch_or_wait_a_second_many_the_whole_window() {
    // (names, batch size: 1 fills at each record, (facts upserted at the
    // commit, a second later)).
    for (names, batch_size, upserted) in [
        (1, 1_000_000, (true, true)),
        (3, 1, (false, true)),
        (300, 1_000_000, (false, false)),
    ] {
        let dir = TempDir::new(&format!("light-facts-{names}"));
        let batched = open_batched(&dir.db(), batch_size);
        let options = StoreOptions {
            facts_window: Duration::from_secs(3_600),
            ..batched.options().clone()
        };
        let mut store = batched.with_options(options).unwrap();
        for i in 0..names {
            let name = format!("n{i}.example.");
            store.write(query(t0() + i, &name, "A", 1)).unwrap();
        }
        store.commit_all();
        let db = inspect(&dir.db());
        assert_eq!(count(&db, "SELECT count(*) FROM messages"), names);
        let rows = count(&db, "SELECT count(*) FROM lookups");
        assert_eq!(
            rows > 0,
            upserted.0,
            "{names} names: {rows} lookups rows at once"
        );
        std::thread::sleep(Duration::from_millis(1_100));
        store.flush().unwrap();
        let rows = count(&db, "SELECT count(*) FROM lookups");
        assert_eq!(
            rows > 0,
            upserted.1,
            "{names} names: {rows} lookups rows a second later"
        );
        store.finish("signal").unwrap();
        assert_eq!(count(&db, "SELECT count(*) FROM lookups"), names);
    }
}

#[test]
fn counters_and_runs() {
    let dir = TempDir::new("runs");
    let mut store = open_quiet(&dir.db());
    let run = store.start_run("{}").unwrap();
    store.record_counters(&serde_json::json!({"lost_ringbuf_full": 3}));
    std::thread::sleep(Duration::from_millis(2));
    store.write(query(t0(), "a.example.", "A", 1)).unwrap();
    store.record_counters(&serde_json::json!({"lost_ringbuf_full": 5}));
    store.finish("signal").unwrap();
    drop(store);
    // A second run continues the history.
    let mut store = open_quiet(&dir.db());
    let second = store.start_run("{}").unwrap();
    drop(store);
    assert!(second > run);
    let db = inspect(&dir.db());
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM counters WHERE run_id = {run}")
        ),
        2
    );
    let last: String = db
        .query_row(
            "SELECT \"values\" FROM counters ORDER BY time_ns DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last, "{\"lost_ringbuf_full\":5}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM messages WHERE run_id = 1"),
        1
    );
    let stops: Vec<(Option<i64>, Option<String>)> = db
        .prepare("SELECT stopped_ns, stop_reason FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(stops[0].0.is_some() && stops[0].1.as_deref() == Some("signal"));
    // Dropped without finish: like a crash, no stop recorded.
    assert_eq!(stops[1], (None, None));
}

/// The server's copy of a client's packet: the same decoded message (the same
/// `Arc`, as the pipeline shares one decode between loopback copies), seen at
/// dnsmasq's socket.
fn server_copy(client: &MessageRecord) -> MessageRecord {
    let mut copy = client.clone();
    copy.direction = match client.direction {
        Direction::Sent => Direction::Received,
        Direction::Received => Direction::Sent,
    };
    copy.process = process(53, "dnsmasq").into();
    copy.socket_cookie = 0x5353;
    copy.pair = None;
    copy
}

/// Messages packed a hundred to a chunk read back as the messages packed one
/// to a chunk: the same ids, columns (text TTLs at their message), extra
/// questions and malformed rows, wherever in a chunk a message lands. And a message that
/// shares its decode with the one before (its loopback copy) gets the same DNS
/// columns as when it is written alone.
#[test]
fn messages_packed_many_to_a_chunk_or_from_a_shared_decode_equal_messages_packed_one_by_one() {
    // Varied on purpose, so that a value bound at the wrong row shows.
    let records: Vec<_> = (0..150_i64)
        .flat_map(|i| {
            let name = format!("h{}.example.", i % 7);
            let mut q = query(
                t0() + i * MS,
                &name,
                ["A", "AAAA", "MX"][i as usize % 3],
                i as u16,
            );
            if i % 5 == 0 {
                q.process = process(4000 + i as u32 % 3, "worker").into();
            }
            if i % 11 == 0 {
                let dns = std::sync::Arc::make_mut(q.dns.as_mut().unwrap());
                let first = dns.questions[0].clone();
                dns.questions.push(first);
            }
            let answers = match i % 4 {
                0 => vec![],
                1 => cname_chain_answers(),
                2 => vec![rr(&name, "A", 30 + i as u32, "192.0.2.9")],
                _ => vec![
                    rr(&name, "A", 10, "192.0.2.7"),
                    rr(&name, "A", 20 + i as u32, "192.0.2.8"),
                ],
            };
            let rcode = if i % 9 == 0 { "NXDOMAIN" } else { "NOERROR" };
            let r = response(&q, 1 + i % 3, rcode, answers, vec![]);
            let mut out = vec![q.clone(), r.clone()];
            // The server's socket sees the same packets (on loopback the two copies
            // share one decode): mostly right after the client's copy, sometimes
            // with another message between them.
            if i % 2 == 0 {
                for (client_copy, at) in [(&q, 1), (&r, 3)] {
                    out.insert(at.min(out.len()), server_copy(client_copy));
                }
            } else if i % 3 == 0 {
                out.push(server_copy(&q));
            }
            if i % 13 == 0 {
                // Between a packet's two copies, when it has two.
                out.insert(out.len() - 1, malformed(t0() + i * MS));
            }
            out
        })
        .collect();
    assert!(
        records
            .windows(2)
            .filter(|pair| match (&pair[0].dns, &pair[1].dns) {
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
                _ => false,
            })
            .count()
            > 100
    );
    let tables = [
        "SELECT * FROM messages ORDER BY id",
        "SELECT * FROM extra_questions ORDER BY message_id, position",
        "SELECT * FROM malformed ORDER BY message_id",
        "SELECT * FROM time_index ORDER BY minute",
    ];
    let mut dumps = Vec::new();
    for batch_size in [1, 100] {
        let dir = TempDir::new(&format!("many-rows-{batch_size}"));
        let mut store = open_batched(&dir.db(), batch_size);
        for record in &records {
            store.write(record.clone()).unwrap();
        }
        store.finish("signal").unwrap();
        let db = inspect_unpacked(&dir.db());
        // A chunk a transaction.
        assert_eq!(
            count(&db, "SELECT count(*) FROM main.message_chunks"),
            records.len().div_ceil(batch_size) as i64
        );
        let dump: Vec<_> = tables.iter().map(|sql| query_rows(&db, sql)).collect();
        dumps.push(dump);
    }
    let (one_by_one, many) = (&dumps[0], &dumps[1]);
    assert_eq!(one_by_one[0].len(), records.len());
    // The test covers what it means to: text and integer TTLs, extra questions,
    // malformed rows.
    let text_ttls = one_by_one[0]
        .iter()
        .filter(|row| matches!(row[11], rusqlite::types::Value::Text(_)))
        .count();
    assert!(text_ttls > 10, "{text_ttls} rows with text TTLs");
    assert!(one_by_one[1].len() > 10 && one_by_one[2].len() > 10);
    for (table, (a, b)) in tables.iter().zip(one_by_one.iter().zip(many)) {
        assert_eq!(a, b, "{table}");
    }
}

#[test]
fn a_bulk_load_writes_the_same_rows_and_leaves_a_wal_database() {
    let write = |store: &mut Store| {
        store.start_run("{}").unwrap();
        let q = query(t0(), "www.example.com.", "A", 0x1234);
        let r = response(&q, 5, "NOERROR", cname_chain_answers(), vec![]);
        store.write(q).unwrap();
        store.write(r).unwrap();
        store
            .write(query(t0() + 7, "nx.example.", "AAAA", 2))
            .unwrap();
    };
    let normal_dir = TempDir::new("normal");
    let mut normal = open_quiet(&normal_dir.db());
    write(&mut normal);
    normal.finish("signal").unwrap();
    drop(normal);

    let bulk_dir = TempDir::new("bulk");
    let mut bulk = open_quiet(&bulk_dir.db());
    bulk.begin_bulk_load(64 * 1024).unwrap();
    write(&mut bulk);
    let journal = |path: &std::path::Path| -> String {
        inspect(path)
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    };
    // No write-ahead log while loading: the rows go straight to the file.
    bulk.finish("signal").unwrap();
    assert_eq!(journal(&bulk_dir.db()), "delete");
    bulk.end_bulk_load().unwrap();
    drop(bulk);
    assert_eq!(journal(&bulk_dir.db()), "wal");

    let rows = table_rows(&inspect(&bulk_dir.db()));
    assert!(
        rows.iter()
            .any(|(table, rows)| table == "message_chunks" && !rows.is_empty())
    );
    assert_eq!(rows, table_rows(&inspect(&normal_dir.db())));
}

/// Messages that share their decoded content (a query asked again with another
/// ID: see `dns::RecentDecodes`) are stored as if each had been decoded alone:
/// every table the same, across transactions and message hours (the columns
/// made of a content are kept with the interned ids, which start again each
/// hour so that `last_hour` is marked again).
#[test]
fn messages_sharing_a_decoding_are_stored_as_messages_decoded_alone() {
    let mut shared_records = Vec::new();
    let mut alone_records = Vec::new();
    let mut first_of: std::collections::HashMap<(String, bool), std::sync::Arc<DnsContent>> =
        std::collections::HashMap::new();
    let mut last_hour_of_h0 = 0;
    for i in 0..240_i64 {
        let name = format!("h{}.example.", i % 5);
        // Three message hours, crossed in the middle of transactions.
        let time_ns = t0() + i * (NS_PER_HOUR / 80);
        let q = query(
            time_ns,
            &name,
            if i % 2 == 0 { "A" } else { "AAAA" },
            i as u16,
        );
        let answers = match i % 5 {
            0 => cname_chain_answers(),
            4 => vec![],
            _ => vec![rr(&name, "A", 30, "192.0.2.9")],
        };
        let r = response(
            &q,
            2,
            if i % 5 == 4 { "NXDOMAIN" } else { "NOERROR" },
            answers,
            vec![],
        );
        if i % 5 == 0 {
            last_hour_of_h0 = r.time_ns.div_euclid(NS_PER_HOUR);
        }
        for (k, record) in [q, r].into_iter().enumerate() {
            let dns = record.dns.as_ref().unwrap();
            let key = (format!("{name}{}", i % 2), k == 1);
            let content = first_of
                .entry(key)
                .or_insert_with(|| std::sync::Arc::clone(&dns.content))
                .clone();
            let shared = MessageRecord {
                dns: Some(std::sync::Arc::new(DnsMessage {
                    id: dns.id,
                    content: std::sync::Arc::clone(&content),
                })),
                ..record.clone()
            };
            let alone = MessageRecord {
                dns: Some(std::sync::Arc::new(DnsMessage::new(
                    dns.id,
                    DnsContent::clone(&content),
                ))),
                ..record
            };
            // On loopback the server's copy shares the client's decoding too.
            if i % 3 == 0 {
                shared_records.push(server_copy(&shared));
                alone_records.push(server_copy(&alone));
            }
            shared_records.push(shared);
            alone_records.push(alone);
        }
    }
    // What the test is about: most messages share a content first seen with
    // another ID.
    let mut first_id = std::collections::HashMap::new();
    let reused = shared_records
        .iter()
        .map(|record| record.dns.as_ref().unwrap())
        .filter(|dns| {
            *first_id
                .entry(std::sync::Arc::as_ptr(&dns.content))
                .or_insert(dns.id)
                != dns.id
        })
        .count();
    assert!(reused > 400, "{reused} messages reuse a content");
    let mut dumps = Vec::new();
    for (label, records) in [("shared", &shared_records), ("alone", &alone_records)] {
        let dir = TempDir::new(&format!("shared-decodes-{label}"));
        let mut store = open_batched(&dir.db(), 37);
        for record in records {
            store.write(record.clone()).unwrap();
        }
        store.finish("signal").unwrap();
        let db = inspect(&dir.db());
        assert_eq!(
            db.query_row(
                "SELECT last_hour FROM names WHERE name = 'h0.example.'",
                [],
                |r| r.get::<_, i64>(0)
            )
            .unwrap(),
            last_hour_of_h0
        );
        dumps.push(table_rows(&db));
    }
    let messages = |dump: &Vec<(String, Vec<Vec<rusqlite::types::Value>>)>| {
        dump.iter()
            .find(|(table, _)| table == "message_chunks")
            .map_or(0, |(_, rows)| rows.len())
    };
    assert!(messages(&dumps[0]) > 10);
    assert_eq!(dumps[0], dumps[1]);
}

/// A first question of another class than IN (`version.bind CH TXT`) has no
/// place in the message's row: it is an `extra_questions` row, for each message
/// that asks it, the ones sharing a decoding included.
#[test]
fn a_first_question_of_another_class_is_an_extra_question() {
    let dir = TempDir::new("chaos-class");
    let mut store = open_quiet(&dir.db());
    let mut asked = query(t0(), "version.bind.", "TXT", 1);
    std::sync::Arc::make_mut(asked.dns.as_mut().unwrap()).questions[0].class =
        "CH".to_owned().into();
    let content = std::sync::Arc::clone(&asked.dns.as_ref().unwrap().content);
    let again = MessageRecord {
        dns: Some(std::sync::Arc::new(DnsMessage { id: 2, content })),
        time_ns: t0() + MS,
        ..asked.clone()
    };
    let plain = query(t0() + 2 * MS, "version.bind.", "TXT", 3);
    for record in [asked, again, plain] {
        store.write(record).unwrap();
    }
    store.finish("signal").unwrap();
    let db = inspect_unpacked(&dir.db());
    let version_bind = name_id(&db, "version.bind.");
    assert_eq!(
        query_rows(
            &db,
            "SELECT message_id, position, qname_id, qtype, qclass FROM extra_questions \
             ORDER BY message_id"
        ),
        [1, 2]
            .map(|message_id| [message_id, 0, version_bind, 16, 3]
                .map(rusqlite::types::Value::from)
                .to_vec())
            .to_vec()
    );
    assert_eq!(
        query_rows(&db, "SELECT id, qname_id FROM messages ORDER BY id"),
        vec![
            vec![1.into(), rusqlite::types::Value::Null],
            vec![2.into(), rusqlite::types::Value::Null],
            vec![3.into(), version_bind.into()],
        ]
    );
}
