//! `exhibit verify`: everything that can be checked from the stored bytes
//! alone — signatures, payload hashes, per-stream sequence and `prev` links,
//! timestamps, the checkpoint chain — plus schedule coverage.
//!
//! Nothing is trusted that can be recomputed: stream and sequence come from
//! the key *and* the signed predicate, and must agree.
//!
//! The store is read once (`load`) into a view; each check is then a
//! function over that view and the [`Options`] that adds the problems,
//! gaps and warnings it finds to one list: `keys`, `chains` (records and
//! per-stream chains), `payloads`, `checkpoints` (the chain, and every
//! record under a checkpoint), `timestamps`, `future` (nothing dated after
//! now), `head` (the head, and a head noted earlier), `versions` (deleted
//! or overwritten objects of an S3 store), and `coverage`, which counts
//! the schedule's slots, and (given the config) `configured`, which names
//! the enabled collectors with no record at all. [`bundle`] verifies a sample bundle; `render`
//! gives the verdict's human form.
//!
//! Integrity and completeness are separate: a problem is tampering or
//! damage (the verdict is `FAILED`); a gap is evidence that should be
//! there and is not yet, or never was (`INCOMPLETE`); a store or period
//! without a single record is `NO EVIDENCE`. Only `INTACT` passes.

mod assessments;
pub mod bundle;
mod chains;
mod checkpoints;
mod configured;
mod coverage;
mod future;
mod head;
mod keys;
mod load;
mod payloads;
mod render;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod timestamps;
mod versions;

pub use configured::{Configured, never_collected};
pub use head::{Head, head};

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::evidence::keys::KeyRing;
use crate::evidence::record::Status;
use crate::evidence::timestamp::TrustAnchors;
use crate::store::{Store, StoreError};

/// What to verify.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Start of the period (payload hashes and coverage); default: the
    /// beginning of each stream.
    pub from: Option<DateTime<Utc>>,
    /// End of the period; default: now (for a bundle, its newest
    /// checkpoint).
    pub to: Option<DateTime<Utc>>,
    /// A head noted earlier (`--known-head`): the SHA-256 of a checkpoint
    /// that must still be in the store, as the newest checkpoint of its
    /// agent or one of its ancestors.
    pub known_head: Option<String>,
    /// The time the verdict is given at; default: the system clock.
    pub now: Option<DateTime<Utc>>,
    /// Keys the auditor obtained out of band; `None` trusts `keys/`.
    pub keys: Option<KeyRing>,
    /// Set when verifying a sample bundle, which holds the records of a
    /// period but payloads only of the sampled records.
    pub bundle: Option<BundleScope>,
    /// How RFC 3161 tokens are judged.
    pub timestamps: TimestampOptions,
    /// The collectors the config enables, when verifying with one: each
    /// that has no record at all though its schedule was due is a gap.
    /// Empty without a config (an auditor's copy of the store).
    pub configured: Vec<Configured>,
}

/// How RFC 3161 tokens are judged (docs/verify-offline.md has the policy).
#[derive(Debug, Clone)]
pub struct TimestampOptions {
    /// The TSA certificates trusted, and where they came from; `None`
    /// trusts the store's `tsa/` and says so in the verdict.
    pub trust: Option<(TrustAnchors, String)>,
    /// How far a record's or checkpoint's time may lie after its token's.
    pub tolerance: std::time::Duration,
    /// How far it may lie before its token's before it counts as
    /// back-dated.
    pub max_delay: std::time::Duration,
    /// Whether a checkpoint without a token is a problem (else a warning,
    /// when timestamps are in use at all).
    pub require: bool,
}

impl Default for TimestampOptions {
    fn default() -> Self {
        TimestampOptions {
            trust: None,
            tolerance: crate::config::Timestamping::DEFAULT_TOLERANCE,
            max_delay: crate::config::Timestamping::DEFAULT_MAX_DELAY,
            require: false,
        }
    }
}

/// A token that checked out.
#[derive(Debug, Clone, Serialize)]
pub struct TokenSummary {
    /// The checkpoint it timestamps.
    pub checkpoint: String,
    /// The token's store key.
    pub token: String,
    /// The TSA's time.
    pub gen_time: DateTime<Utc>,
    /// The signing certificate's subject.
    pub tsa: String,
    /// The trusted certificate its chain ends at.
    pub trusted_by: String,
    /// The TSA policy (OID).
    pub policy: String,
    /// The token's serial number (hex).
    pub serial: String,
}

/// What the RFC 3161 tokens showed.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TimestampSummary {
    /// Where the trusted TSA certificates came from.
    pub trust_from: Option<String>,
    /// Their subjects.
    pub trusted: Vec<String>,
    /// Checkpoints with a valid token.
    pub timestamped: usize,
    /// Checkpoints without a token.
    pub missing: usize,
    /// Whether timestamps are in use in this store (any token, any trusted
    /// TSA certificate, or required).
    pub in_use: bool,
    /// Each valid token.
    pub tokens: Vec<TokenSummary>,
}

