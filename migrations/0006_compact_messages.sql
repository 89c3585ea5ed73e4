-- dnsq store: a leaner `messages` row (fewer columns, small fields packed),
-- ~8 bytes smaller a message. `flags` stays readable as before, as a VIRTUAL
-- generated column (computed when read, nothing stored; SQLite computes
-- generated columns on every INSERT too, so there are no others): the old
-- `local_port`, `remote_port`, `dns_id`, `qclass` and `rcode` are decoded from
-- `bits` and `ports` as below (`qclass` is 1 where `qname_id` is not NULL).
--
--   bits   `flags` (the layout in schema.rs, unchanged) plus:
--            bit 14: the remote port is 53 (not in `ports`),
--            bit 15: the local port is 53 (not in `ports`; bit 14 clear),
--            bits 28-39: the DNS rcode (0 when the message did not decode).
--   ports  the ports and the DNS id (0 when the message did not decode), with
--          the id as a signed 16-bit number on top so the value stays small:
--            bit 14 or 15 set: id << 16 | the other port  (4 bytes),
--            neither:          id << 32 | local_port << 16 | remote_port.
--   ttls   NULL without records; an INTEGER when every record of the answer
--          set has that TTL; otherwise the JSON array of TTLs, as before.
--   The first question's class is not stored: a message whose first question
--   is not class IN has no `qname_id` here and keeps that question in
--   `extra_questions` at position 0.
CREATE TABLE messages_compact (
    id            INTEGER PRIMARY KEY,
    time_ns       INTEGER NOT NULL,
    run_id        INTEGER NOT NULL,
    bits          INTEGER NOT NULL,
    process_id    INTEGER,
    endpoint_id   INTEGER NOT NULL,
    socket_cookie INTEGER NOT NULL,
    ports         INTEGER NOT NULL,
    qname_id      INTEGER,
    qtype         INTEGER,
    answer_set_id INTEGER,
    ttls,
    edns_udp_size INTEGER,
    message_len   INTEGER NOT NULL,
    captured_len  INTEGER,
    latency_ns    INTEGER,
    socket_cgroup_id INTEGER,
    for_process_id INTEGER,
    via_process_id INTEGER,
    flags         INTEGER GENERATED ALWAYS AS (bits & 268386303) VIRTUAL
);

-- First questions of another class than IN move to extra_questions.
INSERT INTO extra_questions (message_id, position, qname_id, qtype, qclass)
SELECT id, 0, qname_id, coalesce(qtype, 0), qclass
FROM messages
WHERE qname_id IS NOT NULL AND coalesce(qclass, 1) != 1;

INSERT INTO messages_compact (id, time_ns, run_id, bits, process_id, endpoint_id,
    socket_cookie, ports, qname_id, qtype, answer_set_id, ttls, edns_udp_size,
    message_len, captured_len, latency_ns, socket_cgroup_id, for_process_id,
    via_process_id)
SELECT id, time_ns, run_id,
    flags
        | CASE WHEN remote_port = 53 THEN 16384 WHEN local_port = 53 THEN 32768 ELSE 0 END
        | ((coalesce(rcode, 0) & 4095) << 28),
    process_id, endpoint_id, socket_cookie,
    CASE
        WHEN remote_port = 53 THEN (d << 16) | local_port
        WHEN local_port = 53 THEN (d << 16) | remote_port
        ELSE (d << 32) | (local_port << 16) | remote_port
    END,
    CASE WHEN coalesce(qclass, 1) = 1 THEN qname_id END,
    CASE WHEN coalesce(qclass, 1) = 1 THEN qtype END,
    answer_set_id,
    CASE
        WHEN ttls IS NULL THEN NULL
        WHEN replace(substr(ttls, 2, length(ttls) - 2) || ',',
                     CAST(json_extract(ttls, '$[0]') AS TEXT) || ',', '') = ''
            THEN json_extract(ttls, '$[0]')
        ELSE ttls
    END,
    edns_udp_size, message_len, captured_len, latency_ns, socket_cgroup_id,
    for_process_id, via_process_id
FROM (
    SELECT *,
        CASE WHEN coalesce(dns_id, 0) >= 32768 THEN dns_id - 65536 ELSE coalesce(dns_id, 0) END AS d
    FROM messages
)
ORDER BY id;

DROP TABLE messages;
ALTER TABLE messages_compact RENAME TO messages;
