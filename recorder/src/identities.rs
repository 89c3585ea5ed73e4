//! The identity of the process behind a message ([`ProcessInfo`]): the kernel's
//! socket owner completed from /proc and the cgroup tree. Nearly every message
//! comes from a socket whose owner the kernel knew, and a busy process sends
//! thousands a second with the same owner, so that identity is built once and
//! shared by its messages (building it copies half a dozen strings and parses the
//! cgroup path).

use std::sync::Arc;

use dnsq_common::SockOwner;
use foldhash::HashMap;

use crate::{
    attribution::Owner,
    procinfo::ProcInfo,
    record::{Attribution, ProcessInfo},
};

/// How long a built identity is reused. /proc details are cached for longer
/// ([`ProcInfo`]); this bounds how late a changed executable or cgroup shows.
const REUSE_NS: u64 = 1_000_000_000;
/// Most identities kept; beyond it they are all dropped (cheap to rebuild).
const MAX_KEPT: usize = 4_096;

/// Everything of a kernel socket owner that goes into its identity (not when it
/// was seen, nor by which hook last).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct OwnerKey {
    pid: u32,
    tid: u32,
    uid: u32,
    gid: u32,
    cgroup_id: u64,
    netns: u32,
    comm: [u8; 16],
    process_comm: [u8; 16],
    first_hook: u32,
}

impl From<&SockOwner> for OwnerKey {
    fn from(owner: &SockOwner) -> Self {
        Self {
            pid: owner.pid,
            tid: owner.tid,
            uid: owner.uid,
            gid: owner.gid,
            cgroup_id: owner.cgroup_id,
            netns: owner.netns,
            comm: owner.comm,
            process_comm: owner.process_comm,
            first_hook: owner.first_hook,
        }
    }
}

pub struct Identities {
    procinfo: ProcInfo,
    /// Complete identities of kernel owners, with the boot time they were built.
    kept: HashMap<OwnerKey, (Arc<ProcessInfo>, u64)>,
}

impl Identities {
    pub fn new(procinfo: ProcInfo) -> Self {
        Self {
            procinfo,
            kept: HashMap::default(),
        }
    }

    pub fn procinfo(&mut self) -> &mut ProcInfo {
        &mut self.procinfo
    }

    /// The identity of a socket owner as the kernel reported it with a packet at
    /// `now_ns` (boot time). Reused while younger than [`REUSE_NS`] and complete:
    /// one still missing its executable or cgroup path is built again next time,
    /// when /proc or the cgroup tree may know more.
    pub fn of_kernel_owner(&mut self, kernel: &SockOwner, now_ns: u64) -> Arc<ProcessInfo> {
        let key = OwnerKey::from(kernel);
        if let Some((process, built_ns)) = self.kept.get(&key)
            && now_ns.saturating_sub(*built_ns) < REUSE_NS
        {
            return Arc::clone(process);
        }
        let (attribution, owner) = Owner::from_kernel(kernel);
        let process = Arc::new(self.build(attribution, Some(owner)));
        let complete =
            process.exe.is_some() && (process.cgroup_id.is_none() || process.cgroup.is_some());
        if complete {
            if self.kept.len() >= MAX_KEPT {
                self.kept.clear();
            }
            self.kept.insert(key, (Arc::clone(&process), now_ns));
        } else {
            self.kept.remove(&key);
        }
        process
    }

    /// The identity of `owner`, found by `attribution` (absent: unknown).
    pub fn build(&mut self, attribution: Attribution, owner: Option<Owner>) -> ProcessInfo {
        let Some(owner) = owner else {
            return ProcessInfo {
                attribution: Some(attribution),
                ..ProcessInfo::default()
            };
        };
        let details = self.procinfo.process(owner.pid);
        ProcessInfo {
            attribution: Some(attribution),
            pid: Some(owner.pid),
            tid: owner.tid,
            uid: Some(owner.uid),
            gid: Some(owner.gid),
            // The process's name as the kernel saw it; else as /proc says while the
            // process lives; else the name of the thread the kernel saw.
            comm: Some(
                owner
                    .process_comm
                    .or(details.comm)
                    .unwrap_or_else(|| owner.comm.clone()),
            ),
            thread: Some(owner.comm),
            exe: details.exe,
            cgroup_id: owner.cgroup_id,
            cgroup: owner.cgroup_id.and_then(|id| self.procinfo.cgroup_path(id)),
            netns: owner.netns.or(details.netns),
            unit: None,
            container: None,
        }
        .with_owner()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use dnsq_common::OwnerHook;

    use super::*;

    fn kernel_owner(pid: u32, comm: &str) -> SockOwner {
        let mut owner = SockOwner::zeroed();
        owner.pid = pid;
        owner.tid = pid;
        owner.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        owner.process_comm = owner.comm;
        owner.hook = OwnerHook::Connect as u32;
        owner.first_hook = OwnerHook::Connect as u32;
        owner
    }

    fn identities() -> Identities {
        // No cgroup tree: owners without a cgroup id need none.
        Identities::new(ProcInfo::new(PathBuf::from("/nonexistent")))
    }

    #[test]
    fn a_complete_identity_is_shared_until_it_is_old() {
        let mut ids = identities();
        let me = kernel_owner(std::process::id(), "replay");
        let first = ids.of_kernel_owner(&me, 1_000);
        assert!(first.exe.is_some(), "this process's exe is readable");
        assert_eq!(first.comm.as_deref(), Some("replay"));
        let again = ids.of_kernel_owner(&me, 1_000 + REUSE_NS - 1);
        assert!(Arc::ptr_eq(&first, &again));
        let later = ids.of_kernel_owner(&me, 1_000 + REUSE_NS);
        assert!(!Arc::ptr_eq(&first, &later));
        assert_eq!(*first, *later);
    }

    #[test]
    fn what_the_kernel_reports_is_part_of_the_key() {
        let mut ids = identities();
        let me = kernel_owner(std::process::id(), "replay");
        let first = ids.of_kernel_owner(&me, 0);
        let mut other_thread = me;
        other_thread.tid += 1;
        other_thread.comm[..6].copy_from_slice(b"worker");
        let second = ids.of_kernel_owner(&other_thread, 0);
        assert_eq!(second.tid, Some(other_thread.tid));
        assert_eq!(second.thread.as_deref(), Some("worker"));
        // When it was seen, and by which hook last, change nothing.
        let mut later_hook = me;
        later_hook.seen_boot_ns = 99;
        later_hook.hook = OwnerHook::SockSend as u32;
        assert!(Arc::ptr_eq(&first, &ids.of_kernel_owner(&later_hook, 0)));
    }

    #[test]
    fn an_incomplete_identity_is_built_again() {
        let mut ids = identities();
        // No such process: no exe, so every message asks /proc again.
        let gone = kernel_owner(u32::MAX - 1, "gone");
        let first = ids.of_kernel_owner(&gone, 0);
        assert_eq!(first.exe, None);
        assert!(!Arc::ptr_eq(&first, &ids.of_kernel_owner(&gone, 0)));
    }
}
