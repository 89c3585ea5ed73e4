//! STUB — being written. Decodes DNS wire format into [`DnsMessage`].
use crate::record::DnsMessage;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

pub fn decode(_bytes: &[u8]) -> Result<DnsMessage, DecodeError> {
    Err(DecodeError("decoder not written yet".into()))
}

pub fn question_key(message: &DnsMessage) -> Option<(String, String)> {
    let q = message.questions.first()?;
    Some((q.name.to_ascii_lowercase(), q.qtype.clone()))
}
