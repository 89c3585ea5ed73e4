//! The SQLite store: schema migrations, the batched writer, retention, and the
//! read side that `dnsq` uses.
//!
//! The layout is in `migrations/*.sql` (read its comments) and [`schema`]. The
//! recorder opens the store with [`open_for_writing`] and hands the [`Store`] to
//! the pipeline as its [`crate::pipeline::Sink`]: records are batched in memory
//! and committed in one transaction per batch; a failing disk or a locked
//! database never stops the pipeline (see [`Store`]).

mod background;
pub mod chunk;
mod compact;
mod facts;
mod insert;
mod intern;
mod open;
mod options;
pub mod read;
mod retention;
mod runner;
pub mod schema;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use background::Background;
pub use compact::{Compacted, compact};
pub use open::{open_for_writing, verify};
pub use options::{StoreOptions, StoreStats};
pub use retention::{parse_duration, parse_retain, parse_size};
pub use runner::{Placement, StoreRunner};
use rusqlite_migration::{M, Migrations};
pub use writer::Store;

/// The schema, one file a version, oldest first. A new schema version is a new
/// `migrations/NNNN_*.sql` file appended here (and `schema::SCHEMA_VERSION`
/// raised); files already released are never edited.
const MIGRATION_FILES: &[M<'static>] = &[
    M::up(include_str!("../../../migrations/0001_initial.sql")),
    M::up(include_str!("../../../migrations/0002_identity.sql")),
    M::up(include_str!("../../../migrations/0003_resolvers.sql")),
    M::up(include_str!("../../../migrations/0004_libc_lookups.sql")),
    M::up(include_str!("../../../migrations/0005_fact_access.sql")),
    M::up(include_str!(
        "../../../migrations/0006_compact_messages.sql"
    )),
    M::up(include_str!(
        "../../../migrations/0007_answered_queries.sql"
    )),
    M::up(include_str!(
        "../../../migrations/0008_resolutions_without_hour_index.sql"
    )),
    M::up(include_str!(
        "../../../migrations/0009_libc_calls_as_lookups.sql"
    )),
    M::up(include_str!("../../../migrations/0010_minute_counts.sql")),
    M::up(include_str!(
        "../../../migrations/0011_interned_last_hour.sql"
    )),
    M::up(include_str!("../../../migrations/0012_libc_answers.sql")),
    M::up(include_str!(
        "../../../migrations/0013_libc_call_returns.sql"
    )),
    M::up(include_str!(
        "../../../migrations/0014_fact_times_as_offsets.sql"
    )),
    M::up(include_str!("../../../migrations/0015_message_chunks.sql")),
    M::up(include_str!(
        "../../../migrations/0016_lookups_without_hour_index.sql"
    )),
    M::up(include_str!(
        "../../../migrations/0017_libc_returns_as_lookups.sql"
    )),
    M::up(include_str!(
        "../../../migrations/0018_truncated_responses.sql"
    )),
];

/// What `rusqlite_migration` applies: `PRAGMA user_version` is the number of
/// files applied.
pub const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_FILES);

/// Why the store could not be opened or written. The cause, where there is one,
/// is the error's `source()` (print the chain, e.g. anyhow's `{:#}`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot create the database directory {path}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {path}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a SQLite database; refusing to touch it")]
    NotADatabase { path: PathBuf },
    #[error(
        "{path} is a SQLite database of another program, not a dnsq store; refusing to touch it"
    )]
    Foreign { path: PathBuf },
    #[error(
        "{path} has store schema version {found}, newer than this program knows ({known}); \
         use a newer dnsq"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error(
        "another dnsq-recorder{} is already writing to {path}",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked { path: PathBuf, holder: Option<u32> },
    #[error("cannot open the database {path}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot bring the database {path} to schema version {version}")]
    Migrate {
        path: PathBuf,
        version: usize,
        source: rusqlite_migration::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store's thread ended before the store finished")]
    Thread,
    #[error("{count} records (and the facts held in memory) could not be written to the store")]
    Unwritten {
        count: usize,
        source: rusqlite::Error,
    },
}
