//! Retention by age and by size, on generated databases, one small step at a time.

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use rusqlite::Connection;

use super::{fixtures::*, writer::open_quiet};
use crate::{
    pipeline::Sink,
    store::{
        StoreOptions, open_for_writing, parse_duration, parse_retain, parse_size,
        read::{IdRange, MessageQuery, ReadError, Reader},
        retention::{delete_messages, used_bytes},
        schema::{self, NS_PER_HOUR, NS_PER_MINUTE},
        writer::now_ns,
    },
};

const DAY: i64 = 24 * NS_PER_HOUR;

/// The store with `--retain 30d`, deleting at most `chunk` rows a table a step.
fn open_retaining_30_days(path: &std::path::Path, chunk: i64) -> crate::store::Store {
    open_for_writing(path)
        .unwrap()
        .with_options(StoreOptions {
            retain: Some(Duration::from_secs(30 * 24 * 3_600)),
            retention_chunk: chunk,
            ..StoreOptions::default()
        })
        .unwrap()
}

/// `per_hour` query/response pairs an hour from `from_ns` to now, a malformed
/// message and a two-question query every tenth hour. Returns the messages
/// written.
fn generate(path: &std::path::Path, from_ns: i64, per_hour: i64) -> i64 {
    let mut store = open_quiet(path);
    store.start_run("{}").unwrap();
    let hours = (now_ns() - from_ns) / NS_PER_HOUR;
    let mut written = 0;
    for hour in 0..hours {
        let base = from_ns + hour * NS_PER_HOUR;
        for i in 0..per_hour {
            let time = base + i * (NS_PER_HOUR / per_hour);
            let name = format!("h{}.day{}.example.", i % 7, hour / 24);
            let q = query(time, &name, "A", i as u16);
            let answer = vec![
                rr(&name, "CNAME", 60, "cdn.example."),
                rr("cdn.example.", "A", 60, "192.0.2.7"),
            ];
            let r = response(&q, 3, "NOERROR", answer, vec![]);
            store.write(q).unwrap();
            store.write(r).unwrap();
            written += 2;
        }
        if hour % 10 == 0 {
            store.write(malformed(base + 1)).unwrap();
            let mut two = query(base + 2, "one.example.", "A", 1);
            let dns = Arc::make_mut(two.dns.as_mut().unwrap());
            let first = dns.questions[0].clone();
            dns.questions.push(first);
            dns.questions[1].name = "two.example.".to_owned();
            store.write(two).unwrap();
            written += 2;
        }
        // An hour a commit, so a chunk: a recorder commits what a second brings.
        store.commit_all();
    }
    store.finish("signal").unwrap();
    written
}

fn consistent(db: &Connection) {
    let min_id = count(db, "SELECT coalesce(min(id), 0) FROM messages");
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM malformed WHERE message_id < (SELECT min(id) FROM messages)"
        ),
        0
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM extra_questions WHERE message_id < (SELECT min(id) FROM messages)"
        ),
        0
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT count(*) FROM time_index WHERE first_id < {min_id}")
        ),
        0
    );
    assert_eq!(count(db, "SELECT min(first_id) FROM time_index"), min_id);
    assert_eq!(dangling_references(db), 0);
    // A minute's counts (schema 10), where it has them, are its messages'.
    assert_eq!(
        count(
            db,
            &format!(
                "SELECT count(*) FROM time_index t WHERE t.messages IS NOT NULL \
                 AND t.messages != (SELECT count(*) FROM messages m \
                    WHERE m.id BETWEEN t.first_id AND t.last_id \
                    AND m.time_ns / {NS_PER_MINUTE} = t.minute)"
            )
        ),
        0
    );
}

