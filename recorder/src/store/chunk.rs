//! The message log's chunks (schema 15): the `messages` rows of consecutive ids,
//! packed column by column into one `message_chunks` BLOB and deflated.
//!
//! A row of SQLite's own costs a message ~58 bytes (a record header of 18, the
//! time alone 8) and its INSERT a third of the recorder's user-side CPU. Packed
//! column by column, neighbouring messages' values sit together — the same run,
//! endpoint and process, times microseconds apart, the two loopback copies of a
//! packet — and deflate takes most of them away.
//!
//! The blob: one format byte ([`STORED`] or [`DEFLATED`]), then the payload
//! (deflated or not):
//!
//! ```text
//! count                     varint: the chunk's messages
//! COLUMNS.len() columns     `count` values each, in `COLUMNS` order:
//!                             0 for NULL, otherwise zigzag(value - previous) + 1,
//!                             `previous` the column's last value that was not
//!                             NULL (0 at first);
//!                           the `ttls` column: 0 for NULL, 1 for text,
//!                             otherwise zigzag(value) + 2
//! texts                     each `ttls` text, oldest first: varint length, bytes
//! ```
//!
//! Varints are LEB128 (7 bits a byte, low first). The ids are not stored: a
//! chunk holds `first_id..=last_id`, its row's two columns.

use std::ops::{ControlFlow, Range};

use miniz_oxide::{
    deflate::core::{
        CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
    },
    inflate::decompress_to_vec_with_limit,
};
use rusqlite::types::{Type, Value, ValueRef};

/// [`COLUMNS`] as SQL, a literal for `concat!`: the statements that copy whole
/// `messages` rows name them from here.
macro_rules! message_columns {
    () => {
        "time_ns, run_id, bits, process_id, endpoint_id, socket_cookie, ports, qname_id, \
         qtype, answer_set_id, ttls, edns_udp_size, message_len, captured_len, latency_ns, \
         socket_cgroup_id, for_process_id, via_process_id"
    };
}

/// The columns of a message, in the order a chunk packs them: the compact
/// `messages` row of schema 6 but for `id`.
pub const COLUMNS: [&str; 18] = [
    "time_ns",
    "run_id",
    "bits",
    "process_id",
    "endpoint_id",
    "socket_cookie",
    "ports",
    "qname_id",
    "qtype",
    "answer_set_id",
    "ttls",
    "edns_udp_size",
    "message_len",
    "captured_len",
    "latency_ns",
    "socket_cgroup_id",
    "for_process_id",
    "via_process_id",
];

/// Column indexes into [`COLUMNS`].
pub mod column {
    pub const TIME_NS: usize = 0;
    pub const RUN_ID: usize = 1;
    pub const BITS: usize = 2;
    pub const PROCESS_ID: usize = 3;
    pub const ENDPOINT_ID: usize = 4;
    pub const SOCKET_COOKIE: usize = 5;
    pub const PORTS: usize = 6;
    pub const QNAME_ID: usize = 7;
    pub const QTYPE: usize = 8;
    pub const ANSWER_SET_ID: usize = 9;
    pub const TTLS: usize = 10;
    pub const EDNS_UDP_SIZE: usize = 11;
    pub const MESSAGE_LEN: usize = 12;
    pub const CAPTURED_LEN: usize = 13;
    pub const LATENCY_NS: usize = 14;
    pub const SOCKET_CGROUP_ID: usize = 15;
    pub const FOR_PROCESS_ID: usize = 16;
    pub const VIA_PROCESS_ID: usize = 17;
}

