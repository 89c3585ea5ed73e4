//! Seeing through local resolvers. When an application asks a resolver on this
//! host (dnsmasq, unbound, systemd-resolved over DNS, ...), the packets show two
//! conversations: application ↔ resolver, and resolver ↔ upstream. Alone, the
//! second says "dnsmasq resolved github.com", which is useless. This links them:
//!
//! - both ends of a local exchange are seen (the client's query sent and the
//!   resolver's query received, same addresses, ports, id and question), so the
//!   client and the resolver are both known processes;
//! - a query the resolver then sends for the same question within
//!   [`LINK_WINDOW_NS`] was made on behalf of those clients (`on_behalf_of`, on
//!   the upstream query and its answer);
//! - the resolver's answer to the client says whether it asked upstream
//!   (`from_cache`), and the client's received answer names the resolver (`via`).
//!
//! Only exchanges whose two ends are on this host can be linked: a remote client
//! of a local resolver has no process here.
//!
//! Applications that send no DNS packet at all (glibc with nss-resolve asks
//! systemd-resolved over a Unix socket; nscd) are seen calling libc's resolver
//! functions (a [`LookupRecord`], from the lookup uprobes). When process A called
//! one for name N, and within [`LINK_WINDOW_NS`] another process sends a DNS query
//! for N (case-insensitive, trailing dot ignored) while A has sent none for N
//! itself, that query and its answer were made on behalf of A. When A's own query
//! for N comes first, the lookup is A's own business and links nothing. (A query
//! for N by an unrelated process inside the window is linked too: the packets
//! cannot tell it apart. A name the resolver expands with a search domain is not
//! matched.)

use std::{
    collections::{VecDeque, hash_map::Entry},
    net::IpAddr,
    sync::Arc,
};

use foldhash::HashMap;

use crate::{
    dns::QuestionKey,
    record::{Direction, LookupRecord, MessageRecord, ProcessInfo, Transport},
};

/// How long after a client's query a resolver's upstream query for the same
/// question counts as caused by it.
pub const LINK_WINDOW_NS: i64 = 2_000_000_000;
/// How long an exchange is remembered (a slow upstream answer still finds it).
const EXCHANGE_TTL_NS: i64 = 5_000_000_000;
/// Bounds on what is remembered.
// Under heavy load the oldest exchanges go first: at 20k queries/s an exchange
// lives about 0.8 s, still longer than a local resolver takes to go upstream and
// answer in the common case; each holds two process identities, so this bounds
// memory (a few MB).
const MAX_EXCHANGES: usize = 16_384;
const MAX_UPSTREAM: usize = 16_384;
const MAX_LIBC_CALLS: usize = 65_536;
/// How long a libc call is remembered: longer than the window, because records
/// reach the linker a little after their time (the pipeline's delay) while
/// expiry goes by the clock.
const LIBC_CALL_TTL_NS: i64 = 2 * LINK_WINDOW_NS;

/// One client ↔ resolver exchange: client address/port, resolver address/port,
/// DNS id and the question.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ExchangeKey {
    transport: Transport,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    id: u16,
    question: QuestionKey,
}

#[derive(Debug, Default)]
struct Exchange {
    // The records' own shared identities: remembering one copies no text.
    client: Option<Arc<ProcessInfo>>,
    resolver: Option<Arc<ProcessInfo>>,
    /// The resolver asked upstream for it.
    upstream: bool,
    /// The resolver's answer to the client was seen.
    answered: bool,
    time_ns: i64,
}

/// A resolver's upstream query: resolver pid, question, DNS id.
type UpstreamKey = (u32, QuestionKey, u16);

/// A process's call of a libc resolver function, waiting to see who sends the
/// DNS query for its name.
#[derive(Debug)]
struct LibcCall {
    process: Arc<ProcessInfo>,
    pid: u32,
    time_ns: i64,
    /// The caller sent a query for the name itself.
    own_query: bool,
}

