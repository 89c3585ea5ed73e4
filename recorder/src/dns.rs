//! Decodes DNS wire format (RFC 1035 §4) into [`DnsMessage`], with every name and
//! record in presentation format that is safe to print on a terminal.
//!
//! hickory-proto does the reading: the header, names (with its compression-pointer
//! checks) and record data. The commonest names and record data (A, AAAA, CNAME,
//! NS, PTR, DNAME, MX, TXT), the decoder's hot path, are read here straight into
//! text, and only where hickory would read the same: `fast_name` leaves any name
//! hickory could refuse to hickory, and [`check_fast_readers`] holds the two side
//! by side in the tests and the `dns_names` fuzz target. This module walks the
//! sections itself, record by record, rather than calling `Message::from_vec`,
//! because a monitor must show what was sent, not what a resolver would accept:
//!
//! - the raw record data stays at hand, so a record whose data hickory cannot decode
//!   (unknown type, `NULL`, DNSSEC types without hickory's `dnssec` features, or data
//!   that is malformed for its type) is shown in RFC 3597 form `\# <len> <hex>` instead
//!   of failing the whole message;
//! - the EDNS OPT record is read from its raw fields: hickory raises a UDP size under
//!   512 to 512, and rejects a second OPT record;
//! - type, class, opcode and rcode names come from the IANA registries here: hickory
//!   prints unknown types as `Unknown`, unknown classes as `UNKNOWN`, and maps type
//!   65305 (a private-use number) to its own `ANAME`.
//!
//! Names and character strings are formatted here, not by hickory's `Display`, which
//! escapes unprintable bytes in octal (`\033` for ESC) where RFC 1035 §5.1 means
//! decimal (`\027`), turns `xn--` labels into Unicode, and prints TXT, HINFO, NAPTR,
//! CAA and SVCB strings without quoting or escaping them.

use std::{
    collections::HashMap,
    fmt::{self, Write as _},
    hash::{BuildHasher, Hash, Hasher},
    sync::{Arc, LazyLock},
};

use hickory_proto::{
    ProtoError, ProtoErrorKind,
    op::{Header, MessageType},
    rr::{
        Name, RData, RecordType,
        rdata::svcb::{SVCB, SvcParamValue},
    },
    serialize::binary::{
        BinDecodable, BinDecoder, BinEncodable, BinEncoder, DecodeError as WireError, Restrict,
    },
};

use crate::record::{Code, DnsContent, DnsFlags, DnsMessage, Edns, Question, ResourceRecord};

/// A DNS message is at most 65535 bytes: the TCP length prefix is 16 bits.
const MAX_MESSAGE_LEN: usize = 65_535;
const HEADER_LEN: usize = 12;
/// Most compression pointers one name may follow. hickory-proto 0.25 follows them by
/// recursion without a limit (hickory-dns issue #3738, fixed in 0.26), so a crafted
/// chain of ~30 000 pointers could overflow the stack. A real name has at most 127
/// labels, so more hops than that means pointers to pointers.
const MAX_POINTER_HOPS: u16 = 128;
const TYPE_OPT: u16 = 41;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_DNAME: u16 = 39;
const TYPE_NS: u16 = 2;
const TYPE_CNAME: u16 = 5;
const TYPE_PTR: u16 = 12;
const TYPE_MX: u16 = 15;
const TYPE_TXT: u16 = 16;
/// Longest name (wire length, labels with their length bytes) that [`fast_name`]
/// reads itself; longer ones go to hickory, whose limit is 255 with the root.
const FAST_NAME_MAX: usize = 250;

/// Why bytes are not a DNS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("message of {0} bytes is longer than a DNS message can be (65535)")]
    TooLong(usize),
    #[error("truncated message: {0}")]
    Truncated(String),
    #[error("compression pointer loop: {0}")]
    PointerLoop(String),
    #[error("compression pointer chain of more than {MAX_POINTER_HOPS} hops")]
    PointerChain,
    #[error("{0}")]
    Invalid(String),
}

/// Where in the message a read failed, for error messages: `answer 2 of 3`.
#[derive(Clone, Copy)]
struct Place {
    section: &'static str,
    index: u16,
    count: u16,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = u32::from(self.index) + 1;
        write!(f, "{} {number} of {}", self.section, self.count)
    }
}

/// A decoded message and its [`QuestionKey`], made together once: pairing and
/// the resolver linker both look the key up, and so do both loopback copies of a
/// packet.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub message: Arc<DnsMessage>,
    pub question: Option<QuestionKey>,
}

impl Decoded {
    pub fn new(message: DnsMessage) -> Self {
        Self {
            question: QuestionKey::of(&message),
            message: Arc::new(message),
        }
    }
}

/// Messages decoded lately, by their bytes after the ID. A host asks the same
/// questions over and over, and a query differs from the last one for the same
/// name and type only in its ID (glibc, dig, resolvers), as does the answer of a
/// server that answers with a fixed TTL. On loopback every packet also passes two
/// sockets (the sender's egress, then the receiver's ingress): the second copy
/// shares the first one's decoding. Decoding depends on the bytes alone, and the
/// ID is two of them, so a message seen before with another ID is that decoding
/// with its ID changed: its [`DnsContent`] is shared, not made again.
pub struct RecentDecodes {
    /// This generation's decodings, by the bytes after the ID.
    current: HashMap<Box<[u8]>, Decoded, foldhash::fast::RandomState>,
    /// The generation before: a message found here moves to `current`; the
    /// rest is forgotten when `current` fills up again. Two generations keep
    /// what is asked again within about [`Self::GENERATION`] messages, whatever
    /// the order, in bounded memory.
    previous: HashMap<Box<[u8]>, Decoded, foldhash::fast::RandomState>,
    /// Decodings shared instead of made.
    pub shared: u64,
}

impl RecentDecodes {
    /// Messages per generation: at most twice as many are kept, ~0.5 KB each
    /// (the bytes, the decoded text, the question key).
    const GENERATION: usize = 4_096;
    /// The most decodings kept: two generations.
    pub(crate) const KEPT: usize = 2 * Self::GENERATION;
    /// Longer messages (large answers) are decoded each time: bounded memory.
    const MAX_KEPT_LEN: usize = 512;

    pub fn new() -> Self {
        Self {
            current: HashMap::default(),
            previous: HashMap::default(),
            shared: 0,
        }
    }

    /// [`decode`], or the decoding of the same bytes (but perhaps the ID) seen
    /// lately.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Decoded, DecodeError> {
        if !(HEADER_LEN..=Self::MAX_KEPT_LEN).contains(&bytes.len()) {
            return decode(bytes).map(Decoded::new);
        }
        let after_id = &bytes[2..];
        let id = u16::from_be_bytes([bytes[0], bytes[1]]);
        if let Some(seen) = self.current.get(after_id) {
            self.shared += 1;
            return Ok(seen.with_id(id));
        }
        if let Some((key, seen)) = self.previous.remove_entry(after_id) {
            self.shared += 1;
            let decoded = seen.with_id(id);
            self.keep(key, seen);
            return Ok(decoded);
        }
        let decoded = Decoded::new(decode(bytes)?);
        if !may_point_into_id(after_id) {
            self.keep(after_id.into(), decoded.clone());
        }
        Ok(decoded)
    }

    fn keep(&mut self, after_id: Box<[u8]>, decoded: Decoded) {
        if self.current.len() >= Self::GENERATION {
            self.previous = std::mem::take(&mut self.current);
            self.current.reserve(Self::GENERATION);
        }
        self.current.insert(after_id, decoded);
    }
}

/// Whether a compression pointer in the message (its bytes after the ID) could
/// point at offset 0 or 1: a name read from there is made of the ID's bytes, so
/// its decoding depends on the ID (only a crafted message does this; found by
/// the `dns_decode` fuzz target). Any such pair of bytes counts, in a name or
/// not: such a message is decoded each time.
fn may_point_into_id(after_id: &[u8]) -> bool {
    after_id
        .windows(2)
        .any(|pair| pair[0] == 0xc0 && pair[1] <= 1)
}

impl Decoded {
    /// This decoding for the same bytes with ID `id`: shared when the ID is the
    /// same (a packet's loopback twin), else a message of that ID sharing its
    /// content. The question key is shared either way.
    fn with_id(&self, id: u16) -> Self {
        if self.message.id == id {
            return self.clone();
        }
        Self {
            message: Arc::new(DnsMessage {
                id,
                content: Arc::clone(&self.message.content),
            }),
            question: self.question.clone(),
        }
    }
}

