-- dnsq store, schema 3: local resolvers (dnsmasq, unbound, systemd-resolved, ...)
-- and the applications behind them.
--
-- The recorder links, within a short window, a client's query to a local resolver
-- with the resolver's upstream query for the same question (or, when there was
-- none, with the resolver's cache). Each such link is a fact: "client asked
-- resolver for qname/qtype in this hour". `dnsq who` and `by-process` use it to
-- show the application with the resolver beside it ("curl (pid 812) via dnsmasq").
CREATE TABLE delegations (
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
    PRIMARY KEY (resolver_process_id, hour, qname_id, qtype, client_process_id)
) WITHOUT ROWID;
CREATE INDEX delegations_client ON delegations(client_process_id, qname_id);
CREATE INDEX delegations_name ON delegations(qname_id, hour);

-- For each message a local resolver sent upstream on behalf of a client: that
-- client's process (the first, when several asked at once). For a client's
-- message answered by a local resolver: the resolver's process.
ALTER TABLE messages ADD COLUMN for_process_id INTEGER;
ALTER TABLE messages ADD COLUMN via_process_id INTEGER;