#[test]
fn messages_and_facts_older_than_retain_go_a_little_at_a_time() {
    let dir = TempDir::new("retain");
    let start = now_ns() - 40 * DAY;
    let written = generate(&dir.db(), start, 6);
    let cutoff = now_ns() - 30 * DAY;
    let db = inspect(&dir.db());
    let old = count(
        &db,
        &format!("SELECT count(*) FROM messages WHERE time_ns < {cutoff}"),
    );
    assert!(old > 2_000, "{old} of {written}");
    // Delegations (client → local resolver links) of an old and a recent hour,
    // naming the newest name and process (which stay as long as they are used).
    let old_hour = cutoff.div_euclid(NS_PER_HOUR) - 2;
    let new_hour = now_ns().div_euclid(NS_PER_HOUR);
    for hour in [old_hour, new_hour] {
        db.execute(
            "INSERT INTO delegations (resolver_process_id, hour, qname_id, qtype, \
             client_process_id, upstream, cached, first_offset_ns, span_ns) \
             VALUES ((SELECT max(id) FROM processes), ?1, (SELECT max(id) FROM names), 1, \
                     (SELECT max(id) FROM processes), 1, 0, 0, 0)",
            [hour],
        )
        .unwrap();
    }

    // A run that started before the cut-off, sampling its counters every ten
    // minutes (the recorder does every 10 s): more than a step's chunk to delete.
    let every = NS_PER_HOUR / 6;
    let samples = (now_ns() - start) / every;
    db.execute_batch(&format!(
        "INSERT INTO runs (id, started_ns, version, config) VALUES (900, {start}, 'test', '{{}}');
         WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n + 1 < {samples})
         INSERT INTO counters (run_id, time_ns, \"values\")
             SELECT 900, {start} + n * {every}, json_object('lost_ringbuf_full', n) FROM k;"
    ))
    .unwrap();
    let samples_before = |db: &Connection| {
        count(
            db,
            &format!("SELECT count(*) FROM counters WHERE run_id = 900 AND time_ns < {cutoff}"),
        )
    };
    assert!(samples_before(&db) > 500, "{}", samples_before(&db));
    let samples_after = count(
        &db,
        &format!("SELECT count(*) FROM counters WHERE run_id = 900 AND time_ns >= {cutoff}"),
    );

    let mut store = open_retaining_30_days(&dir.db(), 500);
    let mut steps = 0;
    loop {
        let step = store.retention_now().unwrap();
        assert!(
            // A chunk each of lookups, libc_lookups, resolutions (one answer's
            // rows over, at most) and counters, and cnames and delegations swept
            // whole.
            step.messages <= 500 && step.facts <= 4 * 500 + 1_000,
            "{step:?}"
        );
        steps += 1;
        if step.messages == 0 && step.facts == 0 && !step.sweeping {
            break;
        }
        assert!(steps < 1_000);
        consistent(&db);
    }
    assert!(steps > old / 500, "{steps} steps for {old} messages");
    let left_old = count(
        &db,
        &format!("SELECT count(*) FROM messages WHERE time_ns < {cutoff} - {NS_PER_MINUTE}"),
    );
    assert_eq!(left_old, 0);
    let kept = count(&db, "SELECT count(*) FROM messages");
    let newer = count(
        &db,
        &format!("SELECT count(*) FROM messages WHERE time_ns >= {cutoff}"),
    );
    assert!(
        kept - newer <= 4,
        "kept {kept}, newer {newer}: only the cut-off minute may differ"
    );
    assert!(
        kept >= written - old - 20,
        "kept {kept} of {} recent",
        written - old
    );
    assert_eq!(store.stats().expired as i64, written - kept);
    let cutoff_hour = cutoff.div_euclid(NS_PER_HOUR);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM lookups WHERE hour < {cutoff_hour}")
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM resolutions WHERE hour < {cutoff_hour}")
        ),
        0
    );
    assert!(count(&db, "SELECT count(*) FROM lookups") > 0);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM cnames WHERE last_ns < {cutoff}")
        ),
        0
    );
    assert!(count(&db, "SELECT count(*) FROM cnames") > 0);
    let delegation_hours: Vec<i64> = db
        .prepare("SELECT hour FROM delegations")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(delegation_hours, vec![new_hour]);
    consistent(&db);
    // Counters samples before the cut-off went, but for the newest (the run's
    // totals there); the later ones stay.
    assert_eq!(samples_before(&db), 1);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM counters WHERE run_id = 900 AND time_ns >= {cutoff}")
        ),
        samples_after
    );
    assert!(
        count(
            &db,
            &format!("SELECT max(time_ns) FROM counters WHERE run_id = 900 AND time_ns < {cutoff}")
        ) > cutoff - every
    );
    // The names only the deleted days asked for went with them (schema 11); the
    // last day's six (h0 to h5) stay.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM names WHERE name LIKE 'h_.day0.example.'"
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM names WHERE name LIKE 'h_.day39.example.'"
        ),
        6
    );

    // The step also runs from flush(), at its own pace.
    store
        .write(query(now_ns(), "fresh.example.", "A", 1))
        .unwrap();
    store.flush().unwrap();
    store.finish("signal").unwrap();
}

