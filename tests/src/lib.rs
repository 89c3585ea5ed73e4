//! Integration test harness: network namespaces the tests make themselves, a real
//! dnsmasq, the real recorder binary, real clients.
//!
//! Network rules: only loopback and namespaces created here; test hosts use
//! 198.18.0.0/15 and fd00::/8; glibc resolves only inside `ip netns exec` with a
//! namespace resolv.conf. Everything started here is killed on drop.

use std::{
    fs,
    io::{BufRead, BufReader, Read},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
pub use dnsq_recorder::record::{Direction, MessageRecord, Transport};

/// True when this test can use the kernel (root, BTF, cgroup v2). Otherwise the
/// test skips — unless `DNSQ_REQUIRE_BPF=1` (CI), where skipping is a failure.
pub fn bpf_ready(test: &str) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root");
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        missing.push("kernel BTF");
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: needs {}", missing.join(", "));
    if std::env::var("DNSQ_REQUIRE_BPF").as_deref() == Ok("1") {
        panic!("{why}, and DNSQ_REQUIRE_BPF=1 forbids skipping");
    }
    eprintln!("SKIPPED {why}");
    false
}

/// Skips (returns `Ok(())` from) the calling test when the kernel cannot be used.
#[macro_export]
macro_rules! require_bpf {
    () => {
        if !$crate::bpf_ready(module_path!()) {
            return Ok(());
        }
    };
}

/// A name no other test (or earlier run) uses.
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command to completion; fails with its stderr when it fails.
pub fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls `check` until it holds or `timeout` passes.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A network namespace, deleted (with its resolv.conf) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let name = unique(&format!("dnsq{tag}"));
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Self { name };
        run(Command::new("ip").args(["-n", &netns.name, "link", "set", "lo", "up"]))?;
        Ok(netns)
    }

    /// `program` run inside the namespace (`ip netns exec` execs it, so the child's
    /// pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// The namespace's inode number: what records carry as `process.netns`.
    pub fn inode(&self) -> anyhow::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(fs::metadata(Path::new("/run/netns").join(&self.name))?.ino())
    }

    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// The resolv.conf glibc sees inside the namespace.
    pub fn set_resolver(&self, nameserver: &str) -> anyhow::Result<()> {
        let dir = self.etc_dir();
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\noptions timeout:2 attempts:1\n"),
        )?;
        Ok(())
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.etc_dir());
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Links two namespaces with a veth pair: `a` gets 198.18.0.1 and fd00::1, `b` gets
/// 198.18.0.2 and fd00::2. `mtu` small forces TCP to cut answers into segments;
/// segmentation offloads are turned off so the probes see wire-sized segments.
pub fn link(a: &Netns, b: &Netns, mtu: u16) -> anyhow::Result<()> {
    let (va, vb) = (unique("va"), unique("vb"));
    run(Command::new("ip").args([
        "link", "add", &va, "netns", &a.name, "type", "veth", "peer", "name", &vb, "netns", &b.name,
    ]))?;
    for (netns, dev, v4, v6) in [
        (a, &va, "198.18.0.1/24", "fd00::1/64"),
        (b, &vb, "198.18.0.2/24", "fd00::2/64"),
    ] {
        netns.ip(&["link", "set", dev, "mtu", &mtu.to_string(), "up"])?;
        netns.ip(&["addr", "add", v4, "dev", dev])?;
        netns.ip(&["-6", "addr", "add", v6, "dev", dev, "nodad"])?;
        run(netns
            .command("ethtool")
            .args(["-K", dev, "tso", "off", "gso", "off", "gro", "off"]))?;
    }
    Ok(())
}

/// A dnsmasq serving fixed answers, killed on drop.
pub struct Dnsmasq {
    child: Child,
}

/// Every name under this domain resolves to [`ANSWER_V4`] and [`ANSWER_V6`].
pub const DOMAIN: &str = "dnsq.test";
pub const ANSWER_V4: &str = "198.18.0.10";
pub const ANSWER_V6: &str = "fd00::10";

