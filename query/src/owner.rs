//! The owner of a process's cgroup — its systemd unit and its container — shown
//! beside the process, and the `--unit` / `--container` filters. (Messages carry
//! `unit` and `container` already: the recorder, and the reader for stored ones,
//! fill them from the cgroup.)
//!
//! Filters are resolved once, from the (small) `processes` table, into the set
//! of process ids (and cgroup ids) that match; fact rows and messages are then
//! filtered by `process_id`.

use std::{collections::HashMap, rc::Rc};

use dnsq_recorder::{
    service::{CgroupOwner, owner_of_cgroup},
    store::read::{ProcessFilter, ReadError, Reader, sql_id_list},
};

use crate::{escape, facts::Usage};

/// Distinct cgroup paths remembered (a stream of messages has few; hostile
/// input must not grow this without bound).
const MAX_CACHED: usize = 4096;

/// Owners by cgroup path.
#[derive(Default)]
pub struct Owners {
    by_path: HashMap<String, Rc<CgroupOwner>>,
}

impl Owners {
    pub fn of_path(&mut self, path: &str) -> Rc<CgroupOwner> {
        if let Some(hit) = self.by_path.get(path) {
            return hit.clone();
        }
        let owner = Rc::new(owner_of_cgroup(path));
        if self.by_path.len() >= MAX_CACHED {
            self.by_path.clear();
        }
        self.by_path.insert(path.to_owned(), owner.clone());
        owner
    }
}

/// An owner in a table cell: the unit, then the container (short ids; a
/// pod and its container on lines of their own), escaped.
pub fn lines(owner: &CgroupOwner) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(unit) = &owner.unit {
        lines.push(escape::safe(unit).into_owned());
    }
    if let Some(container) = &owner.container {
        match container.short_pod_uid() {
            Some(uid) if !container.is_pod() => {
                lines.push(format!("k8s pod {}", escape::safe(uid)));
                let id = escape::safe(container.short());
                lines.push(if container.runtime == "kubernetes" {
                    id.into_owned()
                } else {
                    format!("{}:{id}", container.runtime)
                });
            }
            _ => lines.push(escape::safe(&container.to_string()).into_owned()),
        }
    }
    lines
}

/// An owner on one line (`nginx.service`, `docker:3f2a1b4c5d6e`, both with a
/// space between), escaped; empty when there is none.
pub fn text(owner: &CgroupOwner) -> String {
    let mut parts = Vec::new();
    if let Some(unit) = &owner.unit {
        parts.push(escape::safe(unit).into_owned());
    }
    if let Some(container) = &owner.container {
        parts.push(escape::safe(&container.to_string()).into_owned());
    }
    parts.join(" ")
}

/// `--unit` and `--container`.
#[derive(Debug)]
pub struct Filter {
    unit: Option<String>,
    container: Option<String>,
}

impl Filter {
    /// `None` when neither is given.
    pub fn new(unit: Option<&str>, container: Option<&str>) -> Result<Option<Self>, Usage> {
        if unit.is_some_and(|u| u.trim().is_empty()) {
            return Err(Usage("--unit needs a unit name or a glob".into()));
        }
        if container.is_some_and(|c| c.trim().is_empty()) {
            return Err(Usage(
                "--container needs a container id (or a prefix of it) or a pod UID".into(),
            ));
        }
        Ok((unit.is_some() || container.is_some()).then(|| Self {
            unit: unit.map(|u| u.trim().to_owned()),
            container: container.map(|c| c.trim().to_owned()),
        }))
    }

    pub fn matches(&self, owner: &CgroupOwner) -> bool {
        if let Some(wanted) = &self.unit
            && !owner
                .unit
                .as_deref()
                .is_some_and(|unit| unit_matches(wanted, unit))
        {
            return false;
        }
        if let Some(wanted) = &self.container
            && !owner
                .container
                .as_ref()
                .is_some_and(|container| container.matches(wanted))
        {
            return false;
        }
        true
    }

    /// `in unit `nginx*``, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(unit) = &self.unit {
            parts.push(format!("unit `{}`", escape::safe(unit)));
        }
        if let Some(container) = &self.container {
            parts.push(format!("container `{}`", escape::safe(container)));
        }
        format!("in {}", parts.join(" and "))
    }

    /// The processes (and cgroups) that match, from one pass over `processes`.
    pub fn resolve(&self, reader: &Reader, owners: &mut Owners) -> Result<Matching, ReadError> {
        let mut matching = ProcessFilter::default();
        let last_id = self.extend(reader, owners, 0, &mut matching)?;
        Ok(Matching {
            processes: Rc::new(matching),
            last_id,
        })
    }

    /// Adds the matching processes with `processes.id > after` to `matching`;
    /// returns the largest id seen (`after` when none), for the next call.
    pub fn extend(
        &self,
        reader: &Reader,
        owners: &mut Owners,
        after: i64,
        matching: &mut ProcessFilter,
    ) -> Result<i64, ReadError> {
        let mut last_id = after;
        let mut verdicts: HashMap<String, bool> = HashMap::new();
        let mut stmt = reader.connection().prepare_cached(
            "SELECT id, cgroup_id, cgroup FROM processes WHERE id > ?1 AND cgroup IS NOT NULL",
        )?;
        let mut rows = stmt.query([after])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            last_id = last_id.max(id);
            let path: String = row.get(2)?;
            let matched = match verdicts.get(&path) {
                Some(&verdict) => verdict,
                None => {
                    let verdict = self.matches(&owners.of_path(&path));
                    if verdicts.len() < MAX_CACHED * 16 {
                        verdicts.insert(path, verdict);
                    }
                    verdict
                }
            };
            if matched {
                matching.process_ids.insert(id);
                if let Some(cgroup_id) = row.get::<_, Option<i64>>(1)? {
                    matching.socket_cgroup_ids.insert(cgroup_id as u64);
                }
            }
        }
        Ok(last_id)
    }
}

