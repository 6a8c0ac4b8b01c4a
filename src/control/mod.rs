//! Control assessment: controls as data (a TOML file and a Rego policy),
//! evaluated over the evidence already collected, with results that are
//! evidence themselves.
//!
//! This module owns the control model and its loader ([`definition`],
//! [`library`]), the evaluation of policies with `regorus` under one
//! documented contract ([`policy`], [`evaluate`]), exceptions
//! ([`exception`]), signed human reviews in the SSHSIG format ([`attest`]),
//! populations and the reproducible hash-rank sample ([`population`]), the
//! results as records of `control/<id>` ([`result`]), the state of a control
//! over a period ([`period`]) and the fixtures runner behind
//! `exhibit controls test` ([`fixtures`]). It reads nothing from a store and
//! writes nothing: the commands and the daemon pick the records, call these
//! functions, and hand the values they return to the writer.
//! `docs/controls.md` is the user's guide to all of it.

pub mod attest;
pub mod definition;
pub mod evaluate;
pub mod exception;
pub mod finding;
pub mod fixtures;
pub mod library;
pub mod period;
pub mod policy;
pub mod population;
pub mod result;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::evidence::record::ControlState as State;
pub use definition::{Control, ControlKind, InputSpec};
pub use evaluate::{Evaluation, InputRecord};
pub use exception::Exception;
pub use finding::{ExceptionNote, Finding};
pub use library::{Library, LoadedControl};

/// The prefix of the streams of control results: `control/<id>`.
pub const RESULT_STREAM_PREFIX: &str = "control/";
/// The prefix of the streams of exceptions: `exception/<control id>`.
pub const EXCEPTION_STREAM_PREFIX: &str = "exception/";
/// The prefix of the streams of signed reviews: `attest/<control id>`.
pub const ATTEST_STREAM_PREFIX: &str = "attest/";

/// The stream of a control's results.
pub fn result_stream(control: &str) -> String {
    format!("{RESULT_STREAM_PREFIX}{control}")
}

/// The stream of a control's exceptions.
pub fn exception_stream(control: &str) -> String {
    format!("{EXCEPTION_STREAM_PREFIX}{control}")
}

/// The stream of a control's signed reviews.
pub fn attest_stream(control: &str) -> String {
    format!("{ATTEST_STREAM_PREFIX}{control}")
}

/// How often a control operates. It sets the default freshness of inputs
/// and the default sample size.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Several times a day, or on every event (e.g. every merged change).
    Continuous,
    /// Once a day.
    Daily,
    /// Once a week.
    Weekly,
    /// Once a month.
    Monthly,
    /// Once a quarter.
    Quarterly,
    /// Once a year.
    Annual,
}

impl Frequency {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Continuous => "continuous",
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
            Frequency::Quarterly => "quarterly",
            Frequency::Annual => "annual",
        }
    }

    /// How old an input snapshot may be when the control is evaluated, by
    /// default: the period plus slack for a late or retried collection.
    pub fn default_freshness(self) -> Duration {
        let h = |n: u64| Duration::from_secs(n * 3600);
        match self {
            Frequency::Continuous => h(2),
            Frequency::Daily => h(36),
            Frequency::Weekly => h(10 * 24),
            Frequency::Monthly => h(35 * 24),
            Frequency::Quarterly => h(100 * 24),
            Frequency::Annual => h(400 * 24),
        }
    }

    /// The default sample size for a period of a year (issue 16, from
    /// common audit practice): annual 1, quarterly 2, monthly 2, weekly 5,
    /// daily 25, several a day 25.
    pub fn default_sample_size(self) -> usize {
        match self {
            Frequency::Annual => 1,
            Frequency::Quarterly | Frequency::Monthly => 2,
            Frequency::Weekly => 5,
            Frequency::Daily | Frequency::Continuous => 25,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_sizes_follow_the_frequency() {
        let sizes: Vec<usize> = [
            Frequency::Annual,
            Frequency::Quarterly,
            Frequency::Monthly,
            Frequency::Weekly,
            Frequency::Daily,
            Frequency::Continuous,
        ]
        .iter()
        .map(|f| f.default_sample_size())
        .collect();
        assert_eq!(sizes, [1, 2, 2, 5, 25, 25]);
    }

    #[test]
    fn freshness_grows_with_the_period() {
        let f: Vec<Duration> = [
            Frequency::Continuous,
            Frequency::Daily,
            Frequency::Weekly,
            Frequency::Monthly,
            Frequency::Quarterly,
            Frequency::Annual,
        ]
        .iter()
        .map(|f| f.default_freshness())
        .collect();
        assert!(f.windows(2).all(|w| w[0] < w[1]), "{f:?}");
        assert_eq!(Frequency::Daily.default_freshness().as_secs(), 36 * 3600);
    }

    #[test]
    fn result_streams_are_valid_stream_ids() {
        for s in [
            result_stream("aws-console-mfa"),
            exception_stream("aws-console-mfa"),
            attest_stream("access-review"),
        ] {
            crate::evidence::validate_stream_id(&s).unwrap();
        }
    }
}
