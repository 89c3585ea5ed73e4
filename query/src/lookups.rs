//! `dnsq by-process NAME|PID` and `dnsq name PATTERN`: one row per process,
//! role, question name and type, with the queries, the rcodes of the answers, the
//! answer data and the latency. Reads `lookups` and `resolutions`, and on
//! schema 3 stores `delegations` (the local resolver a row's process asked:
//! `via`; the clients a resolver's row was for: `for`), never `messages`. On
//! schema 5 stores, whose `lookups` and `delegations` are keyed by name, only the
//! rows shown are added up (see [`newest_of_processes`], [`newest_of_names`]).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    rc::Rc,
};

use anyhow::Result;
use comfy_table::{Cell, Table};
use dnsq_recorder::store::{
    read::{Reader, rcode_name, type_name},
    schema::{
        ANSWERED_QUERIES_MOVE, RCODE_QUERY, libc_function, libc_status, role, split_response_rcode,
    },
};
use rusqlite::{OptionalExtension, ToSql};
use serde::Serialize;

use crate::{
    escape,
    facts::{self, Identities, Identity, NothingFound},
    output::{
        ANSWER_CHARS, NAME_CHARS, Output, clip, counted, keep_up_to, keep_whole, millis, stacked,
    },
    owner::Only,
    timearg::Window,
    who::clients_text,
};

/// Answer data kept per process and name (the rest is counted).
const MAX_ANSWERS: usize = 64;
/// Answers shown in a table cell.
const SHOWN_ANSWERS: usize = 8;
/// The longest `comm` the kernel keeps (TASK_COMM_LEN - 1).
const COMM_LEN: usize = 15;

const TYPE_A: i64 = 1;
const TYPE_AAAA: i64 = 28;
const TYPE_CNAME: i64 = 5;
const TYPE_DNAME: i64 = 39;
const TYPE_ANY: i64 = 255;

/// What the rows are about.
pub enum Subject {
    /// A pid, command name or executable.
    Process(String),
    /// A name or a glob.
    Name(String),
}

/// The SQL that selects the subject's `processes` (alias `p`) or `names` (`n`).
struct Selection {
    /// `processes p` or `names n`.
    table: &'static str,
    /// The column facts join on: `p.id` or `n.id`.
    id: &'static str,
    /// The join column in the facts.
    fact_column: &'static str,
    condition: &'static str,
    params: Vec<String>,
    /// The ids of the subject's rows, with `params` as ?1, ?2, ….
    ids: &'static str,
    /// For "nothing found": what was looked for.
    what: String,
}

fn select(subject: &Subject) -> Selection {
    match subject {
        Subject::Process(arg) => {
            let what = format!("process `{}`", escape::safe(arg));
            let process = |condition, ids, params| Selection {
                table: "processes p",
                id: "p.id",
                fact_column: "process_id",
                condition,
                params,
                ids,
                what: what.clone(),
            };
            if let Ok(pid) = arg.parse::<u32>() {
                process(
                    "p.pid = ?3",
                    "SELECT id FROM processes WHERE pid = ?1",
                    vec![pid.to_string()],
                )
            } else if arg.contains('/') {
                process(
                    "p.exe = ?3",
                    "SELECT id FROM processes WHERE exe = ?1",
                    vec![arg.clone()],
                )
            } else {
                let mut end = arg.len().min(COMM_LEN);
                while !arg.is_char_boundary(end) {
                    end -= 1;
                }
                process(
                    "(p.comm = ?3 OR p.comm = ?4 OR p.exe GLOB ?5)",
                    "SELECT id FROM processes WHERE comm = ?1 OR comm = ?2 OR exe GLOB ?3",
                    vec![
                        arg.clone(),
                        arg[..end].to_owned(),
                        format!("*/{}", facts::glob_literal(arg)),
                    ],
                )
            }
        }
        Subject::Name(pattern) => {
            let mut name = pattern.trim().to_ascii_lowercase();
            if !name.ends_with('.') {
                name.push('.');
            }
            let what = format!("name `{}`", escape::safe(&name));
            let (condition, ids, param) = if name.contains(['*', '?']) {
                // Only * and ? are wildcards; a [ in a name is itself.
                (
                    "n.name GLOB ?3",
                    "SELECT id FROM names WHERE name GLOB ?1",
                    name.replace('[', "[[]"),
                )
            } else {
                ("n.name = ?3", "SELECT id FROM names WHERE name = ?1", name)
            };
            Selection {
                table: "names n",
                id: "n.id",
                fact_column: "qname_id",
                condition,
                params: vec![param],
                ids,
                what,
            }
        }
    }
}

/// (process, name) → the distinct (type, rdata id) answers, and how many more.
type Answers = HashMap<(Option<Rc<Identity>>, i64), (BTreeSet<(i64, i64)>, usize)>;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    identity: Option<Rc<Identity>>,
    role: i64,
    qname_id: i64,
    qtype: i64,
}

struct Agg {
    /// The store counts an answered query on its response's row (schema 7 on).
    answered_on_responses: bool,
    /// The `processes` rows behind the identity (its threads).
    process_ids: BTreeSet<i64>,
    queries: i64,
    /// Queries that got a response.
    answered: i64,
    responses: i64,
    rcodes: BTreeMap<i64, i64>,
    paired: i64,
    latency_sum: i64,
    latency_max: i64,
    first_ns: i64,
    last_ns: i64,
}

/// What the `delegations` facts say about a row (schema 3 stores).
#[derive(Default)]
struct Peers {
    /// The local resolver the process asked for the name (the one it asked
    /// most).
    via: Option<Rc<Identity>>,
    /// The `processes` row of `via` (for a libc call's answers).
    via_id: Option<i64>,
    /// When the process is a local resolver: the clients it asked upstream for
    /// (client rows) or answered (server rows).
    clients: BTreeSet<Option<Rc<Identity>>>,
}

