//! `dnsq` end to end: stores written by the recorder's writer, read by the binary.

mod common;

use common::*;
use dnsq_recorder::{pipeline::Sink, record::MessageRecord};
use serde_json::{Value, json};

/// Options that select the fixture's main hour (not the old messages).
const WINDOW: [&str; 4] = [
    "--since",
    "2026-11-24T10:00Z",
    "--until",
    "2026-11-24T11:00Z",
];

fn with_window<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(WINDOW);
    all
}

#[test]
fn who_follows_the_cname_chain_back_to_the_asked_name() {
    let dir = TempDir::new("who");
    let db = dir.path("dnsq.db");
    standard(&db);
    let out = dnsq(&db, &["who", "198.18.0.10", "--json"]);
    expect(&out, 0);
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row["ip"], "198.18.0.10");
    assert_eq!(row["name"], "www.example.com.");
    assert_eq!(row["owner"], "edge.example.net.");
    assert_eq!(
        row["chain"],
        json!(["www.example.com.", "edge.example.net."])
    );
    assert_eq!(row["chain_complete"], true);
    assert_eq!(row["type"], "A");
    assert_eq!(row["count"], 1);
    assert_eq!(row["server"], SERVER_IP);
    assert_eq!(row["process"]["pid"], 4242);
    assert_eq!(row["process"]["comm"], "curl");
    assert_eq!(row["process"]["exe"], "/usr/bin/curl");
    assert_eq!(row["process"]["uid"], 1000);
    assert_eq!(row["process"]["cgroup"], CURL.cgroup);
    assert_eq!(row["first_ns"], T0 + 268_255);
    assert_eq!(row["last_seen"], "2026-11-24T10:00:00.000268255+00:00");

    // The table says the same.
    let table = expect(&dnsq(&db, &["who", "198.18.0.10"]), 0);
    // One name a line, each CNAME hop marked.
    assert!(table.contains("www.example.com."), "{table}");
    assert!(table.contains("→ edge.example.net."), "{table}");
    assert!(table.contains("curl[4242]"), "{table}");
    assert!(table.contains("/usr/bin/curl"), "{table}");

    // IPv6, written in a non-canonical way.
    let out = dnsq(&db, &["who", "2001:0db8:0:0::10", "--json"]);
    expect(&out, 0);
    let rows = json_lines(&out);
    assert_eq!(rows[0]["name"], "api.example.com.");
    assert_eq!(rows[0]["chain"], json!(["api.example.com."]));
    assert_eq!(rows[0]["process"]["comm"], "nginx");
}

#[test]
fn who_respects_the_window_and_says_when_nothing_is_found() {
    let dir = TempDir::new("who-window");
    let db = dir.path("dnsq.db");
    standard(&db);
    let out = dnsq(&db, &with_window(&["who", "203.0.113.5"]));
    expect(&out, 1);
    // The hours the history holds, beside the window that missed them: the
    // old message's and the main hour's.
    assert!(
        stderr(&out).ends_with(
            "between 2026-11-24 10:00:00 and 2026-11-24 11:00:00; \
             lookups recorded from 2026-11-22 10:00 to 2026-11-24 11:00\n"
        ),
        "{}",
        stderr(&out)
    );
    expect(&dnsq(&db, &["who", "203.0.113.5"]), 0);
    let out = dnsq(&db, &["who", "192.0.2.250"]);
    assert_eq!(expect(&out, 1), "");
    assert!(
        stderr(&out).contains("no name resolved to 192.0.2.250"),
        "{}",
        stderr(&out)
    );
    let out = dnsq(&db, &["who", "not-an-ip"]);
    expect(&out, 2);
    // A name says what to do instead.
    let out = dnsq(&db, &["who", "www.example.com"]);
    expect(&out, 2);
    assert!(
        stderr(&out).contains("to see who asked for a name: dnsq name www.example.com"),
        "{}",
        stderr(&out)
    );
    // An address as logs write it: with a port, in brackets.
    for written in ["198.18.0.10:443", "[2001:db8::10]", "[2001:db8::10]:443"] {
        let out = dnsq(&db, &["who", written, "--json"]);
        expect(&out, 0);
        assert_eq!(json_lines(&out).len(), 1, "{written}");
    }
}

#[test]
fn by_process_by_name_and_by_pid() {
    let dir = TempDir::new("by-process");
    let db = dir.path("dnsq.db");
    standard(&db);
    for who in ["curl", "4242", "/usr/bin/curl"] {
        let out = dnsq(&db, &with_window(&["by-process", who, "--json"]));
        expect(&out, 0);
        let rows = json_lines(&out);
        let www = rows
            .iter()
            .find(|r| r["name"] == "www.example.com.")
            .unwrap_or_else(|| panic!("{who}: {rows:#?}"));
        assert_eq!(www["role"], "client");
        assert_eq!(www["type"], "A");
        assert_eq!(www["queries"], 1);
        assert_eq!(www["unanswered"], 0);
        assert_eq!(www["rcodes"], json!({"NOERROR": 1}));
        assert_eq!(
            www["answers"],
            json!(["CNAME edge.example.net.", "198.18.0.10"])
        );
        assert_eq!(www["latency_max_ms"], 0.268255);
        let missing = rows
            .iter()
            .find(|r| r["name"] == "missing.example.com.")
            .expect("the NXDOMAIN");
        assert_eq!(missing["rcodes"], json!({"NXDOMAIN": 1}));
        assert_eq!(missing["answers"], json!([]));
        assert_eq!(
            (&missing["queries"], &missing["unanswered"]),
            (&json!(1), &json!(0))
        );
        let formula = rows
            .iter()
            .find(|r| r["name"] == "=1+1.example.com.")
            .expect("the unanswered query");
        assert_eq!(
            (&formula["queries"], &formula["unanswered"]),
            (&json!(1), &json!(1))
        );
        assert_eq!(formula["rcodes"], json!({}));
        assert!(rows.iter().all(|r| r["process"]["pid"] == 4242));
        assert!(!rows.iter().any(|r| r["name"] == "old.example.org."));
    }
    // The old lookup is there without the window.
    let all = json_lines(&dnsq(&db, &["by-process", "curl", "--json"]));
    assert!(all.iter().any(|r| r["name"] == "old.example.org."));

    // A table, with the resolver's side marked.
    let table = expect(&dnsq(&db, &["by-process", "dnsmasq"]), 0);
    assert!(table.contains("dnsmasq[99] (server)"), "{table}");
    assert!(
        table.contains("198.18.0.10") || table.contains("NOERROR"),
        "{table}"
    );

    let out = dnsq(&db, &["by-process", "nosuchprogram"]);
    expect(&out, 1);
    assert!(stderr(&out).contains("was ever seen"), "{}", stderr(&out));
    let out = dnsq(
        &db,
        &with_window(&["by-process", "curl", "--since", "2026-11-24T10:30Z"]),
    );
    // --since given twice: clap refuses.
    expect(&out, 2);
}

