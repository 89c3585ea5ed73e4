//! `dnsq export --format csv|jsonl`: every message in the window, streamed from
//! `messages` in rowid order (constant memory), as RFC 4180 CSV with stable
//! columns or as the recorder's JSON lines.

use std::{
    fmt::Write as _,
    fs::File,
    io::{self, BufWriter, Write},
    net::IpAddr,
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use dnsq_recorder::{
    record::{Attribution, Direction, MessageRecord, Transport},
    store::read::{MessageQuery, ReadError, Reader},
};

use crate::{
    cli::ExportFormat,
    escape,
    facts::NothingFound,
    output::Output,
    owner::Only,
    timearg::{Clock, Window},
};

/// The CSV columns, in order. Documented in `dnsq export --help`; never reorder
/// or rename them, only append.
pub const COLUMNS: [&str; 35] = [
    "time",
    "time_ns",
    "direction",
    "transport",
    "src",
    "sport",
    "dst",
    "dport",
    "pid",
    "tid",
    "uid",
    "gid",
    "comm",
    "exe",
    "cgroup",
    "attribution",
    "id",
    "qr",
    "opcode",
    "rcode",
    "qname",
    "qtype",
    "qclass",
    "answers",
    "ttl_min",
    "latency_ms",
    "message_len",
    "captured_len",
    "malformed_error",
    "unit",
    "container",
    "via_pid",
    "via_comm",
    "for_pid",
    "for_comm",
];

pub struct Options<'a> {
    pub format: ExportFormat,
    pub raw_csv: bool,
    pub output: Option<&'a Path>,
    pub only: Option<&'a Only>,
}

pub fn run(
    reader: &Reader,
    out: &mut Output,
    window: &Window,
    options: &Options<'_>,
) -> Result<()> {
    let clock = out.clock.clone();
    let rows = match options.output {
        None => {
            // Nothing raw reaches a terminal; files and pipes get the data as is.
            let escape_controls = out.terminal();
            write(
                reader,
                out.writer(),
                window,
                options,
                &clock,
                escape_controls,
            )?
        }
        Some(path) => to_file(path, |file| {
            write(reader, file, window, options, &clock, false)
        })?,
    };
    if rows == 0 {
        let only = options
            .only
            .map(|o| format!(" of processes {}", o.filter.describe()))
            .unwrap_or_default();
        return Err(NothingFound(format!("no messages{only} {}", window.describe(&clock))).into());
    }
    Ok(())
}

/// Writes through a temporary file beside `path`, renamed over it once complete,
/// so a reader (or the next cron run) never sees half a file.
fn to_file(path: &Path, body: impl FnOnce(&mut BufWriter<File>) -> Result<u64>) -> Result<u64> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let mut temporary = PathBuf::from(path);
    temporary.set_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&temporary)
            .with_context(|| format!("cannot create {}", temporary.display()))?;
        let mut writer = BufWriter::with_capacity(256 * 1024, file);
        let rows = body(&mut writer)?;
        let file = writer
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path).with_context(|| {
            format!(
                "cannot rename {} to {}",
                temporary.display(),
                path.display()
            )
        })?;
        Ok(rows)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn write<W: Write>(
    reader: &Reader,
    writer: &mut W,
    window: &Window,
    options: &Options<'_>,
    clock: &Clock,
    escape_controls: bool,
) -> Result<u64> {
    let mut rows = 0u64;
    let Some(ids) = reader.id_range(window.since_ns, window.until_ns)? else {
        if options.format == ExportFormat::Csv {
            csv_writer(writer).write_record(COLUMNS)?;
        }
        return Ok(0);
    };
    let query = MessageQuery {
        ids,
        since_ns: window.since_ns,
        until_ns: window.until_ns,
        newest_first: false,
        processes: options.only.map(|o| &*o.matching.processes),
    };
    match options.format {
        ExportFormat::Jsonl => {
            reader.messages(&query, |record| -> Result<_, Error> {
                escape::json_line(writer, &record)?;
                rows += 1;
                Ok(ControlFlow::Continue(()))
            })?;
            writer.flush()?;
        }
        ExportFormat::Csv => {
            let mut csv = csv_writer(writer);
            csv.write_record(COLUMNS)?;
            let mut cells: [String; COLUMNS.len()] = std::array::from_fn(|_| String::new());
            reader.messages(&query, |record| -> Result<_, Error> {
                fill(&mut cells, &record, clock);
                for cell in &mut cells {
                    if !options.raw_csv && cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                        cell.insert(0, '\'');
                    }
                    if escape_controls && let std::borrow::Cow::Owned(safe) = escape::safe(cell) {
                        *cell = safe;
                    }
                }
                csv.write_record(&cells)?;
                rows += 1;
                Ok(ControlFlow::Continue(()))
            })?;
            csv.flush()?;
        }
    }
    Ok(rows)
}

