//! The writer when the database will not take writes: nothing fails upward,
//! records wait in memory (bounded), and are written once the database is back.

use std::time::{Duration, Instant};

use super::fixtures::*;
use crate::{
    pipeline::Sink,
    store::{Store, StoreError, StoreOptions, open_for_writing},
};

fn open(path: &std::path::Path, batch_size: usize, max_pending: usize) -> Store {
    open_for_writing(path)
        .unwrap()
        .with_options(StoreOptions {
            batch_size,
            max_pending,
            batch_window: Duration::from_millis(10),
            retain: None,
            ..StoreOptions::default()
        })
        .unwrap()
}

/// Flushes until nothing is pending (the writer backs off between attempts).
fn drain(store: &mut Store) {
    let start = Instant::now();
    while store.stats().pending > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still pending: {:?}",
            store.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
        store.flush().unwrap();
    }
}

#[test]
fn a_locked_database_delays_the_batch_and_loses_nothing() {
    let dir = TempDir::new("locked");
    let mut store = open(&dir.db(), 10, 100_000);
    let other = inspect(&dir.db());
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    for i in 0..15 {
        store
            .write(query(t0() + i, "a.example.", "A", i as u16))
            .unwrap();
    }
    let stats = store.stats();
    assert!(stats.failed_commits >= 1, "{stats:?}");
    assert_eq!((stats.committed, stats.pending, stats.dropped), (0, 15, 0));
    store.flush().unwrap();
    assert_eq!(store.stats().committed, 0);

    other.execute_batch("COMMIT").unwrap();
    drain(&mut store);
    let stats = store.finish("signal").unwrap();
    assert_eq!((stats.committed, stats.dropped), (15, 0));
    assert_eq!(count(&other, "SELECT count(*) FROM messages"), 15);
    // Names interned inside the rolled-back transactions are not left dangling.
    assert_eq!(
        count(
            &other,
            "SELECT count(*) FROM messages WHERE qname_id NOT IN (SELECT id FROM names)"
        ),
        0
    );
}

#[test]
fn a_full_backlog_drops_the_oldest_and_counts_them() {
    let dir = TempDir::new("backlog");
    let mut store = open(&dir.db(), 10, 50);
    let other = inspect(&dir.db());
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 0..80 {
        store
            .write(query(t0() + i, "a.example.", "A", i as u16))
            .unwrap();
    }
    let stats = store.stats();
    assert_eq!((stats.pending, stats.dropped), (50, 30));
    other.execute_batch("COMMIT").unwrap();
    drain(&mut store);
    let stats = store.finish("signal").unwrap();
    assert_eq!((stats.committed, stats.dropped), (50, 30));
    assert_eq!(
        count(
            &other,
            "SELECT min((ports >> (CASE WHEN bits & 49152 THEN 16 ELSE 32 END)) & 65535) FROM messages"
        ),
        30
    );
}

#[test]
fn a_full_disk_delays_the_batch() {
    let dir = TempDir::new("full");
    let mut store = open(&dir.db(), 100, 100_000);
    store.write(query(t0(), "warm.example.", "A", 1)).unwrap();
    store.flush().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    store.flush().unwrap();
    assert_eq!(store.stats().committed, 1);
    // SQLite's own cap stands in for a full disk: the same SQLITE_FULL. The
    // pages the migrations freed (schema 5 rebuilds two tables) would take a
    // batch first: none are left.
    store.connection().execute_batch("VACUUM").unwrap();
    let pages: i64 = store
        .connection()
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .unwrap();
    store
        .connection()
        .pragma_update(None, "max_page_count", pages)
        .unwrap();
    // Names long enough that a batch's new ones need a new page (its messages
    // alone pack into a few hundred bytes).
    for i in 0..1000 {
        let name = format!("host{i}-{}.example.", "x".repeat(40));
        store.write(query(t0() + i, &name, "A", i as u16)).unwrap();
    }
    let stats = store.stats();
    assert!(stats.failed_commits >= 1, "{stats:?}");
    assert_eq!(stats.committed, 1);
    store
        .connection()
        .pragma_update(None, "max_page_count", 1 << 30)
        .unwrap();
    drain(&mut store);
    let stats = store.finish("signal").unwrap();
    assert_eq!((stats.committed, stats.dropped), (1001, 0));
    assert_eq!(
        count(
            &inspect(&dir.db()),
            "SELECT count(DISTINCT qname_id) FROM messages"
        ),
        1001
    );
}

