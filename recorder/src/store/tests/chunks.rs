//! The message log of schema 15: messages stored as rows before it and packed
//! into chunks after it read as one log.

use std::{collections::HashSet, ops::ControlFlow};

use super::{fixtures::*, writer::open_batched};
use crate::{
    pipeline::Sink,
    store::{
        chunk::{chunks_to_rows, unpack_messages},
        read::{IdRange, MessageQuery, ProcessFilter, ReadError, Reader},
        retention::delete_messages,
    },
};

const MS: i64 = 1_000_000;

/// 60 queries, 7 to a chunk; the chunks holding ids 1..=21 then become rows of
/// `messages`, as a recorder of schema 14 wrote them before the upgrade.
fn rows_then_chunks(dir: &TempDir) {
    let mut store = open_batched(&dir.db(), 7);
    store.start_run("{}").unwrap();
    for i in 0..60 {
        let name = format!("n{i}.example.");
        store
            .write(query(t0() + i * MS, &name, "A", i as u16))
            .unwrap();
    }
    store.finish("signal").unwrap();
    drop(store);
    let conn = inspect(&dir.db());
    chunks_to_rows(&conn, 21).unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM main.messages"), 21);
    assert_eq!(count(&conn, "SELECT count(*) FROM main.message_chunks"), 6);
}

/// (id, first question's name) of the messages `query` reads, stopping after
/// `most`.
fn read(reader: &Reader, query: &MessageQuery<'_>, most: usize) -> Vec<(i64, String)> {
    let mut seen = Vec::new();
    reader
        .message_rows(query, |row| -> Result<_, ReadError> {
            let name = row.questions().next().map(|q| q.name.to_owned());
            seen.push((row.id(), name.unwrap_or_default()));
            Ok(if seen.len() == most {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
    seen
}

fn expected(ids: impl Iterator<Item = i64>) -> Vec<(i64, String)> {
    ids.map(|id| (id, format!("n{}.example.", id - 1)))
        .collect()
}

#[test]
fn rows_from_before_schema_15_and_chunks_read_as_one_log() {
    let dir = TempDir::new("chunks-read");
    rows_then_chunks(&dir);
    let reader = Reader::open(&dir.db()).unwrap();
    assert_eq!(reader.max_id().unwrap(), Some(60));
    let all = reader.id_range(None, None).unwrap().unwrap();
    assert_eq!((all.first, all.last), (1, 60));
    let between = |first, last, newest_first| MessageQuery {
        newest_first,
        ..MessageQuery::ids(IdRange { first, last })
    };
    assert_eq!(read(&reader, &between(1, 60, false), 100), expected(1..=60));
    assert_eq!(
        read(&reader, &between(1, 60, true), 100),
        expected((1..=60).rev())
    );
    // Across the rows' end and chunk boundaries, from inside chunks.
    for (first, last) in [(18, 25), (21, 22), (23, 40), (2, 5), (59, 70)] {
        assert_eq!(
            read(&reader, &between(first, last, false), 100),
            expected(first..=last.min(60)),
            "{first}..={last}"
        );
        assert_eq!(
            read(&reader, &between(first, last, true), 100),
            expected((first..=last.min(60)).rev()),
            "{first}..={last} newest first"
        );
    }
    // Stopping: in a chunk, and in the rows.
    assert_eq!(
        read(&reader, &between(1, 60, true), 10),
        expected((51..=60).rev())
    );
    assert_eq!(read(&reader, &between(1, 60, false), 10), expected(1..=10));
    // Times filter as before: the 30th to the 44th query.
    let window = MessageQuery {
        since_ns: Some(t0() + 29 * MS),
        until_ns: Some(t0() + 44 * MS),
        ..MessageQuery::ids(all)
    };
    assert_eq!(read(&reader, &window, 100), expected(30..=44));
    let counts = reader
        .count_messages(all, Some(t0() + 10 * MS), None, None)
        .unwrap();
    assert_eq!(
        (counts.messages, counts.queries, counts.responses),
        (50, 50, 0)
    );
    assert_eq!(
        (counts.first_ns, counts.last_ns),
        (t0() + 10 * MS, t0() + 59 * MS)
    );
    // A process filter: in SQL over the rows, in Rust over the chunks.
    let conn = inspect(&dir.db());
    unpack_messages(&conn).unwrap();
    let process_ids: HashSet<i64> = conn
        .prepare("SELECT DISTINCT process_id FROM messages")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(process_ids.len(), 1);
    let only = |process_ids: HashSet<i64>| ProcessFilter {
        process_ids,
        socket_cgroup_ids: HashSet::from([7]),
    };
    for (filter, expected) in [(only(process_ids), 60), (only(HashSet::from([-5])), 0)] {
        let counts = reader
            .count_messages(all, None, None, Some(&filter))
            .unwrap();
        assert_eq!((counts.messages, counts.queries), (expected, expected));
    }
}

/// Retention deletes the rows first, then whole chunks: one that holds the cut
/// and newer messages too is kept.
#[test]
fn retention_deletes_rows_then_whole_chunks() {
    let dir = TempDir::new("chunks-delete");
    rows_then_chunks(&dir);
    let conn = inspect(&dir.db());
    let tx = conn.unchecked_transaction().unwrap();
    // 24 is in the chunk 22..=28.
    assert_eq!(delete_messages(&tx, 24).unwrap(), 21);
    assert_eq!(delete_messages(&tx, 28).unwrap(), 7);
    tx.commit().unwrap();
    let reader = Reader::open(&dir.db()).unwrap();
    let all = reader.id_range(None, None).unwrap().unwrap();
    assert_eq!((all.first, all.last), (29, 60));
    assert_eq!(
        read(&reader, &MessageQuery::ids(all), 100),
        expected(29..=60)
    );
}