/// Retention steps until no sweep is part way through (at most 100): the fact
/// rows each one deleted.
fn sweep_pass(store: &mut crate::store::Store) -> Vec<u64> {
    let mut steps = Vec::new();
    for _ in 0..100 {
        let step = store.retention_now().unwrap();
        steps.push(step.facts);
        if !step.sweeping {
            break;
        }
    }
    steps
}

/// `resolutions` has no index on hour: retention walks its answers a few
/// thousand a step, over as many steps as it takes, and keeps the recent rows.
#[test]
fn old_resolutions_go_by_a_walk_over_the_answers() {
    let dir = TempDir::new("sweep");
    drop(open_quiet(&dir.db()));
    let db = inspect(&dir.db());
    let old_hour = (now_ns() - 40 * DAY).div_euclid(NS_PER_HOUR);
    let new_hour = now_ns().div_euclid(NS_PER_HOUR);
    let answers = 5_000;
    db.execute_batch("BEGIN").unwrap();
    for rdata_id in 1..=answers {
        for (hour, process_id) in [(old_hour, 1), (old_hour + 1, 2), (new_hour, 1)] {
            db.execute(
                "INSERT INTO resolutions (rdata_id, hour, rtype, name_id, qname_id, process_id, \
                 endpoint_id, first_offset_ns, span_ns, count) \
                 VALUES (?1, ?2, 1, 1, 1, ?3, 1, 0, 0, 1)",
                (rdata_id, hour, process_id),
            )
            .unwrap();
        }
    }
    db.execute_batch("COMMIT").unwrap();

    let mut store = open_retaining_30_days(&dir.db(), 100_000);
    let steps = sweep_pass(&mut store);
    let deleted: u64 = steps.iter().sum();
    // The last step finished the pass.
    let sweeping_steps = steps.len() - 1;
    assert_eq!(deleted, 2 * answers as u64);
    assert!(
        sweeping_steps >= 2,
        "{sweeping_steps} steps for {answers} answers"
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM resolutions WHERE hour < {new_hour}")
        ),
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM resolutions"), answers);
    // The pass is done: the next step (same cut-off hour) finds nothing to do.
    let step = store.retention_now().unwrap();
    assert_eq!((step.facts, step.sweeping), (0, false));
}

/// `lookups` has no index on hour (schema 16): retention walks its processes
/// through `lookups_process`, at most a chunk of rows a step even within one
/// process, and keeps the recent rows.
#[test]
fn old_lookups_go_by_a_walk_over_the_processes() {
    let dir = TempDir::new("lookups-sweep");
    drop(open_quiet(&dir.db()));
    let db = inspect(&dir.db());
    let old_hour = (now_ns() - 40 * DAY).div_euclid(NS_PER_HOUR);
    let new_hour = now_ns().div_euclid(NS_PER_HOUR);
    // Process 0 (not known), a busy process 7 and a quiet one, 9.
    let names = 1_000;
    db.execute_batch("BEGIN").unwrap();
    for qname_id in 1..=names {
        for (process_id, hours) in [(0, 1), (7, 3), (9, qname_id % 2)] {
            for hour in (0..hours).map(|h| old_hour + h).chain([new_hour]) {
                db.execute(
                    "INSERT INTO lookups (process_id, hour, role, qname_id, qtype, rcode, \
                     count, paired, latency_sum_ns, latency_max_ns, first_offset_ns, span_ns) \
                     VALUES (?1, ?2, 0, ?3, 1, -1, 1, 0, 0, 0, 0, 0)",
                    (process_id, hour, qname_id),
                )
                .unwrap();
            }
        }
    }
    db.execute_batch("COMMIT").unwrap();
    let old = names + 3 * names + names / 2;
    let hours = |db: &Connection| -> (i64, i64) {
        db.query_row(schema::LOOKUPS_HOURS, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    };
    assert_eq!(hours(&db), (old_hour, new_hour));

    let mut store = open_retaining_30_days(&dir.db(), 700);
    let steps = sweep_pass(&mut store);
    assert_eq!(steps.iter().sum::<u64>(), old as u64, "{steps:?}");
    // A chunk a step, also through the busy process's 3,000 old rows.
    assert!(steps.iter().all(|&n| n <= 700), "{steps:?}");
    assert!(steps.len() >= old as usize / 700, "{steps:?}");
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM lookups WHERE hour < {new_hour}")
        ),
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM lookups"), 3 * names);
    assert_eq!(hours(&db), (new_hour, new_hour));
    let step = store.retention_now().unwrap();
    assert_eq!((step.facts, step.sweeping), (0, false));
}

