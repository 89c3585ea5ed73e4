//! `dnsq top domains|processes|nxdomain`: rankings from `lookups`, client side
//! (what processes on this host asked and were answered).

use std::{
    collections::{BTreeSet, HashMap},
    rc::Rc,
};

use anyhow::Result;
use comfy_table::{Cell, Table};
use dnsq_recorder::store::{
    read::Reader,
    schema::{self, RCODE_QUERY, role},
};
use serde::Serialize;

use crate::{
    cli::TopKind,
    facts::{self, Identities, Identity, NothingFound},
    output::{NAME_CHARS, Output, cell, counted, keep_up_to, keep_whole, stacked},
    owner::{self, Only},
    timearg::Window,
};

const NXDOMAIN: i64 = 3;
/// Processes listed per name (the rest are counted).
const LISTED: usize = 16;
const SHOWN: usize = 3;
/// Units and containers listed per program.
const LISTED_OWNERS: usize = 100;

pub fn run(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    what: TopKind,
    limit: usize,
    only: Option<&Only>,
) -> Result<()> {
    // Rankings count what the selected processes asked, filtered in SQL.
    let filtered = match only {
        Some(o) => o.matching.lookups_sql(reader, window.hours())?,
        None => String::new(),
    };
    let result = match what {
        TopKind::Domains => names(reader, out, window, RCODE_QUERY, limit, &filtered),
        TopKind::Nxdomain => names(reader, out, window, NXDOMAIN, limit, &filtered),
        TopKind::Processes => processes(reader, out, window, limit, &filtered),
    };
    match (result, only) {
        (Err(e), Some(only)) if e.is::<NothingFound>() => {
            Err(NothingFound(format!("{e} for processes {}", only.filter.describe())).into())
        }
        (result, _) => result,
    }
}

#[derive(Serialize)]
struct NameRow<'a> {
    rank: usize,
    name: &'a str,
    /// Queries sent for it (top domains) …
    #[serde(skip_serializing_if = "Option::is_none")]
    queries: Option<i64>,
    /// … and NXDOMAIN answers received.
    nxdomain: i64,
    /// Distinct processes that asked (top domains) or were told NXDOMAIN.
    process_count: usize,
    processes: Vec<&'a Identity>,
    last_seen: String,
    last_ns: i64,
}