impl Default for RecentDecodes {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes one DNS message. Never panics; allocation is bounded by the input size.
/// Bytes after the last record announced in the header are ignored.
pub fn decode(bytes: &[u8]) -> Result<DnsMessage, DecodeError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLong(bytes.len()));
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated(format!(
            "the header needs {HEADER_LEN} bytes, the message has {}",
            bytes.len()
        )));
    }
    check_pointer_chains(bytes)?;
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).map_err(|error| classify("header", &error))?;
    let mut message = DnsContent {
        response: header.message_type() == MessageType::Response,
        opcode: opcode_name(u8::from(header.op_code())),
        rcode: Code::Borrowed(""),
        flags: DnsFlags {
            aa: header.authoritative(),
            tc: header.truncated(),
            rd: header.recursion_desired(),
            ra: header.recursion_available(),
            ad: header.authentic_data(),
            cd: header.checking_disabled(),
        },
        ..DnsContent::default()
    };
    // Counts are not trusted for allocation: every entry needs bytes, so the vectors
    // grow only as far as the message really goes.
    let count = header.query_count();
    for index in 0..count {
        let place = Place {
            section: "question",
            index,
            count,
        };
        let name = read_name(bytes, &mut decoder).map_err(|error| classify(place, &error))?;
        let qtype = read_u16(&mut decoder, place, "type")?;
        let class = read_u16(&mut decoder, place, "class")?;
        message.questions.push(Question {
            name,
            qtype: type_name(qtype),
            class: class_name(class),
        });
    }
    let mut reader = SectionReader {
        message: bytes,
        decoder,
        opt: None,
    };
    message.answers = reader.section("answer", header.answer_count())?;
    message.authority = reader.section("authority", header.name_server_count())?;
    message.additional = reader.section("additional", header.additional_count())?;
    let low = u16::from(header.response_code()) & 0x000f;
    let high = reader.opt.map_or(0, |opt| (opt.ttl >> 24) as u16);
    message.rcode = rcode_name((high << 4) | low);
    message.edns = reader.opt.map(|opt| Edns {
        udp_size: opt.class,
        version: (opt.ttl >> 16) as u8,
        dnssec_ok: opt.ttl & 0x8000 != 0,
    });
    Ok(DnsMessage::new(header.id(), message))
}

/// The first question's name, lower-cased (ASCII), and type: what a response must
/// repeat to answer a query.
pub fn question_key(message: &DnsMessage) -> Option<(String, Code)> {
    let q = message.questions.first()?;
    Some((q.name.to_ascii_lowercase(), q.qtype.clone()))
}

/// A [`question_key`]: the name lower-cased (ASCII) and the type. Shared by the
/// keys of one message (and the queues that repeat them), so copying a key copies
/// no text. Its hash is taken once, when it is made: pairing and the resolver
/// linker look a message's key up in several maps, and hashing the name each
/// time cost more than the rest of those keys.
#[derive(Clone, Debug)]
pub struct QuestionKey(Arc<KeyText>);

#[derive(Debug)]
struct KeyText {
    name: String,
    qtype: Code,
    hash: u64,
}

/// Seeded at random once per process: names come from the network.
static QUESTION_HASHER: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

impl QuestionKey {
    pub fn new(name: String, qtype: Code) -> Self {
        let hash = QUESTION_HASHER.hash_one((&name, &qtype));
        Self(Arc::new(KeyText { name, qtype, hash }))
    }

    /// `message`'s [`question_key`].
    pub fn of(message: &DnsMessage) -> Option<Self> {
        question_key(message).map(|(name, qtype)| Self::new(name, qtype))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether the two are one allocation (not just equal).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The key of a message without a question: no name, no type.
impl Default for QuestionKey {
    fn default() -> Self {
        Self::new(String::new(), Code::Borrowed(""))
    }
}

impl PartialEq for QuestionKey {
    fn eq(&self, other: &Self) -> bool {
        self.same(other)
            || (self.0.hash == other.0.hash
                && self.0.name == other.0.name
                && self.0.qtype == other.0.qtype)
    }
}

impl Eq for QuestionKey {}

impl Hash for QuestionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// The raw fields of the EDNS OPT pseudo-record (RFC 6891 §6.1.2), which overloads
/// class (UDP payload size) and TTL (extended rcode, version, DO bit).
#[derive(Clone, Copy)]
struct OptFields {
    class: u16,
    ttl: u32,
}

struct SectionReader<'a> {
    message: &'a [u8],
    decoder: BinDecoder<'a>,
    /// The first OPT record of the additional section.
    opt: Option<OptFields>,
}

impl SectionReader<'_> {
    fn section(
        &mut self,
        section: &'static str,
        count: u16,
    ) -> Result<Vec<ResourceRecord>, DecodeError> {
        let mut records = Vec::new();
        for index in 0..count {
            let place = Place {
                section,
                index,
                count,
            };
            let decoder = &mut self.decoder;
            let name = read_name(self.message, decoder).map_err(|error| classify(place, &error))?;
            let rtype = read_u16(decoder, place, "type")?;
            let class = read_u16(decoder, place, "class")?;
            let ttl = decoder
                .read_u32()
                .map_err(|_| truncated_in(place, "TTL"))?
                .unverified(/*any TTL is shown as it is*/);
            let rdlength = read_u16(decoder, place, "data length")?;
            let start = decoder.index();
            let left = decoder.len();
            let raw = decoder
                .read_slice(usize::from(rdlength))
                .map_err(|_| {
                    DecodeError::Truncated(format!(
                        "{place}: {rdlength} bytes of record data announced, {left} left"
                    ))
                })?
                .unverified(/*shown as it is, or decoded below*/);
            if rtype == TYPE_OPT && section == "additional" && self.opt.is_none() {
                self.opt = Some(OptFields { class, ttl });
                continue;
            }
            records.push(ResourceRecord {
                name,
                rtype: type_name(rtype),
                class: class_name(class),
                ttl,
                data: rdata_text(self.message, start, rtype, raw),
            });
        }
        Ok(records)
    }
}

fn read_u16(decoder: &mut BinDecoder<'_>, place: Place, field: &str) -> Result<u16, DecodeError> {
    decoder
        .read_u16()
        .map(|value| value.unverified(/*any value has a name*/))
        .map_err(|_| truncated_in(place, field))
}

fn truncated_in(place: Place, field: &str) -> DecodeError {
    DecodeError::Truncated(format!(
        "{place}: the message ends inside the {field} field"
    ))
}

/// Sorts a hickory error by what it means for the message.
fn classify(place: impl fmt::Display, error: &ProtoError) -> DecodeError {
    match error.kind() {
        ProtoErrorKind::PointerNotPriorToLabel { idx, ptr } => DecodeError::PointerLoop(format!(
            "{place}: the pointer at offset {idx} goes to offset {ptr}, which is not earlier \
             in the message"
        )),
        ProtoErrorKind::LabelOverlapsWithOther { .. } => {
            DecodeError::PointerLoop(format!("{place}: {error}"))
        }
        ProtoErrorKind::Msg(text) if *text == WireError::InsufficientBytes.to_string() => {
            DecodeError::Truncated(format!("{place}: {text}"))
        }
        _ => DecodeError::Invalid(format!("{place}: {error}")),
    }
}

/// Rejects messages where some name would follow more than [`MAX_POINTER_HOPS`]
/// compression pointers, before hickory follows them by recursion.
///
/// Each hop of a chain is a different pointer (hickory follows only pointers to
/// earlier offsets), and a pointer starts with a byte of the form `11xxxxxx`: a
/// message with at most [`MAX_POINTER_HOPS`] such bytes (nearly all of them) has
/// no chain that long, and is passed without the full check's two tables.
fn check_pointer_chains(bytes: &[u8]) -> Result<(), DecodeError> {
    let pointer_bytes = bytes.iter().filter(|&&b| b >= 0xc0).count();
    if pointer_bytes <= usize::from(MAX_POINTER_HOPS) {
        return Ok(());
    }
    check_pointer_chains_fully(bytes)
}

/// Computes, for every offset, how many pointers a name read from there could
/// follow, in two linear passes (names in record data start at offsets only hickory
/// knows, so all are checked).
fn check_pointer_chains_fully(bytes: &[u8]) -> Result<(), DecodeError> {
    const NONE: u32 = u32::MAX;
    // Pass 1, back to front: the offset of the pointer that the run of labels
    // starting at each offset ends in, if it ends in one.
    let mut ends = vec![NONE; bytes.len()];
    for (offset, &byte) in bytes.iter().enumerate().rev() {
        let end = match byte >> 6 {
            0b11 => offset as u32,
            0b00 if byte != 0 => ends
                .get(offset + 1 + usize::from(byte))
                .copied()
                .unwrap_or(NONE),
            _ => NONE,
        };
        if let Some(slot) = ends.get_mut(offset) {
            *slot = end;
        }
    }
    // Pass 2, front to back: hickory follows a pointer only to an offset before the
    // start of the name being read, and there `hops` is already known.
    let mut hops = vec![0_u16; bytes.len()];
    for offset in 0..bytes.len() {
        let Some(&end) = ends.get(offset) else { break };
        let Some(pair) = bytes
            .get(end as usize..)
            .and_then(|rest| rest.first_chunk::<2>())
        else {
            continue;
        };
        let target = usize::from(u16::from_be_bytes(*pair) & 0x3fff);
        if target >= offset {
            continue; // hickory rejects this pointer
        }
        let count = hops.get(target).map_or(0, |&h| h) + 1;
        if count > MAX_POINTER_HOPS {
            return Err(DecodeError::PointerChain);
        }
        if let Some(slot) = hops.get_mut(offset) {
            *slot = count;
        }
    }
    Ok(())
}

/// Record data in presentation format, or RFC 3597 `\# <len> <hex>` when it cannot be
/// decoded (or decodes to something that does not print safely).
fn rdata_text(message: &[u8], start: usize, rtype: u16, raw: &[u8]) -> String {
    if raw.is_empty() {
        // RFC 2136 uses empty data in UPDATE; no type's presentation form is empty.
        return "\\# 0".to_owned();
    }
    match known_rdata(message, start, rtype, raw) {
        Some(text) if text.bytes().all(|b| (0x20..0x7f).contains(&b)) => text,
        _ => format!("\\# {} {}", raw.len(), hex::encode_upper(raw)),
    }
}

