//! Which libc files to put the lookup uprobes on. Found, not assumed:
//!
//! - the host's libc, as the dynamic loader would find `libc.so.6`: every entry
//!   for it in `/etc/ld.so.cache` (what aya's `UProbe::attach` reads for a library
//!   name), and failing that the one this process runs with;
//! - every other libc file that a running process has mapped (containers, chroots,
//!   a libc upgraded under a running daemon, `LD_LIBRARY_PATH`): found in
//!   `/proc/PID/maps` and opened through `/proc/PID/map_files/…` (the very file
//!   mapped, even when deleted or on overlayfs) or `/proc/PID/root/…`.
//!
//! Files are told apart by (device, inode): a uprobe belongs to an inode, so one
//! attachment covers every process that maps that file. Programs linked
//! statically and musl programs have no glibc resolver to probe; they send their
//! own DNS packets, which the packet programs see.
//!
//! The scan is bounded in processes, bytes read and time. Processes started later
//! with a libc file nobody had mapped at start-up are not covered (the uprobes
//! cannot be attached once the recorder has dropped its capabilities).

use std::{
    fs::{self, File},
    io::Read,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

const LD_SO_CACHE: &str = "/etc/ld.so.cache";
/// Most processes whose maps are read.
const MAX_PROCESSES: usize = 32_768;
/// Most bytes of one `/proc/PID/maps` read.
const MAX_MAPS_BYTES: u64 = 4 << 20;
/// The scan stops after this long, with what it found.
const SCAN_BUDGET: Duration = Duration::from_secs(3);
/// Most distinct libc files probed.
pub const MAX_FILES: usize = 64;

/// How a libc file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// An `/etc/ld.so.cache` entry for `libc.so.6`: the host's libc.
    LdSoCache,
    /// Mapped by the recorder itself (when the cache has no entry).
    Recorder,
    /// Mapped by this process (the first one seen).
    Process(u32),
}

/// One libc file to probe.
#[derive(Debug, Clone)]
pub struct LibcFile {
    /// The path as the processes that use it see it.
    pub path: PathBuf,
    /// Where the recorder opens it (and attaches): `path` itself for the host's,
    /// `/proc/PID/map_files/…` or `/proc/PID/root/…` for a process's.
    pub open_path: PathBuf,
    pub found: Found,
    pub dev: u64,
    pub ino: u64,
    /// Processes seen mapping this file during the scan.
    pub processes: usize,
}

impl LibcFile {
    /// A short description for logs and `dnsq-recorder check`.
    pub fn describe(&self) -> String {
        let how = match self.found {
            Found::LdSoCache => "host, ld.so.cache".to_owned(),
            Found::Recorder => "host, the recorder's own".to_owned(),
            Found::Process(pid) => format!("mapped by pid {pid}"),
        };
        let users = match self.processes {
            0 => String::new(),
            1 => ", 1 process".to_owned(),
            n => format!(", {n} processes"),
        };
        format!("{} ({how}{users})", self.path.display())
    }
}

/// Whether a file name is glibc's: `libc.so.6` (glibc 2.34 on), `libc-2.31.so`
/// (older), or a `libc.so.6` left behind by an upgrade (`… (deleted)` stripped
/// by the caller).
pub fn is_libc_name(name: &[u8]) -> bool {
    name == b"libc.so.6"
        || (name.starts_with(b"libc-") && name.ends_with(b".so") && name.len() > b"libc-.so".len())
}

/// Every libc file found, the host's first, each (device, inode) once.
pub fn find() -> Vec<LibcFile> {
    let mut files: Vec<LibcFile> = Vec::new();
    let add = |file: LibcFile, files: &mut Vec<LibcFile>| {
        if let Some(known) = files
            .iter_mut()
            .find(|f| (f.dev, f.ino) == (file.dev, file.ino))
        {
            known.processes += file.processes;
            return;
        }
        if files.len() < MAX_FILES {
            files.push(file);
        }
    };
    match fs::read(LD_SO_CACHE) {
        Ok(data) => {
            for path in libc_entries(&parse_ld_so_cache(&data)) {
                match fs::metadata(&path) {
                    Ok(meta) => add(
                        LibcFile {
                            open_path: path.clone(),
                            path,
                            found: Found::LdSoCache,
                            dev: meta.dev(),
                            ino: meta.ino(),
                            processes: 0,
                        },
                        &mut files,
                    ),
                    Err(error) => {
                        tracing::debug!(%error, path = %path.display(), "ld.so.cache names a libc that is not there");
                    }
                }
            }
        }
        Err(error) => tracing::debug!(%error, "no {LD_SO_CACHE}"),
    }
    let mapped = scan_processes();
    if files.is_empty() {
        // No cache (or no libc in it): the libc the recorder itself runs with.
        let own = std::process::id();
        if let Some(file) = mapped.iter().find(|file| file.found == Found::Process(own)) {
            add(
                LibcFile {
                    found: Found::Recorder,
                    open_path: file.path.clone(),
                    processes: 0,
                    ..file.clone()
                },
                &mut files,
            );
        }
    }
    for file in mapped {
        add(file, &mut files);
    }
    files
}

