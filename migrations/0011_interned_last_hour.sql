-- dnsq store, schema 11: interned rows (`names`, `rdata`, `answer_sets`,
-- `processes`, `endpoints`) remember the last hour they were used in, so that
-- retention can delete the ones nothing refers to any more. Before, they were
-- kept forever: a host that resolves many one-off names (a mail server asking
-- DNS blocklists about every client address) grew its store without bound, and
-- under --max-db-size ended over the cap with no message left to delete.
--
--   last_hour  the newest message hour (time_ns / 3600e9) of any row that
--              refers to this one, or later. The writer sets it whenever it
--              looks the row up in the database, and it does so for every
--              value at least once an hour (its caches start empty each new
--              message hour). NULL: never deleted (rows written by other
--              programs).
--
-- The rows already stored get the hour of the upgrade: they go once retention
-- has passed it and nothing newer uses them.
ALTER TABLE names ADD COLUMN last_hour INTEGER;
ALTER TABLE rdata ADD COLUMN last_hour INTEGER;
ALTER TABLE answer_sets ADD COLUMN last_hour INTEGER;
ALTER TABLE processes ADD COLUMN last_hour INTEGER;
ALTER TABLE endpoints ADD COLUMN last_hour INTEGER;
UPDATE names SET last_hour = CAST(strftime('%s', 'now') AS INTEGER) / 3600;
UPDATE rdata SET last_hour = CAST(strftime('%s', 'now') AS INTEGER) / 3600;
UPDATE answer_sets SET last_hour = CAST(strftime('%s', 'now') AS INTEGER) / 3600;
UPDATE processes SET last_hour = CAST(strftime('%s', 'now') AS INTEGER) / 3600;
UPDATE endpoints SET last_hour = CAST(strftime('%s', 'now') AS INTEGER) / 3600;
CREATE INDEX names_last_hour ON names(last_hour);
CREATE INDEX rdata_last_hour ON rdata(last_hour);
CREATE INDEX answer_sets_last_hour ON answer_sets(last_hour);
CREATE INDEX processes_last_hour ON processes(last_hour);
CREATE INDEX endpoints_last_hour ON endpoints(last_hour);
