//! The parts of the store's layout that live in code rather than in
//! `migrations/*.sql`: the bit layout of `messages.flags` and the fact tables'
//! conventions. Shared by the writer (recorder) and the reader (`dnsq`).

/// Schema version the migrations in `migrations/` produce (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = 18;

/// `PRAGMA application_id` of a dnsq store ("dnsq" in ASCII), so that neither
/// binary mistakes another program's SQLite file for a store.
pub const APPLICATION_ID: i32 = 0x646e_7371;

/// The id the next message gets (schema 15): one past the newest, whether a
/// row of `messages` (written before schema 15) or in a chunk.
pub const NEXT_MESSAGE_ID: &str = "SELECT max((SELECT coalesce(max(id), 0) FROM messages), \
     (SELECT coalesce(max(last_id), 0) FROM message_chunks)) + 1";

/// The oldest and the newest message's id (NULL, NULL without messages) of a
/// schema 15 store: rows of `messages` come before every chunk. Each is one
/// b-tree lookup.
pub const MESSAGE_ID_BOUNDS: &str = "SELECT \
     coalesce((SELECT min(id) FROM messages), \
              (SELECT first_id FROM message_chunks ORDER BY last_id LIMIT 1)), \
     coalesce((SELECT max(last_id) FROM message_chunks), (SELECT max(id) FROM messages))";

/// How many messages a schema 15 store holds, rows and chunks.
pub const MESSAGE_COUNT: &str = "SELECT (SELECT count(*) FROM messages) + \
     (SELECT coalesce(sum(last_id - first_id + 1), 0) FROM message_chunks)";

/// The process ids `lookups` holds, each found with one seek into its
/// (process_id, hour) index (a skip scan): a `SELECT`, as a literal for
/// `concat!`.
macro_rules! lookup_process_ids {
    () => {
        "WITH RECURSIVE p(id) AS (SELECT min(process_id) FROM lookups UNION ALL \
         SELECT (SELECT process_id FROM lookups WHERE process_id > p.id \
                 ORDER BY process_id LIMIT 1) FROM p WHERE p.id IS NOT NULL) \
         SELECT id FROM p WHERE id IS NOT NULL"
    };
}

/// The `hour` column of `lookups` for a condition on a few hours (schema 16 has
/// no index on hour alone): after `process_id IN (every process it holds) AND`,
/// SQLite ranges over each process's hours in the (process_id, hour) index.
pub const LOOKUPS_BY_PROCESS_HOUR: &str =
    concat!("process_id IN (", lookup_process_ids!(), ") AND hour");

/// The first and the last hour `lookups` holds (NULL, NULL when empty): each
/// process's first and last through the (process_id, hour) index, where a
/// plain min(hour) reads the whole table (schema 16).
pub const LOOKUPS_HOURS: &str = concat!(
    "SELECT min((SELECT min(hour) FROM lookups WHERE process_id = q.id)), \
            max((SELECT max(hour) FROM lookups WHERE process_id = q.id)) FROM (",
    lookup_process_ids!(),
    ") AS q"
);

/// Default database path, for both binaries; `--db` or `DNSQ_DB` override it.
pub const DEFAULT_DB_PATH: &str = "/var/lib/dnsq/dnsq.db";

/// Bits of `messages.flags`.
pub mod flags {
    /// Set: the process received the message; clear: it sent it.
    pub const RECEIVED: i64 = 1 << 0;
    /// Set: TCP; clear: UDP.
    pub const TCP: i64 = 1 << 1;
    /// The DNS QR bit (a response).
    pub const RESPONSE: i64 = 1 << 2;
    /// The bytes did not decode; see the `malformed` table.
    pub const MALFORMED: i64 = 1 << 3;
    /// Bits 4–5: how the process was found (see [`super::attribution`]).
    pub const ATTRIBUTION_SHIFT: u32 = 4;
    pub const ATTRIBUTION_MASK: i64 = 0b11 << ATTRIBUTION_SHIFT;
    /// DNS header flags.
    pub const AA: i64 = 1 << 6;
    pub const TC: i64 = 1 << 7;
    pub const RD: i64 = 1 << 8;
    pub const RA: i64 = 1 << 9;
    pub const AD: i64 = 1 << 10;
    pub const CD: i64 = 1 << 11;
    /// EDNS present / its DO bit.
    pub const EDNS: i64 = 1 << 12;
    pub const DNSSEC_OK: i64 = 1 << 13;
    /// Bits 16–19: the DNS opcode.
    pub const OPCODE_SHIFT: u32 = 16;
    pub const OPCODE_MASK: i64 = 0xf << OPCODE_SHIFT;
    /// Bits 20–27: EDNS version.
    pub const EDNS_VERSION_SHIFT: u32 = 20;
    pub const EDNS_VERSION_MASK: i64 = 0xff << EDNS_VERSION_SHIFT;
}

