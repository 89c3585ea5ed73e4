//! Opening: schema upgrades keep data; files that are not ours are left alone.

use std::os::unix::fs::PermissionsExt;

use rusqlite::Connection;

use super::{fixtures::*, writer::open_quiet};
use crate::{
    pipeline::Sink,
    store::{
        MIGRATION_FILES, MIGRATIONS, StoreError, open_for_writing,
        schema::{APPLICATION_ID, NS_PER_MINUTE, SCHEMA_VERSION},
    },
};

fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// The indexes of `table`, by name.
fn indexes(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare(
        "SELECT name FROM sqlite_schema WHERE tbl_name = ?1 AND type = 'index' ORDER BY name",
    )
    .unwrap()
    .query_map([table], |r| r.get(0))
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn schema_version_matches_the_migration_files() {
    assert_eq!(MIGRATION_FILES.len(), SCHEMA_VERSION as usize);
    MIGRATIONS.validate().unwrap();
}

/// A store at every earlier schema version, with rows written the way that
/// version allowed, upgrades to the latest and keeps them.
#[test]
fn upgrading_from_each_earlier_schema_keeps_the_data() {
    let latest = SCHEMA_VERSION as usize;
    for from in 0..latest {
        let dir = TempDir::new("upgrade");
        let mut old = Connection::open(dir.db()).unwrap();
        MIGRATIONS.to_version(&mut old, from).unwrap();
        if from >= 1 {
            // Columns of schema 1: every later schema must keep these readable.
            old.execute_batch(
                "INSERT INTO runs (id, started_ns, version, config) VALUES (1, 10, '0.0.1', '{}');
                 INSERT INTO names (id, name) VALUES (1, 'old.example.');
                 INSERT INTO processes (id, pid, uid, gid, comm, key) VALUES (1, 9, 0, 0, 'old', 'old');
                 INSERT INTO endpoints (id, local_ip, remote_ip, ifindex) VALUES (1, x'7f000001', x'7f000035', 1);
                 INSERT INTO time_index (minute, first_id, last_id) VALUES (0, 1, 1);
                 INSERT INTO lookups VALUES (1, 0, 0, 1, 1, -1, 1, 0, 0, 0, 10, 10);",
            )
            .unwrap();
            // The same message in the layout of its schema.
            old.execute_batch(if from >= 6 {
                // Compact (schema 6): remote port 53 in `bits`, local port in `ports`.
                "INSERT INTO messages (id, time_ns, run_id, bits, process_id, endpoint_id,
                     socket_cookie, ports, qname_id, qtype, message_len)
                     VALUES (1, 10, 1, 16384, 1, 1, 5, 40000, 1, 1, 30);"
            } else {
                "INSERT INTO messages (id, time_ns, run_id, flags, process_id, endpoint_id, local_port,
                     remote_port, socket_cookie, qname_id, qtype, message_len)
                     VALUES (1, 10, 1, 0, 1, 1, 40000, 53, 5, 1, 1, 30);"
            })
            .unwrap();
            if from >= 11 {
                // A schema-11 writer marks the interned rows it uses.
                old.execute_batch(
                    "UPDATE names SET last_hour = 0; UPDATE processes SET last_hour = 0;
                     UPDATE endpoints SET last_hour = 0;",
                )
                .unwrap();
            }
        }
        drop(old);

        let mut store = open_quiet(&dir.db());
        store.start_run("{}").unwrap();
        store.write(query(t0(), "old.example.", "A", 1)).unwrap();
        store.write(query(t0(), "new.example.", "A", 2)).unwrap();
        store.finish("signal").unwrap();
        drop(store);

        let db = inspect(&dir.db());
        assert_eq!(user_version(&db), latest as i64, "from {from}");
        let expected_old = i64::from(from >= 1);
        assert_eq!(
            count(&db, "SELECT count(*) FROM messages WHERE time_ns = 10"),
            expected_old
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM lookups WHERE hour = 0"),
            expected_old
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM messages"),
            2 + expected_old
        );
        // The old name is reused, not duplicated.
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM names WHERE name = 'old.example.'"
            ),
            1
        );
        if from >= 1 {
            assert_eq!(
                count(&db, "SELECT count(*) FROM messages WHERE qname_id = 1"),
                2
            );
            assert_eq!(
                count(&db, "SELECT count(*) FROM processes WHERE key = 'old'"),
                1
            );
            // The old minute is not counted (schema 10): readers scan it.
            assert_eq!(
                count(
                    &db,
                    "SELECT count(*) FROM time_index WHERE minute = 0 AND messages IS NULL"
                ),
                1
            );
        }
        // Every interned row has its last hour (schema 11): none is kept forever.
        for table in ["names", "rdata", "answer_sets", "processes", "endpoints"] {
            assert_eq!(
                count(
                    &db,
                    &format!("SELECT count(*) FROM {table} WHERE last_hour IS NULL")
                ),
                0,
                "{table} from {from}"
            );
        }
        let new_minute = t0().div_euclid(NS_PER_MINUTE);
        assert_eq!(
            count(
                &db,
                &format!("SELECT messages FROM time_index WHERE minute = {new_minute}")
            ),
            2
        );
    }
}

