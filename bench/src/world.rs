//! The host the history comes from: its programs (a few hundred process
//! identities over the month: restarts, threads, containers) and the names they
//! resolve (~50,000: apexes, hosts, CDN aliases with CNAME chains, names that do
//! not exist), with the addresses each resolves to (198.18.0.0/15, fd00::/8).

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::rng::{Rng, Weighted};

/// How a program chooses what to resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A browser or desktop app: the whole popularity curve.
    Browser,
    /// A daemon with a fixed set of names (backends, APIs, scrape targets).
    Service,
    /// A short-lived tool (curl, apt, git): a small set of names.
    Batch,
    /// A crawler: any name, uniformly (the long tail).
    Crawler,
    /// A mail sender: MX and A of many domains' apexes.
    Mail,
    /// A DKIM/SPF checker: TXT of domains' apexes.
    TxtChecker,
}

pub struct Program {
    pub comm: &'static str,
    pub exe: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub class: Class,
    /// Share of all lookups.
    pub weight: f64,
    /// Its names, for `Service` and `Batch` (indexes into `World::names`).
    pub workset: Vec<usize>,
    pub workset_choice: Weighted,
    /// Process identities over the month, in time order; each is alive for an
    /// equal slice of it.
    pub incarnations: Vec<u32>,
    /// Threads that resolve (name, tid offset from the pid); empty: the main
    /// thread only.
    pub threads: &'static [&'static str],
    pub cgroup: String,
    pub cgroup_id: u64,
    pub netns: u64,
    /// In a container with its own resolv.conf: asks the upstream server directly
    /// from its own address instead of the host's stub on 127.0.0.53.
    pub container: Option<Ipv4Addr>,
}

/// What a name resolves to.
pub enum Kind {
    Address {
        v4: Vec<Ipv4Addr>,
        v6: Vec<Ipv6Addr>,
        ttl: u32,
    },
    /// A CNAME chain (`hops[0]` is the first target) ending at a CDN edge name
    /// (an index into `World::edges`).
    Alias {
        hops: Vec<String>,
        edge: usize,
        ttl: u32,
    },
    NxDomain,
}

pub struct Name {
    pub name: String,
    /// Index into `World::domains`: its zone (for the SOA of negative answers).
    pub domain: usize,
    /// The zone's apex itself (has MX and TXT records).
    pub apex: bool,
    pub kind: Kind,
}

pub struct Edge {
    pub name: String,
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

pub struct World {
    pub domains: Vec<String>,
    /// Index = popularity rank (0 is the most asked).
    pub names: Vec<Name>,
    pub popularity: Weighted,
    /// Apex names, by popularity.
    pub apexes: Vec<usize>,
    pub apex_popularity: Weighted,
    pub edges: Vec<Edge>,
    pub programs: Vec<Program>,
    pub program_choice: Weighted,
    /// The host's stub resolver (systemd-resolved), one identity per boot.
    pub stub: Program,
}

const HOST_NETNS: u64 = 4_026_531_840;

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "tor", "sa", "vi", "ra", "den", "po", "lux", "qua", "zen", "fi", "mo",
    "tech", "net", "io", "bit", "data", "go", "sky", "sun", "ar", "el", "ex", "om", "ul", "cor",
    "vel", "nix", "pix", "tri", "bo", "za", "ri",
];
const TLDS: &[&str] = &[
    "com", "net", "org", "io", "de", "co.uk", "fr", "dev", "app", "cloud",
];
const HOST_LABELS: &[&str] = &[
    "api",
    "cdn",
    "static",
    "img",
    "mail",
    "login",
    "auth",
    "m",
    "app",
    "assets",
    "media",
    "telemetry",
    "update",
    "downloads",
    "docs",
    "status",
    "accounts",
    "ws",
    "push",
    "edge",
    "metrics",
    "events",
    "s3",
    "registry",
    "git",
    "vpn",
    "shop",
    "blog",
    "news",
    "video",
];

fn domain_name(rng: &mut Rng, taken: &mut HashSet<String>) -> String {
    loop {
        let parts = rng.between(2, 3);
        let mut name = String::new();
        for _ in 0..parts {
            name.push_str(SYLLABLES[rng.below(SYLLABLES.len())]);
        }
        if rng.chance(0.3) {
            name.push_str(&rng.between(1, 99).to_string());
        }
        name.push('.');
        name.push_str(TLDS[rng.below(TLDS.len())]);
        name.push('.');
        if taken.insert(name.clone()) {
            return name;
        }
    }
}

/// Addresses handed out in order from 198.18.0.0 up to (not into) the CDN range.
struct Addresses {
    next_v4: u32,
    next_v6: u64,
}

impl Addresses {
    const V4_START: u32 = u32::from_be_bytes([198, 18, 0, 1]);
    const V4_END: u32 = u32::from_be_bytes([198, 19, 192, 0]);