/// A schema 6 store counted every query on its query row (rcode -1, with
/// `paired` for the answered ones); schema 7 counts an answered query on its
/// response's row. The same history reads the same from either.
#[test]
fn stores_before_schema_7_count_queries_the_same() {
    let dir = TempDir::new("schema-6");
    let db = dir.path("dnsq.db");
    standard(&db);
    let reads = |db: &std::path::Path| {
        [
            &with_window(&["by-process", "curl", "--json"])[..],
            &with_window(&["name", "*.example.com", "--json"]),
            &with_window(&["top", "domains", "--json"]),
            &with_window(&["top", "processes", "--json"]),
        ]
        .map(|args| expect(&dnsq(db, args), 0))
    };
    let now = reads(&db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Back to schema 6's counting: answered queries on the query rows too.
    conn.execute_batch(
        "INSERT INTO lookups (process_id, hour, role, qname_id, qtype, rcode, count, paired,
             latency_sum_ns, latency_max_ns, first_offset_ns, span_ns)
         SELECT process_id, hour, role, qname_id, qtype, -1, SUM(paired), SUM(paired),
             SUM(latency_sum_ns), MAX(latency_max_ns), MIN(first_offset_ns),
             MAX(first_offset_ns + span_ns) - MIN(first_offset_ns)
         FROM lookups WHERE rcode != -1 AND paired > 0
         GROUP BY process_id, hour, role, qname_id, qtype
         ON CONFLICT DO UPDATE SET count = count + excluded.count, paired = excluded.paired,
             latency_sum_ns = excluded.latency_sum_ns, latency_max_ns = excluded.latency_max_ns;
         PRAGMA user_version = 6;",
    )
    .unwrap();
    drop(conn);
    let before = reads(&db);
    assert_eq!(now, before);
    assert!(now[3].contains("\"queries\":5"), "{}", now[3]);
}

#[test]
fn name_exact_and_wildcard() {
    let dir = TempDir::new("name");
    let db = dir.path("dnsq.db");
    standard(&db);
    let out = dnsq(&db, &["name", "WWW.Example.COM", "--json"]);
    expect(&out, 0);
    let rows = json_lines(&out);
    let pids: Vec<&Value> = rows.iter().map(|r| &r["process"]["pid"]).collect();
    assert!(
        pids.contains(&&json!(4242)) && pids.contains(&&json!(99)),
        "{rows:#?}"
    );
    assert!(rows.iter().all(|r| r["name"] == "www.example.com."));

    let out = dnsq(&db, &["name", "*.example.com", "--json"]);
    expect(&out, 0);
    let names: std::collections::BTreeSet<String> = json_lines(&out)
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_owned())
        .collect();
    for expected in [
        "www.example.com.",
        "api.example.com.",
        "missing.example.com.",
        "=1+1.example.com.",
    ] {
        assert!(names.contains(expected), "{expected} in {names:?}");
    }
    assert!(!names.contains("edge.example.net."));
    assert!(!names.contains("old.example.org."));

    expect(
        &dnsq(
            &db,
            &["name", "*.example.org", "--since", "2026-11-23T00:00Z"],
        ),
        1,
    );
    expect(
        &dnsq(
            &db,
            &["name", "*.example.org", "--until", "2026-11-23T00:00Z"],
        ),
        0,
    );
    let out = dnsq(&db, &["name", "edge.example.net"]);
    expect(&out, 1);
    assert!(
        stderr(&out).contains("CNAME target of www.example.com."),
        "{}",
        stderr(&out)
    );
    let out = dnsq(&db, &["name", "nowhere.example."]);
    expect(&out, 1);
    assert!(
        stderr(&out).contains("was ever asked for"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn top_domains_processes_nxdomain() {
    let dir = TempDir::new("top");
    let db = dir.path("dnsq.db");
    standard(&db);
    let rows = json_lines(&dnsq(&db, &with_window(&["top", "processes", "--json"])));
    assert_eq!(rows[0]["comm"], "curl");
    assert_eq!(rows[0]["queries"], 5);
    assert_eq!(rows[0]["nxdomain"], 1);
    assert_eq!(rows[0]["pids"], json!([4242]));

    let rows = json_lines(&dnsq(&db, &with_window(&["top", "nxdomain", "--json"])));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "missing.example.com.");
    assert_eq!(rows[0]["nxdomain"], 1);
    assert_eq!(rows[0]["processes"][0]["comm"], "curl");

    let out = dnsq(&db, &["top", "domains", "-n", "3"]);
    let table = expect(&out, 0);
    assert_eq!(table.lines().count(), 4, "{table}");
    expect(
        &dnsq(&db, &["top", "nxdomain", "--until", "2026-11-23T00:00Z"]),
        1,
    );
}

#[test]
fn export_csv_reads_back_with_its_header_and_hostile_cells() {
    let dir = TempDir::new("csv");
    let db = dir.path("dnsq.db");
    standard(&db);
    let out = dnsq(&db, &with_window(&["export", "--format", "csv"]));
    let text = expect(&out, 0);
    assert!(text.contains("\r\n"), "RFC 4180 line ends");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        header.join(","),
        "time,time_ns,direction,transport,src,sport,dst,dport,pid,tid,uid,gid,comm,exe,cgroup,\
         attribution,id,qr,opcode,rcode,qname,qtype,qclass,answers,ttl_min,latency_ms,\
         message_len,captured_len,malformed_error,unit,container,via_pid,via_comm,for_pid,for_comm"
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a record")).collect();
    assert_eq!(rows.len(), 14, "the old pair is outside the window");
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let response = rows
        .iter()
        .find(|r| {
            &r[col("qname")] == "www.example.com."
                && &r[col("pid")] == "4242"
                && &r[col("qr")] == "response"
        })
        .expect("curl's answer");
    assert_eq!(
        &response[col("time")],
        "2026-11-24T10:00:00.000268255+00:00"
    );
    assert_eq!(&response[col("time_ns")], (T0 + 268_255).to_string());
    assert_eq!(&response[col("direction")], "received");
    assert_eq!(&response[col("transport")], "udp");
    assert_eq!(&response[col("src")], SERVER_IP);
    assert_eq!(&response[col("sport")], "53");
    assert_eq!(&response[col("comm")], "curl");
    assert_eq!(&response[col("attribution")], "socket");
    assert_eq!(&response[col("rcode")], "NOERROR");
    assert_eq!(
        &response[col("answers")],
        "CNAME edge.example.net.;A 198.18.0.10"
    );
    assert_eq!(&response[col("ttl_min")], "299");
    assert_eq!(&response[col("latency_ms")], "0.268255");

    // A comma, a quote and a newline survive the round trip.
    assert!(
        rows.iter()
            .any(|r| &r[col("qname")] == "a,b\"c\nd.example.com.")
    );
    // A formula is defused…
    assert!(
        rows.iter()
            .any(|r| &r[col("qname")] == "'=1+1.example.com.")
    );
    // …unless asked not to.
    let raw = expect(
        &dnsq(
            &db,
            &with_window(&["export", "--format", "csv", "--raw-csv"]),
        ),
        0,
    );
    let mut reader = csv::Reader::from_reader(raw.as_bytes());
    assert!(
        reader
            .records()
            .any(|r| &r.expect("record")[col("qname")] == "=1+1.example.com.")
    );

    let malformed = rows
        .iter()
        .find(|r| !r[col("malformed_error")].is_empty())
        .expect("malformed");
    assert_eq!(
        &malformed[col("malformed_error")],
        "message shorter than its header"
    );
    assert_eq!(&malformed[col("qname")], "");
    let unknown = rows
        .iter()
        .find(|r| &r[col("attribution")] == "unknown")
        .expect("unattributed");
    assert_eq!(&unknown[col("pid")], "");

    // Nothing in the window: the header, and exit status 1.
    let out = dnsq(
        &db,
        &["export", "--format", "csv", "--until", "2026-11-01T00:00Z"],
    );
    assert_eq!(expect(&out, 1).lines().count(), 1);
}

#[test]
fn export_jsonl_is_the_recorders_json() {
    let dir = TempDir::new("jsonl");
    let db = dir.path("dnsq.db");
    let written = standard(&db);
    let out = dnsq(&db, &["export", "--format", "jsonl"]);
    expect(&out, 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), written.len());
    for (line, original) in lines.iter().zip(&written) {
        let parsed: MessageRecord = serde_json::from_str(line).expect("a MessageRecord");
        // Exactly what --print would have written (compared as JSON values).
        let expected = serde_json::to_value(original).expect("json");
        let got = serde_json::to_value(&parsed).expect("json");
        assert_eq!(got, expected, "\n{line}");
    }
    // The ESC in a name is escaped in the bytes, and decodes back.
    assert!(text.contains("evil\\u001b[31m"));
    assert!(!text.contains('\x1b'));

    // --json is --format jsonl, and -o writes a file.
    let file = dir.path("out.jsonl");
    let out = dnsq(
        &db,
        &with_window(&["export", "--json", "-o", file.to_str().expect("utf-8")]),
    );
    assert_eq!(expect(&out, 0), "");
    assert_eq!(
        std::fs::read_to_string(&file)
            .expect("the file")
            .lines()
            .count(),
        14
    );
}

