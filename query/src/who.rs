//! `dnsq who IP`: every name that resolved to an IP, followed back through its
//! CNAME chain to the name the application asked for, with who asked and which
//! server answered. Reads `resolutions` (by `rdata_id`) and `cnames` only.

use std::{
    collections::{HashMap, HashSet, VecDeque, hash_map::Entry},
    net::IpAddr,
    rc::Rc,
};

use anyhow::Result;
use comfy_table::Cell;
use dnsq_recorder::store::read::{ReadError, Reader, type_name};
use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::{
    escape,
    facts::{self, Identities, Identity, NothingFound},
    output::{Output, cell, keep_whole},
    timearg::Window,
};

/// How many CNAMEs a chain may have, and how many names the search for one may
/// visit (a name can be the alias of many, and chains can loop).
const MAX_CHAIN: usize = 16;
const MAX_VISITED: usize = 1024;

/// The names from the asked one to the owner, and whether the CNAMEs between
/// them were all found.
type Chain = (Vec<Rc<str>>, bool);

#[derive(Hash, PartialEq, Eq)]
struct Key {
    qname_id: i64,
    name_id: i64,
    rtype: i64,
    identity: Option<Rc<Identity>>,
    server: IpAddr,
}

struct Seen {
    first_ns: i64,
    last_ns: i64,
    count: i64,
}

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
    server: String,
}

pub fn run(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    ip: IpAddr,
    limit: usize,
) -> Result<()> {
    let conn = reader.connection();
    let text = ip.to_string();
    let nothing = || {
        NothingFound(format!(
            "no name resolved to {text} {}",
            window.describe_hours(&out.clock)
        ))
    };
    let Some(rdata_id) = conn
        .prepare_cached("SELECT id FROM rdata WHERE data = ?1")?
        .query_row([&text], |row| row.get::<_, i64>(0))
        .optional()?
    else {
        return Err(nothing().into());
    };
    let (first_hour, last_hour) = window.hours();
    let mut stmt = conn.prepare_cached(
        "SELECT qname_id, name_id, rtype, process_id, endpoint_id, \
                MIN(first_ns), MAX(last_ns), SUM(count) \
         FROM resolutions WHERE rdata_id = ?1 AND hour BETWEEN ?2 AND ?3 \
         GROUP BY qname_id, name_id, rtype, process_id, endpoint_id",
    )?;
    let mut rows = stmt.query((rdata_id, first_hour, last_hour))?;
    let mut identities = Identities::default();
    let mut seen: HashMap<Key, Seen> = HashMap::new();
    while let Some(row) = rows.next()? {
        let key = Key {
            qname_id: row.get(0)?,
            name_id: row.get(1)?,
            rtype: row.get(2)?,
            identity: identities.get(reader, row.get(3)?)?,
            server: reader.endpoint(row.get(4)?)?.remote_ip,
        };
        let (first_ns, last_ns, count): (i64, i64, i64) = (row.get(5)?, row.get(6)?, row.get(7)?);
        let entry = seen.entry(key).or_insert(Seen {
            first_ns,
            last_ns,
            count: 0,
        });
        entry.first_ns = entry.first_ns.min(first_ns);
        entry.last_ns = entry.last_ns.max(last_ns);
        entry.count += count;
    }
    if seen.is_empty() {
        return Err(nothing().into());
    }
    let mut found: Vec<(Key, Seen)> = seen.into_iter().collect();
    found.sort_by(|a, b| {
        b.1.last_ns
            .cmp(&a.1.last_ns)
            .then(a.0.qname_id.cmp(&b.0.qname_id))
    });
    facts::apply_limit(&mut found, limit);

    let mut chains: HashMap<(i64, i64), Chain> = HashMap::new();
    for (key, _) in &found {
        if let Entry::Vacant(entry) = chains.entry((key.qname_id, key.name_id)) {
            entry.insert(chain(reader, key.qname_id, key.name_id)?);
        }
    }

    let mut table = out.table(&[
        "NAME → CNAME → OWNER",
        "FIRST / LAST SEEN",
        "COUNT",
        "PROCESS",
        "EXE",
        "CGROUP",
        "SERVER",
    ]);
    for (key, seen) in &found {
        let (chain, complete) = &chains[&(key.qname_id, key.name_id)];
        let clock = &out.clock;
        let row = WhoRow {
            ip: text.clone(),
            name: &chain[0],
            owner: &chain[chain.len() - 1],
            chain: chain.iter().map(|n| &**n).collect(),
            chain_complete: *complete,
            rtype: type_name(key.rtype as u16),
            count: seen.count,
            first_seen: clock.rfc3339(seen.first_ns),
            last_seen: clock.rfc3339(seen.last_ns),
            first_ns: seen.first_ns,
            last_ns: seen.last_ns,
            process: key.identity.as_deref(),
            server: key.server.to_string(),
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
        if let Some(uid) = identity.and_then(|i| i.uid) {
            process.push_str(&format!("\nuid {uid}"));
        }
        table.add_row(vec![
            Cell::new(names),
            Cell::new(format!(
                "{}\n{}",
                clock.short(seen.first_ns),
                clock.short(seen.last_ns)
            )),
            cell(&seen.count.to_string()),
            Cell::new(process),
            cell(identity.and_then(|i| i.exe.as_deref()).unwrap_or("")),
            cell(identity.and_then(|i| i.cgroup.as_deref()).unwrap_or("")),
            cell(&row.server),
        ]);
    }
    if !out.json {
        keep_whole(&mut table, &[1, 2, 3, 6]);
        out.print_table(&mut table)?;
    }
    Ok(())
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