/// Names ranked by the count of `rcode` rows (queries or NXDOMAIN answers).
fn names(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    rcode: i64,
    limit: usize,
    filtered: &str,
) -> Result<()> {
    let conn = reader.connection();
    let (first_hour, last_hour) = window.hours();
    let hour = window.hour_column(facts::lookups_hours(reader)?);
    // What is ranked, and the rows that count it (`rcode` is one of two
    // constants, so it is written into the SQL).
    let version = reader.schema_version();
    let queries = schema::lookup_queries_sql(version);
    let (ranked, counting) = if rcode == RCODE_QUERY {
        (
            queries.to_owned(),
            schema::lookup_asked_sql(version).to_owned(),
        )
    } else {
        (
            format!("CASE WHEN rcode = {rcode} THEN count ELSE 0 END"),
            format!("rcode = {rcode}"),
        )
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT qname_id, SUM({ranked}) AS ranked, SUM({queries}), \
                SUM(CASE WHEN rcode = 3 THEN count ELSE 0 END), \
                MAX(CASE WHEN {counting} THEN last_ns END) \
         FROM lookups WHERE {hour} BETWEEN ?1 AND ?2 AND role = ?3{filtered} \
         GROUP BY qname_id HAVING ranked > 0 \
         ORDER BY ranked DESC, qname_id LIMIT ?4",
    ))?;
    let top: Vec<(i64, i64, i64, i64, i64)> = stmt
        .query_map(
            (first_hour, last_hour, role::CLIENT, sql_limit(limit)),
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    if top.is_empty() {
        let what = if rcode == RCODE_QUERY {
            "queries"
        } else {
            "NXDOMAIN answers"
        };
        return Err(
            NothingFound(format!("no {what} {}", window.describe_hours(&out.clock))).into(),
        );
    }
    let mut who = conn.prepare_cached(&format!(
        "SELECT DISTINCT process_id FROM lookups \
         WHERE qname_id = ?1 AND hour BETWEEN ?2 AND ?3 AND role = ?4 AND {counting}{filtered}",
    ))?;
    let mut identities = Identities::default();
    let header = if rcode == RCODE_QUERY {
        vec!["#", "NAME", "QUERIES", "NXDOMAIN", "PROCESSES", "LAST SEEN"]
    } else {
        vec!["#", "NAME", "NXDOMAIN", "PROCESSES", "LAST SEEN"]
    };
    let mut table = out.table(&header);
    for (index, &(qname_id, _, queries, nxdomain, last_ns)) in top.iter().enumerate() {
        let ids: Vec<i64> = who
            .query_map((qname_id, first_hour, last_hour, role::CLIENT), |row| {
                row.get(0)
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut set: BTreeSet<Rc<Identity>> = BTreeSet::new();
        let mut unknown = false;
        for id in ids {
            match identities.get(reader, id)? {
                Some(identity) => {
                    set.insert(identity);
                }
                None => unknown = true,
            }
        }
        let name = reader.name(qname_id)?;
        let row = NameRow {
            rank: index + 1,
            name: &name,
            queries: (rcode == RCODE_QUERY).then_some(queries),
            nxdomain,
            process_count: set.len() + usize::from(unknown),
            processes: set.iter().take(LISTED).map(|i| &**i).collect(),
            last_seen: out.clock.rfc3339(last_ns),
            last_ns,
        };
        if out.json {
            out.json_line(&row)?;
            continue;
        }
        let processes = set.iter().map(|i| Some(&**i));
        let unknown_process = unknown.then_some(None);
        let labels = facts::program_labels(processes.chain(unknown_process), SHOWN);
        let mut cells = vec![cell(&row.rank.to_string()), cell(&name)];
        if let Some(queries) = row.queries {
            cells.push(cell(&queries.to_string()));
        }
        cells.push(cell(&nxdomain.to_string()));
        cells.push(cell(&labels.join(" ")));
        cells.push(cell(&out.clock.short(last_ns)));
        table.add_row(cells);
    }
    if !out.json {
        let last = table.column_count() - 1;
        keep_whole(&mut table, &[0, 2, 3, last]);
        keep_up_to(&mut table, 1, NAME_CHARS);
        out.print_table(&mut table)?;
    }
    Ok(())
}

/// A program: its command and executable (`None`: processes not known).
type Program = (String, Option<String>);

#[derive(Default)]
struct ProcessAgg {
    pids: BTreeSet<u32>,
    units: BTreeSet<String>,
    containers: BTreeSet<dnsq_recorder::service::Container>,
    queries: i64,
    nxdomain: i64,
    libc_calls: i64,
    /// Distinct names asked.
    names: i64,
    last_ns: i64,
}

#[derive(Serialize)]
struct ProcessRow<'a> {
    rank: usize,
    comm: Option<&'a str>,
    exe: Option<&'a str>,
    /// The first pids (all of them up to 100).
    pids: Vec<u32>,
    pid_count: usize,
    queries: i64,
    nxdomain: i64,
    /// Calls of libc's resolver functions (schema 9 stores): what an
    /// application resolving through a daemon over a Unix socket (nss-resolve)
    /// does instead of sending queries.
    libc_calls: i64,
    /// Distinct names asked (in queries or libc calls).
    names: i64,
    /// The systemd units and containers of its processes (distinct, the first
    /// 100).
    units: Vec<&'a str>,
    /// As the recorder writes them: `docker:<64 hex>`.
    containers: Vec<String>,
    last_seen: String,
    last_ns: i64,
}

/// Processes grouped by command and executable (a program run many times is
/// one row), ranked by queries sent, then by libc calls.
fn processes(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    limit: usize,
    filtered: &str,
) -> Result<()> {
    let conn = reader.connection();
    let (first_hour, last_hour) = window.hours();
    let hour = window.hour_column(facts::lookups_hours(reader)?);
    let queries = schema::lookup_queries_sql(reader.schema_version());
    let asked = schema::lookup_asked_sql(reader.schema_version());
    // One pass over the window's rows in key order, name then process, summed
    // per program here: the rows of one name are together, so the distinct
    // names of a program are counted without a set of them. Without bounds
    // (`+hour`) the key order is the table's own; through each process's hours
    // in `lookups_process` SQLite sorts the window's rows. (All 30 days of the
    // benchmark's history: 0.6 s, where SQL's GROUP BY per process and then per
    // process and name sorted every row twice, 1.9 s.)
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT qname_id, process_id, role, rcode, count, {queries}, {asked}, last_ns \
         FROM lookups WHERE {hour} BETWEEN ?1 AND ?2 AND role IN (?3, ?4){filtered} \
         ORDER BY qname_id, process_id",
    ))?;
    let mut rows = stmt.query((first_hour, last_hour, role::CLIENT, role::LIBC))?;
    let mut identities = Identities::default();
    let mut programs: Vec<(Option<Program>, ProcessAgg)> = Vec::new();
    let mut program_index: HashMap<Option<Program>, usize> = HashMap::new();
    let mut program_of: HashMap<i64, usize> = HashMap::new();
    // The name being read, and the programs already counted as asking it.
    let mut name: Option<i64> = None;
    let mut counted: Vec<usize> = Vec::new();
    while let Some(row) = rows.next()? {
        let (qname_id, id): (i64, i64) = (row.get(0)?, row.get(1)?);
        let program = match program_of.get(&id) {
            Some(&program) => program,
            None => {
                let identity = identities.get(reader, id)?;
                let key = identity.as_ref().map(|i| (i.comm.clone(), i.exe.clone()));
                let program = *program_index.entry(key.clone()).or_insert_with(|| {
                    programs.push((key, ProcessAgg::default()));
                    programs.len() - 1
                });
                let agg = &mut programs[program].1;
                if let Some(identity) = identity {
                    agg.pids.insert(identity.pid);
                    if agg.units.len() < LISTED_OWNERS
                        && let Some(unit) = &identity.owner.unit
                    {
                        agg.units.insert(unit.clone());
                    }
                    if agg.containers.len() < LISTED_OWNERS
                        && let Some(container) = &identity.owner.container
                    {
                        agg.containers.insert(container.clone());
                    }
                }
                program_of.insert(id, program);
                program
            }
        };
        let agg = &mut programs[program].1;
        let (role_code, rcode, count): (i64, i64, i64) = (row.get(2)?, row.get(3)?, row.get(4)?);
        if role_code == role::CLIENT {
            agg.queries += row.get::<_, i64>(5)?;
            if rcode == NXDOMAIN {
                agg.nxdomain += count;
            }
        } else {
            // Calls: those not seen returning, and since schema 17 those that
            // returned (`paired` on their status's row), as queries are counted.
            agg.libc_calls += row.get::<_, i64>(5)?;
        }
        agg.last_ns = agg.last_ns.max(row.get(7)?);
        if row.get::<_, bool>(6)? {
            if name != Some(qname_id) {
                name = Some(qname_id);
                counted.clear();
            }
            if !counted.contains(&program) {
                counted.push(program);
                agg.names += 1;
            }
        }
    }
    drop(rows);
    let mut ranked: Vec<_> = programs
        .into_iter()
        .filter(|(_, agg)| agg.queries > 0 || agg.libc_calls > 0)
        .collect();
    if ranked.is_empty() {
        return Err(NothingFound(format!(
            "no process sent queries or called libc's resolver {}",
            window.describe_hours(&out.clock)
        ))
        .into());
    }
    ranked.sort_by(|a, b| {
        b.1.queries
            .cmp(&a.1.queries)
            .then(b.1.libc_calls.cmp(&a.1.libc_calls))
            .then(b.1.last_ns.cmp(&a.1.last_ns))
    });
    if limit != 0 {
        ranked.truncate(limit);
    }
    let mut cells = Vec::new();
    for (index, (key, agg)) in ranked.iter().enumerate() {
        let names = agg.names;
        let row = ProcessRow {
            rank: index + 1,
            comm: key.as_ref().map(|k| k.0.as_str()),
            exe: key.as_ref().and_then(|k| k.1.as_deref()),
            pids: agg.pids.iter().take(100).copied().collect(),
            pid_count: agg.pids.len(),
            queries: agg.queries,
            nxdomain: agg.nxdomain,
            libc_calls: agg.libc_calls,
            names,
            units: agg.units.iter().map(String::as_str).collect(),
            containers: agg.containers.iter().map(|c| c.full()).collect(),
            last_seen: out.clock.rfc3339(agg.last_ns),
            last_ns: agg.last_ns,
        };
        if out.json {
            out.json_line(&row)?;
            continue;
        }
        let pids = match agg.pids.len() {
            0 => String::new(),
            1..=3 => agg
                .pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            n => format!("{n} pids"),
        };
        let escaped = |text: Option<&str>| crate::escape::safe(text.unwrap_or("")).into_owned();
        cells.push(ProgramCells {
            rank: row.rank.to_string(),
            comm: escaped(Some(row.comm.unwrap_or("?"))),
            exe: escaped(row.exe),
            pids,
            owners: owners_text(agg),
            queries: agg.queries,
            nxdomain: agg.nxdomain,
            libc_calls: agg.libc_calls,
            names: names.to_string(),
            last_seen: out.clock.short(agg.last_ns),
        });
    }
    if !out.json {
        out.print_fitting(|out, compact| processes_table(out, &cells, compact))?;
    }
    Ok(())
}