/// `-o` replaces a regular file whole, through a symbolic link too (the link
/// stays), and writes a device in place: renaming a temporary file over
/// `/dev/null` once put a regular file there.
#[test]
fn export_to_a_link_or_a_device_keeps_them() {
    use std::os::unix::fs::{FileTypeExt, symlink};

    let dir = TempDir::new("export-targets");
    let db = dir.path("dnsq.db");
    standard(&db);
    let export_to = |path: &std::path::Path| {
        dnsq(
            &db,
            &with_window(&["export", "--json", "-o", path.to_str().expect("utf-8")]),
        )
    };

    let real = dir.path("real.jsonl");
    std::fs::write(&real, "old\n").expect("write");
    let link = dir.path("latest.jsonl");
    symlink(&real, &link).expect("symlink");
    assert_eq!(expect(&export_to(&link), 0), "");
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("the link")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(&real)
            .expect("the file")
            .lines()
            .count(),
        14
    );

    let null = dir.path("null");
    symlink("/dev/null", &null).expect("symlink");
    assert_eq!(expect(&export_to(&null), 0), "");
    assert!(
        std::fs::symlink_metadata(&null)
            .expect("the link")
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::metadata("/dev/null")
            .expect("/dev/null")
            .file_type()
            .is_char_device()
    );
    // Nothing was left beside either.
    let mut left: Vec<String> = std::fs::read_dir(dir.path("."))
        .expect("the directory")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    left.sort();
    assert_eq!(left, Vec::<String>::new());

    let out = export_to(&dir.path("."));
    assert_eq!(expect(&out, 2), "");
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));

    // `-o -` is stdout, and makes no file named `-`.
    let out = dnsq(&db, &with_window(&["export", "--json", "-o", "-"]));
    assert_eq!(expect(&out, 0).lines().count(), 14);
    assert!(!std::path::Path::new("-").exists());
}

#[test]
fn tail_shows_the_newest_messages() {
    let dir = TempDir::new("tail");
    let db = dir.path("dnsq.db");
    let written = standard(&db);
    let out = dnsq(&db, &["tail", "-n", "3"]);
    let text = expect(&out, 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("2026-11-24 10:03:02.000 "), "{text}");
    assert!(
        lines[1].contains("malformed: message shorter than its header"),
        "{text}"
    );
    assert!(
        lines[2].contains("? ") && lines[2].contains("nobody.example.com."),
        "{text}"
    );

    let rows = json_lines(&dnsq(&db, &["tail", "-n", "2", "--json"]));
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1],
        serde_json::to_value(&written[written.len() - 1]).expect("json")
    );

    let out = dnsq(&db, &["tail", "--until", "2026-11-01T00:00Z"]);
    expect(&out, 1);
    assert!(stderr(&out).contains("no messages"));
}

