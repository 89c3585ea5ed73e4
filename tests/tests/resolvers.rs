//! Seeing through a local resolver, and naming the cgroup a client runs in.
//!
//! A dnsmasq cache on 127.0.0.1 (client namespace) forwards to an upstream dnsmasq
//! in another namespace. Clients ask the cache; each must come out as itself, with
//! the cache beside it, and the cache's upstream traffic must name the client
//! that caused it.

use std::{fs, path::PathBuf};

use anyhow::{Context, ensure};
use dnsq_tests::{
    ANSWER_V4, Direction, Dnsmasq, MessageExt, MessageRecord, Netns, Recorder, Transport, client,
    describe, link, require_bpf, unique,
};

fn find<'a>(
    messages: &'a [MessageRecord],
    what: &str,
    filter: impl Fn(&MessageRecord) -> bool,
) -> anyhow::Result<&'a MessageRecord> {
    let found: Vec<_> = messages.iter().filter(|m| filter(m)).collect();
    ensure!(
        found.len() == 1,
        "expected one {what}, found {}:\n{}",
        found.len(),
        describe(messages)
    );
    Ok(found[0])
}

/// A cgroup v2 directory for a test client, removed on drop.
struct Cgroup {
    path: PathBuf,
    /// As records show it: relative to the cgroup v2 root.
    relative: String,
}

impl Cgroup {
    fn new(unit: &str) -> anyhow::Result<Self> {
        let root = dnsq_recorder::checks::cgroup2_mount()?;
        let relative = format!("/dnsq-test.slice/{unit}");
        let path = root.join(relative.trim_start_matches('/'));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, relative })
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.path);
        if let Some(parent) = self.path.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

#[test]
fn clients_of_a_local_cache_are_attributed_as_themselves() -> anyhow::Result<()> {
    require_bpf!();
    let (client_ns, upstream_ns) = (Netns::new("rcl")?, Netns::new("rup")?);
    link(&client_ns, &upstream_ns, 1500)?;
    // Only the upstream knows up.test (both know DOMAIN, the harness's default).
    let upstream = Dnsmasq::start(
        &upstream_ns,
        &["198.18.0.2"],
        53,
        // A TTL, so that the cache keeps the answer (dnsmasq's default is 0).
        &[
            format!("--address=/up.test/{ANSWER_V4}"),
            "--local-ttl=300".to_owned(),
        ],
    )?;
    let cache = Dnsmasq::start(
        &client_ns,
        &["127.0.0.1"],
        53,
        &[
            "--server=198.18.0.2".to_owned(),
            "--cache-size=100".to_owned(),
        ],
    )?;
    let unit = format!("{}.service", unique("web"));
    let cgroup = Cgroup::new(&unit)?;
    let recorder = Recorder::start(&[])?;

    let qname = format!("{}.up.test.", unique("cached"));
    // First client: the cache must go upstream.
    let (first, out) =
        client(
            client_ns
                .command("dig")
                .args(["@127.0.0.1", &qname, "+short", "+tries=1"]),
        )?;
    ensure!(out.trim() == ANSWER_V4, "first dig: {out}");
    // Second client, in its own cgroup: served from the cache.
    // Join the cgroup before entering the namespace (`ip netns exec` mounts a sysfs
    // of its own, without the cgroup tree); exec keeps the pid.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec ip netns exec {} dig @127.0.0.1 {qname} +short +tries=1",
        cgroup.path.display(),
        client_ns.name
    );
    let (second, out) = client(std::process::Command::new("sh").args(["-c", &script]))?;
    ensure!(out.trim() == ANSWER_V4, "second dig: {out}");
    // A glibc client (getent through the namespace's resolv.conf), also from cache.
    client_ns.set_resolver("127.0.0.1")?;
    let (libc_client, out) = client(
        client_ns
            .command("getent")
            .args(["ahosts", qname.trim_end_matches('.')]),
    )?;
    ensure!(out.contains(ANSWER_V4), "getent: {out}");
    let recording = recorder.stop()?;
    let messages = &recording.messages;
    let ours = |m: &MessageRecord, pid: u32, direction: Direction, response: bool| {
        m.qname() == Some(qname.as_str())
            && m.transport == Transport::Udp
            && m.process.pid == Some(pid)
            && m.direction == direction
            && m.is_response() == response
    };

    // Each client is itself, and its answer names the cache it came through.
    for pid in [first, second] {
        let answer = find(messages, "answer at a client", |m| {
            ours(m, pid, Direction::Received, true) && m.qtype() == Some("A")
        })?;
        ensure!(
            answer.process.comm.as_deref() == Some("dig"),
            "{:?}",
            answer.process
        );
        let via = answer
            .via
            .as_ref()
            .context("the client's answer does not name the cache")?;
        ensure!(
            via.pid == Some(cache.pid()) && via.comm.as_deref() == Some("dnsmasq"),
            "via {via:?}"
        );
    }
    // The cache's upstream query and its answer were made for the first client.
    let upstream_query = find(messages, "upstream query by the cache", |m| {
        ours(m, cache.pid(), Direction::Sent, false)
            && m.qtype() == Some("A")
            && m.dst.to_string() == "198.18.0.2"
    })?;
    let behalf: Vec<_> = upstream_query.on_behalf_of.iter().map(|p| p.pid).collect();
    ensure!(
        behalf == [Some(first)],
        "upstream query on behalf of {behalf:?}, expected {first}"
    );
    let upstream_answer = find(messages, "upstream answer at the cache", |m| {
        ours(m, cache.pid(), Direction::Received, true)
            && m.qtype() == Some("A")
            && m.src.to_string() == "198.18.0.2"
    })?;
    ensure!(upstream_answer.on_behalf_of.first().and_then(|p| p.pid) == Some(first));
    // getent's A answer names the cache too.
    let libc_answer = find(messages, "getent's A answer", |m| {
        ours(m, libc_client, Direction::Received, true) && m.qtype() == Some("A")
    })?;
    ensure!(libc_answer.process.comm.as_deref() == Some("getent"));
    ensure!(libc_answer.via.as_ref().and_then(|v| v.pid) == Some(cache.pid()));
    // The upstream server saw the A query once: the second client was served from cache.
    let at_upstream = messages
        .iter()
        .filter(|m| {
            m.qname() == Some(qname.as_str())
                && m.qtype() == Some("A")
                && m.process.pid == Some(upstream.pid())
        })
        .count();
    ensure!(
        at_upstream == 2,
        "upstream dnsmasq saw {at_upstream} messages, expected query + answer"
    );
    for (pid, cached) in [(first, false), (second, true), (libc_client, true)] {
        let to_client = find(messages, "the cache's answer to a client", |m| {
            ours(m, cache.pid(), Direction::Sent, true)
                && m.qtype() == Some("A")
                && m.on_behalf_of.first().and_then(|p| p.pid) == Some(pid)
        })?;
        ensure!(
            to_client.from_cache == Some(cached),
            "client {pid}: from_cache {:?}",
            to_client.from_cache
        );
    }
    // The second client ran in its own cgroup, and says so.
    let second_query = find(messages, "second client's query", |m| {
        ours(m, second, Direction::Sent, false)
    })?;
    ensure!(
        second_query.process.cgroup.as_deref() == Some(cgroup.relative.as_str()),
        "cgroup {:?}, expected {}",
        second_query.process.cgroup,
        cgroup.relative
    );
    ensure!(
        second_query.process.unit.as_deref() == Some(unit.as_str()),
        "unit {:?}, expected {unit}",
        second_query.process.unit
    );
    Ok(())
}
