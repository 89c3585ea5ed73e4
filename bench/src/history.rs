//! Turns the [`World`] into a month of DNS messages, in time order, as the
//! recorder would have seen them: for each lookup the client's query and the
//! answer it received, and — when it went through the host's stub resolver on
//! 127.0.0.53 — the stub's side of both, plus the stub's own query upstream when
//! its cache had no fresh answer (TTLs count down in cached answers).

use std::{collections::HashMap, net::IpAddr};

use dnsq_recorder::{
    dns::QuestionKey,
    record::{
        Attribution, Direction, DnsContent, DnsFlags, DnsMessage, Edns, Malformed, MessageRecord,
        Pairing, ProcessInfo, Question, ResourceRecord, Rfc3339, Transport,
    },
    resolvers::ResolverLinker,
};

use crate::{
    rng::Rng,
    world::{Class, HOST_ADDRESS, Kind, LOOPBACK, Program, STUB_ADDRESS, UPSTREAMS, World},
};

const NS_PER_SEC: i64 = 1_000_000_000;
const MINUTES_PER_DAY: usize = 24 * 60;

/// Maps "how far through the history" (0..1, by message count) to a time, so that
/// the rate follows the day (quiet nights, busy afternoons, quieter weekends) and
/// the history ends exactly at its end time.
struct Warp {
    start_ns: i64,
    /// Cumulative share of the messages at the end of each minute.
    cumulative: Vec<f64>,
}

impl Warp {
    fn new(start_ns: i64, days: u32) -> Self {
        let minutes = days as usize * MINUTES_PER_DAY;
        let mut total = 0.0;
        let mut cumulative = Vec::with_capacity(minutes);
        for minute in 0..minutes {
            let day = minute / MINUTES_PER_DAY;
            let hour = (minute % MINUTES_PER_DAY) as f64 / 60.0;
            let daytime = ((hour - 7.0) / 15.0 * std::f64::consts::PI).sin().max(0.0);
            let weekend = if day % 7 >= 5 { 0.6 } else { 1.0 };
            total += (0.25 + 0.75 * daytime) * weekend;
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        Self {
            start_ns,
            cumulative,
        }
    }

    fn time(&self, fraction: f64) -> i64 {
        let minute = self.cumulative.partition_point(|&c| c <= fraction);
        let minute = minute.min(self.cumulative.len() - 1);
        let before = if minute == 0 {
            0.0
        } else {
            self.cumulative[minute - 1]
        };
        let within = ((fraction - before) / (self.cumulative[minute] - before)).clamp(0.0, 1.0);
        self.start_ns + ((minute as f64 + within) * 60.0 * NS_PER_SEC as f64) as i64
    }
}

/// What the manifest reports about the history, and what the benchmark asks it.
#[derive(Default)]
pub struct Tally {
    /// Answers clients received, by address.
    pub addresses: HashMap<IpAddr, u64>,
    /// Queries clients sent, by command.
    pub commands: HashMap<&'static str, u64>,
    /// Queries clients sent, by name index.
    pub names: HashMap<usize, u64>,
    pub nxdomain: u64,
    pub responses: u64,
    pub lookups: u64,
    pub cache_misses: u64,
}

pub struct Generator<'w> {
    world: &'w World,
    rng: Rng,
    warp: Warp,
    target: u64,
    emitted: u64,
    last_ns: i64,
    next_cookie: u64,
    /// (name, qtype) → when the stub's cached answer expires.
    stub_cache: HashMap<(usize, &'static str), i64>,
    rotation: usize,
    /// The recorder's own linking of clients, the stub and its upstream queries
    /// (`via`, `on_behalf_of`, `from_cache`), applied as the pipeline applies it.
    linker: ResolverLinker,
    /// Message indexes whose times the manifest wants, and the times.
    marks: Vec<(u64, Option<i64>)>,
    pub tally: Tally,
    pub first_ns: Option<i64>,
}

/// One query's client side: who asks, from where, how.
struct Client<'a> {
    program: &'a Program,
    process: ProcessInfo,
    local: IpAddr,
    port: u16,
    cookie: u64,
    transport: Transport,
    edns: Option<Edns>,
}

