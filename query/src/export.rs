//! `dnsq export --format csv|jsonl`: every message in the window, streamed from
//! `messages` in rowid order (constant memory), as RFC 4180 CSV with stable
//! columns or as the recorder's JSON lines. With `--calls`, the libc resolver
//! calls instead, from `libc_lookups`.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    net::IpAddr,
    ops::ControlFlow,
    path::Path,
};

use anyhow::{Context, Result, bail};
use dnsq_recorder::{
    record::{Attribution, Direction, LookupRecord, Transport},
    store::read::{
        CallQuery, MessageQuery, MessageRow, ReadError, Reader, StoredProcess, class_name,
        opcode_name, rcode_name, type_name,
    },
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

/// The CSV columns of `dnsq export --calls`, in order; as with [`COLUMNS`],
/// only appended to.
pub const CALL_COLUMNS: [&str; 17] = [
    "time",
    "time_ns",
    "function",
    "name",
    "pid",
    "tid",
    "uid",
    "gid",
    "comm",
    "exe",
    "cgroup",
    "unit",
    "container",
    "status",
    "error",
    "addresses",
    "latency_ms",
];

pub struct Options<'a> {
    pub format: ExportFormat,
    /// The libc resolver calls instead of the messages.
    pub calls: bool,
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
    // `-o -` is stdout, as for curl and tar.
    let rows = match options.output.filter(|path| *path != Path::new("-")) {
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
        let what = if options.calls {
            "libc calls"
        } else {
            "messages"
        };
        return Err(NothingFound(format!("no {what}{only} {}", window.describe(&clock))).into());
    }
    Ok(())
}

