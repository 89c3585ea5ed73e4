//! `dnsq tail [-f]`: the newest messages, then (with `-f`) new ones as they are
//! stored. Following polls the newest rowid every 250 ms, each poll its own short
//! read transaction, so the writer's WAL can always be checkpointed.

use std::{io::Write, net::IpAddr, ops::ControlFlow, thread, time::Duration};

use anyhow::Result;
use dnsq_recorder::{
    record::{Direction, MessageRecord, Transport},
    store::read::{IdRange, MessageQuery, ReadError, Reader},
};

use crate::{escape::safe, facts::NothingFound, output::Output, timearg::Window};

const POLL: Duration = Duration::from_millis(250);
const SHOWN_ANSWERS: usize = 6;

pub fn run(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    follow: bool,
    lines: usize,
) -> Result<()> {
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
        return Err(NothingFound(format!("no messages {}", window.describe(&out.clock))).into());
    }
    for record in newest.iter().rev() {
        print(out, record)?;
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
        let query = MessageQuery {
            ids: IdRange {
                first: cursor + 1,
                last: max,
            },
            since_ns: window.since_ns,
            until_ns: None,
            newest_first: false,
        };
        let mut result = Ok(());
        reader.messages(&query, |record| -> Result<_, ReadError> {
            result = print(out, &record);
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

fn print(out: &mut Output, record: &MessageRecord) -> std::io::Result<()> {
    if out.json {
        return out.json_line(record);
    }
    let line = line(out, record);
    writeln!(out.writer(), "{line}")
}

/// `2026-11-24 10:00:00.123  curl[4242]  > udp 198.18.0.1:53  query A www.example.com.`
fn line(out: &Output, r: &MessageRecord) -> String {
    let process = match (&r.process.comm, r.process.pid) {
        (Some(comm), Some(pid)) => format!("{}[{pid}]", safe(comm)),
        (None, Some(pid)) => format!("[{pid}]"),
        _ => "?".into(),
    };
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
        let qtype = question.map_or("", |q| q.qtype.as_str());
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
    if r.captured_len < r.message_len {
        text.push_str(&format!(
            "  [captured {} of {} bytes]",
            r.captured_len, r.message_len
        ));
    }
    text
}
