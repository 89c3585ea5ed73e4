-- dnsq store, schema 15: new messages are written in chunks, not a row each.
--
-- A `messages` row cost ~58 bytes on the benchmark's history (a record header
-- of 18, the time alone 8) and its INSERT a third of the recorder's user-side
-- CPU. A chunk holds the messages of consecutive ids `first_id..=last_id`
-- (those of one writer transaction, at most 1,024), their columns exactly as a
-- `messages` row has them (`id` aside), packed column by column and deflated:
-- ~13 bytes a message. The format is in recorder/src/store/chunk.rs.
--
-- Messages stored before the upgrade stay rows of `messages` (SQL cannot
-- repack them) and are read as before; retention deletes them first, as they
-- are the oldest. Every new message goes into a chunk, so every id in
-- `message_chunks` is above every id in `messages`. `malformed`,
-- `extra_questions` and `time_index` refer to message ids as before.
--
-- Reading a chunk needs dnsq (`dnsq export`, `dnsq tail`): plain SQL sees
-- the blob only.
CREATE TABLE message_chunks (
    last_id  INTEGER PRIMARY KEY,  -- the newest message's id
    first_id INTEGER NOT NULL,
    first_ns INTEGER NOT NULL,     -- the oldest message's time (retention)
    data     BLOB NOT NULL
);
