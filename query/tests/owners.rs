//! Units and containers (the cgroup's owner, shown and filtered on), and
//! applications seen through a local resolver (`via`, `for`), on schema 3 stores
//! and on schema 2 stores that lack the resolver links.

mod common;

use common::*;
use dnsq_recorder::record::{MessageRecord, Pairing, ProcessInfo};
use serde_json::Value;

const DOCKER_ID: &str = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
const POD_UID: &str = "1234abcd-56ef-7890-abcd-ef1234567890";
const POD_CONTAINER: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";

/// An application in a login session: it asks the local dnsmasq.
const APP: Proc = Proc {
    pid: 812,
    comm: "curl",
    exe: "/usr/bin/curl",
    uid: 1000,
    cgroup: "/user.slice/user-1000.slice/session-3.scope",
};
/// A Docker container: asks dnsmasq too, but its own answer is never seen.
const WEB: Proc = Proc {
    pid: 700,
    comm: "nginx",
    exe: "/usr/sbin/nginx",
    uid: 33,
    cgroup: "/system.slice/docker-3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708.scope",
};
/// A Kubernetes pod's container: asks upstream directly.
const POD: Proc = Proc {
    pid: 900,
    comm: "app",
    exe: "/app",
    uid: 65_534,
    cgroup: "/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod1234abcd_56ef_7890_abcd_ef1234567890.slice/\
             cri-containerd-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d.scope",
};
/// A unit name with an escape sequence in it.
const EVIL: Proc = Proc {
    pid: 666,
    comm: "evil",
    exe: "/usr/bin/evil",
    uid: 0,
    cgroup: "/system.slice/evil\x1b[31m.service",
};

const LOCALHOST: &str = "127.0.0.1";
const UPSTREAM: &str = "198.18.0.1";
/// What github.test resolves to.
const GITHUB_IP: &str = "140.82.112.3";
/// What api.test resolves to (asked by the container).
const API_IP: &str = "140.82.112.99";
const POD_IP: &str = "10.96.0.10";

/// A message of `p` between (src, sport) and (dst, dport).
#[allow(clippy::too_many_arguments, reason = "a test fixture")]
fn message(
    time_ns: i64,
    p: &Proc,
    sent: bool,
    (src, sport): (&str, u16),
    (dst, dport): (&str, u16),
    name: &str,
    id: u16,
    answers: Option<&[(&str, &str, &str)]>,
) -> MessageRecord {
    let response = answers.is_some();
    let mut dns = dns(id, response, name, "A");
    dns.answers = common::answers(answers.unwrap_or_default(), |_| 60);
    let wire = Wire {
        time_ns,
        process: process(p),
        sent,
        src: (ip(src), sport),
        dst: (ip(dst), dport),
        ifindex: 1,
        interface: "lo",
        socket_cookie: 1000 + u64::from(p.pid),
        len: 60,
    };
    let mut record = record(wire, dns);
    record.pair = response.then_some(Pairing {
        query_time_ns: time_ns - 1_000_000,
        latency_ns: 1_000_000,
    });
    record
}

/// `client` asks dnsmasq on 127.0.0.1 for `name`; dnsmasq asks upstream and
/// answers; the client receives the answer unless `answer_lost`.
fn through_dnsmasq(
    w: &mut Writer,
    time_ns: i64,
    client: &Proc,
    name: &str,
    ip: &str,
    id: u16,
    answer_lost: bool,
) {
    let port = 40_000 + id;
    let local = (LOCALHOST, port);
    let resolver = (LOCALHOST, 53);
    let answer = [(name, "A", ip)];
    let mut t = time_ns;
    let mut next = || {
        t += 100_000;
        t
    };
    // The client's query, as the client sent it and as dnsmasq received it.
    w.write(message(
        next(),
        client,
        true,
        local,
        resolver,
        name,
        id,
        None,
    ));
    w.write(message(
        next(),
        &DNSMASQ,
        false,
        local,
        resolver,
        name,
        id,
        None,
    ));
    // dnsmasq goes upstream for it.
    let upstream_port = 50_000 + id;
    let mut up = message(
        next(),
        &DNSMASQ,
        true,
        ("192.0.2.7", upstream_port),
        (UPSTREAM, 53),
        name,
        id + 1,
        None,
    );
    up.on_behalf_of = vec![process(client).into()];
    w.write(up);
    let mut upstream_answer = message(
        next(),
        &DNSMASQ,
        false,
        (UPSTREAM, 53),
        ("192.0.2.7", upstream_port),
        name,
        id + 1,
        Some(&answer),
    );
    upstream_answer.on_behalf_of = vec![process(client).into()];
    w.write(upstream_answer);
    // dnsmasq answers the client…
    let mut to_client = message(
        next(),
        &DNSMASQ,
        true,
        resolver,
        local,
        name,
        id,
        Some(&answer),
    );
    to_client.on_behalf_of = vec![process(client).into()];
    to_client.from_cache = Some(false);
    w.write(to_client);
    // …which receives it.
    if !answer_lost {
        let mut at_client = message(
            next(),
            client,
            false,
            resolver,
            local,
            name,
            id,
            Some(&answer),
        );
        at_client.via = Some(process(&DNSMASQ).into());
        w.write(at_client);
    }
}

