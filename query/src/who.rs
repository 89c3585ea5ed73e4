//! `dnsq who IP`: every name that resolved to an IP, followed back through its
//! CNAME chain to the name the application asked for, with who asked and which
//! server answered. Reads `resolutions` (by `rdata_id`), `cnames`, and on
//! schema 3 stores `delegations` (by question name and hour): an application
//! that asked a local resolver is shown with the resolver beside it (`via`), and
//! a resolver's own resolution stands for the clients it resolved for (`for`;
//! rows of their own when their answer was not seen, `inferred`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque, btree_map, hash_map::Entry},
    net::IpAddr,
    rc::Rc,
};

use anyhow::Result;
use comfy_table::{Cell, Table};
use dnsq_recorder::store::{
    read::{ReadError, Reader, type_name},
    schema::NO_SERVER,
};
use ipnet::IpNet;
use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::{
    escape,
    facts::{self, Identities, Identity, NothingFound, Usage},
    output::{NAME_CHARS, Output, counted, keep_up_to, keep_whole, stacked},
    owner::Only,
    timearg::Window,
};

/// How many CNAMEs a chain may have, and how many names the search for one may
/// visit (a name can be the alias of many, and chains can loop).
const MAX_CHAIN: usize = 16;
const MAX_VISITED: usize = 1024;
/// Resolvers behind resolvers followed (an application → systemd-resolved →
/// dnsmasq → upstream is two).
const MAX_RESOLVER_DEPTH: usize = 4;
/// Clients of a resolver named in its table row.
const SHOWN_CLIENTS: usize = 2;
const TYPE_ANY: i64 = 255;
/// The most answered addresses a network may hold: each is read whole, and a
/// network as wide as the history would hold all of it in memory.
const MAX_ADDRESSES: usize = 4096;

/// The names from the asked one to the owner, and whether the CNAMEs between
/// them were all found.
type Chain = (Vec<Rc<str>>, bool);

pub struct Options<'a> {
    pub limit: usize,
    /// Show local resolvers' own rows in tables even when their clients are
    /// shown.
    pub resolvers: bool,
    /// Tables: a row per process, not per program (see [`by_program`]).
    pub pids: bool,
    pub only: Option<&'a Only>,
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Key {
    /// The address the answer carried (one of a network's).
    address: IpAddr,
    qname_id: i64,
    name_id: i64,
    rtype: i64,
    identity: Option<Rc<Identity>>,
    /// The local resolver the process asked.
    via: Option<Rc<Identity>>,
    /// None: the address was what the process's libc call returned, and no DNS
    /// answer of it (or of its resolver) was seen.
    server: Option<IpAddr>,
}

struct Seen {
    first_ns: i64,
    last_ns: i64,
    count: i64,
    /// For a local resolver's row: the processes it resolved the name for.
    clients: BTreeSet<Option<Rc<Identity>>>,
    /// Inferred from a resolver's answer and a client's query to it, rather
    /// than from an answer the process was seen receiving.
    inferred: bool,
    /// The process's libc call (`getaddrinfo`, `gethostbyname*`) returned the
    /// address.
    libc: bool,
    /// The processes of the row (more than one when a table makes one row of a
    /// program's runs: [`by_program`]).
    pids: usize,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            first_ns: i64::MAX,
            last_ns: i64::MIN,
            count: 0,
            clients: BTreeSet::new(),
            inferred: false,
            libc: false,
            pids: 1,
        }
    }
}

impl Seen {
    fn add(&mut self, first_ns: i64, last_ns: i64, count: i64) {
        self.first_ns = self.first_ns.min(first_ns);
        self.last_ns = self.last_ns.max(last_ns);
        self.count += count;
    }
}

/// One `resolutions` row (per hour).
struct Resolution {
    address: IpAddr,
    hour: i64,
    qname_id: i64,
    name_id: i64,
    rtype: i64,
    process_id: i64,
    /// None for a libc call's answer (`schema::NO_SERVER`).
    server: Option<IpAddr>,
    first_ns: i64,
    last_ns: i64,
    count: i64,
}

/// One `delegations` row: `client` asked the local resolver `resolver`.
struct Delegation {
    resolver: i64,
    qtype: i64,
    client: i64,
    queries: i64,
    first_ns: i64,
    last_ns: i64,
}

/// The delegations of one (question name, hour).
type Delegations = HashMap<(i64, i64), Vec<Delegation>>;

