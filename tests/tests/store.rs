//! The store and `dnsq` on a database written by the real recorder from real
//! traffic: a CNAME chain served by dnsmasq, NXDOMAIN, UDP and TCP.

use std::time::Duration;

use anyhow::{Context, ensure};
use dnsq_tests::{
    Dnsmasq, Netns, Recorder, TempDir, client, dnsq, recorder_until_exit, require_bpf, unique,
};
use serde_json::Value;

/// `start.<tag>.app.test` → CNAME `www.<tag>.app.test` → CNAME `edge.<tag>.cdn.test`
/// → A 198.18.0.20 / AAAA fd00::20.
struct Chain {
    start: String,
    middle: String,
    edge: String,
}

fn chain_args(chain: &Chain) -> Vec<String> {
    let bare = |name: &str| name.trim_end_matches('.').to_owned();
    vec![
        format!("--host-record={},198.18.0.20,fd00::20", bare(&chain.edge)),
        format!("--cname={},{}", bare(&chain.middle), bare(&chain.edge)),
        format!("--cname={},{}", bare(&chain.start), bare(&chain.middle)),
        "--address=/nx.test/".to_owned(),
    ]
}

fn json_lines(text: &str) -> anyhow::Result<Vec<Value>> {
    text.lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
        .collect()
}