/// Schema 7 counts an answered query on its response's row: the upgrade takes the
/// answered queries off the old query rows, and drops the rows left with none.
#[test]
fn upgrading_to_schema_7_leaves_only_unanswered_queries_on_query_rows() {
    let dir = TempDir::new("answered");
    let mut old = Connection::open(dir.db()).unwrap();
    MIGRATIONS.to_version(&mut old, 6).unwrap();
    // (qname, rcode, count, paired): name 1 had 5 queries, 3 answered NOERROR;
    // name 2 had 2 queries, both answered NXDOMAIN.
    old.execute_batch(
        "INSERT INTO lookups VALUES (1, 0, 0, 1, 1, -1, 5, 3, 30, 20, 10, 90);
         INSERT INTO lookups VALUES (1, 0, 0, 1, 1, 0, 3, 3, 30, 20, 15, 95);
         INSERT INTO lookups VALUES (1, 0, 0, 2, 1, -1, 2, 2, 8, 5, 10, 20);
         INSERT INTO lookups VALUES (1, 0, 0, 2, 1, 3, 2, 2, 8, 5, 12, 25);",
    )
    .unwrap();
    MIGRATIONS.to_version(&mut old, 7).unwrap();
    let rows: Vec<(i64, i64, i64, i64, i64)> = old
        .prepare(
            "SELECT qname_id, rcode, count, paired, latency_sum_ns FROM lookups \
             ORDER BY qname_id, rcode",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![(1, -1, 2, 0, 0), (1, 0, 3, 3, 30), (2, 3, 2, 2, 8)]
    );
    assert_eq!(
        indexes(&old, "resolutions"),
        ["resolutions_hour", "resolutions_name"]
    );
    // Schema 8: retention walks the key instead of an index on hour.
    MIGRATIONS.to_latest(&mut old).unwrap();
    assert_eq!(indexes(&old, "resolutions"), ["resolutions_name"]);
}

/// Schema 9: the libc calls kept before become `lookups` rows of role 2, under
/// the caller's thread-less process row where there is one, an hour a row.
#[test]
fn schema_9_counts_earlier_libc_calls_as_lookups() {
    let dir = TempDir::new("libc-facts");
    let mut old = Connection::open(dir.db()).unwrap();
    MIGRATIONS.to_version(&mut old, 8).unwrap();
    let hour = 3_600_000_000_000_i64;
    old.execute_batch(&format!(
        "INSERT INTO names (id, name) VALUES (1, 'github.com.'), (2, 'example.com.');
         -- curl's thread (2) and curl without its thread (3); wget (4) has no such row.
         INSERT INTO processes (id, pid, tid, uid, gid, comm, exe, thread, key) VALUES
             (2, 812, 813, 1000, 1000, 'curl', '/usr/bin/curl', 'worker', 'a'),
             (3, 812, NULL, 1000, 1000, 'curl', '/usr/bin/curl', NULL, 'b'),
             (4, 900, 900, 0, 0, 'wget', NULL, 'wget', 'c');
         INSERT INTO libc_lookups (time_ns, run_id, process_id, qname_id, function) VALUES
             ({a}, 1, 2, 1, 1), ({b}, 1, 2, 1, 1), ({c}, 1, 2, 1, 1),
             ({a}, 1, 4, 2, 2);",
        a = 5 * hour + 10,
        b = 5 * hour + 20,
        c = 6 * hour + 5,
    ))
    .unwrap();
    MIGRATIONS.to_latest(&mut old).unwrap();
    // (process_id, hour, qname_id, qtype, rcode, count, first_ns, last_ns)
    let rows: Vec<[i64; 8]> = old
        .prepare(
            "SELECT process_id, hour, qname_id, qtype, rcode, count, first_ns, last_ns \
             FROM lookups WHERE role = 2 ORDER BY process_id, hour",
        )
        .unwrap()
        .query_map([], |r| {
            let mut row = [0; 8];
            for (index, value) in row.iter_mut().enumerate() {
                *value = r.get(index)?;
            }
            Ok(row)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            [3, 5, 1, 1, -1, 2, 5 * hour + 10, 5 * hour + 20],
            [3, 6, 1, 1, -1, 1, 6 * hour + 5, 6 * hour + 5],
            [4, 5, 2, 2, -1, 1, 5 * hour + 10, 5 * hour + 10],
        ]
    );
}

