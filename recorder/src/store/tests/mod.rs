//! Tests of the store: each opens its own database in a temporary directory.

mod background;
mod chunks;
mod compact;
mod failures;
mod fixtures;
mod migrations;
mod retention;
mod size;
mod writer;
