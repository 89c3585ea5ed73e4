//! How small and how fast the message chunks are at several sizes: packs the
//! first messages of a store (rows or chunks) again, 128 to 1,024 to a chunk,
//! and prints the bytes a message and the time a message to pack and unpack.
//!
//! cargo run --release --example chunk_size -- target/dnsq-bench/history/history.db 1000000

use std::{ops::ControlFlow, time::Instant};

use anyhow::Context;
use dnsq_recorder::store::chunk::{self, COLUMNS, Chunk, Encoder, Ttls};
use rusqlite::{Connection, OpenFlags};

/// A message's values and its `ttls` (`Err` for text).
type Message = ([Option<i64>; COLUMNS.len()], Option<Result<i64, String>>);

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let db = args.next().context("usage: chunk_size DB [MESSAGES]")?;
    let limit: usize = args.next().map_or(Ok(1_000_000), |n| n.parse())?;
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut all: Vec<Message> = Vec::with_capacity(limit);
    chunk::scan_messages(&conn, false, |_, values, ttls| {
        let ttls = match ttls {
            Ttls::Null => None,
            Ttls::Integer(ttl) => Some(Ok(ttl)),
            Ttls::Text(text) => Some(Err(text.to_owned())),
        };
        all.push((*values, ttls));
        if all.len() == limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    let count = all.len();
    for size in [128, 256, 512, 1_024] {
        let mut encoder = Encoder::default();
        let started = Instant::now();
        let blobs: Vec<(Vec<u8>, usize)> = all
            .chunks(size)
            .map(|part| {
                for (values, ttls) in part {
                    let ttls = match ttls {
                        None => Ttls::Null,
                        Some(Ok(ttl)) => Ttls::Integer(*ttl),
                        Some(Err(text)) => Ttls::Text(text),
                    };
                    encoder.push(values, ttls);
                }
                (encoder.finish(), part.len())
            })
            .collect();
        let packing = started.elapsed();
        let started = Instant::now();
        let mut chunk = Chunk::default();
        for (blob, messages) in &blobs {
            chunk.decode(blob, *messages)?;
        }
        let unpacking = started.elapsed();
        let bytes: usize = blobs.iter().map(|(blob, _)| blob.len()).sum();
        println!(
            "{size:5} a chunk: {:.2} bytes a message, packed in {:.0} ns, unpacked in {:.0} ns \
             ({count} messages)",
            bytes as f64 / count as f64,
            packing.as_nanos() as f64 / count as f64,
            unpacking.as_nanos() as f64 / count as f64,
        );
    }
    Ok(())
}
