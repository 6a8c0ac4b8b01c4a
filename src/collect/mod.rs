//! Collectors: the `Collector` trait, what a collection gets to work with,
//! the registry of kinds, and ([`instance`]) building configured collectors.
//! Each family of kinds lists its own (`aws::KINDS`, `github::KINDS`);
//! adding a kind means one module in its family and one line in that list
//! (or, for a kind of its own, one line in `FAMILIES`); the scheduler and
//! the store never change. A kind also says what the read side needs to know of
//! its payloads: the identities of their entities and their windowed fields.

pub mod about;
#[cfg(feature = "aws")]
pub mod aws;
pub mod command;
pub mod git;
#[cfg(feature = "github")]
pub mod github;
pub mod http;
pub mod instance;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Settings};

/// One source a collector instance reads from; each target is a stream,
/// named `<instance>/<key>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The stream id segment, e.g. an account id or org login.
    pub key: String,
    /// Source identity recorded in the predicate (account, org, region…).
    pub source: Value,
}

/// What the previous record of the same stream said, for incremental
/// collection (e.g. git commits since the last record).
#[derive(Debug, Clone)]
pub struct Previous {
    /// Its sequence number.
    pub seq: u64,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// The cursor its collector returned, if the collection succeeded.
    pub cursor: Option<Value>,
}

/// The result of a successful collection.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The evidence, as JSON. It must hold no secrets.
    pub payload: Value,
    /// Where the next incremental collection should start.
    pub cursor: Option<Value>,
    /// Parts that could not be collected; when any, the record's status is
    /// `partial` and the payload keeps what was collected.
    pub failures: Vec<String>,
}

impl Snapshot {
    /// A complete snapshot.
    pub fn new(payload: Value) -> Self {
        Snapshot {
            payload,
            cursor: None,
            failures: Vec::new(),
        }
    }

    /// A snapshot that lacks the parts named in `failures` (none: complete).
    pub fn with_failures(payload: Value, failures: Vec<String>) -> Self {
        Snapshot {
            payload,
            cursor: None,
            failures,
        }
    }
}

/// Why a collection failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CollectError {
    /// Worth retrying: a timeout, throttling, a 5xx.
    #[error("{message}")]
    Retryable {
        /// What failed.
        message: String,
        /// A server's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// Retrying would not help: bad credentials, a missing program.
    #[error("{0}")]
    Fatal(String),
    /// The agent is shutting down.
    #[error("cancelled: the agent is shutting down")]
    Cancelled,
}

impl CollectError {
    /// A retryable error.
    pub fn retryable(message: impl Into<String>) -> Self {
        CollectError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A fatal error.
    pub fn fatal(message: impl Into<String>) -> Self {
        CollectError::Fatal(message.into())
    }
}

/// An API error of a collector family that knows whether it ends the
/// whole collection (refused credentials, exhausted throttling) or only
/// loses the part it was reading.
#[cfg(any(feature = "aws", feature = "github"))]
pub(crate) trait PartError: std::fmt::Display + Into<CollectError> {
    /// Whether no further call of this collection can succeed either.
    fn ends_collection(&self) -> bool;
}

/// Keeps a part's value, or names the part in `failures` and carries on:
/// a part that cannot be read is recorded as missing, never dropped
/// silently; errors that end the collection are passed up.
#[cfg(any(feature = "aws", feature = "github"))]
pub(crate) fn part<T, E: PartError>(
    what: impl FnOnce() -> String,
    r: Result<T, E>,
    failures: &mut Vec<String>,
) -> Result<Option<T>, CollectError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.ends_collection() => Err(e.into()),
        Err(e) => {
            failures.push(format!("{}: {e}", what()));
            Ok(None)
        }
    }
}

/// What every collection is given.
#[derive(Clone, Debug)]
pub struct Context {
    /// A shared HTTP client (connection pooling across collectors).
    pub http: reqwest::Client,
    /// Cancelled when the agent shuts down or the attempt times out.
    pub cancel: CancellationToken,
    /// The agent's clock, the one its records are stamped by: a window
    /// such as "since the previous record" must be measured on the same
    /// clock as the record's own times, or evidence falls between two runs.
    pub clock: crate::clock::Clock,
    /// The span of this collection (collector, and stream once known).
    /// Events logged inside a collection carry it already; a collector that
    /// spawns tasks instruments them with it, so that their logs say which
    /// instance and stream they belong to.
    pub span: tracing::Span,
}