#[derive(Default)]
pub struct ResolverLinker {
    exchanges: HashMap<ExchangeKey, Exchange>,
    exchange_order: VecDeque<(i64, ExchangeKey)>,
    /// Local exchanges waiting for the resolver to go upstream, by resolver pid and
    /// question.
    asks: HashMap<(u32, QuestionKey), Vec<ExchangeKey>>,
    upstream: HashMap<UpstreamKey, (i64, Vec<Arc<ProcessInfo>>)>,
    upstream_order: VecDeque<(i64, UpstreamKey)>,
    /// Recent libc calls by name ([`LookupRecord::match_key`]), oldest first.
    libc_calls: HashMap<String, VecDeque<LibcCall>>,
    libc_order: VecDeque<(i64, String)>,
    /// Messages given `via` or `on_behalf_of`.
    pub linked: u64,
}

impl ResolverLinker {
    /// Remembers a libc lookup, for the queries that follow it. Lookups must come
    /// in time order with the messages (the pipeline's delay sees to it).
    pub fn lookup(&mut self, record: &LookupRecord) {
        let Some(pid) = record.process.pid else {
            return;
        };
        let key = LookupRecord::match_key(&record.name);
        if key.is_empty() {
            return;
        }
        let now = record.time_ns;
        self.expire_oldest(now);
        if self.libc_order.len() >= MAX_LIBC_CALLS
            && let Some((_, oldest)) = self.libc_order.pop_front()
        {
            forget_oldest_call(&mut self.libc_calls, &oldest);
        }
        self.libc_order.push_back((now, key.clone()));
        self.libc_calls.entry(key).or_default().push_back(LibcCall {
            process: Arc::clone(&record.process),
            pid,
            time_ns: now,
            own_query: false,
        });
    }

    /// The processes whose libc calls for `name` (a question name) the query that
    /// `pid` sends now was made for: callers other than `pid`, within the window,
    /// that have sent no query for it themselves. A query of a caller's own marks
    /// its calls as answered by itself.
    fn libc_callers(
        &mut self,
        pid: u32,
        question: &QuestionKey,
        now: i64,
    ) -> Vec<Arc<ProcessInfo>> {
        // The key's name is lower-cased already: its match key is it without the
        // dot, and finding it copies nothing.
        let name = question.name();
        let Some(calls) = self
            .libc_calls
            .get_mut(name.strip_suffix('.').unwrap_or(name))
        else {
            return Vec::new();
        };
        let recent = |call: &LibcCall| call.time_ns <= now && now - call.time_ns <= LINK_WINDOW_NS;
        for call in calls.iter_mut() {
            if call.pid == pid && recent(call) {
                call.own_query = true;
            }
        }
        let mut callers: Vec<Arc<ProcessInfo>> = Vec::new();
        for call in calls.iter() {
            if call.pid != pid
                && !call.own_query
                && recent(call)
                && !callers.iter().any(|known| known.pid == Some(call.pid))
            {
                callers.push(Arc::clone(&call.process));
            }
        }
        callers
    }