impl Dnsmasq {
    /// Starts dnsmasq in `netns` on `listen` addresses and `port`, with nothing
    /// upstream, and waits until it answers sockets.
    pub fn start(
        netns: &Netns,
        listen: &[&str],
        port: u16,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let mut command = netns.command("dnsmasq");
        command
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--conf-file=/dev/null",
                "--bind-interfaces",
                "--user=root",
                "--pid-file=",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--address=/{DOMAIN}/{ANSWER_V4}"))
            .arg(format!("--address=/{DOMAIN}/{ANSWER_V6}"))
            .args(
                listen
                    .iter()
                    .map(|address| format!("--listen-address={address}")),
            )
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().context("starting dnsmasq")?;
        let dnsmasq = Self { child };
        let port_text = format!(":{port}");
        wait_for("dnsmasq to listen", Duration::from_secs(10), || {
            let Ok(out) = run(netns.command("ss").args(["-Hlntu"])) else {
                return false;
            };
            listen.iter().all(|address| {
                out.lines()
                    .filter(|line| line.contains(address) && line.contains(&port_text))
                    .count()
                    >= 2
            })
        })?;
        Ok(dnsmasq)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a workspace binary built by `make build` (or `$DNSQ_BIN_DIR`).
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("DNSQ_BIN_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"),
        PathBuf::from,
    );
    dir.join(name)
}

/// The real `dnsq-recorder --print`, started and waited for (systemd-style
/// readiness: it sends READY=1 once every probe is attached).
pub struct Recorder {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<thread::JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
    _notify_dir: TempDir,
}

/// What a stopped recorder printed.
#[derive(Debug)]
pub struct Recording {
    pub messages: Vec<MessageRecord>,
    /// The final `{"kind":"stats",...}` line.
    pub stats: serde_json::Value,
    pub stderr: String,
}

impl Recorder {
    /// `dnsq-recorder --print ARGS`.
    pub fn start(args: &[&str]) -> anyhow::Result<Self> {
        Self::launch(true, args)
    }

    /// `dnsq-recorder --db DB ARGS`: storing, nothing on stdout. Stop it with
    /// [`Recorder::stop_storing`].
    pub fn storing(db: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let db = db.to_str().context("database path")?;
        let mut all = vec!["--db", db];
        all.extend_from_slice(args);
        Self::launch(false, &all)
    }