/// A response with the TC bit (it did not fit in UDP; the client asks again
/// over TCP) says so, so that its empty answer is not taken for NODATA.
#[test]
fn tail_marks_a_truncated_response() {
    let dir = TempDir::new("tail-tc");
    let db = dir.path("dnsq.db");
    let mut w = Writer::open(&db);
    let big = ask(T0, &CURL, "big.example.com.", "TXT");
    let mut truncated = big.response(200_000, "NOERROR", &[]);
    if let Some(dns) = truncated.dns.as_mut().map(std::sync::Arc::make_mut) {
        dns.flags.tc = true;
    }
    w.write(big.query());
    w.write(truncated);
    w.write(big.response(400_000, "NOERROR", &[("big.example.com.", "TXT", "\"x\"")]));
    w.commit();
    w.finish();
    let text = expect(&dnsq(&db, &["tail", "-n", "3"]), 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(!lines[0].contains("truncated"), "{text}");
    assert!(lines[1].contains("NOERROR truncated"), "{text}");
    assert!(!lines[2].contains("truncated"), "{text}");
}

/// A long answer (a TXT record of 750 characters) is cut in the table and in
/// `tail`, so the columns after it stay where they are; `--json` keeps it whole.
/// ANSWERS is the table's last column, so that piped (where nothing wraps) it
/// widens only itself.
#[test]
fn long_answers_are_cut_in_tables_and_whole_in_json() {
    let dir = TempDir::new("long-txt");
    let db = dir.path("dnsq.db");
    let mut w = Writer::open(&db);
    let txt = format!("\"{}\"", "x".repeat(748));
    let asked = ask(T0, &CURL, "big.example.com.", "TXT");
    w.write(asked.query());
    w.write(asked.response(150_000, "NOERROR", &[("big.example.com.", "TXT", &txt)]));
    w.commit();
    w.finish();

    let table = expect(&dnsq(&db, &["by-process", "curl"]), 0);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header.last(), Some(&"ANSWERS"), "{table}");
    let row = lines
        .iter()
        .find(|l| l.contains("big.example.com."))
        .unwrap_or_else(|| panic!("{table}"));
    let cut = format!("\"{}…(+650 chars)", "x".repeat(99));
    assert!(row.ends_with(&cut), "{row}");
    assert!(row.contains("0.15 ms"), "{row}");

    let text = expect(&dnsq(&db, &["tail"]), 0);
    let response = text.lines().last().expect("the response");
    assert!(
        response.contains(&format!("NOERROR  {cut}  0.15 ms")),
        "{response}"
    );

    let rows = json_lines(&dnsq(&db, &["by-process", "curl", "--json"]));
    assert_eq!(rows[0]["answers"], json!([txt]), "{rows:#?}");
    let rows = json_lines(&dnsq(&db, &["tail", "--json"]));
    assert_eq!(rows[1]["dns"]["answers"][0]["data"], txt.as_str());
}

/// A truncated response is counted apart from the full ones (schema 18): curl
/// asks again over TCP and gets the answer, nginx makes do with the truncated
/// one, which must not read as a NOERROR without records.
#[test]
fn by_process_and_name_count_truncated_responses_apart() {
    let dir = TempDir::new("by-process-tc");
    let db = dir.path("dnsq.db");
    let mut w = Writer::open(&db);
    let truncated = |ask: &Ask<'_>| {
        let mut response = ask.response(200_000, "NOERROR", &[]);
        if let Some(dns) = response.dns.as_mut().map(std::sync::Arc::make_mut) {
            dns.flags.tc = true;
        }
        response
    };
    let udp = ask(T0, &CURL, "big.example.com.", "TXT");
    let tcp = ask(T0 + SECOND, &CURL, "big.example.com.", "TXT");
    let only = ask(T0 + 2 * SECOND, &NGINX, "big.example.com.", "TXT");
    w.write(udp.query());
    w.write(truncated(&udp));
    w.write(tcp.query());
    w.write(tcp.response(400_000, "NOERROR", &[("big.example.com.", "TXT", "\"x\"")]));
    w.write(only.query());
    w.write(truncated(&only));
    w.commit();
    w.finish();

    let row = |who: &str| {
        let rows = json_lines(&dnsq(&db, &["by-process", who, "--json"]));
        assert_eq!(rows.len(), 1, "{who}: {rows:#?}");
        rows[0].clone()
    };
    let curl = row("curl");
    assert_eq!(curl["queries"], 2);
    assert_eq!(
        curl["rcodes"],
        json!({"NOERROR": 1, "NOERROR truncated": 1})
    );
    assert_eq!(curl["answers"], json!(["\"x\""]));
    let nginx = row("nginx");
    assert_eq!(nginx["queries"], 1);
    assert_eq!(nginx["rcodes"], json!({"NOERROR truncated": 1}));
    assert_eq!(nginx["answers"], json!([]));

    let text = expect(&dnsq(&db, &["name", "big.example.com."]), 0);
    let nginx_line = text
        .lines()
        .find(|line| line.contains("nginx"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(nginx_line.contains("NOERROR truncated"), "{text}");
}

#[test]
fn tail_follow_prints_new_messages() {
    let dir = TempDir::new("follow");
    let db = dir.path("dnsq.db");
    standard(&db);
    let mut follow = Follow::start(&db, &["-n", "1"]);
    let first = follow.next();
    assert_eq!(first["dns"]["questions"][0]["name"], "nobody.example.com.");
    // The recorder writes more while dnsq follows.
    let mut w = Writer::open(&db);
    let late = ask(T0 + 3 * HOUR, &NGINX, "late.example.com.", "A");
    w.write(late.query());
    w.commit();
    let next = follow.next();
    drop(follow);
    assert_eq!(next["dns"]["questions"][0]["name"], "late.example.com.");
    assert_eq!(next["process"]["comm"], "nginx");
    w.finish();
}

/// A libc call of curl's at `time_ns`, and with `returned` its return
/// `latency_ns` later: (status, addresses).
fn store_libc_call(
    w: &mut Writer,
    time_ns: i64,
    name: &str,
    returned: Option<(i64, i32, &[&str])>,
) {
    let call = libc_call(time_ns, &CURL, "getaddrinfo", name);
    w.store.write_lookup(call.clone()).expect("call");
    if let Some((latency_ns, status, addresses)) = returned {
        let addresses = addresses.iter().map(|a| ip(a)).collect();
        w.store
            .write_lookup(libc_return(&call, latency_ns, status, addresses))
            .expect("answer");
    }
}

/// The standard fixture and four libc calls of curl's: in the fixture's main
/// hour, one that returned two addresses, one that failed (a name a
/// spreadsheet would read as a formula), one whose return never came (the
/// recorder stopped first); one two days earlier.
fn with_libc_calls(db: &std::path::Path) {
    standard(db);
    let mut w = Writer::open(db);
    // Between the fixture's messages (T0 + 240 s malformed, + 300 s nobody).
    store_libc_call(
        &mut w,
        T0 + 250 * SECOND,
        "hosts.example.com",
        Some((330_000, 0, &["198.18.5.5", "fd00::5"])),
    );
    store_libc_call(
        &mut w,
        T0 + 260 * SECOND,
        "=1+1.example.com",
        Some((1_000_000, -2, &[])),
    );
    store_libc_call(&mut w, T0 + 270 * SECOND, "hung.example.com", None);
    store_libc_call(&mut w, T0 - 48 * HOUR, "old.example.com", None);
    w.finish();
}

#[test]
fn stats_counts_libc_calls() {
    let dir = TempDir::new("stats-libc");
    let db = dir.path("dnsq.db");
    with_libc_calls(&db);
    let stats = &json_lines(&dnsq(&db, &with_window(&["stats", "--json"])))[0];
    assert_eq!(
        (
            &stats["libc_calls"],
            &stats["libc_calls_returned"],
            &stats["libc_calls_failed"]
        ),
        (&json!(3), &json!(2), &json!(1)),
        "{stats}"
    );
    let text = expect(&dnsq(&db, &["stats"]), 0);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .map(|l| l[key.len()..].trim().to_owned())
    };
    assert_eq!(line("libc calls").as_deref(), Some("4"), "{text}");
    assert_eq!(
        line("  returned").as_deref(),
        Some("2 (1 failed)"),
        "{text}"
    );
    let stats = &json_lines(&dnsq(
        &db,
        &with_window(&["--unit", "nginx", "stats", "--json"]),
    ))[0];
    assert_eq!(stats["libc_calls"], 0, "{stats}");
}

