//! Loads the eBPF object, configures it (ports, payload cap, ring size) and attaches
//! every program. Dropping [`Probes`] detaches everything: the programs are attached
//! through BPF links, which the kernel also releases if the recorder dies.
//!
//! The libc lookup uprobes are optional: each is put on every libc file
//! [`crate::libcs::find`] found, a file or function that cannot be probed is
//! skipped, and attaching to no libc at all is a warning (packet capture works
//! without them).

use std::{fs::File, path::PathBuf, time::Duration};

use aya::{
    Ebpf, EbpfLoader, Pod,
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock,
        CgroupSockAddr, ProgramError, UProbe,
        uprobe::{UProbeError, UProbeScope},
    },
};
use dnsq_common::{
    ExePath, LookupAnswerEvent, LookupEvent, PORT_BITMAP_WORDS, SockOwner, WAKEUP_FRACTION,
    counter, lookup_fn, names,
};

use crate::libcs::{self, LibcFile};

/// The compiled probes, built by build.rs.
static PROBES_ELF: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dnsq-probes"));

/// How often the capture loop reads the ring buffers while events come and the
/// probes do not wake it (see [`Probes::load`]): the most an event waits, at low
/// rates, before it is read (records then wait 250 ms in the pipeline anyway,
/// `LINK_DELAY_NS`, and a batch up to a second for its commit). Polling instead
/// of a wakeup an event cut the wakeups at 5k queries/s from ~2,600–5,300 a
/// second to ~50 (at 20 ms). Each wakeup costs far more than its events: the
/// recorder's code and data are cold again after the traffic's processes ran.
/// Measured side by side (2026-11-27, bench/run.py's quiet figure and
/// bench/compare.py): at 100 queries/s 20 ms took 0.053–0.069 s of the
/// recorder's CPU in 9 s (~445 wakeups), 50 ms 0.041, 100 ms 0.029–0.031 (~100
/// wakeups); at 1,000 q/s 100 ms took 13 % less than 20 ms; at 20k q/s 0.875 of
/// it (4 rounds, every pair lower).
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// How long the capture loop sleeps once no event has come for two poll
/// intervals and the pipeline holds nothing: the probes wake it for the first
/// event after a poll interval without a wakeup, so this wait only paces the
/// store's housekeeping (commits of the last batch, retention, counters).
pub const IDLE_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub ports: Vec<u16>,
    pub payload_cap: u32,
    pub ring_bytes: u32,
    /// Where cgroup v2 is mounted (found in /proc/self/mountinfo).
    pub cgroup_root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("could not open the cgroup v2 root {path}: {source}")]
    CgroupRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not load the eBPF object: {0}")]
    Object(#[source] aya::EbpfError),
    #[error("the kernel refused program {program}: {source}")]
    Program {
        program: &'static str,
        source: ProgramError,
    },
    #[error("could not configure map {map}: {detail}")]
    Map { map: &'static str, detail: String },
    #[error("could not read kernel BTF: {0}")]
    Btf(#[source] aya::BtfError),
}

impl LoadError {
    /// The verifier's log when the kernel rejected a program.
    pub fn verifier_log(&self) -> Option<String> {
        match self {
            Self::Program {
                source: ProgramError::LoadError { verifier_log, .. },
                ..
            } => Some(verifier_log.to_string()),
            _ => None,
        }
    }
}

/// Loaded and attached probes.
pub struct Probes {
    ebpf: Ebpf,
    pub attached: Vec<&'static str>,
    /// The libc files the lookup uprobes went on, and which functions in each.
    pub libcs: Vec<LibcProbes>,
}

/// The lookup uprobes attached to one libc file.
#[derive(Debug, Clone)]
pub struct LibcProbes {
    pub file: LibcFile,
    /// The functions probed in it (libc symbol names), in `lookup_fn::ALL` order,
    /// then the returns probed (`getaddrinfo (return)`).
    pub functions: Vec<&'static str>,
}

impl Probes {
    /// Lookup uprobes attached, over every libc file.
    pub fn uprobes(&self) -> usize {
        self.libcs.iter().map(|libc| libc.functions.len()).sum()
    }
}

/// The probes and how each attaches. Owner hooks go first so that sockets get owners
/// before packets are captured.
const CGROUP_SOCK_ADDR: [&str; 4] = [
    "dnsq_connect4",
    "dnsq_connect6",
    "dnsq_sendmsg4",
    "dnsq_sendmsg6",
];
const CGROUP_SOCK: [&str; 2] = ["dnsq_post_bind4", "dnsq_post_bind6"];
const TP_BTF: [(&str, &str); 2] = [
    ("dnsq_sock_send", "sock_send_length"),
    ("dnsq_sock_recv", "sock_recv_length"),
];
/// Optional: without them, a process gone before /proc is read has no `exe`.
const EXE_TP_BTF: [(&str, &str); 2] = [
    ("dnsq_exec", "sched_process_exec"),
    ("dnsq_fork", "sched_process_fork"),
];
const CGROUP_SKB: [(&str, CgroupSkbAttachType); 2] = [
    ("dnsq_egress", CgroupSkbAttachType::Egress),
    ("dnsq_ingress", CgroupSkbAttachType::Ingress),
];

/// Offsets `read` from the kernel's BTF, or `unknown` (zeros: the probes skip
/// those reads) with a warning that `what` will come from /proc only.
fn layout<T>(
    btf: &Result<crate::btf::Btf, crate::btf::BtfError>,
    read: fn(&crate::btf::Btf) -> Result<T, crate::btf::BtfError>,
    what: &str,
    unknown: T,
) -> T {
    match btf.as_ref().map_err(Clone::clone).and_then(read) {
        Ok(offsets) => offsets,
        Err(error) => {
            tracing::warn!(%error, "{what} will come from /proc only");
            unknown
        }
    }
}

fn program_error(program: &'static str) -> impl FnOnce(ProgramError) -> LoadError {
    move |source| LoadError::Program { program, source }
}

fn missing(program: &'static str) -> LoadError {
    LoadError::Map {
        map: "programs",
        detail: format!("program {program} is missing from the object"),
    }
}

impl Probes {
    pub fn load(config: &ProbeConfig) -> Result<Self, LoadError> {
        let cgroup = File::open(&config.cgroup_root).map_err(|source| LoadError::CgroupRoot {
            path: config.cgroup_root.clone(),
            source,
        })?;
        // Without the kernel's struct layouts the probes still run; only what
        // they would have read from the task falls back to /proc.
        let btf = crate::btf::Btf::kernel();
        let (leader_offset, comm_offset) =
            layout(&btf, crate::btf::task_offsets, "process names", (0, 0));
        let netns_offsets = layout(
            &btf,
            crate::btf::netns_offsets,
            "network namespaces",
            [0; 3],
        );
        let exe_offsets = layout(
            &btf,
            crate::btf::exe_offsets,
            "executables of exited processes",
            [0; 11],
        );
        // The packet programs wake the reader only when the ring fills past a
        // fraction of its size, for a process new on its socket, or after a
        // poll interval without a wakeup; the capture loop reads every POLL_EVERY
        // for the rest, while events come.
        let events_wakeup = config.ring_bytes / WAKEUP_FRACTION;
        let poll_interval_ns = POLL_EVERY.as_nanos() as u64;
        let mut ebpf = EbpfLoader::new()
            .override_global(names::PAYLOAD_CAP, &config.payload_cap, true)
            .override_global(names::EVENTS_WAKEUP_BYTES, &events_wakeup, true)
            .override_global(names::POLL_INTERVAL_NS, &poll_interval_ns, true)
            .override_global(names::TASK_GROUP_LEADER_OFFSET, &leader_offset, true)
            .override_global(names::TASK_COMM_OFFSET, &comm_offset, true)
            .override_global(names::NETNS_OFFSETS, &netns_offsets, true)
            .override_global(names::EXE_OFFSETS, &exe_offsets, true)
            .map_max_entries(names::EVENTS, config.ring_bytes)
            .load(PROBES_ELF)
            .map_err(LoadError::Object)?;
        set_ports(&mut ebpf, &config.ports)?;

        let btf = aya::Btf::from_sys_fs().map_err(LoadError::Btf)?;
        let mut attached = Vec::new();
        // Cgroup programs attach as links with `Single`: a link takes no flags and always
        // coexists with other programs on the cgroup (aya issue #1078; KERNEL-FACTS).
        for name in CGROUP_SOCK_ADDR {
            let prog: &mut CgroupSockAddr = program(&mut ebpf, name)?;
            prog.load().map_err(program_error(name))?;
            prog.attach(&cgroup, CgroupAttachMode::Single)
                .map_err(program_error(name))?;
            attached.push(name);
        }
        for name in CGROUP_SOCK {
            let prog: &mut CgroupSock = program(&mut ebpf, name)?;
            prog.load().map_err(program_error(name))?;
            prog.attach(&cgroup, CgroupAttachMode::Single)
                .map_err(program_error(name))?;
            attached.push(name);
        }
        for (name, tracepoint) in TP_BTF {
            let prog: &mut BtfTracePoint = program(&mut ebpf, name)?;
            prog.load(tracepoint, &btf).map_err(program_error(name))?;
            prog.attach().map_err(program_error(name))?;
            attached.push(name);
        }
        // Without the layout the walk cannot run: not attached at all, rather
        // than failing (and counting) at every exec.
        if exe_offsets != [0; 11] {
            for (name, tracepoint) in EXE_TP_BTF {
                let result = program::<BtfTracePoint>(&mut ebpf, name).and_then(|prog| {
                    prog.load(tracepoint, &btf).map_err(program_error(name))?;
                    prog.attach().map_err(program_error(name))
                });
                match result {
                    Ok(_) => attached.push(name),
                    Err(error) => {
                        let log = error.verifier_log().unwrap_or_default();
                        tracing::warn!(
                            %error,
                            program = name,
                            "executables of processes gone before /proc is read will be \
                             missing\n{log}"
                        );
                    }
                }
            }
        }
        for (name, attach_type) in CGROUP_SKB {
            let prog: &mut CgroupSkb = program(&mut ebpf, name)?;
            prog.load().map_err(program_error(name))?;
            prog.attach(&cgroup, attach_type, CgroupAttachMode::Single)
                .map_err(program_error(name))?;
            attached.push(name);
        }
        let libcs = attach_lookups(&mut ebpf, libcs::find());
        let programs = lookup_fn::ALL.iter().map(|&(_, _, program)| program);
        for program in programs.chain(lookup_fn::RETURNS.iter().map(|&(_, _, program, _)| program))
        {
            if libcs.iter().any(|libc| !libc.functions.is_empty())
                && ebpf.program(program).is_some()
            {
                attached.push(program);
            }
        }
        Ok(Self {
            ebpf,
            attached,
            libcs,
        })
    }

    /// The libc lookup ring buffer; can be taken once.
    pub fn take_lookups(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        self.take(names::LOOKUPS)
    }

    /// The event ring buffer; can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        self.take(names::EVENTS)
    }

    /// A handle on the socket-owner map for the user-space fallback.
    pub fn take_owners(&mut self) -> Result<BpfHashMap<MapData, u64, SockOwner>, LoadError> {
        self.take(names::SOCK_OWNERS)
    }

    /// A handle on the pid → executable map (exec.rs in the probes).
    pub fn take_exes(&mut self) -> Result<BpfHashMap<MapData, u32, ExePath>, LoadError> {
        self.take(names::EXES)
    }

    /// A handle on the counters, read with [`read_counters`].
    pub fn take_counters(&mut self) -> Result<PerCpuArray<MapData, u64>, LoadError> {
        self.take(names::COUNTERS)
    }

    /// The map `name` as the handle type `T`; each map can be taken once.
    fn take<T>(&mut self, name: &'static str) -> Result<T, LoadError>
    where
        T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self.ebpf.take_map(name).ok_or(LoadError::Map {
            map: name,
            detail: "missing (already taken?)".into(),
        })?;
        T::try_from(map).map_err(|e| LoadError::Map {
            map: name,
            detail: e.to_string(),
        })
    }
}

/// Loads the lookup uprobes and attaches each to each libc file. Nothing here is
/// fatal: what cannot be attached is logged and skipped.
fn attach_lookups(ebpf: &mut Ebpf, files: Vec<LibcFile>) -> Vec<LibcProbes> {
    let mut loaded = Vec::new();
    let entries = lookup_fn::ALL
        .iter()
        .map(|&(_, symbol, name)| (symbol, name, symbol));
    // A return probe is listed as "symbol (return)". Aya attaches a program of
    // the `uretprobe` section at the function's return.
    let returns = lookup_fn::RETURNS
        .iter()
        .map(|&(_, symbol, name, label)| (symbol, name, label));
    for (symbol, name, label) in entries.chain(returns) {
        let result =
            program::<UProbe>(ebpf, name).and_then(|prog| prog.load().map_err(program_error(name)));
        match result {
            Ok(()) => loaded.push((symbol, name, label)),
            Err(error) => {
                let log = error.verifier_log().unwrap_or_default();
                tracing::warn!(%error, program = name, "{label} will not be probed\n{log}");
            }
        }
    }
    let mut libcs = Vec::new();
    for file in files {
        let mut functions = Vec::new();
        for &(symbol, name, label) in &loaded {
            let Some(Ok(prog)) = ebpf.program_mut(name).map(<&mut UProbe>::try_from) else {
                continue;
            };
            match prog.attach(symbol, &file.open_path, UProbeScope::AllProcesses) {
                Ok(_) => functions.push(label),
                Err(ProgramError::UProbeError(UProbeError::SymbolError { .. })) => {
                    tracing::debug!(file = %file.describe(), symbol, "no such function in this libc");
                }
                Err(error) => {
                    tracing::warn!(
                        error = %ErrorChain(&error),
                        file = %file.describe(),
                        symbol,
                        "could not probe a libc function"
                    );
                }
            }
        }
        if functions.is_empty() {
            tracing::warn!(file = %file.describe(), "no lookup function of this libc could be probed");
        } else {
            tracing::info!(
                file = %file.describe(),
                functions = %functions.join(", "),
                "libc lookups probed"
            );
        }
        libcs.push(LibcProbes { file, functions });
    }
    if !libcs.iter().any(|libc| !libc.functions.is_empty()) {
        tracing::warn!(
            "no libc lookup function is probed: processes that resolve through a local \
             resolver daemon (nss-resolve, nscd) will show as that daemon only"
        );
    }
    libcs
}

/// An error with its sources, `a: b: c`.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| missing(name))?
        .try_into()
        .map_err(program_error(name))
}

