//! Overclaims: every way found to make Exhibit say more than its evidence
//! shows, each as an attack followed by the refusal expected of it, driving
//! the real binary. One module per part of the system under attack.

mod bundles;
mod collect;
pub(crate) mod keys;
mod verdicts;
mod writer;