/// What reads `lookups` by hour seeks its (process_id, hour) index, one process
/// at a time, and never reads the whole table: retention's walk, the table's
/// first and last hour, and a narrow window.
#[test]
fn lookups_by_hour_read_through_the_process_index() {
    let dir = TempDir::new("lookups-plans");
    drop(open_quiet(&dir.db()));
    let db = inspect(&dir.db());
    let window = format!(
        "SELECT qname_id, count FROM lookups WHERE {} BETWEEN 10 AND 12",
        schema::LOOKUPS_BY_PROCESS_HOUR
    );
    for sql in [
        schema::LOOKUPS_HOURS,
        window.as_str(),
        "SELECT process_id FROM lookups WHERE process_id >= 5 ORDER BY process_id LIMIT 1",
        "SELECT qname_id, process_id, role, qtype, rcode, hour FROM lookups \
         WHERE process_id = 5 AND hour < 9 LIMIT 10",
    ] {
        let plan: Vec<String> = db
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|step| step.contains("lookups_process")),
            "{sql}: {plan:?}"
        );
        assert!(
            plan.iter()
                .filter(|step| step.contains("lookups"))
                .all(|step| step
                    .starts_with("SEARCH lookups USING COVERING INDEX lookups_process")
                    || step.starts_with("SEARCH lookups USING INDEX lookups_process")),
            "{sql}: {plan:?}"
        );
    }
}

#[test]
fn the_size_cap_deletes_the_oldest_and_reuses_the_pages() {
    let dir = TempDir::new("size");
    let written = generate(&dir.db(), now_ns() - 5 * DAY, 100);
    let db = inspect(&dir.db());
    let before = used_bytes(&db).unwrap();
    let cap = before / 2;
    let newest = count(&db, "SELECT max(id) FROM messages");

    let mut store = open_for_writing(dir.db())
        .unwrap()
        .with_options(StoreOptions {
            max_db_size: Some(cap),
            retain: None,
            retention_chunk: 2_000,
            ..StoreOptions::default()
        })
        .unwrap();
    let mut steps = 0;
    loop {
        let step = store.retention_now().unwrap();
        assert!(step.messages <= 2_000, "{step:?}");
        assert!(!step.stuck_over_size);
        steps += 1;
        if step.messages == 0 && step.facts == 0 {
            break;
        }
        assert!(steps < 1_000);
    }
    let after = used_bytes(&db).unwrap();
    assert!(after <= cap, "used {after} > cap {cap}");
    let kept = count(&db, "SELECT count(*) FROM messages");
    assert!(kept > 0 && kept < written, "kept {kept} of {written}");
    assert_eq!(count(&db, "SELECT max(id) FROM messages"), newest);
    consistent(&db);
    // Facts older than the oldest message kept are gone too.
    let oldest_hour = count(&db, "SELECT time_ns FROM messages ORDER BY id LIMIT 1") / NS_PER_HOUR;
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM lookups WHERE hour < {oldest_hour}")
        ),
        0
    );

    // New rows go into the freed pages: the file does not grow.
    let pages = count(&db, "PRAGMA page_count");
    for i in 0..2_000 {
        store
            .write(query(now_ns() + i, "again.example.", "A", 1))
            .unwrap();
    }
    store.finish("signal").unwrap();
    assert_eq!(count(&db, "PRAGMA page_count"), pages);
    eprintln!(
        "size cap {cap} B: used {before} B → {after} B in {steps} steps, kept {kept} of {written} messages"
    );
}

