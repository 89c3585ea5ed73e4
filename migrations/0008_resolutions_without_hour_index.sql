-- dnsq store, schema 8: no index on `resolutions.hour`.
--
-- Only retention read it, and it cost ~25 bytes a row (a secondary index of a
-- WITHOUT ROWID table repeats the whole seven-column key): 8 bytes a message on
-- the benchmark's history. Retention now walks the table's own key, which starts
-- with (rdata_id, hour): an answer's old rows are one range (see
-- recorder/src/store/retention.rs).
DROP INDEX resolutions_hour;