#[test]
fn tail_shows_libc_calls_with_what_they_returned() {
    let dir = TempDir::new("tail-libc");
    let db = dir.path("dnsq.db");
    with_libc_calls(&db);

    let text = expect(&dnsq(&db, &["tail", "-n", "5"]), 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    // In time order among the messages; the newest 5 of both.
    assert!(lines[0].contains("malformed"), "{text}");
    assert!(
        lines[1].starts_with("2026-11-24 10:04:10.000  curl[4242] session-1.scope = getaddrinfo ")
            && lines[1].contains("lookup hosts.example.com.  198.18.5.5, fd00::5  0.33 ms"),
        "{text}"
    );
    assert!(
        lines[2].contains("lookup =1+1.example.com.  EAI_NONAME  1.0 ms"),
        "{text}"
    );
    assert!(
        lines[3].contains("lookup hung.example.com.  (no return seen)"),
        "{text}"
    );
    assert!(lines[4].contains("nobody.example.com."), "{text}");

    let rows = json_lines(&dnsq(&db, &["tail", "-n", "4", "--json"]));
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        json!({
            "kind": "lookup",
            "time": "2026-11-24T10:04:10.000000000Z",
            "time_ns": T0 + 250 * SECOND,
            "function": "getaddrinfo",
            "name": "hosts.example.com.",
            "process": rows[0]["process"].clone(),
            "answer": {
                "call_time_ns": T0 + 250 * SECOND,
                "latency_ns": 330_000,
                "status": 0,
                "addresses": ["198.18.5.5", "fd00::5"],
            },
        })
    );
    assert_eq!(rows[0]["process"]["comm"], "curl");
    assert_eq!(rows[1]["answer"]["error"], "EAI_NONAME");
    assert!(rows[2].get("answer").is_none(), "{}", rows[2]);

    // Another unit's processes: curl's calls are left out with its messages.
    let text = expect(&dnsq(&db, &["--unit", "nginx", "tail", "-n", "50"]), 0);
    assert!(
        !text.contains("getaddrinfo") && text.contains("nginx"),
        "{text}"
    );
}

#[test]
fn export_calls_as_csv_and_json_lines() {
    let dir = TempDir::new("export-calls");
    let db = dir.path("dnsq.db");
    with_libc_calls(&db);

    let text = expect(
        &dnsq(&db, &with_window(&["export", "--calls", "--format", "csv"])),
        0,
    );
    let mut rows = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = rows
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        header.join(","),
        "time,time_ns,function,name,pid,tid,uid,gid,comm,exe,cgroup,unit,container,status,\
         error,addresses,latency_ms"
    );
    let rows: Vec<Vec<String>> = rows
        .records()
        .map(|r| r.expect("row").iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    let cell = |row: &Vec<String>, column: &str| {
        let at = header.iter().position(|c| c == column).expect("column");
        row[at].clone()
    };
    assert_eq!(
        cell(&rows[0], "time"),
        "2026-11-24T10:04:10.000000000+00:00"
    );
    assert_eq!(cell(&rows[0], "function"), "getaddrinfo");
    assert_eq!(cell(&rows[0], "name"), "hosts.example.com.");
    assert_eq!(cell(&rows[0], "comm"), "curl");
    assert_eq!(cell(&rows[0], "unit"), "session-1.scope");
    assert_eq!(cell(&rows[0], "status"), "0");
    assert_eq!(cell(&rows[0], "addresses"), "198.18.5.5;fd00::5");
    assert_eq!(cell(&rows[0], "latency_ms"), "0.330000");
    // A name an application passed is guarded like a message's.
    assert_eq!(cell(&rows[1], "name"), "'=1+1.example.com.");
    assert_eq!(cell(&rows[1], "status"), "-2");
    assert_eq!(cell(&rows[1], "error"), "EAI_NONAME");
    assert_eq!(cell(&rows[1], "addresses"), "");
    assert_eq!(cell(&rows[2], "status"), "");
    assert_eq!(cell(&rows[2], "latency_ms"), "");

    // JSON lines: what `dnsq tail --json` shows of them.
    let exported = json_lines(&dnsq(&db, &with_window(&["export", "--calls", "--json"])));
    let tailed: Vec<Value> = json_lines(&dnsq(&db, &["tail", "-n", "50", "--json"]))
        .into_iter()
        .filter(|line| line["kind"] == "lookup" && line["name"] != "old.example.com.")
        .collect();
    assert_eq!(exported.len(), 3);
    assert_eq!(exported, tailed);

    // Nothing for another unit; the messages' export is as before.
    let out = dnsq(
        &db,
        &with_window(&["--unit", "nginx", "export", "--calls", "--json"]),
    );
    expect(&out, 1);
    assert!(stderr(&out).contains("no libc calls"), "{}", stderr(&out));
    let messages = json_lines(&dnsq(&db, &with_window(&["export", "--json"])));
    assert!(messages.iter().all(|m| m["kind"] == "message"));
}