#[derive(Serialize)]
struct LookupRow<'a> {
    process: Option<&'a Identity>,
    /// The local resolver the process asked for this name.
    via: Option<&'a Identity>,
    /// For a local resolver: the processes its upstream queries (client rows)
    /// or its answers (server rows) were for.
    #[serde(rename = "for")]
    for_clients: Vec<Option<&'a Identity>>,
    /// `client`: the process asked; `server`: it answered.
    role: &'static str,
    name: &'a str,
    #[serde(rename = "type")]
    qtype: String,
    queries: i64,
    /// Queries with no response seen (or still waiting for one).
    unanswered: i64,
    responses: i64,
    rcodes: BTreeMap<String, i64>,
    answers: Vec<String>,
    latency_avg_ms: Option<f64>,
    latency_max_ms: Option<f64>,
    first_seen: String,
    last_seen: String,
    first_ns: i64,
    last_ns: i64,
}

pub fn run(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    subject: &Subject,
    limit: usize,
    only: Option<&Only>,
) -> Result<()> {
    let conn = reader.connection();
    let mut sel = select(subject);
    // `+`: a filter, not an index to start from (the subject's index is the
    // way in; a process's every row for each name would be far slower).
    let filtered = only
        .map(|o| o.matching.sql("+l.process_id"))
        .unwrap_or_default();
    if let Some(only) = only {
        sel.what.push_str(&format!(" {}", only.filter.describe()));
    }
    let (first_hour, last_hour) = window.hours();
    let mut params: Vec<&dyn ToSql> = vec![&first_hour, &last_hour];
    params.extend(sel.params.iter().map(|p| p as &dyn ToSql));

    let mut identities = Identities::default();
    // Schema 5 keys `lookups` and `delegations` by name, and indexes `lookups`
    // by (process, hour): only the rows shown are added up. Without a limit
    // every row is shown, and older stores lack those indexes: the whole window
    // is added up in one query.
    let newest = limit != 0 && reader.schema_version() >= 5;
    // The subject's processes, when its answers are read by process.
    let mut process_ids = None;
    let (mut found, total) = if newest {
        let hours = (first_hour, last_hour);
        let mut ids = subject_ids(reader, &sel)?;
        match subject {
            Subject::Process(_) => {
                if let Some(only) = only {
                    ids.retain(|pid| only.matching.processes.process_ids.contains(pid));
                }
                let ids = with_lookups(reader, ids, hours)?;
                process_ids = Some(ids.clone());
                newest_of_processes(reader, &mut identities, ids, hours, limit)?
            }
            Subject::Name(_) => newest_of_names(reader, &mut identities, &ids, only, hours, limit)?,
        }
    } else {
        let found = all_groups(reader, &mut identities, &sel, &filtered, &params)?;
        let total = Total::Exactly(found.len());
        (found, total)
    };
    if found.is_empty() {
        let exists: bool = conn.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE {} AND ?1 <= ?2)",
                sel.table, sel.condition,
            ),
            params.as_slice(),
            |row| row.get(0),
        )?;
        // A name never asked may still be the target of a CNAME that was.
        let mut aliases = Vec::new();
        if matches!(subject, Subject::Name(_)) {
            let mut stmt = conn.prepare(&format!(
                "SELECT a.name FROM names n CROSS JOIN cnames c ON c.target_id = n.id \
                 JOIN names a ON a.id = c.name_id WHERE {} AND ?1 <= ?2 \
                 ORDER BY c.last_ns DESC LIMIT 4",
                sel.condition
            ))?;
            let mut rows = stmt.query(params.as_slice())?;
            while let Some(row) = rows.next()? {
                aliases.push(escape::safe(&row.get::<_, String>(0)?).into_owned());
            }
        }
        return Err(NothingFound(if !aliases.is_empty() {
            format!(
                "no lookups for {} {}; it is the CNAME target of {} (ask for that name)",
                sel.what,
                window.describe_hours(&out.clock),
                aliases.join(", ")
            )
        } else if exists {
            format!(
                "no lookups for {} {}",
                sel.what,
                window.describe_hours(&out.clock)
            )
        } else if matches!(subject, Subject::Process(_)) && only.is_none() {
            format!(
                "no {} was ever seen (a pid, a command name or an executable)",
                sel.what
            )
        } else if matches!(subject, Subject::Process(_)) {
            format!("no {} was ever seen", sel.what)
        } else {
            format!("no {} was ever asked for", sel.what)
        })
        .into());
    }

    if newest {
        total.note(limit, found.len());
    } else {
        found.sort_by(|a, b| {
            b.1.last_ns
                .cmp(&a.1.last_ns)
                .then(a.0.qname_id.cmp(&b.0.qname_id))
                .then(a.0.qtype.cmp(&b.0.qtype))
        });
        facts::apply_limit(&mut found, limit);
    }

    // The answers of the rows shown: resolutions of the same name to the same
    // process (client side only), by the `resolutions_name` index (schema 7;
    // `resolutions_qname` before).
    let wanted: HashSet<(Option<Rc<Identity>>, i64)> = found
        .iter()
        .filter(|(key, _)| key.role == role::CLIENT)
        .map(|(key, _)| (key.identity.clone(), key.qname_id))
        .collect();
    let mut answers: Answers = HashMap::new();
    let mut add_answer = |key, rtype: i64, rdata_id: i64| {
        let (set, more) = answers.entry(key).or_default();
        if set.len() < MAX_ANSWERS {
            set.insert((rtype, rdata_id));
        } else {
            *more += 1;
        }
    };
    if newest {
        // The rows' own processes' resolutions (by `resolutions_name`, or before
        // schema 7 `resolutions_process`, which
        // covers them), not every process's resolutions of each name: for a
        // process, the subject's processes of the row's identity; for a name, the
        // processes of the rows.
        let mut pids: BTreeMap<(i64, Option<Rc<Identity>>), BTreeSet<i64>> = BTreeMap::new();
        for (key, agg) in found.iter().filter(|(key, _)| key.role == role::CLIENT) {
            pids.entry((key.qname_id, key.identity.clone()))
                .or_default()
                .extend(&agg.process_ids);
        }
        if let Some(subject_pids) = &process_ids {
            for &pid in subject_pids {
                let identity = identities.get(reader, pid)?;
                for ((_, of), pids) in pids.iter_mut() {
                    if *of == identity {
                        pids.insert(pid);
                    }
                }
            }
        }
        let mut stmt = conn.prepare_cached(
            "SELECT rtype, rdata_id FROM resolutions \
             WHERE process_id = ?1 AND qname_id = ?2 AND hour BETWEEN ?3 AND ?4 \
             GROUP BY rtype, rdata_id",
        )?;
        for ((qname_id, identity), pids) in pids {
            for pid in pids {
                let mut rows = stmt.query((pid, qname_id, first_hour, last_hour))?;
                while let Some(row) = rows.next()? {
                    add_answer((identity.clone(), qname_id), row.get(0)?, row.get(1)?);
                }
            }
        }
    } else {
        let qnames: BTreeSet<i64> = wanted.iter().map(|(_, qname_id)| *qname_id).collect();
        let mut stmt = conn.prepare_cached(
            "SELECT process_id, rtype, rdata_id FROM resolutions \
             WHERE qname_id = ?1 AND hour BETWEEN ?2 AND ?3 GROUP BY process_id, rtype, rdata_id",
        )?;
        for qname_id in qnames {
            let mut rows = stmt.query((qname_id, first_hour, last_hour))?;
            while let Some(row) = rows.next()? {
                let key = (identities.get(reader, row.get(0)?)?, qname_id);
                if wanted.contains(&key) {
                    add_answer(key, row.get(1)?, row.get(2)?);
                }
            }
        }
    }

    let mut peers = Vec::with_capacity(found.len());
    let mut resolvers = Resolvers::default();
    for (key, agg) in &found {
        peers.push(if reader.schema_version() >= 5 {
            delegations_by_name(reader, &mut identities, &mut resolvers, key, agg, window)?
        } else {
            delegations(reader, &mut identities, key, agg, window)?
        });
    }

    // A libc call's answers: what the calls returned to the process (schema
    // 12), or failing that, what its resolver received for the name in the
    // window (stores before schema 12).
    let mut libc_answers = Vec::with_capacity(found.len());
    for ((key, agg), peers) in found.iter().zip(&peers) {
        if key.role != role::LIBC {
            libc_answers.push(Default::default());
            continue;
        }
        let hours = (first_hour, last_hour);
        let own = answers_to(reader, &agg.process_ids, key.qname_id, hours)?;
        libc_answers.push(match peers.via_id {
            Some(resolver) if own.0.is_empty() => {
                answers_to(reader, [resolver], key.qname_id, hours)?
            }
            _ => own,
        });
    }

    let mut cells = Vec::new();
    for (((key, agg), peers), libc_answers) in found.iter().zip(&peers).zip(&libc_answers) {
        let name = reader.name(key.qname_id)?;
        let libc = key.role == role::LIBC;
        let data = if libc {
            answer_texts(reader, libc_answers, |rtype| match rtype {
                // What libc's functions return: addresses, and the chain to them.
                TYPE_A | TYPE_AAAA => Some(false),
                TYPE_CNAME | TYPE_DNAME => Some(true),
                _ => None,
            })?
        } else if key.role == role::CLIENT
            && let Some(answers) = answers.get(&(key.identity.clone(), key.qname_id))
        {
            answer_texts(reader, answers, |rtype| {
                if rtype == key.qtype && key.qtype != TYPE_ANY {
                    Some(false)
                } else if matches!(rtype, TYPE_CNAME | TYPE_DNAME) || key.qtype == TYPE_ANY {
                    Some(true)
                } else {
                    None
                }
            })?
        } else {
            Vec::new()
        };
        let clock = &out.clock;
        let row = LookupRow {
            process: key.identity.as_deref(),
            via: peers.via.as_deref(),
            for_clients: peers.clients.iter().map(|c| c.as_deref()).collect(),
            role: match key.role {
                role::SERVER => "server",
                role::LIBC => "libc",
                _ => "client",
            },
            name: &name,
            qtype: if libc {
                libc_function::name(key.qtype).unwrap_or("libc").to_owned()
            } else {
                type_name(key.qtype as u16).into_owned()
            },
            queries: agg.queries,
            // Not for a libc call: rows written before schema 17 count every
            // call as not returned, and a store migrated to 17 holds both kinds.
            unanswered: if libc {
                0
            } else {
                (agg.queries - agg.answered).max(0)
            },
            responses: agg.responses,
            rcodes: agg
                .rcodes
                .iter()
                .map(|(&c, &n)| (outcome_name(key, c), n))
                .collect(),
            answers: data,
            latency_avg_ms: (agg.paired > 0)
                .then(|| agg.latency_sum as f64 / agg.paired as f64 / 1e6),
            latency_max_ms: (agg.paired > 0).then(|| agg.latency_max as f64 / 1e6),
            first_seen: clock.rfc3339(agg.first_ns),
            last_seen: clock.rfc3339(agg.last_ns),
            first_ns: agg.first_ns,
            last_ns: agg.last_ns,
        };
        if out.json {
            out.json_line(&row)?;
            continue;
        }
        let mut process = facts::label(row.process);
        if row.role == "server" {
            process.push_str(" (server)");
        }
        // Its unit and container under it (short ids: the column stays narrow).
        for line in key.identity.iter().flat_map(|i| i.owner_lines()) {
            process.push('\n');
            process.push_str(&line);
        }
        if let Some(via) = &peers.via {
            process.push_str(&format!("\nvia {}", via.label()));
        }
        if !peers.clients.is_empty() {
            process.push_str(&format!("\nfor {}", clients_text(&peers.clients)));
        }
        // What came of the queries: the rcodes, and those with no response.
        let mut outcome: Vec<String> = if row.rcodes.len() == 1 && row.unanswered == 0 {
            row.rcodes.keys().cloned().collect()
        } else {
            row.rcodes
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect()
        };
        match row.unanswered {
            0 => {}
            n if n == agg.queries => outcome.push("no response".into()),
            n => outcome.push(format!("no response {n}")),
        }
        let rcodes = outcome.join(", ");
        // A truncated NOERROR is no error: its text says it was truncated.
        let failed = |code: i64| {
            if libc {
                code != libc_status::rcode(0)
            } else {
                split_response_rcode(code).0 != 0
            }
        };
        let error = agg.rcodes.keys().any(|&c| failed(c)) || row.unanswered > 0;
        let mut shown: Vec<String> = row.answers.iter().take(SHOWN_ANSWERS).cloned().collect();
        if row.answers.len() > SHOWN_ANSWERS {
            shown.push(format!("(+{})", row.answers.len() - SHOWN_ANSWERS));
        }
        let latency = match agg.paired {
            0 => Vec::new(),
            1 => vec![format!("{} ms", millis(agg.latency_max as f64))],
            n => vec![
                format!("avg {}", millis(agg.latency_sum as f64 / n as f64)),
                format!("max {} ms", millis(agg.latency_max as f64)),
            ],
        };
        cells.push(LookupCells {
            last_seen: clock.short(agg.last_ns),
            process,
            name: escape::safe(row.name).into_owned(),
            qtype: escape::safe(&row.qtype).into_owned(),
            queries: agg.queries,
            libc,
            rcodes,
            error,
            latency,
            answers: shown
                .iter()
                .map(|a| escape::safe(&clip(a, ANSWER_CHARS)).into_owned())
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    if !out.json {
        out.print_fitting(|out, compact| lookups_table(out, &cells, compact))?;
    }
    Ok(())
}

/// A `by-process`/`name` table row's cells, escaped.
struct LookupCells {
    last_seen: String,
    process: String,
    name: String,
    qtype: String,
    queries: i64,
    /// Libc calls, not DNS queries.
    libc: bool,
    rcodes: String,
    error: bool,
    /// `12.3 ms`, or `avg 1.2` and `max 12.3 ms`.
    latency: Vec<String>,
    answers: String,
}

/// The `by-process`/`name` table; `compact` (a terminal too narrow for eight
/// columns, such as 80 characters) puts the time under the date, the type
/// under the name, and the count and latency under the rcodes.
fn lookups_table(out: &Output, rows: &[LookupCells], compact: bool) -> Table {
    // ANSWERS last, like ps's COMMAND: when piped (no wrapping) a long answer
    // widens only its own column, not where the other columns start.
    let header: &[&str] = if compact {
        &["LAST SEEN", "PROCESS", "NAME", "RESULT", "ANSWERS"]
    } else {
        &[
            "LAST SEEN",
            "PROCESS",
            "NAME",
            "TYPE",
            "QUERIES",
            "RCODE",
            "LATENCY",
            "ANSWERS",
        ]
    };
    let mut table = out.table(header);
    for row in rows {
        let cells = if compact {
            let count = if row.libc {
                counted(row.queries, "call", "calls")
            } else {
                counted(row.queries, "query", "queries")
            };
            // The average and the maximum one a line: the column stays narrow.
            let latency = match row.latency.as_slice() {
                [avg, max] => format!("{avg} ms\n{max}"),
                other => other.join(""),
            };
            let result = stacked(&[&row.rcodes, &count, &latency]);
            vec![
                Cell::new(row.last_seen.replacen(' ', "\n", 1)),
                Cell::new(&row.process),
                Cell::new(format!("{}\n{}", row.name, row.qtype)),
                out.rcode_cell(&result, row.error),
                Cell::new(&row.answers),
            ]
        } else {
            vec![
                Cell::new(&row.last_seen),
                Cell::new(&row.process),
                Cell::new(&row.name),
                Cell::new(&row.qtype),
                Cell::new(row.queries),
                out.rcode_cell(&row.rcodes, row.error),
                Cell::new(row.latency.join(" / ")),
                Cell::new(&row.answers),
            ]
        };
        table.add_row(cells);
    }
    if compact {
        keep_whole(&mut table, &[0, 3]);
    } else {
        keep_whole(&mut table, &[0, 1, 3, 4, 5, 6]);
    }
    keep_up_to(&mut table, 2, NAME_CHARS);
    table
}

/// How many rows there were to show.
enum Total {
    Exactly(usize),
    /// More than the limit (the newest hours were enough to find the rows shown).
    MoreThanShown,
}

impl Total {
    /// Says on stderr that rows were left out, like [`facts::apply_limit`].
    fn note(&self, limit: usize, shown: usize) {
        match *self {
            Total::Exactly(total) if total > shown => {
                eprintln!("dnsq: showing {shown} of {total} rows (--limit 0 shows all)")
            }
            Total::Exactly(_) => {}
            Total::MoreThanShown => eprintln!(
                "dnsq: showing the {limit} most recent rows; there are more (--limit 0 shows all)"
            ),
        }
    }
}

impl Agg {
    /// `schema`: the store's version (how its query rows count, see
    /// [`RCODE_QUERY`]).
    fn new(schema: u32) -> Self {
        Self {
            answered_on_responses: schema >= ANSWERED_QUERIES_MOVE,
            process_ids: BTreeSet::new(),
            queries: 0,
            answered: 0,
            responses: 0,
            rcodes: BTreeMap::new(),
            paired: 0,
            latency_sum: 0,
            latency_max: 0,
            first_ns: i64::MAX,
            last_ns: i64::MIN,
        }
    }

    /// Adds a process's (`lookups` columns) sums for one rcode: count, paired,
    /// latency_sum_ns, latency_max_ns, first_ns, last_ns.
    fn add(&mut self, process_id: i64, rcode: i64, sums: [i64; 6]) {
        let [count, paired, latency_sum, latency_max, first_ns, last_ns] = sums;
        if rcode == RCODE_QUERY {
            self.queries += count;
            if !self.answered_on_responses {
                self.answered += paired;
            }
        } else {
            if self.answered_on_responses {
                // The queries these responses answered left the query row.
                self.queries += paired;
                self.answered += paired;
            }
            self.responses += count;
            *self.rcodes.entry(rcode).or_default() += count;
            self.paired += paired;
            self.latency_sum += latency_sum;
            self.latency_max = self.latency_max.max(latency_max);
        }
        self.process_ids.insert(process_id);
        self.first_ns = self.first_ns.min(first_ns);
        self.last_ns = self.last_ns.max(last_ns);
    }
}

/// The six sums [`Agg::add`] takes, from the row's columns `first..first + 6`.
fn sums_from(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<[i64; 6]> {
    Ok([
        row.get(first)?,
        row.get(first + 1)?,
        row.get(first + 2)?,
        row.get(first + 3)?,
        row.get(first + 4)?,
        row.get(first + 5)?,
    ])
}

/// What a row's responses came to: a DNS rcode's name (`NOERROR truncated`
/// for responses with the TC bit, schema 18), or for a libc call's row the
/// status its returns had (`ok`, `EAI_NONAME`, `HOST_NOT_FOUND`, `no hostent`).
fn outcome_name(key: &Key, rcode: i64) -> String {
    if key.role == role::LIBC
        && let Some(status) = libc_status::of_rcode(rcode)
    {
        return libc_status::name(key.qtype, status).to_owned();
    }
    match split_response_rcode(rcode) {
        (rcode, true) => format!("{} truncated", rcode_name(rcode as u16)),
        (rcode, false) => rcode_name(rcode as u16).into_owned(),
    }
}

/// Every row of the window, added up in one query (stores before schema 5, and
/// `--limit 0`).
fn all_groups(
    reader: &Reader,
    identities: &mut Identities,
    sel: &Selection,
    filtered: &str,
    params: &[&dyn ToSql],
) -> Result<Vec<(Key, Agg)>> {
    // CROSS JOIN keeps SQLite from starting with the (much larger) fact table.
    let mut stmt = reader.connection().prepare(&format!(
        "SELECT l.process_id, l.role, l.qname_id, l.qtype, l.rcode, SUM(l.count), \
                SUM(l.paired), SUM(l.latency_sum_ns), MAX(l.latency_max_ns), \
                MIN(l.first_ns), MAX(l.last_ns) \
         FROM {table} CROSS JOIN lookups l ON l.{col} = {id} \
         WHERE {cond} AND l.hour BETWEEN ?1 AND ?2{filtered} \
         GROUP BY l.process_id, l.role, l.qname_id, l.qtype, l.rcode",
        table = sel.table,
        col = sel.fact_column,
        id = sel.id,
        cond = sel.condition,
    ))?;
    let mut rows = stmt.query(params)?;
    let mut groups: HashMap<Key, Agg> = HashMap::new();
    while let Some(row) = rows.next()? {
        let process_id: i64 = row.get(0)?;
        let key = Key {
            identity: identities.get(reader, process_id)?,
            role: row.get(1)?,
            qname_id: row.get(2)?,
            qtype: row.get(3)?,
        };
        let sums = sums_from(row, 5)?;
        groups
            .entry(key)
            .or_insert_with(|| Agg::new(reader.schema_version()))
            .add(process_id, row.get(4)?, sums);
    }
    Ok(groups.into_iter().collect())
}

/// The ids of the subject's `processes` or `names` rows.
fn subject_ids(reader: &Reader, sel: &Selection) -> Result<Vec<i64>> {
    let mut stmt = reader.connection().prepare_cached(sel.ids)?;
    let params: Vec<&dyn ToSql> = sel.params.iter().map(|p| p as &dyn ToSql).collect();
    let ids = stmt
        .query_map(params.as_slice(), |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// Of `processes` rows, those with `lookups` in the hours: the rows the facts
/// count (a process's, not its threads': the writer's `fact_process`) that
/// have some in the window. A row's facts are then read for those alone.
fn with_lookups(
    reader: &Reader,
    process_ids: Vec<i64>,
    (first_hour, last_hour): (i64, i64),
) -> Result<Vec<i64>> {
    let mut stmt = reader.connection().prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM lookups INDEXED BY lookups_process \
         WHERE process_id = ?1 AND hour BETWEEN ?2 AND ?3)",
    )?;
    let mut kept = Vec::with_capacity(process_ids.len());
    for id in process_ids {
        if stmt.query_row((id, first_hour, last_hour), |row| row.get(0))? {
            kept.push(id);
        }
    }
    Ok(kept)
}

/// Orders rows newest first (then by name id and type) and keeps `limit`.
fn newest_first<T>(rows: &mut Vec<(Key, T)>, last_ns: impl Fn(&T) -> i64, limit: usize) {
    rows.sort_by(|a, b| {
        last_ns(&b.1)
            .cmp(&last_ns(&a.1))
            .then(a.0.qname_id.cmp(&b.0.qname_id))
            .then(a.0.qtype.cmp(&b.0.qtype))
    });
    if limit != 0 {
        rows.truncate(limit);
    }
}

/// The rows of a process, newest first: its `lookups` rows are walked an hour
/// at a time from the newest (`lookups_process`), until the hours seen hold
/// more than `limit` rows. A row's last query is in the newest hour it has, so
/// the rows not met yet are all older than those met. Only the rows kept are
/// then added up over the window.
fn newest_of_processes(
    reader: &Reader,
    identities: &mut Identities,
    pids: Vec<i64>,
    (first_hour, last_hour): (i64, i64),
    limit: usize,
) -> Result<(Vec<(Key, Agg)>, Total)> {
    let conn = reader.connection();
    let mut statements = Vec::with_capacity(pids.len());
    for _ in &pids {
        statements.push(conn.prepare(
            "SELECT hour, role, qname_id, qtype, last_ns FROM lookups INDEXED BY lookups_process \
             WHERE process_id = ?1 AND hour BETWEEN ?2 AND ?3 ORDER BY hour DESC",
        )?);
    }
    type Head = (i64, i64, i64, i64, i64);
    let next = |rows: &mut rusqlite::Rows<'_>| -> rusqlite::Result<Option<Head>> {
        match rows.next()? {
            Some(row) => Ok(Some((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))),
            None => Ok(None),
        }
    };
    let mut cursors = Vec::with_capacity(pids.len());
    for (statement, &pid) in statements.iter_mut().zip(&pids) {
        let mut rows = statement.query((pid, first_hour, last_hour))?;
        let head = next(&mut rows)?;
        cursors.push((pid, rows, head));
    }
    let mut newest: HashMap<Key, i64> = HashMap::new();
    let total = loop {
        if newest.len() > limit {
            break Total::MoreThanShown;
        }
        let Some(hour) = cursors
            .iter()
            .filter_map(|(_, _, head)| head.map(|h| h.0))
            .max()
        else {
            break Total::Exactly(newest.len());
        };
        for (pid, rows, head) in &mut cursors {
            while let Some((h, role, qname_id, qtype, last_ns)) = *head
                && h == hour
            {
                let key = Key {
                    identity: identities.get(reader, *pid)?,
                    role,
                    qname_id,
                    qtype,
                };
                let newest = newest.entry(key).or_insert(i64::MIN);
                *newest = (*newest).max(last_ns);
                *head = next(rows)?;
            }
        }
    };
    drop(cursors);
    let mut rows: Vec<(Key, i64)> = newest.into_iter().collect();
    newest_first(&mut rows, |last_ns| *last_ns, limit);

    let mut of_identity: HashMap<Option<Rc<Identity>>, Vec<i64>> = HashMap::new();
    for &pid in &pids {
        of_identity
            .entry(identities.get(reader, pid)?)
            .or_default()
            .push(pid);
    }
    let mut found = Vec::with_capacity(rows.len());
    for (key, _) in rows {
        let pids = of_identity
            .get(&key.identity)
            .map_or(&[][..], Vec::as_slice);
        let agg = aggregate(reader, &key, pids, (first_hour, last_hour))?;
        found.push((key, agg));
    }
    Ok((found, total))
}

/// The rows of names, newest first: each name's rows are one range of
/// `lookups` (its primary key starts with the name, then process, role, type and
/// rcode), added up as they come.
fn newest_of_names(
    reader: &Reader,
    identities: &mut Identities,
    qname_ids: &[i64],
    only: Option<&Only>,
    (first_hour, last_hour): (i64, i64),
    limit: usize,
) -> Result<(Vec<(Key, Agg)>, Total)> {
    let mut stmt = reader.connection().prepare_cached(
        "SELECT process_id, role, qtype, rcode, SUM(count), SUM(paired), SUM(latency_sum_ns), \
                MAX(latency_max_ns), MIN(first_ns), MAX(last_ns) FROM lookups \
         WHERE qname_id = ?1 AND hour BETWEEN ?2 AND ?3 \
         GROUP BY process_id, role, qtype, rcode",
    )?;
    let mut groups: HashMap<Key, Agg> = HashMap::new();
    for &qname_id in qname_ids {
        let mut rows = stmt.query((qname_id, first_hour, last_hour))?;
        while let Some(row) = rows.next()? {
            let pid: i64 = row.get(0)?;
            if only.is_some_and(|o| !o.matching.processes.process_ids.contains(&pid)) {
                continue;
            }
            let key = Key {
                identity: identities.get(reader, pid)?,
                role: row.get(1)?,
                qname_id,
                qtype: row.get(2)?,
            };
            let sums = sums_from(row, 4)?;
            groups
                .entry(key)
                .or_insert_with(|| Agg::new(reader.schema_version()))
                .add(pid, row.get(3)?, sums);
        }
    }
    let total = Total::Exactly(groups.len());
    let mut found: Vec<(Key, Agg)> = groups.into_iter().collect();
    newest_first(&mut found, |agg| agg.last_ns, limit);
    Ok((found, total))
}

/// A row's sums over the window: its processes' `lookups` rows, a range of
/// the primary key each.
fn aggregate(reader: &Reader, key: &Key, pids: &[i64], (first, last): (i64, i64)) -> Result<Agg> {
    let mut stmt = reader.connection().prepare_cached(
        "SELECT rcode, SUM(count), SUM(paired), SUM(latency_sum_ns), MAX(latency_max_ns), \
                MIN(first_ns), MAX(last_ns) FROM lookups \
         WHERE qname_id = ?1 AND process_id = ?2 AND role = ?3 AND qtype = ?4 \
         AND hour BETWEEN ?5 AND ?6 GROUP BY rcode",
    )?;
    let mut agg = Agg::new(reader.schema_version());
    for &pid in pids {
        let mut rows = stmt.query((key.qname_id, pid, key.role, key.qtype, first, last))?;
        while let Some(row) = rows.next()? {
            let sums = sums_from(row, 1)?;
            agg.add(pid, row.get(0)?, sums);
        }
    }
    Ok(agg)
}

/// The ANSWERS cell's lines for a row's answer set and the count left out:
/// `shown(rtype)` is `None` to leave that type out, `Some(true)` to prefix the
/// data with its type (`CNAME target.`), `Some(false)` for the data alone.
/// Chain links come first.
fn answer_texts(
    reader: &Reader,
    (set, more): &(BTreeSet<(i64, i64)>, usize),
    shown: impl Fn(i64) -> Option<bool>,
) -> Result<Vec<String>> {
    let mut data = Vec::new();
    for &(rtype, rdata_id) in set {
        let text = match shown(rtype) {
            Some(false) => reader.rdata(rdata_id)?.to_string(),
            Some(true) => format!("{} {}", type_name(rtype as u16), reader.rdata(rdata_id)?),
            None => continue,
        };
        data.push(text);
    }
    data.sort_by_key(|d| !d.starts_with("CNAME ") && !d.starts_with("DNAME "));
    if *more > 0 {
        data.push(format!("… and {more} more"));
    }
    Ok(data)
}

/// The answers processes (`processes` rows: a libc caller's, or its local
/// resolver) received for `qname_id` in the hours: (rtype, rdata_id), at most
/// [`MAX_ANSWERS`], and how many more.
fn answers_to(
    reader: &Reader,
    process_ids: impl IntoIterator<Item = impl std::borrow::Borrow<i64>>,
    qname_id: i64,
    (first, last): (i64, i64),
) -> Result<(BTreeSet<(i64, i64)>, usize)> {
    let mut stmt = reader.connection().prepare_cached(
        "SELECT rtype, rdata_id FROM resolutions \
         WHERE process_id = ?1 AND qname_id = ?2 AND hour BETWEEN ?3 AND ?4 \
         GROUP BY rtype, rdata_id",
    )?;
    let mut set = BTreeSet::new();
    let mut more = 0;
    for process_id in process_ids {
        let mut rows = stmt.query((*process_id.borrow(), qname_id, first, last))?;
        while let Some(row) = rows.next()? {
            let answer = (row.get(0)?, row.get(1)?);
            if set.len() < MAX_ANSWERS {
                set.insert(answer);
            } else {
                more += 1;
            }
        }
    }
    Ok((set, more))
}

/// The resolver a row's process asked, and the clients it resolved for, from
/// `delegations` (by its two indexes; nothing on stores without it).
fn delegations(
    reader: &Reader,
    identities: &mut Identities,
    key: &Key,
    agg: &Agg,
    window: &Window,
) -> Result<Peers> {
    let mut peers = Peers::default();
    if !reader.has_delegations() {
        return Ok(peers);
    }
    let conn = reader.connection();
    let (first_hour, last_hour) = window.hours();
    if key.role == role::CLIENT {
        let mut stmt = conn.prepare_cached(
            "SELECT resolver_process_id, SUM(upstream + cached), MAX(last_ns) FROM delegations \
             WHERE client_process_id = ?1 AND qname_id = ?2 AND qtype = ?3 \
             AND hour BETWEEN ?4 AND ?5 GROUP BY resolver_process_id",
        )?;
        let mut busiest = BusiestResolver::default();
        for &process_id in &agg.process_ids {
            let mut rows =
                stmt.query((process_id, key.qname_id, key.qtype, first_hour, last_hour))?;
            while let Some(row) = rows.next()? {
                let resolver = row.get(0)?;
                if !agg.process_ids.contains(&resolver) {
                    busiest.offer(resolver, row.get(1)?, row.get(2)?);
                }
            }
        }
        peers.via = busiest.identity(reader, identities)?;
    }
    // Upstream queries are for the clients whose questions went upstream; the
    // answers to clients, for every client.
    let mut stmt = conn.prepare_cached(
        "SELECT client_process_id, SUM(upstream), SUM(cached) FROM delegations \
         WHERE resolver_process_id = ?1 AND hour BETWEEN ?2 AND ?3 \
         AND qname_id = ?4 AND qtype = ?5 GROUP BY client_process_id",
    )?;
    for &process_id in &agg.process_ids {
        let mut rows = stmt.query((process_id, first_hour, last_hour, key.qname_id, key.qtype))?;
        while let Some(row) = rows.next()? {
            add_client(reader, identities, &mut peers, key, agg, row)?;
        }
    }
    Ok(peers)
}

/// The resolver a client asked most (then most recently) for a row's question:
/// the one shown as its `via`.
#[derive(Default)]
struct BusiestResolver(Option<(i64, i64, i64)>);

impl BusiestResolver {
    fn offer(&mut self, resolver: i64, queries: i64, last_ns: i64) {
        if self.0.is_none_or(|(_, q, l)| (queries, last_ns) > (q, l)) {
            self.0 = Some((resolver, queries, last_ns));
        }
    }

    fn identity(
        &self,
        reader: &Reader,
        identities: &mut Identities,
    ) -> Result<Option<Rc<Identity>>> {
        match self.0 {
            Some((resolver, _, _)) => Ok(identities.get(reader, resolver)?),
            None => Ok(None),
        }
    }

    fn id(&self) -> Option<i64> {
        self.0.map(|(resolver, _, _)| resolver)
    }
}

/// A `delegations` row (client_process_id, SUM(upstream), SUM(cached)) of a
/// resolver's row: upstream queries are for the clients whose questions went
/// upstream; the answers to clients, for every client.
fn add_client(
    reader: &Reader,
    identities: &mut Identities,
    peers: &mut Peers,
    key: &Key,
    agg: &Agg,
    row: &rusqlite::Row<'_>,
) -> Result<()> {
    let (client, upstream, cached): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
    let counts = if key.role == role::CLIENT {
        upstream
    } else {
        upstream + cached
    };
    if counts > 0 && !agg.process_ids.contains(&client) {
        peers.clients.insert(identities.get(reader, client)?);
    }
    Ok(())
}

/// The local resolvers that have `delegations` rows for a name, by name id.
#[derive(Default)]
struct Resolvers(HashMap<i64, Vec<i64>>);

impl Resolvers {
    /// One primary-key seek a resolver (a name has a handful).
    fn of(&mut self, reader: &Reader, qname_id: i64) -> Result<&[i64]> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.0.entry(qname_id) {
            let mut stmt = reader.connection().prepare_cached(
                "SELECT resolver_process_id FROM delegations \
                 WHERE qname_id = ?1 AND resolver_process_id > ?2 \
                 ORDER BY resolver_process_id LIMIT 1",
            )?;
            let mut found = Vec::new();
            let mut after = i64::MIN;
            while let Some(resolver) = stmt
                .query_row((qname_id, after), |row| row.get::<_, i64>(0))
                .optional()?
            {
                found.push(resolver);
                after = resolver;
            }
            entry.insert(found);
        }
        Ok(&self.0[&qname_id])
    }
}

/// [`delegations`] on schema 5 stores, whose `delegations` are keyed by
/// (name, resolver, type, client, hour): a client's resolver is one range per
/// resolver of the name, a resolver's clients one range.
fn delegations_by_name(
    reader: &Reader,
    identities: &mut Identities,
    resolvers: &mut Resolvers,
    key: &Key,
    agg: &Agg,
    window: &Window,
) -> Result<Peers> {
    let mut peers = Peers::default();
    let conn = reader.connection();
    let (first_hour, last_hour) = window.hours();
    let resolvers = resolvers.of(reader, key.qname_id)?.to_vec();
    if key.role == role::CLIENT || key.role == role::LIBC {
        // A libc call is linked to the resolver's queries of every type (its
        // `qtype` is the function). Two statements: a client row's type keeps
        // the whole key prefix for the seek (an `OR` on it made `dnsq name`
        // six times slower on the benchmark's history). `?3` (the row's type)
        // goes unused in the first.
        let mut stmt = if key.role == role::LIBC {
            conn.prepare_cached(
                "SELECT SUM(upstream + cached), MAX(last_ns) FROM delegations \
                 WHERE qname_id = ?1 AND resolver_process_id = ?2 \
                 AND client_process_id = ?4 AND hour BETWEEN ?5 AND ?6",
            )?
        } else {
            conn.prepare_cached(
                "SELECT SUM(upstream + cached), MAX(last_ns) FROM delegations \
                 WHERE qname_id = ?1 AND resolver_process_id = ?2 AND qtype = ?3 \
                 AND client_process_id = ?4 AND hour BETWEEN ?5 AND ?6",
            )?
        };
        let mut busiest = BusiestResolver::default();
        for &process_id in &agg.process_ids {
            for &resolver in &resolvers {
                if agg.process_ids.contains(&resolver) {
                    continue;
                }
                let (queries, last_ns): (Option<i64>, Option<i64>) = stmt.query_row(
                    (
                        key.qname_id,
                        resolver,
                        key.qtype,
                        process_id,
                        first_hour,
                        last_hour,
                    ),
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?;
                if let (Some(queries), Some(last_ns)) = (queries, last_ns) {
                    busiest.offer(resolver, queries, last_ns);
                }
            }
        }
        peers.via = busiest.identity(reader, identities)?;
        peers.via_id = busiest.id();
    }
    if key.role == role::LIBC {
        // An application's call has no clients of its own.
        return Ok(peers);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT client_process_id, SUM(upstream), SUM(cached) FROM delegations \
         WHERE qname_id = ?1 AND resolver_process_id = ?2 AND qtype = ?3 \
         AND hour BETWEEN ?4 AND ?5 GROUP BY client_process_id",
    )?;
    for &process_id in &agg.process_ids {
        if !resolvers.contains(&process_id) {
            continue;
        }
        let mut rows = stmt.query((key.qname_id, process_id, key.qtype, first_hour, last_hour))?;
        while let Some(row) = rows.next()? {
            add_client(reader, identities, &mut peers, key, agg, row)?;
        }
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compact (a narrow terminal): five columns, the time under the date, the
    /// type under the name, the count and latency under the rcodes.
    #[test]
    fn the_compact_table_stacks_what_the_wide_one_spreads() {
        let out = Output::new(false, true);
        let rows = [LookupCells {
            last_seen: "2026-11-27 13:25:41".into(),
            process: "python3[5321]\nvia dnsmasq[5304]".into(),
            name: "www.example.test.".into(),
            qtype: "getaddrinfo".into(),
            queries: 2,
            libc: true,
            rcodes: "ok".into(),
            error: false,
            latency: vec!["avg 0.40".into(), "max 0.52 ms".into()],
            answers: "198.18.0.20".into(),
        }];
        let wide = lookups_table(&out, &rows, false).to_string();
        assert!(
            wide.contains("QUERIES") && wide.contains("2026-11-27 13:25:41"),
            "{wide}"
        );
        let mut compact = lookups_table(&out, &rows, true);
        assert_eq!(compact.column_count(), 5);
        let text = compact.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "header and four lines: {text}");
        for (line, parts) in lines[1..].iter().zip([
            ["2026-11-27", "python3[5321]", "www.example.test.", "ok"],
            ["13:25:41", "via dnsmasq[5304]", "getaddrinfo", "2 calls"],
        ]) {
            for part in parts {
                assert!(line.contains(part), "{part} not in {line:?}: {text}");
            }
        }
        assert!(lines[3].contains("avg 0.40 ms"), "{text}");
        assert!(lines[4].contains("max 0.52 ms"), "{text}");
    }
}
