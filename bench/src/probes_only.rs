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
};
use serde_json::json;

/// Attaches the probes, tells `NOTIFY_SOCKET` it is ready (as the recorder
/// does), then reads both rings every [`POLL_EVERY`] (the recorder's pace while
/// events come) until SIGINT or SIGTERM; prints what it read and what the
/// kernel lost (JSON).
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
    notify_ready().context("telling NOTIFY_SOCKET")?;

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

/// `READY=1` to the datagram socket named by `NOTIFY_SOCKET` (a path), if any.
fn notify_ready() -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = std::os::unix::net::UnixDatagram::unbound()?;
    socket.send_to(b"READY=1", path)?;
    Ok(())
}
