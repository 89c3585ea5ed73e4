//! `dnsq-recorder`: records every DNS message on the host with the process behind it.

/// With the store on a thread of its own (store/runner.rs), records made on the
/// capture thread are read, and some of their memory freed, on the store's.
/// glibc's malloc handles such cross-thread frees through the allocating arena's
/// lock; mimalloc queues them to their page without a lock. On one thread it is
/// faster too: glibc spent ~15 % of the benchmark's history generation, which
/// writes through the same store, in its free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `purge_delay` option (its number in `mimalloc.h`; libmimalloc-sys
/// names no constant for it): memory freed goes back to the kernel after 10 ms
/// instead of 1 s. The recorder frees a steady stream of records, and with
/// 1 s about a second's worth of them stays resident: under 50k queries/s the
/// heap read 33–43 MB with 1 s and 19–21 MB with 10 ms (three runs each); the
/// extra madvise calls cost ~0.1 s of system time in 12 s (~0.05 µs a message).
/// `MIMALLOC_PURGE_DELAY` still overrides it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_MS: std::ffi::c_long = 10;

fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options; any delay is a valid value.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

use std::{
    os::fd::{AsRawFd, FromRawFd},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use cli::{Cli, Command};
use dnsq_recorder::{
    attribution::{Attributor, OwnerMap},
    checks,
    loader::{self, KernelCounters, ProbeConfig, Probes},
    output::JsonLines,
    pipeline::{Pipeline, PipelineStats, Sink},
    privileges,
    procinfo::{self, ProcInfo},
    record::{LookupRecord, MessageRecord},
    store::{self, Store, StoreOptions, StoreRunner, StoreStats},
};

/// How often counters are logged (losses) and stored.
const COUNTERS_EVERY: Duration = Duration::from_secs(10);

/// Everything the recorder counted, printed as the last line with `--print`.
#[derive(serde::Serialize)]
struct Summary {
    kind: &'static str,
    #[serde(flatten)]
    kernel: KernelCounters,
    #[serde(flatten)]
    pipeline: PipelineStats,
}

/// A `counters` row of the store: totals since the run started.
#[derive(serde::Serialize)]
struct Counters {
    #[serde(flatten)]
    kernel: KernelCounters,
    #[serde(flatten)]
    pipeline: PipelineStats,
    #[serde(flatten)]
    store: StoreStats,
}

/// Where records go: stdout (`--print`) or the store.
enum Output<W: std::io::Write> {
    Print(JsonLines<W>),
    Store(StoreRunner),
}

impl<W: std::io::Write> Output<W> {
    /// The reader of `--print` went away.
    fn closed(&self) -> bool {
        matches!(self, Output::Print(json) if json.closed)
    }
}

impl<W: std::io::Write> Sink for Output<W> {
    fn write(&mut self, record: MessageRecord) -> anyhow::Result<()> {
        match self {
            Output::Print(json) => json.write(record),
            Output::Store(store) => store.write(record),
        }
    }

    fn write_lookup(&mut self, record: LookupRecord) -> anyhow::Result<()> {
        match self {
            Output::Print(json) => json.write_lookup(record),
            Output::Store(store) => store.write_lookup(record),
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Output::Print(json) => json.flush(),
            Output::Store(store) => store.flush(),
        }
    }
}

mod check;
mod cli;

fn main() -> ExitCode {
    tune_allocator();
    let cli = match Cli::load() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("dnsq-recorder: error: {error:#}");
            return ExitCode::from(2);
        }
    };
    match &cli.command {
        Some(Command::Generate { what }) => {
            return match Cli::generate(what) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("dnsq-recorder: error: {error:#}");
                    ExitCode::from(2)
                }
            };
        }
        Some(Command::Check) => return check::run(&cli),
        Some(Command::Compact) => return compact(&cli.db),
        None => {}
    }
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

