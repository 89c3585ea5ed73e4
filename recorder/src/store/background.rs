//! The store on a thread of its own, so that committing (SQLite, the fact
//! upserts: half of a message's cost) runs beside the pipeline instead of
//! between its ring-buffer reads.
//!
//! The pipeline hands records over in batches through a bounded channel; when
//! the writer falls behind by [`QUEUED_BATCHES`] batches, handing over waits, as
//! writing did when the store ran on the pipeline's thread. Nothing is dropped
//! on the way: the [`Store`]'s own backlog bound and its counts are the only
//! ones. [`Background::stats`] answers after everything handed over before it
//! has reached the store, so its counts are as exact as the store's own.
//! [`Background::finish`] sends the last records, waits for the store to write
//! them and stops the thread.

use std::{
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, SyncSender},
    thread::JoinHandle,
    time::Duration,
};

use super::{Store, StoreError, StoreStats};
use crate::{
    pipeline::Sink,
    record::{LookupRecord, MessageRecord},
};

/// Records handed over at once.
const BATCH: usize = 256;
/// Batches (and commands) the channel holds before handing over waits.
const QUEUED_BATCHES: usize = 16;

enum Item {
    Message(MessageRecord),
    Lookup(LookupRecord),
}

/// An emptied batch and the records committed since the one before.
type Returned = (Vec<Item>, Vec<MessageRecord>);

enum Command {
    Items(Vec<Item>),
    Flush,
    Counters(serde_json::Value),
    CommitAll,
    Stats(SyncSender<StoreStats>),
    Finish(String, SyncSender<Result<StoreStats, StoreError>>),
}

/// A [`Store`] running on its own thread; the same calls as the store.
pub struct Background {
    commands: SyncSender<Command>,
    /// Emptied batches back from the store's thread, to be filled again: a
    /// batch's buffer (`BATCH` items, some 150 KiB) allocated on one thread and
    /// freed on the other cost the allocator a consolidation of its free lists
    /// each time. With each come the records the store has committed since, to be
    /// dropped on this thread, which made them ([`Store::keep_spent`]).
    emptied: Receiver<Returned>,
    thread: Option<JoinHandle<()>>,
    batch: Vec<Item>,
    path: PathBuf,
    batch_window: Duration,
}

impl Background {
    /// Moves `store` to a new thread.
    pub fn spawn(mut store: Store) -> std::io::Result<Self> {
        let path = store.path().to_owned();
        let batch_window = store.options().batch_window;
        store.keep_spent();
        let (commands, receiver) = mpsc::sync_channel(QUEUED_BATCHES);
        let (give_back, emptied) = mpsc::sync_channel(QUEUED_BATCHES);
        let thread = std::thread::Builder::new()
            .name("dnsq-store".into())
            .spawn(move || serve(store, receiver, give_back))?;
        Ok(Self {
            commands,
            emptied,
            thread: Some(thread),
            batch: Vec::with_capacity(BATCH),
            path,
            batch_window,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's `batch_window`: how long records may wait to be committed,
    /// which the calls to [`Sink::flush`] must keep to.
    pub fn batch_window(&self) -> Duration {
        self.batch_window
    }

    /// The store's counts, once everything handed over so far has reached it.
    pub fn stats(&mut self) -> StoreStats {
        let (reply, answer) = mpsc::sync_channel(1);
        if self.hand_over().is_ok()
            && self.send(Command::Stats(reply)).is_ok()
            && let Ok(stats) = answer.recv()
        {
            return stats;
        }
        StoreStats::default()
    }

    /// See [`Store::record_counters`].
    pub fn record_counters(&mut self, values: &impl serde::Serialize) {
        let values = serde_json::to_value(values).unwrap_or_default();
        let _ = self.hand_over();
        let _ = self.send(Command::Counters(values));
    }

    /// See [`Store::commit_all`].
    pub fn commit_all(&mut self) {
        let _ = self.hand_over();
        let _ = self.send(Command::CommitAll);
    }

    /// See [`Store::finish`]; then the thread ends.
    pub fn finish(&mut self, stop_reason: &str) -> Result<StoreStats, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let sent = self
            .hand_over()
            .and_then(|()| self.send(Command::Finish(stop_reason.to_owned(), reply)));
        let result = match sent {
            Ok(()) => answer.recv().unwrap_or(Err(StoreError::Thread)),
            Err(_) => Err(StoreError::Thread),
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        result
    }

    fn push(&mut self, item: Item) -> anyhow::Result<()> {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.hand_over()?;
        }
        Ok(())
    }

    fn hand_over(&mut self) -> std::io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let empty = match self.emptied.try_recv() {
            // The spent records are dropped here, on the thread that made them.
            Ok((items, _spent)) => items,
            Err(_) => Vec::with_capacity(BATCH),
        };
        let batch = std::mem::replace(&mut self.batch, empty);
        self.send(Command::Items(batch))
    }

    fn send(&self, command: Command) -> std::io::Result<()> {
        self.commands.send(command).map_err(|_| gone())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // A store dropped without finish (an error path): the thread sees the
        // channel close and ends.
        if let Some(thread) = self.thread.take() {
            let (closed, _) = mpsc::sync_channel(1);
            self.commands = closed;
            let _ = thread.join();
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the store's thread ended")
}

impl Sink for Background {
    fn write(&mut self, record: MessageRecord) -> anyhow::Result<()> {
        self.push(Item::Message(record))
    }

    fn write_lookup(&mut self, record: LookupRecord) -> anyhow::Result<()> {
        self.push(Item::Lookup(record))
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.hand_over()?;
        self.send(Command::Flush)?;
        Ok(())
    }
}

/// The store's thread: the commands in order, until `Finish` or the channel
/// closes.
fn serve(mut store: Store, commands: Receiver<Command>, give_back: SyncSender<Returned>) {
    while let Ok(command) = commands.recv() {
        match command {
            Command::Items(mut items) => {
                for item in items.drain(..) {
                    // The store never fails a write: it keeps, retries or counts.
                    let _ = match item {
                        Item::Message(record) => store.write(record),
                        Item::Lookup(record) => store.write_lookup(record),
                    };
                }
                // Dropped here (with the error) when the pipeline has enough.
                let _ = give_back.try_send((items, store.take_spent()));
            }
            Command::Flush => {
                let _ = store.flush();
            }
            Command::Counters(values) => store.record_counters(&values),
            Command::CommitAll => store.commit_all(),
            Command::Stats(reply) => {
                let _ = reply.send(store.stats());
            }
            Command::Finish(reason, reply) => {
                let _ = reply.send(store.finish(&reason));
                return;
            }
        }
    }
}