#[derive(Serialize)]
struct WhoRow<'a> {
    ip: String,
    /// The name the application asked for.
    name: &'a str,
    /// The owner name of the address record (the end of the chain).
    owner: &'a str,
    /// Asked name, CNAME targets …, owner.
    chain: Vec<&'a str>,
    /// False when the CNAMEs between `name` and `owner` were not found.
    chain_complete: bool,
    #[serde(rename = "type")]
    rtype: String,
    count: i64,
    first_seen: String,
    last_seen: String,
    first_ns: i64,
    last_ns: i64,
    process: Option<&'a Identity>,
    /// The local resolver the process asked (schema 3 stores).
    via: Option<&'a Identity>,
    /// On a local resolver's row: the processes it resolved the name for.
    #[serde(rename = "for")]
    for_clients: Vec<Option<&'a Identity>>,
    /// True when the row was inferred from the resolver's answer and the
    /// process's query to it (the process's own answer was not seen): `count`
    /// is then its queries to the resolver, `server` the resolver's.
    inferred: bool,
    /// True when the process's own libc call (`getaddrinfo`, `gethostbyname*`)
    /// returned the address (seen by a uretprobe, whichever way libc found it).
    libc: bool,
    /// The DNS server that gave the answer; null when only the libc call was
    /// seen (a daemon's cache, /etc/hosts).
    server: Option<String>,
}

