//! `exhibit verify`: everything that can be checked from the stored bytes
//! alone — signatures, payload hashes, per-stream sequence and `prev` links,
//! timestamps, the checkpoint chain — plus schedule coverage.
//!
//! Nothing is trusted that can be recomputed: stream and sequence come from
//! the key *and* the signed predicate, and must agree.
//!
//! The store is read once (`load`) into a view; each check is then a
//! function over that view and the [`Options`] that adds the problems and
//! warnings it finds to one list: `keys`, `chains` (records and per-stream
//! chains), `assessments` (the records control results judged exist),
//! `payloads`, `checkpoints`, `timestamps`, and `coverage`, which only
//! summarises. [`bundle`] verifies a sample bundle; `render` gives the
//! verdict's human form.

mod assessments;
pub mod bundle;
mod chains;
mod checkpoints;
mod coverage;
mod keys;
mod load;
mod payloads;
mod render;
#[cfg(test)]
mod testing;
mod timestamps;

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
    /// End of the period; default: the newest checkpoint.
    pub to: Option<DateTime<Utc>>,
    /// Keys the auditor obtained out of band; `None` trusts `keys/`.
    pub keys: Option<KeyRing>,
    /// Set when verifying a sample bundle, which holds the records of a
    /// period but payloads only of the sampled records.
    pub bundle: Option<BundleScope>,
    /// How RFC 3161 tokens are judged.
    pub timestamps: TimestampOptions,
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
    /// The store verified.
    pub store: String,
    /// Where the trusted keys came from.
    pub keys_from: String,
    /// The key ids used.
    pub key_ids: Vec<String>,
    /// Records checked.
    pub records: usize,
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
    /// Integrity failures: any makes the verdict fail.
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not tampering (an interrupted run).
    pub warnings: Vec<Problem>,
    /// True when there are no problems.
    pub intact: bool,
}

/// What the checks found: every check adds to it, in the order they run.
#[derive(Debug, Default)]
struct Findings {
    /// Integrity failures; sorted and deduplicated in the verdict.
    problems: Vec<Problem>,
    /// Things worth knowing that are not tampering, in the order found.
    warnings: Vec<Problem>,
}

impl Findings {
    fn problem(&mut self, location: &str, code: &'static str, message: String) {
        self.problems.push(Problem {
            location: location.to_string(),
            code,
            message,
        });
    }

    fn warning(&mut self, location: &str, code: &'static str, message: String) {
        self.warnings.push(Problem {
            location: location.to_string(),
            code,
            message,
        });
    }
}

/// Verifies a whole store.
pub async fn verify(store: Arc<dyn Store>, opts: &Options) -> Result<Report, StoreError> {
    let view = load::load(store, opts).await?;
    let mut found = Findings::default();
    keys::check(&view, opts, &mut found);
    chains::check(&view, opts, &mut found);
    assessments::check(&view, opts, &mut found);
    let payloads = payloads::check(&view, opts, &mut found).await;
    checkpoints::check(&view, opts, &mut found);
    let timestamps = timestamps::check(&view, opts, &mut found).await?;
    // After the timestamps' warnings, where the verdict has always put them.
    checkpoints::not_checkpointed(&view, &mut found);
    let streams = coverage::summarise(&view, opts).await;

    let Findings {
        mut problems,
        warnings,
    } = found;
    problems.sort();
    problems.dedup();
    Ok(Report {
        store: view.store.describe(),
        keys_from: view.keys_from.clone(),
        key_ids: view.keys.ids().map(str::to_string).collect(),
        records: view.records_read,
        payloads_checked: payloads.checked,
        payload_bytes: payloads.bytes,
        checkpoints: view.checkpoints.len(),
        timestamps,
        streams,
        intact: problems.is_empty(),
        problems,
        warnings,
    })
}