/// How far after the verifier's clock a record or checkpoint may be dated
/// before it is a problem: clock skew between the agent and the auditor.
pub const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

/// How long a run may take: a scheduled slot counts as due, and a record
/// not yet under a checkpoint as possibly a run in progress, for this long.
/// A period ending now therefore ends this long before now for the
/// schedule's slots; `--to` sets an exact end.
pub const RUN_GRACE: chrono::Duration = chrono::Duration::hours(1);

/// The verdict: only `INTACT` passes.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed and every scheduled slot of the period has a
    /// record.
    #[serde(rename = "INTACT")]
    Intact,
    /// Nothing was tampered with, but evidence is missing: slots without
    /// any record, or records not yet under a checkpoint.
    #[serde(rename = "INCOMPLETE")]
    Incomplete,
    /// At least one problem: the evidence was altered, removed or damaged.
    #[serde(rename = "FAILED")]
    Failed,
    /// No record in the store, or in the period: nothing to vouch for.
    #[serde(rename = "NO EVIDENCE")]
    NoEvidence,
}

impl Verdict {
    /// The verdict's name, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Intact => "INTACT",
            Verdict::Incomplete => "INCOMPLETE",
            Verdict::Failed => "FAILED",
            Verdict::NoEvidence => "NO EVIDENCE",
        }
    }
}

/// The period verified.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct Period {
    /// Its start; `None` from the beginning of the store.
    pub from: Option<DateTime<Utc>>,
    /// Its end.
    pub to: Option<DateTime<Utc>>,
}

/// What a sample bundle promises to contain.
#[derive(Debug, Default, Clone)]
pub struct BundleScope {
    /// The streams whose records of the period are all present.
    pub streams: HashSet<String>,
    /// The records whose payloads are present.
    pub sampled: HashSet<String>,
}

/// One thing wrong, and where.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The store key concerned.
    pub location: String,
    /// A stable code, e.g. `payload_mismatch`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at `location`.
    pub(crate) fn new(location: &str, code: &'static str, message: String) -> Problem {
        Problem {
            location: location.to_string(),
            code,
            message,
        }
    }
}

/// Expected slots of a stream's schedule against what was recorded.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct Coverage {
    /// The schedule (from the newest record).
    pub schedule: String,
    /// Start of the counted period.
    pub from: Option<DateTime<Utc>>,
    /// End of the counted period.
    pub to: Option<DateTime<Utc>>,
    /// Slots the schedule had in the period.
    pub expected: usize,
    /// Slots served by a successful record.
    pub ok: usize,
    /// Slots served by a partial record.
    pub partial: usize,
    /// Slots served by a failed record.
    pub failed: usize,
    /// Slots with no run; `missed_recorded` of them were recorded as missed.
    pub missed: usize,
    /// Missed slots the agent recorded as missed.
    pub missed_recorded: usize,
    /// The first few missed slots.
    pub missed_slots: Vec<DateTime<Utc>>,
    /// Missed slots with no record at all, not even a missed record: these
    /// make the verdict `INCOMPLETE`.
    pub unaccounted: usize,
    /// The first few of them.
    pub unaccounted_slots: Vec<DateTime<Utc>>,
    /// The stream that continues this one, when it ended: its slots are
    /// counted up to that stream's first record (`to`), and from there on
    /// in that stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continued_in: Option<String>,
}

/// Summary of one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamSummary {
    /// The stream id.
    pub stream: String,
    /// Records in the store.
    pub records: usize,
    /// Records by status.
    pub statuses: BTreeMap<String, usize>,
    /// Time of the first record.
    pub first: Option<DateTime<Utc>>,
    /// Time of the last record.
    pub last: Option<DateTime<Utc>>,
    /// Status of the last record.
    pub last_status: Option<Status>,
    /// Schedule coverage, when the stream has a schedule.
    pub coverage: Option<Coverage>,
}

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The verdict: only `INTACT` passes.
    pub verdict: Verdict,
    /// The store verified.
    pub store: String,
    /// The period verified.
    pub period: Period,
    /// The head: the SHA-256 of the newest checkpoint's stored bytes, to
    /// note and pass later as `--known-head`.
    pub head: Option<String>,
    /// The newest checkpoint's key.
    pub head_checkpoint: Option<String>,
    /// The newest checkpoint of each agent (more than one when sharded).
    pub heads: Vec<Head>,
    /// Where the trusted keys came from.
    pub keys_from: String,
    /// The key ids used.
    pub key_ids: Vec<String>,
    /// Records checked.
    pub records: usize,
    /// Records of the period.
    pub records_in_period: usize,
    /// Payload blobs hashed.
    pub payloads_checked: usize,
    /// Bytes of payload hashed.
    pub payload_bytes: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// RFC 3161 timestamps of the checkpoints.
    pub timestamps: TimestampSummary,
    /// Per stream.
    pub streams: Vec<StreamSummary>,
    /// Integrity failures: any makes the verdict `FAILED`.
    pub problems: Vec<Problem>,
    /// Completeness gaps: any makes the verdict at best `INCOMPLETE`.
    pub gaps: Vec<Problem>,
    /// Things worth knowing that are neither (an acknowledged interrupted
    /// run).
    pub warnings: Vec<Problem>,
    /// True when there are no problems and there is evidence to vouch for.
    pub intact: bool,
    /// True when there are no gaps and there is evidence.
    pub complete: bool,
}

