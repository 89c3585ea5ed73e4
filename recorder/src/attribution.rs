//! Who sent or received a message.
//!
//! The kernel normally knows: the owner hooks record each DNS socket's user by
//! cookie, and the packet programs copy that into the event ([`Attribution::Socket`]).
//! When the packet passed before any hook saw the socket (a socket older than the
//! recorder, an accepted TCP connection), the owner is looked up again a little later
//! in the same kernel map, which the socket's next send or receive fills in
//! ([`Attribution::SocketLate`]); failing that, the socket is searched for in
//! /proc/*/net and /proc/*/fd ([`Attribution::Procfs`]). Nothing is guessed: if none
//! of these finds it, the record says [`Attribution::Unknown`].

use std::{
    collections::HashMap,
    fs,
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt,
    path::PathBuf,
    time::{Duration, Instant},
};

use dnsq_common::{OwnerHook, SockOwner};

use crate::record::{Attribution, Transport};

/// The identity part of a socket owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub tid: Option<u32>,
    pub uid: u32,
    pub gid: u32,
    /// The thread's name (for the procfs fallback, the process's).
    pub comm: String,
    /// The process's name, as the kernel saw it when the socket was used.
    pub process_comm: Option<String>,
    /// The process's network namespace inode, as the kernel saw it.
    pub netns: Option<u64>,
    pub cgroup_id: Option<u64>,
}

/// A NUL-padded kernel `comm`.
fn comm_text(comm: &[u8; 16]) -> String {
    let len = comm.iter().position(|&b| b == 0).unwrap_or(16);
    String::from_utf8_lossy(&comm[..len]).into_owned()
}

impl Owner {
    pub fn from_kernel(owner: &SockOwner) -> (Attribution, Self) {
        // Marked by how the socket first became known, so every message of a socket
        // older than the recorder says so, not just the first.
        let attribution = match OwnerHook::from_u32(owner.first_hook) {
            OwnerHook::UserSpace => Attribution::Procfs,
            OwnerHook::SockSend | OwnerHook::SockRecv => Attribution::SocketLate,
            OwnerHook::Connect
            | OwnerHook::SendmsgAddr
            | OwnerHook::PostBind
            | OwnerHook::Unknown => Attribution::Socket,
        };
        let process_comm = comm_text(&owner.process_comm);
        let owner = Self {
            pid: owner.pid,
            // The user-space fallback cannot know the thread.
            tid: (attribution != Attribution::Procfs).then_some(owner.tid),
            uid: owner.uid,
            gid: owner.gid,
            comm: comm_text(&owner.comm),
            process_comm: (!process_comm.is_empty()).then_some(process_comm),
            netns: (owner.netns != 0).then_some(u64::from(owner.netns)),
            cgroup_id: (owner.cgroup_id != 0).then_some(owner.cgroup_id),
        };
        (attribution, owner)
    }
}

/// The kernel's socket-owner map, as the attributor needs it (a trait so tests can
/// stand in for the BPF map).
pub trait OwnerMap {
    fn get(&self, cookie: u64) -> Option<SockOwner>;
    fn insert(&mut self, cookie: u64, owner: SockOwner);
}

impl OwnerMap for aya::maps::HashMap<aya::maps::MapData, u64, SockOwner> {
    fn get(&self, cookie: u64) -> Option<SockOwner> {
        aya::maps::HashMap::get(self, &cookie, 0).ok()
    }
    fn insert(&mut self, cookie: u64, owner: SockOwner) {
        if let Err(error) = aya::maps::HashMap::insert(self, cookie, owner, 0) {
            tracing::debug!(%error, cookie, "could not store a fallback owner in the kernel map");
        }
    }
}

/// What a message needs to be attributed after the fact.
#[derive(Debug, Clone, Copy)]
pub struct SocketId {
    pub cookie: u64,
    pub transport: Transport,
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
}

pub struct Attributor<M> {
    kernel: M,
    procfs: ProcfsIndex,
    cgroup_root: PathBuf,
}

impl<M: OwnerMap> Attributor<M> {
    pub fn new(kernel: M, cgroup_root: PathBuf) -> Self {
        Self {
            kernel,
            procfs: ProcfsIndex::default(),
            cgroup_root,
        }
    }

    /// The kernel map, asked again after the packet passed.
    pub fn late(&self, cookie: u64) -> Option<Owner> {
        let owner = self.kernel.get(cookie)?;
        let (_, owner) = Owner::from_kernel(&owner);
        Some(owner)
    }