    /// The recorder's pid (to signal it, or read its /proc entry).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn launch(print: bool, args: &[&str]) -> anyhow::Result<Self> {
        let notify_dir = TempDir::new("notify")?;
        let socket_path = notify_dir.path.join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).context("binding the notify socket")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut child = Command::new(binary("dnsq-recorder"))
            .args(print.then_some("--print"))
            .args(args)
            // No configuration file but what the test gives.
            .env("DNSQ_CONFIG", "/dev/null")
            .env("NOTIFY_SOCKET", &socket_path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (run `make build` first)",
                    binary("dnsq-recorder").display()
                )
            })?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().context("recorder stdout")?;
        let reader = {
            let lines = Arc::clone(&lines);
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            })
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = Arc::clone(&stderr);
            let mut pipe = child.stderr.take().context("recorder stderr")?;
            thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                    stderr
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            });
        }
        let mut recorder = Self {
            child,
            lines,
            reader: Some(reader),
            stderr,
            _notify_dir: notify_dir,
        };
        let start = Instant::now();
        let mut buffer = [0u8; 256];
        loop {
            if let Ok(n) = socket.recv(&mut buffer)
                && buffer[..n]
                    .split(|&b| b == b'\n')
                    .any(|line| line == b"READY=1")
            {
                return Ok(recorder);
            }
            if let Some(status) = recorder.child.try_wait()? {
                bail!(
                    "the recorder exited ({status}) before it was ready:\n{}",
                    recorder.stderr()
                );
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the recorder was not ready after 60 s:\n{}",
                    recorder.stderr()
                );
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Messages printed so far.
    pub fn messages_so_far(&self) -> Vec<MessageRecord> {
        parse_messages(&self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits until `check` holds for the messages printed so far.
    pub fn wait_for_messages(
        &self,
        what: &str,
        mut check: impl FnMut(&[MessageRecord]) -> bool,
    ) -> anyhow::Result<()> {
        wait_for(what, Duration::from_secs(10), || {
            check(&self.messages_so_far())
        })
    }

    /// SIGSTOP / SIGCONT: a paused recorder reads nothing, so the kernel's ring
    /// buffer fills up for certain.
    pub fn pause(&self, paused: bool) {
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// SIGTERM for a storing recorder: waits for a clean exit; returns its stderr.
    pub fn stop_storing(mut self) -> anyhow::Result<String> {
        self.terminate()?;
        Ok(self.stderr())
    }

    /// SIGTERM and a clean exit within 30 s.
    fn terminate(&mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                bail!(
                    "the recorder did not stop within 30 s of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        ensure!(
            status.success(),
            "the recorder failed ({status}):\n{}",
            self.stderr()
        );
        Ok(())
    }

    /// SIGTERM, then everything it printed. The recorder must exit cleanly.
    pub fn stop(mut self) -> anyhow::Result<Recording> {
        self.terminate()?;
        let stderr = self.stderr();
        let lines = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        let stats = lines
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|value| value["kind"] == "stats")
            .context("the recorder printed no stats line")?;
        Ok(Recording {
            messages: parse_messages(&lines),
            stats,
            stderr,
        })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse_messages(lines: &[String]) -> Vec<MessageRecord> {
    lines
        .iter()
        .filter(|line| line.starts_with("{\"kind\":\"message\""))
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("bad record {line}: {error}"))
        })
        .collect()
}

/// Runs the real `dnsq` (read-only CLI) and returns (exit code, stdout, stderr).
pub fn dnsq(args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let output = Command::new(binary("dnsq"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .output()
        .context("running dnsq (run `make build` first)")?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// A directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(unique(&format!("dnsq-{tag}-")));
        fs::create_dir_all(&path)?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Runs a client to completion and returns its pid and stdout; it must succeed.
pub fn client(command: &mut Command) -> anyhow::Result<(u32, String)> {
    let (pid, output) = client_output(command)?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((pid, String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// Runs a client to completion, whatever its exit: its pid and output.
pub fn client_output(command: &mut Command) -> anyhow::Result<(u32, std::process::Output)> {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let pid = child.id();
    Ok((pid, child.wait_with_output()?))
}

/// Helpers to pick records out of everything the recorder saw on the host.
pub trait MessageExt {
    fn qname(&self) -> Option<&str>;
    fn qtype(&self) -> Option<&str>;
    fn is_response(&self) -> bool;
    fn answers_data(&self) -> Vec<&str>;
}

impl MessageExt for MessageRecord {
    fn qname(&self) -> Option<&str> {
        Some(self.dns.as_ref()?.questions.first()?.name.as_str())
    }

    fn qtype(&self) -> Option<&str> {
        Some(self.dns.as_ref()?.questions.first()?.qtype.as_ref())
    }

    fn is_response(&self) -> bool {
        self.dns.as_ref().is_some_and(|dns| dns.response)
    }

    fn answers_data(&self) -> Vec<&str> {
        self.dns
            .as_ref()
            .map(|dns| dns.answers.iter().map(|rr| rr.data.as_str()).collect())
            .unwrap_or_default()
    }
}

/// The one message matching `filter`; fails with a listing of what was seen.
pub fn the_one<'a>(
    messages: &'a [MessageRecord],
    what: &str,
    filter: impl Fn(&MessageRecord) -> bool,
) -> anyhow::Result<&'a MessageRecord> {
    let found: Vec<&MessageRecord> = messages.iter().filter(|m| filter(m)).collect();
    match found.as_slice() {
        [one] => Ok(one),
        _ => bail!(
            "expected exactly one {what}, found {}; all messages:\n{}",
            found.len(),
            describe(messages)
        ),
    }
}

/// One line per message, for failure output.
pub fn describe(messages: &[MessageRecord]) -> String {
    messages
        .iter()
        .map(|m| {
            format!(
                "  {:?} {:?} {}:{} -> {}:{} {} {:?} pid={:?} comm={:?} attribution={:?}{}",
                m.direction,
                m.transport,
                m.src,
                m.sport,
                m.dst,
                m.dport,
                if m.is_response() { "response" } else { "query" },
                m.qname(),
                m.process.pid,
                m.process.comm,
                m.process.attribution,
                m.malformed
                    .as_ref()
                    .map(|bad| format!(" MALFORMED {}", bad.error))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that the query `qname`/`qtype` was sent by `client_pid` (`client_comm`)
/// and its response received by the same process, and that the server side, when
/// `server` is given, is attributed to the server's pid. Returns the client's
/// (query, response).
pub fn assert_exchange<'a>(
    messages: &'a [MessageRecord],
    qname: &str,
    qtype: &str,
    transport: Transport,
    client: (u32, &str),
    server: Option<(u32, &str)>,
) -> anyhow::Result<(&'a MessageRecord, &'a MessageRecord)> {
    let matches = |m: &MessageRecord, direction: Direction, response: bool| {
        m.qname() == Some(qname)
            && m.qtype() == Some(qtype)
            && m.transport == transport
            && m.direction == direction
            && m.is_response() == response
            && m.process.pid == Some(client.0)
    };
    let what = |side: &str| {
        format!(
            "{side} of {qname} {qtype} over {transport:?} by pid {}",
            client.0
        )
    };
    let query = the_one(messages, &what("query sent"), |m| {
        matches(m, Direction::Sent, false)
    })?;
    let response = the_one(messages, &what("response received"), |m| {
        matches(m, Direction::Received, true)
    })?;
    for (record, side) in [(query, "query"), (response, "response")] {
        ensure!(
            record.process.comm.as_deref() == Some(client.1),
            "{side} of {qname}: comm {:?}, expected {:?}",
            record.process.comm,
            client.1
        );
        ensure!(
            record.malformed.is_none(),
            "{side} of {qname} malformed: {:?}",
            record.malformed
        );
    }
    ensure!(
        response.pair.is_some(),
        "the response to {qname} was not paired with its query"
    );
    if let Some((pid, comm)) = server {
        // The server's side of this very exchange: same addresses and ports, seen
        // from the other end.
        let server_side = |direction: Direction, response: bool| {
            the_one(
                messages,
                &format!("{direction:?} {qname} {qtype} at the server"),
                |m| {
                    let (from, to) = if response {
                        (query.dst, query.src)
                    } else {
                        (query.src, query.dst)
                    };
                    let (from_port, to_port) = if response {
                        (query.dport, query.sport)
                    } else {
                        (query.sport, query.dport)
                    };
                    m.qname() == Some(qname)
                        && m.qtype() == Some(qtype)
                        && m.transport == transport
                        && m.direction == direction
                        && m.is_response() == response
                        && (m.src, m.sport, m.dst, m.dport) == (from, from_port, to, to_port)
                },
            )
        };
        // dnsmasq forks a child for every TCP connection: over TCP the server side
        // belongs to that child, whose pid the test cannot know in advance.
        let expected_pid = |found: Option<u32>| match transport {
            Transport::Udp => found == Some(pid),
            Transport::Tcp => found.is_some_and(|found| found != client.0),
        };
        for record in [
            server_side(Direction::Received, false)?,
            server_side(Direction::Sent, true)?,
        ] {
            ensure!(
                expected_pid(record.process.pid) && record.process.comm.as_deref() == Some(comm),
                "server side of {qname}: pid {:?} comm {:?}, expected {pid} {comm:?}",
                record.process.pid,
                record.process.comm
            );
        }
    }
    Ok((query, response))
}

// Helpers for the fault, hostile-input and privilege tests.

impl Recorder {
    /// SIGKILL: the recorder gets no chance to write anything more. Waits until it
    /// is gone; returns what it wrote to stderr.
    pub fn kill_hard(mut self) -> anyhow::Result<String> {
        use std::os::unix::process::ExitStatusExt;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let status = self.child.wait()?;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        ensure!(
            status.signal() == Some(libc::SIGKILL),
            "the recorder ended with {status} before the SIGKILL:\n{}",
            self.stderr()
        );
        Ok(self.stderr())
    }

    /// Whether the recorder is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Every line printed on stdout so far, exactly as printed (`--print`).
    pub fn lines_so_far(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A child process killed and reaped on drop.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn spawn(command: &mut Command) -> anyhow::Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        Ok(Self(child))
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What a command run by [`run_bounded`] left.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; -1 when a signal ended it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` (stdin closed, stdout and stderr captured) until it exits; kills
/// it and fails when it takes longer than `timeout`. A failing exit status is no
/// error here: the caller checks [`Finished::code`].
pub fn run_bounded(command: &mut Command, timeout: Duration) -> anyhow::Result<Finished> {
    let mut child = KillOnDrop::spawn(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    fn collect(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
    let stdout = collect(child.0.stdout.take());
    let stderr = collect(child.0.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            drop(child);
            let out = stdout.join().unwrap_or_default();
            let err = stderr.join().unwrap_or_default();
            bail!("{command:?} did not exit within {timeout:?}; stdout:\n{out}\nstderr:\n{err}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// `dnsq-recorder ARGS` without a configuration file (unless ARGS name one), for
/// runs expected to end on their own (errors, `check`); see [`run_bounded`].
pub fn recorder_until_exit(args: &[&str], timeout: Duration) -> anyhow::Result<Finished> {
    run_bounded(
        Command::new(binary("dnsq-recorder"))
            .args(args)
            .env("DNSQ_CONFIG", "/dev/null")
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET"),
        timeout,
    )
}
