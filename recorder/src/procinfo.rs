//! Details about a process that the kernel event does not carry: executable path,
//! network namespace, cgroup path, interface names. Read from /proc and the cgroup
//! v2 tree, cached, and bounded.

use std::{
    ffi::CStr,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use dnsq_common::ExePath;
use foldhash::HashMap;

/// How long a cached process entry is trusted (pids are reused).
const PROCESS_TTL: Duration = Duration::from_secs(5);
/// Most cached processes; beyond it the cache is cleared (cheap to refill).
const MAX_PROCESSES: usize = 16_384;
/// Least time between two walks of the cgroup tree.
const CGROUP_REWALK: Duration = Duration::from_secs(1);
/// Most cgroup directories walked (a bound on a hostile or huge tree).
const MAX_CGROUPS: usize = 100_000;

#[derive(Debug, Clone, Default)]
pub struct ProcessDetails {
    /// The process's command name (its main thread's `comm`): the probes see the
    /// name of the thread that touched the socket, which for threaded programs
    /// is a worker's name such as `isc-net-0000`.
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub netns: Option<u64>,
}

/// Where a process's executable comes from once /proc no longer has it: the
/// probes' `EXES` map in the recorder, a table in tests.
pub type KernelExes = Box<dyn FnMut(u32) -> Option<String> + Send>;

pub struct ProcInfo {
    processes: HashMap<u32, (ProcessDetails, Instant)>,
    kernel_exes: Option<KernelExes>,
    cgroup_root: PathBuf,
    cgroups: HashMap<u64, String>,
    cgroups_walked: Option<Instant>,
    own_netns: Option<u64>,
    interfaces: HashMap<u32, Option<Arc<str>>>,
}

impl ProcInfo {
    pub fn new(cgroup_root: PathBuf) -> Self {
        Self {
            processes: HashMap::default(),
            kernel_exes: None,
            cgroup_root,
            cgroups: HashMap::default(),
            cgroups_walked: None,
            own_netns: netns_of("self"),
            interfaces: HashMap::default(),
        }
    }

    /// Executables of processes gone from /proc are looked up in `exes`.
    pub fn with_kernel_exes(mut self, exes: KernelExes) -> Self {
        self.kernel_exes = Some(exes);
        self
    }

    pub fn process(&mut self, pid: u32) -> ProcessDetails {
        if let Some((details, at)) = self.processes.get(&pid)
            && at.elapsed() < PROCESS_TTL
        {
            return details.clone();
        }
        let dir = pid.to_string();
        let mut details = ProcessDetails {
            comm: fs::read_to_string(format!("/proc/{dir}/comm"))
                .ok()
                .map(|name| name.trim_end_matches('\n').to_owned()),
            exe: fs::read_link(format!("/proc/{dir}/exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            netns: netns_of(&dir),
        };
        // Gone (or a kernel thread, which has no executable and no entry either).
        if details.exe.is_none()
            && let Some(exes) = self.kernel_exes.as_mut()
        {
            details.exe = exes(pid);
        }
        // A process that is already gone tells us nothing: don't cache the miss.
        if details.exe.is_some() || details.netns.is_some() {
            if self.processes.len() >= MAX_PROCESSES {
                self.processes.clear();
            }
            self.processes
                .insert(pid, (details.clone(), Instant::now()));
        }
        details
    }

    /// The cgroup's path below the cgroup v2 root (`/system.slice/nginx.service`).
    pub fn cgroup_path(&mut self, cgroup_id: u64) -> Option<String> {
        if cgroup_id == 0 {
            return None;
        }
        if let Some(path) = self.cgroups.get(&cgroup_id) {
            return Some(path.clone());
        }
        let stale = self
            .cgroups_walked
            .is_none_or(|at| at.elapsed() >= CGROUP_REWALK);
        if stale {
            self.cgroups = walk_cgroups(&self.cgroup_root);
            self.cgroups_walked = Some(Instant::now());
        }
        self.cgroups.get(&cgroup_id).cloned()
    }

    /// The interface's name, when the packet was in the recorder's own namespace
    /// (interface indexes mean nothing across namespaces).
    pub fn interface(&mut self, ifindex: u32, netns: Option<u64>) -> Option<Arc<str>> {
        if ifindex == 0 || netns.is_none() || netns != self.own_netns {
            return None;
        }
        self.interfaces
            .entry(ifindex)
            .or_insert_with(|| interface_name(ifindex).map(Arc::from))
            .clone()
    }
}

/// The path the exec tracepoint stored, as /proc/PID/exe would show it: `None`
/// when the walk was cut short. Bytes that are not UTF-8 become U+FFFD, as
/// `to_string_lossy` makes them of /proc's answer.
pub fn exe_path(entry: &ExePath) -> Option<String> {
    if entry.truncated != 0 {
        return None;
    }
    let used = entry.names.get(..entry.len as usize)?;
    // Innermost first, each NUL-terminated.
    let mut path = String::new();
    for component in used.split(|&b| b == 0).filter(|c| !c.is_empty()).rev() {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(component));
    }
    if path.is_empty() {
        path.push('/');
    }
    Some(path)
}

/// The inode of `/proc/<pid>/ns/net`, the number `ip netns identify` and `lsns` show.
fn netns_of(pid: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

fn interface_name(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer is IF_NAMESIZE bytes, as if_indextoname requires.
    let ret = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if ret.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// Maps every cgroup's id (its directory's inode) to its path below the root.
fn walk_cgroups(root: &Path) -> HashMap<u64, String> {
    let mut found = HashMap::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if found.len() >= MAX_CGROUPS {
            tracing::warn!(
                limit = MAX_CGROUPS,
                "cgroup tree too large; some paths unknown"
            );
            break;
        }
        let Ok(meta) = fs::metadata(&dir) else {
            continue;
        };
        let relative = dir.strip_prefix(root).unwrap_or(Path::new(""));
        found.insert(meta.ino(), format!("/{}", relative.to_string_lossy()));
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_cgroup_like_tree() {
        let root = std::env::temp_dir().join(format!("dnsq-cg-{}", std::process::id()));
        fs::create_dir_all(root.join("system.slice/nginx.service")).unwrap();
        let ids = walk_cgroups(&root);
        let inode = fs::metadata(root.join("system.slice/nginx.service"))
            .unwrap()
            .ino();
        assert_eq!(
            ids.get(&inode).map(String::as_str),
            Some("/system.slice/nginx.service")
        );
        let root_inode = fs::metadata(&root).unwrap().ino();
        assert_eq!(ids.get(&root_inode).map(String::as_str), Some("/"));
        fs::remove_dir_all(&root).unwrap();
    }

    fn stored(components: &[&str], truncated: bool) -> ExePath {
        let mut entry = ExePath {
            pid: 1,
            _pad: 0,
            len: 0,
            truncated: u32::from(truncated),
            names: [0xAA; dnsq_common::EXE_NAMES_BYTES],
        };
        let mut at = 0;
        for component in components {
            entry.names[at..at + component.len()].copy_from_slice(component.as_bytes());
            entry.names[at + component.len()] = 0;
            at += component.len() + 1;
        }
        entry.len = at as u32;
        entry
    }

    #[test]
    fn kernel_paths_read_innermost_first() {
        assert_eq!(
            exe_path(&stored(&["getent", "bin", "usr"], false)).as_deref(),
            Some("/usr/bin/getent")
        );
        // The bytes past `len` (0xAA: a previous, longer path) are not read.
        assert_eq!(exe_path(&stored(&["sh"], false)).as_deref(), Some("/sh"));
        assert_eq!(exe_path(&stored(&[], false)).as_deref(), Some("/"));
        assert_eq!(exe_path(&stored(&["x", "deep"], true)), None);
        let mut odd = stored(&["a\u{e9}b", "bin"], false);
        odd.names[1] = 0xff;
        assert_eq!(exe_path(&odd).as_deref(), Some("/bin/a\u{fffd}\u{fffd}b"));
        let mut long = stored(&["x"], false);
        long.len = 10_000;
        assert_eq!(exe_path(&long), None);
    }

    #[test]
    fn gone_processes_take_the_kernels_executable() {
        let gone = u32::MAX - 7;
        let mut info = ProcInfo::new(std::env::temp_dir()).with_kernel_exes(Box::new(move |pid| {
            (pid == gone).then(|| "/usr/bin/getent".to_owned())
        }));
        assert_eq!(info.process(gone).exe.as_deref(), Some("/usr/bin/getent"));
        // A live process's executable is /proc's.
        let me = info.process(std::process::id());
        assert_eq!(me.exe, own_exe());
    }

    /// This test binary's path, as /proc/self/exe gives it.
    fn own_exe() -> Option<String> {
        std::env::current_exe()
            .ok()
            .as_deref()
            .and_then(Path::to_str)
            .map(str::to_owned)
    }

    #[test]
    fn knows_its_own_process() {
        let mut info = ProcInfo::new(std::env::temp_dir());
        let me = info.process(std::process::id());
        assert_eq!(me.exe, own_exe());
        assert!(me.netns.is_some());
    }
}
