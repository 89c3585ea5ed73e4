//! Capture and attribution against the real kernel, a real dnsmasq and real
//! clients. Each test asserts the pid and command name recorded for the query and
//! for the response.

use std::{
    io::{BufRead, BufReader, Write},
    net::IpAddr,
    process::Stdio,
};

use anyhow::{Context, ensure};
use dnsq_tests::{
    ANSWER_V4, ANSWER_V6, DOMAIN, Direction, Dnsmasq, MessageExt, MessageRecord, Netns, Recorder,
    TempDir, Transport, assert_exchange, client, describe, link, require_bpf, run, unique,
};

fn name(tag: &str) -> String {
    format!("{}.{DOMAIN}.", unique(tag))
}

/// dig over UDP and TCP to a dnsmasq on 127.0.0.1 and on ::1.
#[test]
fn dig_over_udp_and_tcp_on_loopback() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("lo")?;
    let dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1", "::1"], 53, &[])?;
    let recorder = Recorder::start(&[])?;
    let mut cases = Vec::new();
    for server in ["127.0.0.1", "::1"] {
        for (transport, flag) in [(Transport::Udp, "+notcp"), (Transport::Tcp, "+tcp")] {
            let qname = name("dig");
            let (pid, out) = client(netns.command("dig").args([
                &format!("@{server}"),
                &qname,
                "A",
                flag,
                "+short",
                "+tries=1",
            ]))?;
            ensure!(out.trim() == ANSWER_V4, "dig answered {out:?}");
            cases.push((qname, transport, pid, server));
        }
    }
    let recording = recorder.stop()?;
    for (qname, transport, pid, server) in &cases {
        let (query, response) = assert_exchange(
            &recording.messages,
            qname,
            "A",
            *transport,
            (*pid, "dig"),
            Some((dnsmasq.pid(), "dnsmasq")),
        )?;
        ensure_addresses(query, response, server, server)?;
        ensure!(
            response.answers_data() == [ANSWER_V4],
            "answers {:?}",
            response.answers_data()
        );
        ensure!(
            response
                .dns
                .as_ref()
                .is_some_and(|dns| dns.rcode == "NOERROR")
        );
    }
    Ok(())
}

/// A client in one namespace asks a server in another: the response belongs to the
/// client (the process owning the receiving socket), not to the server that sent it.
#[test]
fn client_and_server_in_different_namespaces() -> anyhow::Result<()> {
    require_bpf!();
    let (client_ns, server_ns) = (Netns::new("cli")?, Netns::new("srv")?);
    link(&client_ns, &server_ns, 1500)?;
    let dnsmasq = Dnsmasq::start(&server_ns, &["198.18.0.2", "fd00::2"], 53, &[])?;
    let recorder = Recorder::start(&[])?;
    let mut cases = Vec::new();
    for (server, qtype, answer) in [
        ("198.18.0.2", "A", ANSWER_V4),
        ("fd00::2", "AAAA", ANSWER_V6),
    ] {
        let qname = name("ns");
        let (pid, out) = client(client_ns.command("dig").args([
            &format!("@{server}"),
            &qname,
            qtype,
            "+short",
            "+tries=1",
        ]))?;
        ensure!(out.trim() == answer, "dig answered {out:?}");
        cases.push((qname, qtype, pid, answer));
    }
    let recording = recorder.stop()?;
    for (qname, qtype, pid, answer) in &cases {
        let (query, response) = assert_exchange(
            &recording.messages,
            qname,
            qtype,
            Transport::Udp,
            (*pid, "dig"),
            Some((dnsmasq.pid(), "dnsmasq")),
        )?;
        let (client_ip, server_ip) = if *qtype == "A" {
            ("198.18.0.1", "198.18.0.2")
        } else {
            ("fd00::1", "fd00::2")
        };
        ensure_addresses(query, response, client_ip, server_ip)?;
        ensure!(response.answers_data() == [*answer]);
        let expected = Some(client_ns.inode()?);
        ensure!(
            query.process.netns == expected && response.process.netns == expected,
            "client netns {:?} / {:?}, expected {expected:?}",
            query.process.netns,
            response.process.netns
        );
    }
    Ok(())
}

