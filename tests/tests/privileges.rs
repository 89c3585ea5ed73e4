//! What the recorder may touch and who may read what it writes: file modes,
//! capabilities and sockets after start-up, `check` with and without privileges,
//! configuration errors, unprivileged readers, and SQL built only from constants.

use std::{
    collections::HashSet,
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use dnsq_tests::{
    ANSWER_V4, DOMAIN, Dnsmasq, Finished, KillOnDrop, Netns, Recorder, TempDir, binary, client,
    recorder_until_exit, require_bpf, run_bounded, unique, wait_for,
};

/// The user and group unprivileged runs use.
const NOBODY: u32 = 65534;

/// `program ARGS` as nobody:nogroup, with no supplementary group and no capability.
fn as_nobody(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "--inh-caps=-all", "--"])
        .arg(program)
        .env("DNSQ_CONFIG", "/dev/null")
        .env("NO_COLOR", "1")
        .env("TZ", "UTC");
    command
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("non-UTF-8 path")
}

/// The process's umask, from /proc.
fn umask() -> anyhow::Result<u32> {
    let status = fs::read_to_string("/proc/self/status")?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .context("no Umask in /proc/self/status")?;
    Ok(u32::from_str_radix(value.trim(), 8)?)
}

fn mode(path: &Path) -> anyhow::Result<u32> {
    Ok(fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .permissions()
        .mode()
        & 0o7777)
}

fn side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

/// A directory and a database the recorder creates are 0750 and 0640 (less what
/// the umask takes away); its other files are not world-readable either.
#[test]
fn database_and_directory_are_not_world_readable() -> anyhow::Result<()> {
    require_bpf!();
    let dir = TempDir::new("modes")?;
    let store = dir.path.join("var/lib/dnsq");
    let db = store.join("dnsq.db");
    let recorder = Recorder::storing(&db, &[])?;
    let umask = umask()?;
    let (dir_mode, db_mode) = (mode(&store)?, mode(&db)?);
    println!(
        "umask {umask:04o}: {} {dir_mode:04o}, {} {db_mode:04o}",
        store.display(),
        db.display()
    );
    ensure!(
        dir_mode == 0o750 & !umask,
        "the directory is {dir_mode:04o}, expected 0750"
    );
    ensure!(
        mode(&dir.path.join("var/lib"))? & 0o007 == 0,
        "the parent directories the recorder created are world-accessible"
    );
    ensure!(
        db_mode == 0o640 & !umask,
        "the database is {db_mode:04o}, expected 0640"
    );
    for suffix in ["-wal", "-shm", ".lock"] {
        let path = side_file(&db, suffix);
        let mode = mode(&path)?;
        ensure!(
            mode & 0o007 == 0,
            "{} is {mode:04o}: world-accessible",
            path.display()
        );
    }
    recorder.stop_storing()?;
    Ok(())
}

/// The nice value in a /proc `stat` file (field 19).
fn nice_in(stat: &Path) -> anyhow::Result<i32> {
    let text = fs::read_to_string(stat)?;
    // Fields after the command's closing parenthesis start at field 3.
    text.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19 - 3))
        .and_then(|field| field.parse().ok())
        .with_context(|| format!("no nice value in {}: {text}", stat.display()))
}

/// The nice value of each thread of process `pid`.
fn thread_nice_values(pid: u32) -> anyhow::Result<Vec<(PathBuf, i32)>> {
    let mut values = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?.path();
        match nice_in(&task.join("stat")) {
            Ok(nice) => values.push((task, nice)),
            Err(_) if !task.exists() => continue, // a thread that just ended
            Err(error) => return Err(error),
        }
    }
    Ok(values)
}

