//! Faults a recorder that runs for months will meet: stops under load (SIGTERM and
//! SIGKILL), a full disk, a read-only database, a reader holding a snapshot, a file
//! that is not a store, a second recorder on the same database. Each test drives real
//! traffic from a client in its own network namespace to a dnsmasq in it.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use dnsq_tests::{
    DOMAIN, Dnsmasq, KillOnDrop, Netns, Recorder, TempDir, dnsq, recorder_until_exit, require_bpf,
    run, unique, wait_for,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// The DNS port of these tests' dnsmasq, and the only one their recorders watch: the
/// recorder sees the whole host, and other tests' port-53 traffic must not fill
/// these tests' databases or slow their recorders down.
const PORT: u16 = 5399;

/// The pipeline's attribution wait (recorder/src/pipeline.rs `ATTRIBUTION_WAIT_NS`)
/// plus its poll interval (recorder/src/main.rs): how long a message may sit before
/// it even reaches the store's batch.
const BEFORE_THE_BATCH: Duration = Duration::from_millis(200 + 100);

/// A UDP client sending `count` queries for one name at `rate` a second, one at a
/// time (each waits for its answer, 0.5 s at most). After each query it prints
/// "SENT ANSWERED".
const LOAD_CLIENT: &str = r#"
import socket, struct, sys, time
server, port, qname, count, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
wire = b"".join(bytes([len(l)]) + l.encode() for l in qname.rstrip(".").split(".")) + b"\0"
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((server, port))
s.settimeout(0.5)
start = time.monotonic()
answered = 0
for i in range(count):
    due = start + i / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    qid = i & 0xffff
    s.send(struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", 1, 1))
    try:
        while struct.unpack(">H", s.recv(4096)[:2])[0] != qid:
            pass
        answered += 1
    except socket.timeout:
        pass
    sys.stdout.write("%d %d\n" % (i + 1, answered))
    sys.stdout.flush()
"#;

/// A running [`LOAD_CLIENT`], killed on drop.
struct Load {
    child: KillOnDrop,
    sent: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    started: Instant,
    reader: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(netns: &Netns, qname: &str, count: u32, rate: u32) -> anyhow::Result<Self> {
        let mut child = KillOnDrop::spawn(
            netns
                .command("python3")
                .args(["-c", LOAD_CLIENT, "127.0.0.1", &PORT.to_string(), qname])
                .args([count.to_string(), rate.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )?;
        let (sent, answered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stdout = child.0.stdout.take().context("client stdout")?;
        let reader = {
            let (sent, answered) = (Arc::clone(&sent), Arc::clone(&answered));
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let mut numbers = line.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
                    let (s, a) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
                    answered.store(a, Ordering::SeqCst);
                    sent.store(s, Ordering::SeqCst);
                }
            })
        };
        Ok(Self {
            child,
            sent,
            answered,
            started: Instant::now(),
            reader: Some(reader),
        })
    }

    fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    fn wait_answered(&self, at_least: u64, timeout: Duration) -> anyhow::Result<()> {
        wait_for(&format!("{at_least} answered queries"), timeout, || {
            self.answered() >= at_least
        })
    }

    /// Waits for the client to send everything; returns (sent, answered).
    fn finish(mut self, timeout: Duration) -> anyhow::Result<(u64, u64)> {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.0.try_wait()? {
                break status;
            }
            if start.elapsed() > timeout {
                bail!(
                    "the load client did not finish within {timeout:?} ({} sent)",
                    self.sent()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        ensure!(status.success(), "the load client failed: {status}");
        Ok((self.sent(), self.answered()))
    }
}

/// A network namespace with dnsmasq on 127.0.0.1:[`PORT`].
struct Lab {
    netns: Netns,
    _dnsmasq: Dnsmasq,
}

impl Lab {
    fn new(tag: &str) -> anyhow::Result<Self> {
        let netns = Netns::new(tag)?;
        let dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], PORT, &[])?;
        Ok(Self {
            netns,
            _dnsmasq: dnsmasq,
        })
    }
}

/// The recorder storing to `db`, watching [`PORT`] only.
fn storing(db: &Path, args: &[&str]) -> anyhow::Result<Recorder> {
    let port = PORT.to_string();
    let mut all = vec!["--port", &port];
    all.extend_from_slice(args);
    Recorder::storing(db, &all)
}

fn qname(tag: &str) -> String {
    format!("{}.{DOMAIN}.", unique(tag))
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("non-UTF-8 path")
}

fn read_only(db: &Path) -> anyhow::Result<Connection> {
    Ok(Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// The integer `sql` selects. SQL that reads `messages` reads them as they are
/// now (in this connection's transaction), chunks unpacked into a TEMP table.
fn count(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> anyhow::Result<i64> {
    if sql.contains("messages") {
        dnsq_recorder::store::chunk::unpack_messages(conn)?;
    }
    Ok(conn.query_row(sql, params, |row| row.get(0))?)
}

/// Messages stored whose (first) question is `qname`.
fn stored_for(conn: &Connection, qname: &str) -> anyhow::Result<i64> {
    count(
        conn,
        "SELECT count(*) FROM messages m JOIN names n ON n.id = m.qname_id WHERE n.name = ?1",
        [qname],
    )
}

/// The last `counters` row of a run, as JSON.
fn final_counters(conn: &Connection, run: i64) -> anyhow::Result<serde_json::Value> {
    let values: String = conn
        .query_row(
            "SELECT \"values\" FROM counters WHERE run_id = ?1 ORDER BY time_ns DESC LIMIT 1",
            [run],
            |row| row.get(0),
        )
        .optional()?
        .with_context(|| format!("run {run} has no counters row"))?;
    Ok(serde_json::from_str(&values)?)
}

fn counter(values: &serde_json::Value, name: &str) -> anyhow::Result<u64> {
    values[name]
        .as_u64()
        .with_context(|| format!("counter {name} missing in {values}"))
}

/// Events the kernel could not deliver, by the counters.
fn kernel_lost(values: &serde_json::Value) -> u64 {
    ["lost_ringbuf_full", "lost_load_failed", "lost_parse_failed"]
        .iter()
        .filter_map(|name| values[*name].as_u64())
        .sum()
}

/// `(id, stopped_ns, stop_reason)` of a `runs` row.
type Run = (i64, Option<i64>, Option<String>);

/// Every run, oldest first.
fn runs(conn: &Connection) -> anyhow::Result<Vec<Run>> {
    let mut statement = conn.prepare("SELECT id, stopped_ns, stop_reason FROM runs ORDER BY id")?;
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// SIGTERM in the middle of a burst: the recorder drains what the kernel queued,
/// commits it all, and its last `counters` row says so. With the store on the
/// pipeline's thread (what `auto` picks on two CPUs or fewer)…
#[test]
fn sigterm_under_load_commits_everything() -> anyhow::Result<()> {
    require_bpf!();
    sigterm_under_load("no")
}

/// … and on a thread of its own (what `auto` picks on bigger machines).
#[test]
fn sigterm_under_load_commits_everything_with_the_store_on_its_own_thread() -> anyhow::Result<()> {
    require_bpf!();
    sigterm_under_load("yes")
}

/// [`sigterm_under_load_commits_everything`] with `--store-thread PLACEMENT`.
fn sigterm_under_load(placement: &str) -> anyhow::Result<()> {
    let lab = Lab::new("term")?;
    let dir = TempDir::new("term")?;
    let db = dir.path.join("dnsq.db");
    let recorder = storing(
        &db,
        &["--batch-window", "500ms", "--store-thread", placement],
    )?;
    let name = qname("term");
    // 5,000 queries over 2 s; the signal comes after about 0.8 s of it.
    let load = Load::start(&lab.netns, &name, 5_000, 2_500)?;
    load.wait_answered(2_000, Duration::from_secs(20))?;
    let answered_at_signal = load.answered();
    let stderr = recorder.stop_storing()?;
    let (sent, answered) = load.finish(Duration::from_secs(20))?;
    println!("client: {sent} sent, {answered} answered, {answered_at_signal} before SIGTERM");

    let conn = read_only(&db)?;
    let runs = runs(&conn)?;
    ensure!(runs.len() == 1, "runs: {runs:?}");
    let (run, stopped, reason) = &runs[0];
    ensure!(
        stopped.is_some() && reason.as_deref() == Some("signal"),
        "run {run} stopped_ns {stopped:?} stop_reason {reason:?}\n{stderr}"
    );
    // The run's row says where the store ran.
    let config: String = conn.query_row("SELECT config FROM runs WHERE id = ?1", [run], |row| {
        row.get(0)
    })?;
    let config: serde_json::Value = serde_json::from_str(&config)?;
    ensure!(
        config["store_thread"] == placement && config["store_own_thread"] == (placement == "yes"),
        "run config {config} for --store-thread {placement}"
    );
    let values = final_counters(&conn, *run)?;
    let (messages, committed, dropped) = (
        counter(&values, "messages")?,
        counter(&values, "store_committed")?,
        counter(&values, "store_dropped")?,
    );
    let rows = count(&conn, "SELECT count(*) FROM messages", [])?;
    let ours = stored_for(&conn, &name)?;
    let lost = kernel_lost(&values);
    println!(
        "final counters: messages {messages}, store_committed {committed}, store_dropped \
         {dropped}, kernel lost {lost}; rows {rows} ({ours} of the burst)"
    );
    ensure!(
        committed == messages && dropped == 0,
        "the last counters row says {committed} committed and {dropped} dropped of {messages} \
         messages: {values}\n{stderr}"
    );
    ensure!(
        rows as u64 == messages,
        "{rows} rows stored, the counters say {messages}"
    );
    // Every exchange answered before the signal is four messages (the client's query
    // and answer, dnsmasq's), all of which reached the kernel's ring buffer before
    // the recorder stopped reading it.
    ensure!(
        ours as u64 + lost >= 4 * answered_at_signal,
        "{ours} messages of the burst stored (+{lost} lost by the kernel), but {answered_at_signal} \
         exchanges were answered before SIGTERM"
    );
    Ok(())
}

/// SIGKILL under load: the database stays intact, at most about one batch window of
/// messages is lost, and the next recorder continues the history.
#[test]
fn sigkill_under_load_loses_at_most_a_batch_window() -> anyhow::Result<()> {
    require_bpf!();
    const WINDOW: Duration = Duration::from_millis(500);
    let lab = Lab::new("kill")?;
    let dir = TempDir::new("kill")?;
    let db = dir.path.join("dnsq.db");
    // Batches of any size: only the window decides when a batch is committed.
    let recorder = storing(&db, &["--batch-window", "500ms", "--batch-size", "1000000"])?;
    let name = qname("kill");
    let load = Load::start(&lab.netns, &name, 20_000, 1_000)?;
    load.wait_answered(1_800, Duration::from_secs(20))?;
    let answered = load.answered();
    let elapsed = load.started.elapsed();
    recorder.kill_hard()?;
    drop(load);

    let conn = Connection::open(&db)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    ensure!(
        integrity == "ok",
        "integrity_check after SIGKILL: {integrity}"
    );
    let stored = stored_for(&conn, &name)?;
    // Messages a second: four per answered exchange.
    let rate = 4.0 * answered as f64 / elapsed.as_secs_f64();
    let expected = 4 * answered as i64;
    let loss = expected - stored;
    let bound = (rate * (WINDOW + BEFORE_THE_BATCH).as_secs_f64()).ceil() as i64;
    println!(
        "SIGKILL after {answered} answered exchanges in {elapsed:?} ({rate:.0} messages/s): \
         {stored} of {expected} messages stored, {loss} lost; bound {bound} = rate × ({WINDOW:?} \
         batch window + {BEFORE_THE_BATCH:?} attribution wait and poll)"
    );
    ensure!(
        stored > 0,
        "nothing was committed in {elapsed:?} with a {WINDOW:?} window"
    );
    ensure!(
        loss <= bound,
        "{loss} messages lost, more than the {bound} one batch window holds"
    );
    drop(conn);

    // The flock died with the process: the next recorder starts, on the same history.
    let recorder = storing(&db, &[])?;
    let after = qname("after");
    let (sent, answered_after) =
        Load::start(&lab.netns, &after, 50, 200)?.finish(Duration::from_secs(20))?;
    let stderr = recorder.stop_storing()?;
    ensure!(
        stderr.contains("did not stop cleanly"),
        "the second run did not notice the first one's crash:\n{stderr}"
    );
    let conn = read_only(&db)?;
    let runs = runs(&conn)?;
    ensure!(
        runs.len() == 2,
        "runs after a crash and a restart: {runs:?}"
    );
    ensure!(
        runs[0].1.is_none() && runs[0].2.is_none(),
        "the killed run: {:?}",
        runs[0]
    );
    ensure!(
        runs[1].2.as_deref() == Some("signal"),
        "the second run: {:?}",
        runs[1]
    );
    dnsq_recorder::store::chunk::unpack_messages(&conn)?;
    let ids = |run: i64| -> anyhow::Result<(i64, i64)> {
        Ok(conn.query_row(
            "SELECT min(id), max(id) FROM messages WHERE run_id = ?1",
            [run],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    };
    let (first, second) = (ids(runs[0].0)?, ids(runs[1].0)?);
    println!("message ids: run 1 {first:?}, run 2 {second:?}");
    ensure!(
        second.0 == first.1 + 1,
        "message ids do not continue: run 1 {first:?}, run 2 {second:?}"
    );
    let new = stored_for(&conn, &after)?;
    let lost = kernel_lost(&final_counters(&conn, runs[1].0)?);
    ensure!(
        new as u64 + lost >= 4 * answered_after && new as u64 <= 4 * sent,
        "the second run stored {new} messages of {answered_after} exchanges (kernel lost {lost})"
    );
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    ensure!(
        integrity == "ok",
        "integrity_check after the second run: {integrity}"
    );
    Ok(())
}

/// A file system mounted by a test, unmounted on drop.
struct Mount {
    path: PathBuf,
}

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0750")])
            .arg("tmpfs")
            .arg(path))?;
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// `path` bound onto itself, read-only.
    fn read_only_bind(path: &Path) -> anyhow::Result<Self> {
        run(Command::new("mount").arg("--bind").arg(path).arg(path))?;
        let mount = Self {
            path: path.to_owned(),
        };
        run(Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(path))?;
        Ok(mount)
    }

    fn remount(&self, options: &str) -> anyhow::Result<()> {
        run(Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path))?;
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// The disk fills up: the writer keeps the records in memory and retries; once
/// there is room again it resumes, and every message is accounted for.
#[test]
fn disk_full_then_room_again() -> anyhow::Result<()> {
    require_bpf!();
    let lab = Lab::new("full")?;
    let dir = TempDir::new("full")?;
    // Dropped in reverse order: the recorder goes before the mount.
    let mount = Mount::tmpfs(&dir.path.join("fs"), "1m")?;
    let db = mount.path.join("dnsq.db");
    let recorder = storing(&db, &["--batch-window", "200ms", "--batch-size", "200"])?;
    let before = qname("fill");
    let load = Load::start(&lab.netns, &before, 200_000, 1_000)?;
    let failing = "could not write to the store";
    wait_for(
        "the writer to report a full disk",
        Duration::from_secs(45),
        || recorder.stderr().contains(failing),
    )
    .with_context(|| format!("stderr:\n{}", recorder.stderr()))?;
    let answered_full = load.answered();
    // A little more traffic while full, then room again.
    thread::sleep(Duration::from_millis(500));
    drop(load);
    let warning = recorder
        .stderr()
        .lines()
        .find(|line| line.contains(failing))
        .unwrap_or_default()
        .to_owned();
    println!("full after {answered_full} exchanges: {warning}");
    ensure!(
        warning.contains("disk full"),
        "the warning does not say the disk is full: {warning}"
    );
    mount.remount("size=64m")?;
    wait_for("writing to resume", Duration::from_secs(20), || {
        recorder.stderr().contains("writing to the store resumed")
    })
    .with_context(|| format!("stderr:\n{}", recorder.stderr()))?;
    let after = qname("room");
    let (_, answered_after) =
        Load::start(&lab.netns, &after, 100, 200)?.finish(Duration::from_secs(20))?;
    let stderr = recorder.stop_storing()?;

    let conn = read_only(&db)?;
    let runs = runs(&conn)?;
    ensure!(
        runs.len() == 1 && runs[0].2.as_deref() == Some("signal"),
        "runs: {runs:?}\n{stderr}"
    );
    let values = final_counters(&conn, runs[0].0)?;
    let (messages, committed, dropped, failed, pending) = (
        counter(&values, "messages")?,
        counter(&values, "store_committed")?,
        counter(&values, "store_dropped")?,
        counter(&values, "store_failed_commits")?,
        counter(&values, "store_pending")?,
    );
    let rows = count(&conn, "SELECT count(*) FROM messages", [])?;
    let new = stored_for(&conn, &after)?;
    println!(
        "final counters: messages {messages}, committed {committed}, dropped {dropped}, \
         failed commits {failed}, pending {pending}; {rows} rows, {new} after the remount"
    );
    ensure!(failed > 0, "no failed commit counted: {values}");
    ensure!(
        committed + dropped == messages && pending == 0,
        "accounting: {committed} committed + {dropped} dropped != {messages} messages \
         ({pending} pending): {values}\n{stderr}"
    );
    ensure!(
        rows as u64 == committed,
        "{rows} rows, {committed} committed"
    );
    ensure!(
        new as u64 + kernel_lost(&values) >= 4 * answered_after,
        "after the remount only {new} messages of {answered_after} exchanges were stored"
    );
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    ensure!(integrity == "ok", "integrity_check: {integrity}");
    drop(conn);
    drop(mount);
    Ok(())
}

/// A database on a read-only file system: the recorder refuses to start, with an
/// error naming the file, without touching it; `dnsq` still reads it.
#[test]
fn read_only_database_is_refused_at_start() -> anyhow::Result<()> {
    require_bpf!();
    let lab = Lab::new("ro")?;
    let dir = TempDir::new("ro")?;
    let store = dir.path.join("store");
    let db = store.join("dnsq.db");
    let recorder = storing(&db, &[])?;
    let name = qname("ro");
    Load::start(&lab.netns, &name, 10, 100)?.finish(Duration::from_secs(10))?;
    recorder.stop_storing()?;
    let before = std::fs::read(&db)?;
    let wal = std::fs::read(store.join("dnsq.db-wal")).unwrap_or_default();

    let _mount = Mount::read_only_bind(&store)?;
    let started = Instant::now();
    let finished = recorder_until_exit(&["--db", path_str(&db)?], Duration::from_secs(20))?;
    println!(
        "exit {} after {:?}: {}",
        finished.code,
        started.elapsed(),
        finished.stderr.trim()
    );
    ensure!(
        finished.code == 2,
        "exit code {} (expected 2): {}",
        finished.code,
        finished.stderr
    );
    ensure!(
        finished.stderr.contains(path_str(&db)?)
            && finished.stderr.contains("Read-only file system"),
        "the error does not name the file and the cause: {}",
        finished.stderr
    );
    ensure!(std::fs::read(&db)? == before, "the database file changed");
    ensure!(
        std::fs::read(store.join("dnsq.db-wal")).unwrap_or_default() == wal,
        "the WAL changed"
    );
    // The history is still readable there.
    let (code, out, err) = dnsq(&["--db", path_str(&db)?, "name", name.trim_end_matches('.')])?;
    ensure!(
        code == 0 && out.contains(&name),
        "dnsq name on the read-only store: exit {code}\n{out}{err}"
    );
    Ok(())
}

/// A reader holding one read transaction open for 3 s does not stop the writer:
/// commits go on and are visible to other connections meanwhile.
#[test]
fn long_reader_does_not_hold_up_the_writer() -> anyhow::Result<()> {
    require_bpf!();
    let lab = Lab::new("hold")?;
    let dir = TempDir::new("hold")?;
    let db = dir.path.join("dnsq.db");
    let recorder = storing(&db, &["--batch-window", "200ms"])?;
    let name = qname("hold");
    let load = Load::start(&lab.netns, &name, 3_000, 500)?;
    let probe =
        || -> anyhow::Result<i64> { count(&read_only(&db)?, "SELECT count(*) FROM messages", []) };
    wait_for("the first commit", Duration::from_secs(10), || {
        probe().is_ok_and(|n| n > 0)
    })?;

    let mut holder = Connection::open(&db)?;
    let tx = holder.transaction()?;
    let held = count(&tx, "SELECT count(*) FROM messages", [])?;
    let mut seen = vec![held];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(500));
        seen.push(probe()?);
    }
    let still = count(&tx, "SELECT count(*) FROM messages", [])?;
    tx.commit()?;
    println!("held snapshot: {held} rows (still {still} after 3 s); other readers saw {seen:?}");
    ensure!(
        still == held,
        "the held transaction's snapshot moved: {held} → {still}"
    );
    let growing = seen.windows(2).filter(|pair| pair[1] > pair[0]).count();
    ensure!(
        growing >= 4,
        "the writer did not keep committing during the hold: {seen:?}"
    );
    drop(holder);
    load.finish(Duration::from_secs(20))?;
    let stderr = recorder.stop_storing()?;
    let conn = read_only(&db)?;
    let values = final_counters(&conn, runs(&conn)?[0].0)?;
    ensure!(
        counter(&values, "store_failed_commits")? == 0,
        "commits failed while a reader held a snapshot: {values}\n{stderr}"
    );
    Ok(())
}

/// A file that is not a dnsq store: garbage, or another program's SQLite database.
/// The recorder refuses it (exit 2, a clear message) without changing a byte, and
/// `dnsq stats` exits 3.
#[test]
fn not_a_store_is_refused_untouched() -> anyhow::Result<()> {
    require_bpf!();
    let dir = TempDir::new("corrupt")?;
    let garbage = dir.path.join("garbage.db");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let bytes: Vec<u8> = (0..65_536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(&garbage, &bytes)?;

    let foreign = dir.path.join("foreign.db");
    {
        let conn = Connection::open(&foreign)?;
        conn.execute_batch(
            "CREATE TABLE foo (id INTEGER PRIMARY KEY, x TEXT); INSERT INTO foo (x) VALUES ('bar');",
        )?;
    }

    for (path, says) in [
        (&garbage, "is not a SQLite database"),
        (&foreign, "a SQLite database of another program"),
    ] {
        let before = std::fs::read(path)?;
        let finished = recorder_until_exit(&["--db", path_str(path)?], Duration::from_secs(20))?;
        println!(
            "{}: exit {}: {}",
            path.display(),
            finished.code,
            finished.stderr.trim()
        );
        ensure!(
            finished.code == 2,
            "exit code {}: {}",
            finished.code,
            finished.stderr
        );
        ensure!(
            finished.stderr.contains(path_str(path)?) && finished.stderr.contains(says),
            "the error does not say {says:?} about {}: {}",
            path.display(),
            finished.stderr
        );
        ensure!(std::fs::read(path)? == before, "{} changed", path.display());
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            ensure!(
                !Path::new(&side).exists(),
                "{} was created",
                Path::new(&side).display()
            );
        }
        let (code, out, err) = dnsq(&["--db", path_str(path)?, "stats"])?;
        ensure!(
            code == 3,
            "dnsq stats on {}: exit {code}\n{out}{err}",
            path.display()
        );
        ensure!(
            std::fs::read(path)? == before,
            "{} changed after dnsq",
            path.display()
        );
    }
    Ok(())
}

/// A second recorder on the database a first one writes refuses to start and names
/// the first one's pid; the first goes on.
#[test]
fn second_recorder_names_the_first() -> anyhow::Result<()> {
    require_bpf!();
    let dir = TempDir::new("second")?;
    let db = dir.path.join("dnsq.db");
    let mut first = storing(&db, &[])?;
    let finished = recorder_until_exit(&["--db", path_str(&db)?], Duration::from_secs(20))?;
    println!(
        "second recorder: exit {}: {}",
        finished.code,
        finished.stderr.trim()
    );
    ensure!(
        finished.code == 2,
        "exit code {}: {}",
        finished.code,
        finished.stderr
    );
    let pid = format!("pid {}", first.pid());
    ensure!(
        finished.stderr.contains(&pid) && finished.stderr.contains(path_str(&db)?),
        "the error does not name the first recorder ({pid}) and the database: {}",
        finished.stderr
    );
    ensure!(first.running(), "the first recorder stopped");
    first.stop_storing()?;
    let conn = read_only(&db)?;
    let runs = runs(&conn)?;
    ensure!(runs.len() == 1, "the refused recorder left a run: {runs:?}");
    Ok(())
}