impl Report {
    /// Sets `intact`, `complete` and the verdict from the problems, gaps
    /// and records of the period (after a caller added problems of its
    /// own, as the bundle verifier does).
    pub fn settle(&mut self) {
        let evidence = self.records_in_period > 0;
        // A store with nothing at all says so as a problem; it is no
        // evidence rather than tampering.
        let tampered = self.problems.iter().any(|p| p.code != "empty_store");
        self.intact = evidence && self.problems.is_empty();
        self.complete = evidence && self.gaps.is_empty();
        self.verdict = if tampered {
            Verdict::Failed
        } else if !evidence {
            Verdict::NoEvidence
        } else if !self.complete {
            Verdict::Incomplete
        } else {
            Verdict::Intact
        };
    }

    /// Whether the verdict passes (`INTACT`).
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Intact
    }
}

/// What the checks found: every check adds to it, in the order they run.
#[derive(Debug, Default)]
struct Findings {
    /// Integrity failures; sorted and deduplicated in the verdict.
    problems: Vec<Problem>,
    /// Completeness gaps, in the order found.
    gaps: Vec<Problem>,
    /// Things worth knowing that are not tampering, in the order found.
    warnings: Vec<Problem>,
}

impl Findings {
    fn problem(&mut self, location: &str, code: &'static str, message: String) {
        self.problems.push(Problem::new(location, code, message));
    }

    fn gap(&mut self, location: &str, code: &'static str, message: String) {
        self.gaps.push(Problem::new(location, code, message));
    }

    fn warning(&mut self, location: &str, code: &'static str, message: String) {
        self.warnings.push(Problem::new(location, code, message));
    }
}

/// Verifies a whole store.
pub async fn verify(store: Arc<dyn Store>, opts: &Options) -> Result<Report, StoreError> {
    let now = opts.now.unwrap_or_else(Utc::now);
    let view = load::load(store, opts).await?;
    let mut found = Findings::default();
    keys::check(&view, opts, &mut found);
    chains::check(&view, opts, &mut found);
    assessments::check(&view, opts, &mut found);
    let payloads = payloads::check(&view, opts, &mut found).await;
    checkpoints::check(&view, opts, &mut found);
    let timestamps = timestamps::check(&view, opts, &mut found).await?;
    // After the timestamps' warnings, where the verdict has always put them.
    checkpoints::unlisted(&view, opts, now, &mut found);
    future::check(&view, now, &mut found);
    let heads = head::heads(&view);
    let newest = head::newest(&heads).cloned();
    if let Some(known) = &opts.known_head {
        head::check_known(&view, known, &mut found);
    }
    versions::check(&view, &mut found).await?;
    let period = Period {
        from: opts.from,
        to: Some(match (opts.to, &opts.bundle) {
            (Some(to), _) => to,
            // A bundle holds its period, which ends at its newest
            // checkpoint.
            (None, Some(_)) => view.newest_checkpoint_at().unwrap_or(now),
            (None, None) => now,
        }),
    };
    // Slots of the last RUN_GRACE are not due yet when the period ends
    // now; an end given is exact, but no slot after now is due.
    let slots_until = match (opts.to, &opts.bundle) {
        (Some(to), None) => Some(to.min(now)),
        (None, None) => Some(now - RUN_GRACE),
        (_, Some(_)) => period.to,
    };
    let streams = coverage::summarise(&view, opts.from, slots_until).await;
    coverage::gaps(&streams, &mut found);
    if opts.bundle.is_none() {
        configured::gaps(&view, &opts.configured, opts.from, slots_until, &mut found);
    }
    let records_in_period = view
        .records()
        .filter(|l| {
            let p = l.record.predicate();
            opts.from.is_none_or(|f| p.finished_at >= f)
                && period.to.is_none_or(|t| p.started_at <= t)
        })
        .count();

    let Findings {
        mut problems,
        gaps,
        warnings,
    } = found;
    problems.sort();
    problems.dedup();
    let mut report = Report {
        verdict: Verdict::NoEvidence,
        store: view.store.describe(),
        period,
        head: newest.as_ref().map(|h| h.sha256.clone()),
        head_checkpoint: newest.as_ref().map(|h| h.checkpoint.clone()),
        heads,
        keys_from: view.keys_from.clone(),
        key_ids: view.keys.ids().map(str::to_string).collect(),
        records: view.records_read,
        records_in_period,
        payloads_checked: payloads.checked,
        payload_bytes: payloads.bytes,
        checkpoints: view.checkpoints.len(),
        timestamps,
        streams,
        problems,
        gaps,
        warnings,
        intact: false,
        complete: false,
    };
    report.settle();
    Ok(report)
}