#[test]
fn dnsq_answers_from_a_recorded_history() -> anyhow::Result<()> {
    require_bpf!();
    let tag = unique("s");
    let chain = Chain {
        start: format!("start.{tag}.app.test."),
        middle: format!("www.{tag}.app.test."),
        edge: format!("edge.{tag}.cdn.test."),
    };
    let nx = format!("missing.{tag}.nx.test.");
    let netns = Netns::new("store")?;
    let _dnsmasq = Dnsmasq::start(&netns, &["127.0.0.1"], 53, &chain_args(&chain))?;
    let dir = TempDir::new("store")?;
    let db = dir.path.join("dnsq.db");
    let db_arg = db.to_str().context("db path")?;
    let recorder = Recorder::storing(&db, &["--batch-window", "100ms"])?;

    let (dig_pid, out) =
        client(
            netns
                .command("dig")
                .args(["@127.0.0.1", &chain.start, "A", "+tries=1"]),
        )?;
    ensure!(out.contains("198.18.0.20"), "dig: {out}");
    let (tcp_pid, out) =
        client(
            netns
                .command("dig")
                .args(["@127.0.0.1", &chain.start, "AAAA", "+tcp", "+short"]),
        )?;
    ensure!(out.contains("fd00::20"), "dig +tcp: {out}");
    let (nx_pid, out) = client(netns.command("dig").args(["@127.0.0.1", &nx, "+tries=1"]))?;
    ensure!(out.contains("NXDOMAIN"), "dig nx: {out}");
    // `compact` waits for no recorder: it refuses, and says why.
    let refused = recorder_until_exit(&["--db", db_arg, "compact"], Duration::from_secs(30))?;
    ensure!(
        refused.code == 2
            && refused.stderr.contains("already writing")
            && refused.stderr.contains("stop it first"),
        "compact while recording: {} {} {}",
        refused.code,
        refused.stdout,
        refused.stderr
    );
    recorder.stop_storing()?;

    // who: the IP leads back through both CNAMEs to the name dig asked for.
    let (code, out, err) = dnsq(&["--db", db_arg, "who", "198.18.0.20", "--json"])?;
    ensure!(code == 0, "who exited {code}: {err}");
    let rows = json_lines(&out)?;
    let row = rows
        .iter()
        .find(|row| row["name"] == chain.start.as_str())
        .with_context(|| format!("who has no row for {}: {out}", chain.start))?;
    ensure!(
        row["chain"] == serde_json::json!([chain.start, chain.middle, chain.edge]),
        "chain {}",
        row["chain"]
    );
    ensure!(
        row["process"]["pid"] == dig_pid && row["process"]["comm"] == "dig",
        "{row}"
    );
    ensure!(row["server"] == "127.0.0.1", "{row}");
    let (code, out, _) = dnsq(&["--db", db_arg, "who", "fd00::20", "--json"])?;
    ensure!(code == 0, "who fd00::20 exited {code}");
    ensure!(
        json_lines(&out)?
            .iter()
            .any(|row| row["process"]["pid"] == tcp_pid),
        "who fd00::20 lacks the TCP client: {out}"
    );
    // Nothing known: exit 1 and a message on stderr.
    let (code, out, err) = dnsq(&["--db", db_arg, "who", "198.18.9.9"])?;
    ensure!(
        code == 1 && out.is_empty() && !err.is_empty(),
        "who unknown IP: {code} {out} {err}"
    );

    // by-process, by pid: what it asked, the answers, the rcode.
    let (code, out, err) = dnsq(&["--db", db_arg, "by-process", &nx_pid.to_string(), "--json"])?;
    ensure!(code == 0, "by-process exited {code}: {err}");
    let rows = json_lines(&out)?;
    ensure!(
        rows.iter()
            .any(|row| row["name"] == nx.as_str() && row["rcodes"]["NXDOMAIN"] == 1),
        "by-process {nx_pid}: {out}"
    );

    // name with a wildcard finds the asked names of the chain.
    let pattern = format!("*.{tag}.app.test");
    let (code, out, err) = dnsq(&["--db", db_arg, "name", &pattern, "--json"])?;
    ensure!(code == 0, "name exited {code}: {err}");
    ensure!(
        json_lines(&out)?
            .iter()
            .any(|row| row["name"] == chain.start.as_str() && row["process"]["pid"] == dig_pid),
        "name {pattern}: {out}"
    );

    // top nxdomain.
    let (code, out, _) = dnsq(&["--db", db_arg, "top", "nxdomain", "-n", "100000", "--json"])?;
    ensure!(code == 0 && out.contains(&nx), "top nxdomain: {out}");

    // export CSV, read back by a CSV parser: the header and every message.
    let (code, out, err) = dnsq(&["--db", db_arg, "export", "--format", "csv"])?;
    ensure!(code == 0, "export exited {code}: {err}");
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let headers = reader.headers()?.clone();
    ensure!(
        &headers[0] == "time" && headers.iter().any(|h| h == "qname"),
        "{headers:?}"
    );
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .context(name.to_owned())
    };
    let (qname, pid, qr) = (column("qname")?, column("pid")?, column("qr")?);
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    ensure!(
        rows.iter().any(|r| r[qname] == chain.start
            && r[pid] == dig_pid.to_string()
            && &r[qr] == "response"),
        "export lacks dig's response"
    );
    // stats agrees with the export on the number of messages.
    let (code, out, _) = dnsq(&["--db", db_arg, "stats", "--json"])?;
    ensure!(code == 0, "stats exited {code}");
    let stats: Value = serde_json::from_str(out.trim())?;
    ensure!(
        stats["messages"] == rows.len() as u64,
        "stats {stats} vs {} exported",
        rows.len()
    );
    ensure!(stats["lost_total"] == 0, "losses: {stats}");

    // JSON lines export gives the recorder's own records.
    let (code, out, _) = dnsq(&["--db", db_arg, "export", "--format", "jsonl"])?;
    ensure!(code == 0);
    let records: Vec<dnsq_tests::MessageRecord> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(
        records.len() == rows.len(),
        "{} jsonl vs {} csv",
        records.len(),
        rows.len()
    );

    // `compact` rewrites the file (VACUUM); every answer stays the same.
    let answers = || -> anyhow::Result<Vec<String>> {
        let pid = dig_pid.to_string();
        [
            vec!["who", "198.18.0.20", "--json"],
            vec!["by-process", &pid, "--json"],
            vec!["export", "--format", "jsonl"],
        ]
        .into_iter()
        .map(|args| {
            let (code, out, err) = dnsq(&[&["--db", db_arg][..], &args].concat())?;
            ensure!(code == 0, "{args:?} exited {code}: {err}");
            Ok(out)
        })
        .collect()
    };
    let before = answers()?;
    let done = recorder_until_exit(&["--db", db_arg, "compact"], Duration::from_secs(60))?;
    ensure!(
        done.code == 0 && done.stdout.starts_with("compacted "),
        "compact: {} {} {}",
        done.code,
        done.stdout,
        done.stderr
    );
    ensure!(answers()? == before, "the answers changed with compact");
    Ok(())
}

/// A missing database is a documented error (exit 3), not a panic or an empty answer.
#[test]
fn dnsq_on_a_missing_database_exits_3() -> anyhow::Result<()> {
    let (code, _, err) = dnsq(&["--db", "/nonexistent/dnsq.db", "stats"])?;
    ensure!(
        code == 3 && err.contains("/nonexistent/dnsq.db"),
        "{code}: {err}"
    );
    Ok(())
}
