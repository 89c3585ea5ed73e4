//! The SQLite store: schema migrations, the batched writer, retention, and the
//! read side that `dnsq` uses.

pub mod schema;
