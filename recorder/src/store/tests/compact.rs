//! `dnsq-recorder compact`: VACUUM keeps every row, gives the free pages back,
//! and waits for no recorder.

use super::{fixtures::*, writer::open_quiet};
use crate::{
    pipeline::Sink,
    store::{StoreError, compact, retention::delete_messages},
};

#[test]
fn compacting_keeps_every_row_and_gives_the_free_pages_back() {
    let dir = TempDir::new("compact");
    let mut store = open_quiet(&dir.db());
    store.start_run("{}").unwrap();
    for i in 0..3_000u16 {
        let name = format!("host{i}.example.");
        let q = query(t0() + i64::from(i) * 1_000, &name, "A", i);
        let r = response(&q, 5, "NOERROR", cname_chain_answers(), vec![]);
        store.write(q).unwrap();
        store.write(r).unwrap();
    }
    store.finish("signal").unwrap();
    drop(store);
    // Retention's deletes leave free pages behind, as months of recording do.
    let conn = inspect(&dir.db());
    let deleted = delete_messages(&conn, i64::MAX).unwrap();
    assert!(deleted > 0);
    conn.execute_batch("DELETE FROM lookups; DELETE FROM resolutions")
        .unwrap();
    let free_pages = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap()
    };
    assert!(free_pages(&conn) > 0);
    let rows = table_rows(&conn);
    drop(conn);

    let done = compact(&dir.db()).unwrap();
    assert!(
        done.bytes_after < done.bytes_before,
        "{} -> {} bytes",
        done.bytes_before,
        done.bytes_after
    );
    let conn = inspect(&dir.db());
    assert_eq!(free_pages(&conn), 0);
    assert_eq!(table_rows(&conn), rows);
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn compacting_refuses_while_a_recorder_writes_and_a_missing_database() {
    let dir = TempDir::new("compact-locked");
    let store = open_quiet(&dir.db());
    assert!(matches!(compact(&dir.db()), Err(StoreError::Locked { .. })));
    drop(store);
    assert!(compact(&dir.db()).is_ok());

    let missing = dir.path().join("missing.db");
    assert!(matches!(compact(&missing), Err(StoreError::File { .. })));
    assert!(!missing.exists(), "compact created {}", missing.display());
}