impl<'w> Generator<'w> {
    pub fn new(world: &'w World, seed: u64, target: u64, start_ns: i64, days: u32) -> Self {
        Self {
            world,
            rng: Rng::new(seed ^ 0x6869_7374_6f72_7921),
            warp: Warp::new(start_ns, days),
            target,
            emitted: 0,
            last_ns: start_ns,
            next_cookie: 10_000,
            stub_cache: HashMap::new(),
            rotation: 0,
            linker: ResolverLinker::default(),
            marks: Vec::new(),
            tally: Tally::default(),
            first_ns: None,
        }
    }

    /// Remembers the time of the message at `index` (0-based, in time order).
    pub fn mark(&mut self, index: u64) {
        self.marks.push((index, None));
    }

    pub fn marked(&self, index: u64) -> Option<i64> {
        self.marks
            .iter()
            .find(|(i, _)| *i == index)
            .and_then(|(_, t)| *t)
    }

    pub fn last_ns(&self) -> i64 {
        self.last_ns
    }

    /// Appends about `max` more messages (whole lookups); false once the history
    /// is complete.
    pub fn fill(&mut self, out: &mut Vec<MessageRecord>, max: usize) -> bool {
        let mut lookup = Vec::new();
        let limit = out.len().saturating_add(max);
        while out.len() < limit && self.emitted < self.target {
            lookup.clear();
            self.lookup(&mut lookup);
            for mut record in lookup.drain(..) {
                if self.emitted == self.target {
                    break;
                }
                let question = record.dns.as_deref().and_then(QuestionKey::of);
                self.linker.annotate(&mut record, question.as_ref());
                self.emit(record, out);
            }
        }
        self.linker.expire(self.last_ns);
        self.emitted < self.target
    }

    fn emit(&mut self, record: MessageRecord, out: &mut Vec<MessageRecord>) {
        for mark in &mut self.marks {
            if mark.0 == self.emitted {
                mark.1 = Some(record.time_ns);
            }
        }
        self.first_ns.get_or_insert(record.time_ns);
        self.last_ns = record.time_ns;
        self.emitted += 1;
        out.push(record);
    }

    fn cookie(&mut self) -> u64 {
        self.next_cookie += self.rng.between(1, 3);
        self.next_cookie
    }

    fn port(&mut self) -> u16 {
        self.rng.between(32_768, 60_999) as u16
    }

