//! `dnsq-bench`: helpers for `make bench` (the harness is bench/run.py).
//!
//! `dnsq-bench generate --db PATH` writes a realistic month of DNS history through
//! the recorder's own store writer (`dnsq_recorder::store`), as if the recorder had
//! seen it, and prints a JSON manifest: what was generated and what the benchmark
//! should ask of it (the busiest address, command and name; the times that cut off
//! the newest 1,000,000 and 100,000 messages for `dnsq export`). The same seed and
//! sizes always give the same history.

/// The recorder's allocator: the generator writes through the recorder's store,
/// and glibc's malloc spent ~15 % of the generation in its free lists (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod history;
mod probes_only;
mod replay;
mod rng;
mod world;

use std::{
    path::PathBuf,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use dnsq_recorder::{
    pipeline::Sink,
    store::{self, StoreOptions},
};
use serde_json::json;

use crate::{history::Generator, rng::Rng, world::World};

/// Bump whenever the generated history changes for the same arguments: the
/// harness reuses a cached database only when this (and the store's schema and
/// source) still match.
const GENERATOR_VERSION: u32 = 2;

#[derive(Debug, Parser)]
#[command(name = "dnsq-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a DNS history into a new store and print its manifest (JSON).
    Generate {
        /// The database to create (must not exist).
        #[arg(long)]
        db: PathBuf,
        /// DNS messages to write.
        #[arg(long, default_value_t = 10_000_000)]
        messages: u64,
        /// Distinct names asked.
        #[arg(long, default_value_t = 50_000)]
        names: usize,
        /// Registrable domains the names belong to.
        #[arg(long, default_value_t = 5_000)]
        domains: usize,
        /// Days the history spans.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// When the history ends (RFC 3339).
        #[arg(long, default_value = "2026-10-31T00:00:00Z")]
        end: jiff::Timestamp,
        #[arg(long, default_value_t = 20_261_124)]
        seed: u64,
        /// Messages a store transaction commits.
        #[arg(long, default_value_t = 5_000)]
        batch_size: usize,
        /// Stop after this many seconds even if fewer messages were written (the
        /// manifest then says so); 0: no limit.
        #[arg(long, default_value_t = 0)]
        deadline_secs: u64,
    },
    /// Print the generator version (the harness's cache key).
    Version,
    /// Attach the recorder's probes and read and drop their events until SIGINT
    /// or SIGTERM (needs root): what the kernel programs alone cost the traffic.
    ProbesOnly,
    /// Send a query list (dnsperf's format) at a set rate to a server of this
    /// process's own that answers each question as `--upstream` answered it once,
    /// and print what each end sent and received (JSON): the loss figure's
    /// traffic at rates dnsperf cannot reach here.
    Replay {
        #[arg(long)]
        queries: PathBuf,
        #[arg(long, default_value = "127.0.0.1:53")]
        upstream: std::net::SocketAddr,
        #[arg(long, default_value = "127.0.0.2:53")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value_t = 50_000)]
        qps: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Client sockets the queries are spread over (dnsperf's `-c`).
        #[arg(long, default_value_t = 4)]
        sockets: usize,
    },
    /// Count a store's messages (packed in chunks, which plain SQL cannot read)
    /// and print the tallies the harness needs (JSON): all of them, by endpoint,
    /// by first question's name id, and the time of the `--newest`th newest.
    Tally {
        #[arg(long)]
        db: PathBuf,
        /// Also the time from which the store holds its newest N messages.
        #[arg(long)]
        newest: Vec<u64>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Version => {
            println!("{GENERATOR_VERSION}");
            Ok(())
        }
        Command::ProbesOnly => probes_only::run(),
        Command::Replay {
            queries,
            upstream,
            listen,
            qps,
            seconds,
            sockets,
        } => replay::run(&replay::Args {
            queries: &queries,
            upstream,
            listen,
            qps,
            seconds,
            sockets,
        }),
        Command::Tally { db, newest } => {
            println!("{}", serde_json::to_string(&tally(&db, &newest)?)?);
            Ok(())
        }
        Command::Generate {
            db,
            messages,
            names,
            domains,
            days,
            end,
            seed,
            batch_size,
            deadline_secs,
        } => {
            if db.exists() {
                bail!("{} exists; generate into a new file", db.display());
            }
            let args = Args {
                messages,
                names,
                domains,
                days,
                end,
                seed,
                batch_size,
                deadline: (deadline_secs > 0).then(|| Duration::from_secs(deadline_secs)),
            };
            let manifest = generate(&db, &args)?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(())
        }
    }
}

/// What `dnsq-bench tally` prints.
fn tally(db: &std::path::Path, newest: &[u64]) -> anyhow::Result<serde_json::Value> {
    use std::{collections::BTreeMap, ops::ControlFlow};

    use dnsq_recorder::store::chunk::{self, column};
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut messages = 0u64;
    let mut by_endpoint: BTreeMap<i64, u64> = BTreeMap::new();
    let mut by_qname: BTreeMap<i64, u64> = BTreeMap::new();
    let mut newest_since: BTreeMap<u64, i64> = BTreeMap::new();
    chunk::scan_messages(&conn, true, |_, values, _| {
        messages += 1;
        if newest.contains(&messages) {
            newest_since.insert(messages, values[column::TIME_NS].unwrap_or_default());
        }
        *by_endpoint
            .entry(values[column::ENDPOINT_ID].unwrap_or_default())
            .or_default() += 1;
        if let Some(qname_id) = values[column::QNAME_ID] {
            *by_qname.entry(qname_id).or_default() += 1;
        }
        ControlFlow::Continue(())
    })?;
    Ok(json!({
        "messages": messages,
        "by_endpoint": by_endpoint,
        "by_qname": by_qname,
        "newest_since": newest_since,
    }))
}

struct Args {
    messages: u64,
    names: usize,
    domains: usize,
    days: u32,
    end: jiff::Timestamp,
    seed: u64,
    batch_size: usize,
    deadline: Option<Duration>,
}

/// Messages handed from the generating thread to the writing one at a time.
const CHUNK: usize = 20_000;
/// The generating writer's page cache, in KiB: the whole 10-million-message
/// history (about 590 MB) fits, so its fact indexes are never read back.
const BULK_CACHE_KIB: i64 = 1 << 20;

fn generate(db: &std::path::Path, args: &Args) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let world = World::build(&mut Rng::new(args.seed), args.names, args.domains);
    let end_ns = i64::try_from(args.end.as_nanosecond()).context("--end")?;
    let start_ns = end_ns - i64::from(args.days) * 86_400 * 1_000_000_000;
    let mut generator = Generator::new(&world, args.seed, args.messages, start_ns, args.days);
    let export_marks = [1_000_000u64, 100_000];
    for newest in export_marks {
        if newest < args.messages {
            generator.mark(args.messages - newest);
        }
    }

    // The recorder's store, with its batching but no retention (the history is
    // older than the default 30 days by the time it is read) and facts held for an
    // hour of message time (the live recorder holds them 5 s of wall-clock time,
    // in which it sees far more messages than this history has in an hour).
    let options = StoreOptions {
        batch_size: args.batch_size,
        facts_window: Duration::from_secs(3_600),
        retain: None,
        max_db_size: None,
        max_pending: args.batch_size * 4,
        ..StoreOptions::default()
    };
    let mut store = store::open_for_writing(db)
        .and_then(|store| store.with_options(options))
        .with_context(|| format!("creating {}", db.display()))?;
    store.begin_bulk_load(BULK_CACHE_KIB)?;
    store.start_run(&json!({"generator": GENERATOR_VERSION, "seed": args.seed}).to_string())?;

    let (sender, receiver) = mpsc::sync_channel::<Vec<_>>(4);
    let mut written = 0u64;
    let mut last_report = Instant::now();
    let generator = std::thread::scope(|scope| -> anyhow::Result<Generator<'_>> {
        let producer = scope.spawn(move || {
            loop {
                let mut chunk = Vec::with_capacity(CHUNK);
                let more = generator.fill(&mut chunk, CHUNK);
                if sender.send(chunk).is_err() || !more {
                    return generator;
                }
            }
        });
        for chunk in receiver {
            for record in chunk {
                store.write(record)?;
                written += 1;
            }
            if args
                .deadline
                .is_some_and(|deadline| started.elapsed() >= deadline)
            {
                eprintln!("dnsq-bench: deadline reached after {written} messages");
                break;
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "dnsq-bench: {written} messages in {secs:.0} s ({:.0}/s)",
                    written as f64 / secs
                );
            }
        }
        Ok(producer.join().expect("the generating thread panicked"))
    })?;
    let stats = store.finish("generated")?;
    store.end_bulk_load()?;
    if stats.dropped > 0 || stats.committed != written {
        bail!(
            "the store committed {} of {written} messages ({} dropped)",
            stats.committed,
            stats.dropped
        );
    }
    drop(store);
    let seconds = started.elapsed().as_secs_f64();

    let tally = &generator.tally;
    let busiest_address = tally
        .addresses
        .iter()
        .max_by_key(|(ip, count)| (**count, **ip))
        .map(|(ip, count)| json!({"ip": ip.to_string(), "answers": count}));
    let busiest_command = tally
        .commands
        .iter()
        .max_by_key(|(comm, count)| (**count, **comm))
        .map(|(comm, count)| json!({"comm": comm, "queries": count}));
    let busiest_name = tally
        .names
        .iter()
        .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
        .map(|(name, count)| {
            let name = &world.names[*name];
            json!({
                "name": name.name,
                "queries": count,
                "domain_glob": format!("*.{}", world.domains[name.domain]),
            })
        });
    let processes = world
        .programs
        .iter()
        .map(|p| p.incarnations.len() * p.threads.len().max(1))
        .sum::<usize>()
        + world.stub.incarnations.len();
    let export_since: serde_json::Map<_, _> = export_marks
        .iter()
        .filter_map(|&newest| {
            let index = args.messages.checked_sub(newest)?;
            let time = generator.marked(index)?;
            Some((newest.to_string(), json!(time)))
        })
        .collect();
    Ok(json!({
        "generator_version": GENERATOR_VERSION,
        "schema_version": store::schema::SCHEMA_VERSION,
        "messages": written,
        "messages_asked": args.messages,
        "complete": written == args.messages,
        "seed": args.seed,
        "names": world.names.len(),
        "domains": world.domains.len(),
        "cdn_edge_names": world.edges.len(),
        "programs": world.programs.len() + 1,
        "process_identities": processes,
        "days": args.days,
        "first_ns": generator.first_ns,
        "last_ns": generator.last_ns(),
        "lookups": tally.lookups,
        "responses_to_clients": tally.responses,
        "nxdomain_responses": tally.nxdomain,
        "stub_cache_misses": tally.cache_misses,
        "batch_size": args.batch_size,
        "seconds": seconds,
        "busiest_address": busiest_address,
        "busiest_command": busiest_command,
        "busiest_name": busiest_name,
        "export_since_ns": export_since,
    }))
}
