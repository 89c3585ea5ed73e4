-- dnsq store, schema 10: each `time_index` minute also counts its messages, so
-- that `dnsq stats` adds up minutes instead of reading every message of the
-- window (8 s on a 10-million-message history; the counts take one row a minute).
--
--   messages      the minute's messages (by `time_ns`, as `minute` is)
--   queries       not malformed, QR clear
--   responses     not malformed, QR set
--   malformed     did not decode
--   queries_sent  queries a process sent (not received)
--   answered      responses a process received that were paired with its query
--   first_ns, last_ns   the minute's oldest and newest message time
--
-- NULL means "not counted": minutes written before schema 10 (the upgrade does
-- not read the old messages), and the minute retention has deleted part of.
-- The writer adds each batch's counts to the row, and NULL plus anything stays
-- NULL, so a minute is counted only when every message of it was. Readers
-- count NULL minutes from `messages`, as before.
ALTER TABLE time_index ADD COLUMN messages INTEGER;
ALTER TABLE time_index ADD COLUMN queries INTEGER;
ALTER TABLE time_index ADD COLUMN responses INTEGER;
ALTER TABLE time_index ADD COLUMN malformed INTEGER;
ALTER TABLE time_index ADD COLUMN queries_sent INTEGER;
ALTER TABLE time_index ADD COLUMN answered INTEGER;
ALTER TABLE time_index ADD COLUMN first_ns INTEGER;
ALTER TABLE time_index ADD COLUMN last_ns INTEGER;
