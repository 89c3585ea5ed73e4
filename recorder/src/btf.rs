//! Just enough of the kernel's BTF (Documentation/bpf/btf.rst) to find where a
//! struct member lives: the probes read the process's name, its network namespace
//! and its executable's path (`task_struct.group_leader->comm`, `mm->exe_file`, ...)
//! by offset, and the offsets differ from kernel to kernel. (aya keeps its BTF type
//! lookup private; this is the one query the recorder needs.)

use std::collections::HashMap;

const MAGIC: u16 = 0xeb9f;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF data is malformed: {0}")]
    Malformed(&'static str),
    #[error("struct {0} is not in the kernel's BTF")]
    NoStruct(String),
    #[error("struct {0} has no member {1}")]
    NoMember(String, String),
}

/// The structs and unions of a BTF blob, enough to find where a (nested)
/// member lives.
pub struct Btf {
    /// Type id → the type, or `None` for kinds other than struct and union
    /// (id 0 is `void`).
    types: Vec<Option<Composite>>,
    /// Modifiers and typedefs (CONST, VOLATILE, TYPEDEF, ...): id → the type they
    /// stand for, so that a member's type can be followed to its struct.
    aliases: HashMap<u32, u32>,
    by_name: HashMap<String, u32>,
}

struct Composite {
    members: Vec<Member>,
}

struct Member {
    name: String,
    type_id: u32,
    /// In bytes from the start of the enclosing struct or union.
    offset: u32,
}

impl Btf {
    /// The running kernel's BTF.
    pub fn kernel() -> Result<Self, BtfError> {
        let blob = std::fs::read("/sys/kernel/btf/vmlinux")
            .map_err(|_| BtfError::Malformed("cannot read /sys/kernel/btf/vmlinux"))?;
        Self::parse(&blob)
    }

    pub fn parse(btf: &[u8]) -> Result<Self, BtfError> {
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
        let name_at = |offset: u32| -> String {
            let rest = strings.get(offset as usize..).unwrap_or_default();
            let name = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
            String::from_utf8_lossy(name).into_owned()
        };
        if types_end > btf.len() {
            return Err(BtfError::Malformed("type section out of bounds"));
        }
        let mut parsed = Self {
            types: vec![None],
            aliases: HashMap::new(),
            by_name: HashMap::new(),
        };
        let mut at = types_start;
        while at + 12 <= types_end {
            let id = parsed.types.len() as u32;
            let (name_off, info, size_or_type) = (word(at)?, word(at + 4)?, word(at + 8)?);
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
            let mut composite = None;
            match kind {
                4 | 5 => {
                    let mut members = Vec::with_capacity(vlen);
                    for index in 0..vlen {
                        let member = data + 12 * index;
                        let offset = word(member + 8)?;
                        // With kind_flag the low 24 bits are the bit offset (bitfields).
                        let bits = if kind_flag {
                            offset & 0x00ff_ffff
                        } else {
                            offset
                        };
                        members.push(Member {
                            name: name_at(word(member)?),
                            type_id: word(member + 4)?,
                            offset: bits / 8,
                        });
                    }
                    let name = name_at(name_off);
                    // The first struct of a name wins (the kernel's own comes first).
                    if kind == 4 && !name.is_empty() {
                        parsed.by_name.entry(name).or_insert(id);
                    }
                    composite = Some(Composite { members });
                }
                // TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
                8..=11 | 18 => {
                    parsed.aliases.insert(id, size_or_type);
                }
                _ => {}
            }
            parsed.types.push(composite);
            at = data + extra;
        }
        Ok(parsed)
    }

    /// The byte offset of `path` (`"f_path.dentry"`: members, dot-separated) in
    /// struct `structure`, looking through anonymous structs and unions as C does.
    pub fn offset(&self, structure: &str, path: &str) -> Result<u32, BtfError> {
        let no_member = || BtfError::NoMember(structure.to_owned(), path.to_owned());
        let mut type_id = *self
            .by_name
            .get(structure)
            .ok_or_else(|| BtfError::NoStruct(structure.to_owned()))?;
        let mut offset = 0;
        for name in path.split('.') {
            let (member_offset, member_type) = self.find(type_id, name, 0).ok_or_else(no_member)?;
            offset += member_offset;
            type_id = member_type;
        }
        Ok(offset)
    }

