//! Where results go: tables for people (fitted to the terminal, coloured only on
//! a terminal and without `NO_COLOR`), one JSON object a line for programs.

use std::io::{self, BufWriter, IsTerminal, StdoutLock, Write};

use comfy_table::{Attribute, Cell, Color, ColumnConstraint, ContentArrangement, Table, presets};

use crate::{escape, timearg::Clock};

/// comfy-table's preset characters (see `comfy_table::presets`): only the line
/// under the header.
const TERMINAL_PRESET: &str = "     ─             ";

pub struct Output {
    pub json: bool,
    pub clock: Clock,
    color: bool,
    terminal: bool,
    out: BufWriter<StdoutLock<'static>>,
}

impl Output {
    pub fn new(json: bool, utc: bool) -> Self {
        let terminal = io::stdout().is_terminal();
        // https://no-color.org: set and not empty.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            json,
            clock: Clock::new(utc),
            color: terminal && !no_color,
            terminal,
            out: BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        }
    }

    /// Whether stdout is a terminal.
    pub fn terminal(&self) -> bool {
        self.terminal
    }

    pub fn writer(&mut self) -> &mut BufWriter<StdoutLock<'static>> {
        &mut self.out
    }

    /// One JSON object on its own line.
    pub fn json_line<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        escape::json_line(&mut self.out, value)
    }

    /// An empty table with this header (none if empty).
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        if self.terminal {
            // Columns apart by spacing, the header underlined: more room for
            // the data than boxes leave.
            table
                .load_preset(TERMINAL_PRESET)
                .set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            // Plain aligned columns when piped, like ps(1).
            table
                .load_preset(presets::NOTHING)
                .set_content_arrangement(ContentArrangement::Disabled);
        }
        if !header.is_empty() {
            table.set_header(header.iter().map(|h| {
                let cell = Cell::new(h);
                if self.color {
                    cell.add_attribute(Attribute::Bold)
                } else {
                    cell
                }
            }));
        }
        table
    }

    /// A cell of rcode text, red when it is an error.
    pub fn rcode_cell(&self, text: &str, error: bool) -> Cell {
        let cell = Cell::new(escape::safe(text));
        if self.color && error {
            cell.fg(Color::Red)
        } else {
            cell
        }
    }

    pub fn print_table(&mut self, table: &mut Table) -> io::Result<()> {
        // Two spaces between columns, none before the first.
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        for line in table.lines() {
            // The NOTHING preset pads every line on the right.
            writeln!(self.out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Keeps these columns (times, counts, short codes) on one line when the table
/// must shrink to the terminal: the long ones (names, paths, answers) wrap.
pub fn keep_whole(table: &mut Table, columns: &[usize]) {
    for &index in columns {
        if let Some(column) = table.column_mut(index) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
}

/// A table cell of untrusted text, escaped.
pub fn cell(text: &str) -> Cell {
    Cell::new(escape::safe(text))
}

/// `1.234 ms`-style latency text.
pub fn millis(ns: f64) -> String {
    let ms = ns / 1e6;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}