    /// One application lookup (one or more queries on one socket).
    fn lookup(&mut self, out: &mut Vec<MessageRecord>) {
        let world = self.world;
        let fraction = self.emitted as f64 / self.target as f64;
        let mut t = self.warp.time(fraction).max(self.last_ns + 1_000);
        let program = &world.programs[world.program_choice.sample(&mut self.rng)];
        let (name, qtypes) = self.choose(program);
        let process = self.process(program, fraction);
        let transport = if self.rng.chance(0.003) {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let edns = matches!(program.class, Class::Browser)
            .then_some(Edns {
                udp_size: 1_232,
                version: 0,
                dnssec_ok: false,
            })
            .filter(|_| program.container.is_none());
        let client = Client {
            program,
            process,
            local: program.container.map_or(LOOPBACK, IpAddr::V4),
            port: self.port(),
            cookie: self.cookie(),
            transport,
            edns,
        };
        self.tally.lookups += 1;
        if self.rng.chance(0.000_2) {
            t = self.malformed(&client, t, out);
        }
        for qtype in qtypes {
            *self.tally.commands.entry(program.comm).or_default() += 1;
            *self.tally.names.entry(name).or_default() += 1;
            t = if program.container.is_some() {
                self.direct_query(&client, name, qtype, t, out)
            } else {
                self.stub_query(&client, name, qtype, t, out)
            };
            t += self.rng.between(20_000, 200_000) as i64;
        }
    }

    fn choose(&mut self, program: &Program) -> (usize, &'static [&'static str]) {
        let world = self.world;
        let rng = &mut self.rng;
        let name = match program.class {
            Class::Browser => world.popularity.sample(rng),
            Class::Service | Class::Batch => program.workset[program.workset_choice.sample(rng)],
            Class::Crawler => rng.below(world.names.len()),
            Class::Mail | Class::TxtChecker => world.apexes[world.apex_popularity.sample(rng)],
        };
        let qtypes: &'static [&'static str] = match program.class {
            Class::Mail => &["MX", "A"],
            Class::TxtChecker => &["TXT"],
            _ => {
                let roll = rng.unit();
                if roll < 0.62 {
                    &["A", "AAAA"]
                } else if roll < 0.88 {
                    &["A"]
                } else if roll < 0.92 {
                    &["AAAA"]
                } else if roll < 0.95 {
                    if program.class == Class::Browser {
                        &["HTTPS", "A", "AAAA"]
                    } else {
                        &["A"]
                    }
                } else if roll < 0.98 {
                    &["TXT"]
                } else {
                    &["MX"]
                }
            }
        };
        (name, qtypes)
    }

    fn process(&mut self, program: &Program, fraction: f64) -> ProcessInfo {
        let roll = self.rng.unit();
        if roll < 0.003 {
            return ProcessInfo {
                attribution: Some(Attribution::Unknown),
                ..ProcessInfo::default()
            };
        }
        let attribution = if roll < 0.013 {
            Attribution::SocketLate
        } else {
            Attribution::Socket
        };
        let pid = program.incarnation(fraction);
        let (tid, thread) = if program.threads.is_empty() {
            (pid, program.comm)
        } else {
            let k = self.rng.below(program.threads.len());
            (pid + 1 + k as u32, program.threads[k])
        };
        identity(program, pid, tid, thread, attribution)
    }

    fn stub_process(&self, fraction: f64) -> ProcessInfo {
        let stub = &self.world.stub;
        let pid = stub.incarnation(fraction);
        identity(stub, pid, pid, stub.comm, Attribution::Socket)
    }

    /// Client → stub on loopback, stub → upstream on a miss, and back.
    fn stub_query(
        &mut self,
        client: &Client<'_>,
        name: usize,
        qtype: &'static str,
        t: i64,
        out: &mut Vec<MessageRecord>,
    ) -> i64 {
        let fraction = self.emitted as f64 / self.target as f64;
        let stub = self.stub_process(fraction);
        let stub_cookie = 500 + u64::from(stub.pid.unwrap_or(0));
        let id = self.rng.next_u64() as u16;
        let query = self.query(name, qtype, id, client.edns);
        let lo = |direction, process: &ProcessInfo, cookie, time_ns, dns, pair| Message {
            direction,
            transport: client.transport,
            src: client.local,
            sport: client.port,
            dst: STUB_ADDRESS,
            dport: 53,
            ifindex: 1,
            interface: Some("lo"),
            cookie,
            process: process.clone(),
            time_ns,
            dns,
            pair,
        };
        let query_out = lo(
            Direction::Sent,
            &client.process,
            client.cookie,
            t,
            query.clone(),
            None,
        );
        let t_in = t + self.rng.between(5_000, 20_000) as i64;
        let query_in = lo(
            Direction::Received,
            &stub,
            stub_cookie,
            t_in,
            query.clone(),
            None,
        );
        out.push(query_out.record(&client.process));
        out.push(query_in.record(&stub));

        let fresh = self
            .stub_cache
            .get(&(name, qtype))
            .is_some_and(|&expires| expires > t_in + NS_PER_SEC);
        let (t_answer, remaining) = if fresh {
            let expires = self.stub_cache[&(name, qtype)];
            let t_answer = t_in + self.rng.between(20_000, 150_000) as i64;
            (
                t_answer,
                Some(((expires - t_answer) / NS_PER_SEC).max(1) as u32),
            )
        } else {
            self.tally.cache_misses += 1;
            let upstream_id = self.rng.next_u64() as u16;
            let edns = Some(Edns {
                udp_size: 1_232,
                version: 0,
                dnssec_ok: false,
            });
            let upstream_query = self.query(name, qtype, upstream_id, edns);
            let upstream_response = self.response(&upstream_query, name, qtype, None);
            let ttl = upstream_response
                .answers
                .iter()
                .chain(&upstream_response.authority)
                .map(|rr| rr.ttl)
                .min()
                .unwrap_or(60);
            let t_up = t_in + self.rng.between(15_000, 60_000) as i64;
            let latency = self.rng.lognormal(12e6, 0.8).clamp(300e3, 2e9) as i64;
            let cookie = self.cookie();
            let port = self.port();
            let upstream = UPSTREAMS[usize::from(self.rng.chance(0.2))];
            let wire = |direction, time_ns, dns, pair| Message {
                direction,
                transport: Transport::Udp,
                src: HOST_ADDRESS,
                sport: port,
                dst: upstream,
                dport: 53,
                ifindex: 2,
                interface: Some("eth0"),
                cookie,
                process: stub.clone(),
                time_ns,
                dns,
                pair,
            };
            out.push(wire(Direction::Sent, t_up, upstream_query, None).record(&stub));
            let pair = Pairing {
                query_time_ns: t_up,
                latency_ns: latency as u64,
            };
            let response_in = wire(
                Direction::Received,
                t_up + latency,
                upstream_response,
                Some(pair),
            );
            out.push(response_in.record(&stub));
            self.stub_cache
                .insert((name, qtype), t_up + latency + i64::from(ttl) * NS_PER_SEC);
            (
                t_up + latency + self.rng.between(20_000, 80_000) as i64,
                None,
            )
        };
        let response = self.response(&query, name, qtype, remaining);
        self.count_answers(&response);
        let response_out = Message {
            direction: Direction::Sent,
            src: STUB_ADDRESS,
            sport: 53,
            dst: client.local,
            dport: client.port,
            ..lo(
                Direction::Sent,
                &stub,
                stub_cookie,
                t_answer,
                response.clone(),
                Some(Pairing {
                    query_time_ns: t_in,
                    latency_ns: (t_answer - t_in) as u64,
                }),
            )
        };
        out.push(response_out.record(&stub));
        let t_back = t_answer + self.rng.between(5_000, 30_000) as i64;
        let response_in = Message {
            src: STUB_ADDRESS,
            sport: 53,
            dst: client.local,
            dport: client.port,
            ..lo(
                Direction::Received,
                &client.process,
                client.cookie,
                t_back,
                response,
                Some(Pairing {
                    query_time_ns: t,
                    latency_ns: (t_back - t) as u64,
                }),
            )
        };
        out.push(response_in.record(&client.process));
        t_back
    }

    /// A container asking the upstream resolver itself.
    fn direct_query(
        &mut self,
        client: &Client<'_>,
        name: usize,
        qtype: &'static str,
        t: i64,
        out: &mut Vec<MessageRecord>,
    ) -> i64 {
        let id = self.rng.next_u64() as u16;
        let query = self.query(name, qtype, id, client.edns);
        let response = self.response(&query, name, qtype, None);
        self.count_answers(&response);
        let latency = self.rng.lognormal(8e6, 0.9).clamp(200e3, 2e9) as i64;
        let upstream = UPSTREAMS[0];
        let message = |direction, src, sport, dst, dport, time_ns, dns, pair| Message {
            direction,
            transport: client.transport,
            src,
            sport,
            dst,
            dport,
            ifindex: 2,
            interface: None,
            cookie: client.cookie,
            process: client.process.clone(),
            time_ns,
            dns,
            pair,
        };
        out.push(
            message(
                Direction::Sent,
                client.local,
                client.port,
                upstream,
                53,
                t,
                query,
                None,
            )
            .record(&client.process),
        );
        let pair = Pairing {
            query_time_ns: t,
            latency_ns: latency as u64,
        };
        out.push(
            message(
                Direction::Received,
                upstream,
                53,
                client.local,
                client.port,
                t + latency,
                response,
                Some(pair),
            )
            .record(&client.process),
        );
        t + latency
    }

    /// Bytes to port 53 that are not DNS (a broken client, a scan).
    fn malformed(&mut self, client: &Client<'_>, t: i64, out: &mut Vec<MessageRecord>) -> i64 {
        let len = self.rng.between(3, 60) as usize;
        let raw_hex: String = (0..len)
            .map(|_| format!("{:02x}", self.rng.next_u64() as u8))
            .collect();
        let error = if len < 12 {
            "message shorter than a DNS header"
        } else {
            "invalid label in question name"
        };
        let record = MessageRecord {
            kind: "message".into(),
            time: Rfc3339(t),
            time_ns: t,
            direction: Direction::Sent,
            transport: Transport::Udp,
            src: client.local,
            sport: client.port,
            dst: if client.program.container.is_some() {
                UPSTREAMS[0]
            } else {
                STUB_ADDRESS
            },
            dport: 53,
            ifindex: 1,
            interface: Some("lo".into()),
            socket_cookie: client.cookie,
            socket_cgroup_id: client.program.cgroup_id,
            process: client.process.clone().into(),
            message_len: len as u32,
            captured_len: len as u32,
            dns: None,
            malformed: Some(Malformed {
                error: error.to_owned(),
                raw_hex,
            }),
            pair: None,
            via: None,
            on_behalf_of: Vec::new(),
            from_cache: None,
        };
        out.push(record);
        t + 50_000
    }

    fn query(&self, name: usize, qtype: &str, id: u16, edns: Option<Edns>) -> DnsMessage {
        DnsMessage::new(
            id,
            DnsContent {
                response: false,
                opcode: "QUERY".into(),
                rcode: "NOERROR".into(),
                flags: DnsFlags {
                    rd: true,
                    ..DnsFlags::default()
                },
                questions: vec![Question {
                    name: self.world.names[name].name.clone(),
                    qtype: qtype.to_owned().into(),
                    class: "IN".into(),
                }],
                answers: Vec::new(),
                authority: Vec::new(),
                additional: Vec::new(),
                edns,
            },
        )
    }

    /// The answer to `query`; `remaining` is the TTL left in the stub's cache.
    fn response(
        &mut self,
        query: &DnsMessage,
        name: usize,
        qtype: &str,
        remaining: Option<u32>,
    ) -> DnsMessage {
        let world = self.world;
        let entry = &world.names[name];
        self.rotation = self.rotation.wrapping_add(1);
        let rotation = self.rotation;
        let mut answers = Vec::new();
        let mut authority = Vec::new();
        let mut rcode = "NOERROR";
        let rr = |owner: &str, rtype: &str, ttl: u32, data: String| ResourceRecord {
            name: owner.to_owned(),
            rtype: rtype.to_owned().into(),
            class: "IN".into(),
            ttl: remaining.map_or(ttl, |r| r.min(ttl)),
            data,
        };
        let domain = &world.domains[entry.domain];
        let soa = || {
            rr(
                domain,
                "SOA",
                300,
                format!("ns1.{domain} hostmaster.{domain} 2026100101 7200 3600 1209600 300"),
            )
        };
        match &entry.kind {
            Kind::NxDomain => {
                rcode = "NXDOMAIN";
                authority.push(soa());
            }
            Kind::Address { v4, v6, ttl } => match qtype {
                "A" => rotate(v4, rotation)
                    .for_each(|ip| answers.push(rr(&entry.name, "A", *ttl, ip.to_string()))),
                "AAAA" => rotate(v6, rotation)
                    .for_each(|ip| answers.push(rr(&entry.name, "AAAA", *ttl, ip.to_string()))),
                "TXT" if entry.apex => {
                    answers.push(rr(
                        &entry.name,
                        "TXT",
                        3_600,
                        format!("\"v=spf1 include:_spf.{domain} ~all\""),
                    ));
                    if entry.domain.is_multiple_of(3) {
                        answers.push(rr(
                            &entry.name,
                            "TXT",
                            3_600,
                            format!("\"site-verification={:016x}\"", entry.domain * 7919),
                        ));
                    }
                }
                "MX" if entry.apex => {
                    answers.push(rr(&entry.name, "MX", 3_600, format!("10 mx1.{domain}")));
                    answers.push(rr(&entry.name, "MX", 3_600, format!("20 mx2.{domain}")));
                }
                _ => {}
            },
            Kind::Alias { hops, edge, ttl } => {
                let edge = &world.edges[*edge];
                let mut owner = entry.name.as_str();
                for hop in hops.iter().map(String::as_str).chain([edge.name.as_str()]) {
                    answers.push(rr(owner, "CNAME", *ttl, hop.to_owned()));
                    owner = hop;
                }
                match qtype {
                    "A" => rotate(&edge.v4, rotation)
                        .for_each(|ip| answers.push(rr(owner, "A", 20, ip.to_string()))),
                    "AAAA" => rotate(&edge.v6, rotation)
                        .for_each(|ip| answers.push(rr(owner, "AAAA", 20, ip.to_string()))),
                    _ => {}
                }
            }
        }
        if answers.is_empty() && authority.is_empty() {
            // NODATA.
            authority.push(soa());
        }
        if rcode == "NXDOMAIN" {
            self.tally.nxdomain += 1;
        }
        DnsMessage::new(
            query.id,
            DnsContent {
                response: true,
                opcode: "QUERY".into(),
                rcode: rcode.to_owned().into(),
                flags: DnsFlags {
                    rd: true,
                    ra: true,
                    ..DnsFlags::default()
                },
                questions: query.questions.clone(),
                answers,
                authority,
                additional: Vec::new(),
                edns: query.edns,
            },
        )
    }

    fn count_answers(&mut self, response: &DnsMessage) {
        self.tally.responses += 1;
        for rr in &response.answers {
            if (rr.rtype == "A" || rr.rtype == "AAAA")
                && let Ok(ip) = rr.data.parse::<IpAddr>()
            {
                *self.tally.addresses.entry(ip).or_default() += 1;
            }
        }
    }
}