/// Every thread of a running recorder (the store's own included) runs at the
/// priority `--nice` asks for, or at the one it was started with if that is
/// higher: -5 by default, unchanged with `--nice 0`. The run's config records
/// both.
#[test]
fn every_thread_runs_at_the_nice_value_asked_for() -> anyhow::Result<()> {
    require_bpf!();
    // The recorder starts with this thread's nice value.
    let own = nice_in(Path::new("/proc/thread-self/stat"))?;
    for (args, asked) in [(&[][..], -5), (&["--nice", "0"][..], 0)] {
        let dir = TempDir::new("nice")?;
        let db = dir.path.join("dnsq.db");
        let recorder = Recorder::storing(&db, &[&["--store-thread", "yes"], args].concat())?;
        let values = thread_nice_values(recorder.pid())?;
        let expected = own.min(asked);
        ensure!(values.len() >= 2, "one thread only: {values:?}");
        ensure!(
            values.iter().all(|(_, nice)| *nice == expected),
            "recorder {args:?}, started at {own}: threads {values:?}, expected {expected}"
        );
        recorder.stop_storing()?;
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let config: String = conn.query_row(
            "SELECT config FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |row| row.get(0),
        )?;
        let config: serde_json::Value = serde_json::from_str(&config)?;
        ensure!(
            config["nice"] == asked && config["nice_effective"] == expected,
            "run config {config}"
        );
        println!("{args:?}: {} threads at nice {expected}", values.len());
    }
    Ok(())
}

/// `CapEff`, `CapPrm`, `CapBnd`, `CapInh`, `CapAmb` and `NoNewPrivs` of one
/// /proc status file.
fn capabilities(status: &str) -> anyhow::Result<[(String, u64); 6]> {
    let field = |name: &str, radix: u32| -> anyhow::Result<(String, u64)> {
        let value = status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .with_context(|| format!("no {name}"))?;
        Ok((name.to_owned(), u64::from_str_radix(value.trim(), radix)?))
    };
    Ok([
        field("CapEff", 16)?,
        field("CapPrm", 16)?,
        field("CapBnd", 16)?,
        field("CapInh", 16)?,
        field("CapAmb", 16)?,
        field("NoNewPrivs", 10)?,
    ])
}

/// Inodes of the sockets a process has open.
fn socket_inodes(pid: u32) -> anyhow::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = fs::read_link(entry?.path()) else {
            continue;
        };
        if let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.parse()?);
        }
    }
    Ok(inodes)
}

/// The sockets of `pid` that accept connections or datagrams from elsewhere: TCP in
/// LISTEN, any bound UDP or raw socket, listening unix sockets (as its network
/// namespace's /proc/<pid>/net shows them).
fn listening_sockets(pid: u32) -> anyhow::Result<Vec<String>> {
    let inodes = socket_inodes(pid)?;
    let mut found = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6", "raw", "raw6"] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{table}"))?;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(state), Some(inode)) = (fields.get(3), fields.get(9)) else {
                continue;
            };
            let listening = !table.starts_with("tcp") || *state == "0A";
            if listening
                && inode
                    .parse()
                    .is_ok_and(|inode: u64| inodes.contains(&inode))
            {
                found.push(format!("{table}: {line}"));
            }
        }
    }
    let unix = fs::read_to_string(format!("/proc/{pid}/net/unix"))?;
    for line in unix.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(flags), Some(inode)) = (fields.get(3), fields.get(6)) else {
            continue;
        };
        let accepts = u32::from_str_radix(flags, 16).is_ok_and(|flags| flags & 0x0001_0000 != 0);
        if accepts
            && inode
                .parse()
                .is_ok_and(|inode: u64| inodes.contains(&inode))
        {
            found.push(format!("unix: {line}"));
        }
    }
    Ok(found)
}

