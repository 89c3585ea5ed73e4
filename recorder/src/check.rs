//! `dnsq-recorder check`: what the recorder needs, what this machine has, how the
//! probes attach, and what to do about anything missing.

use std::process::ExitCode;

use dnsq_recorder::{
    checks::{self, Finding, Status},
    loader::{ProbeConfig, Probes},
};

use crate::cli::Cli;

pub fn run(cli: &Cli) -> ExitCode {
    let mut findings = checks::survey();
    let ready = !findings.iter().any(|f| f.status == Status::Missing);
    if ready {
        findings.extend(try_attach(cli));
    } else {
        findings.push(Finding {
            what: "probes".into(),
            status: Status::Missing,
            detail: "not loaded: something above is missing".into(),
            fix: None,
        });
    }
    let width = findings.iter().map(|f| f.what.len()).max().unwrap_or(0);
    for finding in &findings {
        let status = match finding.status {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Missing => "MISSING",
        };
        println!("{status:<8}  {:<width$}  {}", finding.what, finding.detail);
        if let Some(fix) = &finding.fix {
            println!("{:<8}  {:<width$}  → {fix}", "", "");
        }
    }
    if findings.iter().any(|f| f.status == Status::Missing) {
        println!("\nthe recorder cannot run here (see MISSING above)");
        ExitCode::FAILURE
    } else {
        println!("\nthe recorder can run here");
        ExitCode::SUCCESS
    }
}

/// Loads and attaches every probe once, as the recorder would, then detaches:
/// the probes, then the libc lookup uprobes.
fn try_attach(cli: &Cli) -> Vec<Finding> {
    let cgroup_root = match checks::cgroup2_mount() {
        Ok(path) => path,
        Err(error) => {
            return vec![Finding {
                what: "probes".into(),
                status: Status::Missing,
                detail: error.to_string(),
                fix: None,
            }];
        }
    };
    let config = ProbeConfig {
        ports: cli.port.clone(),
        payload_cap: cli.payload_cap,
        ring_bytes: cli.ring_buffer_size,
        cgroup_root: cgroup_root.clone(),
    };
    match Probes::load(&config) {
        Ok(probes) => {
            let method = attach_method();
            let detail = format!(
                "{} programs loaded and attached ({}), then detached: {}",
                probes.attached.len(),
                probes.attached.join(", "),
                method
            );
            let libc = libc_finding(&probes);
            drop(probes);
            vec![
                Finding {
                    what: "probes".into(),
                    status: Status::Ok,
                    detail,
                    fix: None,
                },
                libc,
            ]
        }
        Err(error) => {
            let mut detail = format!("{error:#}");
            if let Some(log) = error.verifier_log() {
                detail.push_str("\nverifier log:\n");
                detail.push_str(&log);
            }
            vec![Finding {
                what: "probes".into(),
                status: Status::Missing,
                detail,
                fix: Some("report this with the output above".into()),
            }]
        }
    }
}

/// The libc files found and the lookup uprobes on each. Optional: without them
/// the packets are still seen, only processes behind a resolver daemon are not.
fn libc_finding(probes: &Probes) -> Finding {
    let files: Vec<String> = probes
        .libcs
        .iter()
        .map(|libc| {
            let functions = if libc.functions.is_empty() {
                "nothing probed".to_owned()
            } else {
                libc.functions.join(", ")
            };
            format!("\n  {}: {functions}", libc.file.describe())
        })
        .collect();
    let probed = probes
        .libcs
        .iter()
        .filter(|libc| !libc.functions.is_empty())
        .count();
    let detail = format!(
        "{} uprobes attached on {probed} of {} libc files, then detached:{}",
        probes.uprobes(),
        probes.libcs.len(),
        files.concat()
    );
    if probed == 0 {
        Finding {
            what: "libc lookups".into(),
            status: Status::Degraded,
            detail,
            fix: Some(
                "processes that resolve through a resolver daemon (nss-resolve, nscd) will \
                 show as that daemon only; the log (--log debug) says why each failed"
                    .into(),
            ),
        }
    } else {
        Finding {
            what: "libc lookups".into(),
            status: Status::Ok,
            detail,
            fix: None,
        }
    }
}

/// How the programs are attached, read back from this process's descriptors: BPF
/// links (`link_type` in fdinfo) or legacy attachments.
fn attach_method() -> String {
    let mut links = std::collections::BTreeMap::<String, usize>::new();
    if let Ok(entries) = std::fs::read_dir("/proc/self/fdinfo") {
        for entry in entries.flatten() {
            let Ok(info) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if let Some(kind) = info.lines().find_map(|l| l.strip_prefix("link_type:")) {
                *links.entry(kind.trim().to_owned()).or_default() += 1;
            }
        }
    }
    if links.is_empty() {
        return "attached without BPF links (legacy cgroup attach)".into();
    }
    let kinds: Vec<String> = links
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    format!("BPF links: {}", kinds.join(", "))
}