fn rotate<T>(items: &[T], by: usize) -> impl Iterator<Item = &T> {
    let n = items.len();
    (0..n).map(move |i| &items[(i + by) % n.max(1)])
}

#[allow(
    clippy::needless_update,
    reason = "fields the recorder adds later stay at their defaults"
)]
fn identity(
    program: &Program,
    pid: u32,
    tid: u32,
    thread: &str,
    attribution: Attribution,
) -> ProcessInfo {
    ProcessInfo {
        attribution: Some(attribution),
        pid: Some(pid),
        tid: Some(tid),
        uid: Some(program.uid),
        gid: Some(program.gid),
        comm: Some(program.comm.to_owned()),
        thread: Some(thread.to_owned()),
        exe: Some(program.exe.to_owned()),
        cgroup_id: Some(program.cgroup_id),
        cgroup: Some(program.cgroup.clone()),
        netns: Some(program.netns),
        // As the recorder names them from the cgroup path.
        unit: program
            .cgroup
            .rsplit('/')
            .next()
            .filter(|unit| unit.ends_with(".service") || unit.ends_with(".scope"))
            .map(str::to_owned),
        container: program
            .cgroup
            .rsplit('/')
            .next()
            .and_then(|unit| unit.strip_prefix("docker-"))
            .and_then(|id| id.strip_suffix(".scope"))
            .map(|id| format!("docker:{id}")),
        ..ProcessInfo::default()
    }
}