/// After READY every thread of the recorder keeps only CAP_SYS_PTRACE and
/// CAP_DAC_READ_SEARCH (effective, permitted, bounding), nothing inheritable or
/// ambient, with no_new_privs; and it listens on no socket.
#[test]
fn after_ready_only_two_capabilities_and_no_listening_socket() -> anyhow::Result<()> {
    require_bpf!();
    // The socket scan finds a listener when there is one.
    let netns = Netns::new("listen")?;
    let listener = KillOnDrop::spawn(
        netns
            .command("python3")
            .args([
                "-c",
                "import socket, time\n\
         t = socket.socket(); t.bind(('127.0.0.1', 5396)); t.listen()\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 5396))\n\
         print('ready', flush=True); time.sleep(60)",
            ])
            .stdout(std::process::Stdio::piped()),
    )?;
    wait_for("the python listener", Duration::from_secs(10), || {
        listening_sockets(listener.id()).is_ok_and(|found| found.len() == 2)
    })
    .with_context(|| format!("found {:?}", listening_sockets(listener.id())))?;
    drop(listener);

    let dir = TempDir::new("caps")?;
    let recorder = Recorder::storing(&dir.path.join("dnsq.db"), &[])?;
    let pid = recorder.pid();
    const RUNTIME: u64 = 1 << 19 | 1 << 2; // CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH
    let mut threads = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?.path();
        let Ok(status) = fs::read_to_string(task.join("status")) else {
            continue; // a thread that just ended
        };
        threads += 1;
        for (name, value) in capabilities(&status)? {
            let expected = match name.as_str() {
                "CapEff" | "CapPrm" | "CapBnd" => RUNTIME,
                "NoNewPrivs" => 1,
                _ => 0,
            };
            ensure!(
                value == expected,
                "{}: {name} {value:#x}, expected {expected:#x}",
                task.display()
            );
        }
    }
    println!("{threads} thread(s): CapEff = CapPrm = CapBnd = {RUNTIME:#x}, NoNewPrivs 1");
    let listening = listening_sockets(pid)?;
    println!(
        "recorder sockets: {:?}; listening: {listening:?}",
        socket_inodes(pid)?
    );
    ensure!(
        listening.is_empty(),
        "the recorder listens:\n{}",
        listening.join("\n")
    );
    recorder.stop_storing()?;
    Ok(())
}

/// `check` as root passes and says how the probes attach; as nobody it fails with
/// exit 1, naming each missing capability and what to do.
#[test]
fn check_as_root_and_as_nobody() -> anyhow::Result<()> {
    require_bpf!();
    let root = recorder_until_exit(&["check"], Duration::from_secs(60))?;
    println!("{}", root.stdout);
    ensure!(
        root.code == 0,
        "check as root: exit {}\n{}{}",
        root.code,
        root.stdout,
        root.stderr
    );
    let probes = root
        .stdout
        .lines()
        .find(|line| line.starts_with("ok") && line.contains("probes"))
        .with_context(|| format!("no probes line:\n{}", root.stdout))?;
    ensure!(
        probes.contains("BPF links:") || probes.contains("legacy cgroup attach"),
        "the probes line does not say how they attach: {probes}"
    );
    ensure!(
        root.stdout.contains("the recorder can run here"),
        "{}",
        root.stdout
    );

    let nobody = run_bounded(
        as_nobody(&binary("dnsq-recorder")).arg("check"),
        Duration::from_secs(60),
    )?;
    println!("{}", nobody.stdout);
    ensure!(
        nobody.code == 1,
        "check as nobody: exit {}\n{}{}",
        nobody.code,
        nobody.stdout,
        nobody.stderr
    );
    let lines: Vec<&str> = nobody.stdout.lines().collect();
    for capability in ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"] {
        let at = lines
            .iter()
            .position(|line| line.starts_with("MISSING") && line.contains(capability))
            .with_context(|| format!("{capability} is not named missing:\n{}", nobody.stdout))?;
        let fix = lines.get(at + 1).copied().unwrap_or_default();
        ensure!(
            fix.contains('→')
                && fix.contains("root")
                && fix.contains(&capability.to_ascii_lowercase()),
            "no fix given for {capability}: {fix:?}"
        );
    }
    ensure!(
        nobody.stdout.contains("the recorder cannot run here"),
        "{}",
        nobody.stdout
    );

    // The recorder itself, unprivileged, stops at once with the same advice.
    let dir = TempDir::new("nobody")?;
    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o777))?;
    let db = dir.path.join("dnsq.db");
    let started = run_bounded(
        as_nobody(&binary("dnsq-recorder")).args(["--db", path_str(&db)?]),
        Duration::from_secs(30),
    )?;
    println!(
        "recorder as nobody: exit {}: {}",
        started.code,
        started.stderr.trim()
    );
    ensure!(
        started.code == 2
            && started.stderr.contains("missing capabilities")
            && started.stderr.contains("CAP_BPF"),
        "the unprivileged recorder: exit {}: {}",
        started.code,
        started.stderr
    );
    Ok(())
}