/// `target`: one address, or a network (`140.82.112.0/20`): every address of
/// it that an answer carried.
pub fn run(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    target: IpNet,
    options: &Options<'_>,
) -> Result<()> {
    let conn = reader.connection();
    let network = target.prefix_len() < target.max_prefix_len();
    let nothing = || {
        let mut message = if network {
            format!("no name resolved to an address in {target}")
        } else {
            format!("no name resolved to {}", target.addr())
        };
        if let Some(only) = options.only {
            message.push_str(&format!(" for a process {}", only.filter.describe()));
        }
        NothingFound(format!("{message} {}", window.describe_hours(&out.clock)))
    };
    let addresses = addresses_in(reader, target)?;
    if addresses.is_empty() {
        return Err(nothing().into());
    }
    if addresses.len() > MAX_ADDRESSES {
        return Err(Usage(format!(
            "answers carried {} addresses in {target}, more than the {MAX_ADDRESSES} \
             one query reads: give a narrower network",
            addresses.len()
        ))
        .into());
    }
    let (first_hour, last_hour) = window.hours();
    let mut stmt = conn.prepare_cached(
        // The primary key is (rdata_id, hour, rtype, name_id, qname_id,
        // process_id, endpoint_id): a row per group already, in key order.
        "SELECT hour, qname_id, name_id, rtype, process_id, endpoint_id, \
                first_ns, last_ns, count \
         FROM resolutions WHERE rdata_id = ?1 AND hour BETWEEN ?2 AND ?3",
    )?;
    let mut resolutions = Vec::new();
    for &(rdata_id, address) in &addresses {
        let mut rows = stmt.query((rdata_id, first_hour, last_hour))?;
        while let Some(row) = rows.next()? {
            resolutions.push(Resolution {
                address,
                hour: row.get(0)?,
                qname_id: row.get(1)?,
                name_id: row.get(2)?,
                rtype: row.get(3)?,
                process_id: row.get(4)?,
                server: match row.get(5)? {
                    NO_SERVER => None,
                    id => Some(reader.endpoint(id)?.remote_ip),
                },
                first_ns: row.get(6)?,
                last_ns: row.get(7)?,
                count: row.get(8)?,
            });
        }
    }
    let delegations = delegations(reader, &resolutions)?;
    let mut identities = Identities::default();
    let mut seen = through_resolvers(reader, &mut identities, &resolutions, &delegations)?;
    fold_libc(&mut seen);
    if let Some(only) = options.only {
        seen.retain(|key, _| only.shows(key.identity.as_deref()));
    }
    if seen.is_empty() {
        return Err(nothing().into());
    }
    // Tables put the applications first: a resolver's own row goes when the
    // rows of the clients it resolved for are shown.
    let mut hidden = 0;
    if !out.json && !options.resolvers {
        let shown_via: HashSet<(IpAddr, i64, i64, i64, Rc<Identity>)> = seen
            .keys()
            .filter_map(|k| Some((k.address, k.qname_id, k.name_id, k.rtype, k.via.clone()?)))
            .collect();
        seen.retain(|key, seen| {
            let keep = seen.clients.is_empty()
                || !key.identity.as_ref().is_some_and(|identity| {
                    shown_via.contains(&(
                        key.address,
                        key.qname_id,
                        key.name_id,
                        key.rtype,
                        identity.clone(),
                    ))
                });
            hidden += usize::from(!keep);
            keep
        });
    }
    let mut found: Vec<(Key, Seen)> = if out.json || options.pids {
        seen.into_iter().collect()
    } else {
        by_program(seen)
    };
    found.sort_by(|a, b| {
        b.1.last_ns
            .cmp(&a.1.last_ns)
            .then(a.0.address.cmp(&b.0.address))
            .then(a.0.qname_id.cmp(&b.0.qname_id))
            .then(a.0.identity.cmp(&b.0.identity))
            .then(a.0.server.cmp(&b.0.server))
    });
    facts::apply_limit(&mut found, options.limit);
    if hidden > 0 {
        eprintln!(
            "dnsq: {hidden} row{} of local resolvers left out: their clients are shown \
             (--resolvers shows them)",
            if hidden == 1 { "" } else { "s" }
        );
    }

    let mut chains: HashMap<(i64, i64), Chain> = HashMap::new();
    for (key, _) in &found {
        if let Entry::Vacant(entry) = chains.entry((key.qname_id, key.name_id)) {
            entry.insert(chain(reader, key.qname_id, key.name_id)?);
        }
    }

    let mut cells = Vec::new();
    for (key, seen) in &found {
        let (chain, complete) = &chains[&(key.qname_id, key.name_id)];
        let clock = &out.clock;
        let row = WhoRow {
            ip: key.address.to_string(),
            name: &chain[0],
            owner: &chain[chain.len() - 1],
            chain: chain.iter().map(|n| &**n).collect(),
            chain_complete: *complete,
            rtype: type_name(key.rtype as u16).into_owned(),
            count: seen.count,
            first_seen: clock.rfc3339(seen.first_ns),
            last_seen: clock.rfc3339(seen.last_ns),
            first_ns: seen.first_ns,
            last_ns: seen.last_ns,
            process: key.identity.as_deref(),
            via: key.via.as_deref(),
            for_clients: seen.clients.iter().map(|c| c.as_deref()).collect(),
            inferred: seen.inferred,
            libc: seen.libc,
            server: key.server.map(|ip| ip.to_string()),
        };
        if out.json {
            out.json_line(&row)?;
            continue;
        }
        // One name a line: the column is as wide as the longest name.
        let mut names = String::new();
        for (index, name) in chain.iter().enumerate() {
            if index > 0 {
                names.push_str(if *complete || index + 1 < chain.len() {
                    "\n→ "
                } else {
                    "\n→ … → "
                });
            }
            names.push_str(&escape::safe(name));
        }
        let identity = key.identity.as_deref();
        let mut process = facts::label(identity);
        if seen.pids > 1 {
            let others = i64::try_from(seen.pids - 1).unwrap_or(i64::MAX);
            process.push_str(&format!("\n+{}", counted(others, "pid", "pids")));
        }
        if let Some(uid) = identity.and_then(|i| i.uid) {
            process.push_str(&format!("\nuid {uid}"));
        }
        // Whom it asked through, or whom it asked for.
        let mut peers = Vec::new();
        if let Some(via) = &key.via {
            peers.push(format!("via {}", via.label()));
        }
        if !seen.clients.is_empty() {
            peers.push(format!("for {}", clients_text(&seen.clients)));
        }
        let owner = match identity {
            Some(i) if i.has_owner() => i.owner_lines().join("\n"),
            Some(i) => escape::safe(i.cgroup.as_deref().unwrap_or("")).into_owned(),
            None => String::new(),
        };
        cells.push(WhoCells {
            address: network.then(|| row.ip.clone()),
            names,
            seen: format!(
                "{}\n{}",
                clock.short(seen.first_ns),
                clock.short(seen.last_ns)
            ),
            count: seen.count.to_string(),
            process,
            peers: peers.join("\n"),
            exe: escape::safe(identity.and_then(|i| i.exe.as_deref()).unwrap_or("")).into_owned(),
            bare_cgroup: identity.is_some_and(|i| !i.has_owner()),
            owner,
            server: escape::safe(row.server.as_deref().unwrap_or("(libc call)")).into_owned(),
        });
    }
    if !out.json {
        out.print_fitting(|out, compact| who_table(out, &cells, compact))?;
    }
    Ok(())
}

