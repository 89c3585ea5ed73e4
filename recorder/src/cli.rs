//! The recorder's command line, merged with its configuration file: a flag (or its
//! environment variable) wins over the file's key of the same name, which wins
//! over the built-in default.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, parser::ValueSource};
use dnsq_common::{DEFAULT_PAYLOAD_CAP, DEFAULT_RING_BYTES, MAX_PAYLOAD};
use dnsq_recorder::{
    config::{self, FileConfig},
    privileges,
    store::{self, schema::DEFAULT_DB_PATH},
};

/// Records every DNS query and answer on this host with the process that sent or
/// received it.
#[derive(Debug, Parser)]
#[command(
    name = "dnsq-recorder",
    version,
    after_help = "Examples:\n  \
    sudo dnsq-recorder                         # store in /var/lib/dnsq/dnsq.db\n  \
    sudo dnsq-recorder --retain 7d --max-db-size 2G\n  \
    sudo dnsq-recorder --print                 # live JSON, one message per line\n  \
    sudo dnsq-recorder --print --port 53,5353  # also watch mDNS\n  \
    sudo dnsq-recorder check                   # what this kernel offers, what is missing\n\n\
    Configuration: /etc/dnsq/dnsq.toml (or --config) holds the same settings as the\n\
    flags (ports, payload_cap, ring_buffer_size, db, retain, max_db_size, batch_size,\n\
    batch_window, store_thread, nice, log); a flag overrides its key."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The configuration file (TOML). Without this flag /etc/dnsq/dnsq.toml is read
    /// when it exists.
    #[arg(long, env = "DNSQ_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Write one JSON object per DNS message to stdout instead of storing it (no
    /// database is opened).
    #[arg(long)]
    pub print: bool,

    /// The database to store messages in (created 0640, its directory 0750).
    #[arg(long, env = "DNSQ_DB", default_value = DEFAULT_DB_PATH)]
    pub db: PathBuf,

    /// Delete stored messages and facts older than this (e.g. 30d, 12h); 0 keeps
    /// them forever. Enforced a little at a time.
    #[arg(long, default_value = "30d", value_parser = parse_retain)]
    pub retain: Retain,

    /// Cap on the database's used size (e.g. 500M, 2G; powers of 1024); the oldest
    /// messages are deleted to stay under it. 0: no cap.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub max_db_size: DbSize,

    /// Messages written to the database in one transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,

    /// Longest a message waits in memory before it is written (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = store::parse_duration)]
    pub batch_window: Duration,

    /// Whether the store commits on a thread of its own, beside the one reading the
    /// kernel's events: `auto` does when the recorder may use more than two CPUs
    /// (it drains the ring up to ~1.7 times as fast but costs 10–20 % more CPU:
    /// records cross cores).
    #[arg(long, value_enum, default_value_t = store::Placement::Auto)]
    pub store_thread: store::Placement,

    /// UDP/TCP ports that carry DNS (the full list).
    #[arg(long, value_delimiter = ',', default_value = "53", env = "DNSQ_PORTS")]
    pub port: Vec<u16>,

    /// Most bytes of each DNS message copied from the kernel; longer messages are
    /// recorded with their true length and marked truncated.
    #[arg(long, default_value_t = DEFAULT_PAYLOAD_CAP, value_parser = clap::value_parser!(u32).range(12..=MAX_PAYLOAD as i64))]
    pub payload_cap: u32,

    /// Size of the kernel → recorder ring buffer in bytes (a power of two, at least
    /// 4096). Events that do not fit are counted as lost.
    #[arg(long, default_value_t = DEFAULT_RING_BYTES)]
    pub ring_buffer_size: u32,

    /// The nice value the recorder lowers itself to at start (-20..19; lower runs
    /// first), unless it already runs at that priority or a higher one. Behind a
    /// host's other work the recorder falls behind the kernel and its ring buffer
    /// overflows: at 50k queries/s on 2 busy CPUs, nice 0 lost 32–36 % of the
    /// events and -5 none. Needs CAP_SYS_NICE (root has it; under systemd the
    /// unit's `Nice=-5` sets it instead). 0 keeps the priority it was started with.
    #[arg(long, default_value_t = privileges::DEFAULT_NICE, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: i32,

    /// Log filter (tracing's EnvFilter syntax), e.g. `debug`.
    #[arg(long, env = "DNSQ_LOG", default_value = "info")]
    pub log: String,
}

/// `--retain`: `None` keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retain(pub Option<Duration>);

/// `--max-db-size`: `None` for no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbSize(pub Option<u64>);

fn parse_retain(text: &str) -> Result<Retain, String> {
    store::parse_retain(text).map(Retain)
}