/// A bad configuration file stops the recorder with exit 2 and an error that
/// names the key and the file, before anything is opened.
#[test]
fn bad_config_names_key_and_file() -> anyhow::Result<()> {
    require_bpf!();
    let dir = TempDir::new("config")?;
    let db = dir.path.join("dnsq.db");
    for (tag, text, key) in [
        ("unknown", "ports = [53]\nretian = \"7d\"\n", "retian"),
        ("type", "payload_cap = \"big\"\n", "payload_cap"),
        ("value", "ring_buffer_size = 1000\n", "ring_buffer_size"),
        ("duration", "batch_window = \"soon\"\n", "batch_window"),
    ] {
        let config = dir.path.join(format!("{tag}.toml"));
        fs::write(&config, text)?;
        let finished: Finished = recorder_until_exit(
            &["--config", path_str(&config)?, "--db", path_str(&db)?],
            Duration::from_secs(20),
        )?;
        println!("{tag}: exit {}: {}", finished.code, finished.stderr.trim());
        ensure!(
            finished.code == 2,
            "{tag}: exit {}: {}",
            finished.code,
            finished.stderr
        );
        ensure!(
            finished.stderr.contains(key) && finished.stderr.contains(path_str(&config)?),
            "{tag}: the error does not name `{key}` and {}: {}",
            config.display(),
            finished.stderr
        );
        ensure!(
            !db.exists(),
            "{tag}: the database was created despite the bad configuration"
        );
    }
    Ok(())
}

/// A reader in the database's group, without any privilege, reads what the
/// recorder wrote, also after it stopped (the WAL files are kept); outside the
/// group it is refused with a clear error.
#[test]
fn unprivileged_reader_in_the_group_reads_the_history() -> anyhow::Result<()> {
    require_bpf!();
    const PORT: u16 = 5397;
    let netns = Netns::new("reader")?;
    let _dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], PORT, &[])?;
    let dir = TempDir::new("reader")?;
    let store = dir.path.join("store");
    let db = store.join("dnsq.db");
    let recorder = Recorder::storing(&db, &["--port", &PORT.to_string()])?;
    let qname = format!("{}.{DOMAIN}", unique("reader"));
    let (_, answer) = client(netns.command("dig").args([
        "@127.0.0.1",
        "-p",
        &PORT.to_string(),
        &qname,
        "A",
        "+short",
        "+tries=1",
    ]))?;
    ensure!(answer.trim() == ANSWER_V4, "dig answered {answer:?}");
    // `tail` reads the messages; `name` reads the hourly facts, which the recorder
    // writes a few seconds later (and at the latest when it stops).
    let dnsq_as_nobody = |command: &str| -> anyhow::Result<Finished> {
        let mut nobody = as_nobody(&binary("dnsq"));
        nobody.args(["--db", path_str(&db)?, command]);
        if command == "name" {
            nobody.arg(&qname);
        }
        run_bounded(&mut nobody, Duration::from_secs(20))
    };
    // Not in the group: refused, and told why.
    wait_for("the message to be stored", Duration::from_secs(10), || {
        dnsq_tests::dnsq(&["--db", path_str(&db).unwrap_or_default(), "tail"])
            .is_ok_and(|(code, out, _)| code == 0 && out.contains(&qname))
    })?;
    let refused = dnsq_as_nobody("tail")?;
    println!(
        "outside the group: exit {}: {}",
        refused.code,
        refused.stderr.trim()
    );
    ensure!(
        refused.code == 3 && refused.stderr.contains("permission denied"),
        "nobody outside the group: exit {}: {}{}",
        refused.code,
        refused.stdout,
        refused.stderr
    );

    // The group of the store, its directory and its files: nogroup.
    for path in [
        store.clone(),
        db.clone(),
        side_file(&db, "-wal"),
        side_file(&db, "-shm"),
    ] {
        std::os::unix::fs::chown(&path, None, Some(NOBODY))
            .with_context(|| format!("chgrp {}", path.display()))?;
    }
    let running = dnsq_as_nobody("tail")?;
    ensure!(
        running.code == 0 && running.stdout.contains(&qname),
        "nobody in the group, recorder running: exit {}\n{}{}",
        running.code,
        running.stdout,
        running.stderr
    );
    recorder.stop_storing()?;
    for suffix in ["-wal", "-shm"] {
        let path = side_file(&db, suffix);
        let meta =
            fs::metadata(&path).with_context(|| format!("{} was not kept", path.display()))?;
        ensure!(meta.gid() == NOBODY, "{} lost its group", path.display());
    }
    ensure!(
        mode(&store)? & 0o002 == 0,
        "the store directory is world-writable"
    );
    for command in ["tail", "name"] {
        let stopped = dnsq_as_nobody(command)?;
        println!(
            "dnsq {command} in the group, recorder stopped: exit {}\n{}",
            stopped.code, stopped.stdout
        );
        ensure!(
            stopped.code == 0 && stopped.stdout.contains(&qname),
            "nobody in the group, recorder stopped, dnsq {command}: exit {}\n{}{}",
            stopped.code,
            stopped.stdout,
            stopped.stderr
        );
    }
    let stats = dnsq_as_nobody("stats")?;
    ensure!(
        stats.code == 0,
        "dnsq stats as nobody: exit {}: {}",
        stats.code,
        stats.stderr
    );
    Ok(())
}

