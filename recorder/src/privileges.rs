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
