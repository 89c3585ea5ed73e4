-- dnsq store, schema 13: each libc call keeps what it returned.
--
-- Schema 12 turned the addresses a call returned into `resolutions` facts
-- (what `dnsq who` reads) but kept no trace of the return in the call's own
-- `libc_lookups` row, so `dnsq tail` could not show what an application got
-- from getaddrinfo. The recorder now fills these in when the call returns;
-- they stay NULL for a call whose return was not seen (the recorder stopped
-- first, the thread died, rows from before schema 13).
ALTER TABLE libc_lookups ADD COLUMN returned_ns INTEGER;
-- getaddrinfo's return value (0, or an EAI_* code, negative); for the
-- gethostbyname family 0, or 1 when no hostent came back.
ALTER TABLE libc_lookups ADD COLUMN status INTEGER;
-- The addresses returned, each once, in the order the call gave them,
-- separated by spaces ('' for none); ' +' at the end when the result held more
-- than the probe reads (16).
ALTER TABLE libc_lookups ADD COLUMN addresses TEXT;