/// `client` asks the upstream server directly.
fn direct(w: &mut Writer, time_ns: i64, client: &Proc, name: &str, ip: &str, id: u16) {
    let local = ("10.0.0.5", 41_000 + id);
    let server = (UPSTREAM, 53);
    w.write(message(
        time_ns, client, true, local, server, name, id, None,
    ));
    w.write(message(
        time_ns + 1_000_000,
        client,
        false,
        server,
        local,
        name,
        id,
        Some(&[(name, "A", ip)]),
    ));
}

/// curl through dnsmasq (both ends seen), the container through dnsmasq (its
/// answer lost), the pod and the hostile unit directly.
fn fixture(path: &std::path::Path) {
    let mut w = Writer::open(path);
    through_dnsmasq(&mut w, T0, &APP, "github.test.", GITHUB_IP, 100, false);
    through_dnsmasq(
        &mut w,
        T0 + 10 * SECOND,
        &WEB,
        "api.test.",
        API_IP,
        200,
        true,
    );
    direct(
        &mut w,
        T0 + 20 * SECOND,
        &POD,
        "kube-dns.test.",
        POD_IP,
        300,
    );
    direct(
        &mut w,
        T0 + 30 * SECOND,
        &EVIL,
        "evil.test.",
        "192.0.2.66",
        400,
    );
    w.finish();
}

/// The same store as schema 2 wrote it: no `delegations`, no resolver columns.
fn downgrade_to_schema_2(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).expect("open");
    // Messages were rows before schema 15.
    dnsq_recorder::store::chunk::chunks_to_rows(&conn, i64::MAX).expect("rows");
    conn.execute_batch(
        "DROP TABLE message_chunks;
         DROP TABLE delegations;
         ALTER TABLE messages DROP COLUMN for_process_id;
         ALTER TABLE messages DROP COLUMN via_process_id;
         PRAGMA user_version = 2;",
    )
    .expect("back to schema 2");
}

fn store(tag: &str) -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new(tag);
    let db = dir.path("dnsq.db");
    fixture(&db);
    (dir, db)
}

fn run_json(db: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = dnsq(db, &all);
    expect(&out, 0);
    json_lines(&out)
}

fn pids(rows: &[Value], field: &str) -> Vec<u64> {
    let mut pids: Vec<u64> = rows
        .iter()
        .filter_map(|r| r[field]["pid"].as_u64())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[test]
fn owners_are_shown_wherever_a_process_is() {
    let (_dir, db) = store("owners-shown");
    let docker_full = format!("docker:{DOCKER_ID}");
    let pod_full = format!("k8s pod {POD_UID} containerd:{POD_CONTAINER}");

    // who: JSON in the process object, tables in their own column.
    let rows = run_json(&db, &["who", POD_IP]);
    assert_eq!(rows[0]["process"]["container"], pod_full.as_str());
    assert_eq!(rows[0]["process"]["unit"], Value::Null);
    let rows = run_json(&db, &["who", GITHUB_IP]);
    let curl = rows
        .iter()
        .find(|r| r["process"]["pid"] == 812)
        .expect("curl");
    assert_eq!(curl["process"]["unit"], "session-3.scope");
    let table = expect(&dnsq(&db, &["who", POD_IP]), 0);
    assert!(table.contains("UNIT/CONTAINER"), "{table}");
    // Short ids in tables: the pod UID's first group, 12 digits of the id.
    assert!(table.contains("k8s pod 1234abcd "), "{table}");
    assert!(table.contains("containerd:9e8d7c6b5a4f\n"), "{table}");
    let table = expect(&dnsq(&db, &["who", API_IP]), 0);
    assert!(table.contains("docker:3f2a1b4c5d6e"), "{table}");

    // by-process and name.
    let rows = run_json(&db, &["by-process", "nginx"]);
    assert!(
        rows.iter()
            .all(|r| r["process"]["container"] == docker_full.as_str())
    );
    // Under the process (short ids keep the column narrow).
    let table = expect(&dnsq(&db, &["by-process", "curl"]), 0);
    assert!(
        table.lines().any(|l| l.trim() == "session-3.scope"),
        "{table}"
    );
    let table = expect(&dnsq(&db, &["name", "kube-dns.test"]), 0);
    assert!(
        table.contains("k8s pod 1234abcd") && table.contains("containerd:9e8d7c6b5a4f"),
        "{table}"
    );
    let rows = run_json(&db, &["name", "github.test"]);
    assert!(
        rows.iter()
            .any(|r| r["process"]["unit"] == "dnsmasq.service"),
        "{rows:#?}"
    );

    // top processes: the units and containers of each program.
    let rows = run_json(&db, &["top", "processes"]);
    let app = rows.iter().find(|r| r["comm"] == "app").expect("the pod");
    assert_eq!(app["containers"], serde_json::json!([pod_full]));
    let dnsmasq = rows
        .iter()
        .find(|r| r["comm"] == "dnsmasq")
        .expect("dnsmasq");
    assert_eq!(dnsmasq["units"], serde_json::json!(["dnsmasq.service"]));
    let table = expect(&dnsq(&db, &["top", "processes"]), 0);
    assert!(table.contains("dnsmasq.service"), "{table}");

    // tail: beside the process.
    let text = expect(&dnsq(&db, &["tail", "-n", "100"]), 0);
    assert!(
        text.lines()
            .any(|l| l.contains("nginx[700] docker:3f2a1b4c5d6e")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("curl[812] session-3.scope")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("app[900] k8s pod 1234abcd containerd:9e8d7c6b5a4f ")),
        "{text}"
    );

    // export: CSV columns appended, JSON as the recorder writes it.
    let csv_text = expect(&dnsq(&db, &["export", "--format", "csv"]), 0);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        &header[header.len() - 6..],
        [
            "unit",
            "container",
            "via_pid",
            "via_comm",
            "for_pid",
            "for_comm"
        ]
    );
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    let web = records
        .iter()
        .find(|r| &r[col("pid")] == "700")
        .expect("the container's query");
    assert_eq!(&web[col("container")], docker_full);
    assert_eq!(&web[col("unit")], "");
    let pod = records
        .iter()
        .find(|r| &r[col("pid")] == "900")
        .expect("the pod's query");
    assert_eq!(&pod[col("container")], pod_full);
    let rows = run_json(&db, &["export"]);
    let dnsmasq = rows
        .iter()
        .find(|r| r["process"]["pid"] == 99)
        .expect("dnsmasq");
    assert_eq!(dnsmasq["process"]["unit"], "dnsmasq.service");

    // A hostile unit name is escaped on a terminal's way, and intact in JSON.
    let table = expect(&dnsq(&db, &["who", "192.0.2.66"]), 0);
    assert!(!table.contains('\x1b'), "{table}");
    assert!(table.contains("evil\\x1b[31m.service"), "{table}");
    let rows = run_json(&db, &["who", "192.0.2.66"]);
    assert_eq!(rows[0]["process"]["unit"], "evil\x1b[31m.service");
    let text = expect(&dnsq(&db, &["tail", "-n", "100"]), 0);
    assert!(!text.contains('\x1b'), "{text}");
}

