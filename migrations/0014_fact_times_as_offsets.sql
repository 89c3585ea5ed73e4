-- dnsq store, schema 14: the fact tables store their first and last times as
-- small offsets instead of two full nanosecond timestamps.
--
-- A timestamp of this century takes SQLite's 8-byte integer; `first_ns` and
-- `last_ns` were 16 bytes of each `lookups`, `resolutions` and `delegations` row,
-- a third of it. Every such row has an hour, and most rows (70-79 % on the
-- benchmark's history) count one message, so:
--
--   first_offset_ns  first_ns less the start of the row's hour (hour * 3600e9):
--                    6 bytes (under 2^47, ~39 hours);
--   span_ns          last_ns less first_ns: 0, which SQLite stores in no bytes
--                    at all, for a row seen once.
--
-- `first_ns` and `last_ns` stay, as VIRTUAL generated columns (computed when
-- read, nothing stored), so every reader's SQL is unchanged. The upgrade
-- rebuilds the three tables (in key order) and their indexes.

CREATE TABLE lookups_offsets (
    process_id    INTEGER NOT NULL,  -- 0 when unknown
    hour          INTEGER NOT NULL,
    role          INTEGER NOT NULL,
    qname_id      INTEGER NOT NULL,
    qtype         INTEGER NOT NULL,
    rcode         INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    -- Over the paired responses only.
    paired        INTEGER NOT NULL,
    latency_sum_ns INTEGER NOT NULL,
    latency_max_ns INTEGER NOT NULL,
    first_offset_ns INTEGER NOT NULL,
    span_ns       INTEGER NOT NULL,
    first_ns      INTEGER GENERATED ALWAYS AS (hour * 3600000000000 + first_offset_ns) VIRTUAL,
    last_ns       INTEGER GENERATED ALWAYS AS (hour * 3600000000000 + first_offset_ns + span_ns) VIRTUAL,
    PRIMARY KEY (qname_id, process_id, role, qtype, rcode, hour)
) WITHOUT ROWID;
INSERT INTO lookups_offsets (process_id, hour, role, qname_id, qtype, rcode, count, paired,
        latency_sum_ns, latency_max_ns, first_offset_ns, span_ns)
    SELECT process_id, hour, role, qname_id, qtype, rcode, count, paired, latency_sum_ns,
           latency_max_ns, first_ns - hour * 3600000000000, last_ns - first_ns
    FROM lookups ORDER BY qname_id, process_id, role, qtype, rcode, hour;
DROP TABLE lookups;
ALTER TABLE lookups_offsets RENAME TO lookups;
CREATE INDEX lookups_process ON lookups(process_id, hour);
CREATE INDEX lookups_hour ON lookups(hour);

CREATE TABLE resolutions_offsets (
    rdata_id      INTEGER NOT NULL,
    hour          INTEGER NOT NULL,
    rtype         INTEGER NOT NULL,
    -- The owner name of the record (the end of the CNAME chain).
    name_id       INTEGER NOT NULL,
    -- The name the application asked for.
    qname_id      INTEGER NOT NULL,
    process_id    INTEGER NOT NULL,  -- 0 when unknown
    endpoint_id   INTEGER NOT NULL,  -- the server
    first_offset_ns INTEGER NOT NULL,
    span_ns       INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    first_ns      INTEGER GENERATED ALWAYS AS (hour * 3600000000000 + first_offset_ns) VIRTUAL,
    last_ns       INTEGER GENERATED ALWAYS AS (hour * 3600000000000 + first_offset_ns + span_ns) VIRTUAL,
    PRIMARY KEY (rdata_id, hour, rtype, name_id, qname_id, process_id, endpoint_id)
) WITHOUT ROWID;
INSERT INTO resolutions_offsets (rdata_id, hour, rtype, name_id, qname_id, process_id,
        endpoint_id, first_offset_ns, span_ns, count)
    SELECT rdata_id, hour, rtype, name_id, qname_id, process_id, endpoint_id,
           first_ns - hour * 3600000000000, last_ns - first_ns, count
    FROM resolutions ORDER BY rdata_id, hour, rtype, name_id, qname_id, process_id, endpoint_id;
DROP TABLE resolutions;
ALTER TABLE resolutions_offsets RENAME TO resolutions;
CREATE INDEX resolutions_name ON resolutions(qname_id, process_id, hour);

CREATE TABLE delegations_offsets (
    resolver_process_id INTEGER NOT NULL,
    hour                INTEGER NOT NULL,
    qname_id            INTEGER NOT NULL,
    qtype               INTEGER NOT NULL,
    client_process_id   INTEGER NOT NULL,
    -- Client queries linked to an upstream query of the resolver.
    upstream            INTEGER NOT NULL,
    -- Client queries the resolver answered without asking upstream (its cache).
    cached              INTEGER NOT NULL,
    first_offset_ns     INTEGER NOT NULL,
    span_ns             INTEGER NOT NULL,
    first_ns            INTEGER GENERATED ALWAYS AS (hour * 3600000000000 + first_offset_ns) VIRTUAL,
    last_ns             INTEGER GENERATED ALWAYS AS (hour * 3600000000000 + first_offset_ns + span_ns) VIRTUAL,
    PRIMARY KEY (qname_id, resolver_process_id, qtype, client_process_id, hour)
) WITHOUT ROWID;
INSERT INTO delegations_offsets (resolver_process_id, hour, qname_id, qtype,
        client_process_id, upstream, cached, first_offset_ns, span_ns)
    SELECT resolver_process_id, hour, qname_id, qtype, client_process_id, upstream, cached,
           first_ns - hour * 3600000000000, last_ns - first_ns
    FROM delegations ORDER BY qname_id, resolver_process_id, qtype, client_process_id, hour;
DROP TABLE delegations;
ALTER TABLE delegations_offsets RENAME TO delegations;
