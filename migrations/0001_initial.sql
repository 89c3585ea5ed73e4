-- dnsq store, schema 1.
--
-- Design (numbers from KERNEL-FACTS.md: an append-only row costs ~0.7 µs and ~63 B,
-- every secondary index on it several times that):
--   * `messages` is an append-only log in arrival order, integer columns only,
--     with NO secondary index. Arrival order is time order to within the
--     recorder's attribution wait (< 1 s), so `time_index` (one row a minute)
--     turns a time range into a rowid range.
--   * Every repeated string is stored once: `names`, `rdata`, `processes`,
--     `endpoints`, `answer_sets`.
--   * Questions operators ask ("who resolved this IP", "what did nginx resolve")
--     are answered from small tables of distinct facts per hour
--     (`resolutions`, `lookups`, `cnames`), which the writer aggregates in memory
--     and upserts once per batch.
-- All times are Unix nanoseconds (UTC). The layout of `messages.flags` is in
-- recorder/src/store/schema.rs.

-- Recorder runs: starts and stops.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    started_ns  INTEGER NOT NULL,
    stopped_ns  INTEGER,
    -- 'signal', 'error: …', NULL while running or after a crash.
    stop_reason TEXT,
    version     TEXT NOT NULL,
    hostname    TEXT,
    -- The recorder's configuration as JSON (ports, payload cap, ...).
    config      TEXT NOT NULL
);

-- Kernel and recorder counters, sampled periodically. Values are totals since the
-- run started (JSON object of counter name → integer, e.g. lost_ringbuf_full).
CREATE TABLE counters (
    run_id  INTEGER NOT NULL REFERENCES runs(id),
    time_ns INTEGER NOT NULL,
    "values" TEXT NOT NULL,
    PRIMARY KEY (run_id, time_ns)
) WITHOUT ROWID;

-- DNS names in presentation format, lower-cased, with the trailing dot;
-- unprintable bytes escaped as \DDD.
CREATE TABLE names (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Record data in presentation format ('192.0.2.1', '2001:db8::1', 'target.example.',
-- RFC 3597 '\# 4 0a000001' for unknown types).
CREATE TABLE rdata (
    id   INTEGER PRIMARY KEY,
    data TEXT NOT NULL UNIQUE
);

-- A process identity as seen on a socket. One row per distinct combination.
CREATE TABLE processes (
    id        INTEGER PRIMARY KEY,
    pid       INTEGER NOT NULL,
    tid       INTEGER,
    uid       INTEGER NOT NULL,
    gid       INTEGER NOT NULL,
    comm      TEXT NOT NULL,
    exe       TEXT,
    cgroup_id INTEGER,
    cgroup    TEXT,
    netns     INTEGER,
    -- Canonical text of all the columns above; the writer's lookup key.
    key       TEXT NOT NULL UNIQUE
);
CREATE INDEX processes_comm ON processes(comm);
CREATE INDEX processes_pid ON processes(pid);

-- Addresses of a socket's conversation (ports live in `messages`: client ports
-- change with every query).
CREATE TABLE endpoints (
    id        INTEGER PRIMARY KEY,
    -- 4 or 16 bytes, network order.
    local_ip  BLOB NOT NULL,
    remote_ip BLOB NOT NULL,
    ifindex   INTEGER NOT NULL,
    interface TEXT,
    UNIQUE (local_ip, remote_ip, ifindex, interface)
);

-- The distinct sets of resource records seen in responses: a JSON array of
-- [section, name_id, type, class, rdata_id] in message order, section 0 = answer,
-- 1 = authority, 2 = additional (the EDNS OPT record is not here: see flags and
-- edns_udp_size). TTLs vary from message to message and live in `messages.ttls`.
CREATE TABLE answer_sets (
    id      INTEGER PRIMARY KEY,
    records TEXT NOT NULL UNIQUE
);

-- One row per DNS message (query or response, either direction).
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    time_ns       INTEGER NOT NULL,
    run_id        INTEGER NOT NULL,
    -- Bit field: direction, transport, QR, malformed, attribution, header flags,
    -- opcode, EDNS DO (see schema.rs).
    flags         INTEGER NOT NULL,
    process_id    INTEGER,
    endpoint_id   INTEGER NOT NULL,
    local_port    INTEGER NOT NULL,
    remote_port   INTEGER NOT NULL,
    socket_cookie INTEGER NOT NULL,
    dns_id        INTEGER,
    -- First question (almost every message has exactly one).
    qname_id      INTEGER,
    qtype         INTEGER,
    qclass        INTEGER,
    rcode         INTEGER,
    answer_set_id INTEGER,
    -- TTLs of the records of the answer set, in order, as a JSON array.
    ttls          TEXT,
    edns_udp_size INTEGER,
    message_len   INTEGER NOT NULL,
    -- NULL when the whole message was captured.
    captured_len  INTEGER,
    -- Responses paired with their query.
    latency_ns    INTEGER
);

-- First and last message id of each minute: time range → rowid range.
CREATE TABLE time_index (
    minute   INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id  INTEGER NOT NULL
);

-- Bytes that did not decode as DNS, kept whole.
CREATE TABLE malformed (
    message_id INTEGER PRIMARY KEY,
    error      TEXT NOT NULL,
    raw        BLOB NOT NULL
);

-- Questions beyond the first (rare), so none is lost.
CREATE TABLE extra_questions (
    message_id INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    qname_id   INTEGER NOT NULL,
    qtype      INTEGER NOT NULL,
    qclass     INTEGER NOT NULL,
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID;

-- Facts: "this answer data was given for this record name, asked as this question
-- name, to this process, by this server, in this hour". Client side only (responses
-- a process received). Answers `dnsq who IP`.
CREATE TABLE resolutions (
    rdata_id      INTEGER NOT NULL,
    hour          INTEGER NOT NULL,
    rtype         INTEGER NOT NULL,
    -- The owner name of the record (the end of the CNAME chain).
    name_id       INTEGER NOT NULL,
    -- The name the application asked for.
    qname_id      INTEGER NOT NULL,
    process_id    INTEGER NOT NULL,  -- 0 when unknown
    endpoint_id   INTEGER NOT NULL,  -- the server
    first_ns      INTEGER NOT NULL,
    last_ns       INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    PRIMARY KEY (rdata_id, hour, rtype, name_id, qname_id, process_id, endpoint_id)
) WITHOUT ROWID;
CREATE INDEX resolutions_process ON resolutions(process_id, qname_id);
CREATE INDEX resolutions_qname ON resolutions(qname_id);

-- Facts: "this process asked / was answered this question with this rcode in this
-- hour". role 0 = client (sent the query / received the response), 1 = server
-- (received the query / sent the response). rcode -1 counts queries.
CREATE TABLE lookups (
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
    PRIMARY KEY (process_id, hour, role, qname_id, qtype, rcode)
) WITHOUT ROWID;
CREATE INDEX lookups_name ON lookups(qname_id, hour);
CREATE INDEX lookups_hour ON lookups(hour);

-- Facts: "name is an alias of target" (CNAME records seen in answers).
CREATE TABLE cnames (
    target_id INTEGER NOT NULL,
    name_id   INTEGER NOT NULL,
    first_ns  INTEGER NOT NULL,
    last_ns   INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (target_id, name_id)
) WITHOUT ROWID;
CREATE INDEX cnames_name ON cnames(name_id);