#[test]
fn unit_filter() {
    let (_dir, db) = store("unit-filter");
    // An exact name, NAME for NAME.service, a glob.
    for unit in ["dnsmasq.service", "dnsmasq", "dns*"] {
        let rows = run_json(&db, &["by-process", "dnsmasq", "--unit", unit]);
        assert!(!rows.is_empty(), "{unit}");
        let rows = run_json(&db, &["name", "*.test", "--unit", unit]);
        assert_eq!(pids(&rows, "process"), [99], "{unit}");
    }
    // by-process of a process outside the unit: nothing, said so.
    let out = dnsq(&db, &["by-process", "curl", "--unit", "dnsmasq.service"]);
    expect(&out, 1);
    assert!(
        stderr(&out).contains("unit `dnsmasq.service`"),
        "{}",
        stderr(&out)
    );
    // A unit nobody was in.
    let out = dnsq(&db, &["who", GITHUB_IP, "--unit", "nosuch.service"]);
    expect(&out, 1);
    assert!(
        stderr(&out).contains("no process in unit `nosuch.service` was ever seen"),
        "{}",
        stderr(&out)
    );
    // who: the application in its session, with the resolver beside it.
    let rows = run_json(&db, &["who", GITHUB_IP, "--unit", "session-*.scope"]);
    assert_eq!(pids(&rows, "process"), [812]);
    assert_eq!(rows[0]["via"]["pid"], 99);
    // The resolver's own row, when the filter selects it.
    let rows = run_json(&db, &["who", GITHUB_IP, "--unit", "dnsmasq.service"]);
    assert_eq!(pids(&rows, "process"), [99]);
    let table = expect(&dnsq(&db, &["who", GITHUB_IP, "--unit", "dnsmasq"]), 0);
    assert!(
        table.contains("dnsmasq[99]") && table.contains("for curl[812]"),
        "{table}"
    );

    // top, tail, export, stats.
    let rows = run_json(&db, &["top", "processes", "--unit", "session-3.scope"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["comm"], "curl");
    let rows = run_json(&db, &["top", "domains", "--unit", "session-3.scope"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "github.test.");
    let rows = run_json(&db, &["tail", "-n", "100", "--unit", "dnsmasq.service"]);
    assert_eq!(rows.len(), 8, "dnsmasq's four messages for each client");
    assert_eq!(pids(&rows, "process"), [99]);
    let rows = run_json(&db, &["export", "--unit", "session-3.scope"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(pids(&rows, "process"), [812]);
    let all = &run_json(&db, &["stats"])[0];
    let stats = &run_json(&db, &["stats", "--unit", "dnsmasq.service"])[0];
    assert_eq!(all["messages"], 15);
    assert_eq!(stats["messages"], 8);
    assert_eq!(stats["processes"], 1);
    assert_eq!(stats["names"], 2);
    assert_eq!(stats["runs"], all["runs"], "runs are the recorder's");
    let table = expect(&dnsq(&db, &["stats", "--unit", "dnsmasq.service"]), 0);
    assert!(table.contains("only"), "{table}");
}

#[test]
fn container_filter() {
    let (_dir, db) = store("container-filter");
    for id in ["3f2a1b", "3F2A1B4C5D6E", "docker:3f2a1b4c5d6e", DOCKER_ID] {
        let rows = run_json(&db, &["export", "--container", id]);
        assert_eq!(pids(&rows, "process"), [700], "{id}");
    }
    // A pod, by its UID (as the API or the cgroup writes it), or its container.
    let underscored = POD_UID.replace('-', "_");
    for id in [POD_UID, "1234abcd", underscored.as_str(), "9e8d7c"] {
        let rows = run_json(&db, &["who", POD_IP, "--container", id]);
        assert_eq!(pids(&rows, "process"), [900], "{id}");
        let rows = run_json(&db, &["by-process", "app", "--container", id]);
        assert!(!rows.is_empty(), "{id}");
    }
    let out = dnsq(&db, &["who", POD_IP, "--container", "podman:3f2a"]);
    expect(&out, 1);
    // The container's lookup went through dnsmasq and its own answer was not
    // seen: who still names it, via dnsmasq.
    let rows = run_json(&db, &["who", API_IP, "--container", "3f2a1b"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["process"]["pid"], 700);
    assert_eq!(rows[0]["via"]["comm"], "dnsmasq");
    assert_eq!(rows[0]["inferred"], true);
    // Both filters: a process must match both.
    let out = dnsq(
        &db,
        &["tail", "--unit", "dnsmasq.service", "--container", "3f2a1b"],
    );
    expect(&out, 1);
    let out = dnsq(&db, &["tail", "--container", ""]);
    expect(&out, 2);
}

#[test]
fn who_shows_the_application_via_the_local_resolver() {
    let (_dir, db) = store("who-via");
    // Tables: the application first, the resolver beside it; dnsmasq's own row
    // is left out (and said so).
    let out = dnsq(&db, &["who", GITHUB_IP]);
    let table = expect(&out, 0);
    assert!(table.contains("curl[812]"), "{table}");
    assert!(table.contains("via dnsmasq[99]"), "{table}");
    assert!(!table.contains("for curl"), "{table}");
    assert!(stderr(&out).contains("--resolvers"), "{}", stderr(&out));
    let table = expect(&dnsq(&db, &["who", GITHUB_IP, "--resolvers"]), 0);
    assert!(table.contains("for curl[812]"), "{table}");
    assert!(table.contains(UPSTREAM), "{table}");

    // JSON: the client in "process", the resolver in "via"; the resolver's own
    // row says whom it was for.
    let rows = run_json(&db, &["who", GITHUB_IP]);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let curl = rows
        .iter()
        .find(|r| r["process"]["pid"] == 812)
        .expect("curl");
    assert_eq!(curl["via"]["pid"], 99);
    assert_eq!(curl["via"]["comm"], "dnsmasq");
    assert_eq!(curl["via"]["exe"], "/usr/sbin/dnsmasq");
    assert_eq!(curl["server"], LOCALHOST);
    assert_eq!(curl["inferred"], false);
    assert_eq!(curl["for"], serde_json::json!([]));
    let dnsmasq = rows
        .iter()
        .find(|r| r["process"]["pid"] == 99)
        .expect("dnsmasq");
    assert_eq!(dnsmasq["via"], Value::Null);
    assert_eq!(dnsmasq["for"][0]["pid"], 812);
    assert_eq!(dnsmasq["server"], UPSTREAM);

    // The container's answer was never seen: it is inferred from dnsmasq's.
    let table = expect(&dnsq(&db, &["who", API_IP]), 0);
    assert!(table.contains("nginx[700]"), "{table}");
    assert!(table.contains("via dnsmasq[99]"), "{table}");
    let rows = run_json(&db, &["who", API_IP]);
    let web = rows
        .iter()
        .find(|r| r["process"]["pid"] == 700)
        .expect("the container");
    assert_eq!(web["inferred"], true);
    assert_eq!(web["count"], 1);
    assert_eq!(web["server"], UPSTREAM);
}

#[test]
fn by_process_shows_via_and_for() {
    let (_dir, db) = store("by-process-via");
    let rows = run_json(&db, &["by-process", "curl"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["via"]["pid"], 99);
    assert_eq!(rows[0]["answers"], serde_json::json!([GITHUB_IP]));
    let table = expect(&dnsq(&db, &["by-process", "curl"]), 0);
    assert!(table.contains("via dnsmasq[99]"), "{table}");

    // dnsmasq: its upstream queries and its answers say whom they were for.
    let rows = run_json(&db, &["by-process", "dnsmasq"]);
    let github = |role: &str| {
        rows.iter()
            .find(|r| r["name"] == "github.test." && r["role"] == role)
            .unwrap_or_else(|| panic!("{role}: {rows:#?}"))
    };
    assert_eq!(pids(&[github("client").clone()], "via"), Vec::<u64>::new());
    assert_eq!(github("client")["for"][0]["pid"], 812);
    assert_eq!(github("client")["for"][0]["comm"], "curl");
    assert_eq!(github("server")["for"][0]["pid"], 812);
    let api = rows
        .iter()
        .find(|r| r["name"] == "api.test." && r["role"] == "client")
        .expect("api.test upstream");
    assert_eq!(api["for"][0]["pid"], 700);
    let table = expect(&dnsq(&db, &["by-process", "dnsmasq"]), 0);
    assert!(table.contains("for curl[812]"), "{table}");
    assert!(table.contains("for nginx[700]"), "{table}");
    // A process that asked upstream itself has neither.
    let rows = run_json(&db, &["by-process", "app"]);
    assert_eq!(rows[0]["via"], Value::Null);
    assert_eq!(rows[0]["for"], serde_json::json!([]));
}

#[test]
fn tail_and_export_show_the_resolver_links() {
    let (_dir, db) = store("links");
    let text = expect(&dnsq(&db, &["tail", "-n", "100"]), 0);
    assert!(
        text.lines()
            .any(|l| l.starts_with("2026-11-24 10:00:00.000")
                && l.contains("curl[812]")
                && l.contains("via dnsmasq[99]")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("dnsmasq[99]")
            && l.contains(UPSTREAM)
            && l.contains("for curl[812]")),
        "{text}"
    );

    let csv_text = expect(&dnsq(&db, &["export", "--format", "csv"]), 0);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    let at_client = records
        .iter()
        .find(|r| &r[col("pid")] == "812" && &r[col("qr")] == "response")
        .expect("curl's answer");
    assert_eq!(&at_client[col("via_pid")], "99");
    assert_eq!(&at_client[col("via_comm")], "dnsmasq");
    assert_eq!(&at_client[col("for_pid")], "");
    let upstream = records
        .iter()
        .find(|r| {
            &r[col("pid")] == "99"
                && &r[col("dst")] == UPSTREAM
                && &r[col("qname")] == "github.test."
        })
        .expect("dnsmasq's upstream query");
    assert_eq!(&upstream[col("for_pid")], "812");
    assert_eq!(&upstream[col("for_comm")], "curl");
    assert_eq!(&upstream[col("via_pid")], "");

    let rows = run_json(&db, &["export"]);
    let at_client = rows
        .iter()
        .find(|r| r["process"]["pid"] == 812 && r["dns"]["response"] == true)
        .expect("curl's answer");
    assert_eq!(at_client["via"]["pid"], 99);
    assert_eq!(at_client["via"]["unit"], "dnsmasq.service");
    let upstream = rows
        .iter()
        .find(|r| r["process"]["pid"] == 99 && r["dst"] == UPSTREAM)
        .expect("dnsmasq's upstream query");
    assert_eq!(upstream["on_behalf_of"][0]["pid"], 812);
    assert_eq!(upstream["on_behalf_of"][0]["unit"], "session-3.scope");
}

#[test]
fn schema_2_stores_read_without_resolver_links() {
    let (_dir, db) = store("schema-2");
    downgrade_to_schema_2(&db);
    // who: both processes that received the answer, as before; no via.
    let rows = run_json(&db, &["who", GITHUB_IP]);
    assert_eq!(pids(&rows, "process"), [99, 812]);
    assert!(
        rows.iter()
            .all(|r| r["via"].is_null() && r["for"] == serde_json::json!([]))
    );
    let out = dnsq(&db, &["who", GITHUB_IP]);
    let table = expect(&out, 0);
    assert!(
        table.contains("curl[812]") && table.contains("dnsmasq[99]"),
        "{table}"
    );
    assert!(!table.contains("via "), "{table}");
    assert_eq!(stderr(&out), "");
    // The container's answer was not seen: without the links, nothing names it.
    let rows = run_json(&db, &["who", API_IP]);
    assert_eq!(pids(&rows, "process"), [99]);

    let rows = run_json(&db, &["by-process", "dnsmasq"]);
    assert!(rows.iter().all(|r| r["for"] == serde_json::json!([])));
    let text = expect(&dnsq(&db, &["tail", "-n", "100"]), 0);
    assert!(!text.contains("via ") && !text.contains("for "), "{text}");
    let rows = run_json(&db, &["export"]);
    assert_eq!(rows.len(), 15);
    assert!(
        rows.iter()
            .all(|r| r.get("via").is_none() && r.get("on_behalf_of").is_none())
    );
    // Owners and filters do not need schema 3.
    let rows = run_json(&db, &["export", "--container", "3f2a1b"]);
    assert_eq!(pids(&rows, "process"), [700]);
    assert_eq!(
        rows[0]["process"]["container"],
        format!("docker:{DOCKER_ID}")
    );
    let csv_text = expect(&dnsq(&db, &["export", "--format", "csv"]), 0);
    assert!(
        csv_text
            .lines()
            .next()
            .expect("header")
            .ends_with("via_pid,via_comm,for_pid,for_comm")
    );
    expect(&dnsq(&db, &["stats", "--unit", "dnsmasq"]), 0);
    expect(&dnsq(&db, &["top", "processes"]), 0);

    // Schema 1 is still too old.
    rusqlite::Connection::open(&db)
        .expect("open")
        .pragma_update(None, "user_version", 1)
        .expect("user_version");
    let out = dnsq(&db, &["stats"]);
    expect(&out, 3);
    assert!(
        stderr(&out).contains("schema 2 and later"),
        "{}",
        stderr(&out)
    );
}

/// Unused fields of the shared fixtures keep their meaning here.
#[test]
fn fixture_processes_have_the_owners_their_cgroups_name() {
    let p: ProcessInfo = process(&POD);
    assert_eq!(
        p.container.as_deref(),
        Some(format!("k8s pod {POD_UID} containerd:{POD_CONTAINER}").as_str())
    );
    assert_eq!(process(&APP).unit.as_deref(), Some("session-3.scope"));
}

#[test]
fn tail_follow_keeps_up_with_new_processes_of_the_unit() {
    let (_dir, db) = store("follow-unit");
    // No process of that unit yet: following waits for one.
    let mut follow = Follow::start(&db, &["-n", "5", "--unit", "late.service"]);
    std::thread::sleep(std::time::Duration::from_millis(400));
    const LATE: Proc = Proc {
        pid: 4321,
        comm: "late",
        exe: "/usr/bin/late",
        uid: 0,
        cgroup: "/system.slice/late.service",
    };
    let mut w = Writer::open(&db);
    direct(&mut w, T0 + HOUR, &APP, "other.test.", "192.0.2.1", 500);
    direct(&mut w, T0 + HOUR, &LATE, "late.test.", "192.0.2.2", 600);
    w.commit();
    let first = follow.next();
    drop(follow);
    w.finish();
    assert_eq!(first["process"]["pid"], 4321);
    assert_eq!(first["process"]["unit"], "late.service");
}

#[test]
fn help_documents_the_filters_and_the_new_columns() {
    let dir = TempDir::new("owners-help");
    let db = dir.path("dnsq.db");
    let help = expect(&dnsq(&db, &["--help"]), 0);
    for needle in [
        "--unit",
        "--container",
        "Units and containers",
        "Local resolvers",
    ] {
        assert!(help.contains(needle), "{needle} in\n{help}");
    }
    let help = expect(&dnsq(&db, &["export", "--help"]), 0);
    for needle in [
        "unit",
        "container",
        "via_pid, via_comm",
        "for_pid, for_comm",
    ] {
        assert!(help.contains(needle), "{needle} in\n{help}");
    }
    let help = expect(&dnsq(&db, &["who", "--help"]), 0);
    for needle in ["--resolvers", "via", "inferred"] {
        assert!(help.contains(needle), "{needle} in\n{help}");
    }
    // The man page renders.
    expect(&dnsq(&db, &["generate", "man"]), 0);
}

/// systemd-resolved in front of dnsmasq: app → resolved → dnsmasq → upstream.
#[test]
fn resolvers_behind_resolvers() {
    const RESOLVED: Proc = Proc {
        pid: 55,
        comm: "systemd-resolve",
        exe: "/usr/lib/systemd/systemd-resolved",
        uid: 991,
        cgroup: "/system.slice/systemd-resolved.service",
    };
    let name = "deep.test.";
    let ip = "192.0.2.77";
    let answer = [(name, "A", ip)];
    let dir = TempDir::new("chain");
    let db = dir.path("dnsq.db");
    let mut w = Writer::open(&db);
    let (app, stub, resolved_out, dnsmasq, upstream) = (
        (LOCALHOST, 40_001),
        ("127.0.0.53", 53),
        (LOCALHOST, 40_002),
        (LOCALHOST, 53),
        (UPSTREAM, 53),
    );
    let mut t = T0;
    let mut at = || {
        t += 100_000;
        t
    };
    let linked = |mut m: MessageRecord, on_behalf_of: &Proc, from_cache: Option<bool>| {
        m.on_behalf_of = vec![process(on_behalf_of).into()];
        m.from_cache = from_cache;
        m
    };
    w.write(message(at(), &APP, true, app, stub, name, 1, None));
    w.write(message(at(), &RESOLVED, false, app, stub, name, 1, None));
    w.write(linked(
        message(at(), &RESOLVED, true, resolved_out, dnsmasq, name, 2, None),
        &APP,
        None,
    ));
    w.write(message(
        at(),
        &DNSMASQ,
        false,
        resolved_out,
        dnsmasq,
        name,
        2,
        None,
    ));
    w.write(linked(
        message(
            at(),
            &DNSMASQ,
            true,
            ("192.0.2.7", 50_000),
            upstream,
            name,
            3,
            None,
        ),
        &RESOLVED,
        None,
    ));
    w.write(linked(
        message(
            at(),
            &DNSMASQ,
            false,
            upstream,
            ("192.0.2.7", 50_000),
            name,
            3,
            Some(&answer),
        ),
        &RESOLVED,
        None,
    ));
    w.write(linked(
        message(
            at(),
            &DNSMASQ,
            true,
            dnsmasq,
            resolved_out,
            name,
            2,
            Some(&answer),
        ),
        &RESOLVED,
        Some(false),
    ));
    // Neither resolved's nor the application's received answer was seen.
    w.write(linked(
        message(at(), &RESOLVED, true, stub, app, name, 1, Some(&answer)),
        &APP,
        Some(false),
    ));
    w.finish();

    // Tables: the application, via the resolver it asked.
    let out = dnsq(&db, &["who", ip]);
    let table = expect(&out, 0);
    assert!(table.contains("curl[812]"), "{table}");
    assert!(table.contains("via systemd-resolve[55]"), "{table}");
    assert!(!table.contains("for "), "{table}");
    assert!(
        stderr(&out).contains("2 rows of local resolvers"),
        "{}",
        stderr(&out)
    );
    // JSON: all three, each with its resolver and clients.
    let rows = run_json(&db, &["who", ip]);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let row = |pid: u64| {
        rows.iter()
            .find(|r| r["process"]["pid"] == pid)
            .unwrap_or_else(|| panic!("{pid}: {rows:#?}"))
    };
    assert_eq!(row(812)["via"]["pid"], 55);
    assert_eq!(row(812)["inferred"], true);
    assert_eq!(row(55)["via"]["pid"], 99);
    assert_eq!(row(55)["for"][0]["pid"], 812);
    assert_eq!(row(55)["inferred"], true);
    assert_eq!(row(99)["for"][0]["pid"], 55);
    assert_eq!(row(99)["inferred"], false);
    assert!(rows.iter().all(|r| r["server"] == UPSTREAM));
    // The filter picks the application out, resolvers and all.
    let rows = run_json(&db, &["who", ip, "--unit", "session-3.scope"]);
    assert_eq!(pids(&rows, "process"), [812]);
    // by-process: each one's resolver and clients.
    let rows = run_json(&db, &["by-process", "systemd-resolve"]);
    let client = rows
        .iter()
        .find(|r| r["role"] == "client")
        .expect("upstream");
    assert_eq!(client["via"]["pid"], 99);
    assert_eq!(client["for"][0]["pid"], 812);
}

/// An application that resolves through a daemon over a Unix socket (nss-resolve)
/// sends no DNS packet: only its libc calls are seen.
const NSS_APP: Proc = Proc {
    pid: 1500,
    comm: "python3",
    exe: "/usr/bin/python3.11",
    uid: 1000,
    cgroup: "/user.slice/user-1000.slice/session-3.scope",
};
/// What the daemon's upstream answer for libc.test says.
const LIBC_IP: &str = "140.82.112.50";

/// The application calls gethostbyname2_r for libc.test (the daemon, dnsmasq
/// here, asks upstream on its behalf) and later getaddrinfo for cached.test (the
/// daemon answers from its cache: no packet at all).
fn libc_fixture(path: &std::path::Path) {
    use dnsq_recorder::pipeline::Sink;
    let mut w = Writer::open(path);
    let call =
        |time_ns: i64, function: &str, name: &str| libc_call(time_ns, &NSS_APP, function, name);
    let first = call(T0 + 100 * SECOND, "gethostbyname2_r", "libc.test");
    // The caller as the uprobe sees it: no socket, so no attribution.
    let caller = first.process.clone();
    w.store.write_lookup(first).expect("lookup");
    let upstream = ("192.0.2.7", 53_000);
    let mut up = message(
        T0 + 100 * SECOND + 1_000_000,
        &DNSMASQ,
        true,
        upstream,
        (UPSTREAM, 53),
        "libc.test.",
        500,
        None,
    );
    up.on_behalf_of = vec![caller.clone()];
    w.write(up);
    let mut answer = message(
        T0 + 100 * SECOND + 2_000_000,
        &DNSMASQ,
        false,
        (UPSTREAM, 53),
        upstream,
        "libc.test.",
        500,
        Some(&[("libc.test.", "A", LIBC_IP)]),
    );
    answer.on_behalf_of = vec![caller.clone()];
    w.write(answer);
    for _ in 0..2 {
        w.store
            .write_lookup(call(T0 + 200 * SECOND, "getaddrinfo", "cached.test"))
            .expect("lookup");
    }
    w.finish();
}

#[test]
fn libc_calls_show_in_by_process_and_name() {
    let dir = TempDir::new("libc-calls");
    let db = dir.path("dnsq.db");
    libc_fixture(&db);

    let rows = run_json(&db, &["by-process", "python3"]);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    // Newest first: the call the daemon answered from its cache.
    let cached = &rows[0];
    assert_eq!(cached["role"], "libc");
    assert_eq!(cached["name"], "cached.test.");
    assert_eq!(cached["type"], "getaddrinfo");
    assert_eq!(cached["queries"], 2);
    assert_eq!(cached["unanswered"], 0);
    assert_eq!(cached["via"], Value::Null);
    assert_eq!(cached["answers"], serde_json::json!([]));
    assert_eq!(cached["process"]["pid"], 1500);
    assert_eq!(cached["process"]["exe"], "/usr/bin/python3.11");
    // The call the daemon went upstream for: the daemon beside it, and what
    // it was answered.
    let upstream = &rows[1];
    assert_eq!(upstream["name"], "libc.test.");
    // Its function's code (5) is no DNS type the daemon's query had (A, 1).
    assert_eq!(upstream["type"], "gethostbyname2_r");
    assert_eq!(upstream["queries"], 1);
    assert_eq!(upstream["via"]["comm"], "dnsmasq");
    assert_eq!(upstream["answers"], serde_json::json!([LIBC_IP]));

    let table = expect(&dnsq(&db, &["by-process", "python3"]), 0);
    assert!(table.contains("getaddrinfo"), "{table}");
    assert!(table.contains("via dnsmasq[99]"), "{table}");
    assert!(table.contains(LIBC_IP), "{table}");
    assert!(!table.contains("no response"), "{table}");

    // `name` shows the caller too; dnsmasq's own row for libc.test is there as
    // well, `for` the caller.
    let rows = run_json(&db, &["name", "cached.test"]);
    assert_eq!(pids(&rows, "process"), [1500], "{rows:#?}");
    let rows = run_json(&db, &["name", "libc.test"]);
    assert_eq!(pids(&rows, "process"), [99, 1500], "{rows:#?}");
    let daemon = rows
        .iter()
        .find(|r| r["process"]["pid"] == 99)
        .expect("dnsmasq's row");
    assert_eq!(pids(std::slice::from_ref(daemon), "process"), [99]);
    assert_eq!(daemon["for"][0]["pid"], 1500, "{daemon:#?}");

    // `top processes`: the application by its calls, after dnsmasq (which sent
    // a query); its names are those it called libc for.
    let rows = run_json(&db, &["top", "processes"]);
    let comms: Vec<&str> = rows.iter().filter_map(|r| r["comm"].as_str()).collect();
    assert_eq!(comms, ["dnsmasq", "python3"], "{rows:#?}");
    assert_eq!(rows[1]["queries"], 0);
    assert_eq!(rows[1]["libc_calls"], 3);
    assert_eq!(rows[1]["names"], 2);
    assert_eq!(rows[0]["libc_calls"], 0);
    let table = expect(&dnsq(&db, &["top", "processes"]), 0);
    assert!(table.contains("LIBC CALLS"), "{table}");
    // `top domains` ranks names by DNS queries, which the calls are not.
    let rows = run_json(&db, &["top", "domains"]);
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["libc.test."], "{rows:#?}");
}

/// A unit whose processes hold more `lookups` rows than `INDEXED_ROWS`, which
/// the filtered rankings read by a scan rather than through the process index:
/// they count the same as unfiltered.
#[test]
fn unit_filter_over_many_rows() {
    let (_dir, db) = store("unit-many");
    let before = run_json(&db, &["top", "processes", "--unit", "session-3.scope"]);
    let queries = before[0]["queries"].as_i64().expect("queries");
    const EXTRA: i64 = 150_001;
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        // Copies of curl's question row, one an hour back in time.
        let changed = conn
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
                 INSERT INTO lookups (process_id, hour, role, qname_id, qtype, rcode, count, \
                     paired, latency_sum_ns, latency_max_ns, first_offset_ns, span_ns) \
                 SELECT l.process_id, l.hour - n.i, l.role, l.qname_id, l.qtype, l.rcode, 1, 0, \
                     0, 0, l.first_offset_ns, 0 \
                 FROM n, (SELECT l.* FROM lookups l JOIN processes p ON p.id = l.process_id \
                          WHERE p.comm = 'curl' AND l.role = 0 AND l.rcode = -1 LIMIT 1) l",
                [EXTRA],
            )
            .expect("insert");
        assert_eq!(changed as i64, EXTRA);
    }
    let rows = run_json(&db, &["top", "processes", "--unit", "session-3.scope"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["comm"], "curl");
    assert_eq!(rows[0]["queries"], queries + EXTRA);
    let all = run_json(&db, &["top", "processes"]);
    let curl = all.iter().find(|r| r["comm"] == "curl").expect("curl");
    assert_eq!(curl["queries"], queries + EXTRA);
    let rows = run_json(&db, &["top", "domains", "--unit", "session-3.scope"]);
    assert_eq!(rows[0]["name"], "github.test.");
    assert!(rows[0]["queries"].as_i64() > Some(EXTRA), "{}", rows[0]);
}