impl Context {
    /// A context on the system clock, under the current span.
    pub fn new(http: reqwest::Client, cancel: CancellationToken) -> Self {
        Context {
            http,
            cancel,
            clock: crate::clock::Clock::system(),
            span: tracing::Span::current(),
        }
    }

    /// The current time by the agent's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// A collector kind's implementation for one configured instance.
#[async_trait]
pub trait Collector: Send + Sync {
    /// The sources this instance covers. Most collectors have exactly one.
    async fn targets(&self, ctx: &Context) -> Result<Vec<Target>, CollectError>;

    /// Collects one target.
    async fn collect(
        &self,
        ctx: &Context,
        target: &Target,
        previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError>;

    /// SOC 2 criteria of this instance's evidence when they depend on more
    /// than the kind (a declarative definition names its own); `None` uses
    /// the kind's defaults. A `criteria` setting in the config wins over both.
    fn criteria(&self) -> Option<Vec<String>> {
        None
    }

    /// The stream key this instance's records go to when its targets
    /// cannot be resolved, if the config names it (an account id given in
    /// the settings); `None` names the stream after the instance.
    fn known_key(&self) -> Option<String> {
        None
    }

    /// The key an earlier version of the agent wrote this instance's
    /// records to, when it now writes them to `known_key`: the stream
    /// `<instance>/<known_key>`, when new, continues `<instance>/<former>`
    /// (its first record says so), and the former stream ends there.
    fn former_key(&self) -> Option<String> {
        None
    }
}

/// A collector kind: its name, defaults and builder.
pub struct KindSpec {
    /// The `kind = "…"` value.
    pub name: &'static str,
    /// Default SOC 2 criteria of its evidence.
    pub criteria: &'static [&'static str],
    /// Settings that hold secrets and may be given as `<name>_file`.
    pub secrets: &'static [&'static str],
    /// Builds an instance from its settings.
    pub build: fn(&Settings) -> Result<Box<dyn Collector>, ConfigError>,
    /// Top-level payload fields that describe the record's own window (the
    /// events since the previous record: commits, merged pull requests)
    /// rather than the state of the source. An entity of an older window
    /// that is absent from a newer one is outside it, not removed; the
    /// counts and bounds of a window are no change of the source.
    pub windowed: &'static [&'static str],
    /// The identities of its payloads' entities, most specific first, by
    /// which `diff` matches the elements of two arrays: each is the fields
    /// that together name an entity (`["arn"]`, or `["repository",
    /// "number"]` for a pull request, whose number is unique only in its
    /// repository). An array is matched by the first identity that every
    /// element of both sides has, with unique values. Empty: the payload is
    /// free-form (a command's output), and [`crate::diff::GENERIC`] applies.
    pub identities: &'static [&'static [&'static str]],
}

/// The kinds of this build, family by family, in the order `kinds` lists
/// them.
const FAMILIES: &[&[KindSpec]] = &[
    &[command::SPEC, git::SPEC],
    #[cfg(feature = "github")]
    github::KINDS,
    &[http::SPEC],
    #[cfg(feature = "aws")]
    aws::KINDS,
];

/// Every collector kind this build knows.
pub fn kinds() -> impl Iterator<Item = &'static KindSpec> + Clone {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// Looks a kind up by name.
pub fn kind(name: &str) -> Option<&'static KindSpec> {
    kinds().find(|k| k.name == name)
}

/// The identities `diff` matches the entities of a `kind` stream's payloads
/// by: the kind's own, or none (so the generic ones) for a kind this build
/// does not know.
pub fn identities(kind: &str) -> &'static [&'static [&'static str]] {
    self::kind(kind).map(|k| k.identities).unwrap_or_default()
}

/// The version recorded as the collector version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn every_kind_is_listed_once_with_well_formed_identities() {
        let names: Vec<&str> = super::kinds().map(|k| k.name).collect();
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for k in super::kinds() {
            let ids: HashSet<_> = k.identities.iter().collect();
            assert_eq!(ids.len(), k.identities.len(), "{}: twice", k.name);
            assert!(
                k.identities
                    .iter()
                    .all(|id| !id.is_empty() && id.iter().all(|f| !f.is_empty())),
                "{}: {:?}",
                k.name,
                k.identities
            );
        }
        assert_eq!(super::identities("git"), [&["sha"][..], &["name"]]);
        // Free-form payloads, and kinds this build does not know, are left
        // to the generic identities.
        assert!(super::identities("command").is_empty());
        assert!(super::identities("no-such-kind").is_empty());
    }
}