/// A `who` table row's cells, escaped.
struct WhoCells {
    /// The address, when a network was asked about.
    address: Option<String>,
    names: String,
    seen: String,
    count: String,
    /// The process and its uid.
    process: String,
    /// `via resolver[pid]`, `for client[pid], …` lines.
    peers: String,
    exe: String,
    owner: String,
    /// `owner` is a cgroup path, not a unit or container.
    bare_cgroup: bool,
    server: String,
}

/// The `who` table; `compact` (a terminal too narrow for seven columns, such as
/// 80 characters) puts the executable and the unit or container under the
/// process, in its cell.
fn who_table(out: &Output, rows: &[WhoCells], compact: bool) -> Table {
    // A network's rows say which of its addresses they are about: in a column
    // of its own, or on a narrow terminal over the names.
    let addresses = rows.iter().any(|row| row.address.is_some());
    let column = addresses && !compact;
    let mut header = Vec::new();
    if column {
        header.push("ADDRESS");
    }
    header.push(if addresses && compact {
        "ADDRESS / NAMES"
    } else {
        "NAME → CNAME → OWNER"
    });
    header.extend(["FIRST / LAST SEEN", "COUNT", "PROCESS"]);
    if !compact {
        header.extend(["EXE", "UNIT/CONTAINER"]);
    }
    header.push("SERVER");
    let mut table = out.table(&header);
    for row in rows {
        let address = row.address.as_deref().unwrap_or("");
        let mut cells: Vec<Cell> = column.then(|| Cell::new(address)).into_iter().collect();
        cells.extend([
            Cell::new(if column {
                row.names.clone()
            } else {
                stacked(&[address, &row.names])
            }),
            Cell::new(&row.seen),
            Cell::new(&row.count),
        ]);
        if compact {
            // Under the process a bare cgroup path needs saying what it is (a
            // unit or a container says it by itself).
            let owner = if row.bare_cgroup && !row.owner.is_empty() {
                format!("cgroup {}", row.owner)
            } else {
                row.owner.clone()
            };
            cells.push(Cell::new(stacked(&[
                &row.process,
                &row.exe,
                &owner,
                &row.peers,
            ])));
        } else {
            cells.extend([
                Cell::new(stacked(&[&row.process, &row.peers])),
                Cell::new(&row.exe),
                Cell::new(&row.owner),
            ]);
        }
        cells.push(Cell::new(&row.server));
        table.add_row(cells);
    }
    let server = header.len() - 1;
    let at = |index: usize| index + usize::from(column);
    if compact {
        // The process cell holds paths now: it may wrap.
        keep_whole(&mut table, &[at(1), at(2), server]);
    } else {
        keep_whole(&mut table, &[at(1), at(2), at(3), server]);
    }
    if column {
        keep_whole(&mut table, &[0]);
    }
    keep_up_to(&mut table, at(0), NAME_CHARS);
    table
}

/// The processes a resolver's row was for: `curl (41 pids), wget[813], +2`,
/// escaped (see [`facts::program_labels`]).
pub fn clients_text(clients: &BTreeSet<Option<Rc<Identity>>>) -> String {
    facts::program_labels(clients.iter().map(|c| c.as_deref()), SHOWN_CLIENTS).join(", ")
}