    fn v4(&mut self) -> Ipv4Addr {
        let ip = self.next_v4;
        self.next_v4 += 1;
        if self.next_v4 >= Self::V4_END {
            self.next_v4 = Self::V4_START;
        }
        Ipv4Addr::from(ip)
    }

    fn v6(&mut self) -> Ipv6Addr {
        self.next_v6 += 1;
        let n = self.next_v6;
        Ipv6Addr::new(
            0xfd00,
            0x18,
            (n >> 32) as u16,
            0,
            0,
            (n >> 16) as u16,
            n as u16,
            1,
        )
    }
}

impl World {
    pub fn build(rng: &mut Rng, names: usize, domains: usize) -> Self {
        let mut taken = HashSet::new();
        let domain_names: Vec<String> =
            (0..domains).map(|_| domain_name(rng, &mut taken)).collect();
        let edges = build_edges(rng, (names / 20).max(10));
        let mut addresses = Addresses {
            next_v4: Addresses::V4_START,
            next_v6: 0,
        };
        let mut list = Vec::with_capacity(names);
        let mut seen = HashSet::new();
        // Every domain's apex and www, then hosts under domains chosen by
        // popularity (popular domains have many names).
        let domain_choice = Weighted::zipf(domains, 0.8);
        let mut fixed = (0..domains).flat_map(|d| [(d, None), (d, Some("www".to_owned()))]);
        while list.len() < names {
            let (domain, label) = fixed.next().unwrap_or_else(|| {
                let d = domain_choice.sample(rng);
                let mut label = (*rng.pick(HOST_LABELS)).to_owned();
                if rng.chance(0.5) {
                    label = format!("{label}{}", rng.between(1, 40));
                }
                if rng.chance(0.2) {
                    label = format!("{label}.{}", rng.pick(&["eu", "us", "ap", "prod", "int"]));
                }
                (d, Some(label))
            });
            let apex = label.is_none();
            let name = match &label {
                None => domain_names[domain].clone(),
                Some(label) => format!("{label}.{}", domain_names[domain]),
            };
            if !seen.insert(name.clone()) {
                continue;
            }
            let kind = if rng.chance(0.04) {
                Kind::NxDomain
            } else if !apex && rng.chance(0.3) {
                alias(rng, &name, edges.len())
            } else {
                address(rng, &mut addresses, &list, domain)
            };
            list.push(Name {
                name,
                domain,
                apex,
                kind,
            });
        }
        // Popularity: a random order, so that no kind of name is favoured.
        for i in (1..list.len()).rev() {
            let j = rng.below(i + 1);
            list.swap(i, j);
        }
        let apexes: Vec<usize> = (0..list.len()).filter(|&i| list[i].apex).collect();
        let apex_popularity = Weighted::zipf(apexes.len(), 0.9);
        let popularity = Weighted::zipf(list.len(), 0.95);
        let (programs, stub) = programs(rng, &list, &popularity);
        let program_choice = Weighted::new(programs.iter().map(|p| p.weight));
        Self {
            domains: domain_names,
            names: list,
            popularity,
            apexes,
            apex_popularity,
            edges,
            programs,
            program_choice,
            stub,
        }
    }
}

fn build_edges(rng: &mut Rng, count: usize) -> Vec<Edge> {
    // 1,200 CDN addresses in 198.19.192.0/20, shared by all edge names.
    let pool = 1_200u32;
    let base = u32::from_be_bytes([198, 19, 192, 0]);
    (0..count)
        .map(|i| {
            let cdn = i % 7;
            let name = format!("e{i}.a{}.cdn{cdn}.example-cdn.net.", i % 13);
            let first = rng.below(pool as usize) as u32;
            let v4 = (0..rng.between(1, 2) as u32)
                .map(|k| Ipv4Addr::from(base + (first + k * 37) % pool))
                .collect();
            let v6 = (0..rng.between(1, 2) as u32)
                .map(|k| {
                    let n = (first + k * 37) % pool;
                    Ipv6Addr::new(0xfd00, 0xc0, cdn as u16, 0, 0, 0, (n >> 8) as u16, n as u16)
                })
                .collect();
            Edge { name, v4, v6 }
        })
        .collect()
}