fn known_rdata(message: &[u8], start: usize, rtype: u16, raw: &[u8]) -> Option<String> {
    fast_rdata(message, start, rtype, raw).or_else(|| hickory_rdata(message, start, rtype, raw))
}

/// `a.b.c.d`, the text `Ipv4Addr`'s `Display` gives, written digit by digit: A
/// records are the commonest record data, and `to_string` went through the
/// formatting machinery for each octet (~1.3k instructions an address against
/// ~0.1k here; callgrind, `examples/replay.rs`).
fn ipv4_text(octets: [u8; 4]) -> String {
    let mut text = String::with_capacity(15);
    for (index, octet) in octets.into_iter().enumerate() {
        if index > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// The commonest record data, formatted straight from its bytes: the same text as
/// [`hickory_rdata`] gives (for addresses, std's formatting either way), or `None`
/// to leave the record to it.
fn fast_rdata(message: &[u8], start: usize, rtype: u16, raw: &[u8]) -> Option<String> {
    match (rtype, raw.len()) {
        (TYPE_A, 4) => Some(ipv4_text(raw.try_into().ok()?)),
        (TYPE_AAAA, 16) => {
            let octets: [u8; 16] = raw.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(octets).to_string())
        }
        (TYPE_CNAME | TYPE_NS | TYPE_PTR | TYPE_DNAME, _) => {
            let (name, end) = fast_name(message, start)?;
            (end == start + raw.len()).then_some(name)
        }
        (TYPE_MX, 3..) => {
            let preference = u16::from_be_bytes([raw[0], raw[1]]);
            let (exchange, end) = fast_name(message, start + 2)?;
            (end == start + raw.len()).then(|| format!("{preference} {exchange}"))
        }
        (TYPE_TXT, _) => fast_txt(raw),
        _ => None,
    }
}

/// Record data decoded by hickory and formatted here.
fn hickory_rdata(message: &[u8], start: usize, rtype: u16, raw: &[u8]) -> Option<String> {
    let length = u16::try_from(raw.len()).ok()?;
    // Names in record data may point back into the message, so decode in place.
    let mut decoder = BinDecoder::new(message);
    decoder.read_slice(start).ok()?;
    if rtype == TYPE_DNAME {
        // RFC 6672; hickory keeps DNAME as unknown.
        let target = Name::read(&mut decoder).ok()?;
        return (decoder.index() == start + raw.len()).then(|| format_name(&target));
    }
    if matches!(
        RecordType::from(rtype),
        RecordType::Unknown(_) | RecordType::ANAME
    ) {
        return None;
    }
    // RData::read checks that exactly `length` bytes were used.
    let rdata = RData::read(&mut decoder, RecordType::from(rtype), Restrict::new(length)).ok()?;
    let mut out = String::new();
    match &rdata {
        RData::A(a) => write!(out, "{a}").ok()?,
        RData::AAAA(aaaa) => write!(out, "{aaaa}").ok()?,
        RData::CNAME(name) => push_name(&mut out, &name.0),
        RData::NS(name) => push_name(&mut out, &name.0),
        RData::PTR(name) => push_name(&mut out, &name.0),
        RData::MX(mx) => {
            write!(out, "{} ", mx.preference()).ok()?;
            push_name(&mut out, mx.exchange());
        }
        RData::SOA(soa) => {
            push_name(&mut out, soa.mname());
            out.push(' ');
            push_name(&mut out, soa.rname());
            // hickory reads refresh, retry and expire as i32; on the wire they are
            // 32-bit unsigned (RFC 1035 §3.3.13), so reinterpret the bits.
            write!(
                out,
                " {} {} {} {} {}",
                soa.serial(),
                soa.refresh() as u32,
                soa.retry() as u32,
                soa.expire() as u32,
                soa.minimum()
            )
            .ok()?;
        }
        RData::SRV(srv) => {
            write!(out, "{} {} {} ", srv.priority(), srv.weight(), srv.port()).ok()?;
            push_name(&mut out, srv.target());
        }
        RData::TXT(txt) => {
            for (i, text) in txt.txt_data().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                push_quoted(&mut out, text);
            }
        }
        RData::HINFO(hinfo) => {
            push_quoted(&mut out, hinfo.cpu());
            out.push(' ');
            push_quoted(&mut out, hinfo.os());
        }
        RData::NAPTR(naptr) => {
            write!(out, "{} {} ", naptr.order(), naptr.preference()).ok()?;
            for text in [naptr.flags(), naptr.services(), naptr.regexp()] {
                push_quoted(&mut out, text);
                out.push(' ');
            }
            push_name(&mut out, naptr.replacement());
        }
        RData::CAA(caa) => {
            // RFC 8659 §4.1.1: flags, tag, value as a character string. The tag is
            // checked alphanumeric by hickory (and lower-cased for issue/iodef).
            write!(out, "{} ", caa.flags()).ok()?;
            push_label(&mut out, caa.tag().as_str().as_bytes());
            out.push(' ');
            push_quoted(&mut out, caa.raw_value());
        }
        RData::SVCB(svcb) => push_svcb(&mut out, svcb, raw)?,
        RData::HTTPS(https) => push_svcb(&mut out, &https.0, raw)?,
        RData::CERT(cert) => write!(
            out,
            "{} {} {} {}",
            u16::from(cert.cert_type()),
            cert.key_tag(),
            u8::from(cert.algorithm()),
            cert.cert_base64()
        )
        .ok()?,
        RData::CSYNC(csync) => {
            // hickory keeps the serial private; it is the first four bytes.
            let serial = u32::from_be_bytes(*raw.first_chunk::<4>()?);
            write!(out, "{serial} {}", csync.flags()).ok()?;
            for rtype in csync.type_bit_maps() {
                write!(out, " {}", type_name(u16::from(rtype))).ok()?;
            }
        }
        // Numbers and hex (upper case, as in `\#` data and dig's output) or base64:
        // hickory's Display is the presentation form.
        RData::SSHFP(_) | RData::TLSA(_) => out = rdata.to_string().to_ascii_uppercase(),
        RData::OPENPGPKEY(_) => write!(out, "{rdata}").ok()?,
        _ => return None,
    }
    Some(out)
}

/// SVCB and HTTPS (RFC 9460 §2.1). hickory's Display leaves trailing commas and
/// unescaped values, and its decoder tolerates some malformed values (a `port` longer
/// than two bytes), so the decoded record must encode back to the same bytes.
fn push_svcb(out: &mut String, svcb: &SVCB, raw: &[u8]) -> Option<()> {
    let mut again = Vec::with_capacity(raw.len());
    svcb.emit(&mut BinEncoder::new(&mut again)).ok()?;
    if again != raw {
        return None;
    }
    write!(out, "{} ", svcb.svc_priority()).ok()?;
    push_name(out, svcb.target_name());
    for (key, value) in svcb.svc_params() {
        out.push(' ');
        out.push_str(&svc_key_name(u16::from(*key)));
        match value {
            SvcParamValue::Mandatory(keys) => {
                let names: Vec<String> =
                    keys.0.iter().map(|k| svc_key_name(u16::from(*k))).collect();
                write!(out, "={}", names.join(",")).ok()?;
            }
            SvcParamValue::Alpn(alpn) => {
                // A value-list (RFC 9460 Appendix A.1): `,` and `\` inside an item are
                // escaped with `\`, then the list is one character string.
                let mut list = Vec::new();
                for (i, id) in alpn.0.iter().enumerate() {
                    if i > 0 {
                        list.push(b',');
                    }
                    for &b in id.as_bytes() {
                        if b == b',' || b == b'\\' {
                            list.push(b'\\');
                        }
                        list.push(b);
                    }
                }
                out.push('=');
                push_quoted(out, &list);
            }
            SvcParamValue::NoDefaultAlpn => {}
            SvcParamValue::Port(port) => write!(out, "={port}").ok()?,
            SvcParamValue::Ipv4Hint(hint) => {
                let ips: Vec<String> = hint.0.iter().map(ToString::to_string).collect();
                write!(out, "={}", ips.join(",")).ok()?;
            }
            SvcParamValue::Ipv6Hint(hint) => {
                let ips: Vec<String> = hint.0.iter().map(ToString::to_string).collect();
                write!(out, "={}", ips.join(",")).ok()?;
            }
            // Quoted base64.
            SvcParamValue::EchConfigList(ech) => write!(out, "={ech}").ok()?,
            SvcParamValue::Unknown(unknown) => {
                if !unknown.0.is_empty() {
                    out.push('=');
                    push_quoted(out, &unknown.0);
                }
            }
        }
    }
    Some(())
}

fn svc_key_name(key: u16) -> String {
    match key {
        0 => "mandatory".into(),
        1 => "alpn".into(),
        2 => "no-default-alpn".into(),
        3 => "port".into(),
        4 => "ipv4hint".into(),
        5 => "ech".into(),
        6 => "ipv6hint".into(),
        7 => "dohpath".into(),
        8 => "ohttp".into(),
        _ => format!("key{key}"),
    }
}

/// The name at the decoder's position, in presentation format (as
/// [`format_name`]), the decoder moved past it. `message` is the decoder's whole
/// buffer (compression pointers are offsets into it).
fn read_name(message: &[u8], decoder: &mut BinDecoder<'_>) -> Result<String, ProtoError> {
    let start = decoder.index();
    if let Some((text, end)) = fast_name(message, start) {
        decoder.read_slice(end - start)?;
        return Ok(text);
    }
    Name::read(decoder).map(|name| format_name(&name))
}