/// A `top processes` table row's cells, escaped.
struct ProgramCells {
    rank: String,
    comm: String,
    exe: String,
    pids: String,
    /// Its units and containers, one a line.
    owners: String,
    queries: i64,
    nxdomain: i64,
    libc_calls: i64,
    names: String,
    last_seen: String,
}

/// The `top processes` table; `compact` (a terminal too narrow for its nine
/// columns, such as 80 characters) stacks the executable, the pids and the
/// units under the command, the NXDOMAIN answers and libc calls under the
/// queries, and the time under the date.
fn processes_table(out: &Output, rows: &[ProgramCells], compact: bool) -> Table {
    let owners = rows.iter().any(|row| !row.owners.is_empty());
    // Only where some process was seen calling libc's resolver.
    let libc = rows.iter().any(|row| row.libc_calls > 0);
    let mut header = vec!["#"];
    if compact {
        header.extend(["PROGRAM", "QUERIES"]);
    } else {
        header.extend(["COMMAND", "EXE", "PIDS"]);
        if owners {
            header.push("UNIT/CONTAINER");
        }
        header.extend(["QUERIES", "NXDOMAIN"]);
        if libc {
            header.push("LIBC CALLS");
        }
    }
    header.extend(["NAMES", "LAST SEEN"]);
    let mut table = out.table(&header);
    for row in rows {
        let cells = if compact {
            let nxdomain = match row.nxdomain {
                0 => String::new(),
                n => format!("{n} NXDOMAIN"),
            };
            let libc_calls = match row.libc_calls {
                0 => String::new(),
                n => counted(n, "libc call", "libc calls"),
            };
            vec![
                Cell::new(&row.rank),
                Cell::new(stacked(&[&row.comm, &row.exe, &row.pids, &row.owners])),
                Cell::new(stacked(&[&row.queries.to_string(), &nxdomain, &libc_calls])),
                Cell::new(&row.names),
                Cell::new(row.last_seen.replacen(' ', "\n", 1)),
            ]
        } else {
            let mut cells = vec![
                Cell::new(&row.rank),
                Cell::new(&row.comm),
                Cell::new(&row.exe),
                Cell::new(&row.pids),
            ];
            if owners {
                cells.push(Cell::new(&row.owners));
            }
            cells.extend([Cell::new(row.queries), Cell::new(row.nxdomain)]);
            if libc {
                cells.push(Cell::new(row.libc_calls));
            }
            cells.extend([Cell::new(&row.names), Cell::new(&row.last_seen)]);
            cells
        };
        table.add_row(cells);
    }
    let whole: Vec<usize> = if compact {
        vec![0, 2, 3, 4]
    } else {
        let shift = usize::from(owners);
        [0, 3]
            .into_iter()
            .chain((4 + shift..).take(4 + usize::from(libc)))
            .collect()
    };
    keep_whole(&mut table, &whole);
    table
}

