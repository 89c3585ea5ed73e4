//! DNS decoding never panics, and whatever it produces is safe to print: no
//! control character survives into a name or record data.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = dnsq_recorder::dns::decode(data) else {
        return;
    };
    let unsafe_char = |text: &str| text.chars().any(|c| c.is_control());
    for question in &message.questions {
        assert!(!unsafe_char(&question.name), "{:?}", question.name);
    }
    for record in message.answers.iter().chain(&message.authority).chain(&message.additional) {
        assert!(!unsafe_char(&record.name), "{:?}", record.name);
        assert!(!unsafe_char(&record.data), "{:?}", record.data);
    }
    // Every type, class and rcode name maps back to its number.
    let _ = dnsq_recorder::dns::question_key(&message);
});
