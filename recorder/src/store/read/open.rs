//! Opening the store read-only and checking that it is one this program reads.

use std::{path::Path, time::Duration};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::ReadError;
use crate::store::schema;

/// A read-only connection to `path` (through a `file:…?mode=ro` URI when `uri`),
/// with one read done so that a missing WAL index or a non-database shows now.
pub(super) fn connect(path: &Path, uri: bool) -> Result<Connection, ReadError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if uri {
        Connection::open_with_flags(
            format!("file:{}?mode=ro", uri_path(path)),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(|e| open_error(path, e))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", 1)?;
    // The first read: it opens the WAL and its index, and finds non-databases.
    conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| {
        row.get::<_, i64>(0)
    })
    .map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// The oldest schema this reader reads: schema 1 has neither `processes.thread`
/// nor `messages.socket_cgroup_id`. Later additions (schema 3's `delegations`
/// and the messages' resolver columns) are optional: see [`Features`].
pub(super) const OLDEST_READABLE: u32 = 2;

/// What a readable database has beyond schema [`OLDEST_READABLE`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Features {
    pub version: u32,
    /// The `delegations` fact table (schema 3).
    pub delegations: bool,
    /// `messages.via_process_id` and `for_process_id` (schema 3).
    pub message_peers: bool,
    /// The compact `messages` row (`migrations/0006_compact_messages.sql`):
    /// `bits`, `ports`, TTLs as one integer when all equal.
    pub compact_messages: bool,
    /// `time_index` rows count their minute's messages (schema 10).
    pub minute_counts: bool,
    /// `libc_lookups` rows keep what the call returned (schema 13).
    pub libc_returns: bool,
    /// New messages are packed in `message_chunks` (schema 15).
    pub message_chunks: bool,
}

/// Checks `PRAGMA application_id` and `user_version` against [`schema`]: any
/// version from [`OLDEST_READABLE`] to [`schema::SCHEMA_VERSION`] is read.
pub(super) fn check_schema(conn: &Connection, path: &Path) -> Result<Features, ReadError> {
    let application_id: i32 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let expected = schema::SCHEMA_VERSION;
    if application_id != 0 && application_id != schema::APPLICATION_ID {
        return Err(ReadError::Foreign {
            path: path.to_path_buf(),
        });
    }
    if version == 0 {
        let objects: i64 =
            conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| row.get(0))?;
        return Err(if objects == 0 {
            ReadError::NoSchema {
                path: path.to_path_buf(),
            }
        } else {
            ReadError::Foreign {
                path: path.to_path_buf(),
            }
        });
    }
    let path = path.to_path_buf();
    if version < OLDEST_READABLE {
        return Err(ReadError::SchemaTooOld {
            path,
            found: version,
            expected: OLDEST_READABLE,
        });
    }
    if version > expected {
        return Err(ReadError::SchemaTooNew {
            path,
            found: version,
            expected,
        });
    }
    // Tables and columns rather than the version: a store being migrated, or
    // one written by a development build, has what it has.
    let has = |sql: &str| -> Result<bool, ReadError> {
        Ok(conn.query_row(sql, [], |row| row.get::<_, bool>(0))?)
    };
    Ok(Features {
        version,
        delegations: has("SELECT EXISTS (SELECT 1 FROM sqlite_schema \
             WHERE type = 'table' AND name = 'delegations')")?,
        message_peers: has("SELECT COUNT(*) = 2 FROM pragma_table_info('messages') \
             WHERE name IN ('via_process_id', 'for_process_id')")?,
        compact_messages: has("SELECT COUNT(*) = 2 FROM pragma_table_info('messages') \
             WHERE name IN ('bits', 'ports')")?,
        minute_counts: has("SELECT COUNT(*) = 1 FROM pragma_table_info('time_index') \
             WHERE name = 'messages'")?,
        libc_returns: has(
            "SELECT COUNT(*) = 3 FROM pragma_table_info('libc_lookups') \
             WHERE name IN ('returned_ns', 'status', 'addresses')",
        )?,
        message_chunks: has("SELECT EXISTS (SELECT 1 FROM sqlite_schema \
             WHERE type = 'table' AND name = 'message_chunks')")?,
    })
}

pub(super) fn io_error(path: &Path, e: std::io::Error) -> ReadError {
    let path = path.to_path_buf();
    match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing { path },
        std::io::ErrorKind::PermissionDenied => ReadError::PermissionDenied { path },
        _ => ReadError::Io { path, error: e },
    }
}

fn open_error(path: &Path, e: rusqlite::Error) -> ReadError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => ReadError::NotADatabase {
            path: path.to_path_buf(),
        },
        Some(ErrorCode::PermissionDenied) => ReadError::PermissionDenied {
            path: path.to_path_buf(),
        },
        _ => ReadError::Sqlite(e),
    }
}

/// Errors that a missing or uncreatable -shm / -wal file gives a read-only reader.
pub(super) fn is_cantopen(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
    )
}

/// `path` for a `file:` URI: everything but unreserved characters and `/`
/// percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_are_escaped() {
        assert_eq!(
            uri_path(Path::new("/var/lib/a b?#.db")),
            "/var/lib/a%20b%3F%23.db"
        );
    }
}