/// The blob's first byte: the payload follows as is.
const STORED: u8 = 0;
/// The blob's first byte: the payload follows deflated (raw deflate).
const DEFLATED: u8 = 1;
/// Deflate's level: its fastest. On the benchmark's history (1M messages,
/// 1,024 to a chunk) level 1 packed 13.2 bytes a message in 250 ns, level 3
/// 12.1 in 550 ns, level 6 11.9 in 930 ns (`examples/chunk_size.rs`).
const LEVEL: u8 = 1;
/// Most messages a chunk holds: the writer starts a new one after this many.
pub const MAX_MESSAGES: usize = 1_024;
/// Most messages a reader unpacks from one chunk: more is corrupt.
const MAX_DECODED: usize = 1 << 20;
/// Most bytes a chunk's payload may inflate to: a corrupt blob never makes the
/// reader allocate more (a message packs into well under 1 KiB, text aside).
const MAX_PAYLOAD: usize = 64 << 20;

/// A message's `ttls` value: NULL, one TTL for every record, or the JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttls<'a> {
    Null,
    Integer(i64),
    Text(&'a str),
}

impl<'a> From<Ttls<'a>> for ValueRef<'a> {
    /// As the `ttls` column of a `messages` row holds it.
    fn from(ttls: Ttls<'a>) -> Self {
        match ttls {
            Ttls::Null => ValueRef::Null,
            Ttls::Integer(ttl) => ValueRef::Integer(ttl),
            Ttls::Text(text) => ValueRef::Text(text.as_bytes()),
        }
    }
}

/// Packs messages into a chunk, one at a time.
#[derive(Default)]
pub struct Encoder {
    count: usize,
    /// Each column's values so far, encoded.
    columns: [Vec<u8>; COLUMNS.len()],
    previous: [i64; COLUMNS.len()],
    texts: Vec<u8>,
    payload: Vec<u8>,
    /// Kept from chunk to chunk, so that its tables (a few hundred KB, zeroed
    /// for each chunk all the same) are allocated once: deflating the replay's
    /// 80 chunks took 36.8M instructions instead of 42.4M (callgrind,
    /// `examples/replay.rs`).
    compressor: Option<Box<CompressorOxide>>,
    /// The deflated payload, when it is smaller.
    deflated: Vec<u8>,
}

impl Encoder {
    /// Messages added since the last [`Encoder::finish`].
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets the messages added since the last [`Encoder::finish`].
    pub fn clear(&mut self) {
        for column in &mut self.columns {
            column.clear();
        }
        self.texts.clear();
        self.previous = [0; COLUMNS.len()];
        self.count = 0;
    }

    /// Adds a message: its values in [`COLUMNS`] order (the `ttls` one ignored
    /// for `ttls`).
    pub fn push(&mut self, values: &[Option<i64>; COLUMNS.len()], ttls: Ttls<'_>) {
        for (index, value) in values.iter().enumerate() {
            let out = &mut self.columns[index];
            if index == column::TTLS {
                match ttls {
                    Ttls::Null => out.push(0),
                    Ttls::Text(text) => {
                        out.push(1);
                        put_varint(&mut self.texts, text.len() as u128);
                        self.texts.extend_from_slice(text.as_bytes());
                    }
                    Ttls::Integer(ttl) => put_tagged(out, zigzag(ttl), 2),
                }
                continue;
            }
            match *value {
                None => out.push(0),
                Some(value) => {
                    let delta = value.wrapping_sub(self.previous[index]);
                    self.previous[index] = value;
                    put_tagged(out, zigzag(delta), 1);
                }
            }
        }
        self.count += 1;
    }

    /// The blob of the messages added, and a fresh start for the next chunk.
    pub fn finish(&mut self) -> Vec<u8> {
        self.payload.clear();
        put_varint(&mut self.payload, self.count as u128);
        for column in &self.columns {
            self.payload.extend_from_slice(column);
        }
        self.payload.extend_from_slice(&self.texts);
        self.clear();
        let compressor = self.compressor.get_or_insert_with(|| {
            // Raw deflate: no zlib header (window bits 0), the default strategy.
            let flags = create_comp_flags_from_zip_params(LEVEL.into(), 0, 0);
            Box::new(CompressorOxide::new(flags))
        });
        compressor.reset();
        // No larger than the payload: a deflate that does not fit is not kept.
        self.deflated.resize(self.payload.len(), 0);
        let (status, _, written) = compress(
            compressor,
            &self.payload,
            &mut self.deflated,
            TDEFLFlush::Finish,
        );
        let (format, body) = if status == TDEFLStatus::Done && written < self.payload.len() {
            (DEFLATED, &self.deflated[..written])
        } else {
            (STORED, self.payload.as_slice())
        };
        let mut blob = Vec::with_capacity(body.len() + 1);
        blob.push(format);
        blob.extend_from_slice(body);
        blob
    }
}

