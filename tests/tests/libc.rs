//! Seeing through local resolvers at the libc level: uprobes on getaddrinfo and
//! gethostbyname* record which process asked for which name, also when that
//! process sends no DNS packet itself, and the recorder joins it to the query a
//! resolver daemon sends for it.
//!
//! glibc resolves only inside `ip netns exec NS`, with `/etc/netns/NS/*` files
//! bind-mounted over `/etc`; the DNS server is a dnsmasq on the namespace's
//! loopback.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use dnsq_recorder::record::LookupRecord;
use dnsq_tests::{
    ANSWER_V4, DOMAIN, Direction, Dnsmasq, KillOnDrop, MessageExt, MessageRecord, Netns, Recorder,
    TempDir, binary, client, client_output, describe, dnsq, recorder_until_exit, require_bpf,
    unique, wait_for,
};

const PYTHON: &str = "/usr/bin/python3";

/// The lookups printed so far (`"kind":"lookup"` lines).
fn lookups(recorder: &Recorder) -> Vec<LookupRecord> {
    recorder
        .lines_so_far()
        .iter()
        .filter(|line| line.starts_with("{\"kind\":\"lookup\""))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad lookup {line}: {e}")))
        .collect()
}

fn describe_lookups(lookups: &[LookupRecord]) -> String {
    lookups
        .iter()
        .map(|l| {
            format!(
                "  {} {:?} pid={:?} comm={:?} thread={:?}",
                l.function, l.name, l.process.pid, l.process.comm, l.process.thread
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files glibc reads inside the namespace, next to its resolv.conf.
fn etc_file(netns: &Netns, file: &str, text: &str) -> anyhow::Result<()> {
    let dir = Path::new("/etc/netns").join(&netns.name);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(file), text)?;
    Ok(())
}

/// A Python stand-in for systemd-resolved: sends one A query for `name` to
/// 127.0.0.1:53 and prints the answer's rcode.
fn resolver_script(name: &str) -> String {
    format!(
        r#"
import socket, struct
name = {name:?}
q = struct.pack(">HHHHHH", 0x5151, 0x0100, 1, 0, 0, 0)
for label in name.rstrip(".").split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, ("127.0.0.1", 53))
answer, _ = s.recvfrom(4096)
print(answer[3] & 0x0f)
"#
    )
}

/// (a) `getent ahosts` asks dnsmasq itself: its getaddrinfo call is recorded
/// with its pid and command, and its own queries are its own (no
/// `on_behalf_of`).
#[test]
fn getent_lookup_is_recorded_with_its_own_queries() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("lga")?;
    let dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 53, &[])?;
    netns.set_resolver("127.0.0.1")?;
    let recorder = Recorder::start(&[])?;
    let name = format!("{}.{DOMAIN}", unique("getent"));
    let qname = format!("{name}.");
    let (pid, out) = client(netns.command("getent").args(["ahosts", &name]))?;
    ensure!(out.contains(ANSWER_V4), "getent: {out}");
    recorder.wait_for_messages("getent's answers", |messages| {
        messages
            .iter()
            .filter(|m| {
                m.process.pid == Some(pid) && m.is_response() && m.qname() == Some(qname.as_str())
            })
            .count()
            >= 2
    })?;
    let seen = lookups(&recorder);
    let recording = recorder.stop()?;
    let messages = &recording.messages;

    let ours: Vec<_> = seen.iter().filter(|l| l.process.pid == Some(pid)).collect();
    ensure!(
        ours.len() == 1,
        "expected one lookup by getent (pid {pid}), found {}:\n{}",
        ours.len(),
        describe_lookups(&seen)
    );
    let lookup = ours[0];
    ensure!(
        lookup.kind == "lookup" && lookup.function == "getaddrinfo",
        "{lookup:?}"
    );
    ensure!(
        lookup.name == name,
        "name {:?}, expected {name:?}",
        lookup.name
    );
    ensure!(
        lookup.process.comm.as_deref() == Some("getent"),
        "{:?}",
        lookup.process
    );
    ensure!(
        lookup.process.uid == Some(0) && lookup.process.tid == Some(pid),
        "{:?}",
        lookup.process
    );
    ensure!(
        lookup.process.netns == Some(netns.inode()?),
        "{:?}",
        lookup.process
    );
    ensure!(lookup.process.attribution.is_none(), "{:?}", lookup.process);
    ensure!(
        lookup.process.exe.as_deref() == Some("/usr/bin/getent"),
        "{:?}",
        lookup.process
    );

    // Its own queries (A and AAAA) and answers, none on anyone's behalf.
    let own: Vec<&MessageRecord> = messages
        .iter()
        .filter(|m| m.process.pid == Some(pid) && m.qname() == Some(qname.as_str()))
        .collect();
    let queries = own
        .iter()
        .filter(|m| m.direction == Direction::Sent && !m.is_response())
        .count();
    ensure!(
        queries >= 2,
        "getent sent {queries} queries:\n{}",
        describe(messages)
    );
    for message in &own {
        ensure!(
            message.on_behalf_of.is_empty(),
            "getent's message on behalf of {:?}",
            message.on_behalf_of
        );
        ensure!(message.process.comm.as_deref() == Some("getent"));
    }
    // dnsmasq answered it as a client of its own (the exchange), and no query
    // of anyone else was linked to getent through the lookup.
    for message in messages
        .iter()
        .filter(|m| m.qname() == Some(qname.as_str()))
    {
        let for_getent = message.on_behalf_of.iter().any(|p| p.pid == Some(pid));
        if for_getent {
            ensure!(
                message.process.pid == Some(dnsmasq.pid())
                    && message.is_response()
                    && message.from_cache.is_some(),
                "linked to getent: {message:?}"
            );
        }
    }
    Ok(())
}