/// glibc's resolver (getent ahosts) inside a namespace with its own resolv.conf:
/// both the A and the AAAA query and answer belong to getent.
#[test]
fn glibc_resolver_through_namespace_resolv_conf() -> anyhow::Result<()> {
    require_bpf!();
    let (client_ns, server_ns) = (Netns::new("gcl")?, Netns::new("gsv")?);
    link(&client_ns, &server_ns, 1500)?;
    client_ns.set_resolver("198.18.0.2")?;
    let _dnsmasq = Dnsmasq::start(&server_ns, &["198.18.0.2"], 53, &[])?;
    let recorder = Recorder::start(&[])?;
    let qname = name("getent");
    let (pid, out) = client(
        client_ns
            .command("getent")
            .args(["ahosts", qname.trim_end_matches('.')]),
    )?;
    ensure!(
        out.contains(ANSWER_V4) && out.contains(ANSWER_V6),
        "getent printed {out:?}"
    );
    let recording = recorder.stop()?;
    for (qtype, answer) in [("A", ANSWER_V4), ("AAAA", ANSWER_V6)] {
        let (_, response) = assert_exchange(
            &recording.messages,
            &qname,
            qtype,
            Transport::Udp,
            (pid, "getent"),
            None,
        )?;
        ensure!(
            response.answers_data() == [answer],
            "{qtype}: {:?}",
            response.answers_data()
        );
    }
    Ok(())
}

/// A DNS query in wire format, for clients that write their own packets.
const PYTHON_QUERY: &str = r#"
import socket, struct, sys, time
def query(name, qid, qtype=1):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", qtype, 1)
def read_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise SystemExit("connection closed")
        data += chunk
    return data
def read_tcp_message(s):
    (length,) = struct.unpack(">H", read_exact(s, 2))
    return read_exact(s, length)
"#;

