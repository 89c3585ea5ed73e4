//! The decoder's own name and record-data readers (its hot path) read what
//! hickory reads, at every offset of the input, and where they leave a name to
//! hickory the decoder reports hickory's result. Seeds: the `dns_decode` corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = dnsq_recorder::dns::check_fast_readers(data) {
        panic!("{why}");
    }
});
