//! `dnsq stats`: message counts and time span, distinct names and processes, the
//! database's size, the recorder's runs, and what the recorder lost.

use std::collections::BTreeMap;

use anyhow::Result;
use dnsq_recorder::store::{
    read::Reader,
    schema::{self, MinuteCounts},
};
use serde::Serialize;

use crate::{
    facts::{self, NothingFound},
    output::{Output, cell},
    owner::Only,
    timearg::Window,
};

#[derive(Default, Serialize)]
struct Stats {
    database: String,
    /// `--unit` / `--container`: the message, name and process counts are
    /// those processes' (the rest is the whole recorder's).
    #[serde(skip_serializing_if = "Option::is_none")]
    only: Option<String>,
    /// The database file, and its write-ahead log, in bytes.
    size_bytes: u64,
    wal_bytes: u64,
    messages: i64,
    queries: i64,
    responses: i64,
    malformed: i64,
    /// Queries processes sent that got no paired response.
    unanswered: i64,
    first_time: Option<String>,
    last_time: Option<String>,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
    span_seconds: Option<f64>,
    /// Distinct question names and pids (whole hours).
    names: i64,
    processes: i64,
    /// Calls of libc's resolver functions (getaddrinfo, gethostbyname*) in the
    /// window; of those, how many had their return recorded and how many of
    /// those failed (schema 13 stores; absent before).
    libc_calls: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    libc_calls_returned: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    libc_calls_failed: Option<i64>,
    runs: i64,
    /// Runs that ended without recording a stop (a crash, or still running).
    unclean_runs: i64,
    last_start: Option<String>,
    last_start_ns: Option<i64>,
    /// `running` (or crashed: the recorder cannot tell) or `stopped: reason`.
    last_run: Option<String>,
    /// The recorder's counters summed over its runs, within the window.
    counters: BTreeMap<String, i64>,
    /// Every counter whose name starts with `lost_` or has `dropped` in it.
    lost_total: i64,
}

