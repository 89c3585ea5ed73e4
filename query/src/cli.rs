//! The command line: every command, flag and the help texts (examples, exit
//! codes, the CSV columns).

use std::{net::IpAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use dnsq_recorder::store::schema;
use ipnet::IpNet;

use crate::timearg::{self, TimeArg};

const AFTER_HELP: &str = "\
Times:
  --since/--until take a duration ago (90s, 30m, 1h, 7d, 1h30m) or a time
  (2026-11-24T10:00, 2026-11-24 10:00:00, 2026-11-24, 10:00; local time unless
  it carries Z or an offset such as +01:00; UTC with --utc). The window is
  since <= time < until. who, by-process, name, top and stats' name and process
  counts read hourly summaries, so there the window is rounded out to whole hours.

Units and containers:
  A process's cgroup names its owner: the systemd unit (nginx.service,
  session-3.scope) and the container (docker:3f2a1b4c5d6e, podman, containerd,
  CRI-O, LXC, a Kubernetes pod). Tables show it with short ids beside the
  process (a UNIT/CONTAINER column in who and top processes, under the process
  in by-process and name, after it in tail); JSON has \"unit\" and
  \"container\" (full ids: docker:<64 hex>, as dnsq-recorder --print writes
  them) in each process object, export's CSV its unit and container columns.
  --unit NAME keeps the processes of that unit: the name (nginx.service; nginx
  alone means nginx.service) or a glob (nginx*, *.scope); it is the innermost
  unit of the process, the one shown. --container ID keeps those of that
  container: a prefix of its id (3f2a1b, docker:3f2a1b), or its pod's UID.
  Given both, a process must match both. They apply to:
    who         the process shown (the application, even behind a resolver)
    by-process, name
                the processes whose lookups are shown
    top         what matching processes asked (all three rankings)
    tail, export
                their messages (and messages of unknown processes whose socket
                was in a matching cgroup) and libc calls
    stats       the message, name, process and libc call counts; the database
                size, the recorder's runs and losses are the whole recorder's

Local resolvers:
  When an application asks a resolver on this host (dnsmasq, unbound,
  systemd-resolved, ...), the recorder links the two (schema 3 stores). who and
  by-process then show the application with the resolver beside it (curl[812]
  via dnsmasq[99]); the resolver's own rows say whom they were for. Older
  stores lack the links: those commands work as before.

Exit status:
  0  found (something was printed)
  1  nothing found (the reason is on stderr)
  2  usage, configuration or output error
  3  database error: missing, unreadable, not a dnsq database, wrong schema

Environment:
  DNSQ_DB   the database (as --db)
  NO_COLOR  no colour in tables (tables are never coloured when piped)
  TZ        the local time zone

Examples:
  dnsq who 198.18.0.10                     which names resolved to this IP, for whom
  dnsq who 2001:db8::1 --since 7d
  dnsq by-process nginx --since 1h         what nginx resolved in the last hour
  dnsq by-process 4242
  dnsq name '*.example.com' --since 2026-11-24T10:00 --until 2026-11-24T12:00
  dnsq top nxdomain --since 1d
  dnsq tail -f
  dnsq stats --json
  dnsq export --format csv --since 1h -o /var/backups/dns-last-hour.csv

Names, commands and paths are shown with control characters escaped (\\x1b);
--json output escapes them as JSON does (\\u001b). Tables and tail show a
response's first answers, each cut after 100 characters (\"…(+650 chars)\"):
--json and export keep the data whole.";

/// Ask the DNS history which process resolved what.
///
/// dnsq reads the database dnsq-recorder writes, read-only: it needs nothing
/// but read access to the file, and never holds the recorder up.
#[derive(Debug, Parser)]
#[command(name = "dnsq", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The database.
    #[arg(long, global = true, env = "DNSQ_DB", value_name = "PATH",
          default_value = schema::DEFAULT_DB_PATH)]
    pub db: PathBuf,

    /// Only what happened at or after this time (e.g. 1h, 7d, 2026-11-24T10:00).
    #[arg(long, global = true, value_name = "TIME", value_parser = timearg::parse)]
    pub since: Option<TimeArg>,

    /// Only what happened before this time.
    #[arg(long, global = true, value_name = "TIME", value_parser = timearg::parse)]
    pub until: Option<TimeArg>,

    /// One JSON object per line instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// Show and read times in UTC instead of the local time zone.
    #[arg(long, global = true)]
    pub utc: bool,

    /// Only processes of this systemd unit (a name, NAME for NAME.service, or a
    /// glob such as 'nginx*').
    #[arg(long, global = true, value_name = "NAME")]
    pub unit: Option<String>,

    /// Only processes of this container (a prefix of its id, or its Kubernetes
    /// pod's UID).
    #[arg(long, global = true, value_name = "ID")]
    pub container: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every name that resolved to an IP, through CNAME chains back to the name
    /// the application asked for, and who asked.
    #[command(after_help = "\