#[test]
fn reopening_keeps_rows_and_the_version() {
    let dir = TempDir::new("reopen");
    for round in 1..=3 {
        let mut store = open_quiet(&dir.db());
        store.write(query(t0(), "a.example.", "A", round)).unwrap();
        store.finish("signal").unwrap();
        drop(store);
        let db = inspect(&dir.db());
        assert_eq!(
            count(&db, "SELECT count(*) FROM messages"),
            i64::from(round)
        );
        assert_eq!(count(&db, "SELECT count(*) FROM names"), 1);
        assert_eq!(user_version(&db), i64::from(SCHEMA_VERSION));
        let id: i32 = db
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new("newer");
    drop(open_quiet(&dir.db()));
    let newer = i64::from(SCHEMA_VERSION) + 1;
    inspect(&dir.db())
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let error = open_for_writing(dir.db())
        .err()
        .expect("a newer schema must be refused");
    assert!(
        matches!(error, StoreError::TooNew { found, .. } if found == newer),
        "{error}"
    );
    assert!(error.to_string().contains("newer"), "{error}");
    assert_eq!(user_version(&inspect(&dir.db())), newer);
}

#[test]
fn a_file_that_is_not_sqlite_is_left_alone() {
    let dir = TempDir::new("notdb");
    let contents = b"this is somebody's notes, not a database\n".repeat(100);
    std::fs::write(dir.db(), &contents).unwrap();
    let error = open_for_writing(dir.db()).err().expect("must refuse");
    assert!(matches!(error, StoreError::NotADatabase { .. }), "{error}");
    assert!(
        error.to_string().contains("not a SQLite database"),
        "{error}"
    );
    assert_eq!(std::fs::read(dir.db()).unwrap(), contents);
    assert!(!dir.path().join("dnsq.db-wal").exists());
    // A short file too.
    std::fs::write(dir.db(), b"x").unwrap();
    assert!(matches!(
        open_for_writing(dir.db()),
        Err(StoreError::NotADatabase { .. })
    ));
    assert_eq!(std::fs::read(dir.db()).unwrap(), b"x");
}

#[test]
fn another_programs_database_is_refused() {
    let dir = TempDir::new("foreign");
    let other = Connection::open(dir.db()).unwrap();
    other
        .execute_batch("CREATE TABLE bookmarks (url TEXT)")
        .unwrap();
    drop(other);
    let error = open_for_writing(dir.db()).err().expect("must refuse");
    assert!(matches!(error, StoreError::Foreign { .. }), "{error}");
    assert_eq!(
        count(&inspect(&dir.db()), "SELECT count(*) FROM sqlite_schema"),
        1
    );

    let dir = TempDir::new("foreign-id");
    let other = Connection::open(dir.db()).unwrap();
    other.pragma_update(None, "application_id", 12345).unwrap();
    other.pragma_update(None, "user_version", 1).unwrap();
    drop(other);
    assert!(matches!(
        open_for_writing(dir.db()),
        Err(StoreError::Foreign { .. })
    ));
}

#[test]
fn new_files_and_directories_are_private() {
    let dir = TempDir::new("modes");
    let db = dir.path().join("var/lib/dnsq/dnsq.db");
    drop(open_quiet(&db));
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let parent = db.parent().unwrap();
    assert_eq!(mode(parent) & !0o750, 0, "directory {:o}", mode(parent));
    assert_eq!(mode(&db) & !0o640, 0, "file {:o}", mode(&db));
    for suffix in ["-wal", "-shm"] {
        let side = parent.join(format!("dnsq.db{suffix}"));
        if side.exists() {
            assert_eq!(mode(&side) & !0o640, 0, "{suffix} {:o}", mode(&side));
        }
    }
}

#[test]
fn an_impossible_path_is_a_clear_error() {
    let error = open_for_writing("/proc/no-such-dir/dnsq.db")
        .err()
        .expect("must fail");
    assert!(matches!(error, StoreError::CreateDir { .. }), "{error}");
    assert!(error.to_string().contains("/proc/no-such-dir"), "{error}");
}

/// A schema 12 store's libc calls read back without a return, before the
/// upgrade (no such columns) and after it (NULLs).
#[test]
fn calls_stored_before_schema_13_read_back_without_a_return() {
    use std::ops::ControlFlow;

    use crate::store::read::{CallQuery, ReadError, Reader};

    let dir = TempDir::new("calls-12");
    let mut old = Connection::open(dir.db()).unwrap();
    MIGRATIONS.to_version(&mut old, 12).unwrap();
    old.execute_batch(
        "INSERT INTO names (id, name) VALUES (1, 'old.example.');
         INSERT INTO processes (id, pid, uid, gid, comm, key) VALUES (1, 9, 0, 0, 'old', 'old');
         INSERT INTO libc_lookups (id, time_ns, run_id, process_id, qname_id, function)
             VALUES (1, 10, 1, 1, 1, 1);",
    )
    .unwrap();
    drop(old);
    for upgraded in [false, true] {
        if upgraded {
            let mut store = open_quiet(&dir.db());
            store.start_run("{}").unwrap();
            store.finish("signal").unwrap();
        }
        let reader = Reader::open(&dir.db()).unwrap();
        assert_eq!(
            reader.schema_version(),
            if upgraded { SCHEMA_VERSION } else { 12 }
        );
        let mut calls = Vec::new();
        reader
            .libc_calls(&CallQuery::default(), |call| -> Result<_, ReadError> {
                calls.push(call);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(calls.len(), 1, "upgraded {upgraded}");
        let call = &calls[0].record;
        assert_eq!(
            (
                call.name.as_str(),
                call.function.as_str(),
                call.process.pid,
                call.time_ns
            ),
            ("old.example.", "getaddrinfo", Some(9), 10),
            "upgraded {upgraded}"
        );
        assert!(call.answer.is_none(), "upgraded {upgraded}");
    }
}

/// Schema 14 stores the fact tables' first and last times as offsets: the
/// upgrade keeps every time exactly, also one outside its row's hour (a
/// response counted under its query's hour; a clock set back).
#[test]
fn fact_times_read_back_exactly_after_schema_14() {
    let dir = TempDir::new("fact-offsets");
    let mut old = Connection::open(dir.db()).unwrap();
    MIGRATIONS.to_version(&mut old, 13).unwrap();
    let hour = 3_600_000_000_000_i64;
    let h = 490_000_i64;
    // (first_ns, last_ns) of rows of hour h.
    let times = [
        (h * hour + 5, h * hour + 5),
        (h * hour + 10, (h + 1) * hour + 7),
        (h * hour - 3, h * hour + 1),
    ];
    for (i, (first, last)) in times.iter().enumerate() {
        old.execute_batch(&format!(
            "INSERT INTO lookups VALUES (1, {h}, 0, {i}, 1, 0, 1, 1, 9, 9, {first}, {last});
             INSERT INTO resolutions VALUES ({i}, {h}, 1, 1, 1, 1, 1, {first}, {last}, 2);
             INSERT INTO delegations VALUES (1, {h}, {i}, 1, 2, 1, 0, {first}, {last});"
        ))
        .unwrap();
    }
    MIGRATIONS.to_latest(&mut old).unwrap();
    for (table, key) in [
        ("lookups", "qname_id"),
        ("resolutions", "rdata_id"),
        ("delegations", "qname_id"),
    ] {
        let read: Vec<(i64, i64)> = old
            .prepare(&format!(
                "SELECT first_ns, last_ns FROM {table} WHERE hour = {h} ORDER BY {key}"
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(read, times, "{table}");
    }
    // The indexes are rebuilt with their tables (and schema 16 drops
    // `lookups_hour`).
    assert_eq!(indexes(&old, "lookups"), ["lookups_process"]);
    assert_eq!(indexes(&old, "resolutions"), ["resolutions_name"]);
    assert!(indexes(&old, "delegations").is_empty());
}