pub fn run(reader: &Reader, out: &mut Output, window: &Window, only: Option<&Only>) -> Result<()> {
    let conn = reader.connection();
    let path = reader.path();
    let lookups_filter = match only {
        Some(o) => o.matching.lookups_sql(reader, window.hours())?,
        None => String::new(),
    };
    let mut stats = Stats {
        database: path.display().to_string(),
        only: only.map(|o| {
            o.filter
                .describe()
                .trim_start_matches("in ")
                .replace('`', "")
        }),
        size_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        wal_bytes: std::fs::metadata(format!("{}-wal", path.display()))
            .map(|m| m.len())
            .unwrap_or(0),
        ..Stats::default()
    };
    let since = window.since_ns.unwrap_or(i64::MIN);
    let until = window.until_ns.unwrap_or(i64::MAX);

    let counts = message_counts(reader, window, only)?;
    if counts.messages > 0 {
        stats.messages = counts.messages;
        stats.queries = counts.queries;
        stats.responses = counts.responses;
        stats.malformed = counts.malformed;
        stats.unanswered = (counts.queries_sent - counts.answered).max(0);
        let (first, last) = (counts.first_ns, counts.last_ns);
        stats.first_ns = Some(first);
        stats.last_ns = Some(last);
        stats.first_time = Some(out.clock.rfc3339(first));
        stats.last_time = Some(out.clock.rfc3339(last));
        stats.span_seconds = Some((last - first) as f64 / 1e9);
    }

    let (first_hour, last_hour) = window.hours();
    // Distinct names: over a wide window, a seek into `lookups` (keyed by name
    // first) for each name beats collecting the window's rows (each process's
    // hours in `lookups_process`; an hour index before schema 16) and sorting
    // their names (all 30 days of the benchmark's history:
    // 0.07 s against 0.5 s; one day: 0.21 s against 0.02 s). Distinct pids: a
    // seek into `lookups_process` for each process row, whatever the window
    // (0.005 s against 0.5 s).
    let names_sql = if window.is_wide(facts::lookups_hours(reader)?) {
        format!(
            "SELECT count(*) FROM names n WHERE EXISTS (SELECT 1 FROM lookups \
             WHERE qname_id = n.id AND hour BETWEEN ?1 AND ?2{lookups_filter})"
        )
    } else {
        let by_process_hour = schema::LOOKUPS_BY_PROCESS_HOUR;
        format!(
            "SELECT COUNT(DISTINCT qname_id) FROM lookups \
             WHERE {by_process_hour} BETWEEN ?1 AND ?2{lookups_filter}"
        )
    };
    (stats.names, stats.processes) = conn
        .prepare_cached(&format!(
            "SELECT ({names_sql}), \
                (SELECT COUNT(DISTINCT p.pid) FROM processes p WHERE EXISTS \
                    (SELECT 1 FROM lookups WHERE process_id = p.id \
                     AND hour BETWEEN ?1 AND ?2{lookups_filter}))",
        ))?
        .query_row((first_hour, last_hour), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;

    // A scan of the table, which has no time index: calls are few beside
    // messages (one per application lookup, not four).
    let returns = if reader.has_libc_returns() {
        "count(returned_ns), TOTAL(status != 0)"
    } else {
        "NULL, NULL"
    };
    (
        stats.libc_calls,
        stats.libc_calls_returned,
        stats.libc_calls_failed,
    ) = conn
        .prepare_cached(&format!(
            "SELECT count(*), {returns} FROM libc_lookups \
             WHERE time_ns >= ?1 AND time_ns < ?2{lookups_filter}"
        ))?
        .query_row((since, until), |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get::<_, Option<f64>>(2)?.map(|n| n as i64),
            ))
        })?;

    runs(reader, &mut stats, since, until, out)?;

    if stats.messages == 0 && stats.runs == 0 {
        return Err(NothingFound(format!(
            "no messages and no recorder runs {}",
            window.describe(&out.clock)
        ))
        .into());
    }
    if out.json {
        out.json_line(&stats)?;
        return Ok(());
    }
    print(out, &stats, window)
}

/// The window's messages by class. The whole minutes the store has counted
/// (schema 10) are added up from `time_index`; only the rest (the partial
/// minutes at the window's ends, minutes written before schema 10 or cut into by
/// retention) is counted from `messages`. With `--unit` or `--container` every
/// message of the window is read, as the minute counts are the whole host's.
fn message_counts(reader: &Reader, window: &Window, only: Option<&Only>) -> Result<MinuteCounts> {
    let (mut counts, uncounted) = match only {
        Some(_) => (
            MinuteCounts::default(),
            vec![(window.since_ns, window.until_ns)],
        ),
        None => reader.minute_counts(window.since_ns, window.until_ns)?,
    };
    let processes = only.map(|o| &*o.matching.processes);
    for (since, until) in uncounted {
        let Some(ids) = reader.id_range(since, until)? else {
            continue;
        };
        counts.merge(&reader.count_messages(ids, since, until, processes)?);
    }
    Ok(counts)
}