    /// Adds `via`, `on_behalf_of` and `from_cache` to `record` where it can.
    /// `question` is its message's [`QuestionKey::of`].
    pub fn annotate(&mut self, record: &mut MessageRecord, question: Option<&QuestionKey>) {
        let Some(dns) = record.dns.as_ref() else {
            return;
        };
        let (Some(question), Some(pid)) = (question, record.process.pid) else {
            return;
        };
        let response = dns.response;
        let id = dns.id;
        let now = record.time_ns;
        // The client is the end that sends queries and receives responses.
        let client_side = (record.direction == Direction::Sent) != response;
        let (client, server) = if record.direction == Direction::Sent {
            if response {
                ((record.dst, record.dport), (record.src, record.sport))
            } else {
                ((record.src, record.sport), (record.dst, record.dport))
            }
        } else if response {
            ((record.dst, record.dport), (record.src, record.sport))
        } else {
            ((record.src, record.sport), (record.dst, record.dport))
        };
        let key = ExchangeKey {
            transport: record.transport,
            client,
            server,
            id,
            question: question.clone(),
        };
        match (client_side, response) {
            // A process sends a query: it is a client of someone, and perhaps a
            // resolver going upstream for its own clients.
            (true, false) => {
                self.note(key, now, |exchange| {
                    exchange.client = Some(Arc::clone(&record.process))
                });
                let mut clients = self.take_asks(pid, question, now);
                for caller in self.libc_callers(pid, question, now) {
                    if !clients.iter().any(|known| known.pid == caller.pid) {
                        clients.push(caller);
                    }
                }
                if !clients.is_empty() {
                    record.on_behalf_of = clients.clone();
                    self.remember_upstream((pid, question.clone(), id), now, clients);
                    self.linked += 1;
                }
            }
            // A resolver receives a query from a client.
            (false, false) => {
                self.note(key, now, |exchange| {
                    exchange.resolver = Some(Arc::clone(&record.process))
                });
            }
            // A resolver answers a client.
            (false, true) => {
                if let Some(exchange) = self.exchanges.get_mut(&key) {
                    exchange.answered = true;
                    if let Some(client) = &exchange.client {
                        record.on_behalf_of = vec![Arc::clone(client)];
                        record.from_cache = Some(!exchange.upstream);
                        self.linked += 1;
                    }
                }
                // Answered: no later upstream query can be for this exchange.
                let ask = (pid, key.question.clone());
                if let Some(keys) = self.asks.get_mut(&ask) {
                    keys.retain(|waiting| *waiting != key);
                    if keys.is_empty() {
                        self.asks.remove(&ask);
                    }
                }
            }
            // A process receives an answer: from upstream for its clients, or from
            // a local resolver. The exchange is over: forgetting it now keeps the
            // map as small as what is in flight, which is most of its cost. Unless
            // a local resolver's answer to it is still to come (records from two
            // CPUs can reach the linker out of order): that one still needs it,
            // and expiry forgets it.
            (true, true) => {
                let resolver = match self.exchanges.entry(key) {
                    Entry::Occupied(exchange) => {
                        let known = exchange.get();
                        if known.answered || known.resolver.is_none() {
                            exchange.remove().resolver
                        } else {
                            known.resolver.clone()
                        }
                    }
                    Entry::Vacant(_) => None,
                };
                if let Some((_, clients)) = self.upstream.get(&(pid, question.clone(), id)) {
                    record.on_behalf_of = clients.clone();
                    self.linked += 1;
                } else if let Some(resolver) = resolver {
                    record.via = Some(resolver);
                    self.linked += 1;
                }
            }
        }
    }