/// A UDP socket opened (and connected) before the recorder started, then used: the
/// kernel never saw its owner, so it is found late and marked as such.
#[test]
fn socket_opened_before_the_recorder() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("old")?;
    let _dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 53, &[])?;
    let qname = name("old");
    let script = format!(
        "{PYTHON_QUERY}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('127.0.0.1', 53))
print('ready', flush=True)
sys.stdin.readline()
s.send(query({qname:?}, 4242))
reply = s.recv(4096)
print('answered', len(reply), flush=True)
"
    );
    let mut python = netns
        .command("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = python.id();
    let mut stdout = BufReader::new(python.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    ensure!(line.trim() == "ready", "python said {line:?}");
    let recorder = Recorder::start(&[])?;
    python.stdin.as_mut().context("stdin")?.write_all(b"go\n")?;
    line.clear();
    stdout.read_line(&mut line)?;
    ensure!(line.starts_with("answered"), "python said {line:?}");
    ensure!(python.wait()?.success());
    let recording = recorder.stop()?;
    let (query, response) = assert_exchange(
        &recording.messages,
        &qname,
        "A",
        Transport::Udp,
        (pid, "python3"),
        None,
    )?;
    use dnsq_recorder::record::Attribution::{Procfs, SocketLate};
    for record in [query, response] {
        ensure!(
            matches!(record.process.attribution, Some(SocketLate | Procfs)),
            "a socket older than the recorder must be marked as found late, got {:?}",
            record.process.attribution
        );
    }
    Ok(())
}

/// Held by the tests that count the probes' executable walks: every recorder's
/// probes see every exec on the host, so one test's deliberate failures would
/// show in another's `exes_failed`.
static EXE_COUNTERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Clients gone before the recorder reads their packets (a recorder behind; paused
/// here until they have exited, so /proc has nothing left of them) keep their
/// executable: the probes recorded it when `ip netns exec` exec'd dig under the
/// same pid, and copied it at the fork of a Python child that never exec'd; the
/// path of a copy of dig on a tmpfs is walked across the mount.
#[test]
fn exited_clients_keep_their_executable() -> anyhow::Result<()> {
    require_bpf!();
    let _alone = EXE_COUNTERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let netns = Netns::new("gone")?;
    let dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 53, &[])?;
    let dir = TempDir::new("exe")?;
    let mounted = Tmpfs::mount(&dir.path.join("mnt"))?;
    let dig_copy = mounted.path.join("dig-copy");
    std::fs::copy("/usr/bin/dig", &dig_copy)?;
    let recorder = Recorder::start(&[])?;
    let (dig_name, fork_name, copy_name) = (name("gonedig"), name("gonefork"), name("gonecopy"));
    let script = format!(
        "{PYTHON_QUERY}
import os
child = os.fork()
if child == 0:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(query({fork_name:?}, 4343), ('127.0.0.1', 53))
    s.recvfrom(4096)
    os._exit(0)
_, status = os.waitpid(child, 0)
print(child, status, os.readlink('/proc/self/exe'))
"
    );
    recorder.pause(true);
    let dig =
        client(
            netns
                .command("dig")
                .args(["@127.0.0.1", &dig_name, "A", "+short", "+tries=1"]),
        );
    let forked = client(netns.command("python3").args(["-c", &script]));
    let copied = client(netns.command(&dig_copy.to_string_lossy()).args([
        "@127.0.0.1",
        &copy_name,
        "A",
        "+short",
        "+tries=1",
    ]));
    recorder.pause(false);
    let (dig_pid, out) = dig?;
    ensure!(out.trim() == ANSWER_V4, "dig answered {out:?}");
    let (_, out) = forked?;
    // The child's executable is its parent's, as /proc told the parent.
    let [child, status, python_exe] = out.split_whitespace().collect::<Vec<_>>()[..] else {
        anyhow::bail!("python printed {out:?}");
    };
    ensure!(status == "0", "the forked child failed: {out:?}");
    let child: u32 = child.parse()?;
    let (copy_pid, _) = copied?;
    let recording = recorder.stop()?;

    let dig_exe = std::fs::canonicalize("/usr/bin/dig")?;
    let copy_exe = std::fs::canonicalize(&dig_copy)?;
    for (qname, pid, comm, exe) in [
        (
            &dig_name,
            dig_pid,
            "dig",
            dig_exe.to_string_lossy().as_ref(),
        ),
        (&fork_name, child, "python3", python_exe),
        (
            &copy_name,
            copy_pid,
            "dig-copy",
            copy_exe.to_string_lossy().as_ref(),
        ),
    ] {
        let (query, response) = assert_exchange(
            &recording.messages,
            qname,
            "A",
            Transport::Udp,
            (pid, comm),
            Some((dnsmasq.pid(), "dnsmasq")),
        )?;
        for record in [query, response] {
            ensure!(
                record.process.exe.as_deref() == Some(exe),
                "{comm} (pid {pid}): exe {:?}, expected {exe:?}",
                record.process.exe
            );
        }
    }
    ensure!(
        recording.stats["exes_recorded"].as_u64() >= Some(4)
            && recording.stats["exes_failed"].as_u64() == Some(0),
        "{}",
        recording.stats
    );
    Ok(())
}

/// An executable whose path the probes cannot walk whole (deeper than their 40
/// steps, or longer than the 256 bytes they keep) is counted as failed and gives
/// the exited client no executable, never a path cut short.
#[test]
fn paths_too_deep_or_too_long_are_not_recorded_cut_short() -> anyhow::Result<()> {
    require_bpf!();
    let _alone = EXE_COUNTERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let netns = Netns::new("cut")?;
    let _dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 53, &[])?;
    let dir = TempDir::new("exe-cut")?;
    let mounted = Tmpfs::mount(&dir.path.join("mnt"))?;
    let deep = (0..45).fold(mounted.path.clone(), |path, _| path.join("d"));
    let long = mounted.path.join("l".repeat(200)).join("o".repeat(200));
    let mut copies = Vec::new();
    for dir in [deep, long] {
        std::fs::create_dir_all(&dir)?;
        let copy = dir.join("dig");
        std::fs::copy("/usr/bin/dig", &copy)?;
        copies.push(copy);
    }
    let recorder = Recorder::start(&[])?;
    let names = [name("cutdeep"), name("cutlong")];
    recorder.pause(true);
    let runs: Vec<_> = copies
        .iter()
        .zip(&names)
        .map(|(copy, qname)| {
            client(netns.command(&copy.to_string_lossy()).args([
                "@127.0.0.1",
                qname,
                "A",
                "+short",
                "+tries=1",
            ]))
        })
        .collect();
    recorder.pause(false);
    let mut pids = Vec::new();
    for run in runs {
        let (pid, out) = run?;
        ensure!(out.trim() == ANSWER_V4, "dig answered {out:?}");
        pids.push(pid);
    }
    let recording = recorder.stop()?;
    for (qname, pid) in names.iter().zip(pids) {
        let (query, response) = assert_exchange(
            &recording.messages,
            qname,
            "A",
            Transport::Udp,
            (pid, "dig"),
            None,
        )?;
        for record in [query, response] {
            ensure!(
                record.process.exe.is_none(),
                "{qname}: exe {:?} for an executable whose path the probes cut short",
                record.process.exe
            );
        }
    }
    ensure!(
        recording.stats["exes_failed"].as_u64() >= Some(2),
        "{}",
        recording.stats
    );
    Ok(())
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(path: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)?;
        run(std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "dnsq-test"])
            .arg(path))?;
        Ok(Self {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run(std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path));
    }
}