/// A chunk of more messages than a retention step deletes goes whole: retention
/// never stalls on it.
#[test]
fn a_chunk_larger_than_a_step_goes_whole() {
    let dir = TempDir::new("big-chunk");
    let old = now_ns() - 40 * DAY;
    let mut store = open_quiet(&dir.db());
    store.start_run("{}").unwrap();
    // One transaction: chunks of 1,024, 1,024 and 952.
    for i in 0..3_000 {
        store
            .write(query(old + i, "old.example.", "A", i as u16))
            .unwrap();
    }
    store.finish("signal").unwrap();
    drop(store);
    let chunks = "SELECT count(*) FROM message_chunks";
    assert_eq!(count(&inspect(&dir.db()), chunks), 3);
    let mut store = open_retaining_30_days(&dir.db(), 100);
    let deleted: Vec<u64> = (0..4)
        .map(|_| store.retention_now().unwrap().messages)
        .collect();
    assert_eq!(deleted, [1_024, 1_024, 952, 0]);
    assert_eq!(count(&inspect(&dir.db()), chunks), 0);
}

/// Retention that cuts into a minute leaves that minute's `time_index` counts
/// NULL, so that readers count what is left of it from `messages`; the other
/// minutes stay counted.
#[test]
fn a_minute_cut_into_is_no_longer_counted() {
    let dir = TempDir::new("cut-minute");
    let minute = now_ns().div_euclid(NS_PER_MINUTE) - 10;
    let start = minute * NS_PER_MINUTE;
    let mut store = open_quiet(&dir.db());
    store.start_run("{}").unwrap();
    for i in 0..3 {
        let q = query(start + i * 1_000_000_000, "a.example.", "A", i as u16);
        let r = response(&q, 1, "NOERROR", vec![], vec![]);
        store.write(q).unwrap();
        store.write(r).unwrap();
        // The first pair is a chunk of its own.
        if i == 0 {
            store.commit_all();
        }
    }
    store.write(malformed(start + NS_PER_MINUTE + 1)).unwrap();
    store.finish("signal").unwrap();

    let db = inspect(&dir.db());
    let counts = |minute: i64| -> [Option<i64>; 7] {
        db.query_row(
            "SELECT messages, queries, responses, malformed, queries_sent, answered, first_id \
             FROM time_index WHERE minute = ?1",
            [minute],
            |row| {
                let mut all = [None; 7];
                for (at, value) in all.iter_mut().enumerate() {
                    *value = row.get(at)?;
                }
                Ok(all)
            },
        )
        .unwrap()
    };
    let first = count(&db, "SELECT min(id) FROM messages");
    let s = Some;
    assert_eq!(
        counts(minute),
        [s(6), s(3), s(3), s(0), s(3), s(3), s(first)]
    );
    assert_eq!(
        counts(minute + 1),
        [s(1), s(0), s(0), s(1), s(0), s(0), s(first + 6)]
    );
    consistent(&db);

    let tx = db.unchecked_transaction().unwrap();
    // A cut inside the second chunk keeps it whole: only the first pair goes.
    assert_eq!(delete_messages(&tx, first + 3).unwrap(), 2);
    tx.commit().unwrap();
    assert_eq!(
        counts(minute),
        [None, None, None, None, None, None, s(first + 2)]
    );
    assert_eq!(counts(minute + 1)[0], s(1));
    consistent(&db);

    let reader = Reader::open(&dir.db()).unwrap();
    let (counted, uncounted) = reader.minute_counts(None, None).unwrap();
    assert_eq!(counted.messages, 1);
    assert_eq!(counted.malformed, 1);
    assert_eq!(
        uncounted,
        vec![
            (None, Some(start + NS_PER_MINUTE)),
            (Some(start + 2 * NS_PER_MINUTE), None)
        ]
    );
}

