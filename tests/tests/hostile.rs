//! Hostile bytes on a DNS port: truncated messages, compression-pointer loops, TCP
//! length prefixes that lie, random bytes, a TCP stream that never completes, and
//! valid messages whose names carry escape sequences, NUL bytes, non-UTF-8 bytes or
//! the longest length allowed; a process whose command name is an escape sequence.
//! The recorder must keep running, keep every message (undecodable ones as
//! `malformed` with their bytes), never let a control character out raw, and keep
//! its memory bounded.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use dnsq_tests::{
    DOMAIN, Direction, KillOnDrop, MessageRecord, Netns, Recorder, TempDir, Transport, binary,
    describe, require_bpf, unique, wait_for,
};
use rusqlite::{Connection, OpenFlags};

/// A UDP and TCP sink on 127.0.0.1:PORT that reads everything and answers nothing.
const SINK: &str = r#"
import socket, sys, threading
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
u.bind(("127.0.0.1", port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", port))
t.listen(512)
def drain():
    while True:
        u.recvfrom(65535)
def serve(c):
    try:
        while c.recv(65535):
            pass
    except OSError:
        pass
    c.close()
def accept():
    while True:
        c, _ = t.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=drain, daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"#;

/// Sends what the test tells it on stdin, one command a line, and answers "ok":
/// `u HEX,HEX…` UDP datagrams; `t HEX,HEX…` one TCP connection each, the bytes
/// sent as they are (the test writes the length prefixes), then FIN;
/// `h HEX` a TCP connection sent HEX and held open; `close` closes the held ones;
/// `comm HEX` sets the thread's (and so the process's) command name and opens a new
/// UDP socket.
const HOSTILE_CLIENT: &str = r#"
import ctypes, socket, sys
port = int(sys.argv[1])
server = ("127.0.0.1", port)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
held = []
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    items = [bytes.fromhex(h) for h in arg.split(",") if h]
    if cmd == "u":
        for data in items:
            u.sendto(data, server)
    elif cmd == "t":
        for data in items:
            s = socket.create_connection(server)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(2)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
            s.close()
    elif cmd == "h":
        for data in items:
            s = socket.create_connection(server)
            s.sendall(data)
            held.append(s)
    elif cmd == "close":
        for s in held:
            s.close()
        held = []
    elif cmd == "comm":
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(items[0]), 0, 0, 0)
        # A new socket: the kernel learns a socket's owner when it is first used.
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print("ok", flush=True)
"#;

/// A python process run in a namespace, killed on drop, talked to over stdin/stdout.
struct Python {
    child: KillOnDrop,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    fn start(netns: &Netns, script: &str, port: u16) -> anyhow::Result<Self> {
        let mut child = KillOnDrop::spawn(
            netns
                .command("python3")
                .args(["-c", script, &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )?;
        let stdin = child.0.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.0.stdout.take().context("stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// Reads one line (bounded: the script answers at once or has died).
    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        ensure!(
            !line.is_empty(),
            "the python helper {} died",
            self.child.id()
        );
        Ok(line.trim().to_owned())
    }

    /// Sends one command to [`HOSTILE_CLIENT`] and waits for its "ok".
    fn command(&mut self, command: &str, items: &[Vec<u8>]) -> anyhow::Result<()> {
        let hex: Vec<String> = items.iter().map(|item| to_hex(item)).collect();
        writeln!(self.stdin, "{command} {}", hex.join(","))?;
        self.stdin.flush()?;
        let answer = self.line()?;
        ensure!(answer == "ok", "the hostile client answered {answer:?}");
        Ok(())
    }
}

/// The sink, listening before anything is sent.
fn sink(netns: &Netns, port: u16) -> anyhow::Result<Python> {
    let mut sink = Python::start(netns, SINK, port)?;
    let ready = sink.line()?;
    ensure!(ready == "ready", "the sink said {ready:?}");
    Ok(sink)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 12-byte DNS header: a query with `qdcount` questions.
fn header(id: u16, qdcount: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(12);
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&0x0100u16.to_be_bytes());
    h.extend_from_slice(&qdcount.to_be_bytes());
    h.extend_from_slice(&[0; 6]);
    h
}

/// A query for the name made of `labels` (type A, class IN).
fn query(id: u16, labels: &[Vec<u8>]) -> Vec<u8> {
    let mut q = header(id, 1);
    for label in labels {
        q.push(u8::try_from(label.len()).expect("label length"));
        q.extend_from_slice(label);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A TCP DNS message: the 2-byte length, then the bytes.
fn framed(bytes: &[u8]) -> Vec<u8> {
    let mut framed = u16::try_from(bytes.len())
        .expect("length")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(bytes);
    framed
}

/// xorshift64: the same "random" bytes on every run.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// Labels of `suffix` (e.g. "tag.dnsq.test").
fn labels_of(suffix: &str) -> Vec<Vec<u8>> {
    suffix
        .split('.')
        .map(|label| label.as_bytes().to_vec())
        .collect()
}

/// An undecodable message: what is sent, and the bytes the record must keep.
struct Bad {
    what: &'static str,
    transport: Transport,
    /// What goes on the wire (for TCP, with its length prefix, true or not).
    wire: Vec<u8>,
    /// The message bytes the record keeps (`malformed.raw_hex`).
    raw: Vec<u8>,
}

/// A valid query with a nasty name: the name as the recorder must write it.
struct Nasty {
    what: &'static str,
    wire: Vec<u8>,
    name: String,
}

/// Undecodable messages, each over UDP and over TCP (and TCP-only lies), all
/// carrying `tag` so that no other traffic on the host matches them.
fn bad_messages(tag: &str, id: u16) -> Vec<Bad> {
    let t = tag.as_bytes();
    let mut truncated = header(id, 1);
    truncated.push(63); // a label of 63 bytes, of which only the tag follows
    truncated.extend_from_slice(t);
    let mut pointer_loop = header(id, 1);
    pointer_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // a name pointing at itself
    pointer_loop.extend_from_slice(t);
    let mut pointer_cycle = header(id, 1);
    pointer_cycle.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]); // 12 → 14 → 12
    pointer_cycle.extend_from_slice(t);
    let mut random = random_bytes(u64::from(id) << 16 | 0x5eed, 48);
    random[4..12].fill(0xff); // 65535 of every section: cannot fit
    random.extend_from_slice(t);
    let short = {
        let mut short = id.to_be_bytes().to_vec();
        short.extend_from_slice(&[0xde, 0xad, 0x01]);
        short
    };
    let mut out = Vec::new();
    for (what, bytes) in [
        ("truncated", truncated),
        ("pointer loop", pointer_loop),
        ("pointer cycle", pointer_cycle),
        ("random bytes", random),
        ("shorter than a header", short),
    ] {
        out.push(Bad {
            what,
            transport: Transport::Udp,
            wire: bytes.clone(),
            raw: bytes.clone(),
        });
        out.push(Bad {
            what,
            transport: Transport::Tcp,
            wire: framed(&bytes),
            raw: bytes,
        });
    }
    // A length prefix of 200 followed by 30 bytes, then FIN.
    let mut partial = header(id, 1);
    partial.extend_from_slice(&random_bytes(u64::from(id) ^ 0xfeed, 18 - t.len().min(18)));
    partial.extend_from_slice(&t[..t.len().min(18)]);
    let mut lying = 200u16.to_be_bytes().to_vec();
    lying.extend_from_slice(&partial);
    out.push(Bad {
        what: "TCP length prefix larger than what follows",
        transport: Transport::Tcp,
        wire: lying,
        raw: partial,
    });
    out
}

/// Valid queries whose names are hostile, below `suffix`.
fn nasty_names(suffix: &str, id: u16) -> Vec<Nasty> {
    let tail = labels_of(suffix);
    let with = |first: &[u8]| {
        let mut labels = vec![first.to_vec()];
        labels.extend(tail.iter().cloned());
        labels
    };
    // The longest name there is: 255 bytes on the wire.
    let used: usize = tail.iter().map(|l| l.len() + 1).sum::<usize>() + 1 + 3 * 64;
    let last = 255 - used - 1;
    assert!(
        (1..=63).contains(&last),
        "suffix {suffix} too long for a 255-byte name"
    );
    let mut longest = vec![
        vec![b'x'; 63],
        vec![b'y'; 63],
        vec![b'z'; 63],
        vec![b'w'; last],
    ];
    longest.extend(tail.iter().cloned());
    let longest_name = format!(
        "{}.{}.{}.{}.{suffix}.",
        "x".repeat(63),
        "y".repeat(63),
        "z".repeat(63),
        "w".repeat(last)
    );
    let nasty = vec![
        Nasty {
            what: "escape sequence, newline and DEL",
            wire: query(id, &with(b"\x1b[31mred\n\x7f")),
            name: format!("\\027[31mred\\010\\127.{suffix}."),
        },
        Nasty {
            what: "NUL bytes",
            wire: query(id.wrapping_add(1), &with(b"a\0b\0")),
            name: format!("a\\000b\\000.{suffix}."),
        },
        Nasty {
            what: "non-UTF-8 bytes",
            wire: query(id.wrapping_add(2), &with(b"\xff\xfe\xc3(")),
            name: format!("\\255\\254\\195\\(.{suffix}."),
        },
        Nasty {
            what: "a 255-byte name",
            wire: query(id.wrapping_add(3), &longest),
            name: longest_name,
        },
    ];
    // The longest query: header, a 255-byte name, type and class.
    assert_eq!(nasty[3].wire.len(), 12 + 255 + 4);
    nasty
}

/// Characters that must never reach an output raw: C0 controls but `\n` (and `\r`
/// where allowed), DEL, and C1 controls.
fn raw_controls(text: &str, allow_cr: bool) -> Vec<(usize, char)> {
    text.char_indices()
        .filter(|&(_, c)| {
            (c < ' ' && c != '\n' && !(allow_cr && c == '\r')) || ('\u{7f}'..='\u{9f}').contains(&c)
        })
        .collect()
}

fn ensure_no_raw_controls(what: &str, bytes: &[u8], allow_cr: bool) -> anyhow::Result<()> {
    let text = std::str::from_utf8(bytes).with_context(|| format!("{what} is not UTF-8"))?;
    let found = raw_controls(text, allow_cr);
    if let Some(&(at, c)) = found.first() {
        let start = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
        bail!(
            "{what}: {} raw control character(s), the first {c:?} in line {:?}",
            found.len(),
            &text[start..end]
        );
    }
    Ok(())
}

/// `dnsq ARGS` with its raw stdout bytes.
fn dnsq_raw(args: &[&str]) -> anyhow::Result<(i32, Vec<u8>, String)> {
    let output = Command::new(binary("dnsq"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()?;
    Ok((
        output.status.code().unwrap_or(-1),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// `dnsq ARGS` with stdout on a terminal (script(1) gives it a pty).
fn dnsq_on_a_terminal(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let mut command = shell_quote(&binary("dnsq").to_string_lossy());
    for arg in args {
        command.push(' ');
        command.push_str(&shell_quote(arg));
    }
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .env("COLUMNS", "400")
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        output.status.success(),
        "{command} on a terminal failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(output.stdout)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn records_with_raw<'a>(
    messages: &'a [MessageRecord],
    raw: &[u8],
    transport: Transport,
) -> Vec<&'a MessageRecord> {
    let hex = to_hex(raw);
    messages
        .iter()
        .filter(|m| {
            m.transport == transport
                && m.malformed
                    .as_ref()
                    .is_some_and(|bad| bad.raw_hex.eq_ignore_ascii_case(&hex))
        })
        .collect()
}

fn records_named<'a>(
    messages: &'a [MessageRecord],
    name: &str,
    transport: Transport,
) -> Vec<&'a MessageRecord> {
    messages
        .iter()
        .filter(|m| {
            m.transport == transport
                && m.dns
                    .as_ref()
                    .and_then(|dns| dns.questions.first())
                    .is_some_and(|q| q.name == name)
        })
        .collect()
}

/// Both sides of one message: the client's send and the sink's receive.
fn both_sides(found: &[&MessageRecord]) -> bool {
    found.iter().any(|m| m.direction == Direction::Sent)
        && found.iter().any(|m| m.direction == Direction::Received)
}

/// The command name the hostile client gives itself: an escape sequence, DEL and
/// the C1 control CSI (U+009B, valid UTF-8).
const NASTY_COMM: &[u8] = b"\x1b[31m\x7f\xc2\x9bevil";

/// Every hostile message over UDP and TCP to a sink on port 53: each is recorded
/// (undecodable ones as malformed, with their bytes), nasty names come out escaped
/// in `--print` and in everything `dnsq` prints from the stored history.
#[test]
fn hostile_messages_are_kept_and_escaped() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("hostile")?;
    let dir = TempDir::new("hostile")?;
    let db = dir.path.join("dnsq.db");
    let db_arg = db.to_str().context("db path")?;
    let _sink = sink(&netns, 53)?;
    let mut print = Recorder::start(&[])?;
    let mut storing = Recorder::storing(&db, &["--batch-window", "200ms"])?;
    let mut client = Python::start(&netns, HOSTILE_CLIENT, 53)?;

    let tag = unique("hostile");
    let suffix = format!("{tag}.{DOMAIN}");
    let id = (std::process::id() & 0xffff) as u16;
    // A stream that never completes, open while everything else is sent.
    let mut half = header(id, 1);
    half.extend_from_slice(tag.as_bytes());
    let mut half_wire = 256u16.to_be_bytes().to_vec();
    half_wire.extend_from_slice(&half);
    client.command("h", &[half_wire])?;

    let bad = bad_messages(&tag, id);
    let nasty = nasty_names(&suffix, id.wrapping_add(16));
    client.command(
        "u",
        &bad.iter()
            .filter(|b| b.transport == Transport::Udp)
            .map(|b| b.wire.clone())
            .collect::<Vec<_>>(),
    )?;
    client.command(
        "t",
        &bad.iter()
            .filter(|b| b.transport == Transport::Tcp)
            .map(|b| b.wire.clone())
            .collect::<Vec<_>>(),
    )?;
    client.command(
        "u",
        &nasty.iter().map(|n| n.wire.clone()).collect::<Vec<_>>(),
    )?;
    client.command(
        "t",
        &nasty.iter().map(|n| framed(&n.wire)).collect::<Vec<_>>(),
    )?;
    // A process whose name is an escape sequence asks for a plain name.
    let comm_name = format!("comm.{suffix}.");
    client.command("comm", &[NASTY_COMM.to_vec()])?;
    client.command(
        "u",
        &[query(
            id.wrapping_add(32),
            &labels_of(&format!("comm.{suffix}")),
        )],
    )?;

    let all_there = |messages: &[MessageRecord]| {
        bad.iter()
            .all(|b| both_sides(&records_with_raw(messages, &b.raw, b.transport)))
            && nasty.iter().all(|n| {
                [Transport::Udp, Transport::Tcp]
                    .into_iter()
                    .all(|t| both_sides(&records_named(messages, &n.name, t)))
            })
            && both_sides(&records_named(messages, &comm_name, Transport::Udp))
    };
    let start = Instant::now();
    if wait_for("every hostile message", Duration::from_secs(15), || {
        all_there(&print.messages_so_far())
    })
    .is_err()
    {
        let messages = print.messages_so_far();
        let mut missing = Vec::new();
        for b in &bad {
            let found = records_with_raw(&messages, &b.raw, b.transport);
            if !both_sides(&found) {
                missing.push(format!(
                    "{} over {:?}: {} record(s)",
                    b.what,
                    b.transport,
                    found.len()
                ));
            }
        }
        for n in &nasty {
            for t in [Transport::Udp, Transport::Tcp] {
                let found = records_named(&messages, &n.name, t);
                if !both_sides(&found) {
                    missing.push(format!(
                        "{} over {t:?} ({}): {} record(s)",
                        n.what,
                        n.name,
                        found.len()
                    ));
                }
            }
        }
        let ours: Vec<MessageRecord> = messages
            .iter()
            .filter(|m| m.dport == 53 || m.sport == 53)
            .filter(|m| {
                m.malformed
                    .as_ref()
                    .is_some_and(|bad| bad.raw_hex.contains(&to_hex(tag.as_bytes())))
                    || m.dns
                        .as_ref()
                        .is_some_and(|dns| dns.questions.iter().any(|q| q.name.contains(&tag)))
            })
            .cloned()
            .collect();
        bail!(
            "missing:\n  {}\nrecorded of ours:\n{}",
            missing.join("\n  "),
            describe(&ours)
        );
    }
    println!("every hostile message recorded after {:?}", start.elapsed());
    ensure!(print.running() && storing.running(), "a recorder died");

    // Closing the stream that never completed gives its bytes as malformed.
    client.command("close", &[])?;
    wait_for(
        "the unfinished stream's record",
        Duration::from_secs(10),
        || {
            both_sides(&records_with_raw(
                &print.messages_so_far(),
                &half,
                Transport::Tcp,
            ))
        },
    )
    .with_context(|| format!("records:\n{}", describe(&print.messages_so_far())))?;

    let messages = print.messages_so_far();
    for b in &bad {
        for record in records_with_raw(&messages, &b.raw, b.transport) {
            ensure!(
                record.dns.is_none()
                    && !record
                        .malformed
                        .as_ref()
                        .is_some_and(|m| m.error.is_empty()),
                "{} over {:?}: {record:?}",
                b.what,
                b.transport
            );
        }
    }
    for n in &nasty {
        for t in [Transport::Udp, Transport::Tcp] {
            for record in records_named(&messages, &n.name, t) {
                ensure!(
                    record.malformed.is_none(),
                    "{} over {t:?} was not decoded: {record:?}",
                    n.what
                );
            }
        }
    }
    // The nasty command name, as recorded.
    let comm_records = records_named(&messages, &comm_name, Transport::Udp);
    let sent = comm_records
        .iter()
        .find(|m| m.direction == Direction::Sent)
        .context("the nasty process's query")?;
    let nasty_comm = String::from_utf8_lossy(NASTY_COMM);
    ensure!(
        sent.process.comm.as_deref() == Some(&*nasty_comm),
        "the nasty process's comm: {:?}",
        sent.process.comm
    );

    // --print: every line ours, as printed, without a raw control character.
    let lines: Vec<String> = print
        .lines_so_far()
        .into_iter()
        .filter(|line| line.contains(&tag) || line.contains(&to_hex(tag.as_bytes())))
        .collect();
    ensure!(
        lines.len() >= 2 * (bad.len() + 2 * nasty.len()),
        "only {} lines of ours",
        lines.len()
    );
    ensure_no_raw_controls("dnsq-recorder --print", lines.join("\n").as_bytes(), false)?;
    drop(client);
    let recording = print.stop()?;
    ensure!(
        recording.messages.len() >= lines.len(),
        "the --print recorder lost lines"
    );
    storing.stop_storing()?;

    // The stored history, through dnsq.
    let (code, jsonl, err) = dnsq_raw(&["--db", db_arg, "export", "--format", "jsonl"])?;
    ensure!(code == 0, "dnsq export jsonl: exit {code}: {err}");
    ensure_no_raw_controls("dnsq export --format jsonl", &jsonl, false)?;
    let stored: Vec<MessageRecord> = std::str::from_utf8(&jsonl)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("dnsq export jsonl")?;
    for b in &bad {
        ensure!(
            both_sides(&records_with_raw(&stored, &b.raw, b.transport)),
            "{} over {:?}: not stored as malformed with its bytes",
            b.what,
            b.transport
        );
    }
    ensure!(
        both_sides(&records_with_raw(&stored, &half, Transport::Tcp)),
        "the unfinished stream was not stored"
    );
    for n in &nasty {
        for t in [Transport::Udp, Transport::Tcp] {
            ensure!(
                both_sides(&records_named(&stored, &n.name, t)),
                "{} over {t:?}: not stored",
                n.what
            );
        }
    }

    let (code, tail, err) = dnsq_raw(&["--db", db_arg, "tail", "-n", "1000000"])?;
    ensure!(code == 0, "dnsq tail: exit {code}: {err}");
    ensure_no_raw_controls("dnsq tail", &tail, false)?;
    let tail = String::from_utf8(tail)?;
    ensure!(
        tail.contains(&format!("\\027[31mred\\010\\127.{suffix}.")),
        "dnsq tail does not show the escaped name"
    );
    ensure!(
        tail.contains("\\x1b[31m\\x7f\\u{9b}evil"),
        "dnsq tail does not show the escaped command name"
    );

    let pattern = format!("*.{suffix}");
    let (code, table, err) = dnsq_raw(&["--db", db_arg, "name", &pattern])?;
    ensure!(code == 0, "dnsq name: exit {code}: {err}");
    ensure_no_raw_controls("dnsq name", &table, false)?;
    let (code, json, err) = dnsq_raw(&["--db", db_arg, "--json", "name", &pattern])?;
    ensure!(code == 0, "dnsq name --json: exit {code}: {err}");
    ensure_no_raw_controls("dnsq name --json", &json, false)?;
    let json = String::from_utf8(json)?;
    for n in &nasty {
        let quoted = serde_json::to_string(&n.name)?;
        ensure!(
            json.contains(&quoted),
            "dnsq name --json lacks {quoted}:\n{json}"
        );
    }

    // CSV: names are escaped in the data itself; a command name reaches files and
    // pipes as it is (documented), and a terminal escaped.
    let (code, csv, err) = dnsq_raw(&["--db", db_arg, "export", "--format", "csv"])?;
    ensure!(code == 0, "dnsq export csv: exit {code}: {err}");
    let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_slice());
    let headers = reader.headers()?.clone();
    let column: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let (qname, comm) = (column["qname"], column["comm"]);
    let mut names = Vec::new();
    for row in reader.records() {
        let row = row?;
        for (i, cell) in row.iter().enumerate() {
            if i != comm {
                ensure_no_raw_controls(
                    &format!("CSV column {}", &headers[i]),
                    cell.as_bytes(),
                    false,
                )?;
            }
        }
        names.push(row[qname].to_owned());
    }
    for n in &nasty {
        ensure!(
            names.iter().filter(|name| **name == n.name).count() >= 4,
            "CSV lacks {}",
            n.name
        );
    }
    let on_terminal = dnsq_on_a_terminal(&["--db", db_arg, "export", "--format", "csv"])?;
    ensure_no_raw_controls("dnsq export --format csv on a terminal", &on_terminal, true)?;
    ensure!(
        String::from_utf8_lossy(&on_terminal).contains("\\x1b[31m\\x7f\\u{9b}evil"),
        "the command name is not escaped on a terminal"
    );
    Ok(())
}

/// Resident memory of a process, in KiB.
fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

/// The port of the memory test: a port of its own, so that only its hostile
/// traffic reaches its recorder (another test's load on port 53 would be measured
/// too).
const RSS_PORT: u16 = 5398;

/// 2,000 hostile messages (a quarter of them TCP, 200 streams left unfinished):
/// the recorder's resident memory grows by less than 30 MB.
#[test]
fn memory_stays_bounded_under_hostile_traffic() -> anyhow::Result<()> {
    require_bpf!();
    const LIMIT_KIB: u64 = 30 * 1024;
    let netns = Netns::new("rss")?;
    let dir = TempDir::new("rss")?;
    let db = dir.path.join("dnsq.db");
    let _sink = sink(&netns, RSS_PORT)?;
    let mut recorder = Recorder::storing(
        &db,
        &["--port", &RSS_PORT.to_string(), "--batch-window", "200ms"],
    )?;
    let mut client = Python::start(&netns, HOSTILE_CLIENT, RSS_PORT)?;
    let tag = unique("rss");

    // Message `i`: each a different kind, name and bytes.
    let message = |i: u32| -> Vec<u8> {
        let id = (i & 0xffff) as u16;
        let suffix = format!("m{i}.{tag}.{DOMAIN}");
        match i % 4 {
            0 => {
                let bad = bad_messages(&format!("{tag}{i}"), id);
                bad[(i as usize / 4) % bad.len()].raw.clone()
            }
            1 => {
                let nasty = nasty_names(&suffix, id);
                nasty[(i as usize / 4) % nasty.len()].wire.clone()
            }
            2 => random_bytes(u64::from(i) * 7919, 12 + (i as usize % 500)),
            _ => query(id, &labels_of(&suffix)),
        }
    };
    let send = |client: &mut Python, range: std::ops::Range<u32>| -> anyhow::Result<u32> {
        let (mut udp, mut tcp, mut held) = (Vec::new(), Vec::new(), Vec::new());
        for i in range.clone() {
            match i % 10 {
                0..=6 => udp.push(message(i)),
                7 | 8 => tcp.push(framed(&message(i))),
                _ => {
                    // Half a message, left open.
                    let bytes = message(i);
                    let mut wire = (bytes.len() as u16 + 100).to_be_bytes().to_vec();
                    wire.extend_from_slice(&bytes);
                    held.push(wire);
                }
            }
        }
        for chunk in udp.chunks(50) {
            client.command("u", chunk)?;
            std::thread::sleep(Duration::from_millis(5));
        }
        for chunk in tcp.chunks(50) {
            client.command("t", chunk)?;
        }
        client.command("h", &held)?;
        Ok(range.len() as u32)
    };
    let stored = |db: &Path| -> anyhow::Result<i64> {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(
            conn.query_row(dnsq_recorder::store::schema::MESSAGE_COUNT, [], |row| {
                row.get(0)
            })?,
        )
    };

    // Warm up: caches, the page cache of SQLite, the first allocations.
    send(&mut client, 0..200)?;
    wait_for("the warm-up to be stored", Duration::from_secs(20), || {
        stored(&db).is_ok_and(|n| n >= 200)
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let before = vm_rss_kib(recorder.pid())?;
    let rows_before = stored(&db)?;
    let started = Instant::now();
    let mut sent = 0;
    for round in 0..10u32 {
        sent += send(&mut client, 200 + round * 200..400 + round * 200)?;
    }
    // Both sides of the 1,800 messages not left unfinished, give or take a few.
    wait_for(
        "the hostile messages to be stored",
        Duration::from_secs(30),
        || stored(&db).is_ok_and(|n| n >= rows_before + 3_400),
    )
    .with_context(|| format!("{} records stored", stored(&db).unwrap_or(-1)))?;
    std::thread::sleep(Duration::from_millis(500));
    let after = vm_rss_kib(recorder.pid())?;
    client.command("close", &[])?;
    std::thread::sleep(Duration::from_millis(500));
    let closed = vm_rss_kib(recorder.pid())?;
    ensure!(
        recorder.running(),
        "the recorder died:\n{}",
        recorder.stderr()
    );
    let rows = stored(&db)?;
    println!(
        "VmRSS: {before} KiB after the warm-up, {after} KiB after {sent} hostile messages in \
         {:?} ({rows} records stored), {closed} KiB once the unfinished streams closed; \
         growth {} KiB (limit {LIMIT_KIB} KiB)",
        started.elapsed(),
        after.saturating_sub(before)
    );
    ensure!(
        after.saturating_sub(before) <= LIMIT_KIB && closed.saturating_sub(before) <= LIMIT_KIB,
        "resident memory grew from {before} KiB to {after} KiB ({closed} KiB after closing)"
    );
    let stderr = recorder.stop_storing()?;
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let malformed: i64 = conn.query_row("SELECT count(*) FROM malformed", [], |row| row.get(0))?;
    ensure!(
        malformed >= 500,
        "only {malformed} malformed records stored:\n{stderr}"
    );
    Ok(())
}
