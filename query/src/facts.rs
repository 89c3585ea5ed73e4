//! What the fact-table commands (who, by-process, name, top) share: process
//! identities, and the errors that end a command.

use std::{collections::HashMap, fmt, rc::Rc};

use dnsq_recorder::{
    service::{CgroupOwner, Container},
    store::{
        read::{ReadError, Reader, StoredProcess},
        schema::{self, NS_PER_HOUR},
    },
};
use serde::Serialize;

use crate::{escape, owner, timearg::Clock};

/// "Nothing found": exit status 1, with this message on stderr.
#[derive(Debug)]
pub struct NothingFound(pub String);

impl fmt::Display for NothingFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NothingFound {}

/// A usage error found after the command line parsed: exit status 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A process as the reports group it: a `processes` row without the thread, so
/// the threads of one process make one row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Identity {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub cgroup: Option<String>,
    /// The systemd unit and the container the cgroup names, as the recorder
    /// writes them (`nginx.service`, `docker:<64 hex>`; see
    /// `dnsq_recorder::service`).
    pub unit: Option<String>,
    pub container: Option<String>,
    #[serde(skip)]
    pub owner: CgroupOwner,
}

/// By pid alone: identities are keys of the commands' maps (a row per process),
/// and hashing every string of each one cost more than the rest of `dnsq who`.
/// Equal identities have equal pids; the few that share one are told apart by
/// `Eq`.
impl std::hash::Hash for Identity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pid.hash(state);
    }
}

impl Identity {
    /// `curl[4242]`, escaped.
    pub fn label(&self) -> String {
        format!("{}[{}]", escape::safe(&self.comm), self.pid)
    }

    pub fn has_owner(&self) -> bool {
        !self.owner.is_empty()
    }

    /// The unit and container, one a line, escaped (none when unknown).
    pub fn owner_lines(&self) -> Vec<String> {
        owner::lines(&self.owner)
    }
}

/// `label` of an identity, or `?` for an unknown process.
pub fn label(identity: Option<&Identity>) -> String {
    identity.map_or_else(|| "?".into(), Identity::label)
}

/// `processes.id` → [`Identity`], interned (equal identities share one `Rc`).
#[derive(Default)]
pub struct Identities {
    by_id: HashMap<i64, Option<Rc<Identity>>>,
    interned: HashMap<Rc<Identity>, ()>,
}

impl Identities {
    pub fn get(&mut self, reader: &Reader, id: i64) -> Result<Option<Rc<Identity>>, ReadError> {
        if let Some(hit) = self.by_id.get(&id) {
            return Ok(hit.clone());
        }
        let identity = reader.process(id)?.map(|p| self.intern(&p));
        self.by_id.insert(id, identity.clone());
        Ok(identity)
    }

    fn intern(&mut self, p: &StoredProcess) -> Rc<Identity> {
        let owner = p.owner.clone();
        let identity = Identity {
            pid: p.pid,
            comm: p.comm.clone(),
            exe: p.exe.clone(),
            uid: p.uid,
            gid: p.gid,
            cgroup: p.cgroup.clone(),
            unit: owner.unit.clone(),
            container: owner.container.as_ref().map(Container::full),
            owner,
        };
        if let Some((existing, ())) = self.interned.get_key_value(&identity) {
            return existing.clone();
        }
        let identity = Rc::new(identity);
        self.interned.insert(identity.clone(), ());
        identity
    }
}

/// Processes named by program, escaped: a program's runs together (`curl (41
/// pids)`), one process by its pid (`wget[813]`), the programs with the most
/// processes first and unknown processes (`?`) after the known; `shown` of
/// them, then how many more (`+2`).
pub fn program_labels<'a>(
    processes: impl IntoIterator<Item = Option<&'a Identity>>,
    shown: usize,
) -> Vec<String> {
    /// (command, executable); None for unknown processes.
    type Program<'a> = Option<(&'a str, Option<&'a str>)>;
    let mut programs: Vec<(Program<'a>, Vec<Option<&'a Identity>>)> = Vec::new();
    for process in processes {
        let program = process.map(|p| (p.comm.as_str(), p.exe.as_deref()));
        match programs.iter_mut().find(|(p, _)| *p == program) {
            Some((_, runs)) => runs.push(process),
            None => programs.push((program, vec![process])),
        }
    }
    programs.sort_by_key(|(program, runs)| (std::cmp::Reverse(runs.len()), program.is_none()));
    let mut labels: Vec<String> = programs
        .iter()
        .take(shown)
        .map(|(program, runs)| match (program, runs.as_slice()) {
            (_, [one]) => label(*one),
            (Some((comm, _)), many) => format!("{} ({} pids)", escape::safe(comm), many.len()),
            (None, _) => "?".to_owned(),
        })
        .collect();
    if programs.len() > shown {
        labels.push(format!("+{}", programs.len() - shown));
    }
    labels
}

/// Keeps the first `limit` rows (0: all) and says on stderr how many were left
/// out.
pub fn apply_limit<T>(rows: &mut Vec<T>, limit: usize) {
    if limit != 0 && rows.len() > limit {
        eprintln!(
            "dnsq: showing {limit} of {} rows (--limit 0 shows all)",
            rows.len()
        );
        rows.truncate(limit);
    }
}

/// Escapes a glob's metacharacters so they match themselves (SQLite GLOB).
pub fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            _ => out.push(c),
        }
    }
    out
}

/// Which hours the fact tables hold, for a "nothing found": `lookups recorded
/// from 2026-10-01 00:00 to 2026-10-31 00:00`, or that none were.
pub fn recorded_span(reader: &Reader, clock: &Clock) -> Result<String, ReadError> {
    Ok(match lookups_hours(reader)? {
        Some((first, last)) => format!(
            "lookups recorded from {} to {}",
            clock.minutes(first.saturating_mul(NS_PER_HOUR)),
            clock.minutes(last.saturating_add(1).saturating_mul(NS_PER_HOUR))
        ),
        None => "no lookups recorded yet".to_owned(),
    })
}

/// The first and last hour `lookups` holds: each process's two ends in the
/// (process_id, hour) index ([`schema::LOOKUPS_HOURS`]).
pub fn lookups_hours(reader: &Reader) -> Result<Option<(i64, i64)>, ReadError> {
    let (oldest, newest): (Option<i64>, Option<i64>) = reader
        .connection()
        .prepare_cached(schema::LOOKUPS_HOURS)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(oldest.zip(newest))
}