fn set_ports(ebpf: &mut Ebpf, ports: &[u16]) -> Result<(), LoadError> {
    let map_error = |detail: String| LoadError::Map {
        map: names::PORTS,
        detail,
    };
    let mut bitmap = vec![0u64; PORT_BITMAP_WORDS as usize];
    for &port in ports {
        bitmap[usize::from(port >> 6)] |= 1 << (port & 63);
    }
    let map = ebpf
        .map_mut(names::PORTS)
        .ok_or_else(|| map_error("missing".into()))?;
    let mut array: Array<_, u64> = Array::try_from(map).map_err(|e| map_error(e.to_string()))?;
    for (index, word) in bitmap.iter().enumerate() {
        if *word != 0 {
            array
                .set(index as u32, word, 0)
                .map_err(|e| map_error(e.to_string()))?;
        }
    }
    Ok(())
}

/// Kernel counters summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelCounters {
    pub delivered: u64,
    pub lost_ringbuf_full: u64,
    pub lost_load_failed: u64,
    pub lost_parse_failed: u64,
    pub owner_unknown: u64,
    pub owner_updates: u64,
    pub owner_update_failed: u64,
    /// Libc lookup events delivered / lost (ring buffer full, name unreadable).
    pub lookups_delivered: u64,
    pub lookups_lost: u64,
    /// Executable paths the exec/fork tracepoints recorded / could not record.
    pub exes_recorded: u64,
    pub exes_failed: u64,
}

