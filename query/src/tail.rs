//! `dnsq tail [-f]`: the newest messages and libc resolver calls, then (with
//! `-f`) new ones as they are stored. Following polls the newest rowids every
//! 250 ms, each poll its own short read transaction, so the writer's WAL can
//! always be checkpointed.

use std::{
    io::Write,
    net::IpAddr,
    ops::ControlFlow,
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;
use dnsq_recorder::{
    record::{Direction, LookupRecord, MessageRecord, ProcessInfo, Rfc3339, Transport},
    service::CgroupOwner,
    store::read::{CallQuery, IdRange, MessageQuery, ProcessFilter, ReadError, Reader, StoredCall},
};

use crate::{
    escape::safe,
    facts::NothingFound,
    output::{ANSWER_CHARS, Output, clip},
    owner::{self, Only, Owners},
    timearg::Window,
};

const POLL: Duration = Duration::from_millis(250);
/// How long a followed call is held back for its return to be stored: most
/// return within milliseconds; one that blocks longer (a DNS server that does
/// not answer) is shown without it. Timed by this process's clock from when it
/// first read the call, not from the call's time, which another host's clock
/// may have stamped.
const RETURN_WAIT: Duration = Duration::from_secs(2);
const SHOWN_ANSWERS: usize = 6;
/// Clients named after `for`.
const SHOWN_CLIENTS: usize = 3;

/// How long a followed call shown without its return is watched for it (a
/// resolver's timeouts and retries: 5 s each by default), and how many are.
const LATE_RETURN_WATCH: Duration = Duration::from_secs(60);
const LATE_RETURNS_WATCHED: usize = 256;

/// One line of output: a DNS message, a libc call with what it returned, or
/// the return of a call shown before without it (`"kind":"lookup_answer"` at
/// the time of the return, as `dnsq-recorder --print` writes it).
enum Line {
    Message(MessageRecord),
    Call(LookupRecord),
    Return(LookupRecord),
}

impl Line {
    fn time_ns(&self) -> i64 {
        match self {
            Line::Message(m) => m.time_ns,
            Line::Call(c) | Line::Return(c) => c.time_ns,
        }
    }
}

/// Followed calls shown without their return, watched for it: the return of
/// a call that blocked longer than [`RETURN_WAIT`] fills in its row later, and
/// no new row says so.
#[derive(Default)]
struct LateReturns {
    /// Row id and since when, oldest first.
    watched: Vec<(i64, Instant)>,
}

impl LateReturns {
    fn watch(&mut self, id: i64) {
        if self.watched.len() >= LATE_RETURNS_WATCHED {
            self.watched.remove(0);
        }
        self.watched.push((id, Instant::now()));
    }

    /// The returns stored since the last poll, into `lines`.
    fn poll(&mut self, reader: &Reader, lines: &mut Vec<Line>) -> Result<(), ReadError> {
        let now = Instant::now();
        self.watched
            .retain(|(_, since)| now.duration_since(*since) < LATE_RETURN_WATCH);
        let mut returned = Vec::new();
        for &(id, _) in &self.watched {
            let query = CallQuery {
                after_id: id - 1,
                last_id: Some(id),
                ..CallQuery::default()
            };
            reader.libc_calls(&query, |call| -> Result<_, ReadError> {
                let mut record = call.record;
                if let Some(answer) = &record.answer {
                    record.kind = "lookup_answer".into();
                    record.time_ns = answer.call_time_ns + answer.latency_ns;
                    record.time = Rfc3339(record.time_ns);
                    returned.push(id);
                    lines.push(Line::Return(record));
                }
                Ok(ControlFlow::Break(()))
            })?;
        }
        self.watched.retain(|(id, _)| !returned.contains(id));
        Ok(())
    }
}

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
    let mut call_cursor = reader.max_call_id()?;
    // The followed call held back for its return, and since when.
    let mut held: Option<(i64, Instant)> = None;
    let mut late = LateReturns::default();
    let newest = newest(
        reader,
        window,
        lines,
        matching.as_ref().map(|(processes, _)| processes),
        (cursor, call_cursor),
    )?;
    if newest.is_empty() && !follow {
        let only = options
            .only
            .map(|o| format!(" of processes {}", o.filter.describe()))
            .unwrap_or_default();
        return Err(NothingFound(format!(
            "no messages or libc calls{only} {}",
            window.describe(&out.clock)
        ))
        .into());
    }
    for line in newest.iter().rev() {
        print(out, owners, line)?;
    }
    if !follow {
        return Ok(());
    }
    loop {
        out.flush()?;
        thread::sleep(POLL);
        let max = reader.max_id()?.unwrap_or(0);
        if max < cursor {
            // Fewer rows than before: retention, or another database.
            cursor = max;
        }
        let max_call = reader.max_call_id()?;
        if max_call < call_cursor {
            call_cursor = max_call;
        }
        let mut new = Vec::new();
        late.poll(reader, &mut new)?;
        if max == cursor && max_call == call_cursor && new.is_empty() {
            continue;
        }
        if let (Some(only), Some((processes, last_id))) = (options.only, matching.as_mut()) {
            *last_id = only.filter.extend(reader, owners, *last_id, processes)?;
        }
        let processes = matching.as_ref().map(|(processes, _)| processes);
        if max > cursor {
            let query = MessageQuery {
                ids: IdRange {
                    first: cursor + 1,
                    last: max,
                },
                since_ns: window.since_ns,
                until_ns: None,
                newest_first: false,
                processes,
            };
            reader.messages(&query, |record| -> Result<_, ReadError> {
                new.push(Line::Message(record));
                Ok(ControlFlow::Continue(()))
            })?;
            cursor = max;
        }
        if max_call > call_cursor {
            let calls = IdRange {
                first: call_cursor + 1,
                last: max_call,
            };
            call_cursor = new_calls(
                reader,
                window.since_ns,
                calls,
                processes,
                &mut held,
                &mut late,
                &mut new,
            )?;
        }
        new.sort_by_key(Line::time_ns);
        for line in &new {
            print(out, owners, line)?;
        }
    }
}