    /// Everything we can try, in order of trust; for a message whose wait is over.
    pub fn resolve(&mut self, socket: &SocketId) -> (Attribution, Option<Owner>) {
        if let Some(owner) = self.kernel.get(socket.cookie) {
            let (attribution, owner) = Owner::from_kernel(&owner);
            let attribution = match attribution {
                Attribution::Socket => Attribution::SocketLate,
                other => other,
            };
            return (attribution, Some(owner));
        }
        match self.procfs_owner(socket) {
            Some(owner) => (Attribution::Procfs, Some(owner)),
            None => (Attribution::Unknown, None),
        }
    }

    fn procfs_owner(&mut self, socket: &SocketId) -> Option<Owner> {
        let pid = self.procfs.find(socket)?;
        let owner = owner_from_proc(pid, &self.cgroup_root)?;
        // Teach the kernel, so the socket's next packets are attributed at once.
        if socket.cookie != 0 {
            let mut comm = [0u8; 16];
            let len = owner.comm.len().min(15);
            comm[..len].copy_from_slice(&owner.comm.as_bytes()[..len]);
            self.kernel.insert(
                socket.cookie,
                SockOwner {
                    pid: owner.pid,
                    tid: owner.pid,
                    uid: owner.uid,
                    gid: owner.gid,
                    cgroup_id: owner.cgroup_id.unwrap_or(0),
                    seen_boot_ns: crate::event::WallClock::boot_now_ns(),
                    comm,
                    process_comm: comm,
                    netns: 0,
                    _pad: 0,
                    hook: OwnerHook::UserSpace as u32,
                    first_hook: OwnerHook::UserSpace as u32,
                },
            );
        }
        Some(owner)
    }
}

fn owner_from_proc(pid: u32, cgroup_root: &std::path::Path) -> Option<Owner> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let first_id = |key: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let cgroup_id = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|text| {
            let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
            let dir = cgroup_root.join(path.trim_start_matches('/'));
            fs::metadata(dir).ok().map(|m| m.ino())
        });
    Some(Owner {
        pid,
        tid: None,
        uid: first_id("Uid:")?,
        gid: first_id("Gid:")?,
        comm: comm.trim_end_matches('\n').to_owned(),
        process_comm: Some(comm.trim_end_matches('\n').to_owned()),
        netns: None,
        cgroup_id,
    })
}

/// Least time between two scans of /proc (they read every process's fd table).
const PROCFS_RESCAN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct SocketEntry {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    inode: u64,
}

/// Sockets of every network namespace and the processes holding them.
#[derive(Default)]
struct ProcfsIndex {
    scanned: Option<Instant>,
    sockets: Vec<SocketEntry>,
    holders: HashMap<u64, u32>,
}

impl ProcfsIndex {
    fn find(&mut self, socket: &SocketId) -> Option<u32> {
        if let Some(pid) = self.lookup(socket) {
            return Some(pid);
        }
        if self.scanned.is_some_and(|at| at.elapsed() < PROCFS_RESCAN) {
            return None;
        }
        self.rescan();
        self.lookup(socket)
    }

    fn lookup(&self, socket: &SocketId) -> Option<u32> {
        let local = SocketAddr::new(socket.local.0, socket.local.1);
        let remote = SocketAddr::new(socket.remote.0, socket.remote.1);
        self.sockets
            .iter()
            .filter(|e| e.transport == socket.transport)
            .filter(|e| endpoint_matches(e.local, local) && peer_matches(e.remote, remote))
            .find_map(|e| self.holders.get(&e.inode).copied())
    }

    fn rescan(&mut self) {
        self.scanned = Some(Instant::now());
        self.sockets.clear();
        self.holders.clear();
        let Ok(processes) = procfs::process::all_processes() else {
            return;
        };
        let mut namespaces_read = std::collections::HashSet::new();
        for process in processes.flatten() {
            let pid = process.pid as u32;
            if let Ok(fds) = process.fd() {
                for fd in fds.flatten() {
                    if let procfs::process::FDTarget::Socket(inode) = fd.target {
                        // Shared by fork: the first (lowest) pid holds it.
                        self.holders.entry(inode).or_insert(pid);
                    }
                }
            }
            let Ok(netns) = fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino()) else {
                continue;
            };
            if !namespaces_read.insert(netns) {
                continue;
            }
            let tcp = [process.tcp(), process.tcp6()];
            for entry in tcp.into_iter().flatten().flatten() {
                self.sockets.push(SocketEntry {
                    transport: Transport::Tcp,
                    local: entry.local_address,
                    remote: entry.remote_address,
                    inode: entry.inode,
                });
            }
            let udp = [process.udp(), process.udp6()];
            for entry in udp.into_iter().flatten().flatten() {
                self.sockets.push(SocketEntry {
                    transport: Transport::Udp,
                    local: entry.local_address,
                    remote: entry.remote_address,
                    inode: entry.inode,
                });
            }
        }
    }
}