/// Units and containers a ranked program ran in, the first few, one a line.
fn owners_text(agg: &ProcessAgg) -> String {
    let mut lines: Vec<String> = Vec::new();
    let total = agg.units.len() + agg.containers.len();
    for unit in agg.units.iter().take(SHOWN) {
        lines.push(crate::escape::safe(unit).into_owned());
    }
    for container in agg
        .containers
        .iter()
        .take(SHOWN.saturating_sub(lines.len()))
    {
        lines.extend(owner::lines(&dnsq_recorder::service::CgroupOwner {
            unit: None,
            container: Some(container.clone()),
        }));
    }
    let shown = agg.units.len().min(SHOWN)
        + agg
            .containers
            .len()
            .min(SHOWN.saturating_sub(agg.units.len().min(SHOWN)));
    if total > shown {
        lines.push(format!("+{}", total - shown));
    }
    lines.join("\n")
}

/// SQL `LIMIT`: 0 means none.
fn sql_limit(limit: usize) -> i64 {
    if limit == 0 { -1 } else { limit as i64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compact (a narrow terminal): five columns, the executable, pids and unit
    /// under the command, the NXDOMAIN answers and libc calls under the queries,
    /// the time under the date.
    #[test]
    fn the_compact_table_stacks_the_program_and_its_counts() {
        let out = Output::new(false, true);
        let rows = [ProgramCells {
            rank: "1".into(),
            comm: "firefox".into(),
            exe: "/usr/lib/firefox/firefox".into(),
            pids: "8 pids".into(),
            owners: "app-firefox.scope".into(),
            queries: 312_253,
            nxdomain: 12_112,
            libc_calls: 3,
            names: "31103".into(),
            last_seen: "2026-10-30 23:59:58".into(),
        }];
        let wide = processes_table(&out, &rows, false).to_string();
        for column in ["EXE", "PIDS", "UNIT/CONTAINER", "NXDOMAIN", "LIBC CALLS"] {
            assert!(wide.contains(column), "{column}: {wide}");
        }
        let mut compact = processes_table(&out, &rows, true);
        assert_eq!(compact.column_count(), 5);
        let text = compact.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "header and four lines: {text}");
        for (line, parts) in lines[1..].iter().zip([
            &["firefox", "312253", "31103", "2026-10-30"][..],
            &["/usr/lib/firefox/firefox", "12112 NXDOMAIN", "23:59:58"],
            &["8 pids", "3 libc calls"],
            &["app-firefox.scope"],
        ]) {
            for part in parts {
                assert!(line.contains(part), "{part} not in {line:?}: {text}");
            }
        }
    }
}
