-- dnsq store, schema 2: identity fields that schema 1 had no column for, and the
-- index that retention needs to drop old facts a little at a time.

-- The name of the thread that sent or received (MessageRecord.process.thread).
-- Part of `processes.key` from schema 2 on; rows written under schema 1 have NULL.
ALTER TABLE processes ADD COLUMN thread TEXT;

-- The cgroup v2 id of the socket, kept only when it tells something the process
-- row does not: NULL when it equals the process's cgroup_id. Messages of unknown
-- processes keep it, so they can still be placed in a container or unit.
ALTER TABLE messages ADD COLUMN socket_cgroup_id INTEGER;

-- Retention deletes the oldest hours of facts in small chunks.
CREATE INDEX resolutions_hour ON resolutions(hour);