/// A socket bound to `entry` receives for `actual`: same port, and the same address
/// or a wildcard (IPv4-mapped IPv6 compared as IPv4).
fn endpoint_matches(entry: SocketAddr, actual: SocketAddr) -> bool {
    entry.port() == actual.port()
        && (entry.ip().is_unspecified() || entry.ip().to_canonical() == actual.ip().to_canonical())
}

/// An unconnected socket (remote port 0) talks to anyone.
fn peer_matches(entry: SocketAddr, actual: SocketAddr) -> bool {
    entry.port() == 0 || endpoint_matches(entry, actual)
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, net::UdpSocket};

    use super::*;

    #[derive(Default)]
    struct FakeMap(RefCell<HashMap<u64, SockOwner>>);
    impl OwnerMap for FakeMap {
        fn get(&self, cookie: u64) -> Option<SockOwner> {
            self.0.borrow().get(&cookie).copied()
        }
        fn insert(&mut self, cookie: u64, owner: SockOwner) {
            self.0.borrow_mut().insert(cookie, owner);
        }
    }

    fn kernel_owner(pid: u32, hook: OwnerHook) -> SockOwner {
        let mut comm = [0u8; 16];
        comm[..3].copy_from_slice(b"dig");
        SockOwner {
            pid,
            tid: pid + 1,
            uid: 1000,
            gid: 1000,
            cgroup_id: 9,
            seen_boot_ns: 1,
            comm,
            process_comm: comm,
            netns: 0,
            _pad: 0,
            hook: hook as u32,
            first_hook: hook as u32,
        }
    }

    #[test]
    fn kernel_owner_converts() {
        let (attribution, owner) = Owner::from_kernel(&kernel_owner(42, OwnerHook::Connect));
        assert_eq!(attribution, Attribution::Socket);
        assert_eq!(owner.comm, "dig");
        assert_eq!(owner.tid, Some(43));
        let (attribution, owner) = Owner::from_kernel(&kernel_owner(42, OwnerHook::UserSpace));
        assert_eq!(attribution, Attribution::Procfs);
        assert_eq!(owner.tid, None);
        // A socket first seen sending stays "late" whatever later rewrites say.
        let mut older = kernel_owner(42, OwnerHook::Connect);
        older.first_hook = OwnerHook::SockSend as u32;
        let (attribution, owner) = Owner::from_kernel(&older);
        assert_eq!(attribution, Attribution::SocketLate);
        assert_eq!(owner.tid, Some(43));
    }

    #[test]
    fn late_kernel_entry_wins_over_procfs() {
        let map = FakeMap::default();
        map.0
            .borrow_mut()
            .insert(7, kernel_owner(42, OwnerHook::SockRecv));
        let mut attributor = Attributor::new(map, PathBuf::from("/nonexistent"));
        let socket = SocketId {
            cookie: 7,
            transport: Transport::Udp,
            local: ("127.0.0.1".parse().unwrap(), 1),
            remote: ("127.0.0.1".parse().unwrap(), 53),
        };
        let (attribution, owner) = attributor.resolve(&socket);
        assert_eq!(attribution, Attribution::SocketLate);
        assert_eq!(owner.unwrap().pid, 42);
    }

    #[test]
    fn procfs_finds_our_own_socket_and_teaches_the_kernel() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = socket.local_addr().unwrap();
        let mut attributor = Attributor::new(FakeMap::default(), PathBuf::from("/nonexistent"));
        let id = SocketId {
            cookie: 99,
            transport: Transport::Udp,
            local: (local.ip(), local.port()),
            remote: ("127.0.0.1".parse().unwrap(), 53),
        };
        let (attribution, owner) = attributor.resolve(&id);
        assert_eq!(attribution, Attribution::Procfs);
        assert_eq!(owner.unwrap().pid, std::process::id());
        let taught = attributor
            .kernel
            .get(99)
            .expect("fallback stored in the map");
        assert_eq!(taught.pid, std::process::id());
        assert_eq!(OwnerHook::from_u32(taught.hook), OwnerHook::UserSpace);
    }

    #[test]
    fn unknown_socket_is_not_guessed() {
        let mut attributor = Attributor::new(FakeMap::default(), PathBuf::from("/nonexistent"));
        let id = SocketId {
            cookie: 1,
            transport: Transport::Tcp,
            local: ("198.18.255.1".parse().unwrap(), 1),
            remote: ("198.18.255.2".parse().unwrap(), 53),
        };
        assert_eq!(attributor.resolve(&id), (Attribution::Unknown, None));
    }

    #[test]
    fn wildcard_and_mapped_addresses_match() {
        let any: SocketAddr = "[::]:53".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:53".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert!(endpoint_matches(any, v4));
        assert!(endpoint_matches(mapped, v4));
        assert!(!endpoint_matches(mapped, "127.0.0.2:53".parse().unwrap()));
        assert!(peer_matches("0.0.0.0:0".parse().unwrap(), v4));
    }
}