/// Why a chunk could not be unpacked: it is not what [`Encoder`] writes.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("empty blob")]
    Empty,
    #[error("unknown format {0}")]
    Format(u8),
    #[error("cannot inflate: {0}")]
    Inflate(String),
    #[error("truncated")]
    Truncated,
    #[error("holds {found} messages, its ids say {expected}")]
    Count { found: u64, expected: usize },
    #[error("a value out of range")]
    Range,
    #[error("{0} bytes left over")]
    Trailing(usize),
    #[error("ttls text is not UTF-8")]
    Utf8,
    #[error("not a range of ids a chunk can hold")]
    Ids,
}

/// One chunk unpacked: its values by column, then by message.
#[derive(Default)]
pub struct Chunk {
    count: usize,
    values: Vec<Option<i64>>,
    /// Each message's `ttls`: `None` NULL, `Ok` the integer, `Err` the range of
    /// its text in `texts`.
    ttls: Vec<Option<Result<i64, Range<usize>>>>,
    texts: String,
}

impl Chunk {
    /// Unpacks the blob of the `message_chunks` row of ids
    /// `first_id..=last_id`.
    pub fn decode_ids(
        &mut self,
        first_id: i64,
        last_id: i64,
        blob: &[u8],
    ) -> Result<(), ChunkError> {
        let count = last_id
            .checked_sub(first_id)
            .and_then(|span| usize::try_from(span).ok())
            .map(|span| span + 1)
            .filter(|count| *count <= MAX_DECODED)
            .ok_or(ChunkError::Ids)?;
        self.decode(blob, count)
    }

