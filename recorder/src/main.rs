//! `dnsq-recorder`: records every DNS message on the host with the process behind it.

use std::{
    os::fd::AsRawFd,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use dnsq_common::{DEFAULT_PAYLOAD_CAP, DEFAULT_RING_BYTES, MAX_PAYLOAD};
use dnsq_recorder::{
    attribution::Attributor,
    checks,
    loader::{self, KernelCounters, ProbeConfig, Probes},
    output::JsonLines,
    pipeline::{Pipeline, PipelineStats},
    procinfo::ProcInfo,
};

/// Records every DNS query and answer on this host with the process that sent or
/// received it.
#[derive(Debug, Parser)]
#[command(version, after_help = "Examples:\n  \
    sudo dnsq-recorder --print                 # live JSON, one message per line\n  \
    sudo dnsq-recorder --print --port 53,5353  # also watch mDNS")]
struct Cli {
    /// Write one JSON object per DNS message to stdout instead of storing it.
    #[arg(long)]
    print: bool,

    /// UDP/TCP ports that carry DNS (the full list).
    #[arg(long, value_delimiter = ',', default_value = "53", env = "DNSQ_PORTS")]
    port: Vec<u16>,

    /// Most bytes of each DNS message copied from the kernel; longer messages are
    /// recorded with their true length and marked truncated.
    #[arg(long, default_value_t = DEFAULT_PAYLOAD_CAP, value_parser = clap::value_parser!(u32).range(12..=MAX_PAYLOAD as i64))]
    payload_cap: u32,

    /// Size of the kernel → recorder ring buffer in bytes (a power of two, at least
    /// 4096). Events that do not fit are counted as lost.
    #[arg(long, default_value_t = DEFAULT_RING_BYTES)]
    ring_buffer_size: u32,

    /// Log filter (tracing's EnvFilter syntax), e.g. `debug`.
    #[arg(long, env = "DNSQ_LOG", default_value = "info")]
    log: String,
}

/// Everything the recorder counted, printed as the last line with `--print`.
#[derive(serde::Serialize)]
struct Summary {
    kind: &'static str,
    #[serde(flatten)]
    kernel: KernelCounters,
    #[serde(flatten)]
    pipeline: PipelineStats,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dnsq-recorder: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if !cli.print {
        bail!("no store is configured yet: run with --print to write JSON to stdout");
    }
    if !cli.ring_buffer_size.is_power_of_two() || cli.ring_buffer_size < 4096 {
        bail!(
            "--ring-buffer-size {} must be a power of two of at least 4096",
            cli.ring_buffer_size
        );
    }
    if cli.port.is_empty() || cli.port.contains(&0) {
        bail!("--port needs one or more ports between 1 and 65535");
    }
    let cgroup_root = checks::preflight()?;
    let config = ProbeConfig {
        ports: cli.port.clone(),
        payload_cap: cli.payload_cap,
        ring_bytes: cli.ring_buffer_size,
        cgroup_root: cgroup_root.clone(),
    };

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing signal handlers")?;
    }

    let mut probes = match Probes::load(&config) {
        Ok(probes) => probes,
        Err(error) => {
            if let Some(log) = error.verifier_log() {
                eprintln!("verifier log:\n{log}");
            }
            return Err(error).context("loading the eBPF probes");
        }
    };
    let mut events = probes.take_events()?;
    let owners = probes.take_owners()?;
    let counters = probes.take_counters()?;
    tracing::info!(
        programs = probes.attached.len(),
        ports = ?config.ports,
        cgroup = %cgroup_root.display(),
        "probes attached"
    );
    notify_ready();

    let sink = JsonLines::new(std::io::stdout().lock());
    let mut pipeline = Pipeline::new(
        Attributor::new(owners, cgroup_root.clone()),
        ProcInfo::new(cgroup_root),
        sink,
    );
    let mut reported = KernelCounters::default();
    let mut last_report = Instant::now();
    let fd = events.as_raw_fd();
    while !stop.load(Ordering::Relaxed) && !pipeline.sink_mut().closed {
        wait_readable(fd, Duration::from_millis(100));
        while let Some(item) = events.next() {
            pipeline.handle_event(&item)?;
        }
        pipeline.tick()?;
        if last_report.elapsed() >= Duration::from_secs(10) {
            reported = report_losses(&counters, reported);
            last_report = Instant::now();
        }
    }

    // Detach first so nothing new arrives, then drain what is already queued.
    drop(probes);
    while let Some(item) = events.next() {
        pipeline.handle_event(&item)?;
    }
    pipeline.finish()?;
    let kernel = loader::read_counters(&counters).context("reading kernel counters")?;
    report_losses(&counters, reported);
    let summary = Summary {
        kind: "stats",
        kernel,
        pipeline: pipeline.stats(),
    };
    tracing::info!(
        delivered = kernel.delivered,
        lost = kernel.lost(),
        messages = summary.pipeline.messages,
        "stopped"
    );
    let sink = pipeline.sink_mut();
    sink.line(&summary)?;
    dnsq_recorder::pipeline::Sink::flush(sink)?;
    Ok(())
}

/// Logs kernel-side losses since the last report; losses are never silent.
fn report_losses(
    counters: &aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    previous: KernelCounters,
) -> KernelCounters {
    match loader::read_counters(counters) {
        Ok(now) => {
            if now.lost() > previous.lost() {
                tracing::warn!(
                    ring_buffer_full = now.lost_ringbuf_full - previous.lost_ringbuf_full,
                    payload_unreadable = now.lost_load_failed - previous.lost_load_failed,
                    headers_unparsable = now.lost_parse_failed - previous.lost_parse_failed,
                    total_lost = now.lost(),
                    "the kernel could not deliver some DNS events"
                );
            }
            now
        }
        Err(error) => {
            tracing::warn!(%error, "could not read kernel counters");
            previous
        }
    }
}

fn wait_readable(fd: i32, timeout: Duration) {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; an interrupted or failed poll just ends the wait.
    unsafe { libc::poll(&mut pollfd, 1, timeout.as_millis() as libc::c_int) };
}

/// Tells systemd (or a test harness) that every probe is attached: `READY=1` to
/// the datagram socket in NOTIFY_SOCKET (sd_notify(3); `@` means abstract).
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = (|| -> std::io::Result<()> {
        use std::os::{linux::net::SocketAddrExt, unix::net::{SocketAddr, UnixDatagram}};
        let socket = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => SocketAddr::from_pathname(PathBuf::from(&path))?,
        };
        socket.send_to_addr(b"READY=1", &address)?;
        Ok(())
    })();
    if let Err(error) = result {
        tracing::warn!(%error, "could not notify readiness");
    }
}