/// The `rdata` rows of the addresses in `target` (one address: its row, if
/// any), with the addresses. IPv4 text sorts by its leading octets, so a
/// network is read as the ranges of its octet-aligned prefixes (`140.82.112.`
/// … `140.82.127.` for a /20, by the `rdata` index); IPv6 text does not (`::`
/// shortens any run of zeros), so its rows are all read and parsed.
fn addresses_in(reader: &Reader, target: IpNet) -> Result<Vec<(i64, IpAddr)>, ReadError> {
    let conn = reader.connection();
    if target.prefix_len() == target.max_prefix_len() {
        let address = target.addr();
        return Ok(conn
            .prepare_cached("SELECT id FROM rdata WHERE data = ?1")?
            .query_row([address.to_string()], |row| row.get::<_, i64>(0))
            .optional()?
            .map(|id| vec![(id, address)])
            .unwrap_or_default());
    }
    let patterns: Vec<String> = match target {
        IpNet::V4(net) => {
            // The octets the prefix fixes, the last one perhaps in part: a
            // text prefix for each value that last octet can take.
            let prefix = u32::from(net.prefix_len());
            let octets = prefix.div_ceil(8);
            let first = u64::from(u32::from(net.network()));
            let stride = 1u64 << (32 - octets * 8);
            (0..1u64 << (octets * 8 - prefix))
                .map(|i| {
                    let start = ((first + i * stride) as u32).to_be_bytes();
                    let text: Vec<String> =
                        start[..octets as usize].iter().map(u8::to_string).collect();
                    match octets {
                        0 => "*".to_owned(),
                        4 => text.join("."),
                        _ => format!("{}.*", text.join(".")),
                    }
                })
                .collect()
        }
        IpNet::V6(_) => vec!["*:*".to_owned()],
    };
    let mut stmt = conn.prepare_cached("SELECT id, data FROM rdata WHERE data GLOB ?1")?;
    let mut found = Vec::new();
    for pattern in patterns {
        let mut rows = stmt.query([pattern])?;
        while let Some(row) = rows.next()? {
            let data: String = row.get(1)?;
            if let Ok(address) = data.parse::<IpAddr>()
                && target.contains(&address)
            {
                found.push((row.get(0)?, address));
            }
        }
    }
    Ok(found)
}