/// Writes the export to `path`. A regular file (or a new one) is written through
/// a temporary file beside it, renamed over it once complete, so a reader (or the
/// next cron run) never sees half a file; through a symbolic link, the file it
/// points to is replaced and the link kept. Anything else (`/dev/null`, a FIFO, a
/// terminal) is written in place: renaming over it would put a regular file where
/// the device was (`--output /dev/null` as root did).
fn to_file(path: &Path, body: impl FnOnce(&mut BufWriter<File>) -> Result<u64>) -> Result<u64> {
    let target = match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => bail!("{}: is a directory", path.display()),
        Ok(meta) if !meta.is_file() => {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut writer = BufWriter::with_capacity(256 * 1024, file);
            let rows = body(&mut writer)?;
            writer
                .flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            return Ok(rows);
        }
        Ok(_) => std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let name = target
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let mut temporary = target.clone();
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
        std::fs::rename(&temporary, &target).with_context(|| {
            format!(
                "cannot rename {} to {}",
                temporary.display(),
                target.display()
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
    if options.calls {
        return write_calls(reader, writer, window, options, clock, escape_controls);
    }
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
            let mut csv = CsvRows::new(writer, !options.raw_csv, escape_controls, clock);
            csv.header(&COLUMNS);
            reader.message_rows(&query, |row| -> Result<_, Error> {
                csv.row(row)?;
                rows += 1;
                Ok(ControlFlow::Continue(()))
            })?;
            csv.finish()?;
        }
    }
    Ok(rows)
}

/// `--calls`: the window's libc calls, oldest first.
fn write_calls<W: Write>(
    reader: &Reader,
    writer: &mut W,
    window: &Window,
    options: &Options<'_>,
    clock: &Clock,
    escape_controls: bool,
) -> Result<u64> {
    let mut rows = 0u64;
    let query = CallQuery {
        since_ns: window.since_ns,
        until_ns: window.until_ns,
        processes: options.only.map(|o| &*o.matching.processes),
        ..CallQuery::default()
    };
    match options.format {
        ExportFormat::Jsonl => {
            reader.libc_calls(&query, |call| -> Result<_, Error> {
                escape::json_line(writer, &call.record)?;
                rows += 1;
                Ok(ControlFlow::Continue(()))
            })?;
            writer.flush()?;
        }
        ExportFormat::Csv => {
            let mut csv = CsvRows::new(writer, !options.raw_csv, escape_controls, clock);
            csv.header(&CALL_COLUMNS);
            reader.libc_calls(&query, |call| -> Result<_, Error> {
                csv.call_row(&call.record)?;
                rows += 1;
                Ok(ControlFlow::Continue(()))
            })?;
            csv.finish()?;
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

/// Writes CSV rows straight from the stored rows: each cell is appended to one
/// line buffer (integers without `fmt`, names and processes borrowed from the
/// reader's caches), then guarded and quoted in place as the `csv` crate would
/// (RFC 4180: quoted when it holds `,` `"` CR or LF, quotes doubled; CRLF line
/// ends).
struct CsvRows<'w, 'c, W: Write> {
    writer: &'w mut W,
    /// Whole lines waiting to be written.
    buffer: Vec<u8>,
    /// Prefix cells that a spreadsheet would read as a formula with `'`.
    guard_formulas: bool,
    escape_controls: bool,
    clock: &'c Clock,
    /// The second last formatted: its `YYYY-MM-DDTHH:MM:SS` and its offset.
    second: Option<(i64, String, String)>,
    /// Where the current cell starts in `buffer`.
    cell: usize,
}

const FLUSH_AT: usize = 64 * 1024;

impl<'w, 'c, W: Write> CsvRows<'w, 'c, W> {
    fn new(
        writer: &'w mut W,
        guard_formulas: bool,
        escape_controls: bool,
        clock: &'c Clock,
    ) -> Self {
        Self {
            writer,
            buffer: Vec::with_capacity(FLUSH_AT + 4096),
            guard_formulas,
            escape_controls,
            clock,
            second: None,
            cell: 0,
        }
    }

    fn header(&mut self, columns: &[&str]) {
        self.buffer.extend_from_slice(columns.join(",").as_bytes());
        self.buffer.extend_from_slice(b"\r\n");
    }

    fn finish(mut self) -> io::Result<()> {
        self.writer.write_all(&self.buffer)?;
        self.buffer.clear();
        self.writer.flush()
    }

    /// Starts a cell (after the first of a line: a comma).
    fn start(&mut self, first: bool) {
        if !first {
            self.buffer.push(b',');
        }
        self.cell = self.buffer.len();
    }

    /// Guards, escapes and quotes the current cell in place.
    fn end(&mut self) {
        let start = self.cell;
        let Some(&first) = self.buffer.get(start) else {
            return;
        };
        if self.guard_formulas && matches!(first, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') {
            self.buffer.insert(start, b'\'');
        }
        if self.escape_controls {
            let text = String::from_utf8_lossy(&self.buffer[start..]).into_owned();
            if let std::borrow::Cow::Owned(safe) = escape::safe(&text) {
                self.buffer.truncate(start);
                self.buffer.extend_from_slice(safe.as_bytes());
            }
        }
        if needs_quotes(&self.buffer[start..]) {
            let cell = self.buffer.split_off(start);
            self.buffer.push(b'"');
            for &b in &cell {
                if b == b'"' {
                    self.buffer.push(b'"');
                }
                self.buffer.push(b);
            }
            self.buffer.push(b'"');
        }
    }

    /// A cell whose text needs neither a guard nor quotes (a constant word).
    fn word(&mut self, word: &str) {
        self.buffer.push(b',');
        self.buffer.extend_from_slice(word.as_bytes());
    }

    fn text(&mut self, first: bool, text: &str) {
        self.start(first);
        self.buffer.extend_from_slice(text.as_bytes());
        self.end();
    }

    /// A cell of digits only needs no guard or quotes.
    fn number(&mut self, value: Option<u64>) {
        self.buffer.push(b',');
        if let Some(value) = value {
            push_u64(&mut self.buffer, value);
        }
    }

    fn time(&mut self, ns: i64) {
        let (second, fraction) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
        if self
            .second
            .as_ref()
            .is_none_or(|(cached, ..)| *cached != second)
        {
            // `…T12:00:00.000000000Z` / `+01:00`: the whole second, split at its
            // fraction.
            let whole = self.clock.rfc3339(second.saturating_mul(1_000_000_000));
            match whole.split_once('.') {
                Some((time, rest))
                    if rest.len() >= 9 && second.checked_mul(1_000_000_000).is_some() =>
                {
                    self.second = Some((second, time.to_owned(), rest[9..].to_owned()));
                }
                _ => {
                    self.second = None;
                    let text = self.clock.rfc3339(ns);
                    return self.text(true, &text);
                }
            }
        }
        let Some((_, time, offset)) = &self.second else {
            return;
        };
        self.buffer.extend_from_slice(time.as_bytes());
        self.buffer.push(b'.');
        push_padded(&mut self.buffer, fraction as u64, 9);
        self.buffer.extend_from_slice(offset.as_bytes());
        // Digits, `-`, `T`, `:`, `.`, then `Z` or an offset: starts with a
        // digit and holds nothing to quote, so it needs no `end`.
    }

    fn ip(&mut self, ip: IpAddr) {
        self.start(false);
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.buffer.push(b'.');
                    }
                    push_u64(&mut self.buffer, u64::from(octet));
                }
            }
            IpAddr::V6(v6) => {
                let _ = write!(self.buffer, "{v6}");
            }
        }
        // Digits, hex letters, `.` and `:`: nothing to guard or quote.
    }

    fn process_cells(&mut self, p: Option<&StoredProcess>) {
        self.number(p.map(|p| u64::from(p.pid)));
        self.number(p.and_then(|p| p.tid).map(u64::from));
        self.number(p.and_then(|p| p.uid).map(u64::from));
        self.number(p.and_then(|p| p.gid).map(u64::from));
        self.text(false, p.map_or("", |p| p.comm.as_str()));
        self.text(false, p.and_then(|p| p.exe.as_deref()).unwrap_or(""));
        self.text(false, p.and_then(|p| p.cgroup.as_deref()).unwrap_or(""));
    }

    /// One message, in [`COLUMNS`] order.
    fn row(&mut self, r: &MessageRow<'_>) -> io::Result<()> {
        self.time(r.time_ns());
        match u64::try_from(r.time_ns()) {
            Ok(ns) => self.number(Some(ns)),
            // Never recorded, but possible: as `fmt` writes it, guarded.
            Err(_) => self.text(false, &r.time_ns().to_string()),
        }
        self.word(match r.direction() {
            Direction::Sent => "sent",
            Direction::Received => "received",
        });
        self.word(match r.transport() {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        });
        let ((src, sport), (dst, dport)) = r.src_dst();
        self.ip(src);
        self.number(Some(u64::from(sport)));
        self.ip(dst);
        self.number(Some(u64::from(dport)));
        let p = r.process();
        self.process_cells(p);
        self.word(match r.attribution() {
            Attribution::Socket => "socket",
            Attribution::SocketLate => "socket-late",
            Attribution::Procfs => "procfs",
            Attribution::Unknown => "unknown",
        });
        if r.is_dns() {
            self.number(Some(u64::from(r.dns_id())));
            self.word(if r.is_response() { "response" } else { "query" });
            // Code names are mnemonics or `TYPE<n>`-style numbers: words.
            self.word(&opcode_name(r.opcode()));
            self.word(&rcode_name(r.rcode()));
            match r.questions().next() {
                Some(q) => {
                    self.text(false, q.name);
                    self.word(&type_name(q.qtype));
                    self.word(&class_name(q.qclass));
                }
                None => self.buffer.extend_from_slice(b",,,"),
            }
            self.start(false);
            let mut ttl_min: Option<u32> = None;
            for (index, a) in r.answers().enumerate() {
                if index > 0 {
                    self.buffer.push(b';');
                }
                self.buffer.extend_from_slice(a.rtype.as_bytes());
                self.buffer.push(b' ');
                self.buffer.extend_from_slice(a.data.as_bytes());
                ttl_min = Some(ttl_min.map_or(a.ttl, |min| min.min(a.ttl)));
            }
            self.end();
            self.number(ttl_min.map(u64::from));
        } else {
            self.buffer.extend_from_slice(b",,,,,,,,,");
        }
        self.millis(r.latency_ns());
        self.number(Some(u64::from(r.message_len())));
        self.number(Some(u64::from(r.captured_len())));
        self.text(false, r.malformed().map_or("", |(error, _)| error));
        self.text(false, p.and_then(|p| p.owner.unit.as_deref()).unwrap_or(""));
        self.text(false, p.and_then(|p| p.container.as_deref()).unwrap_or(""));
        let via = r.via();
        self.number(via.map(|p| u64::from(p.pid)));
        self.text(false, via.map_or("", |p| p.comm.as_str()));
        // The store keeps one client.
        let client = r.on_behalf_of();
        self.number(client.map(|p| u64::from(p.pid)));
        self.text(false, client.map_or("", |p| p.comm.as_str()));
        self.end_line()
    }

    /// One libc call, in [`CALL_COLUMNS`] order.
    fn call_row(&mut self, c: &LookupRecord) -> io::Result<()> {
        self.time(c.time_ns);
        self.number(u64::try_from(c.time_ns).ok());
        self.text(false, &c.function);
        self.text(false, &c.name);
        let p = &c.process;
        self.number(p.pid.map(u64::from));
        self.number(p.tid.map(u64::from));
        self.number(p.uid.map(u64::from));
        self.number(p.gid.map(u64::from));
        self.text(false, p.comm.as_deref().unwrap_or(""));
        self.text(false, p.exe.as_deref().unwrap_or(""));
        self.text(false, p.cgroup.as_deref().unwrap_or(""));
        self.text(false, p.unit.as_deref().unwrap_or(""));
        self.text(false, p.container.as_deref().unwrap_or(""));
        let answer = c.answer.as_ref();
        // Negative for EAI_* codes: a number all the same, which the formula
        // guard must leave as it is.
        self.buffer.push(b',');
        if let Some(status) = answer.map(|a| a.status) {
            if status < 0 {
                self.buffer.push(b'-');
            }
            push_u64(&mut self.buffer, u64::from(status.unsigned_abs()));
        }
        self.text(false, answer.and_then(|a| a.error.as_deref()).unwrap_or(""));
        self.start(false);
        for (index, address) in answer.map_or(&[][..], |a| &a.addresses).iter().enumerate() {
            if index > 0 {
                self.buffer.push(b';');
            }
            let _ = write!(self.buffer, "{address}");
        }
        if answer.is_some_and(|a| a.truncated) {
            self.buffer.extend_from_slice(b";...");
        }
        self.end();
        self.millis(answer.and_then(|a| u64::try_from(a.latency_ns).ok()));
        self.end_line()
    }

    /// Nanoseconds as milliseconds, an exact decimal: nanoseconds are whole
    /// millionths of a millisecond. Empty for `None`.
    fn millis(&mut self, ns: Option<u64>) {
        self.buffer.push(b',');
        if let Some(ns) = ns {
            push_u64(&mut self.buffer, ns / 1_000_000);
            self.buffer.push(b'.');
            push_padded(&mut self.buffer, ns % 1_000_000, 6);
        }
    }

    fn end_line(&mut self) -> io::Result<()> {
        self.buffer.extend_from_slice(b"\r\n");
        if self.buffer.len() >= FLUSH_AT {
            self.writer.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }
}

/// Whether a cell holds a byte that makes it quoted (as the `csv` crate's
/// writer decides): `,`, `"`, CR or LF. Eight bytes at a time: the byte-a-time
/// loop this replaced was 13 % of an export's CPU (perf, 1M rows), and memchr
/// (two passes) took more instructions than it on cells this short.
fn needs_quotes(cell: &[u8]) -> bool {
    const QUOTED: [u8; 4] = [b',', b'"', b'\r', b'\n'];
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `word` is `byte` when that byte of `word ^ byte…` is zero.
    let holds = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    };
    let mut words = cell.chunks_exact(8);
    for chunk in &mut words {
        let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
        // All four tested, no branch between them.
        if QUOTED
            .iter()
            .fold(false, |found, &byte| found | holds(word, byte))
        {
            return true;
        }
    }
    words.remainder().iter().any(|byte| QUOTED.contains(byte))
}