/// The newest `lines` messages and calls of the window, up to the rowids
/// `cursors` (messages, calls), newest first.
fn newest(
    reader: &Reader,
    window: &Window,
    lines: usize,
    processes: Option<&ProcessFilter>,
    cursors: (i64, i64),
) -> Result<Vec<Line>, ReadError> {
    let mut newest = Vec::new();
    if lines == 0 {
        return Ok(newest);
    }
    if let Some(ids) = reader.id_range(window.since_ns, window.until_ns)?
        && ids.first <= cursors.0
    {
        let query = MessageQuery {
            ids: IdRange {
                first: ids.first,
                last: ids.last.min(cursors.0),
            },
            since_ns: window.since_ns,
            until_ns: window.until_ns,
            newest_first: true,
            processes,
        };
        reader.messages(&query, |record| -> Result<_, ReadError> {
            newest.push(Line::Message(record));
            Ok(if newest.len() >= lines {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
    }
    let query = CallQuery {
        since_ns: window.since_ns,
        until_ns: window.until_ns,
        newest_first: true,
        processes,
        ..CallQuery::default()
    };
    let mut calls = 0;
    reader.libc_calls(&query, |call| -> Result<_, ReadError> {
        if call.id <= cursors.1 {
            newest.push(Line::Call(call.record));
            calls += 1;
        }
        Ok(if calls >= lines {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    // The newest `lines` of both.
    newest.sort_by_key(|line| std::cmp::Reverse(line.time_ns()));
    newest.truncate(lines);
    Ok(newest)
}

/// The calls of `ids`, up to the first one still waiting for its return (see
/// [`RETURN_WAIT`]; `held`: which one, since when), into `lines`; those shown
/// without it go to `late`. Returns the new cursor: the waiting call and those
/// after it are read again at the next poll.
fn new_calls(
    reader: &Reader,
    since_ns: Option<i64>,
    ids: IdRange,
    processes: Option<&ProcessFilter>,
    held: &mut Option<(i64, Instant)>,
    late: &mut LateReturns,
    lines: &mut Vec<Line>,
) -> Result<i64, ReadError> {
    let now = Instant::now();
    let query = CallQuery {
        after_id: ids.first - 1,
        last_id: Some(ids.last),
        since_ns,
        processes,
        ..CallQuery::default()
    };
    let mut cursor = ids.first - 1;
    let mut waiting = false;
    reader.libc_calls(&query, |call: StoredCall| -> Result<_, ReadError> {
        if call.record.answer.is_none() {
            let since = match *held {
                Some((id, since)) if id == call.id => since,
                _ => held.insert((call.id, now)).1,
            };
            if now.duration_since(since) < RETURN_WAIT {
                waiting = true;
                return Ok(ControlFlow::Break(()));
            }
        }
        cursor = call.id;
        if call.record.answer.is_none() {
            late.watch(call.id);
        }
        lines.push(Line::Call(call.record));
        Ok(ControlFlow::Continue(()))
    })?;
    // With none waiting, the rows the query passed over (out of the window,
    // other processes) are done with too.
    Ok(if waiting { cursor } else { ids.last })
}

fn print(out: &mut Output, owners: &mut Owners, line: &Line) -> Result<()> {
    let process = match line {
        Line::Message(m) if out.json => return Ok(out.json_line(m)?),
        Line::Call(c) | Line::Return(c) if out.json => return Ok(out.json_line(c)?),
        Line::Message(m) => &m.process,
        Line::Call(c) | Line::Return(c) => &c.process,
    };
    let owner = process.cgroup.as_deref().map(|c| owners.of_path(c));
    let text = match line {
        Line::Message(m) => message_line(out, m, owner.as_deref()),
        Line::Call(c) => call_line(out, c, "lookup", owner.as_deref()),
        Line::Return(c) => call_line(out, c, "return", owner.as_deref()),
    };
    Ok(writeln!(out.writer(), "{text}")?)
}

/// `curl[4242] session-1.scope`, the process column.
fn process_column(p: &ProcessInfo, owner: Option<&CgroupOwner>) -> String {
    let mut process = label(p);
    if let Some(owner) = owner.filter(|o| !o.is_empty()) {
        process.push(' ');
        process.push_str(&owner::text(owner));
    }
    process
}

/// `2026-11-24 10:00:00.123  curl[4242]           = getaddrinfo            lookup www.example.com.  198.18.0.1, fd00::1  0.21 ms`;
/// `what` is `lookup`, or `return` for a return shown apart from its call.
fn call_line(out: &Output, c: &LookupRecord, what: &str, owner: Option<&CgroupOwner>) -> String {
    let process = process_column(&c.process, owner);
    let mut text = format!(
        "{}  {process:<20} = {:<25}  {what} {}",
        out.clock.precise(c.time_ns),
        safe(&c.function),
        safe(&c.name),
    );
    match &c.answer {
        None => text.push_str("  (no return seen)"),
        Some(answer) => {
            if let Some(error) = &answer.error {
                text.push_str(&format!("  {}", safe(error)));
            }
            if !answer.addresses.is_empty() {
                let shown: Vec<String> = answer
                    .addresses
                    .iter()
                    .take(SHOWN_ANSWERS)
                    .map(IpAddr::to_string)
                    .collect();
                text.push_str("  ");
                text.push_str(&shown.join(", "));
                let more = answer.addresses.len().saturating_sub(SHOWN_ANSWERS);
                if more > 0 || answer.truncated {
                    text.push_str(&format!(
                        " (+{})",
                        if more > 0 {
                            more.to_string()
                        } else {
                            "more".into()
                        }
                    ));
                }
            }
            text.push_str(&format!(
                "  {} ms",
                crate::output::millis(answer.latency_ns as f64)
            ));
        }
    }
    text
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
fn message_line(out: &Output, r: &MessageRecord, owner: Option<&CgroupOwner>) -> String {
    let process = process_column(&r.process, owner);
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
            // What did not fit (UDP): the client is expected to ask again over TCP.
            if dns.flags.tc {
                text.push_str(" truncated");
            }
            let answers: Vec<String> = dns
                .answers
                .iter()
                .take(SHOWN_ANSWERS)
                .map(|a| {
                    let data = safe(&clip(&a.data, ANSWER_CHARS)).into_owned();
                    if a.rtype == qtype {
                        data
                    } else {
                        format!("{} {data}", safe(&a.rtype))
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