/// Schema 6 (`migrations/0006_compact_messages.sql`): the stored
/// `messages.bits` is `flags` plus where port 53 is and the rcode; `ports`
/// packs the ports and the DNS id.
pub mod packed {
    /// The remote port is 53 and not in `ports`.
    pub const REMOTE_PORT_53: i64 = 1 << 14;
    /// The local port is 53 and not in `ports` (only when the remote port is not).
    pub const LOCAL_PORT_53: i64 = 1 << 15;
    /// Bits 28–39: the DNS rcode.
    pub const RCODE_SHIFT: u32 = 28;
    pub const RCODE_MASK: i64 = 0xfff << RCODE_SHIFT;
    /// The bits of `bits` that are `flags`.
    pub const FLAGS_MASK: i64 = 0x0fff_3fff;
}

/// Values of the attribution bits in `messages.flags`.
pub mod attribution {
    pub const UNKNOWN: i64 = 0;
    pub const SOCKET: i64 = 1;
    pub const SOCKET_LATE: i64 = 2;
    pub const PROCFS: i64 = 3;
}

/// `lookups.role`.
pub mod role {
    /// The process sent the query / received the response.
    pub const CLIENT: i64 = 0;
    /// The process received the query / sent the response.
    pub const SERVER: i64 = 1;
    /// The process called a libc resolver function for the name (schema 9): the
    /// row's `qtype` is the function ([`super::libc_function`]). Its `rcode` is
    /// [`super::RCODE_QUERY`] for calls not seen returning, `count` the calls;
    /// since schema 17 a returned call is counted on the row of its status
    /// instead ([`super::libc_status`]), as a response is: `count` and `paired`
    /// the returns, the latency the call's.
    pub const LIBC: i64 = 2;
}

/// The first schema with [`role::LIBC`] rows in `lookups`.
pub const LIBC_CALLS_AS_LOOKUPS: u32 = 9;

/// `lookups.rcode` of a [`role::LIBC`] row that counts returned calls (schema
/// 17, `migrations/0017_libc_returns_as_lookups.sql`): the calls' status
/// (`libc_lookups.status`) offset by [`BASE`], so that getaddrinfo's negative
/// `EAI_*` codes stay apart from [`RCODE_QUERY`] (-1 is also `EAI_BADFLAGS`).
///
/// [`BASE`]: libc_status::BASE
pub mod libc_status {
    pub const BASE: i64 = 1 << 16;

    /// The `rcode` of a return with this status.
    pub fn rcode(status: i32) -> i64 {
        BASE + i64::from(status)
    }

    /// The status of a return row's `rcode` (None for a call row's).
    pub fn of_rcode(rcode: i64) -> Option<i32> {
        if rcode == super::RCODE_QUERY {
            return None;
        }
        i32::try_from(rcode - BASE).ok()
    }

    /// How a return is shown: `ok`, or what the failure means (`EAI_NONAME`,
    /// `HOST_NOT_FOUND`, `no hostent`) for `function` ([`super::libc_function`]).
    pub fn name(function: i64, status: i32) -> &'static str {
        let function = u32::try_from(function).unwrap_or(0);
        crate::record::LibcAnswer::error_name(function, status).unwrap_or("ok")
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::schema::{
            RCODE_QUERY,
            libc_function::{GETADDRINFO, GETHOSTBYNAME2_R},
        };

        #[test]
        fn statuses_stay_apart_from_call_rows() {
            for status in [0, 1, 15, 17, 20, -2, -3, -11] {
                assert_ne!(rcode(status), RCODE_QUERY);
                assert_eq!(of_rcode(rcode(status)), Some(status));
            }
            assert_eq!(of_rcode(RCODE_QUERY), None);
            assert_eq!(name(GETADDRINFO, 0), "ok");
            assert_eq!(name(GETADDRINFO, -2), "EAI_NONAME");
            assert_eq!(name(GETADDRINFO, -3), "EAI_AGAIN");
            assert_eq!(name(GETHOSTBYNAME2_R, 0), "ok");
            assert_eq!(name(GETHOSTBYNAME2_R, 1), "no hostent");
            assert_eq!(name(GETHOSTBYNAME2_R, 17), "HOST_NOT_FOUND");
            assert_eq!(name(GETHOSTBYNAME2_R, 18), "TRY_AGAIN");
            assert_eq!(name(GETHOSTBYNAME2_R, 20), "NO_DATA");
            assert_eq!(name(GETHOSTBYNAME2_R, 15), "NETDB_INTERNAL");
            assert_eq!(name(GETHOSTBYNAME2_R, 99), "no hostent");
            assert_eq!(name(GETADDRINFO, 17), "EAI_unknown");
        }
    }
}