/// The `delegations` rows of the (question name, hour) pairs of `resolutions`
/// (none when the store predates them), by the `delegations_name` index.
fn delegations(reader: &Reader, resolutions: &[Resolution]) -> Result<Delegations, ReadError> {
    let mut found = Delegations::new();
    if !reader.has_delegations() {
        return Ok(found);
    }
    if reader.schema_version() >= 5 {
        return delegations_by_name(reader, resolutions);
    }
    let mut stmt = reader.connection().prepare_cached(
        "SELECT resolver_process_id, qtype, client_process_id, upstream + cached, \
                first_ns, last_ns \
         FROM delegations WHERE qname_id = ?1 AND hour = ?2",
    )?;
    for r in resolutions {
        let Entry::Vacant(entry) = found.entry((r.qname_id, r.hour)) else {
            continue;
        };
        let rows = stmt
            .query_map((r.qname_id, r.hour), |row| {
                Ok(Delegation {
                    resolver: row.get(0)?,
                    qtype: row.get(1)?,
                    client: row.get(2)?,
                    queries: row.get(3)?,
                    first_ns: row.get(4)?,
                    last_ns: row.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        entry.insert(rows);
    }
    Ok(found)
}

/// [`delegations`] on schema 5 stores, whose `delegations` are keyed by name
/// first: each name's rows are one range, read once for all its hours (in the
/// order the old index gave within an hour: resolver, type, client).
fn delegations_by_name(
    reader: &Reader,
    resolutions: &[Resolution],
) -> Result<Delegations, ReadError> {
    // Name → its hours, and its record types (a delegation for another type
    // than the answer's, or ANY, is no link to it).
    let mut hours: HashMap<i64, (BTreeSet<i64>, BTreeSet<i64>)> = HashMap::new();
    for r in resolutions {
        let (of_name, types) = hours.entry(r.qname_id).or_default();
        of_name.insert(r.hour);
        types.insert(r.rtype);
    }
    let conn = reader.connection();
    let mut of_type = conn.prepare_cached(
        "SELECT hour, resolver_process_id, qtype, client_process_id, upstream + cached, \
                first_ns, last_ns \
         FROM delegations WHERE qname_id = ?1 AND hour BETWEEN ?2 AND ?3 \
         AND (qtype = ?4 OR qtype = ?5)",
    )?;
    let mut all = conn.prepare_cached(
        "SELECT hour, resolver_process_id, qtype, client_process_id, upstream + cached, \
                first_ns, last_ns \
         FROM delegations WHERE qname_id = ?1 AND hour BETWEEN ?2 AND ?3",
    )?;
    let mut found = Delegations::new();
    for (qname_id, (wanted, types)) in hours {
        let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else {
            continue;
        };
        for &hour in &wanted {
            found.insert((qname_id, hour), Vec::new());
        }
        let mut rows = match types.first() {
            Some(&rtype) if types.len() == 1 => {
                of_type.query((qname_id, first, last, rtype, TYPE_ANY))?
            }
            _ => all.query((qname_id, first, last))?,
        };
        while let Some(row) = rows.next()? {
            let hour: i64 = row.get(0)?;
            if let Some(here) = found.get_mut(&(qname_id, hour)) {
                here.push(Delegation {
                    resolver: row.get(1)?,
                    qtype: row.get(2)?,
                    client: row.get(3)?,
                    queries: row.get(4)?,
                    first_ns: row.get(5)?,
                    last_ns: row.get(6)?,
                });
            }
        }
    }
    Ok(found)
}

/// The rows to show: each resolution with the resolver its process asked
/// (`via`), and for a local resolver's resolution, the clients it resolved for
/// (in its row's `clients`, and as rows of their own when their own answer
/// was not seen).
fn through_resolvers(
    reader: &Reader,
    identities: &mut Identities,
    resolutions: &[Resolution],
    delegations: &Delegations,
) -> Result<HashMap<Key, Seen>, ReadError> {
    let fits = |d: &Delegation, rtype: i64| d.qtype == rtype || d.qtype == TYPE_ANY;
    let none: &[Delegation] = &[];
    // The processes seen receiving the answer themselves: no inferred rows. (A
    // libc call's answer does not count: the inferred row knows the server,
    // and `fold_libc` makes the two one.)
    let mut own: HashSet<(IpAddr, i64, i64, i64, Rc<Identity>)> = HashSet::new();
    for r in resolutions.iter().filter(|r| r.server.is_some()) {
        if let Some(identity) = identities.get(reader, r.process_id)? {
            own.insert((r.address, r.qname_id, r.name_id, r.rtype, identity));
        }
    }
    let mut seen: HashMap<Key, Seen> = HashMap::new();
    for r in resolutions {
        let here = delegations
            .get(&(r.qname_id, r.hour))
            .map_or(none, Vec::as_slice);
        let identity = identities.get(reader, r.process_id)?;
        // The resolver this process asked: the one it asked most.
        let via = match here
            .iter()
            .filter(|d| d.client == r.process_id && d.resolver != r.process_id && fits(d, r.rtype))
            .max_by_key(|d| (d.queries, d.last_ns))
        {
            Some(d) => identities.get(reader, d.resolver)?,
            None => None,
        };
        let key = Key {
            address: r.address,
            qname_id: r.qname_id,
            name_id: r.name_id,
            rtype: r.rtype,
            identity: identity.clone(),
            via,
            server: r.server,
        };
        let entry = seen.entry(key.clone()).or_default();
        entry.add(r.first_ns, r.last_ns, r.count);
        entry.libc |= r.server.is_none();

        // A local resolver: the clients behind it, and theirs (bounded, and
        // each resolver once: delegations can loop).
        if !here.iter().any(|d| d.resolver == r.process_id) {
            continue;
        }
        let mut visited: HashSet<i64> = HashSet::from([r.process_id]);
        let mut queue: VecDeque<(i64, Key, usize)> = VecDeque::from([(r.process_id, key, 0)]);
        while let Some((resolver, resolver_key, depth)) = queue.pop_front() {
            let clients: Vec<&Delegation> = here
                .iter()
                .filter(|d| d.resolver == resolver && d.client != resolver && fits(d, r.rtype))
                .collect();
            if clients.is_empty() || depth >= MAX_RESOLVER_DEPTH {
                continue;
            }
            let resolver_identity = resolver_key.identity.clone();
            for d in clients {
                let client = identities.get(reader, d.client)?;
                if let Some(entry) = seen.get_mut(&resolver_key) {
                    entry.clients.insert(client.clone());
                }
                // Its own answer is shown in its own row.
                if client.as_ref().is_some_and(|c| {
                    own.contains(&(r.address, r.qname_id, r.name_id, r.rtype, c.clone()))
                }) {
                    continue;
                }
                let key = Key {
                    identity: client,
                    via: resolver_identity.clone(),
                    ..resolver_key.clone()
                };
                let entry = seen.entry(key.clone()).or_default();
                entry.add(d.first_ns, d.last_ns, d.queries);
                entry.inferred = true;
                if visited.insert(d.client) {
                    queue.push_back((d.client, key, depth + 1));
                }
            }
        }
    }
    Ok(seen)
}

/// A table's rows: the rows of one program's processes (the same command,
/// executable, user, group and cgroup) that differ only in their pids (the
/// resolver's included) become one, shown with its newest process and how many
/// there were. A job that runs `curl` every minute is one row, not one a run;
/// `--pids` and `--json` keep a row per process.
fn by_program(seen: HashMap<Key, Seen>) -> Vec<(Key, Seen)> {
    /// Key, with each process's pid set aside.
    type Group = (
        IpAddr,
        i64,
        i64,
        i64,
        Option<Identity>,
        Option<Identity>,
        Option<IpAddr>,
    );
    let program = |identity: &Option<Rc<Identity>>| {
        identity.as_deref().map(|i| Identity {
            pid: 0,
            ..i.clone()
        })
    };
    let mut groups: BTreeMap<Group, (Key, Seen, BTreeSet<Option<u32>>)> = BTreeMap::new();
    for (key, seen) in seen {
        let group = (
            key.address,
            key.qname_id,
            key.name_id,
            key.rtype,
            program(&key.identity),
            program(&key.via),
            key.server,
        );
        let pid = key.identity.as_ref().map(|i| i.pid);
        match groups.entry(group) {
            btree_map::Entry::Vacant(entry) => {
                entry.insert((key, seen, BTreeSet::from([pid])));
            }
            btree_map::Entry::Occupied(mut entry) => {
                let (shown, merged, pids) = entry.get_mut();
                if seen.last_ns > merged.last_ns {
                    *shown = key;
                }
                merged.add(seen.first_ns, seen.last_ns, seen.count);
                merged.clients.extend(seen.clients);
                merged.inferred &= seen.inferred;
                merged.libc |= seen.libc;
                pids.insert(pid);
            }
        }
    }
    groups
        .into_values()
        .map(|(key, mut seen, pids)| {
            seen.pids = pids.len();
            (key, seen)
        })
        .collect()
}

/// A process's libc call's answer and a DNS answer of the same question to
/// the same process (its own, or inferred through its resolver) are one
/// resolution seen twice: the DNS row stays (it knows the server and the
/// CNAMEs), marked `libc`, and spans the times of both; its count is the
/// larger of the two (each call is one answer; a daemon's cache hits have no
/// DNS answer). The libc row stays alone only when there is no such
/// row. A resolver's own rows are left as they are.
fn fold_libc(seen: &mut HashMap<Key, Seen>) {
    type Question = (IpAddr, i64, i64, Option<Rc<Identity>>);
    // One pass over the rows, not one per libc row: an address many
    // processes resolved has many of both.
    let mut dns_rows: HashMap<Question, Vec<Key>> = HashMap::new();
    let mut libc_rows = Vec::new();
    for key in seen.keys() {
        if key.server.is_some() {
            dns_rows
                .entry((key.address, key.qname_id, key.rtype, key.identity.clone()))
                .or_default()
                .push(key.clone());
        } else {
            libc_rows.push(key.clone());
        }
    }
    for libc_key in libc_rows {
        let question = (
            libc_key.address,
            libc_key.qname_id,
            libc_key.rtype,
            libc_key.identity.clone(),
        );
        let Some(twins) = dns_rows.get(&question) else {
            continue;
        };
        let Some(libc) = seen.remove(&libc_key) else {
            continue;
        };
        for twin in twins {
            if let Some(dns) = seen.get_mut(twin) {
                let count = dns.count.max(libc.count);
                dns.add(libc.first_ns, libc.last_ns, 0);
                dns.count = count;
                dns.libc = true;
                dns.inferred = false;
            }
        }
    }
}

/// The names from `qname_id` to `name_id` through `cnames`, and whether the
/// chain was found whole (if not: just the two ends).
///
/// The search goes forward from the asked name (`cnames_name` index): a name has
/// one CNAME target at a time, while a popular target can be the alias of
/// thousands of names, so this direction stays small. Bounded and cycle-safe.
fn chain(reader: &Reader, qname_id: i64, name_id: i64) -> Result<Chain, ReadError> {
    let ends = |complete| -> Result<Chain, ReadError> {
        let mut names = vec![reader.name(qname_id)?];
        if name_id != qname_id {
            names.push(reader.name(name_id)?);
        }
        Ok((names, complete))
    };
    if qname_id == name_id {
        return ends(true);
    }
    let conn = reader.connection();
    let mut targets = conn.prepare_cached("SELECT target_id FROM cnames WHERE name_id = ?1")?;
    let mut parent: HashMap<i64, i64> = HashMap::new();
    let mut visited: HashSet<i64> = HashSet::from([qname_id]);
    let mut queue = VecDeque::from([(qname_id, 0usize)]);
    while let Some((current, depth)) = queue.pop_front() {
        if depth >= MAX_CHAIN {
            continue;
        }
        let next: Vec<i64> = targets
            .query_map([current], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for target in next {
            if !visited.insert(target) {
                continue;
            }
            parent.insert(target, current);
            if target == name_id {
                let mut ids = vec![name_id];
                while let Some(&p) = parent.get(ids.last().unwrap_or(&qname_id)) {
                    ids.push(p);
                }
                ids.reverse();
                let names = ids
                    .into_iter()
                    .map(|id| reader.name(id))
                    .collect::<Result<_, _>>()?;
                return Ok((names, true));
            }
            if visited.len() >= MAX_VISITED {
                return ends(false);
            }
            queue.push_back((target, depth + 1));
        }
    }
    ends(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, comm: &str) -> Option<Rc<Identity>> {
        Some(Rc::new(Identity {
            pid,
            comm: comm.into(),
            exe: Some(format!("/usr/bin/{comm}")),
            uid: Some(1000),
            gid: Some(1000),
            cgroup: None,
            unit: None,
            container: None,
            owner: Default::default(),
        }))
    }

    /// A resolver's clients: a program's runs together, the busiest first, one
    /// process by its pid, the rest counted.
    #[test]
    fn clients_are_named_by_program() {
        let clients: BTreeSet<_> = [
            process(10, "dig"),
            process(11, "curl"),
            process(12, "curl"),
            process(13, "curl"),
            process(14, "wget"),
            None,
        ]
        .into_iter()
        .collect();
        assert_eq!(clients_text(&clients), "curl (3 pids), dig[10], +2");
        let one: BTreeSet<_> = [process(12, "curl")].into_iter().collect();
        assert_eq!(clients_text(&one), "curl[12]");
    }

    /// Compact (a narrow terminal): the executable, the cgroup (said to be one)
    /// and the resolver go under the process, in five columns.
    #[test]
    fn the_compact_table_puts_exe_and_owner_under_the_process() {
        let out = Output::new(false, true);
        let rows = [WhoCells {
            address: None,
            names: "www.example.test.\n→ edge.cdn.test.".into(),
            seen: "2026-11-27 11:35:55\n2026-11-27 11:35:55".into(),
            count: "1".into(),
            process: "python3[2553]\nuid 0".into(),
            peers: "via dnsmasq[2545]".into(),
            exe: "/usr/bin/python3.11".into(),
            owner: "/".into(),
            bare_cgroup: true,
            server: "198.18.1.1".into(),
        }];
        let wide = who_table(&out, &rows, false).to_string();
        assert!(wide.contains("UNIT/CONTAINER"), "{wide}");
        let mut compact = who_table(&out, &rows, true);
        assert_eq!(compact.column_count(), 5);
        let text = compact.to_string();
        assert!(
            !text.contains("EXE") && !text.contains("UNIT/CONTAINER"),
            "{text}"
        );
        // One under the other, in this order, each on a line of its own.
        let at: Vec<usize> = [
            "python3[2553]",
            "uid 0",
            "/usr/bin/python3.11",
            "cgroup /",
            "via dnsmasq[2545]",
        ]
        .iter()
        .map(|part| {
            text.find(part)
                .unwrap_or_else(|| panic!("no {part}: {text}"))
        })
        .collect();
        assert!(at.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
        assert_eq!(text.lines().count(), 6, "{text}");

        // A network's rows: the address in a column of its own, or over the
        // names.
        let rows = [WhoCells {
            address: Some("198.18.0.20".into()),
            ..rows.into_iter().next().expect("the row")
        }];
        let wide = who_table(&out, &rows, false).to_string();
        assert!(wide.trim_start().starts_with("ADDRESS "), "{wide}");
        let text = who_table(&out, &rows, true).to_string();
        let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
        assert!(lines[0].starts_with("ADDRESS / NAMES "), "{text}");
        assert!(lines[1].starts_with("198.18.0.20 "), "{text}");
        assert!(lines[2].starts_with("www.example.test. "), "{text}");
    }
}