#[test]
fn finish_reports_what_it_could_not_write() {
    let dir = TempDir::new("unwritten");
    let mut store = open(&dir.db(), 1_000, 100_000);
    store.start_run("{}").unwrap();
    let other = inspect(&dir.db());
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 0..7 {
        store.write(query(t0() + i, "a.example.", "A", 1)).unwrap();
    }
    let error = store.finish("signal").unwrap_err();
    assert!(
        matches!(error, StoreError::Unwritten { count: 7, .. }),
        "{error}"
    );
    assert_eq!(store.stats().dropped, 7);
    other.execute_batch("COMMIT").unwrap();
}

#[test]
fn a_slow_reader_does_not_block_the_writer() {
    let dir = TempDir::new("reader");
    let mut store = open(&dir.db(), 10, 100_000);
    store.write(query(t0(), "a.example.", "A", 1)).unwrap();
    store.finish("x").unwrap();
    drop(store);
    let mut store = open(&dir.db(), 10, 100_000);
    let reader = inspect(&dir.db());
    reader.execute_batch("BEGIN").unwrap();
    assert_eq!(count(&reader, "SELECT count(*) FROM messages"), 1);
    for i in 0..100 {
        store.write(query(t0() + i, "b.example.", "A", 2)).unwrap();
    }
    let stats = store.stats();
    assert_eq!((stats.committed, stats.failed_commits), (100, 0));
    // The reader still sees its snapshot.
    assert_eq!(count(&reader, "SELECT count(*) FROM messages"), 1);
    reader.execute_batch("COMMIT").unwrap();
    assert_eq!(count(&reader, "SELECT count(*) FROM messages"), 101);
}

#[test]
fn a_second_writer_is_refused_while_the_first_lives() {
    let dir = TempDir::new("second-writer");
    let first = open_for_writing(dir.db()).unwrap();
    match open_for_writing(dir.db()) {
        Err(error @ StoreError::Locked { holder, .. }) => {
            assert_eq!(holder, Some(std::process::id()));
            assert!(error.to_string().contains("already writing"), "{error}");
        }
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second writer was let in"),
    }
    drop(first);
    open_for_writing(dir.db()).expect("the lock goes with the first writer");
}

#[test]
fn the_wal_files_outlive_the_writer_for_read_only_readers() {
    let dir = TempDir::new("persist-wal");
    let mut store = open_for_writing(dir.db()).unwrap();
    store.finish("test").unwrap();
    drop(store);
    let wal = dir.path().join("dnsq.db-wal");
    assert!(wal.exists(), "the -wal file was removed at close");
}

/// A call committed in one batch, its return in a later one whose write fails
/// once: the return still reaches the call's row at the next attempt.
#[test]
fn a_libc_call_keeps_its_return_across_a_failed_commit() {
    use std::sync::Arc;

    use crate::record::{LibcAnswer, LookupRecord, Rfc3339};

    let dir = TempDir::new("failed-return");
    let mut store = open(&dir.db(), 10, 100_000);
    let call = LookupRecord {
        kind: "lookup".into(),
        time: Rfc3339(t0()),
        time_ns: t0(),
        function: "getaddrinfo".into(),
        name: "a.example".into(),
        process: Arc::new(process(812, "curl")),
        answer: None,
    };
    store.write_lookup(call.clone()).unwrap();
    drain(&mut store);
    // The return's UPDATE fails, as a full disk or an I/O error would fail it.
    store
        .connection()
        .execute_batch(
            "CREATE TEMP TRIGGER fail_returns BEFORE UPDATE ON libc_lookups \
             BEGIN SELECT RAISE(ABORT, 'injected'); END",
        )
        .unwrap();
    store
        .write_lookup(LookupRecord {
            kind: "lookup_answer".into(),
            time: Rfc3339(t0() + 1_000),
            time_ns: t0() + 1_000,
            answer: Some(LibcAnswer {
                call_time_ns: t0(),
                latency_ns: 1_000,
                status: 0,
                error: None,
                addresses: vec!["192.0.2.1".parse().unwrap()],
                truncated: false,
            }),
            ..call
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    store.flush().unwrap();
    assert!(store.stats().failed_commits >= 1, "{:?}", store.stats());
    store
        .connection()
        .execute_batch("DROP TRIGGER fail_returns")
        .unwrap();
    drain(&mut store);
    store.finish("signal").unwrap();
    let returned: (i64, i64, String) = inspect(&dir.db())
        .query_row(
            "SELECT returned_ns, status, addresses FROM libc_lookups",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(returned, (t0() + 1_000, 0, "192.0.2.1".to_owned()));
}