/// `lookups.rcode` of rows that count queries rather than responses. Since schema
/// 7 (`migrations/0007_answered_queries.sql`) such a row counts the queries not
/// seen answered (none yet, or never), and an answered query is counted by the
/// `paired` column of its response's row: queries asked = this row's `count` +
/// the response rows' `paired`. Before schema 7 this row counted every query,
/// its `paired` those answered, with their latency. The row's hour is the
/// query's.
pub const RCODE_QUERY: i64 = -1;

/// Added to a DNS response's rcode in `lookups.rcode` when it has the TC bit
/// (schema 18, `migrations/0018_truncated_responses.sql`): a response that did
/// not fit carries no complete answer, so it is counted apart from the full
/// responses of its rcode. DNS rcodes are 12 bits (with EDNS), below this.
pub const RCODE_TRUNCATED: i64 = 1 << 12;

/// `lookups.rcode` of a DNS response: its rcode, plus [`RCODE_TRUNCATED`] when
/// it was truncated.
pub fn response_rcode(rcode: i64, truncated: bool) -> i64 {
    if truncated {
        rcode | RCODE_TRUNCATED
    } else {
        rcode
    }
}

/// The `lookups.rcode` of a DNS response row (role client or server) as
/// (rcode, truncated). [`RCODE_QUERY`] stays itself.
pub fn split_response_rcode(rcode: i64) -> (i64, bool) {
    if rcode >= 0 && rcode & RCODE_TRUNCATED != 0 {
        (rcode & !RCODE_TRUNCATED, true)
    } else {
        (rcode, false)
    }
}

/// The first schema whose query rows count only unanswered queries (see
/// [`RCODE_QUERY`]).
pub const ANSWERED_QUERIES_MOVE: u32 = 7;

/// SQL for the queries a `lookups` row counts, for a store of schema `version`.
pub fn lookup_queries_sql(version: u32) -> &'static str {
    if version >= ANSWERED_QUERIES_MOVE {
        "CASE WHEN rcode = -1 THEN count ELSE paired END"
    } else {
        "CASE WHEN rcode = -1 THEN count ELSE 0 END"
    }
}

/// SQL for "this `lookups` row counts queries", for a store of schema `version`.
pub fn lookup_asked_sql(version: u32) -> &'static str {
    if version >= ANSWERED_QUERIES_MOVE {
        "(rcode = -1 OR paired > 0)"
    } else {
        "rcode = -1"
    }
}

/// `process_id` in fact tables when the process is unknown.
pub const UNKNOWN_PROCESS: i64 = 0;

// 64-bit unsigned values (`socket_cookie`, `cgroup_id`, `netns`,
// `socket_cgroup_id`) are stored as the signed integer with the same bits:
// read them back with `as u64`.

/// Fact tables are per hour: `hour = time_ns / NS_PER_HOUR`.
pub const NS_PER_HOUR: i64 = 3_600 * 1_000_000_000;
/// `time_index.minute = time_ns / NS_PER_MINUTE`.
pub const NS_PER_MINUTE: i64 = 60 * 1_000_000_000;

/// The first schema whose `time_index` rows count their minute's messages
/// (`migrations/0010_minute_counts.sql`).
pub const MINUTE_COUNTS: u32 = 10;

/// What a `time_index` row counts of its minute's messages (schema 10), in the
/// classes `dnsq stats` shows. The writer counts with [`MinuteCounts::add`]; a
/// reader that counts rows of `messages` itself must classify them the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    pub messages: i64,
    /// Not malformed, QR clear.
    pub queries: i64,
    /// Not malformed, QR set.
    pub responses: i64,
    pub malformed: i64,
    /// Queries a process sent.
    pub queries_sent: i64,
    /// Responses a process received, paired with its query.
    pub answered: i64,
    /// The oldest and newest message time (meaningless while `messages` is 0).
    pub first_ns: i64,
    pub last_ns: i64,
}