/// A name read straight from the message into presentation text: the hot path of
/// decoding (hickory's `Name::read` builds a `Name`, which is then formatted,
/// ~2,000 instructions for a question's name). It reads only names hickory
/// accepts, and gives up (`None`) wherever hickory could refuse one — a reserved
/// label type, a pointer not to an offset before the labels it ends, labels that
/// reach the name that pointed to them, a name past the end or longer than
/// [`FAST_NAME_MAX`] — so that the caller asks hickory and gets its verdict and
/// error. Returns the text and the offset just past the name at `start`.
fn fast_name(message: &[u8], start: usize) -> Option<(String, usize)> {
    let mut out = Vec::with_capacity(32);
    let mut at = start;
    // Where the run of labels being read starts, and where the one that pointed
    // to it started: hickory reads a pointer's target as a name of its own that
    // must end before the name that pointed to it.
    let mut run_start = start;
    let mut run_limit = usize::MAX;
    let mut end = None;
    let mut wire_len = 0;
    let mut hops = 0;
    loop {
        if at >= run_limit {
            return None;
        }
        let byte = *message.get(at)?;
        match byte >> 6 {
            0b00 if byte == 0 => {
                end.get_or_insert(at + 1);
                break;
            }
            0b00 => {
                let len = usize::from(byte);
                let label = message.get(at + 1..at + 1 + len)?;
                wire_len += len + 1;
                if wire_len > FAST_NAME_MAX {
                    return None;
                }
                escape_label(&mut out, label);
                out.push(b'.');
                at += 1 + len;
            }
            0b11 => {
                let low = *message.get(at + 1)?;
                let target = usize::from(u16::from_be_bytes([byte & 0x3f, low]));
                hops += 1;
                if target >= run_start || hops > MAX_POINTER_HOPS {
                    return None;
                }
                end.get_or_insert(at + 2);
                run_limit = run_start;
                run_start = target;
                at = target;
            }
            _ => return None,
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    Some((String::from_utf8(out).ok()?, end?))
}

/// What [`check_fast_readers`] saw.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct FastReadersChecked {
    /// Names and record data the fast readers read (and hickory read the same).
    pub fast: usize,
    /// Names hickory read where [`fast_name`] gave up.
    pub left_to_hickory: usize,
}

/// Checks that at every offset of `bytes` what [`fast_name`] and [`fast_rdata`]
/// read is what hickory reads there (text and end; record data of the types the
/// fast path knows, at a few lengths), and that [`read_name`] gives hickory's
/// result, error text included. For the tests and the `dns_names` fuzz target.
#[doc(hidden)]
pub fn check_fast_readers(bytes: &[u8]) -> Result<FastReadersChecked, String> {
    let mut checked = FastReadersChecked::default();
    for at in 0..bytes.len() {
        let fast = fast_name(bytes, at);
        let hickory = hickory_name(bytes, at);
        match (&fast, &hickory) {
            (Some(fast), Ok(hickory)) if fast == hickory => checked.fast += 1,
            (Some(fast), hickory) => {
                return Err(format!(
                    "{bytes:?} at {at}: read {fast:?}, hickory {hickory:?}"
                ));
            }
            (None, Ok(_)) => checked.left_to_hickory += 1,
            (None, Err(_)) => {}
        }
        let mut decoder = BinDecoder::new(bytes);
        decoder.read_slice(at).map_err(|e| e.to_string())?;
        let read = read_name(bytes, &mut decoder).map(|text| (text, decoder.index()));
        let (read, hickory) = (
            read.map_err(|e| e.to_string()),
            hickory.map_err(|e| e.to_string()),
        );
        if read != hickory {
            return Err(format!(
                "{bytes:?} at {at}: read_name {read:?}, hickory {hickory:?}"
            ));
        }
        let natural = fast.map_or(0, |(_, end)| end - at);
        for len in [1, 2, 3, 16, 40, natural, natural + 2] {
            let Some(raw) = bytes.get(at..at + len).filter(|raw| !raw.is_empty()) else {
                continue;
            };
            for rtype in [
                TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_PTR, TYPE_DNAME, TYPE_MX, TYPE_TXT,
            ] {
                let Some(text) = fast_rdata(bytes, at, rtype, raw) else {
                    continue;
                };
                let hickory = hickory_rdata(bytes, at, rtype, raw);
                if hickory.as_ref() != Some(&text) {
                    return Err(format!(
                        "{bytes:?}: type {rtype} at {at}, {len} bytes: read {text:?}, hickory \
                         {hickory:?}"
                    ));
                }
                checked.fast += 1;
            }
        }
    }
    Ok(checked)
}

/// hickory's reading of the name at `at`: its text, and where the name ends.
fn hickory_name(bytes: &[u8], at: usize) -> Result<(String, usize), ProtoError> {
    let mut decoder = BinDecoder::new(bytes);
    decoder.read_slice(at)?;
    let name = Name::read(&mut decoder)?;
    Ok((format_name(&name), decoder.index()))
}

/// TXT data (one or more `<character-string>`s) as quoted strings, when the
/// strings fill the data exactly; `None` otherwise, for hickory to judge.
fn fast_txt(raw: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(raw.len() + 8);
    let mut rest = raw;
    while let Some((&len, tail)) = rest.split_first() {
        let (text, after) = tail.split_at_checked(usize::from(len))?;
        if !out.is_empty() {
            out.push(' ');
        }
        push_quoted(&mut out, text);
        rest = after;
    }
    Some(out)
}

/// A domain name in presentation format: fully qualified, case kept, root is `.`.
fn format_name(name: &Name) -> String {
    // The presentation length, plus room for a few escapes.
    let mut out = String::with_capacity(name.len() + 8);
    push_name(&mut out, name);
    out
}

fn push_name(out: &mut String, name: &Name) {
    // Escaped into one buffer for the whole name, pushed once.
    let mut text = Vec::with_capacity(name.len() + 8);
    for label in name.iter() {
        escape_label(&mut text, label);
        text.push(b'.');
    }
    if text.is_empty() {
        text.push(b'.');
    }
    out.push_str(&String::from_utf8_lossy(&text));
}

/// One label, escaped as RFC 1035 §5.1 allows: `\X` for the characters that mean
/// something in a name or zone file, `\DDD` (decimal) for anything not printable
/// ASCII, including space. Only printable ASCII is written.
fn escape_label(out: &mut Vec<u8>, label: &[u8]) {
    // Nearly every label needs no escape: copy it whole.
    if label.iter().all(|&b| PLAIN[usize::from(b)]) {
        out.extend_from_slice(label);
        return;
    }
    for &b in label {
        match b {
            b'.' | b'\\' | b'"' | b';' | b'(' | b')' => out.extend_from_slice(&[b'\\', b]),
            0x21..=0x7e => out.push(b),
            _ => out.extend_from_slice(&decimal_escape(b)),
        }
    }
}

/// [`escape_label`] onto a `String` (a CAA tag: one label).
fn push_label(out: &mut String, label: &[u8]) {
    let mut escaped = Vec::with_capacity(label.len());
    escape_label(&mut escaped, label);
    out.push_str(&String::from_utf8_lossy(&escaped));
}

/// A byte that stands for itself in a label: printable ASCII other than the
/// characters [`escape_label`] escapes.
const fn plain(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'.' | b'\\' | b'"' | b';' | b'(' | b')')
}

/// [`plain`] for every byte: one load a byte on the hot path.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = plain(b as u8);
        b += 1;
    }
    table
};

/// A `<character-string>` in double quotes: `"` and `\` escaped, unprintable bytes
/// and anything outside ASCII as `\DDD`.
fn push_quoted(out: &mut String, text: &[u8]) {
    out.push('"');
    for &b in text {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => push_decimal(out, b),
        }
    }
    out.push('"');
}

fn push_decimal(out: &mut String, b: u8) {
    out.extend(decimal_escape(b).map(char::from));
}

/// `\DDD`: a byte as three decimal digits (RFC 1035 §5.1).
fn decimal_escape(b: u8) -> [u8; 4] {
    [b'\\', b'0' + b / 100, b'0' + b / 10 % 10, b'0' + b % 10]
}

/// RR types by IANA mnemonic ("Resource Record (RR) TYPEs" registry).
#[rustfmt::skip]
const TYPES: &[(u16, &str)] = &[
    (1, "A"), (2, "NS"), (3, "MD"), (4, "MF"), (5, "CNAME"), (6, "SOA"), (7, "MB"),
    (8, "MG"), (9, "MR"), (10, "NULL"), (11, "WKS"), (12, "PTR"), (13, "HINFO"),
    (14, "MINFO"), (15, "MX"), (16, "TXT"), (17, "RP"), (18, "AFSDB"), (19, "X25"),
    (20, "ISDN"), (21, "RT"), (22, "NSAP"), (23, "NSAP-PTR"), (24, "SIG"), (25, "KEY"),
    (26, "PX"), (27, "GPOS"), (28, "AAAA"), (29, "LOC"), (30, "NXT"), (31, "EID"),
    (32, "NIMLOC"), (33, "SRV"), (34, "ATMA"), (35, "NAPTR"), (36, "KX"), (37, "CERT"),
    (38, "A6"), (39, "DNAME"), (40, "SINK"), (41, "OPT"), (42, "APL"), (43, "DS"),
    (44, "SSHFP"), (45, "IPSECKEY"), (46, "RRSIG"), (47, "NSEC"), (48, "DNSKEY"),
    (49, "DHCID"), (50, "NSEC3"), (51, "NSEC3PARAM"), (52, "TLSA"), (53, "SMIMEA"),
    (55, "HIP"), (56, "NINFO"), (57, "RKEY"), (58, "TALINK"), (59, "CDS"),
    (60, "CDNSKEY"), (61, "OPENPGPKEY"), (62, "CSYNC"), (63, "ZONEMD"), (64, "SVCB"),
    (65, "HTTPS"), (66, "DSYNC"), (99, "SPF"), (100, "UINFO"), (101, "UID"), (102, "GID"),
    (103, "UNSPEC"), (104, "NID"), (105, "L32"), (106, "L64"), (107, "LP"), (108, "EUI48"),
    (109, "EUI64"), (128, "NXNAME"), (249, "TKEY"), (250, "TSIG"), (251, "IXFR"),
    (252, "AXFR"), (253, "MAILB"), (254, "MAILA"), (255, "ANY"), (256, "URI"), (257, "CAA"),
    (258, "AVC"), (259, "DOA"), (260, "AMTRELAY"), (261, "RESINFO"), (262, "WALLET"),
    (263, "CLA"), (264, "IPN"), (32768, "TA"), (32769, "DLV"),
];