/// SQL statements whose text `format!` builds from something other than
/// constants, with why each is safe. Everything else must bind its values.
const ALLOWED_SQL_FORMATS: &[(&str, &str, &str)] = &[
    (
        "recorder/src/store/read/rebuild.rs",
        "TOTAL((flags & {mal}) = 0 AND (flags & {resp}) = 0)",
        "mal, resp and recv are the integer constants of schema::flags; filter is \
         ProcessFilter::sql (below); everything else is bound",
    ),
    (
        "recorder/src/store/read.rs",
        "AND (process_id IN ({}) OR (process_id IS NULL AND socket_cgroup_id IN ({})))",
        "ProcessFilter::sql: two sql_id_lists of i64 ids (digits, '-' and ',')",
    ),
    (
        "recorder/src/store/chunk.rs",
        "message_columns!()",
        "concat! of string literals and message_columns!, itself a literal: constant \
         statements; every value is bound",
    ),
    (
        "recorder/src/store/facts.rs",
        "merge_offsets!()",
        "concat! of string literals and merge_offsets!, itself a literal: the three fact \
         upserts are constant; every value is bound",
    ),
    (
        "recorder/src/store/schema.rs",
        "lookup_process_ids!(), \") AND hour\")",
        "concat! of string literals and lookup_process_ids!, itself a literal: a \
         constant condition",
    ),
    (
        "recorder/src/store/schema.rs",
        "lookup_process_ids!(), \") AS q\"",
        "concat! of string literals and lookup_process_ids!, itself a literal: a \
         constant statement",
    ),
    (
        "recorder/src/store/retention.rs",
        "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \\",
        "table is one of the constant INTERNED_TABLES; the hour and chunk are bound",
    ),
    (
        "recorder/src/store/read/rebuild.rs",
        "edns_udp_size, message_len, captured_len, latency_ns, socket_cgroup_id, {peers}",
        "peers is one of two constant column lists, order is ASC or DESC; ids are bound",
    ),
    (
        "recorder/src/store/read/rebuild.rs",
        "SELECT message_id, error, raw FROM malformed",
        "order is ASC or DESC; ids are bound",
    ),
    (
        "recorder/src/store/read/rebuild.rs",
        "SELECT message_id, qname_id, qtype, qclass FROM extra_questions",
        "order is ASC or DESC; ids are bound",
    ),
    (
        "query/src/lookups.rs",
        "FROM {table} CROSS JOIN lookups l ON l.{col} = {id}",
        "table, col, id and cond are &'static str fields chosen by select(); the user's \
         name, pid or command is bound as ?3..?5; filtered is Matching::sql (below)",
    ),
    (
        "query/src/lookups.rs",
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {} AND ?1 <= ?2)",
        "the same &'static str table and condition; values bound",
    ),
    (
        "query/src/lookups.rs",
        "SELECT a.name FROM names n CROSS JOIN cnames c",
        "the same &'static str condition; values bound",
    ),
    (
        "query/src/stats.rs",
        "WHERE qname_id = n.id AND hour BETWEEN ?1 AND ?2{lookups_filter})",
        "lookups_filter is Matching::sql (below); the hours are bound",
    ),
    (
        "query/src/stats.rs",
        "SELECT COUNT(DISTINCT qname_id) FROM lookups \\",
        "by_process_hour is schema::LOOKUPS_BY_PROCESS_HOUR (static text); lookups_filter is Matching::sql (below); \
         the hours are bound",
    ),
    (
        "query/src/stats.rs",
        "SELECT count(*), {returns} FROM libc_lookups \\",
        "returns is one of two constant column lists; lookups_filter is Matching::sql \
         (below); the times are bound",
    ),
    (
        "query/src/stats.rs",
        "SELECT ({names_sql}), \\",
        "names_sql is one of the two statements above; lookups_filter is Matching::sql \
         (below); the hours are bound",
    ),
    (
        "query/src/owner.rs",
        "\" AND {column} IN ({})\", sql_id_list(self.processes.process_ids.iter().copied())",
        "Matching::sql: column is a constant column name given by its callers \
         (process_id, l.process_id); read::sql_id_list joins i64 process ids: digits, '-' \
         and ','",
    ),
    (
        "query/src/owner.rs",
        "SELECT count(*) FROM (SELECT 1 FROM lookups WHERE process_id IN ({list}) \\",
        "Matching::lookups_sql: list is a read::sql_id_list of i64 ids; hours and limit \
         are bound",
    ),
    (
        "query/src/owner.rs",
        "\" AND {column} IN ({list})\"",
        "Matching::lookups_sql: column is one of two constants (process_id, +process_id); \
         list is a read::sql_id_list of i64 ids",
    ),
    (
        "query/src/top.rs",
        "SELECT qname_id, SUM({ranked}) AS ranked, SUM({queries}),",
        "queries is schema::lookup_queries_sql (static text); ranked and counting are \
         that, schema::lookup_asked_sql (static) or built from the i64 constant NXDOMAIN; \
         filtered is Matching::sql (above); hour is Window::hour_column, `+hour` or \
         schema::LOOKUPS_BY_PROCESS_HOUR (static text); everything else is bound",
    ),
    (
        "query/src/top.rs",
        "WHERE qname_id = ?1 AND hour BETWEEN ?2 AND ?3 AND role = ?4 AND {counting}{filtered}",
        "counting as in the statement above; filtered is Matching::sql (above); \
         everything else is bound",
    ),
    (
        "query/src/top.rs",
        "SELECT qname_id, process_id, role, rcode, count, {queries}, {asked}, last_ns \\",
        "queries and asked are schema::lookup_queries_sql and lookup_asked_sql (static \
         text); filtered is Matching::sql (above); hour is Window::hour_column, `+hour` or \
         schema::LOOKUPS_BY_PROCESS_HOUR (static text); everything else is bound",
    ),
];

