//! dnsq: ask the DNS history that dnsq-recorder keeps which process resolved
//! what. Opens the database read-only and answers from the hourly fact tables
//! (who, by-process, name, top) or the message log (tail, export, stats).
//!
//! Exit status: 0 found, 1 nothing found, 2 usage/configuration/output error,
//! 3 database error (see `dnsq --help`).

mod cli;
mod escape;
mod export;
mod facts;
mod lookups;
mod output;
mod owner;
mod stats;
mod tail;
mod timearg;
mod top;
mod who;

use std::{io, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use dnsq_recorder::store::read::{ReadError, Reader};

use crate::{
    cli::{Cli, Command, ExportFormat, Generate},
    facts::{NothingFound, Usage},
    output::Output,
    timearg::{Clock, Window},
};

const NOTHING_FOUND: u8 = 1;
const USAGE: u8 = 2;
const DATABASE: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// `dnsq generate man|completions SHELL`.
fn generate(what: &Generate) -> Result<()> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut out = io::stdout().lock();
    match what {
        Generate::Man => clap_mangen::Man::new(command).render(&mut out)?,
        Generate::Completions { shell } => {
            clap_complete::generate(*shell, &mut command, "dnsq", &mut out)
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Generate { what } = &cli.command {
        return generate(what);
    }
    let window = Window::resolve(cli.since.as_ref(), cli.until.as_ref(), &Clock::new(cli.utc))
        .map_err(Usage)?;
    let filter = owner::Filter::new(cli.unit.as_deref(), cli.container.as_deref())?;
    let reader = Reader::open(&cli.db)?;
    let mut owners = owner::Owners::default();
    // The processes --unit / --container select, once, from `processes`.
    let selection = match filter {
        None => None,
        Some(filter) => {
            let matching = filter.resolve(&reader, &mut owners)?;
            // `tail -f` waits for them to appear.
            let follow = matches!(cli.command, Command::Tail { follow: true, .. });
            if matching.is_empty() && !follow {
                return Err(NothingFound(format!(
                    "no process {} was ever seen",
                    filter.describe()
                ))
                .into());
            }
            Some(owner::Only { filter, matching })
        }
    };
    let only = selection.as_ref();
    let mut out = Output::new(cli.json, cli.utc);
    let result = match &cli.command {
        Command::Who {
            ip,
            resolvers,
            pids,
            limit,
        } => who::run(
            &reader,
            &mut out,
            &window,
            *ip,
            &who::Options {
                limit: limit.limit,
                resolvers: *resolvers,
                pids: *pids,
                only,
            },
        ),
        Command::ByProcess { process, limit } => lookups::run(
            &reader,
            &mut out,
            &window,
            &lookups::Subject::Process(process.clone()),
            limit.limit,
            only,
        ),
        Command::Name { pattern, limit } => lookups::run(
            &reader,
            &mut out,
            &window,
            &lookups::Subject::Name(pattern.clone()),
            limit.limit,
            only,
        ),
        Command::Top { what, limit } => top::run(&reader, &mut out, &window, *what, *limit, only),
        Command::Tail { follow, lines } => tail::run(
            &reader,
            &mut out,
            &window,
            &tail::Options {
                follow: *follow,
                lines: *lines,
                only,
            },
            &mut owners,
        ),
        Command::Stats => stats::run(&reader, &mut out, &window, only),
        Command::Export {
            format,
            calls,
            raw_csv,
            output,
        } => {
            let options = export::Options {
                format: format.unwrap_or(ExportFormat::Jsonl),
                calls: *calls,
                raw_csv: *raw_csv,
                output: output.as_deref(),
                only,
            };
            export::run(&reader, &mut out, &window, &options)
        }
        Command::Generate { .. } => unreachable!("handled before the database is opened"),
    };
    // What was printed before a "nothing found" still goes out.
    let flushed = out.flush();
    let fact_command = matches!(
        cli.command,
        Command::Who { .. }
            | Command::ByProcess { .. }
            | Command::Name { .. }
            | Command::Top { .. }
    );
    match result {
        // Say which hours the history holds: a stopped recorder, retention or
        // a window that misses them is why as often as the name never asked.
        Err(e) if fact_command && e.is::<NothingFound>() => {
            let span = facts::recorded_span(&reader, &out.clock)?;
            return Err(NothingFound(format!("{e}; {span}")).into());
        }
        result => result?,
    }
    Ok(flushed?)
}

fn report(e: &anyhow::Error) -> ExitCode {
    // `dnsq … | head`: the reader has what it wanted.
    if e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    let message = escape::safe(&format!("{e:#}")).into_owned();
    eprintln!("dnsq: {message}");
    if e.downcast_ref::<NothingFound>().is_some() {
        ExitCode::from(NOTHING_FOUND)
    } else if e
        .chain()
        .any(|cause| cause.is::<ReadError>() || cause.is::<rusqlite::Error>())
    {
        ExitCode::from(DATABASE)
    } else {
        ExitCode::from(USAGE)
    }
}
