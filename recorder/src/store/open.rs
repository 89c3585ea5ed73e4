//! Opening the database: the file and its directory with tight permissions, the
//! connection settings, and the schema migrations.

use std::{
    fs::{DirBuilder, File, OpenOptions},
    io::{ErrorKind, Read, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};

use super::{MIGRATION_FILES, MIGRATIONS, Store, StoreError, StoreOptions, schema};

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
/// Mode of a directory the recorder creates for the database.
const DIR_MODE: u32 = 0o750;
/// Mode of the database file (SQLite gives its -wal and -shm files the same).
const FILE_MODE: u32 = 0o640;
/// How long opening waits for another writer (migrations take the write lock).
const OPEN_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite's page cache for the writer's connection, in KiB. The writer appends
/// messages (the right edge of one b-tree) and upserts facts sorted by key once
/// every few seconds, so its working set is small; 4 MiB rather than 8 is part
/// of keeping the recorder under 50 MB (BENCHMARKS.md).
const CACHE_KIB: i64 = 4 * 1024;
/// The WAL file is truncated back to this size after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// Opens (creating it and its directory if missing) the store at `path` for the
/// recorder, with the default [`StoreOptions`]; see [`Store::with_options`].
///
/// Refuses, without changing a byte of it, a file that is not a SQLite database,
/// another program's database, and a store of a newer schema than this program
/// knows. A missing directory is created 0750 and a missing file 0640; existing
/// ones that are looser are left alone with a warning.
///
/// One writer at a time: a second recorder on the same database gets
/// [`StoreError::Locked`] (an advisory lock on `<db>.lock`, held while the store
/// lives and released by the kernel however the process ends).
pub fn open_for_writing(path: impl AsRef<Path>) -> Result<Store, StoreError> {
    let path = path.as_ref();
    let options = StoreOptions::default();
    prepare_directory(path)?;
    let lock = lock_writer(path)?;
    let conn = open_connection(path)?;
    Store::new(conn, path.to_owned(), options).map(|store| store.holding(lock))
}

/// Takes the writer's lock, or says who holds it.
pub(super) fn lock_writer(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file_error = |source| StoreError::File {
        path: lock_path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(&lock_path)
        .map_err(file_error)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() != ErrorKind::WouldBlock {
            return Err(file_error(error));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(StoreError::Locked {
            path: path.to_owned(),
            holder: holder.trim().parse().ok(),
        });
    }
    // The holder's pid, for the message the next one will see.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

pub(super) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    prepare_file(path)?;
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    // No SQLITE_OPEN_CREATE: the file exists by now, with our mode.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_timeout(OPEN_BUSY_TIMEOUT).map_err(open_error)?;
    verify(&conn, path)?;
    configure(&conn).map_err(open_error)?;
    migrate(&mut conn, path)?;
    let id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(open_error)?;
    if id == 0 {
        conn.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .map_err(open_error)?;
    }
    Ok(conn)
}

/// Checks that `conn` is a dnsq store (or an empty database) whose schema this
/// program knows, and returns its schema version (0 for an empty database).
/// `dnsq` can use it before reading.
pub fn verify(conn: &Connection, path: &Path) -> Result<usize, StoreError> {
    let sqlite_error = |source: rusqlite::Error| match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotADatabase {
            path: path.to_owned(),
        },
        _ => StoreError::Open {
            path: path.to_owned(),
            source,
        },
    };
    let application_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(sqlite_error)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error)?;
    let foreign = || StoreError::Foreign {
        path: path.to_owned(),
    };
    if application_id != 0 && application_id != schema::APPLICATION_ID {
        return Err(foreign());
    }
    if version == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(sqlite_error)?;
        if objects > 0 {
            return Err(foreign());
        }
    }
    let known = MIGRATION_FILES.len();
    match usize::try_from(version) {
        Ok(version) if version <= known => Ok(version),
        _ => Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
            known,
        }),
    }
}

pub(super) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some file systems (network ones) cannot share memory for WAL.
        tracing::warn!(
            journal_mode = %mode,
            "the database could not use write-ahead logging: readers may block the recorder"
        );
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    keep_wal_files(conn);
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    // Fact tables and the unique indexes of interned strings take random
    // writes: a bigger page cache spares re-reading their pages.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Keeps the -wal and -shm files when the recorder closes the database, so that
/// `dnsq`, which opens it read-only and may not write to the directory, can still
/// read it while the recorder is stopped (SQLITE_FCNTL_PERSIST_WAL).
fn keep_wal_files(conn: &Connection) {
    let mut on: std::ffi::c_int = 1;
    // SAFETY: a valid connection handle, the "main" schema, and a pointer to an int,
    // as SQLITE_FCNTL_PERSIST_WAL expects.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        tracing::warn!(
            rc,
            "could not keep the WAL files: readers may need write access to the directory"
        );
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let known = MIGRATION_FILES.len();
    MIGRATIONS
        .to_latest(conn)
        .map_err(|source| StoreError::Migrate {
            path: path.to_owned(),
            version: known,
            source,
        })
}

fn prepare_directory(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    match std::fs::metadata(dir) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o002 != 0 && mode & 0o1000 == 0 {
                tracing::warn!(
                    directory = %dir.display(),
                    mode = format_args!("{mode:04o}"),
                    "the database directory is writable by everyone"
                );
            } else if mode & 0o027 != 0 && mode & 0o1000 == 0 {
                tracing::warn!(
                    directory = %dir.display(),
                    mode = format_args!("{mode:04o}"),
                    "the database directory is looser than 0750"
                );
            }
            Ok(())
        }
        Err(error) if error.kind() == ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            }),
        Err(source) => Err(StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Creates the file 0640 if missing; otherwise checks that it is a SQLite
/// database (or empty, which SQLite treats as a new one).
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let file_error = |source| StoreError::File {
        path: path.to_owned(),
        source,
    };
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path);
    match created {
        Ok(_) => return Ok(()),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
        Err(source) => return Err(file_error(source)),
    }
    let mut file = File::open(path).map_err(file_error)?;
    let meta = file.metadata().map_err(file_error)?;
    if !meta.is_file() {
        return Err(StoreError::NotADatabase {
            path: path.to_owned(),
        });
    }
    let mut header = [0u8; 16];
    if meta.len() > 0
        && (meta.len() < header.len() as u64
            || file.read_exact(&mut header).is_err()
            || &header != SQLITE_HEADER)
    {
        return Err(StoreError::NotADatabase {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & !FILE_MODE != 0 {
        tracing::warn!(
            file = %path.display(),
            mode = format_args!("{mode:04o}"),
            "the database file is looser than 0640"
        );
    }
    Ok(())
}
