//! A message chunk as the store reads it back: any bytes and any message count
//! unpack or are an error, never a panic; whatever unpacks packs again into a
//! chunk that unpacks to the same values. Input: two bytes of message count
//! (little-endian, up to 4,095), then the blob.
#![no_main]

use dnsq_recorder::store::chunk::{COLUMNS, Chunk, Encoder, column};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((count, blob)) = data.split_first_chunk::<2>() else {
        return;
    };
    let count = usize::from(u16::from_le_bytes(*count) & 0x0fff);
    let mut chunk = Chunk::default();
    if chunk.decode(blob, count).is_err() {
        return;
    }
    assert_eq!(chunk.len(), count);
    let mut encoder = Encoder::default();
    let mut values = [None; COLUMNS.len()];
    for index in 0..count {
        for (at, value) in values.iter_mut().enumerate() {
            *value = chunk.get(index, at);
        }
        encoder.push(&values, chunk.ttls(index));
    }
    let again = encoder.finish();
    let mut twin = Chunk::default();
    twin.decode(&again, count).expect("a chunk packed again unpacks");
    for index in 0..count {
        for at in 0..COLUMNS.len() {
            if at != column::TTLS {
                assert_eq!(twin.get(index, at), chunk.get(index, at));
            }
        }
        assert_eq!(twin.ttls(index), chunk.ttls(index));
    }
});
