//! `--print`: one JSON object per line on stdout.
//!
//! Command names, thread names and paths are bytes any local user chooses, and
//! stdout is often a terminal: the JSON escapes every control character, not only
//! the C0 ones serde_json escapes (see [`TerminalSafe`]).

use std::io::{self, BufWriter, Write};

use crate::{
    pipeline::Sink,
    record::{LookupRecord, MessageRecord},
};

pub struct JsonLines<W: Write> {
    out: BufWriter<W>,
    /// Set once the reader went away (`dnsq-recorder --print | head`).
    pub closed: bool,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::new(out),
            closed: false,
        }
    }

    /// Writes any serialisable line (the final stats line too).
    pub fn line(&mut self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut serializer = serde_json::Serializer::with_formatter(&mut self.out, TerminalSafe);
        let result = value
            .serialize(&mut serializer)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        self.check(result)
    }

    fn check(&mut self, result: io::Result<()>) -> anyhow::Result<()> {
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => Ok(other?),
        }
    }
}

impl<W: Write> Sink for JsonLines<W> {
    fn write(&mut self, record: MessageRecord) -> anyhow::Result<()> {
        self.line(&record)
    }

    fn write_lookup(&mut self, record: LookupRecord) -> anyhow::Result<()> {
        self.line(&record)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let result = self.out.flush();
        self.check(result)
    }
}

/// Characters never written raw: C0 controls (ESC among them), DEL, C1 controls,
/// the line and paragraph separators and the bidirectional overrides and
/// isolates that reorder what a terminal shows ("Trojan Source"). `dnsq` escapes
/// the same set in its tables.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// serde_json's compact output with every [unsafe](is_unsafe) character written as
/// `\uNNNN` (serde_json itself escapes only C0): the same JSON value, safe on a
/// terminal. Used by `--print` and by `dnsq --json`.
pub struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Every character to escape here is DEL or above.
        if !fragment.bytes().any(|b| b >= 0x7f) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (index, c) in fragment.char_indices() {
            if is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..index])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = index + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_value_kept() {
        let mut json = JsonLines::new(Vec::new());
        let text = "\x1b[31m\u{7f}\u{9b}evil\u{202e}é";
        json.line(&text).unwrap();
        let out = json.out.into_inner().unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line, "\"\\u001b[31m\\u007f\\u009bevil\\u202eé\"\n");
        let back: String = serde_json::from_str(&line).unwrap();
        assert_eq!(back, text);
    }
}