    /// Updates (or starts) an exchange; once both ends are known it waits for the
    /// resolver to go upstream.
    fn note(&mut self, key: ExchangeKey, now: i64, update: impl FnOnce(&mut Exchange)) {
        self.expire_oldest(now);
        // Every exchange remembered has an entry here (finished ones may too), so
        // bounding this bounds both.
        if self.exchange_order.len() >= MAX_EXCHANGES
            && !self.exchanges.contains_key(&key)
            && let Some((time, oldest)) = self.exchange_order.pop_front()
        {
            forget_exchange(&mut self.exchanges, time, &oldest);
        }
        // One lookup: the exchange is either known or started here.
        let exchange = match self.exchanges.entry(key.clone()) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => {
                self.exchange_order.push_back((now, new.key().clone()));
                new.insert(Exchange {
                    time_ns: now,
                    ..Exchange::default()
                })
            }
        };
        let had_both = exchange.client.is_some() && exchange.resolver.is_some();
        update(exchange);
        if !had_both
            && let (Some(_), Some(resolver)) = (&exchange.client, &exchange.resolver)
            && let Some(resolver_pid) = resolver.pid
        {
            self.asks
                .entry((resolver_pid, key.question.clone()))
                .or_default()
                .push(key);
        }
    }

    /// The clients whose recent queries for `question` the resolver `pid` has not
    /// yet gone upstream for; marks their exchanges as sent upstream.
    fn take_asks(&mut self, pid: u32, question: &QuestionKey, now: i64) -> Vec<Arc<ProcessInfo>> {
        let Some(keys) = self.asks.remove(&(pid, question.clone())) else {
            return Vec::new();
        };
        let mut clients: Vec<Arc<ProcessInfo>> = Vec::new();
        for key in keys {
            let Some(exchange) = self.exchanges.get_mut(&key) else {
                continue;
            };
            if now - exchange.time_ns > LINK_WINDOW_NS {
                continue;
            }
            exchange.upstream = true;
            if let Some(client) = &exchange.client
                && !clients.iter().any(|known| known.pid == client.pid)
            {
                clients.push(Arc::clone(client));
            }
        }
        clients
    }

    fn remember_upstream(&mut self, key: UpstreamKey, now: i64, clients: Vec<Arc<ProcessInfo>>) {
        if self.upstream.len() >= MAX_UPSTREAM
            && let Some((_, oldest)) = self.upstream_order.pop_front()
        {
            self.upstream.remove(&oldest);
        }
        self.upstream_order.push_back((now, key.clone()));
        self.upstream.insert(key, (now, clients));
    }

    /// Forgets exchanges and upstream queries older than the TTL.
    /// Forgets everything older than its TTL, and the asks no upstream query came
    /// for in time (a walk over all of them: from `tick`, not per message).
    pub fn expire(&mut self, now: i64) {
        self.expire_oldest(now);
        let exchanges = &self.exchanges;
        self.asks.retain(|_, keys| {
            keys.retain(|key| {
                exchanges
                    .get(key)
                    .is_some_and(|e| now - e.time_ns <= LINK_WINDOW_NS)
            });
            !keys.is_empty()
        });
    }

    /// Pops what is past its TTL from the fronts of the time-ordered queues: cheap
    /// enough for every message.
    fn expire_oldest(&mut self, now: i64) {
        while let Some((time, _)) = self.exchange_order.front() {
            if now - time <= EXCHANGE_TTL_NS {
                break;
            }
            if let Some((time, key)) = self.exchange_order.pop_front() {
                forget_exchange(&mut self.exchanges, time, &key);
            }
        }
        while let Some((time, _)) = self.upstream_order.front() {
            if now - time <= EXCHANGE_TTL_NS {
                break;
            }
            if let Some((_, key)) = self.upstream_order.pop_front() {
                self.upstream.remove(&key);
            }
        }
        while let Some((time, _)) = self.libc_order.front() {
            if now - time <= LIBC_CALL_TTL_NS {
                break;
            }
            if let Some((_, key)) = self.libc_order.pop_front() {
                forget_oldest_call(&mut self.libc_calls, &key);
            }
        }
    }
}

/// Forgets the exchange `key` started at `time`, unless it is over already and
/// the key is in use again (the same client port, id and question).
fn forget_exchange(exchanges: &mut HashMap<ExchangeKey, Exchange>, time: i64, key: &ExchangeKey) {
    if exchanges
        .get(key)
        .is_some_and(|exchange| exchange.time_ns == time)
    {
        exchanges.remove(key);
    }
}