/// (b) The "never sends a packet" case: the client resolves from /etc/hosts
/// (`hosts: files`), and a separate process, standing in for systemd-resolved,
/// queries dnsmasq for the same name right after. The resolver's query and its
/// answer are on the client's behalf; no DNS message is the client's. A
/// getaddrinfo(NULL, …) call and a numeric address are no lookups. The store
/// keeps the lookup and the delegation.
#[test]
fn a_client_that_sends_nothing_is_behind_the_resolver_query() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("lgb")?;
    let _dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 53, &[])?;
    netns.set_resolver("127.0.0.1")?;
    let name = format!("{}.{DOMAIN}", unique("quiet"));
    let qname = format!("{name}.");
    etc_file(&netns, "nsswitch.conf", "hosts: files\n")?;
    etc_file(
        &netns,
        "hosts",
        &format!("127.0.0.1 localhost\n{ANSWER_V4} {name}\n"),
    )?;

    let dir = TempDir::new("libc-store")?;
    let db = dir.path.join("dnsq.db");
    let storing = Recorder::storing(&db, &[])?;
    let recorder = Recorder::start(&[])?;
    // Upper case: names are matched case-insensitively.
    let client_code = format!(
        "import socket\n\
         socket.getaddrinfo(None, 80)\n\
         socket.getaddrinfo('198.18.0.77', 80)\n\
         print(socket.getaddrinfo({:?}, 80, socket.AF_INET)[0][4][0])",
        name.to_uppercase()
    );
    let (app, out) = client(netns.command(PYTHON).args(["-c", &client_code]))?;
    ensure!(out.trim() == ANSWER_V4, "client: {out}");
    let (resolver, out) = client(netns.command(PYTHON).args(["-c", &resolver_script(&name)]))?;
    ensure!(out.trim() == "0", "resolver stand-in: rcode {out}");
    recorder.wait_for_messages("the resolver's answer", |messages| {
        messages.iter().any(|m| {
            m.process.pid == Some(resolver) && m.is_response() && m.qname() == Some(qname.as_str())
        })
    })?;
    let seen = lookups(&recorder);
    let recording = recorder.stop()?;
    let messages = &recording.messages;

    let ours: Vec<_> = seen.iter().filter(|l| l.process.pid == Some(app)).collect();
    ensure!(
        ours.len() == 1,
        "expected one lookup by the client (pid {app}), found {}:\n{}",
        ours.len(),
        describe_lookups(&seen)
    );
    let lookup = ours[0];
    ensure!(
        lookup.function == "getaddrinfo" && lookup.name == name.to_uppercase(),
        "{lookup:?}"
    );
    ensure!(
        lookup.process.comm.as_deref() == Some("python3"),
        "{:?}",
        lookup.process
    );
    ensure!(
        !messages.iter().any(|m| m.process.pid == Some(app)),
        "the client sent or received DNS:\n{}",
        describe(messages)
    );
    let from_resolver = |direction: Direction, response: bool| {
        let found: Vec<_> = messages
            .iter()
            .filter(|m| {
                m.process.pid == Some(resolver)
                    && m.direction == direction
                    && m.is_response() == response
                    && m.qname() == Some(qname.as_str())
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            _ => bail!(
                "expected one {direction:?} message of the resolver:\n{}",
                describe(messages)
            ),
        }
    };
    for message in [
        from_resolver(Direction::Sent, false)?,
        from_resolver(Direction::Received, true)?,
    ] {
        let behalf: Vec<_> = message.on_behalf_of.iter().map(|p| p.pid).collect();
        ensure!(
            behalf == [Some(app)],
            "on behalf of {behalf:?}, expected the client {app}"
        );
        ensure!(message.on_behalf_of[0].comm.as_deref() == Some("python3"));
    }
    ensure!(
        recording.stats["lookups"].as_u64() >= Some(1),
        "{}",
        recording.stats
    );
    ensure!(
        recording.stats["lookups_delivered"].as_u64() >= Some(1),
        "{}",
        recording.stats
    );
    ensure!(
        recording.stats["lookups_lost"].as_u64() == Some(0),
        "{}",
        recording.stats
    );

    // The store: the lookup row, and a delegation from the resolver to the client.
    storing.stop_storing()?;
    let conn = rusqlite::Connection::open(&db)?;
    let stored: Vec<(String, i64, i64)> = conn
        .prepare(
            "SELECT n.name, l.function, p.pid FROM libc_lookups l \
             JOIN names n ON n.id = l.qname_id JOIN processes p ON p.id = l.process_id",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    ensure!(
        stored.contains(&(qname.clone(), 1, i64::from(app))),
        "libc_lookups has no ({qname}, getaddrinfo, {app}): {stored:?}"
    );
    let delegations: i64 = conn.query_row(
        "SELECT coalesce(sum(d.upstream), 0) FROM delegations d \
         JOIN processes r ON r.id = d.resolver_process_id \
         JOIN processes c ON c.id = d.client_process_id \
         JOIN names n ON n.id = d.qname_id \
         WHERE r.pid = ?1 AND c.pid = ?2 AND n.name = ?3",
        rusqlite::params![resolver, app, qname],
        |row| row.get(0),
    )?;
    ensure!(
        delegations == 1,
        "delegations upstream {delegations}, expected 1"
    );
    dnsq_recorder::store::chunk::unpack_messages(&conn)?;
    let for_app: i64 = conn.query_row(
        "SELECT count(*) FROM messages m JOIN processes c ON c.id = m.for_process_id \
         WHERE c.pid = ?1",
        [app],
        |row| row.get(0),
    )?;
    ensure!(
        for_app == 2,
        "{for_app} messages stored for the client, expected query and answer"
    );
    drop(conn);

    // `dnsq by-process` shows the client's call, with the resolver beside it and
    // the answer the resolver got (the client's own answer never was a packet).
    let call = libc_row(&db, app, &qname)?;
    ensure!(
        call["role"] == "libc"
            && call["type"] == "getaddrinfo"
            && call["queries"] == 1
            && call["process"]["comm"] == "python3",
        "{call}"
    );
    ensure!(
        call["via"]["pid"] == resolver && call["answers"] == serde_json::json!([ANSWER_V4]),
        "{call}"
    );
    // `dnsq who`: the client's getaddrinfo answer and the row inferred through
    // the resolver are one row, no longer inferred.
    let rows: Vec<_> = who(&db, ANSWER_V4)?
        .into_iter()
        .filter(|r| r["name"] == qname.as_str() && r["process"]["pid"] == app)
        .collect();
    ensure!(
        rows.len() == 1
            && rows[0]["via"]["pid"] == resolver
            && rows[0]["libc"] == true
            && rows[0]["inferred"] == false
            && rows[0]["server"] == "127.0.0.1",
        "who {ANSWER_V4} for the client: {rows:?}"
    );
    Ok(())
}

/// libc calls its own probed functions (gethostbyname2 → gethostbyname2_r): one
/// call, one lookup, one answer (read from the `hostent` it returned). `getent hosts` calls gethostbyname2 (for AAAA, then A);
/// perl calls gethostbyname_r itself.
#[test]
fn nested_libc_calls_are_one_lookup() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("lgh")?;
    let name = format!("{}.{DOMAIN}", unique("nested"));
    etc_file(&netns, "nsswitch.conf", "hosts: files\n")?;
    etc_file(&netns, "hosts", &format!("{ANSWER_V4} {name}\n"))?;
    let recorder = Recorder::start(&[])?;
    let (getent, out) = client(netns.command("getent").args(["hosts", &name]))?;
    ensure!(out.contains(ANSWER_V4), "getent: {out}");
    let perl = if Path::new("/usr/bin/perl").exists() {
        let code = format!(
            "use Socket; my @h = gethostbyname({name:?}) or die; print inet_ntoa($h[4]), qq(\\n);"
        );
        let (pid, out) = client(netns.command("/usr/bin/perl").args(["-e", &code]))?;
        ensure!(out.trim() == ANSWER_V4, "perl: {out}");
        Some(pid)
    } else {
        eprintln!("no /usr/bin/perl: its gethostbyname_r is not tried");
        None
    };
    let last = perl.unwrap_or(getent);
    wait_for("the last lookup's answer", Duration::from_secs(10), || {
        answers(&recorder)
            .iter()
            .any(|l| l.process.pid == Some(last))
    })?;
    let seen = lookups(&recorder);
    let returned = answers(&recorder);
    let recording = recorder.stop()?;
    // What each call returned: the outer calls' answers only (an inner call's is
    // skipped with the call), read from the `hostent`.
    let answered = |pid: u32| -> Vec<(&str, Vec<String>)> {
        returned
            .iter()
            .filter(|a| a.process.pid == Some(pid) && a.name == name)
            .filter_map(|a| {
                let answer = a.answer.as_ref()?;
                let addresses = answer.addresses.iter().map(|ip| ip.to_string()).collect();
                Some((a.function.as_str(), addresses))
            })
            .collect()
    };
    let getent_answers = answered(getent);
    ensure!(
        !getent_answers.is_empty()
            && getent_answers.iter().all(|(f, _)| *f == "gethostbyname2")
            && getent_answers.contains(&("gethostbyname2", vec![ANSWER_V4.to_owned()])),
        "getent's answers: {getent_answers:?}"
    );
    if let Some(perl) = perl {
        ensure!(
            answered(perl) == [("gethostbyname_r", vec![ANSWER_V4.to_owned()])],
            "perl's answers: {:?}",
            answered(perl)
        );
    }
    let by = |pid: u32| -> Vec<(&str, &str)> {
        seen.iter()
            .filter(|l| l.process.pid == Some(pid))
            .map(|l| (l.function.as_str(), l.name.as_str()))
            .collect()
    };
    let getent_calls = by(getent);
    ensure!(
        !getent_calls.is_empty()
            && getent_calls
                .iter()
                .all(|call| *call == ("gethostbyname2", name.as_str())),
        "getent's lookups:\n{}",
        describe_lookups(&seen)
    );
    ensure!(
        recording.stats["lookups_skipped"].as_u64() >= Some(1),
        "{}",
        recording.stats
    );
    if let Some(perl) = perl {
        ensure!(
            by(perl) == [("gethostbyname_r", name.as_str())],
            "perl's lookups:\n{}",
            describe_lookups(&seen)
        );
    }
    Ok(())
}