/// `(key, value)` of each `/etc/ld.so.cache` entry: the soname and the path. The
/// new format (glibc 2.32 on writes only it) and the old one are read; anything
/// else gives nothing.
pub fn parse_ld_so_cache(data: &[u8]) -> Vec<(Vec<u8>, PathBuf)> {
    const NEW: &[u8] = b"glibc-ld.so.cache1.1";
    const OLD: &[u8] = b"ld.so-1.7.0\0";
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
    };
    let string_at = |at: usize| -> Option<Vec<u8>> {
        let rest = data.get(at..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(rest[..end].to_vec())
    };
    // (entries offset, entry size, count, strings base)
    let layout = if data.starts_with(NEW) {
        let count = u32_at(NEW.len()).map(|n| n as usize);
        // magic+version, nlibs, len_strings, flags+padding, extension offset, 3 unused.
        count.map(|count| (NEW.len() + 4 * 7, 24, count, 0))
    } else if data.starts_with(OLD) {
        u32_at(OLD.len()).map(|count| {
            let entries = OLD.len() + 4;
            let count = count as usize;
            (entries, 12, count, entries + count.saturating_mul(12))
        })
    } else {
        None
    };
    let Some((entries, size, count, strings)) = layout else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // The count is the file's word: bound it by what the file can hold.
    for index in 0..count.min(data.len() / size) {
        let at = entries + index * size;
        let (Some(key), Some(value)) = (u32_at(at + 4), u32_at(at + 8)) else {
            break;
        };
        let (Some(key), Some(value)) = (
            string_at(strings + key as usize),
            string_at(strings + value as usize),
        ) else {
            continue;
        };
        use std::os::unix::ffi::OsStringExt;
        out.push((key, PathBuf::from(std::ffi::OsString::from_vec(value))));
    }
    out
}

/// The paths of the libc entries of a parsed cache, each once, in cache order.
pub fn libc_entries(entries: &[(Vec<u8>, PathBuf)]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for (key, path) in entries {
        if is_libc_name(key) && !paths.contains(path) {
            paths.push(path.clone());
        }
    }
    paths
}