#[rustfmt::skip]
const CLASSES: &[(u16, &str)] = &[(1, "IN"), (3, "CH"), (4, "HS"), (254, "NONE"), (255, "ANY")];

/// Extended (12-bit) response codes, IANA "DNS RCODEs". 16 is also BADSIG inside TSIG
/// records; in a header or OPT record it is BADVERS.
#[rustfmt::skip]
const RCODES: &[(u16, &str)] = &[
    (0, "NOERROR"), (1, "FORMERR"), (2, "SERVFAIL"), (3, "NXDOMAIN"), (4, "NOTIMP"),
    (5, "REFUSED"), (6, "YXDOMAIN"), (7, "YXRRSET"), (8, "NXRRSET"), (9, "NOTAUTH"),
    (10, "NOTZONE"), (11, "DSOTYPENI"), (16, "BADVERS"), (17, "BADKEY"), (18, "BADTIME"),
    (19, "BADMODE"), (20, "BADNAME"), (21, "BADALG"), (22, "BADTRUNC"), (23, "BADCOOKIE"),
];

#[rustfmt::skip]
const OPCODES: &[(u16, &str)] = &[
    (0, "QUERY"), (1, "IQUERY"), (2, "STATUS"), (4, "NOTIFY"), (5, "UPDATE"), (6, "DSO"),
];