impl KernelCounters {
    /// Packet events the kernel could not deliver, whatever the reason (lost
    /// lookup events are `lookups_lost`).
    pub fn lost(&self) -> u64 {
        self.lost_ringbuf_full + self.lost_load_failed + self.lost_parse_failed
    }
}

pub fn read_counters(map: &PerCpuArray<MapData, u64>) -> std::io::Result<KernelCounters> {
    let sum = |index: u32| -> std::io::Result<u64> {
        let values = map
            .get(&index, 0)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(values.iter().sum())
    };
    Ok(KernelCounters {
        delivered: sum(counter::DELIVERED)?,
        lost_ringbuf_full: sum(counter::LOST_RINGBUF_FULL)?,
        lost_load_failed: sum(counter::LOST_LOAD_FAILED)?,
        lost_parse_failed: sum(counter::LOST_PARSE_FAILED)?,
        owner_unknown: sum(counter::OWNER_UNKNOWN)?,
        owner_updates: sum(counter::OWNER_UPDATES)?,
        owner_update_failed: sum(counter::OWNER_UPDATE_FAILED)?,
        lookups_delivered: sum(counter::LOOKUPS_DELIVERED)?,
        lookups_lost: sum(counter::LOOKUPS_LOST)?,
        exes_recorded: sum(counter::EXES_RECORDED)?,
        exes_failed: sum(counter::EXES_FAILED)?,
    })
}

// Pod is needed for SockOwner map access; make sure the common crate provides it.
const _: fn() = || {
    fn assert_pod<T: Pod>() {}
    assert_pod::<SockOwner>();
    assert_pod::<LookupEvent>();
    assert_pod::<LookupAnswerEvent>();
    assert_pod::<ExePath>();
};