/// A failed gethostbyname* says why, as libc told the caller (`h_errno`):
/// HOST_NOT_FOUND for a name that does not exist, NO_DATA for one without an
/// address of the asked family. perl calls gethostbyname_r (its `h_errnop` is
/// an argument in a register); `getent hosts` calls gethostbyname2, whose
/// `h_errno` is that of libc's inner gethostbyname2_r call (its seventh
/// argument, on the stack). Stored, `dnsq by-process` shows the same.
#[test]
fn a_failed_gethostbyname_says_why() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("lge")?;
    let missing = format!("{}.missing.test", unique("gone"));
    let (v4_only, v6_only) = ("v4only.test", "v6only.test");
    let _dnsmasq = Dnsmasq::start(
        &netns,
        &["127.0.0.1"],
        53,
        &[
            // Local: names the records below do not cover are NXDOMAIN, and
            // the families they do not cover NODATA (not REFUSED for want
            // of an upstream).
            "--local=/missing.test/".into(),
            format!("--local=/{v4_only}/"),
            format!("--local=/{v6_only}/"),
            format!("--host-record={v4_only},198.18.0.11"),
            format!("--host-record={v6_only},fd00::11"),
        ],
    )?;
    netns.set_resolver("127.0.0.1")?;
    etc_file(&netns, "nsswitch.conf", "hosts: dns\n")?;
    let dir = TempDir::new("libc-h-errno")?;
    let db = dir.path.join("dnsq.db");
    let storing = Recorder::storing(&db, &[])?;
    let recorder = Recorder::start(&[])?;

    // perl: gethostbyname_r; `$?` is h_errno after a failure.
    let code = format!(
        "for my $n ({missing:?}, {v6_only:?}) {{ my @h = gethostbyname($n); print scalar(@h), qq( $?\\n) }}"
    );
    let (perl, out) = client(netns.command("/usr/bin/perl").args(["-e", &code]))?;
    ensure!(out == "0 1\n0 4\n", "perl printed {out:?}");
    // getent hosts: gethostbyname2 for AF_INET6, then for AF_INET.
    let (getent_missing, output) =
        client_output(netns.command("getent").args(["hosts", &missing]))?;
    // getent: 2, "one or more supplied key could not be found".
    ensure!(
        output.status.code() == Some(2),
        "getent hosts {missing}: {}",
        output.status
    );
    let (getent_v4, out) = client(netns.command("getent").args(["hosts", v4_only]))?;
    ensure!(out.contains("198.18.0.11"), "getent: {out}");
    wait_for("getent's answers", Duration::from_secs(10), || {
        answers(&recorder)
            .iter()
            .filter(|a| a.process.pid == Some(getent_v4))
            .count()
            >= 2
    })?;
    let seen = answers(&recorder);
    let recording = recorder.stop()?;
    let errors = |pid: u32| -> Vec<(&str, &str, Option<&str>)> {
        seen.iter()
            .filter(|a| a.process.pid == Some(pid))
            .filter_map(|a| {
                let answer = a.answer.as_ref()?;
                Some((
                    a.function.as_str(),
                    a.name.as_str(),
                    answer.error.as_deref(),
                ))
            })
            .collect()
    };
    let r = "gethostbyname_r";
    ensure!(
        errors(perl)
            == [
                (r, missing.as_str(), Some("HOST_NOT_FOUND")),
                (r, v6_only, Some("NO_DATA"))
            ],
        "perl's answers: {:?}",
        errors(perl)
    );
    let g2 = "gethostbyname2";
    ensure!(
        errors(getent_missing)
            == [
                (g2, missing.as_str(), Some("HOST_NOT_FOUND")),
                (g2, missing.as_str(), Some("HOST_NOT_FOUND"))
            ],
        "getent's answers for {missing}: {:?}",
        errors(getent_missing)
    );
    ensure!(
        errors(getent_v4) == [(g2, v4_only, Some("NO_DATA")), (g2, v4_only, None)],
        "getent's answers for {v4_only}: {:?}",
        errors(getent_v4)
    );
    ensure!(
        recording.stats["lookups_lost"].as_u64() == Some(0),
        "{}",
        recording.stats
    );

    storing.stop_storing()?;
    let call = libc_row(&db, perl, &format!("{missing}."))?;
    ensure!(
        call["rcodes"] == serde_json::json!({"HOST_NOT_FOUND": 1}),
        "{call}"
    );
    let call = libc_row(&db, getent_v4, &format!("{v4_only}."))?;
    ensure!(
        call["rcodes"] == serde_json::json!({"NO_DATA": 1, "ok": 1}),
        "{call}"
    );
    Ok(())
}