/// Every `format!(…)` / `concat!(…)` invocation in `text` (from the macro name to
/// its closing parenthesis, strings skipped when matching parentheses) with the
/// line it starts on.
fn macro_invocations(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for name in ["format!(", "concat!("] {
        let mut from = 0;
        while let Some(at) = text[from..].find(name).map(|n| n + from) {
            from = at + name.len();
            let mut depth = 1;
            let mut i = from;
            while i < bytes.len() && depth > 0 {
                match bytes[i] {
                    b'(' => depth += 1,
                    b')' => depth -= 1,
                    b'"' => {
                        // A string literal (raw strings: up to the closing quote and
                        // hashes; ordinary ones: escapes skipped).
                        let hashes = text[..i].chars().rev().take_while(|&c| c == '#').count();
                        let raw = text[..i - hashes].ends_with('r');
                        i += 1;
                        if raw {
                            let end = format!("\"{}", "#".repeat(hashes));
                            i += text[i..].find(&end).unwrap_or(text.len() - i) + end.len() - 1;
                        } else {
                            while i < bytes.len() && bytes[i] != b'"' {
                                i += if bytes[i] == b'\\' { 2 } else { 1 };
                            }
                        }
                    }
                    b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
                    _ => {}
                }
                i += 1;
            }
            let line = text[..at].matches('\n').count() + 1;
            found.push((line, text[at..i.min(text.len())].to_owned()));
        }
    }
    found
}

