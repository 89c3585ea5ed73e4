-- dnsq store, schema 4: libc lookups. Applications that send no DNS packet
-- themselves (glibc with nss-resolve asks systemd-resolved over a Unix socket;
-- nscd) are seen calling libc's resolver functions, through uprobes.
--
-- One row per call of getaddrinfo, gethostbyname, gethostbyname2, gethostbyname_r
-- or gethostbyname2_r (the LookupRecord of `--print`): which process asked for
-- which name, when. Append-only in arrival order (time order to within the
-- recorder's short delay), no secondary index, like `messages`. A call whose
-- name a resolver daemon then queried also shows in `delegations` (the daemon as
-- resolver, the caller as client, counted in `upstream`) and in the daemon's
-- messages (`for_process_id`).
CREATE TABLE libc_lookups (
    id         INTEGER PRIMARY KEY,
    time_ns    INTEGER NOT NULL,
    run_id     INTEGER NOT NULL,
    -- The calling process (and thread): `processes.id`.
    process_id INTEGER NOT NULL,
    -- The name as the application passed it, as a `names` row: lower-cased, a
    -- trailing dot added, unprintable bytes as \DDD. The name as typed (case) is
    -- not kept.
    qname_id   INTEGER NOT NULL,
    -- 1 getaddrinfo, 2 gethostbyname, 3 gethostbyname2, 4 gethostbyname_r,
    -- 5 gethostbyname2_r (schema.rs `libc_function`).
    function   INTEGER NOT NULL
);