    /// Unpacks `blob` (reusing this chunk's buffers), which must hold `count`
    /// messages.
    pub fn decode(&mut self, blob: &[u8], count: usize) -> Result<(), ChunkError> {
        let (&format, body) = blob.split_first().ok_or(ChunkError::Empty)?;
        let inflated;
        let payload = match format {
            STORED => body,
            DEFLATED => {
                inflated = decompress_to_vec_with_limit(body, MAX_PAYLOAD)
                    .map_err(|e| ChunkError::Inflate(e.to_string()))?;
                inflated.as_slice()
            }
            other => return Err(ChunkError::Format(other)),
        };
        let mut input = payload;
        let found = take_varint(&mut input)?;
        if found != count as u128 {
            return Err(ChunkError::Count {
                found: u64::try_from(found).unwrap_or(u64::MAX),
                expected: count,
            });
        }
        self.count = count;
        self.values.clear();
        self.ttls.clear();
        self.texts.clear();
        for index in 0..COLUMNS.len() {
            let mut previous = 0i64;
            for _ in 0..count {
                let raw = take_varint(&mut input)?;
                if index == column::TTLS {
                    self.values.push(None);
                    self.ttls.push(match raw {
                        0 => None,
                        // Its range is known once the texts are read.
                        1 => Some(Err(0..0)),
                        n => Some(Ok(unzigzag(n - 2)?)),
                    });
                    continue;
                }
                self.values.push(match raw {
                    0 => None,
                    n => {
                        previous = previous.wrapping_add(unzigzag(n - 1)?);
                        Some(previous)
                    }
                });
            }
        }
        for ttls in self.ttls.iter_mut() {
            if let Some(Err(range)) = ttls {
                let len =
                    usize::try_from(take_varint(&mut input)?).map_err(|_| ChunkError::Range)?;
                if len > input.len() {
                    return Err(ChunkError::Truncated);
                }
                let (text, rest) = input.split_at(len);
                input = rest;
                let start = self.texts.len();
                self.texts
                    .push_str(std::str::from_utf8(text).map_err(|_| ChunkError::Utf8)?);
                *range = start..self.texts.len();
            }
        }
        if !input.is_empty() {
            return Err(ChunkError::Trailing(input.len()));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Column `column` ([`column`]) of the chunk's `index`th message.
    pub fn get(&self, index: usize, column: usize) -> Option<i64> {
        self.values[column * self.count + index]
    }

    pub fn ttls(&self, index: usize) -> Ttls<'_> {
        match &self.ttls[index] {
            None => Ttls::Null,
            Some(Ok(ttl)) => Ttls::Integer(*ttl),
            Some(Err(range)) => Ttls::Text(&self.texts[range.clone()]),
        }
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The inverse of [`zigzag`]; a raw value too large for one is corrupt.
fn unzigzag(raw: u128) -> Result<i64, ChunkError> {
    let raw = u64::try_from(raw).map_err(|_| ChunkError::Range)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// `value + tag` as a varint: in 64 bits unless the sum is larger (only the
/// extremes of i64 come to that).
#[inline(always)]
fn put_tagged(out: &mut Vec<u8>, value: u64, tag: u64) {
    let Some(mut value) = value.checked_add(tag) else {
        put_varint(out, u128::from(value) + u128::from(tag));
        return;
    };
    if value < 0x80 {
        out.push(value as u8);
        return;
    }
    let mut bytes = [0u8; 10];
    let mut len = 0;
    while value >= 0x80 {
        bytes[len] = value as u8 | 0x80;
        value >>= 7;
        len += 1;
    }
    bytes[len] = value as u8;
    out.extend_from_slice(&bytes[..=len]);
}

fn put_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Result<u128, ChunkError> {
    let mut value = 0u128;
    for shift in (0..).step_by(7).take(19) {
        let (&byte, rest) = input.split_first().ok_or(ChunkError::Truncated)?;
        *input = rest;
        value |= u128::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ChunkError::Range)
}

/// Visits every message of a store (schema 6 or later) in id order (newest first when
/// asked): the rows of `main.messages` (written before schema 15), then the
/// chunks. Each comes as its id, its values in [`COLUMNS`] order and its
/// `ttls`, until `visit` breaks. For tools and tests that need the raw columns
/// (the benchmark's tallies, [`unpack_messages`]); `dnsq` reads through
/// `store::read`.
pub fn scan_messages(
    conn: &rusqlite::Connection,
    newest_first: bool,
    mut visit: impl FnMut(i64, &[Option<i64>; COLUMNS.len()], Ttls<'_>) -> ControlFlow<()>,
) -> rusqlite::Result<()> {
    let flow = if newest_first {
        scan_chunks(conn, true, &mut visit)?
    } else {
        scan_rows(conn, false, &mut visit)?
    };
    if flow.is_continue() {
        // The second of the two: whether it broke off changes nothing.
        let _ = if newest_first {
            scan_rows(conn, true, &mut visit)?
        } else {
            scan_chunks(conn, false, &mut visit)?
        };
    }
    Ok(())
}

/// What [`scan_messages`] hands each message to.
type Visit<'a> = dyn FnMut(i64, &[Option<i64>; COLUMNS.len()], Ttls<'_>) -> ControlFlow<()> + 'a;

/// [`scan_messages`] of the rows of `main.messages`.
fn scan_rows(
    conn: &rusqlite::Connection,
    newest_first: bool,
    visit: &mut Visit<'_>,
) -> rusqlite::Result<ControlFlow<()>> {
    let mut statement = conn.prepare(if newest_first {
        SCAN_ROWS_NEWEST_FIRST
    } else {
        SCAN_ROWS
    })?;
    let mut rows = statement.query([])?;
    let mut values = [None; COLUMNS.len()];
    while let Some(row) = rows.next()? {
        let mut ttls = Ttls::Null;
        for (index, value) in values.iter_mut().enumerate() {
            *value = None;
            match row.get_ref(index + 1)? {
                ValueRef::Integer(integer) if index == column::TTLS => {
                    ttls = Ttls::Integer(integer);
                }
                ValueRef::Text(text) if index == column::TTLS => {
                    ttls = Ttls::Text(std::str::from_utf8(text).unwrap_or(""));
                }
                ValueRef::Integer(integer) => *value = Some(integer),
                _ => {}
            }
        }
        if visit(row.get(0)?, &values, ttls).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// [`scan_messages`] of `main.message_chunks` (none before schema 15).
fn scan_chunks(
    conn: &rusqlite::Connection,
    newest_first: bool,
    visit: &mut Visit<'_>,
) -> rusqlite::Result<ControlFlow<()>> {
    let chunked: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema WHERE name = 'message_chunks')",
        [],
        |row| row.get(0),
    )?;
    if !chunked {
        return Ok(ControlFlow::Continue(()));
    }
    let mut statement = conn.prepare(if newest_first {
        "SELECT last_id, first_id, data FROM main.message_chunks ORDER BY last_id DESC"
    } else {
        "SELECT last_id, first_id, data FROM main.message_chunks ORDER BY last_id ASC"
    })?;
    let mut rows = statement.query([])?;
    let mut chunk = Chunk::default();
    let mut values = [None; COLUMNS.len()];
    while let Some(row) = rows.next()? {
        let (last_id, first_id): (i64, i64) = (row.get(0)?, row.get(1)?);
        chunk
            .decode_ids(first_id, last_id, row.get_ref(2)?.as_blob()?)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, Type::Blob, e.into()))?;
        let count = chunk.len();
        for step in 0..count {
            let index = if newest_first { count - 1 - step } else { step };
            for (column, value) in values.iter_mut().enumerate() {
                *value = chunk.get(index, column);
            }
            if visit(first_id + index as i64, &values, chunk.ttls(index)).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

const SCAN_ROWS: &str = concat!(
    "SELECT id, ",
    message_columns!(),
    " FROM main.messages ORDER BY id ASC"
);
const SCAN_ROWS_NEWEST_FIRST: &str = concat!(
    "SELECT id, ",
    message_columns!(),
    " FROM main.messages ORDER BY id DESC"
);

/// Unpacks every message of the store into a TEMP table `messages`, which
/// shadows the store's own for this connection only: the rows written before
/// schema 15 and the chunks' messages, with the columns of a `messages` row
/// (`flags` included). For tests, and for looking into a store with plain SQL
/// (`dnsq` reads chunks itself). Called again, it unpacks afresh.
pub fn unpack_messages(conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
    conn.execute_batch(UNPACKED_MESSAGES)?;
    let mut insert = conn.prepare(INSERT_UNPACKED)?;
    let mut unpacked = 0;
    let mut failed = None;
    scan_messages(conn, false, |id, values, ttls| {
        let mut row: Vec<Value> = Vec::with_capacity(COLUMNS.len() + 1);
        row.push(id.into());
        for (column, value) in values.iter().enumerate() {
            row.push(if column == column::TTLS {
                ValueRef::from(ttls).into()
            } else {
                (*value).into()
            });
        }
        match insert.execute(rusqlite::params_from_iter(row)) {
            Ok(_) => {
                unpacked += 1;
                ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(unpacked),
    }
}

/// Rewrites the chunks that end at or before `through_id` as rows of
/// `main.messages`, the way a recorder stored messages before schema 15: for
/// tests of stores written across the upgrade or read as older schemas.
#[doc(hidden)]
pub fn chunks_to_rows(conn: &rusqlite::Connection, through_id: i64) -> rusqlite::Result<()> {
    unpack_messages(conn)?;
    let cut: Option<i64> = conn.query_row(
        "SELECT max(last_id) FROM main.message_chunks WHERE last_id <= ?1",
        [through_id],
        |row| row.get(0),
    )?;
    if let Some(cut) = cut {
        conn.execute(
            concat!(
                "INSERT INTO main.messages (id, ",
                message_columns!(),
                ") SELECT id, ",
                message_columns!(),
                " FROM temp.messages WHERE id <= ?1 AND id NOT IN (SELECT id FROM main.messages)"
            ),
            [cut],
        )?;
        conn.execute("DELETE FROM main.message_chunks WHERE last_id <= ?1", [cut])?;
    }
    conn.execute_batch("DROP TABLE temp.messages")
}

/// The TEMP table of [`unpack_messages`], empty.
const UNPACKED_MESSAGES: &str = "DROP TABLE IF EXISTS temp.messages;
CREATE TEMP TABLE messages (
    id INTEGER PRIMARY KEY, time_ns INTEGER, run_id INTEGER, bits INTEGER,
    process_id INTEGER, endpoint_id INTEGER, socket_cookie INTEGER, ports INTEGER,
    qname_id INTEGER, qtype INTEGER, answer_set_id INTEGER, ttls,
    edns_udp_size INTEGER, message_len INTEGER, captured_len INTEGER,
    latency_ns INTEGER, socket_cgroup_id INTEGER, for_process_id INTEGER,
    via_process_id INTEGER,
    flags INTEGER GENERATED ALWAYS AS (bits & 268386303) VIRTUAL
);";

/// A row of it: the id, then [`COLUMNS`].
const INSERT_UNPACKED: &str = concat!(
    "INSERT INTO temp.messages (id, ",
    message_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
     ?18, ?19)"
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages with every kind of value a column can hold: NULLs, the extremes
    /// of i64, values going down as well as up, and the three kinds of `ttls`.
    /// A message's values, and its `ttls`: NULL, an integer or text.
    type Message = ([Option<i64>; COLUMNS.len()], Option<Result<i64, String>>);

    fn messages() -> Vec<Message> {
        let extremes = [
            Some(i64::MIN),
            Some(i64::MAX),
            None,
            Some(0),
            Some(-1),
            Some(1),
        ];
        (0..40)
            .map(|i: i64| {
                let mut values = [None; COLUMNS.len()];
                for (column, value) in values.iter_mut().enumerate() {
                    *value = match (i + column as i64) % 4 {
                        0 => extremes[(i as usize + column) % extremes.len()],
                        1 => None,
                        2 => Some(1_700_000_000_000_000_000 + i * 1_000 - column as i64),
                        _ => Some(-i * 7 + column as i64),
                    };
                }
                let ttls = match i % 3 {
                    0 => None,
                    1 => Some(Ok(i * 60 - 100)),
                    _ => Some(Err(format!("[{i},300,{}]", i * 2))),
                };
                (values, ttls)
            })
            .collect()
    }

    /// One message of values with nothing in common: deflate cannot shrink it.
    fn distinct() -> Message {
        let mut values = [None; COLUMNS.len()];
        for (column, value) in values.iter_mut().enumerate() {
            *value = Some((column as i64 + 3).pow(9) * 7_919);
        }
        (values, Some(Ok(86_400)))
    }

    fn pack(messages: &[Message]) -> Vec<u8> {
        let mut encoder = Encoder::default();
        for (values, ttls) in messages {
            let ttls = match ttls {
                None => Ttls::Null,
                Some(Ok(ttl)) => Ttls::Integer(*ttl),
                Some(Err(text)) => Ttls::Text(text),
            };
            encoder.push(values, ttls);
        }
        assert_eq!(encoder.len(), messages.len());
        encoder.finish()
    }

    #[test]
    fn every_value_reads_back_as_written() {
        let all = messages();
        let mut encoder = Encoder::default();
        let mut chunk = Chunk::default();
        // The encoder starts afresh after each chunk: the second is the first's twin.
        for _ in 0..2 {
            for size in [1, 2, 39, 40] {
                let part = &all[40 - size..];
                let blob = pack(part);
                chunk.decode(&blob, size).unwrap();
                assert_eq!(chunk.len(), size);
                for (index, (values, ttls)) in part.iter().enumerate() {
                    for (column, value) in values.iter().enumerate() {
                        if column != column::TTLS {
                            assert_eq!(chunk.get(index, column), *value, "{size} {index} {column}");
                        }
                    }
                    let expected = match ttls {
                        None => Ttls::Null,
                        Some(Ok(ttl)) => Ttls::Integer(*ttl),
                        Some(Err(text)) => Ttls::Text(text),
                    };
                    assert_eq!(chunk.ttls(index), expected);
                }
            }
            encoder.push(&all[0].0, Ttls::Null);
            assert_eq!(encoder.finish(), pack(&all[..1]));
        }
    }

    #[test]
    fn repetitive_messages_deflate_and_others_are_stored() {
        let same = vec![([Some(1_700_000_000_000_000_000); COLUMNS.len()], None); 500];
        let blob = pack(&same);
        assert_eq!(blob[0], DEFLATED);
        assert!(blob.len() < same.len(), "{} bytes", blob.len());
        let one = pack(&[distinct()]);
        assert_eq!(one[0], STORED);
        Chunk::default().decode(&one, 1).unwrap();
    }

    /// The `message_chunk` fuzz target's seeds (written by hand, as the format
    /// describes) are chunks: the fuzzer starts from inputs that unpack.
    #[test]
    fn the_fuzz_seeds_unpack() {
        let seeds: [&[u8]; 3] = [
            include_bytes!("../../fuzz/corpus/message_chunk/stored-3"),
            include_bytes!("../../fuzz/corpus/message_chunk/deflated-3"),
            include_bytes!("../../fuzz/corpus/message_chunk/deflated-300"),
        ];
        let mut chunk = Chunk::default();
        for seed in seeds {
            let (count, blob) = seed.split_at(2);
            let count = usize::from(u16::from_le_bytes([count[0], count[1]]));
            chunk.decode(blob, count).unwrap();
            assert_eq!(chunk.ttls(1), Ttls::Text("[60,300]"));
            assert_eq!(chunk.get(2, column::MESSAGE_LEN), Some(7));
        }
    }

    /// Any damage is an error, never a panic or a wrong count: every truncation
    /// and every single-byte change of a stored and of a deflated chunk.
    #[test]
    fn a_damaged_chunk_is_an_error() {
        let mut chunk = Chunk::default();
        let deflated = pack(&vec![messages()[5].clone(); 64]);
        let stored = pack(&[distinct()]);
        assert_eq!((deflated[0], stored[0]), (DEFLATED, STORED));
        for (blob, count) in [(&deflated, 64), (&stored, 1)] {
            for len in 0..blob.len() {
                assert!(chunk.decode(&blob[..len], count).is_err(), "{len}");
            }
            assert!(chunk.decode(blob, count + 1).is_err());
            assert!(chunk.decode(blob, count - 1).is_err());
            for at in 0..blob.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = blob.clone();
                    bad[at] ^= flip;
                    // A changed value may still be a valid chunk; it must not panic.
                    if chunk.decode(&bad, count).is_ok() {
                        assert_eq!(chunk.len(), count);
                    }
                }
            }
        }
        // The ids of its row: 1 message, none, more than the i64 range holds.
        chunk.decode_ids(10, 10, &stored).unwrap();
        assert!(matches!(
            chunk.decode_ids(5, 4, &stored),
            Err(ChunkError::Ids)
        ));
        assert!(matches!(
            chunk.decode_ids(i64::MIN, i64::MAX, &stored),
            Err(ChunkError::Ids)
        ));
        assert!(matches!(
            chunk.decode(&[7, 0], 0),
            Err(ChunkError::Format(7))
        ));
        assert!(matches!(chunk.decode(&[], 0), Err(ChunkError::Empty)));
    }
}