fn is_sql(invocation: &str) -> bool {
    invocation
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| {
            // Statements, and the conditions spliced into them.
            matches!(
                word,
                "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "PRAGMA" | "WHERE" | "AND"
            )
        })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// No SQL text is built with `format!`/`concat!` from data: every such statement
/// in the recorder's and dnsq's sources is listed above with its reason, and the
/// list has no stale entry. (Unit tests in `*/tests/` directories are not
/// scanned: they build statements from their own fixtures.)
#[test]
fn sql_is_never_formatted_from_data() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["recorder/src", "query/src"] {
        rust_files(&root.join(dir), &mut files)?;
    }
    files.sort();
    ensure!(
        files.len() > 20,
        "found only {} source files under {}",
        files.len(),
        root.display()
    );
    // The scanner itself: a multi-line format! with SQL is found.
    let probe = macro_invocations("let s = format!(\n  \"SELECT x FROM t WHERE a = {}\", \"(\" );");
    ensure!(
        probe.len() == 1 && is_sql(&probe[0].1),
        "the scanner is broken: {probe:?}"
    );

    let mut used = vec![false; ALLOWED_SQL_FORMATS.len()];
    let mut offending = Vec::new();
    let mut scanned = 0;
    for file in &files {
        let relative = file.strip_prefix(&root)?.to_string_lossy().into_owned();
        if relative.split('/').any(|part| part == "tests") {
            continue;
        }
        scanned += 1;
        let text = fs::read_to_string(file)?;
        for (line, invocation) in macro_invocations(&text) {
            if !is_sql(&invocation) {
                continue;
            }
            let flat = invocation.split_whitespace().collect::<Vec<_>>().join(" ");
            let allowed = ALLOWED_SQL_FORMATS.iter().position(|(path, needle, _)| {
                *path == relative
                    && flat.contains(&needle.split_whitespace().collect::<Vec<_>>().join(" "))
            });
            match allowed {
                Some(index) => used[index] = true,
                None => offending.push(format!("{relative}:{line}: {flat}")),
            }
        }
    }
    println!(
        "scanned {scanned} files; {} allowed formatted statements",
        used.iter().filter(|u| **u).count()
    );
    let stale: Vec<String> = ALLOWED_SQL_FORMATS
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((path, needle, _), _)| format!("{path}: {needle}"))
        .collect();
    if !offending.is_empty() || !stale.is_empty() {
        bail!(
            "SQL built with format!/concat! and not reviewed (bind the values, or add it to \
             ALLOWED_SQL_FORMATS with the reason it is safe):\n  {}\nallow-list entries no \
             longer found:\n  {}",
            offending.join("\n  "),
            stale.join("\n  ")
        );
    }
    Ok(())
}
