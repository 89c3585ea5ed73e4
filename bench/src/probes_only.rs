//! `dnsq-bench probes-only`: the recorder's kernel programs attached, and their
//! events read and dropped, with none of the recorder's own work (decoding,
//! pairing, attribution, storing).
//!
//! The rate figure runs dnsperf with this as a third arm: what the traffic pays
//! for the programs alone (their run time, the ring buffer's cache lines and
//! wakeups) against what it pays for the whole recorder, measured side by side
//! instead of inferred from bpf_stats.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Instant,
};

use anyhow::Context;
use dnsq_common::{DEFAULT_PAYLOAD_CAP, DEFAULT_RING_BYTES};
use dnsq_recorder::{
    checks,
    loader::{self, POLL_EVERY, ProbeConfig, Probes},
    notify,
};
use serde_json::json;

/// Attaches the probes, tells `NOTIFY_SOCKET` it is ready (`notify::ready`, as
/// the recorder does), then reads both rings every [`POLL_EVERY`] (the
/// recorder's pace while events come) until SIGINT or SIGTERM; prints what it
/// read and what the kernel lost (JSON).
pub fn run() -> anyhow::Result<()> {
    let cgroup_root = checks::preflight().context("the probes cannot be attached here")?;
    let config = ProbeConfig {
        ports: vec![53],
        payload_cap: DEFAULT_PAYLOAD_CAP,
        ring_bytes: DEFAULT_RING_BYTES,
        cgroup_root,
    };
    let mut probes = Probes::load(&config).context("loading the recorder's probes")?;
    let mut events = probes.take_events()?;
    let mut lookups = probes.take_lookups()?;
    let counters = probes.take_counters()?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    notify::ready().context("telling NOTIFY_SOCKET")?;

    let started = Instant::now();
    let mut read = 0u64;
    let mut drain = || {
        while lookups.next().is_some() {
            read += 1;
        }
        while events.next().is_some() {
            read += 1;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(POLL_EVERY);
        drain();
    }
    drop(probes);
    drain();
    let kernel = loader::read_counters(&counters).context("reading the kernel counters")?;
    println!(
        "{}",
        json!({
            "events_read": read,
            "delivered": kernel.delivered,
            "lost": kernel.lost(),
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