#[test]
fn tail_follow_shows_a_call_once_it_returns() {
    let dir = TempDir::new("follow-libc");
    let db = dir.path("dnsq.db");
    standard(&db);
    let mut follow = Follow::start(&db, &["-n", "1"]);
    // The newest message: from here on, dnsq follows.
    let newest = follow.next();
    assert_eq!(newest["dns"]["questions"][0]["name"], "nobody.example.com.");
    let mut w = Writer::open(&db);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    // The call is stored, and its return a moment later, in another commit:
    // the call is shown once, with its return.
    let slow = libc_call(now, &CURL, "getaddrinfo", "slow.example.com");
    w.store.write_lookup(slow.clone()).expect("call");
    w.commit();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let hung = libc_call(now + 1, &CURL, "getaddrinfo", "hung.example.com");
    w.store.write_lookup(hung.clone()).expect("call");
    w.commit();
    w.store
        .write_lookup(libc_return(&slow, 700_000_000, 0, vec![ip("198.18.0.9")]))
        .expect("answer");
    w.commit();
    let first = follow.next();
    // A call whose return does not come is shown without one, after a wait…
    let second = follow.next();
    // … and its return, when it comes, on a line of its own.
    w.store
        .write_lookup(libc_return(&hung, 5_000_000_000, -3, vec![]))
        .expect("answer");
    w.commit();
    let third = follow.next();
    drop(follow);
    w.finish();
    assert_eq!(first["kind"], "lookup", "{first}");
    assert_eq!(first["name"], "slow.example.com.", "{first}");
    assert_eq!(
        first["answer"]["addresses"],
        json!(["198.18.0.9"]),
        "{first}"
    );
    assert_eq!(first["answer"]["latency_ns"], 700_000_000, "{first}");
    assert_eq!(second["name"], "hung.example.com.", "{second}");
    assert!(second.get("answer").is_none(), "{second}");
    assert_eq!(third["kind"], "lookup_answer", "{third}");
    assert_eq!(third["name"], "hung.example.com.", "{third}");
    assert_eq!(third["time_ns"], now + 1 + 5_000_000_000, "{third}");
    assert_eq!(third["answer"]["error"], "EAI_AGAIN", "{third}");
    assert_eq!(third["answer"]["call_time_ns"], now + 1, "{third}");
}

#[test]
fn stats_counts_and_losses() {
    let dir = TempDir::new("stats");
    let db = dir.path("dnsq.db");
    standard(&db);
    let out = dnsq(&db, &["stats", "--json"]);
    expect(&out, 0);
    let stats = &json_lines(&out)[0];
    assert_eq!(stats["messages"], 16);
    assert_eq!(stats["malformed"], 1);
    assert_eq!(stats["queries"], 9);
    assert_eq!(stats["responses"], 6);
    // Queries curl/nginx sent without an answer: the CSV name, the formula, nobody.
    assert_eq!(stats["unanswered"], 3);
    assert_eq!(stats["first_ns"], T0 - 48 * HOUR);
    assert_eq!(stats["runs"], 1);
    assert_eq!(stats["counters"]["lost_ringbuf_full"], 3);
    assert_eq!(stats["lost_total"], 4);
    assert!(stats["size_bytes"].as_u64().expect("size") > 0);
    let table = expect(&dnsq(&db, &["stats"]), 0);
    assert!(table.contains("lost_ringbuf_full"), "{table}");
    // The window selects messages (and runs: this one started today, for real).
    let stats = &json_lines(&dnsq(&db, &with_window(&["stats", "--json"])))[0];
    assert_eq!(stats["messages"], 14);
    assert_eq!(stats["runs"], 0);
}

/// `dnsq stats` adds up the minutes `time_index` counts (schema 10) and counts
/// only the rest of its window from `messages`: both give the same figures, for
/// windows that start and end on and off minute boundaries.
#[test]
fn stats_from_minute_counts_match_a_scan() {
    let dir = TempDir::new("stats-minutes");
    let db = dir.path("dnsq.db");
    standard(&db);
    let copy = |name: &str, change: &str| {
        let path = dir.path(name);
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute("VACUUM INTO ?1", [path.to_str().expect("utf-8")])
            .expect("copy");
        let changed = rusqlite::Connection::open(&path)
            .expect("open the copy")
            .execute(change, [])
            .expect("change the copy");
        assert!(changed > 0, "{change}");
        path
    };
    // Nothing counted: everything read from `messages`, as on older stores.
    let scanned = copy(
        "scanned.db",
        "UPDATE time_index SET messages = NULL, queries = NULL, responses = NULL, \
         malformed = NULL, queries_sent = NULL, answered = NULL, first_ns = NULL, last_ns = NULL",
    );
    // The minute T0 + 3 min (three queries, one answer) counted 1,000 too many.
    let inflated = copy(
        "inflated.db",
        &format!(
            "UPDATE time_index SET messages = messages + 1000, queries = queries + 1000 \
             WHERE minute = {}",
            (T0 + 180 * SECOND) / (60 * SECOND)
        ),
    );
    let figures = |db: &std::path::Path, window: &[&str]| -> Value {
        let mut args = vec!["stats", "--json"];
        args.extend(window);
        let stats = &json_lines(&dnsq(db, &args))[0];
        json!([
            stats["messages"],
            stats["queries"],
            stats["responses"],
            stats["malformed"],
            stats["unanswered"],
            stats["first_ns"],
            stats["last_ns"],
        ])
    };
    let windows: [&[&str]; 6] = [
        &[],
        &WINDOW,
        &[
            "--since",
            "2026-11-24T10:00:30Z",
            "--until",
            "2026-11-24T10:03:01.5Z",
        ],
        &[
            "--since",
            "2026-11-24T10:01Z",
            "--until",
            "2026-11-24T10:04Z",
        ],
        &[
            "--since",
            "2026-11-24T10:00:00.000005Z",
            "--until",
            "2026-11-24T10:05Z",
        ],
        &["--until", "2026-11-24T10:02:00.0009Z"],
    ];
    for window in windows {
        let counted = figures(&db, window);
        assert_eq!(counted, figures(&scanned, window), "{window:?}");
        assert!(
            counted[0].as_i64().expect("messages") > 0,
            "{window:?}: {counted}"
        );
    }
    assert_eq!(
        figures(&db, &WINDOW),
        json!([14, 8, 5, 1, 3, T0, T0 + 300 * SECOND])
    );
    // The inflated minute is read where the window holds all of it, and only there.
    let whole = [
        "--since",
        "2026-11-24T10:03Z",
        "--until",
        "2026-11-24T10:04Z",
    ];
    assert_eq!(
        figures(&db, &whole),
        json!([4, 3, 1, 0, 2, T0 + 180 * SECOND, T0 + 182 * SECOND])
    );
    assert_eq!(figures(&inflated, &whole)[0], 1004);
    let partial = [
        "--since",
        "2026-11-24T10:03:00.5Z",
        "--until",
        "2026-11-24T10:04Z",
    ];
    assert_eq!(figures(&inflated, &partial), figures(&db, &partial));
    assert_eq!(figures(&db, &partial)[0], 2);
}

