//! Exhibit: continuous, signed, hash-chained evidence collection for SOC 2
//! Type II audits.
//!
//! Data flows one way: a [`collect`] kind returns a JSON payload; the
//! [`runner`] adds retries and timeouts; the [`writer`] canonicalises and
//! hashes it ([`evidence::canonical`]), wraps it in a signed in-toto record
//! ([`evidence::record`], [`evidence::dsse`]), chains it, and puts it in a
//! [`store`]; every run ends with a checkpoint ([`evidence::checkpoint`]).
//! The [`daemon`] schedules runs; [`verify`] checks everything back; the
//! commands that show evidence read it through [`read`]. [`agent`] is where
//! the pieces are put together, once, for the commands that collect; [`cli`]
//! and its commands only read arguments and print.

pub mod admin;
pub mod agent;
pub mod assess;
#[cfg(feature = "aws")]
pub mod aws_http;
pub mod browse;
pub mod cli;
pub mod clock;
pub mod collect;
mod commands;
pub mod config;
pub mod control;
pub mod daemon;
pub mod diff;
pub mod evidence;
pub mod metrics;
pub mod oscal;
pub mod read;
pub mod report;
pub mod runner;
pub mod sample;
pub mod schedule;
pub mod shard;
pub mod store;
pub mod tsa;
pub mod verify;
pub mod writer;

/// This machine's host name, as recorded in source identities.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}
