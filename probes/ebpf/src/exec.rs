//! Which executable each process runs, kept for user space in `EXES` (pid → path).
//!
//! The recorder reads a process's executable from /proc/PID/exe, which a
//! short-lived client (getent, dig, curl from cron) has often taken away by the
//! time its first DNS packet is decoded. At every exec the new executable's path
//! (`current->mm->exe_file`, symlinks already resolved, as /proc shows it) is
//! walked up its dentries and mounts and stored under the pid; at a fork the
//! child gets its parent's entry, so that a pid never keeps the path of an older
//! process that had the same pid. Processes older than the recorder have no
//! entry (they are alive, /proc knows them).
//!
//! There is no `bpf_d_path` for tracepoints, and Rust eBPF has no CO-RE: the
//! offsets of the fields walked come from the kernel's BTF through the loader
//! (`EXE_OFFSETS`; all zero: unknown, nothing recorded).

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{bpf_get_current_task, bpf_probe_read_kernel_str},
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use dnsq_common::{EXE_NAMES_BYTES, counter};

use crate::maps::{EXE_SCRATCH, EXES, bump, exe_offsets, read_ptr};

/// Indexes into `EXE_OFFSETS` (the loader fills them in this order).
mod field {
    /// `task_struct.mm`
    pub const TASK_MM: usize = 0;
    /// `mm_struct.exe_file`
    pub const MM_EXE_FILE: usize = 1;
    /// `file.f_path.mnt`
    pub const FILE_PATH_MNT: usize = 2;
    /// `file.f_path.dentry`
    pub const FILE_PATH_DENTRY: usize = 3;
    /// `dentry.d_parent`
    pub const DENTRY_PARENT: usize = 4;
    /// `dentry.d_name.name`
    pub const DENTRY_NAME: usize = 5;
    /// `vfsmount.mnt_root`
    pub const VFSMOUNT_ROOT: usize = 6;
    /// `mount.mnt` (the `vfsmount` inside its `mount`)
    pub const MOUNT_MNT: usize = 7;
    /// `mount.mnt_parent`
    pub const MOUNT_PARENT: usize = 8;
    /// `mount.mnt_mountpoint`
    pub const MOUNT_MOUNTPOINT: usize = 9;
    /// `task_struct.tgid`
    pub const TASK_TGID: usize = 10;
}

/// Steps up the tree (a path component or a mount crossed each). Deeper paths
/// are recorded as truncated.
const MAX_STEPS: u32 = 40;
/// A component is read into at most this many bytes (`NAME_MAX` + its NUL).
const COMPONENT_BYTES: usize = EXE_NAMES_BYTES / 2;

// match-proto:v6.18:include/trace/events/sched.h:TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
#[btf_tracepoint(function = "sched_process_exec")]
pub fn dnsq_exec(_ctx: BtfTracePointContext) -> i32 {
    // The tracepoint runs in the exec'ing task, its new `mm` in place.
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    match record_exe(pid) {
        Ok(true) => bump(counter::EXES_RECORDED),
        // Stored, marked as cut short (user space ignores it).
        Ok(false) => bump(counter::EXES_FAILED),
        Err(()) => {
            bump(counter::EXES_FAILED);
            // The pid's entry is its executable before this exec (a shell's,
            // say): it must not be taken for the new one.
            let _ = EXES.remove(&pid);
        }
    }
    0
}

// match-proto:v6.18:include/trace/events/sched.h:TP_PROTO(struct task_struct *parent, struct task_struct *child)
#[btf_tracepoint(function = "sched_process_fork")]
pub fn dnsq_fork(ctx: BtfTracePointContext) -> i32 {
    let offsets = exe_offsets();
    let tgid_offset = offsets[field::TASK_TGID] as usize;
    if tgid_offset == 0 {
        return 0;
    }
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    // SAFETY: reads through bpf_probe_read_kernel, which checks the pointers.
    let (Ok(parent_tgid), Ok(child_tgid)) = (unsafe {
        (
            bpf_probe_read_kernel(parent.add(tgid_offset).cast::<i32>()),
            bpf_probe_read_kernel(child.add(tgid_offset).cast::<i32>()),
        )
    }) else {
        bump(counter::EXES_FAILED);
        return 0;
    };
    // A new thread of the same process: nothing changes.
    if parent_tgid == child_tgid {
        return 0;
    }
    let (parent_tgid, child_tgid) = (parent_tgid as u32, child_tgid as u32);
    // SAFETY: the value is copied into the map before anything else runs on
    // this CPU (tracing programs are not preempted by one another).
    match unsafe { EXES.get(&parent_tgid) } {
        Some(path) => match EXES.insert(&child_tgid, path, 0) {
            Ok(()) => bump(counter::EXES_RECORDED),
            Err(_) => bump(counter::EXES_FAILED),
        },
        // A parent older than the recorder: the child's pid must not keep the
        // entry of an exited process that had it before.
        None => {
            let _ = EXES.remove(&child_tgid);
        }
    }
    0
}

