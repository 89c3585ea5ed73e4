//! Just enough of the kernel's BTF (Documentation/bpf/btf.rst) to find where a
//! struct member lives: the probes read `task_struct.group_leader->comm` by offset,
//! and the offsets differ from kernel to kernel. (aya keeps its BTF type lookup
//! private; this is the one query the recorder needs.)

use std::collections::HashMap;

const MAGIC: u16 = 0xeb9f;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF data is malformed: {0}")]
    Malformed(&'static str),
    #[error("struct {0} is not in the kernel's BTF")]
    NoStruct(String),
    #[error("struct {0} has no member {1}")]
    NoMember(String, String),
}

/// Byte offsets of the named members of the named struct.
pub fn member_offsets(btf: &[u8], structure: &str, members: &[&str]) -> Result<Vec<u32>, BtfError> {
    let word = |at: usize| -> Result<u32, BtfError> {
        let bytes = btf
            .get(at..at + 4)
            .ok_or(BtfError::Malformed("truncated"))?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    };
    if btf.len() < 24 || u16::from_le_bytes([btf[0], btf[1]]) != MAGIC {
        return Err(BtfError::Malformed("no little-endian BTF header"));
    }
    let header_len = word(4)? as usize;
    let (type_off, type_len) = (word(8)? as usize, word(12)? as usize);
    let (str_off, str_len) = (word(16)? as usize, word(20)? as usize);
    let types_start = header_len + type_off;
    let types_end = types_start + type_len;
    let strings = btf
        .get(header_len + str_off..header_len + str_off + str_len)
        .ok_or(BtfError::Malformed("string section out of bounds"))?;
    let name_at = |offset: u32| -> &[u8] {
        let rest = strings.get(offset as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    };
    if types_end > btf.len() {
        return Err(BtfError::Malformed("type section out of bounds"));
    }
    let mut at = types_start;
    while at + 12 <= types_end {
        let (name_off, info) = (word(at)?, word(at + 4)?);
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let kind_flag = info >> 31 == 1;
        let data = at + 12;
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0,
            _ => return Err(BtfError::Malformed("unknown type kind")),
        };
        if kind == 4 && name_at(name_off) == structure.as_bytes() {
            let mut found = HashMap::new();
            for index in 0..vlen {
                let member = data + 12 * index;
                let offset = word(member + 8)?;
                // With kind_flag the low 24 bits are the bit offset (bitfields).
                let bits = if kind_flag {
                    offset & 0x00ff_ffff
                } else {
                    offset
                };
                found.insert(name_at(word(member)?), bits / 8);
            }
            return members
                .iter()
                .map(|member| {
                    found.get(member.as_bytes()).copied().ok_or_else(|| {
                        BtfError::NoMember(structure.to_owned(), (*member).to_owned())
                    })
                })
                .collect();
        }
        at = data + extra;
    }
    Err(BtfError::NoStruct(structure.to_owned()))
}

/// `task_struct`'s `group_leader` and `comm` offsets in the running kernel.
pub fn task_offsets() -> Result<(u32, u32), BtfError> {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux")
        .map_err(|_| BtfError::Malformed("cannot read /sys/kernel/btf/vmlinux"))?;
    match member_offsets(&btf, "task_struct", &["group_leader", "comm"])?.as_slice() {
        [leader, comm] => Ok((*leader, *comm)),
        _ => Err(BtfError::Malformed("member count")),
    }
}

/// Offsets of `task_struct.nsproxy`, `nsproxy.net_ns` and `net.ns.inum`.
pub fn netns_offsets() -> Result<[u32; 3], BtfError> {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux")
        .map_err(|_| BtfError::Malformed("cannot read /sys/kernel/btf/vmlinux"))?;
    let one = |structure: &str, member: &str| -> Result<u32, BtfError> {
        member_offsets(&btf, structure, &[member])?
            .first()
            .copied()
            .ok_or(BtfError::Malformed("member count"))
    };
    Ok([
        one("task_struct", "nsproxy")?,
        one("nsproxy", "net_ns")?,
        one("net", "ns")? + one("ns_common", "inum")?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with one INT and `struct s { int a; int b; }` at offsets 0 and 32 bits.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0";
        let mut types = Vec::new();
        let push = |types: &mut Vec<u8>, words: &[u32]| {
            for word in words {
                types.extend_from_slice(&word.to_le_bytes());
            }
        };
        push(&mut types, &[1, 1 << 24, 4, 32]); // int: name "int", INT, size 4, 32 bits
        push(&mut types, &[5, (4 << 24) | 2, 8]); // struct s, 2 members, size 8
        push(&mut types, &[7, 1, 0]); // a: type 1, bit 0
        push(&mut types, &[9, 1, 32]); // b: type 1, bit 32
        let mut blob = Vec::new();
        blob.extend_from_slice(&MAGIC.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for word in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            blob.extend_from_slice(&word.to_le_bytes());
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(strings);
        blob
    }

    #[test]
    fn finds_member_offsets() {
        assert_eq!(member_offsets(&blob(), "s", &["b", "a"]), Ok(vec![4, 0]));
        assert_eq!(
            member_offsets(&blob(), "s", &["c"]),
            Err(BtfError::NoMember("s".into(), "c".into()))
        );
        assert_eq!(
            member_offsets(&blob(), "t", &["a"]),
            Err(BtfError::NoStruct("t".into()))
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let blob = blob();
        for cut in 0..blob.len() {
            let _ = member_offsets(&blob[..cut], "s", &["a"]);
        }
        assert!(member_offsets(b"garbage", "s", &["a"]).is_err());
    }

    #[test]
    fn the_running_kernel_has_task_struct() {
        if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            let (leader, comm) = task_offsets().unwrap();
            assert!(leader > 0 && comm > 0 && leader != comm);
        }
    }
}
