//! Where results go: tables for people (fitted to the terminal, coloured only on
//! a terminal and without `NO_COLOR`), one JSON object a line for programs.

use std::{
    borrow::Cow,
    io::{self, BufWriter, IsTerminal, StdoutLock, Write},
};

use comfy_table::{
    Attribute, Cell, Color, Column, ColumnConstraint, ContentArrangement, Table, Width, presets,
};

use crate::{escape, timearg::Clock};

/// Spaces after each column.
const PADDING: u16 = 2;
/// The narrowest a column that may wrap gets on a terminal (unless its widest
/// cell is narrower).
const WRAP_FLOOR: u16 = 16;

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

    /// A cell of rcode text (lines apart by `\n`, each escaped), red when it
    /// is an error.
    pub fn rcode_cell(&self, text: &str, error: bool) -> Cell {
        let lines: Vec<_> = text.split('\n').map(escape::safe).collect();
        let cell = Cell::new(lines.join("\n"));
        if self.color && error {
            cell.fg(Color::Red)
        } else {
            cell
        }
    }

    pub fn print_table(&mut self, table: &mut Table) -> io::Result<()> {
        arrange(table, self.terminal);
        for line in table.lines() {
            // The NOTHING preset pads every line on the right.
            writeln!(self.out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    /// Prints the table `layout(self, false)` makes or, when that one cannot fit
    /// the terminal ([`fits`]), the compact one `layout(self, true)` makes.
    pub fn print_fitting(&mut self, layout: impl Fn(&Output, bool) -> Table) -> io::Result<()> {
        let mut table = layout(self, false);
        if !fits(&table) {
            table = layout(self, true);
        }
        self.print_table(&mut table)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Sets the columns' spacing and, for a terminal, their narrowest widths.
fn arrange(table: &mut Table, terminal: bool) {
    if terminal {
        // comfy-table shrinks the columns free to wrap to fit the terminal, down
        // to a letter a line; none gets narrower than this floor. When the
        // floors do not fit, the lines are longer than the terminal and it wraps
        // them, which still reads.
        let widths = table.column_max_content_widths();
        for (column, content) in table.column_iter_mut().zip(widths) {
            if column.constraint().is_none() {
                let floor = narrowest(column, content) + PADDING;
                column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(floor)));
            }
        }
    }
    // Two spaces between columns, none before the first.
    for column in table.column_iter_mut() {
        column.set_padding((0, PADDING));
    }
}

/// Whether `table` fits the terminal without a column narrower than [`arrange`]
/// allows (always, when not on a terminal).
pub fn fits(table: &Table) -> bool {
    let Some(width) = table.width() else {
        return true;
    };
    let needed: u32 = table
        .column_iter()
        .zip(table.column_max_content_widths())
        .map(|(column, content)| u32::from(narrowest(column, content) + PADDING))
        .sum();
    needed <= u32::from(width)
}

/// The fewest characters of its content (`content`: its widest cell) a column
/// keeps on a terminal: all of it when kept whole, its floor otherwise.
fn narrowest(column: &Column, content: u16) -> u16 {
    match column.constraint() {
        Some(ColumnConstraint::ContentWidth) => content,
        Some(ColumnConstraint::LowerBoundary(Width::Fixed(floor))) => floor.saturating_sub(PADDING),
        _ => content.min(WRAP_FLOOR),
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

/// How much of a name column [`keep_up_to`] keeps (longer names wrap).
pub const NAME_CHARS: u16 = 40;

/// Keeps this column as wide as its widest cell, up to `most` characters, when
/// the table must shrink to the terminal (instead of [`WRAP_FLOOR`]): a name
/// wrapped before its trailing dot reads worse than an answer wrapped.
pub fn keep_up_to(table: &mut Table, index: usize, most: u16) {
    let widest = table.column_max_content_widths().get(index).copied();
    if let (Some(widest), Some(column)) = (widest, table.column_mut(index)) {
        let floor = widest.min(most) + PADDING;
        column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(floor)));
    }
}

/// The non-empty parts, one a line: several facts in one cell.
pub fn stacked(parts: &[&str]) -> String {
    parts
        .iter()
        .copied()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A table cell of untrusted text, escaped.
pub fn cell(text: &str) -> Cell {
    Cell::new(escape::safe(text))
}

/// The most characters of one answer's data a table cell or a `tail` line shows:
/// a TXT record can be thousands, and would push everything after it off the
/// screen. `--json` (and `export`) keep the data whole.
pub const ANSWER_CHARS: usize = 100;

/// `text` cut to at most `max` characters, the cut marked with `…` and how many
/// characters were left out.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((end, _)) => {
            let left_out = text[end..].chars().count();
            Cow::Owned(format!("{}…(+{left_out} chars)", &text[..end]))
        }
    }
}

