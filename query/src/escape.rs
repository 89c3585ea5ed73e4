//! Names, commands, paths and record data are bytes an attacker chose (a DNS
//! answer, a process's `comm`). Everything shown to a terminal goes through
//! [`safe`], so no control character or escape sequence ever reaches it raw; JSON
//! output goes through [`JsonFormatter`], which adds the characters JSON does not
//! escape by itself.

use std::{borrow::Cow, fmt::Write as _, io};

pub use dnsq_recorder::output::{TerminalSafe as JsonFormatter, is_unsafe};

/// `s` with every [unsafe](is_unsafe) character written as `\xNN` (below U+0080)
/// or `\u{NNNN}`.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Writes `value` as one line of JSON.
pub fn json_line<W: io::Write, T: serde::Serialize + ?Sized>(
    writer: &mut W,
    value: &T,
) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(&mut *writer, JsonFormatter);
    value.serialize(&mut serializer).map_err(io::Error::from)?;
    writer.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_escaped() {
        assert_eq!(safe("evil\x1b[31m.example."), "evil\\x1b[31m.example.");
        assert_eq!(safe("a\nb\tc\x7f"), "a\\x0ab\\x09c\\x7f");
        assert_eq!(safe("csi\u{9b}2J"), "csi\\u{9b}2J");
        assert_eq!(safe("rtl\u{202e}gpj.exe"), "rtl\\u{202e}gpj.exe");
        assert!(matches!(safe("www.example.com."), Cow::Borrowed(_)));
        assert_eq!(safe("caf\u{e9}"), "caf\u{e9}");
    }

    #[test]
    fn json_escapes_what_serde_json_leaves() {
        let mut out = Vec::new();
        json_line(&mut out, &"x\x1b[31m\u{9b}\u{7f}\u{202e}é").expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text, "\"x\\u001b[31m\\u009b\\u007f\\u202eé\"\n");
        let back: String = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, "x\x1b[31m\u{9b}\u{7f}\u{202e}é");
    }
}