/// References to interned rows that do not resolve: none may be left after
/// retention deletes interned rows.
fn dangling_references(db: &Connection) -> i64 {
    let checks = [
        ("messages", "qname_id", "names"),
        ("messages", "answer_set_id", "answer_sets"),
        ("messages", "process_id", "processes"),
        ("messages", "for_process_id", "processes"),
        ("messages", "via_process_id", "processes"),
        ("messages", "endpoint_id", "endpoints"),
        ("extra_questions", "qname_id", "names"),
        ("lookups", "qname_id", "names"),
        ("lookups", "process_id", "processes"),
        ("resolutions", "rdata_id", "rdata"),
        ("resolutions", "name_id", "names"),
        ("resolutions", "qname_id", "names"),
        ("resolutions", "process_id", "processes"),
        ("resolutions", "endpoint_id", "endpoints"),
        ("cnames", "name_id", "names"),
        ("cnames", "target_id", "names"),
        ("delegations", "qname_id", "names"),
        ("delegations", "resolver_process_id", "processes"),
        ("delegations", "client_process_id", "processes"),
        ("libc_lookups", "qname_id", "names"),
        ("libc_lookups", "process_id", "processes"),
    ];
    let mut dangling = 0;
    for (table, column, target) in checks {
        dangling += count(
            db,
            &format!(
                "SELECT count(*) FROM {table} WHERE {column} IS NOT NULL AND {column} != 0 \
                 AND {column} NOT IN (SELECT id FROM {target})"
            ),
        );
    }
    // Answer sets hold [section, name id, type, class, rdata id] records.
    dangling += count(
        db,
        "SELECT count(*) FROM answer_sets a, json_each(a.records) r \
         WHERE json_extract(r.value, '$[1]') NOT IN (SELECT id FROM names) \
            OR json_extract(r.value, '$[4]') NOT IN (SELECT id FROM rdata)",
    );
    dangling
}