Shows, for each name chain (asked name → CNAME … → owner name), the process
that received the answer (pid, command, executable, uid, its unit or
container), the server that gave it, first and last seen, and how many answers
carried the IP.

An application that asked a local resolver (dnsmasq, systemd-resolved, ...) is
shown with the resolver beside it: curl[812] via dnsmasq[99] (JSON: the
application in \"process\", the resolver in \"via\"). When only the resolver
was seen receiving the answer (from upstream), its clients are shown in its
place with the count of their queries and the resolver's upstream server
(JSON: \"inferred\": true). The resolver's
own rows (JSON: \"for\" lists its clients) are left out of tables when their
clients are shown; --resolvers shows them, and --json always has them.

A table makes one row of the runs of a program (the same command, executable,
user, group and cgroup) that got the same answer the same way: the newest
process is shown, and how many there were (curl[812] +41 pids), so a job that
runs every minute is one row. --pids shows a row per process, as --json does.

A network (140.82.112.0/20, 2001:db8::/32) finds every address in it that
answers carried (at most 4096 in one query), each row with its ADDRESS first.

Examples:
  dnsq who 198.18.0.10
  dnsq who 198.18.0.10 --container 3f2a1b4c
  dnsq who 140.82.112.0/20 --since 7d
  dnsq who 2001:db8::10 --since 1d --json")]
    Who {
        /// An IPv4 or IPv6 address (also as logs write it: 192.0.2.1:443,
        /// [2001:db8::1]:443), or a network (140.82.112.0/20, 2001:db8::/32)
        #[arg(value_name = "IP|NETWORK", value_parser = parse_target)]
        ip: IpNet,
        /// Also show local resolvers' own rows when the applications behind
        /// them are shown.
        #[arg(long)]
        resolvers: bool,
        /// A table row per process (pid), not one per program's runs (--json
        /// always has a row per process).
        #[arg(long)]
        pids: bool,
        #[command(flatten)]
        limit: Limit,
    },

    /// What a process resolved: names, answers, rcodes, latency.
    #[command(
        name = "by-process",
        after_help = "\
PROCESS is a pid, or a command name (as in ps -o comm; longer names match
their first 15 characters), or an executable path or its file name.
ROLE is client when the process asked, server when it answered (a resolver),
libc when it called a libc resolver function (getaddrinfo, gethostbyname*:
TYPE is the function, QUERIES the calls, RCODE what they returned: ok, an
EAI_* code, or gethostbyname*'s h_errno (HOST_NOT_FOUND, NO_DATA, TRY_AGAIN,
NO_RECOVERY; \"no hostent\" for calls stored before it was recorded);
LATENCY how long they took; ANSWERS the addresses they returned). An
application that resolves through a daemon over a Unix socket (nss-resolve,
nscd) sends no DNS packet and shows only such rows.
Calls stored by older recorders (before store schema 17) show no RCODE or
LATENCY; before schema 12 their ANSWERS are what the daemon was answered for
the name in the window, when it went upstream for the call.
A UDP response too large for the client's buffer (TC bit) shows as
\"NOERROR truncated\": it held no complete answer (the client asks again over
TCP, counted as another query, or goes without). Before store schema 18 such
responses were counted with the full ones.
A name the process asked through a local resolver shows \"via resolver[pid]\"
(JSON \"via\"); a local resolver's upstream queries, and its answers to local
clients, show whom they were for: \"for curl[812], ...\" (JSON \"for\").

Examples:
  dnsq by-process curl --since 1h
  dnsq by-process 4242
  dnsq by-process nginx --unit nginx.service
  dnsq by-process /usr/sbin/nginx --json"
    )]
    ByProcess {
        /// A pid, a command name or an executable.
        #[arg(value_name = "NAME|PID")]
        process: String,
        #[command(flatten)]
        limit: Limit,
    },

    /// Who asked for a name, and what came back.
    #[command(after_help = "\
