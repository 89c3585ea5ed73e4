//! After the probes are attached the recorder needs almost no privilege: the
//! kernel objects are already open file descriptors. What it keeps, and why:
//!
//! - `CAP_SYS_PTRACE`: reading `/proc/PID/exe` and `/proc/PID/fd/*` of other
//!   users' processes (the executable path of each message, and the user-space
//!   fallback that finds the owners of sockets opened before the recorder).
//! - `CAP_DAC_READ_SEARCH`: reading other users' `/proc/PID/` entries and cgroup
//!   directories that are not world-readable.
//!
//! Everything else (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN, …) is
//! dropped from every set, including the bounding set, and `no_new_privs` is set,
//! so neither this process nor anything it could execute regains them.

use caps::{CapSet, Capability, CapsHashSet};

/// The nice value the recorder lowers itself to at start (`--nice`): a priority
/// above the host's ordinary work, as auditd's `priority_boost` gives auditd. On
/// a host whose CPUs are busy, a recorder at the default nice value 0 waits its
/// turn behind that work while the kernel fills its ring buffer: at 50k
/// queries/s with two busy loops on 2 CPUs it lost 32–36 % of the events at
/// nice 0 and none at -5 (2 interleaved pairs of 10 s, BENCHMARKS.md). What it
/// takes from the rest is bounded by the DNS traffic it records.
pub const DEFAULT_NICE: i32 = -5;

/// Lowers the calling thread's nice value to `nice` if it is higher, never the
/// other way (a recorder started at a higher priority keeps it); returns the
/// value it had when it changed. On Linux a nice value belongs to a thread and
/// threads inherit their creator's: call this before starting any.
pub fn raise_priority(nice: i32) -> std::io::Result<Option<i32>> {
    let current = current_nice()?;
    if current <= nice {
        return Ok(None);
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Some(current))
}

/// The calling thread's nice value.
pub fn current_nice() -> std::io::Result<i32> {
    // getpriority returns -1 both for nice -1 and for an error: only errno tells.
    // SAFETY: errno is this thread's own.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: plain integer arguments.
    let value = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if value == -1 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(0) {
            return Err(error);
        }
    }
    Ok(value)
}

/// The capabilities the running phase keeps.
pub const RUNTIME: [Capability; 2] = [Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH];

#[derive(Debug, thiserror::Error)]
#[error("dropping capabilities: {0}")]
pub struct DropError(String);

/// Drops every capability but [`RUNTIME`] (those of it the process has).
///
/// Capabilities belong to threads: call this while the process has one thread.
pub fn drop_to_runtime() -> Result<CapsHashSet, DropError> {
    let error = |e: caps::errors::CapsError| DropError(e.to_string());
    let permitted = caps::read(None, CapSet::Permitted).map_err(error)?;
    let keep: CapsHashSet = RUNTIME
        .into_iter()
        .filter(|cap| permitted.contains(cap))
        .collect();
    // The bounding set first (needs CAP_SETPCAP, which we still have if root).
    if permitted.contains(&Capability::CAP_SETPCAP) {
        for cap in caps::all() {
            if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap).map_err(error)?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(error)?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(error)?;
    caps::set(None, CapSet::Effective, &keep).map_err(error)?;
    caps::set(None, CapSet::Permitted, &keep).map_err(error)?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) only sets a flag on this process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(DropError(std::io::Error::last_os_error().to_string()));
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never lowers the priority; raises it to exactly the value asked for when
    /// it may (CAP_SYS_NICE: root), or says why not. Each case runs on a thread
    /// of its own, since a nice value belongs to the thread.
    #[test]
    fn raise_priority_only_ever_raises_it() {
        let on_a_thread = |nice_of: fn(i32) -> i32| {
            std::thread::spawn(move || {
                let start = current_nice().unwrap();
                let result = raise_priority(nice_of(start));
                (
                    start,
                    result.map_err(|e| e.raw_os_error()),
                    current_nice().unwrap(),
                )
            })
            .join()
            .unwrap()
        };
        // The same value, or a lower priority: nothing changes.
        for nice_of in [|n| n, |n: i32| (n + 3).min(19)] {
            let (start, result, after) = on_a_thread(nice_of);
            assert_eq!((result, after), (Ok(None), start));
        }
        // A higher priority: set, or refused without CAP_SYS_NICE.
        let (start, result, after) = on_a_thread(|n| (n - 2).max(-20));
        match result {
            Ok(before) => {
                assert_eq!(before, (start > -20).then_some(start));
                assert_eq!(after, (start - 2).max(-20));
            }
            Err(errno) => {
                assert_eq!(errno, Some(libc::EACCES));
                assert_eq!(after, start);
            }
        }
    }
}