/// A libc mapping in one line of `/proc/PID/maps`: (address range, path,
/// deleted).
pub fn libc_in_maps_line(line: &[u8]) -> Option<(&[u8], &[u8], bool)> {
    // "7fd33bf38000-7fd33bf5e000 r--p 00000000 fe:00 326279    /usr/lib/…/libc.so.6"
    let mut rest = line;
    let mut fields = [&b""[..]; 5];
    for field in &mut fields {
        rest = rest.trim_ascii_start();
        let end = rest.iter().position(u8::is_ascii_whitespace)?;
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let path = rest.trim_ascii();
    if !path.starts_with(b"/") {
        return None;
    }
    let (path, deleted) = match path.strip_suffix(b" (deleted)") {
        Some(path) => (path, true),
        None => (path, false),
    };
    let name = path.rsplit(|&b| b == b'/').next()?;
    is_libc_name(name).then_some((fields[0], path, deleted))
}

/// The libc files mapped by running processes, one entry per distinct file.
fn scan_processes() -> Vec<LibcFile> {
    let started = Instant::now();
    let mut files: Vec<LibcFile> = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return files;
    };
    let mut scanned = 0;
    let mut maps = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if scanned >= MAX_PROCESSES || started.elapsed() > SCAN_BUDGET {
            tracing::warn!(
                scanned,
                "stopped looking for libc files in /proc/*/maps (too many processes or too slow)"
            );
            break;
        }
        scanned += 1;
        maps.clear();
        let Ok(file) = File::open(format!("/proc/{pid}/maps")) else {
            continue;
        };
        if file.take(MAX_MAPS_BYTES).read_to_end(&mut maps).is_err() {
            continue;
        }
        // One libc a process; the first mapping of it names the file.
        let Some((range, path, deleted)) = maps.split(|&b| b == b'\n').find_map(libc_in_maps_line)
        else {
            continue;
        };
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(path));
        let map_files = PathBuf::from(format!(
            "/proc/{pid}/map_files/{}",
            String::from_utf8_lossy(range)
        ));
        let root =
            Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(&path));
        // The mapped file itself, whatever its path shows now; else by its path in
        // the process's root (not for a deleted file: that path is another file).
        let candidates = if deleted {
            vec![map_files]
        } else {
            vec![map_files, root]
        };
        let Some((open_path, meta)) = candidates
            .into_iter()
            .find_map(|candidate| fs::metadata(&candidate).ok().map(|meta| (candidate, meta)))
        else {
            continue;
        };
        if let Some(known) = files
            .iter_mut()
            .find(|f| (f.dev, f.ino) == (meta.dev(), meta.ino()))
        {
            known.processes += 1;
            continue;
        }
        files.push(LibcFile {
            path,
            open_path,
            found: Found::Process(pid),
            dev: meta.dev(),
            ino: meta.ino(),
            processes: 1,
        });
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_file_names() {
        for name in ["libc.so.6", "libc-2.31.so"] {
            assert!(is_libc_name(name.as_bytes()), "{name}");
        }
        for name in [
            "libc.so",
            "libcap.so.2",
            "libc-.so",
            "libc.musl-x86_64.so.1",
            "libc.so.6.bak",
        ] {
            assert!(!is_libc_name(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn maps_lines() {
        let line = b"7fd33bf38000-7fd33bf5e000 r--p 00000000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6";
        assert_eq!(
            libc_in_maps_line(line),
            Some((
                &b"7fd33bf38000-7fd33bf5e000"[..],
                &b"/usr/lib/x86_64-linux-gnu/libc.so.6"[..],
                false
            ))
        );
        let deleted =
            b"7f00-7f10 r-xp 00026000 fe:00 1 /lib/x86_64-linux-gnu/libc-2.31.so (deleted)";
        assert_eq!(
            libc_in_maps_line(deleted).map(|(_, p, d)| (p, d)),
            Some((&b"/lib/x86_64-linux-gnu/libc-2.31.so"[..], true))
        );
        let spaced = b"7f00-7f10 r-xp 00026000 fe:00 1 /srv/my root/lib/libc.so.6";
        assert_eq!(
            libc_in_maps_line(spaced).map(|(_, p, _)| p),
            Some(&b"/srv/my root/lib/libc.so.6"[..])
        );
        for other in [
            &b"7f00-7f10 r-xp 00026000 fe:00 1 /usr/lib/x86_64-linux-gnu/libcap.so.2"[..],
            b"7f00-7f10 rw-p 00000000 00:00 0 [heap]",
            b"7f00-7f10 rw-p 00000000 00:00 0",
            b"garbage",
        ] {
            assert_eq!(libc_in_maps_line(other), None);
        }
    }

    /// A new-format cache with the entries given, as ldconfig writes it.
    fn cache(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut data = b"glibc-ld.so.cache1.1".to_vec();
        let header = data.len() + 4 * 7;
        let strings = header + entries.len() * 24;
        let mut table = Vec::new();
        let mut text = Vec::new();
        for (key, value) in entries {
            let key_at = (strings + text.len()) as u32;
            text.extend_from_slice(key.as_bytes());
            text.push(0);
            let value_at = (strings + text.len()) as u32;
            text.extend_from_slice(value.as_bytes());
            text.push(0);
            table.extend_from_slice(&0x0303i32.to_ne_bytes());
            table.extend_from_slice(&key_at.to_ne_bytes());
            table.extend_from_slice(&value_at.to_ne_bytes());
            table.extend_from_slice(&[0; 12]);
        }
        data.extend_from_slice(&(entries.len() as u32).to_ne_bytes());
        data.extend_from_slice(&(text.len() as u32).to_ne_bytes());
        data.extend_from_slice(&[0; 4 * 5]);
        data.extend_from_slice(&table);
        data.extend_from_slice(&text);
        data
    }

    #[test]
    fn ld_so_cache_libc_entries() {
        let data = cache(&[
            ("libcap.so.2", "/lib/x86_64-linux-gnu/libcap.so.2"),
            ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
            ("libc.so.6", "/lib32/libc.so.6"),
        ]);
        let entries = parse_ld_so_cache(&data);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            libc_entries(&entries),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib32/libc.so.6")
            ]
        );
    }

    #[test]
    fn hostile_caches_give_nothing_or_what_is_there() {
        assert!(parse_ld_so_cache(b"").is_empty());
        assert!(parse_ld_so_cache(b"not a cache at all").is_empty());
        let mut data = cache(&[("libc.so.6", "/lib/libc.so.6")]);
        // A count far beyond the file, and a string offset beyond its end.
        data[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        let entries = parse_ld_so_cache(&data);
        assert_eq!(
            entries.first().map(|(k, _)| k.as_slice()),
            Some(&b"libc.so.6"[..])
        );
        let mut data = cache(&[("libc.so.6", "/lib/libc.so.6")]);
        let at = 20 + 4 * 7 + 8;
        data[at..at + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_ld_so_cache(&data).is_empty());
    }

    #[test]
    fn the_real_cache_names_a_libc_if_there_is_one() {
        let Ok(data) = fs::read(LD_SO_CACHE) else {
            return;
        };
        let paths = libc_entries(&parse_ld_so_cache(&data));
        assert!(
            paths.iter().all(|p| p.to_string_lossy().contains("libc")),
            "{paths:?}"
        );
    }
}