/// TCP: a ~3 KB TXT answer cut into segments by a 1280-byte MTU, a query written in
/// pieces, and two queries pipelined on one connection.
#[test]
fn tcp_segmented_answer_split_query_and_pipelining() -> anyhow::Result<()> {
    require_bpf!();
    let (client_ns, server_ns) = (Netns::new("tcl")?, Netns::new("tsv")?);
    link(&client_ns, &server_ns, 1280)?;
    let big = name("big");
    let chunk = "x".repeat(250);
    let txt = format!(
        "--txt-record={},{}",
        big.trim_end_matches('.'),
        [chunk.as_str(); 12].join(",")
    );
    let dnsmasq = Dnsmasq::start(&server_ns, &["198.18.0.2"], 53, &[txt])?;
    let recorder = Recorder::start(&[])?;

    let (dig_pid, out) =
        client(
            client_ns
                .command("dig")
                .args(["@198.18.0.2", &big, "TXT", "+tcp", "+tries=1"]),
        )?;
    ensure!(
        out.contains(&chunk),
        "dig did not get the TXT answer:\n{out}"
    );

    let (first, second) = (name("pipe1"), name("pipe2"));
    let script = format!(
        "{PYTHON_QUERY}
s = socket.create_connection(('198.18.0.2', 53))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# A query written in three pieces: the length prefix alone, then the message in two.
q = query({big:?}, 7, 16)
framed = struct.pack('>H', len(q)) + q
for piece in (framed[:1], framed[1:2], framed[2:10], framed[10:]):
    s.send(piece)
    time.sleep(0.05)
first = read_tcp_message(s)
# Two queries pipelined in one write.
q1, q2 = query({first:?}, 1), query({second:?}, 2)
s.send(struct.pack('>H', len(q1)) + q1 + struct.pack('>H', len(q2)) + q2)
answers = [read_tcp_message(s), read_tcp_message(s)]
print(len(first), *(len(a) for a in answers))
"
    );
    let (python_pid, out) = client(client_ns.command("python3").args(["-c", &script]))?;
    let sizes: Vec<usize> = out
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    ensure!(sizes.len() == 3 && sizes[0] > 3000, "python read {out:?}");
    let recording = recorder.stop()?;
    let messages = &recording.messages;

    let server = Some((dnsmasq.pid(), "dnsmasq"));
    for pid_comm in [(dig_pid, "dig"), (python_pid, "python3")] {
        let (_, response) =
            assert_exchange(messages, &big, "TXT", Transport::Tcp, pid_comm, server)?;
        // With a 1280-byte MTU and offloads off, a 3 KB answer crosses the wire
        // (and the probes) as at least three segments.
        ensure!(
            response.message_len > 3000 && response.captured_len == response.message_len,
            "TXT response {} of {} bytes",
            response.captured_len,
            response.message_len
        );
        let data = response.answers_data().concat();
        ensure!(data.matches(&chunk).count() == 12, "TXT data {data:?}");
    }
    for qname in [&first, &second] {
        assert_exchange(
            messages,
            qname,
            "A",
            Transport::Tcp,
            (python_pid, "python3"),
            server,
        )?;
    }
    Ok(())
}

/// `--port` adds a port; without it that port is not captured (a positive control
/// on port 53 in the same run proves the recorder was looking).
#[test]
fn extra_port_only_when_configured() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("port")?;
    let dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 5353, &[])?;
    let control_server = Dnsmasq::start(&netns, &["127.0.0.2"], 53, &[])?;
    for configured in [true, false] {
        let args: &[&str] = if configured {
            &["--port", "53,5353"]
        } else {
            &[]
        };
        let recorder = Recorder::start(args)?;
        let (extra, control) = (name("extra"), name("control"));
        let (extra_pid, _) = client(netns.command("dig").args([
            "@127.0.0.1",
            "-p",
            "5353",
            &extra,
            "+short",
            "+tries=1",
        ]))?;
        let (control_pid, _) =
            client(
                netns
                    .command("dig")
                    .args(["@127.0.0.2", &control, "+short", "+tries=1"]),
            )?;
        let recording = recorder.stop()?;
        assert_exchange(
            &recording.messages,
            &control,
            "A",
            Transport::Udp,
            (control_pid, "dig"),
            Some((control_server.pid(), "dnsmasq")),
        )?;
        let on_extra: Vec<_> = recording
            .messages
            .iter()
            .filter(|m| m.sport == 5353 || m.dport == 5353)
            .cloned()
            .collect();
        if configured {
            assert_exchange(
                &on_extra,
                &extra,
                "A",
                Transport::Udp,
                (extra_pid, "dig"),
                Some((dnsmasq.pid(), "dnsmasq")),
            )?;
        } else {
            ensure!(
                on_extra.is_empty(),
                "port 5353 captured without --port:\n{}",
                describe(&on_extra)
            );
        }
    }
    Ok(())
}