/// Runs overlapping the window, and their counters: for each run, the last
/// sample before `until` less the last sample before `since` (samples are totals
/// since the run started).
fn runs(reader: &Reader, stats: &mut Stats, since: i64, until: i64, out: &Output) -> Result<()> {
    let conn = reader.connection();
    let mut stmt = conn.prepare_cached(
        "SELECT id, started_ns, stopped_ns, stop_reason FROM runs \
         WHERE started_ns < ?2 AND (stopped_ns IS NULL OR stopped_ns >= ?1) ORDER BY id",
    )?;
    let runs: Vec<(i64, i64, Option<i64>, Option<String>)> = stmt
        .query_map((since, until), |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut sample = conn.prepare_cached(
        "SELECT \"values\" FROM counters WHERE run_id = ?1 AND time_ns < ?2 \
         ORDER BY time_ns DESC LIMIT 1",
    )?;
    let mut counters_at = |run: i64, ns: i64| -> Result<BTreeMap<String, i64>> {
        let text: Option<String> = sample
            .query_map((run, ns), |row| row.get(0))?
            .next()
            .transpose()?;
        let mut values = BTreeMap::new();
        if let Some(text) = text
            && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text)
        {
            for (name, value) in map {
                if let Some(n) = value.as_i64().or_else(|| value.as_u64().map(|v| v as i64)) {
                    values.insert(name, n);
                }
            }
        }
        Ok(values)
    };
    let last_index = runs.len().saturating_sub(1);
    for (index, (id, started, stopped, reason)) in runs.iter().enumerate() {
        stats.runs += 1;
        if stopped.is_none() && index != last_index {
            stats.unclean_runs += 1;
        }
        let end = counters_at(*id, until)?;
        let start = counters_at(*id, since)?;
        for (name, value) in end {
            let delta = value - start.get(&name).copied().unwrap_or(0);
            *stats.counters.entry(name).or_default() += delta;
        }
        if index == last_index {
            stats.last_start_ns = Some(*started);
            stats.last_start = Some(out.clock.rfc3339(*started));
            stats.last_run = Some(match (stopped, reason) {
                (None, _) => "running (or crashed)".into(),
                (Some(_), Some(reason)) => format!("stopped: {reason}"),
                (Some(_), None) => "stopped".into(),
            });
        }
    }
    stats.lost_total = stats
        .counters
        .iter()
        .filter(|(name, _)| name.starts_with("lost_") || name.contains("dropped"))
        .map(|(_, v)| v)
        .sum();
    Ok(())
}

fn print(out: &mut Output, s: &Stats, window: &Window) -> Result<()> {
    let clock = out.clock.clone();
    let mut table = out.table(&[]);
    let mut add = |key: &str, value: String| {
        table.add_row(vec![cell(key), cell(&value)]);
    };
    add("window", window.describe(&clock));
    if let Some(only) = &s.only {
        add(
            "only",
            format!(
                "{only} (messages, names, processes, libc calls; the rest is the whole \
                 recorder's)"
            ),
        );
    }
    add("database", s.database.clone());
    add(
        "size",
        format!(
            "{} (+ {} write-ahead log)",
            bytes(s.size_bytes),
            bytes(s.wal_bytes)
        ),
    );
    add("messages", s.messages.to_string());
    add("  queries", s.queries.to_string());
    add("  responses", s.responses.to_string());
    add("  malformed", s.malformed.to_string());
    add(
        "  unanswered",
        format!("{} (queries sent with no response seen)", s.unanswered),
    );
    if let (Some(first), Some(last)) = (s.first_ns, s.last_ns) {
        add("first", clock.short(first));
        add("last", clock.short(last));
        add("span", span(s.span_seconds.unwrap_or(0.0)));
    }
    add("names", s.names.to_string());
    add("processes", format!("{} distinct pids", s.processes));
    add("libc calls", s.libc_calls.to_string());
    if let (Some(returned), Some(failed)) = (s.libc_calls_returned, s.libc_calls_failed) {
        add("  returned", format!("{returned} ({failed} failed)"));
    }
    add(
        "recorder runs",
        format!("{} ({} unclean)", s.runs, s.unclean_runs),
    );
    if let (Some(start), Some(state)) = (s.last_start_ns, &s.last_run) {
        add(
            "last run",
            format!("started {}, {state}", clock.short(start)),
        );
    }
    add("lost", s.lost_total.to_string());
    for (name, value) in &s.counters {
        add(&format!("  {name}"), value.to_string());
    }
    out.print_table(&mut table)?;
    Ok(())
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn span(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        0..60 => format!("{seconds:.1}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}
