//! Details about a process that the kernel event does not carry: executable path,
//! network namespace, cgroup path, interface names. Read from /proc and the cgroup
//! v2 tree, cached, and bounded.

use std::{
    ffi::CStr,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

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

pub struct ProcInfo {
    processes: HashMap<u32, (ProcessDetails, Instant)>,
    cgroup_root: PathBuf,
    cgroups: HashMap<u64, String>,
    cgroups_walked: Option<Instant>,
    own_netns: Option<u64>,
    interfaces: HashMap<u32, Option<String>>,
}

impl ProcInfo {
    pub fn new(cgroup_root: PathBuf) -> Self {
        Self {
            processes: HashMap::default(),
            cgroup_root,
            cgroups: HashMap::default(),
            cgroups_walked: None,
            own_netns: netns_of("self"),
            interfaces: HashMap::default(),
        }
    }

    pub fn process(&mut self, pid: u32) -> ProcessDetails {
        if let Some((details, at)) = self.processes.get(&pid)
            && at.elapsed() < PROCESS_TTL
        {
            return details.clone();
        }
        let dir = pid.to_string();
        let details = ProcessDetails {
            comm: fs::read_to_string(format!("/proc/{dir}/comm"))
                .ok()
                .map(|name| name.trim_end_matches('\n').to_owned()),
            exe: fs::read_link(format!("/proc/{dir}/exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            netns: netns_of(&dir),
        };
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
    pub fn interface(&mut self, ifindex: u32, netns: Option<u64>) -> Option<String> {
        if ifindex == 0 || netns.is_none() || netns != self.own_netns {
            return None;
        }
        self.interfaces
            .entry(ifindex)
            .or_insert_with(|| interface_name(ifindex))
            .clone()
    }
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

    #[test]
    fn knows_its_own_process() {
        let mut info = ProcInfo::new(std::env::temp_dir());
        let me = info.process(std::process::id());
        assert_eq!(
            me.exe.as_deref(),
            std::env::current_exe()
                .ok()
                .as_deref()
                .and_then(Path::to_str)
        );
        assert!(me.netns.is_some());
    }
}