fn parse_size(text: &str) -> Result<DbSize, String> {
    store::parse_size(text).map(DbSize)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check what the recorder needs from this machine: capabilities, kernel BTF,
    /// cgroup v2, the hooks it attaches to. Loads and attaches every probe once
    /// (and detaches it) when it can. Exit status 0 when the recorder can run.
    Check,
    /// Rewrite the database (--db) without the free space and the scattered pages
    /// that months of recording leave (SQLite's VACUUM), so that queries that find
    /// it out of the page cache read fewer pages. Stop the recorder first: this
    /// takes its lock, and refuses while a recorder holds it. Needs up to twice the
    /// database's size in free disk space while it runs; `dnsq` can go on
    /// reading. On a 10-million-message history: 9–13 s, 587 MB to 535 MB, and
    /// queries with a cold page cache up to 2.3 times faster.
    Compact,
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

impl Cli {
    /// Parses the command line, then fills what it left at defaults from the
    /// configuration file.
    pub fn load() -> anyhow::Result<Self> {
        let matches = Self::command().get_matches();
        let mut cli = Self::from_arg_matches(&matches)?;
        let file = config::load(cli.config.as_deref())?;
        let path = cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG_PATH));
        cli.merge(file, &matches)
            .with_context(|| format!("invalid configuration file {}", path.display()))?;
        Ok(cli)
    }

    fn merge(&mut self, file: FileConfig, matches: &clap::ArgMatches) -> anyhow::Result<()> {
        // Flags and their environment variables win over the file.
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        let key = |name: &str, error: String| anyhow::anyhow!("key `{name}`: {error}");
        if let Some(ports) = file.ports.filter(|_| !given("port")) {
            self.port = ports;
        }
        if let Some(cap) = file.payload_cap.filter(|_| !given("payload_cap")) {
            if !(12..=MAX_PAYLOAD as u32).contains(&cap) {
                return Err(key(
                    "payload_cap",
                    format!("{cap} is not in 12..={MAX_PAYLOAD}"),
                ));
            }
            self.payload_cap = cap;
        }
        if let Some(size) = file.ring_buffer_size.filter(|_| !given("ring_buffer_size")) {
            self.ring_buffer_size = size;
        }
        if let Some(db) = file.db.filter(|_| !given("db")) {
            self.db = db;
        }
        if let Some(retain) = file.retain.filter(|_| !given("retain")) {
            self.retain = parse_retain(&retain).map_err(|e| key("retain", e))?;
        }
        if let Some(size) = file.max_db_size.filter(|_| !given("max_db_size")) {
            self.max_db_size = parse_size(&size).map_err(|e| key("max_db_size", e))?;
        }
        if let Some(batch) = file.batch_size.filter(|_| !given("batch_size")) {
            if !(1..=1_000_000).contains(&batch) {
                return Err(key("batch_size", format!("{batch} is not in 1..=1000000")));
            }
            self.batch_size = batch as u32;
        }
        if let Some(window) = file.batch_window.filter(|_| !given("batch_window")) {
            self.batch_window =
                store::parse_duration(&window).map_err(|e| key("batch_window", e))?;
        }
        if let Some(placement) = file.store_thread.filter(|_| !given("store_thread")) {
            self.store_thread = placement;
        }
        if let Some(nice) = file.nice.filter(|_| !given("nice")) {
            if !(-20..=19).contains(&nice) {
                return Err(key("nice", format!("{nice} is not in -20..=19")));
            }
            self.nice = nice;
        }
        if let Some(log) = file.log.filter(|_| !given("log")) {
            self.log = log;
        }
        self.validate().map_err(|error| {
            anyhow::anyhow!("{error:#} (from the command line or the configuration file)")
        })
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !self.ring_buffer_size.is_power_of_two() || self.ring_buffer_size < 4096 {
            bail!(
                "ring_buffer_size {} must be a power of two of at least 4096",
                self.ring_buffer_size
            );
        }
        if self.port.is_empty() || self.port.contains(&0) {
            bail!("ports: one or more ports between 1 and 65535");
        }
        Ok(())
    }

    /// `generate man|completions SHELL`.
    pub fn generate(what: &Generate) -> anyhow::Result<()> {
        let mut command = Self::command();
        let mut out = std::io::stdout().lock();
        match what {
            Generate::Man => clap_mangen::Man::new(command).render(&mut out)?,
            Generate::Completions { shell } => {
                clap_complete::generate(*shell, &mut command, "dnsq-recorder", &mut out);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(args: &[&str], file: &str) -> anyhow::Result<Cli> {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("dnsq-recorder").chain(args.iter().copied()))?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        let file: FileConfig = toml::from_str(file)?;
        cli.merge(file, &matches)?;
        Ok(cli)
    }

    #[test]
    fn nice_from_the_flag_or_the_file() {
        assert_eq!(merged(&[], "").unwrap().nice, privileges::DEFAULT_NICE);
        assert_eq!(merged(&[], "nice = 0\n").unwrap().nice, 0);
        assert_eq!(merged(&["--nice", "-10"], "nice = 0\n").unwrap().nice, -10);
        let error = merged(&[], "nice = -21\n").unwrap_err();
        assert!(format!("{error:#}").contains("nice"), "{error:#}");
        assert!(merged(&["--nice", "20"], "").is_err());
    }

    #[test]
    fn the_file_fills_defaults_and_flags_win() {
        let cli = merged(
            &["--port", "5353"],
            "ports = [53]\nretain = \"7d\"\ndb = \"/x.db\"\n",
        )
        .unwrap();
        assert_eq!(cli.port, [5353]);
        assert_eq!(cli.retain, Retain(Some(Duration::from_secs(7 * 86_400))));
        assert_eq!(cli.db, PathBuf::from("/x.db"));
    }

    #[test]
    fn store_thread_from_the_flag_or_the_file() {
        assert_eq!(
            merged(&[], "").unwrap().store_thread,
            store::Placement::Auto
        );
        let cli = merged(&[], "store_thread = \"yes\"\n").unwrap();
        assert_eq!(cli.store_thread, store::Placement::Yes);
        let cli = merged(&["--store-thread", "no"], "store_thread = \"yes\"\n").unwrap();
        assert_eq!(cli.store_thread, store::Placement::No);
        let error = merged(&[], "store_thread = \"maybe\"\n").unwrap_err();
        assert!(format!("{error:#}").contains("store_thread"), "{error:#}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let error = merged(&[], "retain = \"soon\"\n").unwrap_err();
        assert!(format!("{error:#}").contains("retain"), "{error:#}");
        let error = merged(&[], "ring_buffer_size = 1000\n").unwrap_err();
        assert!(
            format!("{error:#}").contains("ring_buffer_size"),
            "{error:#}"
        );
    }
}