PATTERN is a name (www.example.com, the trailing dot optional, any case) or a
glob: *.example.com matches every name below example.com (not example.com
itself); * matches any characters, ? one.

Examples:
  dnsq name www.example.com
  dnsq name '*.example.com' --since 1d")]
    Name {
        #[arg(value_name = "PATTERN")]
        pattern: String,
        #[command(flatten)]
        limit: Limit,
    },

    /// The most asked names, the busiest processes, the most NXDOMAIN answers.
    #[command(after_help = "\
Counts what processes on this host asked (the client side): queries they sent
and the answers they received. top processes also counts calls of libc's
resolver functions (LIBC CALLS, shown when there are any): an application
that resolves through a daemon over a Unix socket (nss-resolve, nscd) sends
no query of its own; it is ranked after those that do, by its calls.

Examples:
  dnsq top domains --since 1d
  dnsq top processes -n 5
  dnsq top nxdomain --since 1h --json")]
    Top {
        what: TopKind,
        /// How many rows.
        #[arg(short = 'n', long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },

    /// The newest messages and libc calls; with -f, new ones as they are recorded.
    #[command(after_help = "\
One line a message: time, process, direction (> sent, < received), transport
and peer, the question, and for a response its rcode (followed by truncated
when it had the TC bit: it did not fit, the client should ask over TCP),
answers and latency.
One line a libc resolver call (getaddrinfo, gethostbyname*), marked =: time,
process, function, the name asked, and what it returned: the addresses, or
the error (EAI_NONAME, ...), and how long the call took; (no return seen) when
its return was not recorded. Followed, a call is shown once it returns, or
after 2 s without its return, which then gets a line of its own when it comes
(return instead of lookup; in JSON a \"kind\":\"lookup_answer\" line at the
time of the return). With --json, the messages and calls as dnsq-recorder
--print writes them; a call is one \"kind\":\"lookup\" line with its
\"answer\".

Examples:
  dnsq tail -n 50
  dnsq tail -f --json | jq 'select(.kind == \"message\") | .dns.questions'")]
    Tail {
        /// Keep printing new messages and calls as the recorder stores them.
        #[arg(short, long, conflicts_with = "until")]
        follow: bool,
        /// How many of the newest messages and calls to print first.
        #[arg(short = 'n', long, default_value_t = 20, value_name = "N")]
        lines: usize,
    },

    /// Counts (messages, names, processes, libc calls), time span, database size, recorder runs
    /// and losses.
    #[command(after_help = "\
Counts read every message in the window (fast for hours, slower for months).
Losses are the recorder's counters (events the kernel could not deliver,
messages the recorder dropped), summed over its runs within the window.

Examples:
  dnsq stats
  dnsq stats --since 1d --json")]
    Stats,

    /// Every message in the window, as CSV or JSON lines, streamed.
    #[command(after_help = EXPORT_HELP)]
    Export {
        /// Output format (--json is the same as --format jsonl).
        #[arg(long, value_enum, required_unless_present = "json")]
        format: Option<ExportFormat>,
        /// The libc resolver calls (getaddrinfo, gethostbyname*) and what they
        /// returned, instead of the messages.
        #[arg(long)]
        calls: bool,
        /// Do not guard CSV cells against formula injection.
        #[arg(long)]
        raw_csv: bool,
        /// Write here instead of stdout (`-`: stdout). A file is replaced whole
        /// at the end (through a temporary file beside it; a symbolic link to it
        /// is kept); a device or FIFO is written as the rows come.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Print a man page or shell completions (used by `make install`).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    Man,
    Completions { shell: clap_complete::Shell },
}