/// Drops the oldest call remembered for `key` (calls are kept in time order, per
/// name and overall, so the oldest overall is the oldest of its name).
fn forget_oldest_call(calls: &mut HashMap<String, VecDeque<LibcCall>>, key: &str) {
    if let Some(queue) = calls.get_mut(key) {
        queue.pop_front();
        if queue.is_empty() {
            calls.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DnsContent, DnsMessage, Question};

    impl ResolverLinker {
        /// [`Self::annotate`] with the key made from the record's own message.
        fn annotate_own(&mut self, record: &mut MessageRecord) {
            let question = record.dns.as_deref().and_then(QuestionKey::of);
            self.annotate(record, question.as_ref());
        }
    }

    const APP: u32 = 812;
    const RESOLVER: u32 = 300;

    fn process(pid: u32, comm: &str) -> Arc<ProcessInfo> {
        Arc::new(ProcessInfo {
            pid: Some(pid),
            comm: Some(comm.into()),
            ..ProcessInfo::default()
        })
    }

    /// A message as `pid` saw it on its socket `local`, talking to `remote`.
    fn message(
        time_ns: i64,
        pid: u32,
        direction: Direction,
        response: bool,
        local: (&str, u16),
        remote: (&str, u16),
        id: u16,
    ) -> MessageRecord {
        let local_ip: IpAddr = local.0.parse().unwrap();
        let remote_ip: IpAddr = remote.0.parse().unwrap();
        let ((src, sport), (dst, dport)) = match direction {
            Direction::Sent => ((local_ip, local.1), (remote_ip, remote.1)),
            Direction::Received => ((remote_ip, remote.1), (local_ip, local.1)),
        };
        MessageRecord {
            kind: "message".into(),
            time: crate::record::Rfc3339(time_ns),
            time_ns,
            direction,
            transport: Transport::Udp,
            src,
            sport,
            dst,
            dport,
            ifindex: 1,
            interface: None,
            socket_cookie: 1,
            socket_cgroup_id: 1,
            process: process(pid, if pid == APP { "curl" } else { "dnsmasq" }),
            message_len: 40,
            captured_len: 40,
            dns: Some(Arc::new(DnsMessage::new(
                id,
                DnsContent {
                    response,
                    questions: vec![Question {
                        name: "GitHub.com.".into(),
                        qtype: "A".into(),
                        class: "IN".into(),
                    }],
                    ..DnsContent::default()
                },
            ))),
            malformed: None,
            pair: None,
            via: None,
            on_behalf_of: Vec::new(),
            from_cache: None,
        }
    }

    const APP_SOCKET: (&str, u16) = ("127.0.0.1", 40000);
    const RESOLVER_SOCKET: (&str, u16) = ("127.0.0.1", 53);
    const UPSTREAM_SOCKET: (&str, u16) = ("198.18.0.2", 53);
    const RESOLVER_OUT: (&str, u16) = ("198.18.0.1", 50000);

    fn client_exchange(linker: &mut ResolverLinker, t: i64, id: u16) {
        let mut sent = message(
            t,
            APP,
            Direction::Sent,
            false,
            APP_SOCKET,
            RESOLVER_SOCKET,
            id,
        );
        let mut received = message(
            t + 1,
            RESOLVER,
            Direction::Received,
            false,
            RESOLVER_SOCKET,
            APP_SOCKET,
            id,
        );
        linker.annotate_own(&mut sent);
        linker.annotate_own(&mut received);
    }

    #[test]
    fn an_upstream_query_is_linked_to_the_client_behind_it() {
        let mut linker = ResolverLinker::default();
        client_exchange(&mut linker, 1_000, 7);
        let mut upstream = message(
            2_000,
            RESOLVER,
            Direction::Sent,
            false,
            RESOLVER_OUT,
            UPSTREAM_SOCKET,
            99,
        );
        linker.annotate_own(&mut upstream);
        assert_eq!(upstream.on_behalf_of, [process(APP, "curl")]);
        let mut answer = message(
            3_000,
            RESOLVER,
            Direction::Received,
            true,
            RESOLVER_OUT,
            UPSTREAM_SOCKET,
            99,
        );
        linker.annotate_own(&mut answer);
        assert_eq!(answer.on_behalf_of, [process(APP, "curl")]);
        let mut to_client = answer_sent(4_000, 7);
        linker.annotate_own(&mut to_client);
        assert_eq!(to_client.from_cache, Some(false));
        assert_eq!(to_client.on_behalf_of, [process(APP, "curl")]);
        let mut at_client = answer_received(5_000, 7);
        linker.annotate_own(&mut at_client);
        assert_eq!(at_client.via, Some(process(RESOLVER, "dnsmasq")));
        assert!(at_client.on_behalf_of.is_empty());
        // Both exchanges (client ↔ resolver, resolver ↔ upstream) are over.
        assert!(linker.exchanges.is_empty());
    }

    /// The resolver's answer to the client, as the resolver sent it.
    fn answer_sent(time_ns: i64, id: u16) -> MessageRecord {
        message(
            time_ns,
            RESOLVER,
            Direction::Sent,
            true,
            RESOLVER_SOCKET,
            APP_SOCKET,
            id,
        )
    }

    /// The resolver's answer, as the client received it.
    fn answer_received(time_ns: i64, id: u16) -> MessageRecord {
        message(
            time_ns,
            APP,
            Direction::Received,
            true,
            APP_SOCKET,
            RESOLVER_SOCKET,
            id,
        )
    }

    /// The resolver answers the client, and the client receives it: `via`.
    fn answer_client(linker: &mut ResolverLinker, t: i64, id: u16) -> MessageRecord {
        let mut to_client = answer_sent(t, id);
        linker.annotate_own(&mut to_client);
        let mut at_client = answer_received(t + 1, id);
        linker.annotate_own(&mut at_client);
        at_client
    }

    /// The client's received answer reaches the linker before the resolver's
    /// sent one (two CPUs' records out of order): the exchange waits for it.
    #[test]
    fn an_answer_seen_first_at_the_client_leaves_the_exchange_for_the_resolver() {
        let mut linker = ResolverLinker::default();
        client_exchange(&mut linker, 1_000, 7);
        let mut at_client = answer_received(2_000, 7);
        linker.annotate_own(&mut at_client);
        assert_eq!(at_client.via, Some(process(RESOLVER, "dnsmasq")));
        assert_eq!(linker.exchanges.len(), 1);
        let mut to_client = answer_sent(1_999, 7);
        linker.annotate_own(&mut to_client);
        assert_eq!(to_client.on_behalf_of, [process(APP, "curl")]);
        assert_eq!(to_client.from_cache, Some(true));
        // A client talking to a resolver that is not local: nothing to wait for.
        let mut remote = ResolverLinker::default();
        let mut sent = message(
            1_000,
            APP,
            Direction::Sent,
            false,
            APP_SOCKET,
            UPSTREAM_SOCKET,
            9,
        );
        remote.annotate_own(&mut sent);
        let mut answer = message(
            2_000,
            APP,
            Direction::Received,
            true,
            APP_SOCKET,
            UPSTREAM_SOCKET,
            9,
        );
        remote.annotate_own(&mut answer);
        assert_eq!(answer.via, None);
        assert!(remote.exchanges.is_empty());
    }

    #[test]
    fn a_finished_exchange_is_forgotten_and_its_key_can_start_again() {
        let mut linker = ResolverLinker::default();
        client_exchange(&mut linker, 1_000, 7);
        assert_eq!(linker.exchanges.len(), 1);
        let answered = answer_client(&mut linker, 2_000, 7);
        assert_eq!(answered.via, Some(process(RESOLVER, "dnsmasq")));
        assert!(linker.exchanges.is_empty());
        // A second answer to the same exchange finds nothing to link.
        assert_eq!(answer_client(&mut linker, 2_500, 7).via, None);
        // The client asks again from the same port with the same id: the first
        // exchange's expiry must not take the second one with it.
        client_exchange(&mut linker, 3_000, 7);
        assert_eq!(linker.exchange_order.len(), 2);
        linker.expire(1_000 + EXCHANGE_TTL_NS + 1);
        assert_eq!(linker.exchange_order.len(), 1);
        assert_eq!(linker.exchanges.len(), 1);
        let answered = answer_client(&mut linker, 4_000, 7);
        assert_eq!(answered.via, Some(process(RESOLVER, "dnsmasq")));
    }

    #[test]
    fn an_answer_without_an_upstream_query_is_from_the_cache() {
        let mut linker = ResolverLinker::default();
        client_exchange(&mut linker, 1_000, 8);
        let mut to_client = answer_sent(2_000, 8);
        linker.annotate_own(&mut to_client);
        assert_eq!(to_client.from_cache, Some(true));
    }

    #[test]
    fn an_upstream_query_long_after_the_client_is_not_linked() {
        let mut linker = ResolverLinker::default();
        client_exchange(&mut linker, 1_000, 9);
        let mut upstream = message(
            1_000 + LINK_WINDOW_NS + 10,
            RESOLVER,
            Direction::Sent,
            false,
            RESOLVER_OUT,
            UPSTREAM_SOCKET,
            99,
        );
        linker.annotate_own(&mut upstream);
        assert!(upstream.on_behalf_of.is_empty());
    }

    const CALLER: u32 = 4242;
    const RESOLVED: u32 = 150;

    fn lookup(time_ns: i64, pid: u32, name: &str) -> LookupRecord {
        LookupRecord {
            kind: "lookup".into(),
            time: crate::record::Rfc3339(time_ns),
            time_ns,
            function: "getaddrinfo".into(),
            name: name.into(),
            process: ProcessInfo {
                pid: Some(pid),
                comm: Some("python3".into()),
                ..ProcessInfo::default()
            }
            .into(),
            answer: None,
        }
    }

    #[test]
    fn a_daemon_query_after_a_libc_call_is_for_the_caller() {
        let mut linker = ResolverLinker::default();
        // The name as the application wrote it; the question is "GitHub.com.".
        linker.lookup(&lookup(1_000, CALLER, "github.COM"));
        let mut query = message(
            2_000,
            RESOLVED,
            Direction::Sent,
            false,
            RESOLVER_OUT,
            UPSTREAM_SOCKET,
            5,
        );
        linker.annotate_own(&mut query);
        let behalf: Vec<_> = query.on_behalf_of.iter().map(|p| p.pid).collect();
        assert_eq!(behalf, [Some(CALLER)]);
        // Its AAAA twin too, and the answers.
        let mut twin = message(
            2_100,
            RESOLVED,
            Direction::Sent,
            false,
            RESOLVER_OUT,
            UPSTREAM_SOCKET,
            6,
        );
        Arc::make_mut(twin.dns.as_mut().unwrap()).questions[0].qtype = "AAAA".into();
        linker.annotate_own(&mut twin);
        assert_eq!(twin.on_behalf_of.first().and_then(|p| p.pid), Some(CALLER));
        let mut answer = message(
            3_000,
            RESOLVED,
            Direction::Received,
            true,
            RESOLVER_OUT,
            UPSTREAM_SOCKET,
            5,
        );
        linker.annotate_own(&mut answer);
        assert_eq!(
            answer.on_behalf_of.first().and_then(|p| p.pid),
            Some(CALLER)
        );
        assert!(answer.on_behalf_of[0].from_libc_call());
    }

    #[test]
    fn a_caller_that_sends_its_own_query_is_linked_to_nobody() {
        let mut linker = ResolverLinker::default();
        linker.lookup(&lookup(1_000, CALLER, "github.com"));
        let mut own = message(
            1_500,
            CALLER,
            Direction::Sent,
            false,
            APP_SOCKET,
            UPSTREAM_SOCKET,
            5,
        );
        linker.annotate_own(&mut own);
        assert!(own.on_behalf_of.is_empty());
        // A forwarder then asking upstream for it is not linked through the lookup.
        let mut upstream = message(
            2_000,
            RESOLVER,
            Direction::Sent,
            false,
            RESOLVER_OUT,
            UPSTREAM_SOCKET,
            6,
        );
        linker.annotate_own(&mut upstream);
        assert!(upstream.on_behalf_of.is_empty());
    }

    #[test]
    fn libc_calls_outside_the_window_or_for_other_names_link_nothing() {
        let mut linker = ResolverLinker::default();
        linker.lookup(&lookup(1_000, CALLER, "github.com"));
        linker.lookup(&lookup(1_000 + LINK_WINDOW_NS, CALLER + 1, "example.com"));
        let mut late = message(
            1_000 + LINK_WINDOW_NS + 10,
            RESOLVED,
            Direction::Sent,
            false,
            RESOLVER_OUT,
            UPSTREAM_SOCKET,
            5,
        );
        linker.annotate_own(&mut late);
        assert!(late.on_behalf_of.is_empty());
        linker.expire(1_000 + LIBC_CALL_TTL_NS + 1);
        assert!(!linker.libc_calls.contains_key("github.com"));
        assert!(linker.libc_calls.contains_key("example.com"));
    }

    #[test]
    fn libc_calls_are_bounded() {
        let mut linker = ResolverLinker::default();
        for i in 0..(MAX_LIBC_CALLS as i64 + 100) {
            linker.lookup(&lookup(i, CALLER, &format!("n{}.test", i % 1000)));
        }
        let held: usize = linker.libc_calls.values().map(VecDeque::len).sum();
        assert!(held <= MAX_LIBC_CALLS, "{held}");
        assert_eq!(held, linker.libc_order.len());
    }

    #[test]
    fn memory_is_bounded() {
        let mut linker = ResolverLinker::default();
        for i in 0..(MAX_EXCHANGES as i64 + 1_000) {
            let mut sent = message(
                i,
                APP,
                Direction::Sent,
                false,
                APP_SOCKET,
                RESOLVER_SOCKET,
                i as u16,
            );
            sent.sport = (i % 60_000) as u16;
            linker.annotate_own(&mut sent);
        }
        assert!(linker.exchanges.len() <= MAX_EXCHANGES);
        assert!(linker.exchange_order.len() <= MAX_EXCHANGES);
    }
}