/// One message before it becomes a [`MessageRecord`].
struct Message {
    direction: Direction,
    transport: Transport,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    ifindex: u32,
    interface: Option<&'static str>,
    cookie: u64,
    process: ProcessInfo,
    time_ns: i64,
    dns: DnsMessage,
    pair: Option<Pairing>,
}

impl Message {
    /// `owner` is the process whose cgroup the socket belongs to (known even when
    /// the process itself is not).
    fn record(self, owner: &ProcessInfo) -> MessageRecord {
        let length = wire_length(&self.dns);
        let cgroup = owner.cgroup_id.unwrap_or(4_242);
        MessageRecord {
            kind: "message".into(),
            time: Rfc3339(self.time_ns),
            time_ns: self.time_ns,
            direction: self.direction,
            transport: self.transport,
            src: self.src,
            sport: self.sport,
            dst: self.dst,
            dport: self.dport,
            ifindex: self.ifindex,
            interface: self.interface.map(Into::into),
            socket_cookie: self.cookie,
            socket_cgroup_id: cgroup,
            process: self.process.into(),
            message_len: length,
            captured_len: length,
            dns: Some(self.dns.into()),
            malformed: None,
            pair: self.pair,
            via: None,
            on_behalf_of: Vec::new(),
            from_cache: None,
        }
    }
}