fn alias(rng: &mut Rng, name: &str, edges: usize) -> Kind {
    let first = format!("{}edgekey.example-cdn.net.", name.replace('.', "-") + ".");
    let mut hops = vec![first];
    let len = match rng.below(10) {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    for k in 1..len {
        hops.push(format!(
            "h{k}-{}.cdn-route.example-cdn.net.",
            rng.below(20_000)
        ));
    }
    Kind::Alias {
        hops,
        edge: rng.below(edges),
        ttl: *rng.pick(&[300, 600, 3_600]),
    }
}

fn address(rng: &mut Rng, addresses: &mut Addresses, list: &[Name], domain: usize) -> Kind {
    let ttl = *rng.pick(&[60, 300, 300, 600, 3_600, 3_600, 86_400]);
    // Virtual hosting: the address of an earlier name of the same domain.
    if rng.chance(0.15)
        && let Some(Name {
            kind: Kind::Address { v4, v6, .. },
            ..
        }) = list
            .iter()
            .rev()
            .take(50)
            .find(|n| n.domain == domain && matches!(n.kind, Kind::Address { .. }))
    {
        return Kind::Address {
            v4: v4.clone(),
            v6: v6.clone(),
            ttl,
        };
    }
    let count = match rng.below(10) {
        0..=6 => 1,
        7..=8 => 2,
        _ => 4,
    };
    let v4 = (0..count).map(|_| addresses.v4()).collect();
    let v6 = if rng.chance(0.55) {
        (0..count.min(2)).map(|_| addresses.v6()).collect()
    } else {
        Vec::new()
    };
    Kind::Address { v4, v6, ttl }
}

/// (comm, exe, uid, class, share of lookups, incarnations, resolving threads,
/// names in its working set, in a container).
type Spec = (
    &'static str,
    &'static str,
    u32,
    Class,
    f64,
    usize,
    &'static [&'static str],
    usize,
    bool,
);

