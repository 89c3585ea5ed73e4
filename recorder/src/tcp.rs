//! STUB — being written. Reassembles DNS-over-TCP streams.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub cookie: u64,
    pub sent: bool,
}

pub struct Segment<'a> {
    pub seq: u32,
    pub flags: u8,
    pub payload: &'a [u8],
    pub payload_len: u32,
    pub now_ns: u64,
}

#[derive(Debug)]
pub enum StreamOutput {
    Message(Vec<u8>),
    Broken { bytes: Vec<u8>, declared_len: Option<u16>, reason: String },
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Limits;

pub struct Reassembler;

impl Reassembler {
    pub fn new(_limits: Limits) -> Self {
        Self
    }
    pub fn push(&mut self, _key: StreamKey, _segment: Segment<'_>, _out: &mut Vec<StreamOutput>) {}
    pub fn expire(&mut self, _now_ns: u64, _out: &mut Vec<StreamOutput>) {}
}
