//! Pre-flight checks: what the recorder needs from the system, with what to do when
//! something is missing. Run before loading so the user gets a clear sentence, not
//! an errno from deep inside a syscall.

use std::{fs, path::PathBuf};

/// Capabilities the recorder cannot work without, and why.
pub const NEEDED_CAPABILITIES: [(u32, &str, &str); 3] = [
    (39, "CAP_BPF", "create maps and load programs"),
    (
        38,
        "CAP_PERFMON",
        "load tracing programs (sock_send_length/sock_recv_length) and read kernel memory",
    ),
    (12, "CAP_NET_ADMIN", "attach programs to the cgroup v2 root"),
];

/// Capabilities without which the recorder works but knows less.
pub const WANTED_CAPABILITIES: [(u32, &str, &str); 1] = [(
    19,
    "CAP_SYS_PTRACE",
    "read other users' /proc/<pid>/exe and /proc/<pid>/fd (executable paths, attribution \
     of sockets older than the recorder)",
)];

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "missing capabilities {missing}: run as root (sudo dnsq-recorder …) or grant them, \
         e.g. `setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace+ep dnsq-recorder`"
    )]
    Capabilities { missing: String },
    #[error(
        "no cgroup v2 mount found in /proc/self/mountinfo: dnsq attaches to the cgroup v2 \
         root; mount it (`mount -t cgroup2 none /sys/fs/cgroup`) or boot with \
         systemd.unified_cgroup_hierarchy=1"
    )]
    NoCgroup2,
    #[error(
        "kernel BTF not found at /sys/kernel/btf/vmlinux: dnsq needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 2020 are)"
    )]
    NoBtf,
}

/// Where cgroup v2 is mounted: the first `cgroup2` line of mountinfo (a hybrid layout
/// mounts it at /sys/fs/cgroup/unified, a unified one at /sys/fs/cgroup).
pub fn cgroup2_mount() -> Result<PathBuf, CheckError> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|_| CheckError::NoCgroup2)?;
    cgroup2_from_mountinfo(&mountinfo).ok_or(CheckError::NoCgroup2)
}

fn cgroup2_from_mountinfo(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "36 25 0:30 / /sys/fs/cgroup rw,… shared:9 - cgroup2 cgroup2 rw,…"
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        mount.split_whitespace().nth(4).map(PathBuf::from)
    })
}

pub fn btf() -> Result<(), CheckError> {
    if fs::metadata("/sys/kernel/btf/vmlinux").is_ok() {
        Ok(())
    } else {
        Err(CheckError::NoBtf)
    }
}

/// Effective capability bits of this process.
fn effective_capabilities() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .unwrap_or(0)
}

pub fn capabilities() -> Result<(), CheckError> {
    let have = effective_capabilities();
    let missing: Vec<&str> = NEEDED_CAPABILITIES
        .iter()
        .filter(|(bit, _, _)| have & (1 << bit) == 0)
        .map(|(_, name, _)| *name)
        .collect();
    for (bit, name, why) in WANTED_CAPABILITIES {
        if have & (1 << bit) == 0 {
            tracing::warn!("without {name} the recorder cannot {why}");
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CheckError::Capabilities {
            missing: missing.join(", "),
        })
    }
}

/// All checks; the cgroup v2 mount point on success.
pub fn preflight() -> Result<PathBuf, CheckError> {
    capabilities()?;
    btf()?;
    cgroup2_mount()
}

/// One line of `dnsq-recorder check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub what: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it, when it is not fine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present.
    Ok,
    /// Absent, and the recorder works without it but knows less.
    Degraded,
    /// Absent, and the recorder cannot run.
    Missing,
}

/// What this machine offers the recorder, without loading anything.
pub fn survey() -> Vec<Finding> {
    let mut findings = Vec::new();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    findings.push(Finding {
        what: "kernel".into(),
        status: Status::Ok,
        detail: format!("Linux {}", kernel.trim()),
        fix: None,
    });
    let have = effective_capabilities();
    for (bit, name, why) in NEEDED_CAPABILITIES {
        findings.push(capability_finding(have, bit, name, why, Status::Missing));
    }
    for (bit, name, why) in WANTED_CAPABILITIES {
        findings.push(capability_finding(have, bit, name, why, Status::Degraded));
    }
    findings.push(match btf() {
        Ok(()) => Finding {
            what: "kernel BTF".into(),
            status: Status::Ok,
            detail: "/sys/kernel/btf/vmlinux (tp_btf programs and their types)".into(),
            fix: None,
        },
        Err(error) => Finding {
            what: "kernel BTF".into(),
            status: Status::Missing,
            detail: "/sys/kernel/btf/vmlinux is absent".into(),
            fix: Some(error.to_string()),
        },
    });
    findings.push(match cgroup2_mount() {
        Ok(path) => Finding {
            what: "cgroup v2".into(),
            status: Status::Ok,
            detail: format!(
                "mounted at {} (packet and socket hooks attach to its root)",
                path.display()
            ),
            fix: None,
        },
        Err(error) => Finding {
            what: "cgroup v2".into(),
            status: Status::Missing,
            detail: "no cgroup2 mount".into(),
            fix: Some(error.to_string()),
        },
    });
    // (tracepoint, what the recorder uses it for, whether it cannot run without it)
    let tracepoints = [
        (
            "sock_send_length",
            "learns socket owners from sends (sockets older than the recorder)",
            true,
        ),
        (
            "sock_recv_length",
            "learns socket owners from receives (accepted TCP sockets)",
            true,
        ),
        (
            "sched_process_exec",
            "keeps each new process's executable, for clients gone before /proc is read",
            false,
        ),
        (
            "sched_process_fork",
            "gives a forked child its parent's executable",
            false,
        ),
    ];
    // Read once: the kernel's BTF is several megabytes.
    let btf = fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default();
    for (tracepoint, role, required) in tracepoints {
        let found = btf_has(&btf, &format!("btf_trace_{tracepoint}"));
        findings.push(Finding {
            what: format!("tracepoint {tracepoint}"),
            status: match (found, required) {
                (true, _) => Status::Ok,
                (false, true) => Status::Missing,
                (false, false) => Status::Degraded,
            },
            detail: match (found, required) {
                (true, _) => format!("tp_btf: {role}"),
                (false, true) => format!(
                    "not in this kernel's BTF: the recorder cannot load without it ({role})"
                ),
                (false, false) => {
                    format!("not in this kernel's BTF: the recorder runs without it ({role})")
                }
            },
            fix: (!found && required)
                .then(|| "use a kernel of 6.x with the sock tracepoints".into()),
        });
    }
    findings
}

fn capability_finding(have: u64, bit: u32, name: &str, why: &str, absent: Status) -> Finding {
    let present = have & (1 << bit) != 0;
    Finding {
        what: name.into(),
        status: if present { Status::Ok } else { absent },
        detail: format!("to {why}"),
        fix: (!present).then(|| {
            format!(
                "run as root, or grant it: setcap {}+ep dnsq-recorder",
                name.to_lowercase()
            )
        }),
    }
}

/// Whether the kernel's BTF (`btf`, the blob) names a type: a cheap substring
/// search.
fn btf_has(btf: &[u8], type_name: &str) -> bool {
    let needle = format!("\0{type_name}\0");
    btf.windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_and_unified_cgroup2() {
        let hybrid = "25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      41 25 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_from_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "36 25 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_from_mountinfo(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let v1 = "30 25 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_from_mountinfo(v1), None);
    }
}