#[rustfmt::skip]
const PROGRAMS: &[Spec] = &[
    ("firefox", "/usr/lib/firefox/firefox", 1000, Class::Browser, 14.0, 8, &["DNS Resolver #1", "DNS Resolver #2", "DNS Resolver #3", "DNS Resolver #4"], 0, false),
    ("chrome", "/opt/google/chrome/chrome", 1000, Class::Browser, 10.0, 5, &["ThreadPoolForeg", "NetworkService"], 0, false),
    ("slack", "/usr/lib/slack/slack", 1000, Class::Service, 2.0, 6, &["ThreadPoolForeg", "slack"], 40, false),
    ("code", "/usr/share/code/code", 1000, Class::Service, 1.5, 5, &[], 30, false),
    ("thunderbird", "/usr/lib/thunderbird/thunderbird", 1000, Class::Service, 1.0, 4, &["DNS Resolver #1", "DNS Resolver #2"], 25, false),
    ("spotify", "/usr/share/spotify/spotify", 1000, Class::Service, 1.0, 5, &[], 20, false),
    ("zoom", "/opt/zoom/zoom", 1000, Class::Service, 1.0, 6, &[], 15, false),
    ("curl", "/usr/bin/curl", 1000, Class::Batch, 2.0, 20, &[], 15, false),
    ("wget", "/usr/bin/wget", 1000, Class::Batch, 0.5, 8, &[], 5, false),
    ("http", "/usr/lib/apt/methods/http", 42, Class::Batch, 0.5, 15, &[], 8, false),
    ("unattended-upgr", "/usr/bin/python3.11", 0, Class::Batch, 0.3, 10, &[], 6, false),
    ("snapd", "/usr/lib/snapd/snapd", 0, Class::Service, 1.0, 2, &[], 10, false),
    ("git-remote-http", "/usr/lib/git-core/git-remote-http", 1000, Class::Batch, 0.5, 20, &[], 6, false),
    ("ssh", "/usr/bin/ssh", 1000, Class::Batch, 0.5, 15, &[], 12, false),
    ("ping", "/usr/bin/ping", 1000, Class::Batch, 0.2, 10, &[], 8, false),
    ("pip", "/usr/bin/python3.11", 1000, Class::Batch, 0.3, 8, &[], 6, false),
    ("cargo", "/home/dev/.cargo/bin/cargo", 1000, Class::Batch, 0.5, 10, &[], 5, false),
    ("nginx", "/usr/sbin/nginx", 33, Class::Service, 3.0, 6, &[], 12, false),
    ("postgres", "/usr/lib/postgresql/15/bin/postgres", 113, Class::Service, 0.3, 2, &[], 4, false),
    ("python3", "/usr/bin/python3.11", 1001, Class::Service, 6.0, 4, &["python3", "ThreadPoolExecu", "asyncio_0"], 40, false),
    ("java", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java", 1002, Class::Service, 5.0, 3, &["pool-1-thread-1", "pool-1-thread-2", "pool-1-thread-3", "main"], 30, false),
    ("node", "/usr/bin/node", 1003, Class::Service, 4.0, 4, &["node", "libuv-worker"], 25, false),
    ("prometheus", "/usr/bin/prometheus", 65534, Class::Service, 6.0, 2, &[], 60, false),
    ("telegraf", "/usr/bin/telegraf", 998, Class::Service, 3.0, 2, &[], 20, false),
    ("chronyd", "/usr/sbin/chronyd", 105, Class::Service, 0.3, 3, &[], 4, false),
    ("systemd-timesyn", "/usr/lib/systemd/systemd-timesyncd", 997, Class::Service, 0.2, 3, &[], 2, false),
    ("NetworkManager", "/usr/sbin/NetworkManager", 0, Class::Service, 0.2, 2, &[], 3, false),
    ("dirmngr", "/usr/bin/dirmngr", 1000, Class::Batch, 0.1, 2, &[], 3, false),
    ("smtp", "/usr/lib/postfix/sbin/smtp", 107, Class::Mail, 2.0, 25, &[], 0, false),
    ("opendkim", "/usr/sbin/opendkim", 108, Class::TxtChecker, 1.0, 2, &[], 0, false),
    ("scrapy", "/usr/bin/python3.11", 1001, Class::Crawler, 8.0, 6, &[], 0, false),
    ("containerd", "/usr/bin/containerd", 0, Class::Service, 0.5, 2, &[], 5, false),
    ("dockerd", "/usr/sbin/dockerd", 0, Class::Service, 0.5, 2, &[], 5, false),
    ("kubelet", "/usr/bin/kubelet", 0, Class::Service, 2.0, 2, &[], 8, false),
    ("grafana", "/usr/share/grafana/bin/grafana", 472, Class::Service, 1.0, 2, &[], 10, false),
    ("postgres_export", "/usr/bin/postgres_exporter", 65534, Class::Service, 1.0, 2, &[], 3, false),
    ("node", "/usr/local/bin/node", 1000, Class::Service, 4.0, 6, &[], 35, true),
    ("gunicorn", "/usr/local/bin/python3.12", 1000, Class::Service, 3.0, 4, &[], 25, true),
    ("fluent-bit", "/fluent-bit/bin/fluent-bit", 0, Class::Service, 2.0, 2, &[], 4, true),
    ("redis-server", "/usr/local/bin/redis-server", 999, Class::Service, 0.2, 2, &[], 2, true),
];

fn programs(rng: &mut Rng, names: &[Name], popularity: &Weighted) -> (Vec<Program>, Program) {
    let mut cgroup_id = 4_000u64;
    let mut container = 0u8;
    let mut list = Vec::new();
    for &(comm, exe, uid, class, weight, incarnations, threads, workset_size, in_container) in
        PROGRAMS
    {
        cgroup_id += rng.between(1, 40);
        let (cgroup, netns, address) = if in_container {
            container += 1;
            let id: String = (0..12).map(|_| format!("{:x}", rng.below(16))).collect();
            (
                format!("/system.slice/docker-{id}.scope"),
                HOST_NETNS + 300 + u64::from(container),
                Some(Ipv4Addr::new(198, 18, 250, 1 + container)),
            )
        } else if uid == 1000 {
            (
                format!("/user.slice/user-1000.slice/user@1000.service/app.slice/app-{comm}.scope"),
                HOST_NETNS,
                None,
            )
        } else {
            (format!("/system.slice/{comm}.service"), HOST_NETNS, None)
        };
        // Working sets lean to popular names but reach into the tail.
        let mut workset = Vec::new();
        let mut chosen = HashSet::new();
        while workset.len() < workset_size {
            let name = if rng.chance(0.7) {
                popularity.sample(rng)
            } else {
                rng.below(names.len())
            };
            if chosen.insert(name) {
                workset.push(name);
            }
        }
        let workset_choice = Weighted::zipf(workset.len().max(1), 1.0);
        let incarnations = (0..incarnations)
            .map(|_| rng.between(900, 4_000_000) as u32)
            .collect();
        list.push(Program {
            comm,
            exe,
            uid,
            gid: uid,
            class,
            weight,
            workset,
            workset_choice,
            incarnations,
            threads,
            cgroup,
            cgroup_id,
            netns,
            container: address,
        });
    }
    let stub = Program {
        comm: "systemd-resolve",
        exe: "/usr/lib/systemd/systemd-resolved",
        uid: 991,
        gid: 991,
        class: Class::Service,
        weight: 0.0,
        workset: Vec::new(),
        workset_choice: Weighted::new([1.0]),
        incarnations: (0..3).map(|_| rng.between(300, 900) as u32).collect(),
        threads: &[],
        cgroup: "/system.slice/systemd-resolved.service".to_owned(),
        cgroup_id: 3_999,
        netns: HOST_NETNS,
        container: None,
    };
    (list, stub)
}

impl Program {
    /// The process identity alive at `fraction` (0..1) of the month.
    pub fn incarnation(&self, fraction: f64) -> u32 {
        let n = self.incarnations.len();
        self.incarnations[((fraction * n as f64) as usize).min(n - 1)]
    }
}

/// The host's own address (the stub's upstream traffic comes from it), and the
/// upstream resolvers.
pub const HOST_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
pub const UPSTREAMS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
];
pub const STUB_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