/// Interned rows that only deleted rows referred to go with them; the rows still
/// referred to stay, every reference left resolves, and a value seen again after
/// its row went is stored anew.
#[test]
fn interned_rows_nothing_refers_to_any_more_go() {
    let dir = TempDir::new("interned");
    let old = now_ns() - 40 * DAY;
    let recent = now_ns() - DAY;
    let mut store = open_quiet(&dir.db());
    store.start_run("{}").unwrap();
    let exchange = |time: i64, name: &str, data: &str, pid: u32, server: &str| {
        let mut q = query(time, name, "A", 7);
        q.process = Arc::new(process(pid, "client"));
        q.dst = server.parse().unwrap();
        let mut r = response(&q, 2, "NOERROR", vec![rr(name, "A", 60, data)], vec![]);
        r.process = Arc::clone(&q.process);
        r.src = q.dst;
        [q, r]
    };
    let mut messages = Vec::new();
    // Only in the old days: a name, its address, a process, a server.
    messages.extend(exchange(
        old,
        "gone.example.",
        "192.0.2.66",
        6_600,
        "198.18.0.66",
    ));
    // Old and recent.
    messages.extend(exchange(
        old + 1,
        "kept.example.",
        "192.0.2.77",
        7_700,
        "198.18.0.77",
    ));
    messages.extend(exchange(
        recent,
        "kept.example.",
        "192.0.2.77",
        7_700,
        "198.18.0.77",
    ));
    messages.extend(exchange(
        recent + 1,
        "new.example.",
        "192.0.2.88",
        8_800,
        "198.18.0.88",
    ));
    // The old exchange is committed (a chunk) apart from the recent ones, as a
    // recorder running then would have.
    for message in messages {
        if message.time_ns == recent {
            store.commit_all();
        }
        store.write(message).unwrap();
    }
    store.finish("signal").unwrap();
    drop(store);
    let db = inspect(&dir.db());
    let has = |sql: &str, value: &dyn rusqlite::ToSql| -> bool {
        db.query_row(sql, [value], |row| row.get::<_, i64>(0))
            .unwrap()
            > 0
    };
    let name = "SELECT count(*) FROM names WHERE name = ?1";
    let rdata = "SELECT count(*) FROM rdata WHERE data = ?1";
    let pid = "SELECT count(*) FROM processes WHERE pid = ?1";
    let server = "SELECT count(*) FROM endpoints WHERE remote_ip = ?1";
    let ip = |text: &str| match text.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    assert!(has(name, &"gone.example.") && has(rdata, &"192.0.2.66"));
    assert!(has(pid, &6_600) && has(server, &ip("198.18.0.66")));
    let answer_sets = count(&db, "SELECT count(*) FROM answer_sets");
    assert_eq!(answer_sets, 3);

    let mut store = open_retaining_30_days(&dir.db(), 1_000);
    let mut interned = 0;
    for _ in 0..100 {
        let step = store.retention_now().unwrap();
        interned += step.interned;
        if step.messages == 0 && step.facts == 0 && step.interned == 0 && !step.sweeping {
            break;
        }
    }
    assert_eq!(dangling_references(&db), 0);
    assert!(!has(name, &"gone.example.") && !has(rdata, &"192.0.2.66"));
    assert!(!has(pid, &6_600) && !has(server, &ip("198.18.0.66")));
    for kept in ["kept.example.", "new.example."] {
        assert!(has(name, &kept), "{kept}");
    }
    assert!(has(rdata, &"192.0.2.77") && has(pid, &7_700) && has(server, &ip("198.18.0.77")));
    assert_eq!(count(&db, "SELECT count(*) FROM answer_sets"), 2);
    // A name, its address, an answer set, an endpoint, and two process rows: the
    // sending thread's and the thread-less one the facts count under.
    assert_eq!(interned, 6);
    assert_eq!(store.stats().interned_expired, 6);
    assert_eq!(
        count(&db, "SELECT count(*) FROM processes WHERE pid = 6600"),
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM messages"), 4);

    // Seen again: stored anew, and read back whole.
    for message in exchange(
        now_ns(),
        "gone.example.",
        "192.0.2.66",
        6_600,
        "198.18.0.66",
    ) {
        store.write(message).unwrap();
    }
    store.finish("signal").unwrap();
    assert!(has(name, &"gone.example.") && has(pid, &6_600));
    assert_eq!(dangling_references(&db), 0);
    let reader = Reader::open(&dir.db()).unwrap();
    let mut names = Vec::new();
    reader
        .messages(
            &MessageQuery::ids(IdRange {
                first: 0,
                last: i64::MAX,
            }),
            |record| -> Result<_, ReadError> {
                let dns = record.dns.expect("decoded");
                names.push((dns.questions[0].name.clone(), record.process.pid));
                Ok(ControlFlow::Continue(()))
            },
        )
        .unwrap();
    assert_eq!(names.len(), 6);
    assert_eq!(names[4], ("gone.example.".to_owned(), Some(6_600)));
}

#[test]
fn durations_and_sizes_parse() {
    let day = 24 * 3_600;
    assert_eq!(
        parse_duration("30d").unwrap(),
        Duration::from_secs(30 * day)
    );
    assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
    assert_eq!(parse_duration("2w").unwrap(), Duration::from_secs(14 * day));
    assert_eq!(parse_duration("P7D").unwrap(), Duration::from_secs(7 * day));
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("-1d").is_err());
    assert_eq!(parse_retain("0").unwrap(), None);
    assert_eq!(
        parse_retain("30d").unwrap(),
        Some(Duration::from_secs(30 * day))
    );
    assert_eq!(parse_size("0").unwrap(), None);
    assert_eq!(parse_size("4096").unwrap(), Some(4096));
    assert_eq!(parse_size("500M").unwrap(), Some(500 << 20));
    assert_eq!(parse_size("2G").unwrap(), Some(2 << 30));
    assert_eq!(parse_size("2GiB").unwrap(), Some(2 << 30));
    assert_eq!(parse_size("10k").unwrap(), Some(10 << 10));
    assert!(parse_size("2X").is_err());
    assert!(parse_size("G").is_err());
    assert!(parse_size("99999999999T").is_err());
}