/// (c) A process whose libc is not the host's (a copy, loaded through
/// LD_LIBRARY_PATH, running before the recorder starts) is covered: the
/// recorder finds the copy in the process's maps and probes it. The host's libc
/// is in the list too, and `dnsq-recorder check` shows both.
#[test]
fn a_libc_that_is_not_the_hosts_is_found_and_probed() -> anyhow::Result<()> {
    require_bpf!();
    let host_libc = host_libc()?;
    let netns = Netns::new("lgc")?;
    let name = format!("{}.{DOMAIN}", unique("copy"));
    etc_file(&netns, "nsswitch.conf", "hosts: files\n")?;
    etc_file(&netns, "hosts", &format!("{ANSWER_V4} {name}\n"))?;
    let dir = TempDir::new("libc-copy")?;
    let copy = dir.path.join("libc.so.6");
    fs::copy(&host_libc, &copy)?;
    // Waits for a line on stdin, then resolves.
    let code = format!(
        "import socket, sys\nprint('ready', flush=True)\nsys.stdin.readline()\n\
         print(socket.getaddrinfo({name:?}, 80, socket.AF_INET)[0][4][0], flush=True)"
    );
    let mut process = KillOnDrop::spawn(
        netns
            .command(PYTHON)
            .args(["-c", &code])
            .env("LD_LIBRARY_PATH", &dir.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    )?;
    let pid = process.id();
    let mut stdout = BufReader::new(process.0.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    ensure!(line.trim() == "ready", "python: {line:?}");
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let copy_text = copy.to_string_lossy().into_owned();
    ensure!(
        maps.contains(&copy_text),
        "the process does not map the copy:\n{maps}"
    );

    // `check` lists the host's libc and the copy.
    let check = recorder_until_exit(&["check"], Duration::from_secs(60))?;
    ensure!(
        check.code == 0,
        "check failed:\n{}{}",
        check.stdout,
        check.stderr
    );
    let listed = check
        .stdout
        .lines()
        .skip_while(|l| !l.contains("libc lookups"))
        .collect::<Vec<_>>()
        .join("\n");
    for path in [host_libc.to_string_lossy().as_ref(), copy_text.as_str()] {
        ensure!(
            listed
                .lines()
                .any(|l| l.contains(path) && l.contains("getaddrinfo")),
            "check does not list {path} with getaddrinfo:\n{}",
            check.stdout
        );
    }

    let recorder = Recorder::start(&[])?;
    writeln!(process.0.stdin.as_mut().context("stdin")?)?;
    line.clear();
    stdout.read_line(&mut line)?;
    ensure!(line.trim() == ANSWER_V4, "python: {line:?}");
    wait_for(
        "the lookup through the copy",
        Duration::from_secs(10),
        || {
            lookups(&recorder)
                .iter()
                .any(|l| l.process.pid == Some(pid))
        },
    )?;
    let seen = lookups(&recorder);
    let recording = recorder.stop()?;
    let lookup = seen
        .iter()
        .find(|l| l.process.pid == Some(pid))
        .context("no lookup")?;
    ensure!(
        lookup.name == name && lookup.function == "getaddrinfo",
        "{lookup:?}"
    );
    // The log says where the uprobes went, the host's libc included.
    for path in [host_libc.to_string_lossy().as_ref(), copy_text.as_str()] {
        ensure!(
            recording
                .stderr
                .lines()
                .any(|l| l.contains("libc lookups probed") && l.contains(path)),
            "the log does not name {path}:\n{}",
            recording.stderr
        );
    }
    Ok(())
}

/// The host's libc as the dynamic loader finds it (`ldd` on a dynamic binary).
fn host_libc() -> anyhow::Result<std::path::PathBuf> {
    let out = Command::new("ldd").arg(binary("dnsq-recorder")).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text
        .lines()
        .find_map(|line| {
            let (soname, rest) = line.trim().split_once(" => ")?;
            (soname == "libc.so.6").then(|| rest.split_whitespace().next().map(str::to_owned))?
        })
        .with_context(|| format!("no libc.so.6 in ldd's output:\n{text}"))?;
    Ok(path.into())
}

/// The `"lookup_answer"` lines printed so far (what a call returned).
fn answers(recorder: &Recorder) -> Vec<LookupRecord> {
    recorder
        .lines_so_far()
        .iter()
        .filter(|line| line.starts_with("{\"kind\":\"lookup_answer\""))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad answer {line}: {e}")))
        .collect()
}

/// `dnsq by-process PID --json`'s row of the libc calls for `qname` (the
/// process's DNS rows for the name are beside it).
fn libc_row(db: &Path, pid: u32, qname: &str) -> anyhow::Result<serde_json::Value> {
    let (code, out, err) = dnsq(&[
        "--db",
        &db.to_string_lossy(),
        "by-process",
        &pid.to_string(),
        "--json",
    ])?;
    ensure!(code == 0, "dnsq by-process {pid}: exit {code}: {err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .find(|r| r["name"] == qname && r["role"] == "libc")
        .with_context(|| format!("no libc row for {qname}: {out}"))
}

/// `dnsq who IP --json` rows.
fn who(db: &Path, ip: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let (code, out, err) = dnsq(&["--db", &db.to_string_lossy(), "who", ip, "--json"])?;
    ensure!(code == 0, "dnsq who {ip}: exit {code}: {err}");
    Ok(out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

/// (d) What getaddrinfo returned: a name only /etc/hosts knows (no DNS packet
/// of anyone carries its addresses, as when a daemon answers from its cache)
/// is found by `dnsq who` for the process that asked, for both addresses; a
/// failed call returns its EAI code and no address; and a call that libc
/// answered with its own DNS queries is one row of `who` with the server, not
/// two.
#[test]
fn who_finds_what_getaddrinfo_returned() -> anyhow::Result<()> {
    require_bpf!();
    let netns = Netns::new("lgw")?;
    let _dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 53, &[])?;
    netns.set_resolver("127.0.0.1")?;
    let hosts_name = format!("{}.{DOMAIN}", unique("hosts"));
    let dns_name = format!("{}.{DOMAIN}", unique("viadns"));
    let missing = format!("{}.invalid", unique("missing"));
    let (v4, v6) = ("198.18.77.7", "fd00::77:7");
    etc_file(&netns, "nsswitch.conf", "hosts: files dns\n")?;
    etc_file(
        &netns,
        "hosts",
        &format!("127.0.0.1 localhost\n{v4} {hosts_name}\n{v6} {hosts_name}\n"),
    )?;
    let dir = TempDir::new("libc-answer")?;
    let db = dir.path.join("dnsq.db");
    let storing = Recorder::storing(&db, &[])?;
    let recorder = Recorder::start(&[])?;

    let code = format!(
        "import socket\n\
         print(' '.join(sorted({{a[4][0] for a in socket.getaddrinfo({hosts_name:?}, 80)}})))\n\
         try:\n    socket.getaddrinfo({missing:?}, 80)\n\
         except socket.gaierror as e:\n    print(e.errno)\n"
    );
    let (app, out) = client(netns.command(PYTHON).args(["-c", &code]))?;
    // The failure's code: EAI_NONAME or EAI_AGAIN (dnsmasq has no upstream).
    let (addresses_line, failure) = match out.lines().collect::<Vec<_>>()[..] {
        [addresses, code] => (addresses.to_owned(), code.parse::<i32>()?),
        _ => bail!("client printed {out:?}"),
    };
    ensure!(
        addresses_line == format!("{v4} {v6}") && failure < 0,
        "client printed {out:?}"
    );
    let (getent, out) = client(netns.command("getent").args(["ahosts", &dns_name]))?;
    ensure!(out.contains(ANSWER_V4), "getent: {out}");
    wait_for("three answers", Duration::from_secs(10), || {
        answers(&recorder).len() >= 3
    })?;
    let seen = answers(&recorder);
    let recording = recorder.stop()?;
    let of = |pid: u32, name: &str| -> anyhow::Result<&LookupRecord> {
        seen.iter()
            .find(|a| a.process.pid == Some(pid) && a.name == name)
            .with_context(|| format!("no answer for {name} to {pid}: {seen:?}"))
    };
    let found = of(app, &hosts_name)?;
    let answer = found.answer.as_ref().context("no answer")?;
    ensure!(
        found.function == "getaddrinfo"
            && answer.status == 0
            && answer.error.is_none()
            && !answer.truncated
            && answer.call_time_ns <= found.time_ns,
        "{found:?}"
    );
    // Once each, although the list holds each address once per socket type.
    let mut addresses: Vec<String> = answer.addresses.iter().map(|a| a.to_string()).collect();
    addresses.sort();
    ensure!(addresses == [v4, v6], "{found:?}");
    ensure!(
        found.process.comm.as_deref() == Some("python3"),
        "{found:?}"
    );
    let failed = of(app, &missing)?;
    let failed_answer = failed.answer.as_ref().context("no answer")?;
    ensure!(
        failed_answer.status == failure
            && failed_answer
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("EAI_") && e != "EAI_unknown")
            && failed_answer.addresses.is_empty(),
        "{failed:?}"
    );
    let getent_answer = of(getent, &dns_name)?
        .answer
        .as_ref()
        .context("no answer")?;
    ensure!(
        getent_answer.addresses.len() == 2
            && getent_answer
                .addresses
                .contains(&ANSWER_V4.parse::<std::net::IpAddr>()?),
        "{getent_answer:?}"
    );
    ensure!(
        recording.stats["lookup_answers"].as_u64() >= Some(3)
            && recording.stats["lookups_lost"].as_u64() == Some(0),
        "{}",
        recording.stats
    );

    storing.stop_storing()?;
    let hosts_qname = format!("{hosts_name}.");
    for (ip, rtype) in [(v4, "A"), (v6, "AAAA")] {
        let rows = who(&db, ip)?;
        ensure!(rows.len() == 1, "who {ip}: {rows:?}");
        let row = &rows[0];
        ensure!(
            row["name"] == hosts_qname.as_str()
                && row["type"] == rtype
                && row["process"]["pid"] == app
                && row["process"]["comm"] == "python3"
                && row["libc"] == true
                && row["server"].is_null()
                && row["count"] == 1,
            "who {ip}: {row}"
        );
    }
    // getent's own DNS answer and its getaddrinfo answer: one row, with the
    // server that answered.
    let dns_qname = format!("{dns_name}.");
    let rows: Vec<_> = who(&db, ANSWER_V4)?
        .into_iter()
        .filter(|r| r["name"] == dns_qname.as_str() && r["process"]["pid"] == getent)
        .collect();
    ensure!(
        rows.len() == 1
            && rows[0]["server"] == "127.0.0.1"
            && rows[0]["libc"] == true
            && rows[0]["inferred"] == false,
        "who {ANSWER_V4} for getent: {rows:?}"
    );
    // The table names the call where the server would be.
    let (code, out, err) = dnsq(&["--db", &db.to_string_lossy(), "who", v4])?;
    ensure!(
        code == 0 && out.contains("(libc call)"),
        "{code} {out} {err}"
    );
    // `dnsq by-process` shows the call with what it returned (no resolver was
    // asked).
    // With what came of it: the call returned (`ok`), in the time it took.
    let call = libc_row(&db, app, &hosts_qname)?;
    ensure!(
        call["role"] == "libc"
            && call["answers"] == serde_json::json!([v4, v6])
            && call["queries"] == 1
            && call["rcodes"] == serde_json::json!({"ok": 1})
            && call["latency_max_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{call}"
    );
    // The failed call, with its EAI code where a DNS row has its rcode.
    let missing_qname = format!("{missing}.");
    let call = libc_row(&db, app, &missing_qname)?;
    let code = failed_answer.error.as_deref().unwrap_or_default();
    ensure!(
        call["role"] == "libc"
            && call["type"] == "getaddrinfo"
            && call["queries"] == 1
            && call["rcodes"] == serde_json::json!({ code: 1 }),
        "{call}"
    );
    let (status, out, err) = dnsq(&[
        "--db",
        &db.to_string_lossy(),
        "by-process",
        &app.to_string(),
    ])?;
    ensure!(
        status == 0
            && out
                .lines()
                .any(|l| l.contains(&missing_qname) && l.contains(code)),
        "{status} {out} {err}"
    );
    // `dnsq tail` shows each call with what it returned, from the call's row.
    let (code, out, err) = dnsq(&[
        "--db",
        &db.to_string_lossy(),
        "tail",
        "--json",
        "-n",
        "1000",
    ])?;
    ensure!(code == 0, "{code} {err}");
    let calls: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["kind"] == "lookup" && line["process"]["pid"] == app)
        .collect();
    let tail_call = |name: &str| {
        calls
            .iter()
            .find(|c| c["name"] == name)
            .with_context(|| format!("tail has no call for {name}: {out}"))
    };
    let hosts_call = tail_call(&hosts_qname)?;
    let mut tail_addresses: Vec<&str> = hosts_call["answer"]["addresses"]
        .as_array()
        .context("no addresses")?
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    tail_addresses.sort();
    ensure!(
        hosts_call["function"] == "getaddrinfo"
            && hosts_call["answer"]["status"] == 0
            && hosts_call["answer"]["latency_ns"]
                .as_i64()
                .is_some_and(|l| l > 0)
            && tail_addresses == [v4, v6],
        "{hosts_call}"
    );
    let missing_call = tail_call(&format!("{missing}."))?;
    ensure!(
        missing_call["answer"]["status"] == failure
            && missing_call["answer"]["error"] == failed_answer.error.as_deref().unwrap_or(""),
        "{missing_call}"
    );
    Ok(())
}