    /// `name` in the struct or union `type_id` (followed through typedefs and
    /// modifiers), or in one of its anonymous members: (offset, its type).
    fn find(&self, type_id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        // A bound against a malformed blob's cycles.
        if depth > 16 {
            return None;
        }
        let composite = self.composite(type_id)?;
        if let Some(member) = composite.members.iter().find(|m| m.name == name) {
            return Some((member.offset, member.type_id));
        }
        composite
            .members
            .iter()
            .filter(|m| m.name.is_empty())
            .find_map(|m| {
                self.find(m.type_id, name, depth + 1)
                    .map(|(offset, found)| (m.offset + offset, found))
            })
    }

    fn composite(&self, mut type_id: u32) -> Option<&Composite> {
        for _ in 0..16 {
            match self.aliases.get(&type_id) {
                Some(&target) => type_id = target,
                None => return self.types.get(type_id as usize)?.as_ref(),
            }
        }
        None
    }
}

/// `task_struct`'s `group_leader` and `comm` offsets in the running kernel.
pub fn task_offsets(btf: &Btf) -> Result<(u32, u32), BtfError> {
    Ok((
        btf.offset("task_struct", "group_leader")?,
        btf.offset("task_struct", "comm")?,
    ))
}

/// Offsets of `task_struct.nsproxy`, `nsproxy.net_ns` and `net.ns.inum`.
pub fn netns_offsets(btf: &Btf) -> Result<[u32; 3], BtfError> {
    Ok([
        btf.offset("task_struct", "nsproxy")?,
        btf.offset("nsproxy", "net_ns")?,
        btf.offset("net", "ns.inum")?,
    ])
}

/// The fields the exec tracepoint walks from a task to its executable's path,
/// in the order of probes/ebpf/src/exec.rs `field`.
pub fn exe_offsets(btf: &Btf) -> Result<[u32; 11], BtfError> {
    Ok([
        btf.offset("task_struct", "mm")?,
        btf.offset("mm_struct", "exe_file")?,
        btf.offset("file", "f_path.mnt")?,
        btf.offset("file", "f_path.dentry")?,
        btf.offset("dentry", "d_parent")?,
        btf.offset("dentry", "d_name.name")?,
        btf.offset("vfsmount", "mnt_root")?,
        btf.offset("mount", "mnt")?,
        btf.offset("mount", "mnt_parent")?,
        btf.offset("mount", "mnt_mountpoint")?,
        btf.offset("task_struct", "tgid")?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with one INT, `struct s { int a; int b; }` at offsets 0 and 32
    /// bits, and `struct t { int y; union { int x; }; }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0t\0x\0y\0";
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
        push(&mut types, &[0, (5 << 24) | 1, 4]); // 3: an anonymous union, 1 member
        push(&mut types, &[13, 1, 0]); // x: type 1, bit 0
        push(&mut types, &[11, (4 << 24) | 2, 8]); // 4: struct t, 2 members
        push(&mut types, &[15, 1, 0]); // y: type 1, bit 0
        push(&mut types, &[0, 3, 32]); // (anonymous): type 3, bit 32
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

    fn member_offsets(
        blob: &[u8],
        structure: &str,
        members: &[&str],
    ) -> Result<Vec<u32>, BtfError> {
        let btf = Btf::parse(blob)?;
        members
            .iter()
            .map(|member| btf.offset(structure, member))
            .collect()
    }

    #[test]
    fn finds_member_offsets() {
        assert_eq!(member_offsets(&blob(), "s", &["b", "a"]), Ok(vec![4, 0]));
        assert_eq!(
            member_offsets(&blob(), "s", &["c"]),
            Err(BtfError::NoMember("s".into(), "c".into()))
        );
        assert_eq!(
            member_offsets(&blob(), "u", &["a"]),
            Err(BtfError::NoStruct("u".into()))
        );
        // Through the anonymous union, as C names it.
        assert_eq!(member_offsets(&blob(), "t", &["x", "y"]), Ok(vec![4, 0]));
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
    fn the_running_kernel_has_the_fields_the_probes_read() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            return;
        }
        let btf = Btf::kernel().unwrap();
        let (leader, comm) = task_offsets(&btf).unwrap();
        assert!(leader > 0 && comm > 0 && leader != comm);
        netns_offsets(&btf).unwrap();
        let exe = exe_offsets(&btf).unwrap();
        // Members inside anonymous structs and unions: mm_struct.exe_file,
        // file.f_path, dentry.d_name.
        assert!(exe[1] > 0 && exe[3] == exe[2] + 8, "{exe:?}");
        // `struct path` is { mnt, dentry }; `qstr.name` follows its hash_len.
        assert_eq!(btf.offset("path", "dentry").unwrap(), 8);
        assert_eq!(btf.offset("qstr", "name").unwrap(), 8);
    }
}