/// "00" to "99".
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Decimal digits of `value`, two at a time.
fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + rest as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// `value` in exactly `width` digits, zeros first (`value` < 10^width).
fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut rest = value;
    while rest > 0 && at > digits.len() - width {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits[digits.len() - width..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_text() {
        for value in [0, 7, 9, 10, 99, 100, 101, 65_535, 1_000_000, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
        for (value, width) in [(0, 9), (7, 6), (123_456, 6), (999_999_999, 9), (1, 1)] {
            let mut out = Vec::new();
            push_padded(&mut out, value, width);
            assert_eq!(out, format!("{value:0width$}").as_bytes());
        }
    }

    /// Eight bytes at a time finds a special byte wherever it is (in a whole
    /// word or the tail), and only those bytes: not their neighbours, not
    /// bytes with the high bit set (UTF-8).
    #[test]
    fn a_cell_needs_quotes_exactly_when_it_holds_a_special_byte() {
        let special = [b',', b'"', b'\r', b'\n'];
        let harmless = [
            b'a', b'+', b'-', b'!', b'#', b'\t', b'\x0b', b'\x0c', 0x80, 0xac, 0xff,
        ];
        for len in 0..=25 {
            for filler in harmless {
                let cell = vec![filler; len];
                assert!(!needs_quotes(&cell), "{len} × {filler:#x}");
                for at in 0..len {
                    for byte in special {
                        let mut cell = cell.clone();
                        cell[at] = byte;
                        assert!(needs_quotes(&cell), "{byte:#x} at {at} of {len}");
                    }
                }
            }
        }
        assert!(!needs_quotes("www.exämple.com. 198.18.0.1 ::1".as_bytes()));
    }

    #[test]
    fn cells_are_guarded_and_quoted_as_the_csv_crate_does() {
        let clock = Clock::new(true);
        let cells = [
            "a,b",
            "=1+2",
            "say \"hi\"",
            "-x",
            "",
            "line\nbreak",
            "\ttab",
            "plain",
        ];
        for guard in [true, false] {
            let mut ours = Vec::new();
            let mut rows = CsvRows::new(&mut ours, guard, false, &clock);
            for (i, cell) in cells.iter().enumerate() {
                rows.text(i == 0, cell);
            }
            rows.buffer.extend_from_slice(b"\r\n");
            rows.finish().unwrap();
            let mut theirs = csv_writer(Vec::new());
            let guarded: Vec<String> = cells
                .iter()
                .map(|c| {
                    if guard && c.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                        format!("'{c}")
                    } else {
                        (*c).to_owned()
                    }
                })
                .collect();
            theirs.write_record(&guarded).unwrap();
            let theirs = theirs.into_inner().unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }
}