/// Walks `current->mm->exe_file` up to the root of the task's mount namespace,
/// as the kernel's `prepend_path` does, and stores the components in `EXES`.
/// `Ok(false)`: stored, but cut short (too long or too deep).
#[inline(always)]
fn record_exe(pid: u32) -> Result<bool, ()> {
    let offsets = exe_offsets();
    if offsets[field::TASK_MM] == 0 {
        // Unknown layout (the loader logged it): nothing is recorded.
        return Err(());
    }
    let slot = EXE_SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: the per-CPU scratch value. Tracing programs run with migration
    // disabled, not preemption: a task that preempts this one and execs runs
    // this program on the same slot. The pid written first and checked before
    // the store tells; such a path is dropped (counted), never stored mixed.
    let slot = unsafe { &mut *slot };
    // SAFETY: a plain write to the slot (volatile: it is read back below).
    unsafe { core::ptr::write_volatile(&mut slot.pid, pid) };
    // SAFETY: every pointer below is read only through bpf_probe_read_kernel.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let mm = read_ptr(task, offsets[field::TASK_MM])?;
        let file = read_ptr(mm, offsets[field::MM_EXE_FILE])?;
        let mut vfsmount = read_ptr(file, offsets[field::FILE_PATH_MNT])?;
        let mut dentry = read_ptr(file, offsets[field::FILE_PATH_DENTRY])?;
        let mount_mnt = offsets[field::MOUNT_MNT] as usize;
        let mut mount = vfsmount.wrapping_sub(mount_mnt);
        // The bytes used so far live in the slot, not in a local: the verifier
        // follows a local's range from each step into the next and, to bound
        // each write, back through every step before it, which took it 1.1 s
        // for this program (half the recorder's start-up; 0.14 s at 20 steps).
        // Read back from the map each step, it is a fresh unknown the mask
        // below bounds.
        core::ptr::write_volatile(&mut slot.len, 0);
        let mut truncated = 1;
        for _ in 0..MAX_STEPS {
            let root = read_ptr(vfsmount, offsets[field::VFSMOUNT_ROOT])?;
            if dentry == root {
                // The top of this mount: on to where it is mounted, unless it is
                // the namespace's root mount (its own parent).
                let parent = read_ptr(mount, offsets[field::MOUNT_PARENT])?;
                if parent == mount {
                    truncated = 0;
                    break;
                }
                dentry = read_ptr(mount, offsets[field::MOUNT_MOUNTPOINT])?;
                mount = parent;
                vfsmount = parent.add(mount_mnt);
                continue;
            }
            let parent = read_ptr(dentry, offsets[field::DENTRY_PARENT])?;
            if parent == dentry {
                // The root of a file system that is mounted nowhere we can
                // reach (a lazily unmounted tree): as far as it goes.
                truncated = 0;
                break;
            }
            let used = core::ptr::read_volatile(&slot.len) as usize;
            if used >= COMPONENT_BYTES {
                break;
            }
            let name = read_ptr(dentry, offsets[field::DENTRY_NAME])?;
            // The mask is a no-op (used < COMPONENT_BYTES) that the verifier can
            // see: the write stays inside `names`.
            let at = used & (COMPONENT_BYTES - 1);
            let read = bpf_probe_read_kernel_str(
                slot.names.as_mut_ptr().add(at).cast(),
                COMPONENT_BYTES as u32,
                name.cast(),
            );
            if read <= 0 {
                return Err(());
            }
            // With its NUL.
            core::ptr::write_volatile(&mut slot.len, (at + read as usize) as u32);
            dentry = parent;
        }
        slot.truncated = truncated;
    }
    let complete = slot.truncated == 0;
    // SAFETY: a plain read of the slot; volatile, or the compiler would fold in
    // the value written above.
    if unsafe { core::ptr::read_volatile(&slot.pid) } != pid {
        return Err(());
    }
    EXES.insert(&pid, slot, 0).map_err(|_| ())?;
    Ok(complete)
}
