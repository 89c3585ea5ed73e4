//! dnsq-recorder: sees every DNS message on the host through eBPF, ties it to the
//! process behind its socket, decodes it and pairs answers with queries.
//!
//! Data flows one way: [`loader`] (kernel programs) → [`event`] (raw ring-buffer
//! records) → [`tcp`] (stream reassembly) → [`dns`] (decoding) → [`pairing`] →
//! [`attribution`] (who) → a sink (`--print` JSON, or the store).

pub mod attribution;
pub mod btf;
pub mod checks;
pub mod config;
pub mod dns;
pub mod event;
pub mod identities;
pub mod libcs;
pub mod loader;
pub mod notify;
pub mod output;
pub mod pairing;
pub mod pipeline;
pub mod privileges;
pub mod procinfo;
pub mod record;
pub mod resolvers;
pub mod service;
pub mod store;
pub mod tcp;
#[cfg(test)]
mod test_rng;
