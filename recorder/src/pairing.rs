//! Pairs each response with the query it answers: same socket, same peer, same DNS
//! id and same question (RFC 5452 §9.1 asks resolvers to match on all of these).
//! Works for both ends of a conversation: a client sends the query and receives the
//! response on its socket, a server receives the query and sends the response.

use std::{collections::VecDeque, net::IpAddr, sync::Arc};

use foldhash::HashMap;

use crate::{dns::QuestionKey, record::Pairing};

/// Entries `order` may hold beyond twice the queries in flight before it is
/// compacted.
const ORDER_SLACK: usize = 4_096;

/// Identifies a query in flight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryKey {
    pub cookie: u64,
    pub remote: (IpAddr, u16),
    pub id: u16,
    /// Lower-cased question name and type ("" when the message has none).
    pub question: QuestionKey,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    unix_ns: i64,
    generation: u64,
}

/// Queries still waiting for an answer, bounded in number and age.
pub struct Pairer {
    /// The key is shared with `order`: one copy of its strings per query.
    pending: HashMap<Arc<QueryKey>, Pending>,
    /// Insertion order, for expiry; entries whose generation no longer matches
    /// were answered or replaced and are skipped.
    order: VecDeque<(i64, u64, Arc<QueryKey>)>,
    generation: u64,
    timeout_ns: i64,
    capacity: usize,
    /// Queries that were never answered (expired or pushed out).
    pub unanswered: u64,
}

impl Pairer {
    pub fn new(timeout_ns: i64, capacity: usize) -> Self {
        Self {
            pending: HashMap::default(),
            order: VecDeque::new(),
            generation: 0,
            timeout_ns,
            capacity,
            unanswered: 0,
        }
    }

    pub fn query(&mut self, key: QueryKey, unix_ns: i64) {
        if self.pending.len() >= self.capacity {
            self.evict_oldest();
        }
        self.generation += 1;
        let generation = self.generation;
        let key = Arc::new(key);
        if self
            .pending
            .insert(
                key.clone(),
                Pending {
                    unix_ns,
                    generation,
                },
            )
            .is_some()
        {
            // A retransmission with the same id: the older copy goes unanswered.
            self.unanswered += 1;
        }
        self.order.push_back((unix_ns, generation, key));
        // Answered queries leave `pending` at once but stay in `order` until they
        // would have expired; compact now and then so `order` stays bounded by the
        // queries in flight, not by the query rate × timeout.
        // Compacting when `order` is twice the queries in flight (plus some
        // slack) keeps it near that size at any rate, at an amortized cost of
        // O(1) a query: each compaction removes at least half of it.
        if self.order.len() > 2 * self.pending.len() + ORDER_SLACK.min(self.capacity) {
            let pending = &self.pending;
            self.order.retain(|(_, generation, key)| {
                pending
                    .get(key)
                    .is_some_and(|p| p.generation == *generation)
            });
        }
    }

    /// The pairing for a response, if its query was seen.
    pub fn response(&mut self, key: &QueryKey, unix_ns: i64) -> Option<Pairing> {
        let query = self.pending.remove(key)?;
        Some(Pairing {
            query_time_ns: query.unix_ns,
            latency_ns: unix_ns.saturating_sub(query.unix_ns).max(0) as u64,
        })
    }

    /// Forgets queries older than the timeout.
    pub fn expire(&mut self, now_unix_ns: i64) {
        while let Some((at, _, _)) = self.order.front() {
            if now_unix_ns - at < self.timeout_ns {
                break;
            }
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((_, generation, key)) = self.order.pop_front() {
            if self
                .pending
                .get(&key)
                .is_some_and(|p| p.generation == generation)
            {
                self.pending.remove(&key);
                self.unanswered += 1;
                return;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> QueryKey {
        QueryKey {
            cookie: 1,
            remote: ("127.0.0.1".parse().unwrap(), 53),
            id,
            question: QuestionKey::new("example.com.".into(), "A".into()),
        }
    }

    #[test]
    fn pairs_and_measures_latency() {
        let mut p = Pairer::new(5_000_000_000, 10);
        p.query(key(1), 1_000);
        assert_eq!(
            p.response(&key(1), 3_500),
            Some(Pairing {
                query_time_ns: 1_000,
                latency_ns: 2_500
            })
        );
        // Answered once only.
        assert_eq!(p.response(&key(1), 4_000), None);
        assert!(p.is_empty());
    }

    #[test]
    fn different_question_or_socket_does_not_pair() {
        let mut p = Pairer::new(5_000_000_000, 10);
        p.query(key(1), 0);
        let mut other = key(1);
        other.question = QuestionKey::new("example.com.".into(), "AAAA".into());
        assert_eq!(p.response(&other, 1), None);
        other = key(1);
        other.cookie = 2;
        assert_eq!(p.response(&other, 1), None);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn expires_and_bounds() {
        let mut p = Pairer::new(100, 2);
        p.query(key(1), 0);
        p.query(key(2), 50);
        p.query(key(3), 60); // pushes out key(1)
        assert_eq!(p.unanswered, 1);
        assert_eq!(p.len(), 2);
        p.expire(155); // key(2) is 105 old
        assert_eq!(p.unanswered, 2);
        assert!(p.response(&key(3), 156).is_some());
        p.expire(10_000);
        assert_eq!(p.unanswered, 2, "answered queries are not counted");
        assert!(p.order.is_empty());
    }

    #[test]
    fn answered_queries_do_not_pile_up() {
        let mut p = Pairer::new(30_000_000_000, 10);
        for id in 0..1_000 {
            p.query(key(id), i64::from(id));
            assert!(p.response(&key(id), i64::from(id) + 1).is_some());
        }
        assert!(p.order.len() <= 20, "{} entries kept", p.order.len());
        assert_eq!(p.unanswered, 0);
    }
}
