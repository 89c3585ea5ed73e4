-- dnsq store, schema 5: the fact tables laid out for the questions `dnsq name`,
-- `by-process` and `who` ask, so that each reads only the rows it shows.
--
-- `lookups` keyed by the question: `dnsq name` reads a name's rows, and `dnsq
-- name` and `by-process` add up a (name, process, role, type) over the hours of a
-- window, as one range of the table each, where the old (process, hour, …) key
-- and the (name, hour) index cost a b-tree lookup per row per hour. A process's
-- rows by hour (`by-process` walks them newest first; `top`) are in
-- `lookups_process`, which holds the same columns as `lookups_name` did, so it
-- takes the same room.
CREATE TABLE lookups_by_name (
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
    first_ns      INTEGER NOT NULL,
    last_ns       INTEGER NOT NULL,
    PRIMARY KEY (qname_id, process_id, role, qtype, rcode, hour)
) WITHOUT ROWID;
INSERT INTO lookups_by_name (process_id, hour, role, qname_id, qtype, rcode, count, paired,
        latency_sum_ns, latency_max_ns, first_ns, last_ns)
    SELECT process_id, hour, role, qname_id, qtype, rcode, count, paired, latency_sum_ns,
           latency_max_ns, first_ns, last_ns
    FROM lookups ORDER BY qname_id, process_id, role, qtype, rcode, hour;
DROP TABLE lookups;
ALTER TABLE lookups_by_name RENAME TO lookups;
CREATE INDEX lookups_process ON lookups(process_id, hour);
CREATE INDEX lookups_hour ON lookups(hour);

-- `delegations` keyed by the question: the rows of a name (`who`: its hours) are
-- one range of the table, a resolver's rows for a name and type (`for`) a range
-- within it, and a client's (`via`) one range per resolver of the name (a name has
-- a handful). This replaces both secondary indexes (by client and name, by name
-- and hour), which were the way in for every question and cost a b-tree lookup
-- per row read.
CREATE TABLE delegations_by_name (
    resolver_process_id INTEGER NOT NULL,
    hour                INTEGER NOT NULL,
    qname_id            INTEGER NOT NULL,
    qtype               INTEGER NOT NULL,
    client_process_id   INTEGER NOT NULL,
    -- Client queries linked to an upstream query of the resolver.
    upstream            INTEGER NOT NULL,
    -- Client queries the resolver answered without asking upstream (its cache).
    cached              INTEGER NOT NULL,
    first_ns            INTEGER NOT NULL,
    last_ns             INTEGER NOT NULL,
    PRIMARY KEY (qname_id, resolver_process_id, qtype, client_process_id, hour)
) WITHOUT ROWID;
INSERT INTO delegations_by_name (resolver_process_id, hour, qname_id, qtype,
        client_process_id, upstream, cached, first_ns, last_ns)
    SELECT resolver_process_id, hour, qname_id, qtype, client_process_id, upstream,
           cached, first_ns, last_ns
    FROM delegations ORDER BY qname_id, resolver_process_id, qtype, client_process_id, hour;
DROP TABLE delegations;
ALTER TABLE delegations_by_name RENAME TO delegations;