fn name_of(table: &[(u16, &'static str)], code: u16) -> Option<&'static str> {
    table.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

fn code_of(table: &[(u16, &'static str)], name: &str) -> Option<u16> {
    // The decoder's names are the table's own strings (`Code::Borrowed`): found by
    // address, which is cheaper than comparing text, before they are looked for
    // by text, as names from elsewhere (the store, JSON, a user) are.
    table
        .iter()
        .find(|(_, n)| std::ptr::eq(*n, name))
        .or_else(|| table.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)))
        .map(|(c, _)| *c)
}

/// Digits only (`str::parse` would also take a leading `+`).
fn number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn with_prefix(text: &str, prefix: &str) -> Option<u16> {
    let head = text.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    number(text.get(prefix.len()..)?)
}

/// `A`, `HTTPS`, … or `TYPE65534` (RFC 3597 §5).
pub fn type_name(code: u16) -> Code {
    name_of(TYPES, code).map_or_else(|| format!("TYPE{code}").into(), Code::Borrowed)
}

/// The inverse of [`type_name`]; mnemonics are matched without regard to case.
pub fn type_code(name: &str) -> Option<u16> {
    code_of(TYPES, name).or_else(|| with_prefix(name, "TYPE"))
}

/// `IN`, `CH`, `HS`, `NONE`, `ANY` or `CLASS4660` (RFC 3597 §5).
pub fn class_name(code: u16) -> Code {
    name_of(CLASSES, code).map_or_else(|| format!("CLASS{code}").into(), Code::Borrowed)
}

pub fn class_code(name: &str) -> Option<u16> {
    code_of(CLASSES, name).or_else(|| with_prefix(name, "CLASS"))
}

/// `NOERROR`, `NXDOMAIN`, … or `RCODE<n>` for codes without a mnemonic.
pub fn rcode_name(code: u16) -> Code {
    name_of(RCODES, code).map_or_else(|| format!("RCODE{code}").into(), Code::Borrowed)
}

/// The inverse of [`rcode_name`], for the 12 bits an extended rcode has.
pub fn rcode_code(name: &str) -> Option<u16> {
    code_of(RCODES, name)
        .or_else(|| with_prefix(name, "RCODE"))
        .filter(|&code| code <= 0x0fff)
}

/// `QUERY`, `NOTIFY`, `UPDATE`, … or the number itself.
pub fn opcode_name(code: u8) -> Code {
    name_of(OPCODES, u16::from(code)).map_or_else(|| code.to_string().into(), Code::Borrowed)
}

/// The inverse of [`opcode_name`], for the 4 bits an opcode has.
pub fn opcode_code(name: &str) -> Option<u8> {
    let code = code_of(OPCODES, name).or_else(|| number(name))?;
    u8::try_from(code).ok().filter(|&code| code <= 0x0f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QR: u16 = 0x8000;
    const AA: u16 = 0x0400;
    const RD: u16 = 0x0100;
    const RA: u16 = 0x0080;
    const IN: u16 = 1;
    const A: u16 = 1;
    const CNAME: u16 = 5;

    /// Wire-format messages built by hand, byte by byte.
    struct Wire(Vec<u8>);

    impl Wire {
        fn new(id: u16, flags: u16, [qd, an, ns, ar]: [u16; 4]) -> Self {
            let mut wire = Self(Vec::new());
            wire.u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
            wire
        }
        fn pos(&self) -> u16 {
            self.0.len() as u16
        }
        fn u8(&mut self, value: u8) -> &mut Self {
            self.0.push(value);
            self
        }
        fn u16(&mut self, value: u16) -> &mut Self {
            self.bytes(&value.to_be_bytes())
        }
        fn u32(&mut self, value: u32) -> &mut Self {
            self.bytes(&value.to_be_bytes())
        }
        fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
            self.0.extend_from_slice(bytes);
            self
        }
        /// Labels without the root terminator (to be followed by a pointer).
        fn labels(&mut self, labels: &[&[u8]]) -> &mut Self {
            for label in labels {
                self.u8(label.len() as u8).bytes(label);
            }
            self
        }
        fn name(&mut self, labels: &[&[u8]]) -> &mut Self {
            self.labels(labels).u8(0)
        }
        fn pointer(&mut self, to: u16) -> &mut Self {
            self.u16(0xc000 | to)
        }
        fn question(&mut self, labels: &[&[u8]], qtype: u16) -> &mut Self {
            self.name(labels).u16(qtype).u16(IN)
        }
        /// Type, class and TTL of a record whose owner name was just written.
        fn head(&mut self, rtype: u16, class: u16, ttl: u32) -> &mut Self {
            self.u16(rtype).u16(class).u32(ttl)
        }
        /// Record data with its length in front; `write` writes the data.
        fn rdata(&mut self, write: impl FnOnce(&mut Self)) -> &mut Self {
            let at = self.0.len();
            self.u16(0);
            write(self);
            let len = (self.0.len() - at - 2) as u16;
            self.0[at..at + 2].copy_from_slice(&len.to_be_bytes());
            self
        }
    }

    fn decoded(bytes: &[u8]) -> DnsMessage {
        match decode(bytes) {
            Ok(message) => message,
            Err(error) => panic!("decode failed: {error}"),
        }
    }

    fn records(records: &[ResourceRecord]) -> Vec<(&str, &str, &str)> {
        records
            .iter()
            .map(|r| (r.name.as_str(), r.rtype.as_ref(), r.data.as_str()))
            .collect()
    }

    fn cname_chain() -> Vec<u8> {
        let mut w = Wire::new(0x1234, QR | RD | RA, [1, 3, 0, 0]);
        w.question(&[b"www", b"example", b"com"], A);
        w.pointer(12).head(CNAME, IN, 300);
        let a_example_net = w.pos() + 2;
        w.rdata(|w| {
            w.name(&[b"a", b"example", b"net"]);
        });
        w.pointer(a_example_net).head(CNAME, IN, 300);
        let b_example_net = w.pos() + 2;
        w.rdata(|w| {
            w.labels(&[b"b"]).pointer(a_example_net + 2);
        });
        w.pointer(b_example_net).head(A, IN, 60);
        w.rdata(|w| {
            w.bytes(&[192, 0, 2, 1]);
        });
        w.0
    }

    #[test]
    fn a_with_cname_chain() {
        let m = decoded(&cname_chain());
        assert_eq!(m.id, 0x1234);
        assert!(m.response);
        assert_eq!((m.opcode.as_ref(), m.rcode.as_ref()), ("QUERY", "NOERROR"));
        assert_eq!(
            m.flags,
            DnsFlags {
                rd: true,
                ra: true,
                ..DnsFlags::default()
            }
        );
        assert_eq!(
            m.questions,
            vec![Question {
                name: "www.example.com.".into(),
                qtype: "A".into(),
                class: "IN".into(),
            }]
        );
        assert_eq!(
            records(&m.answers),
            vec![
                ("www.example.com.", "CNAME", "a.example.net."),
                ("a.example.net.", "CNAME", "b.example.net."),
                ("b.example.net.", "A", "192.0.2.1"),
            ]
        );
        assert_eq!(m.answers[2].ttl, 60);
        assert!(m.authority.is_empty() && m.additional.is_empty() && m.edns.is_none());
        assert_eq!(
            question_key(&m),
            Some(("www.example.com.".into(), "A".into()))
        );
    }

    #[test]
    fn aaaa() {
        let mut w = Wire::new(7, QR | RD | RA, [1, 1, 0, 0]);
        w.question(&[b"v6", b"example"], 28);
        w.pointer(12).head(28, IN, 5).rdata(|w| {
            w.bytes(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        });
        let m = decoded(&w.0);
        assert_eq!(
            records(&m.answers),
            vec![("v6.example.", "AAAA", "2001:db8::1")]
        );
    }

    fn nxdomain() -> Vec<u8> {
        let mut w = Wire::new(9, QR | AA | RD | RA | 3, [1, 0, 1, 0]);
        w.question(&[b"nope", b"example", b"com"], A);
        let example_com = 12 + 5;
        w.pointer(example_com).head(6, IN, 300).rdata(|w| {
            w.labels(&[b"ns1"]).pointer(example_com);
            w.labels(&[b"hostmaster"]).pointer(example_com);
            w.u32(2024010101).u32(7200).u32(3600).u32(u32::MAX).u32(300);
        });
        w.0
    }

    #[test]
    fn nxdomain_with_soa() {
        let m = decoded(&nxdomain());
        assert_eq!(m.rcode, "NXDOMAIN");
        assert!(m.flags.aa && m.answers.is_empty());
        assert_eq!(
            records(&m.authority),
            vec![(
                "example.com.",
                "SOA",
                "ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 4294967295 300"
            )]
        );
    }

    #[test]
    fn the_same_bytes_share_one_decoding() {
        let mut recent = RecentDecodes::new();
        let packet = nxdomain();
        let first = recent.decode(&packet).unwrap();
        let twin = recent.decode(&packet).unwrap();
        assert!(Arc::ptr_eq(&first.message, &twin.message));
        // The question key is made once too: the twin's is the same allocation.
        let key = first.question.as_ref().unwrap();
        assert!(key.same(twin.question.as_ref().unwrap()));
        assert_eq!(Some(key), QuestionKey::of(&first.message).as_ref());
        assert_eq!(recent.shared, 1);
        // Another message decodes anew.
        let other = recent.decode(&txt_message()).unwrap();
        assert_eq!(other.message.questions[0].name, "t.example.");
        assert_ne!(other.question.as_ref(), Some(key));
        assert_eq!(recent.shared, 1);
        // Errors are not remembered: the same bad bytes fail again.
        assert!(recent.decode(&packet[..5]).is_err());
        assert!(recent.decode(&packet[..5]).is_err());
        assert_eq!(recent.shared, 1);
        // A message without a question has no key.
        assert!(
            recent
                .decode(&Wire::new(1, 0, [0, 0, 0, 0]).0)
                .unwrap()
                .question
                .is_none()
        );
    }

    /// A query for `h<n>.example.` A.
    fn numbered_query(n: usize, id: u16) -> Vec<u8> {
        let mut w = Wire::new(id, RD, [1, 0, 0, 0]);
        w.question(&[format!("h{n}").as_bytes(), b"example"], A);
        w.0
    }

    #[test]
    fn a_message_seen_with_another_id_is_that_decoding_with_its_id() {
        let mut recent = RecentDecodes::new();
        let packet = nxdomain();
        let first = recent.decode(&packet).unwrap();
        for id in [0u16, 1, 0xabcd, u16::MAX] {
            let mut again = packet.clone();
            again[..2].copy_from_slice(&id.to_be_bytes());
            let shared = recent.decode(&again).unwrap();
            // Exactly what decoding those bytes gives, the key included.
            assert_eq!(*shared.message, decode(&again).unwrap());
            assert_eq!(shared.message.id, id);
            assert!(
                shared
                    .question
                    .as_ref()
                    .unwrap()
                    .same(first.question.as_ref().unwrap())
            );
        }
        assert_eq!(recent.shared, 4);
        // The same for every message the decoder's tests know, whatever it
        // decodes to; a byte changed anywhere after the ID is another message.
        for bytes in [txt_message(), nxdomain(), numbered_query(7, 3)] {
            let mut recent = RecentDecodes::new();
            let first = recent.decode(&bytes).unwrap();
            let mut other_id = bytes.clone();
            other_id[0] ^= 0x5a;
            assert_eq!(
                *recent.decode(&other_id).unwrap().message,
                decode(&other_id).unwrap()
            );
            let mut changed = bytes.clone();
            *changed.last_mut().unwrap() ^= 1;
            if let Ok(decoded) = decode(&changed) {
                let via_cache = recent.decode(&changed).unwrap();
                assert_eq!(*via_cache.message, decoded);
                assert!(!Arc::ptr_eq(&via_cache.message, &first.message));
            }
        }
    }

    #[test]
    fn a_message_that_may_point_into_its_id_is_decoded_each_time() {
        // An answer whose owner name is a pointer to offset 0: the ID's bytes
        // (0x00: the root; 0x05: a label of 5 bytes, a different name).
        let mut w = Wire::new(0x0005, QR | RD, [1, 1, 0, 0]);
        w.question(&[b"q", b"example"], A);
        w.pointer(0).head(A, IN, 60).rdata(|w| {
            w.bytes(&[192, 0, 2, 1]);
        });
        let mut recent = RecentDecodes::new();
        let first = recent.decode(&w.0);
        assert_eq!(first.as_ref().map(|d| &*d.message), decode(&w.0).as_ref());
        for id in [0x0000_u16, 0x0105, 0x0305] {
            let mut again = w.0.clone();
            again[..2].copy_from_slice(&id.to_be_bytes());
            assert_eq!(
                recent.decode(&again).as_ref().map(|d| &*d.message),
                decode(&again).as_ref(),
                "id {id:#06x}"
            );
        }
        assert_eq!(recent.shared, 0);
        assert!(recent.current.is_empty());
    }

    #[test]
    fn decodings_are_kept_for_two_generations() {
        let generation = RecentDecodes::GENERATION;
        let mut recent = RecentDecodes::new();
        let first = recent.decode(&numbered_query(0, 1)).unwrap();
        let same_key = |recent: &mut RecentDecodes, id| {
            let decoded = recent.decode(&numbered_query(0, id)).unwrap();
            assert_eq!(decoded.message.id, id);
            decoded
                .question
                .unwrap()
                .same(first.question.as_ref().unwrap())
        };
        // A generation of others later it is still there (in the one before),
        // and finding it keeps it another generation.
        for n in 1..=generation {
            recent.decode(&numbered_query(n, 1)).unwrap();
        }
        assert!(same_key(&mut recent, 2));
        for n in generation + 1..=2 * generation {
            recent.decode(&numbered_query(n, 1)).unwrap();
        }
        assert!(same_key(&mut recent, 3));
        // Two whole generations of others without it: forgotten, decoded anew.
        for n in 2 * generation + 1..=4 * generation + 1 {
            recent.decode(&numbered_query(n, 1)).unwrap();
        }
        assert!(!same_key(&mut recent, 4));
        assert!(recent.current.len() <= generation && recent.previous.len() <= generation);
        // Long messages are not kept.
        let mut long = Wire::new(1, QR, [1, 1, 0, 0]);
        long.question(&[b"t", b"example"], 16);
        long.pointer(12).head(16, IN, 0).rdata(|w| {
            for _ in 0..3 {
                w.u8(200).bytes(&[b'x'; 200]);
            }
        });
        assert!(long.0.len() > RecentDecodes::MAX_KEPT_LEN);
        let shared = recent.shared;
        let a = recent.decode(&long.0).unwrap();
        let b = recent.decode(&long.0).unwrap();
        assert_eq!(a.message, b.message);
        assert!(!Arc::ptr_eq(&a.message, &b.message));
        assert_eq!(recent.shared, shared);
    }

    #[test]
    fn ipv4_text_is_what_std_writes() {
        // Every value in every position, and a spread of whole addresses.
        for value in 0..=255u8 {
            for position in 0..4 {
                let mut octets = [1, 20, 255, 0];
                octets[position] = value;
                assert_eq!(
                    ipv4_text(octets),
                    std::net::Ipv4Addr::from(octets).to_string()
                );
            }
        }
        let mut rng = Rng(20261126);
        for _ in 0..10_000 {
            let octets = (rng.next() as u32).to_be_bytes();
            assert_eq!(
                ipv4_text(octets),
                std::net::Ipv4Addr::from(octets).to_string()
            );
        }
    }

    fn txt_message() -> Vec<u8> {
        let mut w = Wire::new(3, QR, [1, 1, 0, 0]);
        w.question(&[b"t", b"example"], 16);
        w.pointer(12).head(16, IN, 0).rdata(|w| {
            for text in [
                &b"hello world"[..],
                b"q\"b\\s",
                b"\x1b[31mred",
                b"\xff\x00;()",
                b"",
            ] {
                w.u8(text.len() as u8).bytes(text);
            }
        });
        w.0
    }

    #[test]
    fn txt_strings_are_quoted_and_escaped() {
        let m = decoded(&txt_message());
        assert_eq!(
            m.answers[0].data,
            r#""hello world" "q\"b\\s" "\027[31mred" "\255\000;()" """#
        );
    }

    fn edns_query(opt_class: u16, opt_ttl: u32, rcode: u16) -> Vec<u8> {
        let mut w = Wire::new(5, RD | rcode, [1, 0, 0, 2]);
        w.question(&[b"example", b"org"], A);
        w.pointer(12).head(A, IN, 1).rdata(|w| {
            w.bytes(&[198, 51, 100, 7]);
        });
        w.u8(0).head(TYPE_OPT, opt_class, opt_ttl).rdata(|w| {
            // An EDNS option (COOKIE) that is not shown.
            w.u16(10).u16(8).bytes(&[1, 2, 3, 4, 5, 6, 7, 8]);
        });
        w.0
    }

    #[test]
    fn edns_is_not_an_additional_record() {
        let m = decoded(&edns_query(1232, 0x0000_8000, 0));
        assert_eq!(
            m.edns,
            Some(Edns {
                udp_size: 1232,
                version: 0,
                dnssec_ok: true,
            })
        );
        assert_eq!(
            records(&m.additional),
            vec![("example.org.", "A", "198.51.100.7")]
        );
        assert_eq!(m.rcode, "NOERROR");
        // Sizes under 512 are shown as sent (hickory would say 512); version 1.
        let m = decoded(&edns_query(100, 0x0001_0000, 0));
        assert_eq!(
            m.edns,
            Some(Edns {
                udp_size: 100,
                version: 1,
                dnssec_ok: false,
            })
        );
    }

    #[test]
    fn extended_rcode_combines_header_and_opt() {
        assert_eq!(decoded(&edns_query(512, 0x0100_0000, 0)).rcode, "BADVERS");
        assert_eq!(decoded(&edns_query(512, 0x0100_0000, 7)).rcode, "BADCOOKIE");
        assert_eq!(decoded(&edns_query(512, 0x0200_0000, 0)).rcode, "RCODE32");
        assert_eq!(
            decoded(&edns_query(512, 0xff00_0000, 15)).rcode,
            "RCODE4095"
        );
    }

    #[test]
    fn second_opt_record_stays_in_additional() {
        let mut bytes = edns_query(1232, 0, 0);
        bytes[11] = 3;
        bytes.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        let m = decoded(&bytes);
        assert_eq!(m.additional.len(), 2);
        assert_eq!(
            (
                m.additional[1].rtype.as_ref(),
                m.additional[1].class.as_ref()
            ),
            ("OPT", "CLASS1232")
        );
        assert_eq!(m.additional[1].data, "\\# 0");
    }

    #[test]
    fn unknown_type_and_class_use_rfc3597() {
        let mut w = Wire::new(1, QR, [1, 3, 0, 0]);
        w.name(&[b"x"]).u16(65534).u16(4660);
        w.pointer(12).head(65280, 4660, 10).rdata(|w| {
            w.bytes(&[1, 2, 3, 4]);
        });
        // A record whose data is the wrong size for its type.
        w.pointer(12).head(A, IN, 10).rdata(|w| {
            w.bytes(&[1, 2, 3, 4, 5]);
        });
        // hickory's private ANAME number is just a number here.
        w.pointer(12).head(65305, IN, 10).rdata(|w| {
            w.name(&[b"y"]);
        });
        let m = decoded(&w.0);
        assert_eq!(
            (m.questions[0].qtype.as_ref(), m.questions[0].class.as_ref()),
            ("TYPE65534", "CLASS4660")
        );
        assert_eq!(
            records(&m.answers),
            vec![
                ("x.", "TYPE65280", "\\# 4 01020304"),
                ("x.", "A", "\\# 5 0102030405"),
                ("x.", "TYPE65305", "\\# 3 017900"),
            ]
        );
        assert_eq!(m.answers[0].class, "CLASS4660");
    }

    #[test]
    fn update_with_empty_rdata() {
        let mut w = Wire::new(2, 5 << 11, [1, 0, 1, 0]);
        w.name(&[b"example"]).u16(6).u16(IN);
        w.labels(&[b"gone"]).pointer(12).head(255, 254, 0).u16(0);
        let m = decoded(&w.0);
        assert_eq!(m.opcode, "UPDATE");
        assert_eq!(
            (m.authority[0].rtype.as_ref(), m.authority[0].class.as_ref()),
            ("ANY", "NONE")
        );
        assert_eq!(m.authority[0].data, "\\# 0");
        let mut w = Wire::new(2, 3 << 11, [0, 0, 0, 0]);
        w.bytes(&[]);
        assert_eq!(decoded(&w.0).opcode, "3");
    }

    #[test]
    fn every_prefix_is_truncated() {
        for message in [
            cname_chain(),
            nxdomain(),
            txt_message(),
            edns_query(1232, 0, 0),
        ] {
            for len in 0..message.len() {
                match decode(&message[..len]) {
                    Err(DecodeError::Truncated(_)) => {}
                    other => panic!("{len} of {} bytes: {other:?}", message.len()),
                }
            }
        }
        let error = decode(&cname_chain()[..40])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("truncated message: answer 1 of 3"),
            "{error}"
        );
    }

    #[test]
    fn pointer_loops_are_errors() {
        // The question name points at itself.
        let mut w = Wire::new(1, 0, [1, 0, 0, 0]);
        w.pointer(12).u16(A).u16(IN);
        assert!(matches!(decode(&w.0), Err(DecodeError::PointerLoop(_))));
        // A label, then a pointer back to the start of the same name.
        let mut w = Wire::new(1, 0, [1, 0, 0, 0]);
        w.labels(&[b"a"]).pointer(12).u16(A).u16(IN);
        assert!(matches!(decode(&w.0), Err(DecodeError::PointerLoop(_))));
        // Two names pointing at each other: the first pointer goes forward.
        let mut w = Wire::new(1, QR, [1, 1, 0, 0]);
        w.labels(&[b"a"]).pointer(19).u16(A).u16(IN);
        w.labels(&[b"b"]).pointer(12).head(A, IN, 0).rdata(|w| {
            w.bytes(&[1, 1, 1, 1]);
        });
        let error = decode(&w.0).map(|_| ()).unwrap_err();
        assert!(matches!(error, DecodeError::PointerLoop(_)), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("compression pointer loop: question 1 of 1")
        );
    }

    /// A name at the end of `hops` pointers, each to the one before.
    fn pointer_chain(hops: u16) -> Vec<u8> {
        let mut w = Wire::new(1, QR, [1, 2, 0, 0]);
        w.question(&[b"x"], A);
        let mut last = 12;
        w.pointer(12).head(65280, IN, 0).rdata(|w| {
            for _ in 0..hops {
                let here = w.pos();
                w.pointer(last);
                last = here;
            }
        });
        w.pointer(last).head(A, IN, 0).rdata(|w| {
            w.bytes(&[1, 2, 3, 4]);
        });
        w.0
    }

    #[test]
    fn long_pointer_chains_are_refused_before_hickory_recurses() {
        let short = decoded(&pointer_chain(100));
        assert_eq!(short.answers[1].name, "x.");
        // hickory 0.25 would recurse ~20 000 deep; on a small stack that aborts.
        let long = pointer_chain(20_000);
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || decode(&long))
            .map(|thread| thread.join());
        assert!(matches!(result, Ok(Ok(Err(DecodeError::PointerChain)))));
    }

    #[test]
    fn the_pointer_count_shortcut_agrees_with_the_full_check() {
        // Around the limit, where the shortcut stops applying: both checks give the
        // same verdict, and the limit itself is where the verdict changes.
        let mut verdicts = Vec::new();
        for hops in 110..150 {
            let bytes = pointer_chain(hops);
            let shortcut = check_pointer_chains(&bytes);
            assert_eq!(shortcut, check_pointer_chains_fully(&bytes), "{hops} hops");
            verdicts.push(shortcut.is_ok());
        }
        assert!(verdicts.first() == Some(&true) && verdicts.last() == Some(&false));
    }

    #[test]
    fn labels_are_escaped() {
        let mut w = Wire::new(1, 0, [1, 0, 0, 0]);
        w.question(
            &[
                b"a.b",
                b"sp ace",
                b"\x1b\x00\xff\x7f",
                b"q\"(;)\\",
                b"WwW",
                b"COM",
            ],
            A,
        );
        let m = decoded(&w.0);
        let name = r#"a\.b.sp\032ace.\027\000\255\127.q\"\(\;\)\\.WwW.COM."#;
        assert_eq!(m.questions[0].name, name);
        assert_eq!(
            question_key(&m).map(|k| k.0),
            Some(name.to_ascii_lowercase())
        );
        // hickory's own Display is not used: it escapes in octal (ESC as \033).
        let mut w = Wire::new(1, 0, [1, 0, 0, 0]);
        w.question(&[], A);
        assert_eq!(decoded(&w.0).questions[0].name, ".");
    }

    fn formats_message() -> Vec<u8> {
        let mut w = Wire::new(4, QR, [1, 11, 0, 0]);
        w.question(&[b"example"], 255);
        let svcb_params = |w: &mut Wire| {
            w.u16(1).u16(6).bytes(b"\x02h2\x02h3");
            w.u16(3).u16(2).u16(443);
            w.u16(4).u16(4).bytes(&[192, 0, 2, 1]);
        };
        w.pointer(12).head(15, IN, 1).rdata(|w| {
            w.u16(10).labels(&[b"mx"]).pointer(12);
        });
        w.pointer(12).head(33, IN, 1).rdata(|w| {
            w.u16(0).u16(5).u16(5060).name(&[b"sip", b"example"]);
        });
        w.pointer(12).head(257, IN, 1).rdata(|w| {
            w.u8(0).u8(5).bytes(b"issue").bytes(b"letsencrypt.org");
        });
        w.pointer(12).head(64, IN, 1).rdata(|w| {
            w.u16(1).u8(0);
            svcb_params(w);
        });
        w.pointer(12).head(65, IN, 1).rdata(|w| {
            w.u16(1).name(&[b"svc", b"example"]);
            w.u16(1).u16(4).bytes(b"\x03a,b");
            w.u16(2).u16(0);
        });
        // A port of four bytes: hickory would read two and drop two.
        w.pointer(12).head(65, IN, 1).rdata(|w| {
            w.u16(1).u8(0).u16(3).u16(4).u32(443);
        });
        w.pointer(12).head(35, IN, 1).rdata(|w| {
            w.u16(100).u16(10).bytes(b"\x01S\x07SIP+D2U\x00");
            w.name(&[b"_sip", b"_udp", b"example"]);
        });
        w.pointer(12).head(13, IN, 1).rdata(|w| {
            w.bytes(b"\x05INTEL\x05Linux");
        });
        w.pointer(12).head(TYPE_DNAME, IN, 1).rdata(|w| {
            w.name(&[b"other", b"example"]);
        });
        w.pointer(12).head(44, IN, 1).rdata(|w| {
            w.u8(4).u8(2).bytes(&[0xab; 4]);
        });
        w.pointer(12).head(43, IN, 1).rdata(|w| {
            w.u16(12345).u8(13).u8(2).bytes(&[0xcd; 4]);
        });
        w.0
    }

    #[test]
    fn record_data_formats() {
        let m = decoded(&formats_message());
        assert_eq!(m.questions[0].qtype, "ANY");
        let data: Vec<(&str, &str)> = m
            .answers
            .iter()
            .map(|r| (r.rtype.as_ref(), r.data.as_str()))
            .collect();
        assert_eq!(
            data,
            vec![
                ("MX", "10 mx.example."),
                ("SRV", "0 5 5060 sip.example."),
                ("CAA", "0 issue \"letsencrypt.org\""),
                ("SVCB", "1 . alpn=\"h2,h3\" port=443 ipv4hint=192.0.2.1"),
                ("HTTPS", "1 svc.example. alpn=\"a\\\\,b\" no-default-alpn"),
                ("HTTPS", "\\# 11 00010000030004000001BB"),
                ("NAPTR", "100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example."),
                ("HINFO", "\"INTEL\" \"Linux\""),
                ("DNAME", "other.example."),
                ("SSHFP", "4 2 ABABABAB"),
                // hickory decodes DNSSEC types only with its dnssec features.
                ("DS", "\\# 8 30390D02CDCDCDCD"),
            ]
        );
    }

    #[test]
    fn names_and_numbers_round_trip() {
        for code in 0..=u16::MAX {
            assert_eq!(type_code(&type_name(code)), Some(code));
            assert_eq!(class_code(&class_name(code)), Some(code));
        }
        for code in 0..=0x0fff {
            assert_eq!(rcode_code(&rcode_name(code)), Some(code));
        }
        for code in 0..=0x0f {
            assert_eq!(opcode_code(&opcode_name(code)), Some(code));
        }
        assert_eq!(type_name(65534), "TYPE65534");
        assert_eq!(type_code("TYPE65534"), Some(65534));
        assert_eq!(type_code("https"), Some(65));
        assert_eq!(class_name(4660), "CLASS4660");
        assert_eq!(rcode_name(24), "RCODE24");
        assert_eq!(rcode_code("RCODE23"), Some(23));
        assert_eq!(opcode_name(6), "DSO");
        for bad in ["", "TYPE", "TYPE+1", "TYPE65536", "XYZZY", "A "] {
            assert_eq!(type_code(bad), None, "{bad:?}");
        }
        assert_eq!(rcode_code("RCODE4096"), None);
        assert_eq!(opcode_code("16"), None);
    }

    use crate::test_rng::Rng;

    fn printable(text: &str) -> bool {
        text.chars().all(|c| c >= ' ' && c != '\x7f')
    }

    #[test]
    fn mutated_messages_never_panic_and_print_safely() {
        let seeds = [
            cname_chain(),
            nxdomain(),
            txt_message(),
            edns_query(1232, 0x0000_8000, 0),
            formats_message(),
            pointer_chain(3),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut decoded_ok = 0;
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            mutate(&mut bytes, &mut rng);
            let Ok(m) = decode(&bytes) else { continue };
            decoded_ok += 1;
            assert!(opcode_code(&m.opcode).map(opcode_name) == Some(m.opcode.clone()));
            assert!(rcode_code(&m.rcode).map(rcode_name) == Some(m.rcode.clone()));
            for q in &m.questions {
                assert!(printable(&q.name), "{:?}", q.name);
                assert_eq!(type_code(&q.qtype).map(type_name), Some(q.qtype.clone()));
                assert_eq!(class_code(&q.class).map(class_name), Some(q.class.clone()));
            }
            for r in m.answers.iter().chain(&m.authority).chain(&m.additional) {
                assert!(printable(&r.name), "{:?}", r.name);
                assert!(printable(&r.data), "{:?}", r.data);
                assert_eq!(type_code(&r.rtype).map(type_name), Some(r.rtype.clone()));
                assert_eq!(class_code(&r.class).map(class_name), Some(r.class.clone()));
            }
        }
        // The mutations must leave enough valid messages for the checks to mean much.
        assert!(decoded_ok > 2_000, "{decoded_ok}");
    }

    /// One to five random edits: a byte changed (to anything, a pointer, a label
    /// length), the message cut short, a byte inserted, a run of bytes copied over.
    fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(6) {
                0 => bytes[at] = rng.next() as u8,
                1 => bytes[at] = 0xc0 | (rng.next() as u8 & 0x3f),
                2 => bytes[at] = rng.below(64) as u8,
                3 => bytes.truncate(at),
                4 => bytes.insert(at, rng.next() as u8),
                _ => {
                    let from = rng.below(bytes.len());
                    let len = rng.below(16).min(bytes.len() - from.max(at));
                    bytes.copy_within(from..from + len, at);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
    }

    /// A message whose names point back and forth: labels escaped, a name that
    /// is a pointer to a pointer, MX, CNAME, PTR and TXT data.
    fn pointer_message() -> Vec<u8> {
        let mut w = Wire::new(9, QR, [1, 5, 0, 0]);
        w.question(&[b"Www", b"ex.a mple", b"com"], A);
        let (mut edge, mut mx) = (0, 0);
        w.pointer(12).head(TYPE_CNAME, IN, 60).rdata(|w| {
            edge = w.pos();
            w.labels(&[b"edge", b"cdn"]).pointer(16);
        });
        w.pointer(edge).head(TYPE_MX, IN, 60).rdata(|w| {
            mx = w.pos() + 2;
            w.u16(5).labels(&[b"mx"]).pointer(edge);
        });
        w.pointer(mx).head(TYPE_PTR, IN, 60).rdata(|w| {
            w.pointer(mx);
        });
        w.pointer(12).head(TYPE_TXT, IN, 60).rdata(|w| {
            w.bytes(b"\x03a\"b\x00\x02\xff;");
        });
        w.name(&[b"x"]).head(TYPE_NS, IN, 60).rdata(|w| {
            w.name(&[]);
        });
        w.0
    }

    /// Every name and record the fast readers read themselves reads the same
    /// through hickory, on messages with pointers, escapes and random damage.
    #[test]
    fn fast_readers_agree_with_hickory() {
        let seeds = [
            pointer_message(),
            cname_chain(),
            nxdomain(),
            txt_message(),
            formats_message(),
            pointer_chain(3),
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut fast, mut left_to_hickory) = (0, 0);
        for round in 0..4_000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            if round >= seeds.len() {
                mutate(&mut bytes, &mut rng);
            }
            let checked = check_fast_readers(&bytes).unwrap_or_else(|why| panic!("{why}"));
            fast += checked.fast;
            left_to_hickory += checked.left_to_hickory;
        }
        // Enough agreement for the check to mean much, and the fast path taken for
        // nearly every name hickory reads.
        assert!(fast > 200_000, "{fast}");
        assert!(left_to_hickory * 100 < fast, "{left_to_hickory} of {fast}");
    }

    /// Names near the 255-byte limit are left to hickory, which refuses the ones
    /// past it with its own error.
    #[test]
    fn long_names_are_left_to_hickory() {
        for labels in [3, 4] {
            for last in [56, 57, 58, 59, 60, 63] {
                let mut wire = Vec::new();
                for i in 0..labels {
                    let len = if i + 1 == labels { last } else { 63 };
                    wire.push(len as u8);
                    wire.extend(std::iter::repeat_n(b'a', len));
                }
                wire.push(0);
                let fast = fast_name(&wire, 0);
                let hickory = hickory_name(&wire, 0);
                if wire.len() - 1 > FAST_NAME_MAX {
                    assert_eq!(fast, None);
                } else {
                    assert_eq!(fast.as_ref(), hickory.as_ref().ok());
                }
                let mut decoder = BinDecoder::new(&wire);
                let read = read_name(&wire, &mut decoder).map(|text| (text, decoder.index()));
                assert_eq!(
                    read.map_err(|e| e.to_string()),
                    hickory.map_err(|e| e.to_string())
                );
            }
        }
        // 4 × 64 bytes: past hickory's limit, refused.
        let mut wire = [[63u8; 64]; 4].concat();
        wire.push(0);
        assert!(read_name(&wire, &mut BinDecoder::new(&wire)).is_err());
    }
}
