//! Where the store runs: on the pipeline's thread, or beside it on a thread of its
//! own ([`Background`]).
//!
//! Each costs something the other does not. On its own thread the store commits
//! while the pipeline reads the ring buffer, so with a core free for each the
//! ring drains up to ~1.7 times as fast (the store is ~40 % of a message's
//! instructions: callgrind of examples/replay.rs); but every record is written on
//! one core and read on the other, and the two threads wake each other for every
//! batch. Side by side on the benchmark's two-core machine (`bench/compare.py`,
//! 2026-11-27), the store on the pipeline's thread cost 0.92 and, an hour later,
//! 0.79 of the recorder's CPU at 20k queries/s (6 rounds each; the second, every
//! pair lower) and 0.88 at the highest rate dnsperf reached (~40k queries/s, 4
//! rounds, every pair lower), and lost nothing at 50k queries/s. With two CPUs or
//! fewer there is no free core to gain from, and the CPU the recorder spends is
//! taken from the traffic it watches: [`Placement::Auto`] keeps the store on the
//! pipeline's thread there and gives it a thread of its own on bigger machines.

use std::{path::Path, time::Duration};

use super::{Background, Store, StoreError, StoreStats};
use crate::{
    pipeline::Sink,
    record::{LookupRecord, MessageRecord},
};

/// The `store_thread` setting. Its names are the flag's (clap) and the
/// configuration file's and run config's (serde): `auto`, `yes`, `no`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// A thread of its own when the recorder may run on more than
    /// [`Placement::INLINE_UP_TO_CPUS`] CPUs.
    #[default]
    Auto,
    /// Always on a thread of its own.
    Yes,
    /// Always on the pipeline's thread.
    No,
}

impl Placement {
    /// With this many CPUs or fewer, `auto` keeps the store on the pipeline's
    /// thread.
    pub const INLINE_UP_TO_CPUS: usize = 2;

    /// Whether the store gets a thread of its own, given the CPUs the recorder
    /// may run on (its affinity and cgroup quota: `available_parallelism`).
    pub fn own_thread(self, cpus: usize) -> bool {
        match self {
            Placement::Auto => cpus > Self::INLINE_UP_TO_CPUS,
            Placement::Yes => true,
            Placement::No => false,
        }
    }
}

/// The store, on the pipeline's thread or on its own: the same calls either way.
pub enum StoreRunner {
    Inline(Box<Store>),
    Thread(Box<Background>),
}

impl StoreRunner {
    /// Starts `store` where `own_thread` says.
    pub fn start(store: Store, own_thread: bool) -> std::io::Result<Self> {
        Ok(if own_thread {
            StoreRunner::Thread(Box::new(Background::spawn(store)?))
        } else {
            StoreRunner::Inline(Box::new(store))
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            StoreRunner::Inline(store) => store.path(),
            StoreRunner::Thread(store) => store.path(),
        }
    }

    /// How long records may wait to be committed, which the calls to
    /// [`Sink::flush`] must keep to.
    pub fn batch_window(&self) -> Duration {
        match self {
            StoreRunner::Inline(store) => store.options().batch_window,
            StoreRunner::Thread(store) => store.batch_window(),
        }
    }

    /// The store's counts, everything written so far included.
    pub fn stats(&mut self) -> StoreStats {
        match self {
            StoreRunner::Inline(store) => store.stats(),
            StoreRunner::Thread(store) => store.stats(),
        }
    }

    /// See [`Store::record_counters`].
    pub fn record_counters(&mut self, values: &impl serde::Serialize) {
        match self {
            StoreRunner::Inline(store) => store.record_counters(values),
            StoreRunner::Thread(store) => store.record_counters(values),
        }
    }

    /// See [`Store::commit_all`].
    pub fn commit_all(&mut self) {
        match self {
            StoreRunner::Inline(store) => store.commit_all(),
            StoreRunner::Thread(store) => store.commit_all(),
        }
    }

    /// See [`Store::finish`].
    pub fn finish(&mut self, stop_reason: &str) -> Result<StoreStats, StoreError> {
        match self {
            StoreRunner::Inline(store) => store.finish(stop_reason),
            StoreRunner::Thread(store) => store.finish(stop_reason),
        }
    }
}

impl Sink for StoreRunner {
    fn write(&mut self, record: MessageRecord) -> anyhow::Result<()> {
        match self {
            StoreRunner::Inline(store) => store.write(record),
            StoreRunner::Thread(store) => store.write(record),
        }
    }

    fn write_lookup(&mut self, record: LookupRecord) -> anyhow::Result<()> {
        match self {
            StoreRunner::Inline(store) => store.write_lookup(record),
            StoreRunner::Thread(store) => store.write_lookup(record),
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            StoreRunner::Inline(store) => store.flush(),
            StoreRunner::Thread(store) => store.flush(),
        }
    }
}