#[test]
fn escape_sequences_never_reach_the_terminal() {
    let dir = TempDir::new("escape");
    let db = dir.path("dnsq.db");
    standard(&db);
    for args in [
        vec!["name", "*.example.com"],
        vec!["by-process", "curl"],
        vec!["who", "198.18.0.66"],
        vec!["tail", "-n", "50"],
        vec!["top", "domains"],
        vec!["name", "*.example.com", "--json"],
        vec!["export", "--format", "jsonl"],
    ] {
        let out = dnsq(&db, &args);
        let text = expect(&out, 0);
        assert!(!text.contains('\x1b'), "{args:?}: raw ESC in\n{text}");
        assert!(
            text.contains("evil\\x1b[31m.example.com.") || text.contains("evil\\u001b[31m"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn database_errors_exit_3() {
    let dir = TempDir::new("errors");
    let out = dnsq(&dir.path("missing.db"), &["stats"]);
    expect(&out, 3);
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));

    let garbage = dir.path("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 4096]).expect("write");
    let out = dnsq(&garbage, &["stats"]);
    expect(&out, 3);
    assert!(
        stderr(&out).contains("not an SQLite database"),
        "{}",
        stderr(&out)
    );

    let foreign = dir.path("foreign.db");
    rusqlite::Connection::open(&foreign)
        .expect("open")
        .execute_batch("CREATE TABLE t (x)")
        .expect("create");
    let out = dnsq(&foreign, &["stats"]);
    expect(&out, 3);
    assert!(
        stderr(&out).contains("not a dnsq store"),
        "{}",
        stderr(&out)
    );

    let db = dir.path("dnsq.db");
    standard(&db);
    let set_version = |version: u32| {
        rusqlite::Connection::open(&db)
            .expect("open")
            .pragma_update(None, "user_version", version)
            .expect("user_version");
    };
    set_version(1);
    let out = dnsq(&db, &["stats"]);
    expect(&out, 3);
    assert!(
        stderr(&out).contains("run the recorder once to upgrade"),
        "{}",
        stderr(&out)
    );
    set_version(99);
    let out = dnsq(&db, &["stats"]);
    expect(&out, 3);
    assert!(
        stderr(&out).contains("this dnsq is too old"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2_and_help_documents_the_contract() {
    let dir = TempDir::new("usage");
    let db = dir.path("dnsq.db");
    expect(&dnsq(&db, &["tail", "--since", "yesterday-ish"]), 2);
    expect(&dnsq(&db, &["export"]), 2);
    expect(
        &dnsq(
            &db,
            &[
                "stats",
                "--since",
                "2026-11-24T11:00Z",
                "--until",
                "2026-11-24T10:00Z",
            ],
        ),
        2,
    );
    let help = expect(&dnsq(&db, &["--help"]), 0);
    for needle in [
        "Exit status",
        "1  nothing found",
        "3  database error",
        "DNSQ_DB",
        "NO_COLOR",
        "Examples",
    ] {
        assert!(help.contains(needle), "{needle} in\n{help}");
    }
    let help = expect(&dnsq(&db, &["export", "--help"]), 0);
    for needle in ["malformed_error", "latency_ms", "--raw-csv", "RFC 4180"] {
        assert!(help.contains(needle), "{needle} in\n{help}");
    }
}

#[test]
fn times_are_local_unless_utc() {
    let dir = TempDir::new("tz");
    let db = dir.path("dnsq.db");
    standard(&db);
    let run = |tz: &str, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dnsq"))
            .args(args)
            .env("DNSQ_DB", &db)
            .env("TZ", tz)
            .output()
            .expect("run")
    };
    // Civil --since in the local zone (UTC+9): 19:00 there is 10:00Z.
    let out = run(
        "JST-9",
        &[
            "who",
            "198.18.0.10",
            "--json",
            "--since",
            "2026-11-24T19:00",
            "--until",
            "2026-11-24 20:00",
        ],
    );
    let row = &json_lines(&out)[0];
    assert_eq!(row["last_seen"], "2026-11-24T19:00:00.000268255+09:00");
    let out = run("JST-9", &["who", "198.18.0.10", "--json", "--utc"]);
    assert_eq!(
        json_lines(&out)[0]["last_seen"],
        "2026-11-24T10:00:00.000268255Z"
    );
    let out = run("JST-9", &["tail", "-n", "1"]);
    assert!(
        stdout(&out).starts_with("2026-11-24 19:05:00.000 "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn who_survives_cname_loops_and_broken_chains() {
    let dir = TempDir::new("loop");
    let db = dir.path("dnsq.db");
    standard(&db);
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch(&format!(
        "INSERT INTO names (name) VALUES ('x.loop.'), ('y.loop.'), ('z.loop.');
         INSERT INTO rdata (data) VALUES ('192.0.2.99');
         INSERT INTO cnames (target_id, name_id, first_ns, last_ns, count)
           SELECT t.id, n.id, {T0}, {T0}, 1 FROM names n, names t
           WHERE (n.name, t.name) IN (VALUES ('x.loop.', 'y.loop.'), ('y.loop.', 'x.loop.'));
         INSERT INTO resolutions (rdata_id, hour, rtype, name_id, qname_id, process_id,
                                  endpoint_id, first_offset_ns, span_ns, count)
           SELECT (SELECT id FROM rdata WHERE data = '192.0.2.99'), {hour}, 1,
                  (SELECT id FROM names WHERE name = 'z.loop.'),
                  (SELECT id FROM names WHERE name = 'x.loop.'),
                  0, (SELECT MIN(id) FROM endpoints), {offset}, 0, 2;",
        hour = T0 / HOUR,
        offset = T0 % HOUR
    ))
    .expect("a CNAME loop");
    drop(conn);
    let out = dnsq(&db, &["who", "192.0.2.99", "--json"]);
    expect(&out, 0);
    let row = &json_lines(&out)[0];
    assert_eq!(row["chain"], json!(["x.loop.", "z.loop."]));
    assert_eq!(row["chain_complete"], false);
    assert_eq!(row["process"], Value::Null);
    assert_eq!(row["count"], 2);
    let table = expect(&dnsq(&db, &["who", "192.0.2.99"]), 0);
    assert!(table.contains("→ … → z.loop."), "{table}");
}

/// A job that runs curl every minute: a table row for the program, with its
/// newest pid and the count of the others; another user's curl stays apart;
/// `--pids` and `--json` keep a row per process.
#[test]
fn who_makes_one_table_row_of_a_programs_runs() {
    let dir = TempDir::new("who-runs");
    let db = dir.path("dnsq.db");
    let mut w = Writer::open(&db);
    let runs: Vec<Proc> = (0..5)
        .map(|run| Proc {
            pid: 5000 + run,
            ..CURL
        })
        .collect();
    let other_user = Proc {
        pid: 6000,
        uid: 1001,
        ..CURL
    };
    let answer = [("cron.example.com.", "A", "198.18.0.77")];
    for (minute, p) in runs.iter().chain([&other_user]).enumerate() {
        let asked = ask(
            T0 + 60 * SECOND * minute as i64,
            p,
            "cron.example.com.",
            "A",
        );
        w.write(asked.query());
        w.write(asked.response(300_000, "NOERROR", &answer));
    }
    w.commit();
    w.finish();

    let table = expect(&dnsq(&db, &["who", "198.18.0.77"]), 0);
    let count = |needle: &str| table.matches(needle).count();
    assert_eq!(count("cron.example.com."), 2, "{table}");
    assert_eq!(count("curl[5004]"), 1, "the newest run: {table}");
    assert_eq!(count("+4 pids"), 1, "{table}");
    assert_eq!(count("curl[6000]"), 1, "the other user's: {table}");
    assert_eq!(count("curl[5000]"), 0, "{table}");
    let five = table
        .lines()
        .find(|line| line.contains("curl[5004]"))
        .expect("the program's row");
    assert!(five.split_whitespace().any(|cell| cell == "5"), "{five}");

    let table = expect(&dnsq(&db, &["who", "198.18.0.77", "--pids"]), 0);
    for pid in [5000, 5001, 5002, 5003, 5004, 6000] {
        assert!(table.contains(&format!("curl[{pid}]")), "{table}");
    }
    assert!(!table.contains("pids"), "{table}");

    let rows = json_lines(&dnsq(&db, &["who", "198.18.0.77", "--json"]));
    assert_eq!(rows.len(), 6, "{rows:#?}");
    assert!(rows.iter().all(|row| row["count"] == 1), "{rows:#?}");

    // top names the askers by program (command and executable) too.
    let table = expect(&dnsq(&db, &["top", "domains"]), 0);
    assert!(table.contains("curl (6 pids)"), "{table}");
}

/// `who NETWORK`: every address of it an answer carried, a row each with the
/// address first; IPv4 networks on and off octet boundaries, IPv6, none.
#[test]
fn who_searches_a_network() {
    let dir = TempDir::new("who-network");
    let db = dir.path("dnsq.db");
    let mut w = Writer::open(&db);
    let answers = [
        ("a.net.example.", "A", "198.18.4.10"),
        ("b.net.example.", "A", "198.18.4.200"),
        ("c.net.example.", "A", "198.18.5.1"),
        ("d.net.example.", "A", "198.18.6.1"),
        ("e.net.example.", "AAAA", "2001:db8:1::5"),
        ("f.net.example.", "AAAA", "2001:db8:2::5"),
    ];
    for (index, &(name, rtype, data)) in answers.iter().enumerate() {
        let asked = ask(T0 + SECOND * index as i64, &CURL, name, rtype);
        w.write(asked.query());
        w.write(asked.response(300_000, "NOERROR", &[(name, rtype, data)]));
    }
    w.commit();
    w.finish();

    let ips = |target: &str| {
        let out = dnsq(&db, &["who", target, "--json"]);
        expect(&out, 0);
        let mut ips: Vec<String> = json_lines(&out)
            .iter()
            .map(|row| row["ip"].as_str().expect("ip").to_owned())
            .collect();
        ips.sort();
        ips
    };
    assert_eq!(
        ips("198.18.4.0/23"),
        ["198.18.4.10", "198.18.4.200", "198.18.5.1"]
    );
    assert_eq!(ips("198.18.4.128/25"), ["198.18.4.200"]);
    assert_eq!(
        ips("198.18.0.0/20"),
        ["198.18.4.10", "198.18.4.200", "198.18.5.1", "198.18.6.1"]
    );
    // Host bits are dropped: this is 198.18.4.0/24.
    assert_eq!(ips("198.18.4.77/24"), ["198.18.4.10", "198.18.4.200"]);
    assert_eq!(ips("2001:db8:1::/48"), ["2001:db8:1::5"]);
    assert_eq!(ips("0.0.0.0/0").len(), 4);

    let table = expect(&dnsq(&db, &["who", "198.18.4.0/23"]), 0);
    assert!(table.starts_with("ADDRESS"), "{table}");
    let row = table
        .lines()
        .find(|line| line.contains("c.net.example."))
        .expect("a row");
    assert!(row.starts_with("198.18.5.1 "), "{row}");
    // One address keeps the table it had.
    let table = expect(&dnsq(&db, &["who", "198.18.5.1"]), 0);
    assert!(!table.contains("ADDRESS"), "{table}");

    let out = dnsq(&db, &["who", "10.0.0.0/8"]);
    expect(&out, 1);
    assert!(
        stderr(&out).contains("no name resolved to an address in 10.0.0.0/8"),
        "{}",
        stderr(&out)
    );
}