/// `--unit` / `--container`, resolved.
pub struct Only {
    pub filter: Filter,
    pub matching: Matching,
}

impl Only {
    /// Whether the process shown (an identity) passes the filter.
    pub fn shows(&self, identity: Option<&crate::facts::Identity>) -> bool {
        identity.is_some_and(|i| self.filter.matches(&i.owner))
    }
}

/// The processes a [`Filter`] selects.
#[derive(Clone)]
pub struct Matching {
    pub processes: Rc<ProcessFilter>,
    /// The newest `processes` row looked at (see [`Filter::extend`]).
    pub last_id: i64,
}

impl Matching {
    pub fn is_empty(&self) -> bool {
        self.processes.process_ids.is_empty() && self.processes.socket_cgroup_ids.is_empty()
    }

    /// `AND <column> IN (…)`: the ids are integers from the database, safe to
    /// inline (SQLite turns the list into an index of its own).
    pub fn sql(&self, column: &str) -> String {
        format!(
            " AND {column} IN ({})",
            sql_id_list(self.processes.process_ids.iter().copied())
        )
    }

    /// `AND process_id IN (…)` for a statement over the `lookups` rows of the
    /// hours `first..=last`, through the process index only where the selected
    /// processes have few rows there. SQLite takes the index for any such list,
    /// and through it each row costs a seek into the table (~2 µs), where a
    /// scan of all the rows costs ~0.2 µs each: for a unit with most of the
    /// rows, `dnsq --unit … top processes` took 3.5 s through the index, 5
    /// times the unfiltered command (the benchmark's history). Counting the
    /// selected rows, up to [`INDEXED_ROWS`], reads the index alone.
    pub fn lookups_sql(&self, reader: &Reader, hours: (i64, i64)) -> Result<String, ReadError> {
        let list = sql_id_list(self.processes.process_ids.iter().copied());
        let selected: i64 = reader.connection().query_row(
            &format!(
                "SELECT count(*) FROM (SELECT 1 FROM lookups WHERE process_id IN ({list}) \
                 AND hour BETWEEN ?1 AND ?2 LIMIT ?3)"
            ),
            (hours.0, hours.1, INDEXED_ROWS),
            |row| row.get(0),
        )?;
        // `+`: not through an index.
        let column = if selected < INDEXED_ROWS {
            "process_id"
        } else {
            "+process_id"
        };
        Ok(format!(" AND {column} IN ({list})"))
    }
}

/// Selected `lookups` rows up to which reading them through the process index
/// beats a scan: ~0.3 s of seeks (the benchmark's history: a unit with 171k
/// rows took 0.3 s through the index, a scan of its 2.8M rows 0.5 s).
const INDEXED_ROWS: i64 = 150_000;

/// `--unit`: a glob when it has `*` or `?`; else the name itself, or, without
/// a suffix, `NAME.service` (as systemctl does).
fn unit_matches(wanted: &str, unit: &str) -> bool {
    if wanted.contains(['*', '?']) {
        glob(wanted.as_bytes(), unit.as_bytes())
    } else {
        unit == wanted
            || (!wanted.contains('.')
                && unit
                    .strip_suffix(".service")
                    .is_some_and(|stem| stem == wanted))
    }
}

/// `*` any bytes, `?` one character; linear time (the classic two-pointer
/// match, backtracking only to the last `*`).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'?' {
            // One character, however many bytes its UTF-8 takes.
            p += 1;
            t += 1;
            while t < text.len() && text[t] & 0xc0 == 0x80 {
                t += 1;
            }
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_patterns() {
        assert!(unit_matches("nginx.service", "nginx.service"));
        assert!(unit_matches("nginx", "nginx.service"));
        assert!(!unit_matches("nginx", "nginx.scope"));
        assert!(!unit_matches("nginx.", "nginx.service"));
        assert!(unit_matches("nginx*", "nginx.service"));
        assert!(unit_matches("nginx*", "nginx-worker.scope"));
        assert!(!unit_matches("nginx*", "xnginx.service"));
        assert!(unit_matches("*.scope", "session-3.scope"));
        assert!(unit_matches("session-?.scope", "session-3.scope"));
        assert!(!unit_matches("session-?.scope", "session-33.scope"));
        assert!(unit_matches("*", "anything.service"));
        assert!(unit_matches("caf?.service", "café.service"));
        assert!(unit_matches("a*b*c", "aXbYbZc"));
        assert!(!unit_matches("a*b*c", "aXbYbZ"));
    }
}
