//! `dnsq tail [-f]`: the newest messages, then (with `-f`) new ones as they are
//! stored. Following polls the newest rowid every 250 ms, each poll its own short
//! read transaction, so the writer's WAL can always be checkpointed.

use std::{io::Write, net::IpAddr, ops::ControlFlow, thread, time::Duration};

use anyhow::Result;
use dnsq_recorder::{
    record::{Direction, MessageRecord, ProcessInfo, Transport},
    service::CgroupOwner,
    store::read::{IdRange, MessageQuery, ReadError, Reader},
};

use crate::{
    escape::safe,
    facts::NothingFound,
    output::Output,
    owner::{self, Only, Owners},
    timearg::Window,
};

const POLL: Duration = Duration::from_millis(250);
const SHOWN_ANSWERS: usize = 6;
/// Clients named after `for`.
const SHOWN_CLIENTS: usize = 3;

pub struct Options<'a> {
    pub follow: bool,
    pub lines: usize,
    pub only: Option<&'a Only>,
}

pub fn run(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    options: &Options<'_>,
    owners: &mut Owners,
) -> Result<()> {
    let (follow, lines) = (options.follow, options.lines);
    // Followed, the filter takes in the processes recorded from now on too.
    let mut matching = options
        .only
        .map(|o| (o.matching.processes.as_ref().clone(), o.matching.last_id));
    // Everything up to here is "the newest"; later rows are followed.
    let mut cursor = reader.max_id()?.unwrap_or(0);
    let mut newest = Vec::new();
    if lines > 0
        && let Some(ids) = reader.id_range(window.since_ns, window.until_ns)?
        && ids.first <= cursor
    {
        let query = MessageQuery {
            ids: IdRange {
                first: ids.first,
                last: ids.last.min(cursor),
            },
            since_ns: window.since_ns,
            until_ns: window.until_ns,
            newest_first: true,
            processes: matching.as_ref().map(|(processes, _)| processes),
        };
        reader.messages(&query, |record| -> Result<_, ReadError> {
            newest.push(record);
            Ok(if newest.len() >= lines {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
    }
    if newest.is_empty() && !follow {
        let only = options
            .only
            .map(|o| format!(" of processes {}", o.filter.describe()))
            .unwrap_or_default();
        return Err(
            NothingFound(format!("no messages{only} {}", window.describe(&out.clock))).into(),
        );
    }
    for record in newest.iter().rev() {
        print(out, owners, record)?;
    }
    if !follow {
        return Ok(());
    }
    loop {
        out.flush()?;
        thread::sleep(POLL);
        let Some(max) = reader.max_id()? else {
            continue;
        };
        if max <= cursor {
            // Fewer rows than before: retention, or another database.
            cursor = cursor.min(max);
            continue;
        }
        if let (Some(only), Some((processes, last_id))) = (options.only, matching.as_mut()) {
            *last_id = only.filter.extend(reader, owners, *last_id, processes)?;
        }
        let query = MessageQuery {
            ids: IdRange {
                first: cursor + 1,
                last: max,
            },
            since_ns: window.since_ns,
            until_ns: None,
            newest_first: false,
            processes: matching.as_ref().map(|(processes, _)| processes),
        };
        let mut result = Ok(());
        reader.messages(&query, |record| -> Result<_, ReadError> {
            result = print(out, owners, &record);
            Ok(if result.is_err() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        result?;
        cursor = max;
    }
}

fn print(out: &mut Output, owners: &mut Owners, record: &MessageRecord) -> Result<()> {
    if out.json {
        return Ok(out.json_line(record)?);
    }
    let owner = record.process.cgroup.as_deref().map(|c| owners.of_path(c));
    let line = line(out, record, owner.as_deref());
    Ok(writeln!(out.writer(), "{line}")?)
}

/// `curl[4242]`, escaped; `?` when unknown.
fn label(p: &ProcessInfo) -> String {
    match (&p.comm, p.pid) {
        (Some(comm), Some(pid)) => format!("{}[{pid}]", safe(comm)),
        (None, Some(pid)) => format!("[{pid}]"),
        _ => "?".into(),
    }
}

/// `2026-11-24 10:00:00.123  curl[4242] session-1.scope  > udp 198.18.0.1:53  query A www.example.com.`
fn line(out: &Output, r: &MessageRecord, owner: Option<&CgroupOwner>) -> String {
    let mut process = label(&r.process);
    if let Some(owner) = owner.filter(|o| !o.is_empty()) {
        process.push(' ');
        process.push_str(&owner::text(owner));
    }
    let (arrow, peer, port) = match r.direction {
        Direction::Sent => (">", r.dst, r.dport),
        Direction::Received => ("<", r.src, r.sport),
    };
    let peer = match peer {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    };
    let transport = match r.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    };
    let mut text = format!(
        "{}  {process:<20} {arrow} {transport} {peer:<21}",
        out.clock.precise(r.time_ns)
    );
    if let Some(bad) = &r.malformed {
        text.push_str(&format!(
            "  malformed: {} ({} bytes)",
            safe(&bad.error),
            r.message_len
        ));
    } else if let Some(dns) = &r.dns {
        let question = dns.questions.first();
        let qtype = question.map_or("", |q| q.qtype.as_ref());
        text.push_str(&format!(
            "  {} {} {}",
            if dns.response { "response" } else { "query" },
            safe(qtype),
            safe(question.map_or("", |q| q.name.as_str())),
        ));
        if dns.opcode != "QUERY" {
            text.push_str(&format!(" opcode {}", safe(&dns.opcode)));
        }
        if dns.response {
            text.push_str(&format!("  {}", safe(&dns.rcode)));
            let answers: Vec<String> = dns
                .answers
                .iter()
                .take(SHOWN_ANSWERS)
                .map(|a| {
                    if a.rtype == qtype {
                        safe(&a.data).into_owned()
                    } else {
                        format!("{} {}", safe(&a.rtype), safe(&a.data))
                    }
                })
                .collect();
            if !answers.is_empty() {
                text.push_str("  ");
                text.push_str(&answers.join(", "));
                if dns.answers.len() > SHOWN_ANSWERS {
                    text.push_str(&format!(" (+{})", dns.answers.len() - SHOWN_ANSWERS));
                }
            }
            if let Some(pair) = r.pair {
                text.push_str(&format!(
                    "  {} ms",
                    crate::output::millis(pair.latency_ns as f64)
                ));
            }
        }
    }
    if let Some(via) = &r.via {
        text.push_str(&format!("  via {}", label(via)));
    }
    if !r.on_behalf_of.is_empty() {
        let mut clients: Vec<String> = r
            .on_behalf_of
            .iter()
            .take(SHOWN_CLIENTS)
            .map(|p| label(p))
            .collect();
        if r.on_behalf_of.len() > SHOWN_CLIENTS {
            clients.push(format!("+{}", r.on_behalf_of.len() - SHOWN_CLIENTS));
        }
        text.push_str(&format!("  for {}", clients.join(", ")));
    }
    if r.captured_len < r.message_len {
        text.push_str(&format!(
            "  [captured {} of {} bytes]",
            r.captured_len, r.message_len
        ));
    }
    text
}
