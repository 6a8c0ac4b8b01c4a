//! What the suites share: the workspace the real binary runs in, loopback
//! networking, and the peers — third-party servers standing in for the
//! services Exhibit talks to — each started one way ([`peer`]) and, where
//! tests can share one, once per run.

pub mod moto;
pub mod net;
pub mod octokit;
pub mod peer;
pub mod prism;
pub mod replay;
pub mod tsa;
mod workspace;

pub use workspace::*;