/// `1 query`, `3 queries`: a count and what it counts.
pub fn counted(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// At 80 columns a table with more to show than fits (`who`'s) keeps its
    /// columns readable: a time whole, a name whole, a path in pieces of at
    /// least 16 characters.
    #[test]
    fn a_narrow_terminal_does_not_crush_columns() {
        let exe = "/root/.pyenv/versions/3.11.7/bin/python3.11";
        let name = "www.example.test.";
        let table = || {
            let mut table = Table::new();
            table
                .load_preset(TERMINAL_PRESET)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(80)
                .set_header(["NAME", "LAST SEEN", "COUNT", "PROCESS", "EXE", "SERVER"]);
            table.add_row([
                name,
                "2026-11-27 11:35:55",
                "1",
                "python3[18511]",
                exe,
                "198.18.1.1",
            ]);
            keep_whole(&mut table, &[1, 2, 3, 5]);
            keep_up_to(&mut table, 0, NAME_CHARS);
            table
        };
        let mut fitted = table();
        arrange(&mut fitted, true);
        let text = fitted.to_string();
        assert!(text.contains(name), "{text}");
        assert!(text.contains("2026-11-27 11:35:55"), "{text}");
        // The path's first line is its first 16 characters at least.
        assert!(text.contains(&exe[..16]), "{text}");
        let lines = text.lines().count();
        assert!(lines <= 5, "header, rule, at most 3 lines of path: {text}");

        // Without the floors comfy-table splits the name, and the path into
        // pieces of 10 (what this test is here to catch).
        let mut crushed = table();
        for column in crushed.column_iter_mut() {
            if matches!(
                column.constraint(),
                Some(ColumnConstraint::LowerBoundary(_))
            ) {
                column.remove_constraint();
            }
            column.set_padding((0, PADDING));
        }
        let text = crushed.to_string();
        assert!(!text.contains(&exe[..16]), "{text}");
    }

    /// `fits` counts what `arrange` keeps: whole columns whole, floors for the
    /// rest, and the spacing.
    #[test]
    fn fits_counts_whole_columns_floors_and_spacing() {
        let table = |width| {
            let mut table = Table::new();
            table
                .load_preset(TERMINAL_PRESET)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(width)
                .set_header(["TIME", "PATH"]);
            table.add_row(["2026-11-27 11:35:55", &"/x".repeat(40)]);
            keep_whole(&mut table, &[0]);
            table
        };
        // 19 + 2, and the path's floor 16 + 2.
        assert!(fits(&table(39)));
        assert!(!fits(&table(38)));
        // Not on a terminal (no width): always.
        let mut piped = Table::new();
        piped.add_row(["x".repeat(500)]);
        assert!(fits(&piped));
    }

    #[test]
    fn clip_cuts_long_text_on_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("exactly10!", 10), "exactly10!");
        assert_eq!(clip("0123456789abc", 10), "0123456789…(+3 chars)");
        // Multi-byte characters count as one each, and are never split.
        assert_eq!(clip("ééééé", 2), "éé…(+3 chars)");
    }
}