/// Roughly the message's size on the wire (names compressed after the first).
fn wire_length(dns: &DnsMessage) -> u32 {
    let question: usize = dns.questions.iter().map(|q| q.name.len() + 1 + 4).sum();
    let records: usize = dns
        .answers
        .iter()
        .chain(&dns.authority)
        .map(|rr| {
            let data = match rr.rtype.as_ref() {
                "A" => 4,
                "AAAA" => 16,
                "CNAME" => rr.data.len() / 2 + 2,
                "MX" => rr.data.len() / 2 + 2,
                _ => rr.data.len(),
            };
            2 + 10 + data
        })
        .sum();
    let edns = if dns.edns.is_some() { 11 } else { 0 };
    (12 + question + records + edns) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::World;

    fn small() -> World {
        World::build(&mut Rng::new(1), 2_000, 200)
    }

    #[test]
    fn messages_come_in_time_order_and_stop_at_the_target() {
        let world = small();
        let start = 1_790_000_000 * NS_PER_SEC;
        let mut generator = Generator::new(&world, 5, 20_000, start, 2);
        generator.mark(19_000);
        let mut all = Vec::new();
        while generator.fill(&mut all, 1_000) {}
        assert_eq!(all.len(), 20_000);
        assert!(all.windows(2).all(|w| w[0].time_ns < w[1].time_ns));
        assert!(all[0].time_ns >= start);
        assert!(all[19_999].time_ns <= start + 2 * 86_400 * NS_PER_SEC + NS_PER_SEC);
        assert_eq!(generator.marked(19_000), Some(all[19_000].time_ns));
    }

    #[test]
    fn the_mix_has_every_kind_of_answer() {
        let world = small();
        let mut generator = Generator::new(&world, 9, 50_000, 0, 1);
        let mut all = Vec::new();
        while generator.fill(&mut all, 5_000) {}
        let responses = || {
            all.iter()
                .filter_map(|m| m.dns.as_ref())
                .filter(|d| d.response)
        };
        let has = |rtype: &str| responses().any(|d| d.answers.iter().any(|a| a.rtype == rtype));
        for rtype in ["A", "AAAA", "CNAME", "TXT", "MX"] {
            assert!(has(rtype), "no {rtype} answer");
        }
        assert!(responses().any(|d| d.rcode == "NXDOMAIN"));
        assert!(all.iter().any(|m| m.malformed.is_some() || m.dns.is_some()));
        assert!(
            all.iter()
                .any(|m| m.process.attribution == Some(Attribution::Unknown))
        );
    }

    #[test]
    fn the_recorder_links_clients_through_the_stub() {
        let world = small();
        let mut generator = Generator::new(&world, 11, 20_000, 0, 1);
        let mut all = Vec::new();
        while generator.fill(&mut all, 5_000) {}
        let stub = |p: &ProcessInfo| p.comm.as_deref() == Some("systemd-resolve");
        assert!(all.iter().any(|m| m.via.as_ref().is_some_and(|p| stub(p))));
        assert!(
            all.iter()
                .any(|m| stub(&m.process) && !m.on_behalf_of.is_empty())
        );
        assert!(all.iter().any(|m| m.from_cache == Some(true)));
        assert!(all.iter().any(|m| m.from_cache == Some(false)));
    }
}
