//! `--print`: one JSON object per line on stdout.

use std::io::{self, BufWriter, Write};

use crate::{pipeline::Sink, record::MessageRecord};

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
        let result = serde_json::to_writer(&mut self.out, value)
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

    fn flush(&mut self) -> anyhow::Result<()> {
        let result = self.out.flush();
        self.check(result)
    }
}
