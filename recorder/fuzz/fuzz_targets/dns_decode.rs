//! DNS decoding never panics, and whatever it produces is safe to print: no
//! control character survives into a name or record data. A message decoded
//! after one with the same bytes but the ID (`RecentDecodes`, which then shares
//! the first one's decoding) is exactly what decoding it alone gives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut recent = dnsq_recorder::dns::RecentDecodes::new();
    let first = recent.decode(data);
    assert_eq!(
        first.as_ref().map(|d| &*d.message),
        dnsq_recorder::dns::decode(data).as_ref()
    );
    if data.len() >= 2 {
        let mut other_id = data.to_vec();
        other_id[0] ^= 0xa5;
        other_id[1] = other_id[1].wrapping_add(1);
        let alone = dnsq_recorder::dns::decode(&other_id);
        let shared = recent.decode(&other_id);
        assert_eq!(shared.as_ref().map(|d| &*d.message), alone.as_ref());
        if let (Ok(shared), Ok(first)) = (&shared, &first) {
            assert_eq!(shared.question.is_some(), first.question.is_some());
        }
    }
    let Ok(message) = dnsq_recorder::dns::decode(data) else {
        return;
    };
    let unsafe_char = |text: &str| text.chars().any(|c| c.is_control());
    for question in &message.questions {
        assert!(!unsafe_char(&question.name), "{:?}", question.name);
    }
    for record in message
        .answers
        .iter()
        .chain(&message.authority)
        .chain(&message.additional)
    {
        assert!(!unsafe_char(&record.name), "{:?}", record.name);
        assert!(!unsafe_char(&record.data), "{:?}", record.data);
    }
    // Every type, class and rcode name maps back to its number.
    let _ = dnsq_recorder::dns::question_key(&message);
});