const EXPORT_HELP: &str = "\
CSV follows RFC 4180 (UTF-8, comma-separated, records end in CRLF, fields with
commas, quotes or line breaks are quoted and their quotes doubled). It has a
header line and these columns, in this order; they will not change (new ones
may only be appended):

  time             RFC 3339 with nanoseconds, local offset (Z with --utc)
  time_ns          Unix nanoseconds
  direction        sent | received (by the process)
  transport        udp | tcp
  src, sport       source address and port
  dst, dport       destination address and port
  pid, tid, uid, gid, comm, exe, cgroup
                   the process (empty when unknown)
  attribution      socket | socket-late | procfs | unknown
  id               DNS message id
  qr               query | response
  opcode           QUERY, NOTIFY, UPDATE, …
  rcode            NOERROR, NXDOMAIN, SERVFAIL, …
  qname, qtype, qclass
                   the first question
  answers          the answer section, `TYPE data` items separated by `;`
  ttl_min          the smallest TTL in the answer section
  latency_ms       for a response paired with its query, milliseconds
  message_len      the message's true length in bytes
  captured_len     the bytes captured (less: truncated)
  malformed_error  why the bytes were not DNS (the DNS columns are then empty)
  unit             the process's systemd unit, from its cgroup (nginx.service)
  container        its container: runtime:full-id (docker:<64 hex>), for a
                   Kubernetes pod `k8s pod <uid> runtime:full-id`, or
                   `k8s pod <uid>` (its own cgroup)
  via_pid, via_comm
                   on a client's answer from a local resolver: the resolver
  for_pid, for_comm
                   on a local resolver's upstream query and answer, and on its
                   answer to a local client: the client it acted for (schema 3
                   stores; empty otherwise)

Cells that start with = + - @, a tab or a carriage return get a leading ' so
spreadsheets do not run them as formulas; --raw-csv writes them as they are.
When stdout is a terminal, control characters in cells are escaped (\\x1b).

With --calls, the libc resolver calls applications made (an application
that resolves through a daemon over a Unix socket sends no message of its
own), with these CSV columns, in this order (new ones may only be appended):

  time, time_ns    when the call was made
  function         getaddrinfo | gethostbyname | gethostbyname2 |
                   gethostbyname_r | gethostbyname2_r
  name             the name asked, lower-cased, with a trailing dot
  pid, tid, uid, gid, comm, exe, cgroup, unit, container
                   the calling process and thread
  status           getaddrinfo's return value (0, or a negative EAI_* code);
                   for the others 0, 16 + h_errno (17 HOST_NOT_FOUND,
                   18 TRY_AGAIN, 19 NO_RECOVERY, 20 NO_DATA), or 1 (no
                   hostent, h_errno not read); empty when the
                   return was not recorded
  error            EAI_NONAME, EAI_AGAIN, ..., HOST_NOT_FOUND, NO_DATA,
                   TRY_AGAIN, NO_RECOVERY, no hostent
  addresses        the addresses returned, separated by `;` (`;...` at the
                   end: there were more than 16)
  latency_ms       how long the call took

JSON lines: one object per message, as dnsq-recorder --print writes it (unit
and container in each process object whose cgroup names them). Fields the
store does not keep are absent: from_cache and on_behalf_of beyond its first
process; the attribution of via and on_behalf_of is null. With --calls, one
\"kind\":\"lookup\" object per call, its return in \"answer\".

Memory stays constant however many rows. Exit status 1 when the window held no
message (the CSV header is still written).

Examples:
  dnsq export --format csv --since 2026-11-24T00:00 --until 2026-11-25T00:00 > day.csv
  dnsq export --format jsonl --since 1h | gzip > last-hour.jsonl.gz
  dnsq export --format csv --since 1h -o /srv/dns/last-hour.csv   # from cron
  dnsq export --calls --format csv --since 1d > libc-calls.csv";

#[derive(Debug, Args)]
pub struct Limit {
    /// At most this many rows, newest first (0: all).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TopKind {
    /// Names asked most.
    Domains,
    /// Processes that asked most.
    Processes,
    /// Names answered NXDOMAIN most.
    Nxdomain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

/// `who`'s address, also as logs write it (`[2001:db8::1]`, `192.0.2.1:443`,
/// `[2001:db8::1]:443`), or a network (`140.82.112.0/20`; host bits are
/// dropped), as one [`IpNet`]: an address is a network of one. A name asked
/// for is `dnsq name`'s, which the error says.
fn parse_target(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    let address = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        });
    if let Some(address) = address {
        return Ok(IpNet::from(address));
    }
    Err(if text.contains('.') && !text.contains(['/', ' ']) {
        format!(
            "not an IP address; to see who asked for a name: dnsq name {}",
            crate::escape::safe(text)
        )
    } else {
        "not an IPv4 or IPv6 address or network".to_owned()
    })
}