/// A burst into a deliberately tiny ring buffer while the recorder is paused: every
/// message is either recorded or counted as lost, and most are lost.
#[test]
fn ring_buffer_losses_are_counted_exactly() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("loss")?;
    // Nothing listens on the port: every datagram is one egress event, no answers.
    let recorder = Recorder::start(&["--ring-buffer-size", "4096", "--port", "5399"])?;
    let sends = 20_000;
    let script = format!(
        "{PYTHON_QUERY}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = query('loss.{DOMAIN}', 1)
sent = 0
for i in range({sends}):
    try:
        s.sendto(q, ('127.0.0.1', 5399)); sent += 1
    except OSError:
        pass
print(sent)
"
    );
    recorder.pause(true);
    let burst = client(netns.command("python3").args(["-c", &script]));
    recorder.pause(false);
    let (_, out) = burst?;
    let sent: u64 = out.trim().parse()?;
    ensure!(
        sent > sends / 2,
        "only {sent} of {sends} datagrams went out"
    );
    let recording = recorder.stop()?;
    let received = recording
        .messages
        .iter()
        .filter(|m| m.dport == 5399 && m.direction == Direction::Sent)
        .count() as u64;
    let lost = recording.stats["lost_ringbuf_full"]
        .as_u64()
        .context("lost_ringbuf_full")?;
    let other_losses = ["lost_load_failed", "lost_parse_failed"]
        .iter()
        .map(|key| recording.stats[key].as_u64().unwrap_or(u64::MAX))
        .sum::<u64>();
    eprintln!("sent {sent}, recorded {received}, lost (ring buffer full) {lost}");
    ensure!(other_losses == 0, "unexpected losses: {}", recording.stats);
    // 4 KiB holds a few dozen events: the rest of the burst cannot have fitted.
    ensure!(
        lost > sent / 2,
        "the tiny ring buffer did not overflow: {}",
        recording.stats
    );
    ensure!(
        received + lost == sent,
        "recorded {received} + lost {lost} != sent {sent}: {}",
        recording.stats
    );
    Ok(())
}

/// With no DNS traffic the recorder sleeps: its threads wake about once a second
/// (the store's housekeeping) instead of ten times (polling the rings every
/// 100 ms), and the first query after the quiet still reaches it while it runs.
/// Other DNS traffic of the host would wake it too; the bound leaves room for a
/// little of it.
#[test]
fn an_idle_recorder_sleeps_until_the_next_query() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("idle")?;
    let dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 53, &[])?;
    let recorder = Recorder::start(&[])?;
    // Past the two quiet poll intervals after start-up.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = context_switches(recorder.pid())?;
    std::thread::sleep(std::time::Duration::from_secs(3));
    let wakeups = context_switches(recorder.pid())? - before;
    eprintln!("the idle recorder's threads were switched in {wakeups} times in 3 s");
    ensure!(
        wakeups < 20,
        "the idle recorder woke {wakeups} times in 3 s (polling every 100 ms: about 30)"
    );
    let qname = name("idle");
    let (pid, out) =
        client(
            netns
                .command("dig")
                .args(["@127.0.0.1", &qname, "A", "+short", "+tries=1"]),
        )?;
    ensure!(out.trim() == ANSWER_V4, "dig answered {out:?}");
    recorder.wait_for_messages("the query after the quiet", |messages| {
        messages
            .iter()
            .filter(|m| m.qname() == Some(qname.as_str()))
            .count()
            == 4
    })?;
    let recording = recorder.stop()?;
    assert_exchange(
        &recording.messages,
        &qname,
        "A",
        Transport::Udp,
        (pid, "dig"),
        Some((dnsmasq.pid(), "dnsmasq")),
    )?;
    Ok(())
}

/// Voluntary and involuntary context switches of all of `pid`'s threads.
fn context_switches(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status"))?;
        total += status
            .lines()
            .filter(|line| line.contains("ctxt_switches:"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}

/// The query went from `client` to `server` and the response back, as the packet
/// programs read the addresses (IPv4 in the first 4 bytes, IPv6 whole).
fn ensure_addresses(
    query: &MessageRecord,
    response: &MessageRecord,
    client: &str,
    server: &str,
) -> anyhow::Result<()> {
    let (client, server): (IpAddr, IpAddr) = (client.parse()?, server.parse()?);
    ensure!(
        (query.src, query.dst) == (client, server),
        "query {} -> {}, expected {client} -> {server}",
        query.src,
        query.dst
    );
    ensure!(
        (response.src, response.dst) == (server, client),
        "response {} -> {}, expected {server} -> {client}",
        response.src,
        response.dst
    );
    Ok(())
}