/// `dnsq-recorder compact`: VACUUM the database, offline.
fn compact(db: &std::path::Path) -> ExitCode {
    match store::compact(db) {
        Ok(done) => {
            let mb = |bytes: u64| bytes as f64 / 1e6;
            println!(
                "compacted {}: {:.1} MB -> {:.1} MB in {:.1} s",
                db.display(),
                mb(done.bytes_before),
                mb(done.bytes_after),
                done.elapsed.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error @ store::StoreError::Locked { .. }) => {
            eprintln!(
                "dnsq-recorder: error: {error}: stop it first (systemctl stop dnsq-recorder)"
            );
            ExitCode::from(2)
        }
        Err(error) => {
            let error = anyhow::Error::new(error).context(format!("compacting {}", db.display()));
            eprintln!("dnsq-recorder: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // What the machine lacks comes first (no database is created for a recorder
    // that cannot run); then the database, before the slow probe loading, so that a
    // bad path fails fast.
    let cgroup_root = checks::preflight()?;
    // Before any thread starts, so that each inherits it.
    match privileges::raise_priority(cli.nice) {
        Ok(Some(before)) => tracing::info!(nice = cli.nice, before, "raised the priority"),
        Ok(None) => {}
        Err(error) => tracing::warn!(
            %error,
            nice = cli.nice,
            "could not raise the priority (it needs CAP_SYS_NICE; under systemd, Nice= in \
             the unit): behind the host's other work the recorder may lose events"
        ),
    }
    let store = if cli.print {
        None
    } else {
        Some(open_store(&cli)?)
    };
    let config = ProbeConfig {
        ports: cli.port.clone(),
        payload_cap: cli.payload_cap,
        ring_bytes: cli.ring_buffer_size,
        cgroup_root: cgroup_root.clone(),
    };

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
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
    let mut lookups = probes.take_lookups()?;
    let owners = probes.take_owners()?;
    let exes = probes.take_exes()?;
    let counters = probes.take_counters()?;
    tracing::info!(
        programs = probes.attached.len(),
        libc_files = probes.libcs.iter().filter(|libc| !libc.functions.is_empty()).count(),
        uprobes = probes.uprobes(),
        ports = ?config.ports,
        cgroup = %cgroup_root.display(),
        "probes attached"
    );
    // Everything privileged is done: the kernel objects are open descriptors now.
    match privileges::drop_to_runtime() {
        Ok(kept) => tracing::info!(kept = ?kept, "dropped every other capability"),
        Err(error) => tracing::warn!(%error, "could not drop capabilities"),
    }
    let sink = match store {
        None => Output::Print(JsonLines::new(std::io::stdout().lock())),
        Some(mut store) => {
            // On a thread of its own only where a core is free for it (runner.rs).
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let own_thread = cli.store_thread.own_thread(cpus);
            let run = store
                .start_run(&run_config(&cli, &config, own_thread).to_string())
                .context("recording the run's start in the database")?;
            tracing::info!(
                db = %store.path().display(),
                run,
                store_thread = own_thread,
                cpus,
                "storing messages"
            );
            let store =
                StoreRunner::start(store, own_thread).context("starting the store's thread")?;
            Output::Store(store)
        }
    };
    let mut pipeline = Pipeline::new(
        Attributor::new(owners, cgroup_root.clone()),
        ProcInfo::new(cgroup_root).with_kernel_exes(Box::new(move |pid| {
            exes.get(&pid, 0).ok().as_ref().and_then(procinfo::exe_path)
        })),
        sink,
    );
    // Ready only now that events are read at once: short-lived clients should
    // find the recorder able to look at their /proc entries while they still
    // exist (their executables are also kept by the probes, the rest is not).
    notify_ready();
    let mut reported = KernelCounters::default();
    let result = capture(
        &mut pipeline,
        &mut events,
        &mut lookups,
        &counters,
        &stop,
        &mut reported,
        probes,
    );
    let kernel = loader::read_counters(&counters).context("reading kernel counters");
    report_losses(&counters, reported);
    let stats = pipeline.stats();
    let stopped = |kernel: &KernelCounters| {
        tracing::info!(
            delivered = kernel.delivered,
            lost = kernel.lost(),
            messages = stats.messages,
            lookups = stats.lookups,
            lookups_lost = kernel.lookups_lost,
            "stopped"
        );
    };
    match pipeline.sink_mut() {
        Output::Print(sink) => {
            result?;
            let kernel = kernel?;
            stopped(&kernel);
            let summary = Summary {
                kind: "stats",
                kernel,
                pipeline: stats,
            };
            sink.line(&summary)?;
            Sink::flush(sink)?;
        }
        Output::Store(store) => {
            let kernel = kernel.unwrap_or(reported);
            stopped(&kernel);
            // The last counters row must count the records still in memory as
            // committed (or, if the database fails, as pending), not as waiting.
            store.commit_all();
            let store_stats = store.stats();
            store.record_counters(&Counters {
                kernel,
                pipeline: stats,
                store: store_stats,
            });
            let reason = match &result {
                Ok(()) => "signal".to_owned(),
                Err(error) => format!("error: {error:#}"),
            };
            let finished = store.finish(&reason);
            result?;
            let stored = finished.context("writing the last messages to the database")?;
            tracing::info!(
                committed = stored.committed,
                dropped = stored.dropped,
                expired = stored.expired,
                interned_expired = stored.interned_expired,
                "database closed"
            );
        }
    }
    Ok(())
}

/// The capture loop, until a signal (or the `--print` reader goes away), then the
/// drain of what the kernel already queued.
fn capture<W: std::io::Write>(
    pipeline: &mut Pipeline<
        aya::maps::HashMap<aya::maps::MapData, u64, dnsq_common::SockOwner>,
        Output<W>,
    >,
    events: &mut aya::maps::RingBuf<aya::maps::MapData>,
    lookups: &mut aya::maps::RingBuf<aya::maps::MapData>,
    counters: &aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    stop: &AtomicBool,
    reported: &mut KernelCounters,
    probes: Probes,
) -> anyhow::Result<()> {
    // The packet probes wake us only when their ring fills past a fraction of its
    // size or for a process new on its socket (loader.rs); otherwise the rings are
    // read every POLL_EVERY. Edge-triggered, so that data already queued does not
    // end the wait at once: each wait reads a batch of events, not one.
    // SAFETY: epoll_create1 takes no pointer; a descriptor it returns is ours.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(std::io::Error::last_os_error()).context("creating an epoll descriptor");
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let epoll = unsafe { std::os::fd::OwnedFd::from_raw_fd(epoll) };
    for fd in [events.as_raw_fd(), lookups.as_raw_fd()] {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: fd as u64,
        };
        // SAFETY: valid descriptors and a valid event.
        if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(std::io::Error::last_os_error()).context("watching the ring buffers");
        }
    }
    // Asleep, the loop still ticks the store often enough to commit within its
    // batch window.
    let idle_poll = match pipeline.sink_mut() {
        Output::Store(store) => loader::IDLE_POLL.min(store.batch_window()),
        Output::Print(_) => loader::IDLE_POLL,
    };
    let mut last_report = Instant::now();
    let mut last_event = Instant::now();
    while !stop.load(Ordering::Relaxed) && !pipeline.sink_mut().closed() {
        wait_readable(
            &epoll,
            poll_timeout(last_event.elapsed(), pipeline.holds_records(), idle_poll),
        );
        if read_rings(pipeline, lookups, events)? {
            last_event = Instant::now();
        }
        pipeline.tick()?;
        if last_report.elapsed() >= COUNTERS_EVERY {
            *reported = report_losses(counters, *reported);
            last_report = Instant::now();
            let stats = pipeline.stats();
            if let Output::Store(store) = pipeline.sink_mut() {
                let store_stats = store.stats();
                store.record_counters(&Counters {
                    kernel: *reported,
                    pipeline: stats,
                    store: store_stats,
                });
            }
        }
    }

    // Detach first so nothing new arrives, then drain what is already queued.
    drop(probes);
    read_rings(pipeline, lookups, events)?;
    pipeline.finish()
}

/// Hands everything queued in the rings to the pipeline; whether there was
/// anything. Lookups first: a lookup precedes the queries made for it, and both
/// queues meet in the pipeline's time order anyway.
fn read_rings<M: OwnerMap, S: Sink>(
    pipeline: &mut Pipeline<M, S>,
    lookups: &mut aya::maps::RingBuf<aya::maps::MapData>,
    events: &mut aya::maps::RingBuf<aya::maps::MapData>,
) -> anyhow::Result<bool> {
    let mut read = false;
    while let Some(item) = lookups.next() {
        pipeline.handle_lookup_event(&item)?;
        read = true;
    }
    while let Some(item) = events.next() {
        pipeline.handle_event(&item)?;
        read = true;
    }
    Ok(read)
}

/// Opens the database for writing with the command line's settings.
fn open_store(cli: &Cli) -> anyhow::Result<Store> {
    let options = StoreOptions {
        batch_size: cli.batch_size as usize,
        batch_window: cli.batch_window,
        retain: cli.retain.0,
        max_db_size: cli.max_db_size.0,
        ..StoreOptions::default()
    };
    let store = store::open_for_writing(&cli.db)
        .and_then(|store| store.with_options(options))
        .with_context(|| {
            format!(
                "opening the database {} (see --db or DNSQ_DB)",
                cli.db.display()
            )
        })?;
    Ok(store)
}

/// The run's settings, kept in its `runs` row; `store_own_thread` is what
/// `store_thread` came to on this machine.
fn run_config(cli: &Cli, probes: &ProbeConfig, store_own_thread: bool) -> serde_json::Value {
    serde_json::json!({
        "ports": probes.ports,
        "payload_cap": probes.payload_cap,
        "ring_buffer_size": probes.ring_bytes,
        "cgroup_root": probes.cgroup_root,
        "db": cli.db,
        "retain_secs": cli.retain.0.map(|retain| retain.as_secs()),
        "max_db_size": cli.max_db_size.0,
        "batch_size": cli.batch_size,
        "batch_window_ms": cli.batch_window.as_millis() as u64,
        "store_thread": cli.store_thread,
        "store_own_thread": store_own_thread,
        "nice": cli.nice,
        "nice_effective": privileges::current_nice().ok(),
    })
}

/// Logs kernel-side losses since the last report; losses are never silent.
fn report_losses(
    counters: &aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    previous: KernelCounters,
) -> KernelCounters {
    match loader::read_counters(counters) {
        Ok(now) => {
            if now.lookups_lost > previous.lookups_lost {
                tracing::warn!(
                    lost = now.lookups_lost - previous.lookups_lost,
                    total_lost = now.lookups_lost,
                    "the kernel could not deliver some libc lookup events"
                );
            }
            if now.exes_failed > previous.exes_failed {
                // Not an event lost: those processes' `exe` comes from /proc
                // alone (absent if they are gone before it is read).
                tracing::warn!(
                    failed = now.exes_failed - previous.exes_failed,
                    total_failed = now.exes_failed,
                    "the kernel could not record the executable of some new processes"
                );
            }
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

/// How long the capture loop may wait for the rings, `quiet` after it last read
/// an event. While events come, a poll interval: most events do not wake it. Once
/// none has come for two poll intervals, the probes' last forced wakeup is more
/// than a poll interval old, so the next event wakes the loop (maps.rs
/// `quiet_for_a_poll`) and it can sleep for `idle_poll` (a second, or the store's
/// batch window if shorter), unless the pipeline `holds_records` due out with
/// time. An idle recorder thus wakes about once a second instead of ten times,
/// which a busy host's other work felt (iperf3 on loopback lost ~3 % more
/// throughput to a polling recorder than to a stopped one).
fn poll_timeout(quiet: Duration, holds_records: bool, idle_poll: Duration) -> Duration {
    if quiet >= 2 * loader::POLL_EVERY && !holds_records {
        idle_poll.max(loader::POLL_EVERY)
    } else {
        loader::POLL_EVERY
    }
}

/// Waits until the kernel wakes a ring buffer in `epoll` (or the timeout passes).
fn wait_readable(epoll: &std::os::fd::OwnedFd, timeout: Duration) {
    let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 2];
    // SAFETY: a valid epoll descriptor and buffer, its length given; an
    // interrupted or failed wait just ends the wait.
    unsafe {
        libc::epoll_wait(
            epoll.as_raw_fd(),
            ready.as_mut_ptr(),
            ready.len() as libc::c_int,
            timeout.as_millis() as libc::c_int,
        )
    };
}

/// Tells systemd (or a test harness) that every probe is attached; a failure is
/// only logged, as the recorder runs the same without a supervisor.
fn notify_ready() {
    if let Err(error) = dnsq_recorder::notify::ready() {
        tracing::warn!(%error, "could not notify readiness");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        loader::{IDLE_POLL, POLL_EVERY},
        poll_timeout,
    };

    #[test]
    fn the_capture_loop_sleeps_only_after_two_quiet_polls_with_nothing_held() {
        let quiet = 2 * POLL_EVERY;
        assert_eq!(poll_timeout(Duration::ZERO, false, IDLE_POLL), POLL_EVERY);
        // A poll interval after an event, the probes' last wakeup may be recent
        // enough that the next event does not wake the loop.
        assert_eq!(
            poll_timeout(quiet - Duration::from_millis(1), false, IDLE_POLL),
            POLL_EVERY
        );
        // Records held for linking are released by the loop's ticks.
        assert_eq!(poll_timeout(quiet, true, IDLE_POLL), POLL_EVERY);
        assert_eq!(poll_timeout(quiet, false, IDLE_POLL), IDLE_POLL);
        // A short batch window (`--batch-window 100ms`) is kept while asleep, but
        // the loop never polls more often than while events come.
        let window = Duration::from_millis(100);
        assert_eq!(poll_timeout(quiet, false, window), window);
        assert_eq!(
            poll_timeout(quiet, false, Duration::from_millis(1)),
            POLL_EVERY
        );
    }
}
