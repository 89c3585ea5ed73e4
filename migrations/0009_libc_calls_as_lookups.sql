-- dnsq store, schema 9: libc calls are `lookups` facts too (role 2).
--
-- An application that resolves through a daemon over a Unix socket (glibc with
-- nss-resolve asks systemd-resolved; nscd) sends no DNS packet. Its libc calls
-- were kept only in `libc_lookups`, which no `dnsq` command reads: `dnsq
-- by-process` found nothing for it whenever the daemon answered from its cache
-- (when the daemon went upstream, `delegations` linked the query to it, but
-- only `who` showed that). From schema 9 each call is also counted in `lookups`,
-- where `by-process`, `name` and `stats` read every process's questions:
--   role   2 (libc call)
--   qtype  the function, as `libc_lookups.function` (1 getaddrinfo, ...)
--   rcode  -1 (a question), count = the calls in the hour, the other counters 0.
-- `top` counts DNS queries (role 0) only, as before.
-- Fact rows name the process without its thread (the writer's `fact_process`):
-- the calls written before are counted under that row where there is one.
INSERT INTO lookups (process_id, hour, role, qname_id, qtype, rcode, count, paired,
        latency_sum_ns, latency_max_ns, first_ns, last_ns)
    SELECT process_id, hour, 2, qname_id, function, -1, count(*), 0, 0, 0,
           min(time_ns), max(time_ns)
    FROM (
        SELECT l.time_ns, l.time_ns / 3600000000000 AS hour, l.qname_id, l.function,
            coalesce((
                SELECT q.id FROM processes q
                WHERE q.pid = p.pid AND q.tid IS NULL AND q.thread IS NULL
                  AND q.uid = p.uid AND q.gid = p.gid AND q.comm = p.comm
                  AND q.exe IS p.exe AND q.cgroup_id IS p.cgroup_id
                  AND q.cgroup IS p.cgroup AND q.netns IS p.netns
                ORDER BY q.id LIMIT 1
            ), l.process_id) AS process_id
        FROM libc_lookups l JOIN processes p ON p.id = l.process_id
        WHERE l.time_ns >= 0
    )
    GROUP BY qname_id, process_id, function, hour;