impl MinuteCounts {
    /// Counts a message with these [`flags`], time and pairing.
    pub fn add(&mut self, message_flags: i64, time_ns: i64, paired: bool) {
        if self.messages == 0 {
            (self.first_ns, self.last_ns) = (time_ns, time_ns);
        } else {
            self.first_ns = self.first_ns.min(time_ns);
            self.last_ns = self.last_ns.max(time_ns);
        }
        self.messages += 1;
        let response = message_flags & flags::RESPONSE != 0;
        let received = message_flags & flags::RECEIVED != 0;
        if message_flags & flags::MALFORMED != 0 {
            self.malformed += 1;
        } else if response {
            self.responses += 1;
            self.answered += i64::from(received && paired);
        } else {
            self.queries += 1;
            self.queries_sent += i64::from(!received);
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &MinuteCounts) {
        if other.messages == 0 {
            return;
        }
        if self.messages == 0 {
            *self = *other;
            return;
        }
        self.messages += other.messages;
        self.queries += other.queries;
        self.responses += other.responses;
        self.malformed += other.malformed;
        self.queries_sent += other.queries_sent;
        self.answered += other.answered;
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
    }
}

/// `resolutions.endpoint_id` of an answer a libc call returned (the addresses
/// of `getaddrinfo`'s list or a `gethostbyname*` `hostent`): no server was seen, and no `endpoints` row has this id (schema
/// 12, `migrations/0012_libc_answers.sql`).
pub const NO_SERVER: i64 = 0;

/// `libc_lookups.function`: the libc resolver function called (the same numbers
/// as the probes' `dnsq_common::lookup_fn`).
pub mod libc_function {
    pub const GETADDRINFO: i64 = 1;
    pub const GETHOSTBYNAME: i64 = 2;
    pub const GETHOSTBYNAME2: i64 = 3;
    pub const GETHOSTBYNAME_R: i64 = 4;
    pub const GETHOSTBYNAME2_R: i64 = 5;

    /// The code of a function name (`LookupRecord::function`).
    pub fn code(name: &str) -> Option<i64> {
        NAMES
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(code, _)| *code)
    }

    /// The function name of a code.
    pub fn name(code: i64) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(known, _)| *known == code)
            .map(|(_, name)| *name)
    }

    const NAMES: [(i64, &str); 5] = [
        (GETADDRINFO, "getaddrinfo"),
        (GETHOSTBYNAME, "gethostbyname"),
        (GETHOSTBYNAME2, "gethostbyname2"),
        (GETHOSTBYNAME_R, "gethostbyname_r"),
        (GETHOSTBYNAME2_R, "gethostbyname2_r"),
    ];
}

/// `libc_lookups.addresses` (schema 13): the addresses a call returned, in
/// order, separated by spaces, and ` +` at the end when there were more.
pub mod libc_addresses {
    use std::net::IpAddr;

    const MORE: &str = "+";

    pub fn text(addresses: &[IpAddr], truncated: bool) -> String {
        let mut text = String::new();
        for address in addresses {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&address.to_string());
        }
        if truncated {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(MORE);
        }
        text
    }

    /// The addresses and whether there were more; `None` if `text` is not what
    /// [`text`] writes.
    pub fn parse(text: &str) -> Option<(Vec<IpAddr>, bool)> {
        let mut addresses = Vec::new();
        let mut truncated = false;
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            if truncated {
                return None;
            }
            if word == MORE {
                truncated = true;
            } else {
                addresses.push(word.parse().ok()?);
            }
        }
        Some((addresses, truncated))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip() {
            let addresses: Vec<IpAddr> =
                vec!["198.18.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
            for truncated in [false, true] {
                let text = text(&addresses, truncated);
                assert_eq!(parse(&text), Some((addresses.clone(), truncated)));
            }
            assert_eq!(text(&addresses, true), "198.18.0.1 fd00::1 +");
            assert_eq!(parse(""), Some((vec![], false)));
            assert_eq!(parse("+"), Some((vec![], true)));
            assert_eq!(parse("+ 198.18.0.1"), None);
            assert_eq!(parse("nonsense"), None);
        }
    }
}

/// `answer_sets.records` sections.
pub mod section {
    pub const ANSWER: i64 = 0;
    pub const AUTHORITY: i64 = 1;
    pub const ADDITIONAL: i64 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_responses_keep_their_rcode_apart() {
        for rcode in [0, 2, 3, 4095] {
            assert_eq!(
                split_response_rcode(response_rcode(rcode, false)),
                (rcode, false)
            );
            assert_eq!(
                split_response_rcode(response_rcode(rcode, true)),
                (rcode, true)
            );
            assert_ne!(response_rcode(rcode, true), rcode);
        }
        assert_eq!(split_response_rcode(RCODE_QUERY), (RCODE_QUERY, false));
        // libc rows (role 2) are told apart by their role, and stay above both.
        assert!(libc_status::rcode(-11) > response_rcode(4095, true));
    }
}
