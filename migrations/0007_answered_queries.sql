-- dnsq store, schema 7: a query is counted once in `lookups`, not twice.
--
-- Until schema 6 an answered query was on two rows of its (process, name, type,
-- role, hour): the query row (rcode -1) counted it, and the response's row
-- counted the response, each with the pairing and its latency. Half of all
-- `lookups` rows were query rows repeating their response rows. From schema 7 a
-- query row counts only the queries not (yet) seen answered; an answered query
-- is the `paired` count of its response's row. Queries asked = the query row's
-- `count` + the response rows' `paired`; unanswered = the query row's `count`.
-- The rows kept keep their first and last times (of all their queries).
UPDATE lookups
SET count = count - paired, paired = 0, latency_sum_ns = 0, latency_max_ns = 0
WHERE rcode = -1;
DELETE FROM lookups WHERE rcode = -1 AND count <= 0;

-- One index on `resolutions` by question name then process, for both ways
-- `dnsq name` and `by-process` read a name's answers (a name's, or a process's
-- of that name), in place of one index for each (each index repeats the
-- seven-column key).
DROP INDEX resolutions_process;
DROP INDEX resolutions_qname;
CREATE INDEX resolutions_name ON resolutions(qname_id, process_id, hour);
