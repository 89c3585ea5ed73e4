//! The store on its own thread: the same rows and the same counts as the store
//! called directly; where [`StoreRunner`] puts it.

use std::time::Duration;

use super::{fixtures::*, writer::open_batched};
use crate::{
    pipeline::Sink,
    record::{LookupRecord, ProcessInfo},
    store::{Background, Placement, Store, StoreOptions, StoreRunner, open_for_writing},
};

fn spawn(path: &std::path::Path, batch_size: usize, max_pending: usize) -> Background {
    let mut store = open_for_writing(path)
        .unwrap()
        .with_options(StoreOptions {
            batch_size,
            max_pending,
            batch_window: Duration::from_secs(3_600),
            retain: None,
            ..StoreOptions::default()
        })
        .unwrap();
    store.start_run("{}").unwrap();
    Background::spawn(store).unwrap()
}

fn lookup(time_ns: i64) -> LookupRecord {
    LookupRecord {
        kind: "lookup".into(),
        time: crate::record::Rfc3339(time_ns),
        time_ns,
        function: "getaddrinfo".into(),
        name: "example.com".into(),
        process: ProcessInfo {
            pid: Some(7),
            comm: Some("curl".into()),
            ..ProcessInfo::default()
        }
        .into(),
        answer: None,
    }
}

fn open(path: &std::path::Path, batch_size: usize) -> Store {
    let mut store = open_batched(path, batch_size);
    store.start_run("{}").unwrap();
    store
}

/// Hands the same records to `sink`; `stats` reads its counts.
fn feed(sink: &mut impl Sink) {
    for i in 0..1_000u16 {
        let time = t0() + i64::from(i) * 1_000;
        sink.write(query(time, "www.example.com.", "A", i)).unwrap();
        if i % 100 == 0 {
            sink.write_lookup(lookup(time)).unwrap();
        }
    }
}

#[test]
fn the_same_rows_and_counts_as_the_store_itself() {
    let direct_dir = TempDir::new("direct");
    let mut direct = open(&direct_dir.db(), 64);
    feed(&mut direct);
    let dir = TempDir::new("background");
    let mut background = Background::spawn(open(&dir.db(), 64)).unwrap();
    feed(&mut background);
    // Exact at once: everything handed over has reached the store.
    assert_eq!(background.stats(), direct.stats());
    assert!(background.stats().committed > 0);

    background.record_counters(&serde_json::json!({"marker": 1}));
    background.commit_all();
    direct.commit_all();
    assert_eq!(background.stats(), direct.stats());
    let stats = background.finish("signal").unwrap();
    assert_eq!(stats, direct.finish("signal").unwrap());
    assert_eq!((stats.pending, stats.dropped), (0, 0));
    let db = inspect(&dir.db());
    assert_eq!(count(&db, "SELECT count(*) FROM messages"), 1_000);
    assert_eq!(count(&db, "SELECT count(*) FROM libc_lookups"), 10);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM counters WHERE \"values\" LIKE '%marker%'"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM runs WHERE stop_reason = 'signal'"
        ),
        1
    );
}

#[test]
fn a_dropped_handle_stops_the_thread_and_keeps_what_it_had() {
    let dir = TempDir::new("background-drop");
    {
        let mut store = spawn(&dir.db(), 1_000_000, 100_000);
        for i in 0..5u16 {
            store
                .write(query(t0() + i64::from(i), "a.example.", "A", i))
                .unwrap();
        }
        store.flush().unwrap();
    }
    assert_eq!(
        count(&inspect(&dir.db()), "SELECT count(*) FROM messages"),
        5
    );
}

/// A store on its own thread hands its committed records back to the pipeline's
/// thread to be dropped there; a store called directly drops them itself.
#[test]
fn committed_records_are_kept_for_their_thread_only_when_asked() {
    let dir = TempDir::new("spent");
    let mut store = open(&dir.db(), 64);
    feed(&mut store);
    store.commit_all();
    assert_eq!(store.stats().committed, 1_000);
    assert!(store.take_spent().is_empty());
    store.keep_spent();
    let times: Vec<i64> = (0..200).map(|i| t0() + 10_000_000 + i * 1_000).collect();
    for (i, time) in times.iter().enumerate() {
        store
            .write(query(*time, "www.example.com.", "A", i as u16))
            .unwrap();
    }
    // Three batches of 64 are committed by now; the last 8 records wait.
    let spent: Vec<i64> = store.take_spent().iter().map(|r| r.time_ns).collect();
    assert_eq!(spent, times[..192]);
    assert!(store.take_spent().is_empty());
    store.commit_all();
    let spent: Vec<i64> = store.take_spent().iter().map(|r| r.time_ns).collect();
    assert_eq!(spent, times[192..]);
    assert_eq!(store.stats().committed, 1_000 + 200);
}

#[test]
fn auto_gives_the_store_a_thread_only_beyond_two_cpus() {
    assert!(!Placement::Auto.own_thread(1));
    assert!(!Placement::Auto.own_thread(2));
    assert!(Placement::Auto.own_thread(3));
    assert!(Placement::Yes.own_thread(1));
    assert!(!Placement::No.own_thread(64));
    // The run config keeps the setting by the name it was given.
    for (placement, name) in [
        (Placement::Auto, "auto"),
        (Placement::Yes, "yes"),
        (Placement::No, "no"),
    ] {
        assert_eq!(serde_json::to_value(placement).unwrap(), name);
    }
}

/// Inline or on a thread, the runner stores the same rows with the same counts.
#[test]
fn a_runner_stores_the_same_on_either_thread() {
    let mut finished = Vec::new();
    for own_thread in [false, true] {
        let dir = TempDir::new("runner");
        let mut runner = StoreRunner::start(open(&dir.db(), 64), own_thread).unwrap();
        assert_eq!(matches!(runner, StoreRunner::Thread(_)), own_thread);
        assert_eq!(runner.path(), dir.db());
        feed(&mut runner);
        runner.commit_all();
        let stats = runner.stats();
        assert_eq!(stats.committed, 1_000);
        assert_eq!(runner.finish("signal").unwrap(), stats);
        let db = inspect(&dir.db());
        finished.push((
            count(&db, "SELECT count(*) FROM messages"),
            count(&db, "SELECT count(*) FROM libc_lookups"),
            stats,
        ));
    }
    assert_eq!(finished[0], finished[1]);
    assert_eq!((finished[0].0, finished[0].1), (1_000, 10));
}