fn csv_writer<W: Write>(writer: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .buffer_capacity(64 * 1024)
        .from_writer(writer)
}

/// What the streaming callbacks can fail with.
#[derive(Debug)]
enum Error {
    Read(ReadError),
    Io(io::Error),
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        Error::Read(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<csv::Error> for Error {
    fn from(e: csv::Error) -> Self {
        match e.into_kind() {
            csv::ErrorKind::Io(e) => Error::Io(e),
            other => Error::Io(io::Error::other(format!("{other:?}"))),
        }
    }
}

impl From<Error> for anyhow::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Read(e) => e.into(),
            Error::Io(e) => e.into(),
        }
    }
}

/// One CSV row, in [`COLUMNS`] order, into reused strings.
fn fill(cells: &mut [String; COLUMNS.len()], r: &MessageRecord, clock: &Clock) {
    for cell in cells.iter_mut() {
        cell.clear();
    }
    let [
        time,
        time_ns,
        direction,
        transport,
        src,
        sport,
        dst,
        dport,
        pid,
        tid,
        uid,
        gid,
        comm,
        exe,
        cgroup,
        attribution,
        id,
        qr,
        opcode,
        rcode,
        qname,
        qtype,
        qclass,
        answers,
        ttl_min,
        latency_ms,
        message_len,
        captured_len,
        malformed_error,
        unit,
        container,
        via_pid,
        via_comm,
        for_pid,
        for_comm,
    ] = cells;
    time.push_str(&clock.rfc3339(r.time_ns));
    let _ = write!(time_ns, "{}", r.time_ns);
    direction.push_str(match r.direction {
        Direction::Sent => "sent",
        Direction::Received => "received",
    });
    transport.push_str(match r.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    });
    ip(src, r.src);
    let _ = write!(sport, "{}", r.sport);
    ip(dst, r.dst);
    let _ = write!(dport, "{}", r.dport);
    let p = &r.process;
    let number = |cell: &mut String, value: Option<u32>| {
        if let Some(v) = value {
            let _ = write!(cell, "{v}");
        }
    };
    number(pid, p.pid);
    number(tid, p.tid);
    number(uid, p.uid);
    number(gid, p.gid);
    comm.push_str(p.comm.as_deref().unwrap_or(""));
    exe.push_str(p.exe.as_deref().unwrap_or(""));
    cgroup.push_str(p.cgroup.as_deref().unwrap_or(""));
    attribution.push_str(match p.attribution {
        Some(Attribution::Socket) => "socket",
        Some(Attribution::SocketLate) => "socket-late",
        Some(Attribution::Procfs) => "procfs",
        Some(Attribution::Unknown) | None => "unknown",
    });
    if let Some(dns) = &r.dns {
        let _ = write!(id, "{}", dns.id);
        qr.push_str(if dns.response { "response" } else { "query" });
        opcode.push_str(&dns.opcode);
        rcode.push_str(&dns.rcode);
        if let Some(q) = dns.questions.first() {
            qname.push_str(&q.name);
            qtype.push_str(&q.qtype);
            qclass.push_str(&q.class);
        }
        for (index, a) in dns.answers.iter().enumerate() {
            if index > 0 {
                answers.push(';');
            }
            let _ = write!(answers, "{} {}", a.rtype, a.data);
        }
        if let Some(min) = dns.answers.iter().map(|a| a.ttl).min() {
            let _ = write!(ttl_min, "{min}");
        }
    }
    if let Some(pair) = r.pair {
        // Exact decimal: nanoseconds are whole millionths of a millisecond.
        let ns = pair.latency_ns;
        let _ = write!(latency_ms, "{}.{:06}", ns / 1_000_000, ns % 1_000_000);
    }
    let _ = write!(message_len, "{}", r.message_len);
    let _ = write!(captured_len, "{}", r.captured_len);
    if let Some(bad) = &r.malformed {
        malformed_error.push_str(&bad.error);
    }
    unit.push_str(p.unit.as_deref().unwrap_or(""));
    container.push_str(p.container.as_deref().unwrap_or(""));
    if let Some(via) = &r.via {
        number(via_pid, via.pid);
        via_comm.push_str(via.comm.as_deref().unwrap_or(""));
    }
    // The store keeps one client; `;` between several.
    for (index, client) in r.on_behalf_of.iter().enumerate() {
        if index > 0 {
            for_pid.push(';');
            for_comm.push(';');
        }
        number(for_pid, client.pid);
        for_comm.push_str(client.comm.as_deref().unwrap_or(""));
    }
}

fn ip(cell: &mut String, ip: IpAddr) {
    let _ = write!(cell, "{ip}");
}
