//! `exhibit verify`: everything that can be checked from the stored bytes
//! alone — signatures, payload hashes, per-stream sequence and `prev` links,
//! timestamps, the checkpoint chain — plus schedule coverage.
//!
//! Nothing is trusted that can be recomputed: stream and sequence come from
//! the key *and* the signed predicate, and must agree.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::evidence::checkpoint::{Checkpoint, open_checkpoint};
use crate::evidence::keys::{KeyRing, PublicKey};
use crate::evidence::record::{Record, Status, open_record};
use crate::evidence::timestamp::{self, TrustAnchors};
use crate::evidence::{layout, sha256_hex};
use crate::schedule::Schedule;
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

/// A read that may find nothing.
type Fetched<T> = Result<Option<T>, StoreError>;

struct Loaded {
    key: String,
    seq_from_key: Option<u64>,
    record: Record,
}

/// Verifies a whole store.
pub async fn verify(store: Arc<dyn Store>, opts: &Options) -> Result<Report, StoreError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut problem = |location: &str, code: &'static str, message: String| {
        problems.push(Problem {
            location: location.to_string(),
            code,
            message,
        })
    };

    // Keys.
    let (keys, keys_from) = match &opts.keys {
        Some(k) => (k.clone(), "given with --key".to_string()),
        None => {
            let mut ring = KeyRing::default();
            for key in store.list(layout::KEYS).await? {
                let Some(bytes) = store.get(&key).await? else {
                    continue;
                };
                match PublicKey::from_pem(&String::from_utf8_lossy(&bytes)) {
                    Ok(k) if key == layout::public_key(k.id()) => ring.insert(k),
                    Ok(k) => problem(&key, "key_misnamed", format!("holds key {}", k.id())),
                    Err(e) => problem(&key, "key_malformed", e),
                }
            }
            (
                ring,
                "the store's keys/ (not independent: pass --key with your own copy)".to_string(),
            )
        }
    };
    let empty = keys.is_empty()
        && store.list(layout::RECORDS).await?.is_empty()
        && store.list(layout::CHECKPOINTS).await?.is_empty();
    if empty {
        // Never "intact" over nothing: a mistyped path must not pass.
        problem(
            &store.describe(),
            "empty_store",
            "no evidence here: no keys, records or checkpoints".into(),
        );
    } else if keys.is_empty() {
        problem(
            layout::KEYS,
            "no_keys",
            "no public key to verify signatures with".into(),
        );
    }

    // Records, by stream.
    let record_keys = store.list(layout::RECORDS).await?;
    // Each record is opened as it arrives and its bytes dropped, so that
    // memory follows the number of records, not their size.
    let opened: Vec<(String, Fetched<Result<Record, String>>)> =
        futures::stream::iter(record_keys.into_iter().filter(|k| k.ends_with(".json")))
            .map(|k| {
                let store = store.clone();
                let keys = &keys;
                async move {
                    let r = store
                        .get(&k)
                        .await
                        .map(|b| b.map(|b| open_record(&b, keys).map_err(|e| e.to_string())));
                    (k, r)
                }
            })
            .buffered(32)
            .collect()
            .await;
    let mut streams: BTreeMap<String, Vec<Loaded>> = BTreeMap::new();
    let mut record_count = 0;
    for (key, opened) in opened {
        let Some(opened) = opened? else { continue };
        record_count += 1;
        let (stream_from_key, seq_from_key) = split_record_key(&key);
        match opened {
            Ok(record) => {
                streams.entry(stream_from_key).or_default().push(Loaded {
                    key,
                    seq_from_key,
                    record,
                });
            }
            Err(e) => problem(&key, "bad_record", e),
        }
    }

    // Payload hashes, in parallel: this is where verify spends its time.
    let in_period =
        |t: DateTime<Utc>| opts.from.is_none_or(|f| t >= f) && opts.to.is_none_or(|to| t <= to);
    let mut blobs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for loaded in streams.values().flatten() {
        let wanted = match &opts.bundle {
            Some(b) => b.sampled.contains(&loaded.key),
            None => in_period(loaded.record.predicate().finished_at),
        };
        if wanted && let Some(sha) = loaded.record.payload_sha256() {
            blobs
                .entry(sha.to_string())
                .or_default()
                .push(loaded.key.clone());
        }
    }
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let hashed: Vec<(String, Fetched<(String, u64)>)> =
        futures::stream::iter(blobs.keys().cloned())
            .map(|sha| {
                let store = store.clone();
                async move {
                    let r = store.hash(&layout::blob(&sha)).await;
                    (sha, r)
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
    let mut payload_bytes = 0;
    for (sha, result) in &hashed {
        let referrers = blobs[sha].join(", ");
        match result {
            Ok(Some((actual, len))) => {
                payload_bytes += len;
                if actual != sha {
                    problem(
                        &layout::blob(sha),
                        "payload_mismatch",
                        format!(
                            "content hashes to {actual}, not {sha} (referenced by {referrers})"
                        ),
                    );
                }
            }
            Ok(None) => problem(
                &layout::blob(sha),
                "payload_missing",
                format!("payload blob is missing (referenced by {referrers})"),
            ),
            Err(e) => problem(&layout::blob(sha), "payload_unreadable", e.to_string()),
        }
    }

    // Chains.
    for (stream, records) in streams.iter_mut() {
        records.sort_by_key(|l| l.seq_from_key.unwrap_or(u64::MAX));
        let mut prev: Option<&Loaded> = None;
        for loaded in records.iter() {
            let p = loaded.record.predicate();
            let key = &loaded.key;
            if &p.stream != stream {
                problem(
                    key,
                    "stream_mismatch",
                    format!("record belongs to stream `{}`, not `{stream}`", p.stream),
                );
            }
            if Some(p.seq) != loaded.seq_from_key {
                problem(
                    key,
                    "sequence_mismatch",
                    format!("record says it is number {} of its stream", p.seq),
                );
            }
            if p.finished_at < p.started_at {
                problem(key, "time_inverted", "finished before it started".into());
            }
            match prev {
                // A bundle starts where its period starts.
                None if opts.bundle.is_some() => {}
                None => {
                    if p.seq != 1 || loaded.seq_from_key != Some(1) {
                        problem(
                            key,
                            "sequence_gap",
                            format!(
                                "stream starts at number {} instead of 1",
                                loaded.seq_from_key.unwrap_or(0)
                            ),
                        );
                    }
                    if p.prev.is_some() && p.seq == 1 {
                        problem(
                            key,
                            "broken_link",
                            "the first record names a predecessor".into(),
                        );
                    }
                }
                Some(before) => {
                    let expected = before.seq_from_key.map(|s| s + 1);
                    if loaded.seq_from_key != expected {
                        problem(
                            key,
                            "sequence_gap",
                            format!(
                                "follows number {} — record(s) in between are missing",
                                before.seq_from_key.unwrap_or(0)
                            ),
                        );
                    }
                    if p.prev.as_deref() != Some(before.record.sha256.as_str()) {
                        problem(
                            key,
                            "broken_link",
                            format!(
                                "prev is {} but the record before it ({}) hashes to {}",
                                p.prev.as_deref().unwrap_or("null"),
                                before.key,
                                before.record.sha256
                            ),
                        );
                    }
                    let bp = before.record.predicate();
                    if p.started_at < bp.started_at || p.started_at < bp.finished_at {
                        problem(
                            key,
                            "time_backwards",
                            format!(
                                "started {} — before the previous record ({})",
                                p.started_at.to_rfc3339(),
                                bp.finished_at.to_rfc3339()
                            ),
                        );
                    }
                }
            }
            prev = Some(loaded);
        }
    }

    // Checkpoints.
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    let checkpoint_listing = store.list(layout::CHECKPOINTS).await?;
    // Every checkpoint's hash, signed or not: a token is checked against
    // the bytes, so that an edited checkpoint is also an imprint mismatch.
    let mut checkpoint_hashes: BTreeMap<String, String> = BTreeMap::new();
    for key in checkpoint_listing.iter().cloned() {
        if !layout::is_checkpoint(&key) {
            continue;
        }
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        checkpoint_hashes.insert(key.clone(), sha256_hex(&bytes));
        match open_checkpoint(&key, &bytes, &keys) {
            Ok(c) => {
                if !key.ends_with(&format!("/{}.json", c.predicate().run_id))
                    || key != layout::checkpoint(c.predicate().finished_at, &c.predicate().run_id)
                {
                    problem(
                        &key,
                        "checkpoint_misplaced",
                        "key does not match the checkpoint's run id and date".into(),
                    );
                }
                checkpoints.push(c);
            }
            Err(e) => problem(&key, "bad_checkpoint", e.to_string()),
        }
    }
    let checkpoint_count = checkpoints.len();
    let by_key: HashMap<&str, &Checkpoint> =
        checkpoints.iter().map(|c| (c.key.as_str(), c)).collect();
    let first_checkpoint_at = checkpoints.iter().map(|c| c.predicate().finished_at).min();
    let mut referenced: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut roots: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in &checkpoints {
        match &c.predicate().prev {
            None => roots
                .entry(c.predicate().agent.as_str())
                .or_default()
                .push(&c.key),
            Some(prev) => {
                referenced
                    .entry(prev.key.as_str())
                    .or_default()
                    .push(&c.key);
                match by_key.get(prev.key.as_str()) {
                    // In a bundle, only the period's first checkpoint may
                    // point before it.
                    None if opts.bundle.is_some()
                        && Some(c.predicate().finished_at) == first_checkpoint_at => {}
                    None => problem(
                        &c.key,
                        "checkpoint_chain_broken",
                        format!("previous checkpoint {} is missing", prev.key),
                    ),
                    Some(p) if p.sha256 != prev.sha256 => problem(
                        &c.key,
                        "checkpoint_chain_broken",
                        format!(
                            "previous checkpoint {} hashes to {}, not {}",
                            prev.key, p.sha256, prev.sha256
                        ),
                    ),
                    Some(p) if p.predicate().agent != c.predicate().agent => problem(
                        &c.key,
                        "checkpoint_chain_broken",
                        format!(
                            "previous checkpoint {} belongs to agent `{}`",
                            prev.key,
                            p.predicate().agent
                        ),
                    ),
                    Some(p) if p.predicate().finished_at > c.predicate().finished_at => problem(
                        &c.key,
                        "time_backwards",
                        format!("finished before its previous checkpoint {}", prev.key),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
    for (prev, children) in &referenced {
        if children.len() > 1 {
            problem(
                prev,
                "checkpoint_fork",
                format!(
                    "followed by more than one checkpoint: {}",
                    children.join(", ")
                ),
            );
        }
    }
    for (agent, r) in &roots {
        if r.len() > 1 {
            problem(
                r[1],
                "checkpoint_fork",
                format!(
                    "agent `{agent}` has more than one first checkpoint: {}",
                    r.join(", ")
                ),
            );
        }
    }

    // Key rotation: a retired key signs nothing after its retirement.
    let mut retired: HashMap<&str, (DateTime<Utc>, &str)> = HashMap::new();
    for c in &checkpoints {
        if let Some(r) = &c.predicate().rotation {
            if c.key_id != r.retired_key {
                problem(
                    &c.key,
                    "bad_rotation",
                    format!(
                        "retires key {} but is signed by {}",
                        r.retired_key, c.key_id
                    ),
                );
            } else {
                retired.insert(&r.retired_key, (c.predicate().finished_at, &c.key));
            }
        }
    }
    for l in streams.values().flatten() {
        if let Some((at, by)) = retired.get(l.record.key_id.as_str())
            && l.record.predicate().started_at > *at
        {
            problem(
                &l.key,
                "retired_key",
                format!(
                    "signed by key {} after it was retired by {by}",
                    l.record.key_id
                ),
            );
        }
    }
    for c in &checkpoints {
        if let Some((at, by)) = retired.get(c.key_id.as_str())
            && c.key != *by
            && c.predicate().finished_at > *at
        {
            problem(
                &c.key,
                "retired_key",
                format!("signed by key {} after it was retired by {by}", c.key_id),
            );
        }
    }

    // Every record a checkpoint lists exists with that hash, and lies in
    // its checkpoint's time window.
    let mut record_index: HashMap<&str, &Loaded> = HashMap::new();
    for l in streams.values().flatten() {
        record_index.insert(l.key.as_str(), l);
    }
    let mut checkpointed: HashSet<&str> = HashSet::new();
    for c in &checkpoints {
        let cp = c.predicate();
        for s in c.records() {
            checkpointed.insert(s.name.as_str());
            match record_index.get(s.name.as_str()) {
                None if opts
                    .bundle
                    .as_ref()
                    .is_some_and(|b| outside_bundle(b, &streams, &s.name)) => {}
                None => problem(
                    &c.key,
                    "record_missing",
                    format!("lists {} which is missing or unreadable", s.name),
                ),
                Some(l) if l.record.sha256 != s.digest.sha256 => problem(
                    &s.name,
                    "record_mismatch",
                    format!(
                        "hashes to {}, but checkpoint {} recorded {}",
                        l.record.sha256, c.key, s.digest.sha256
                    ),
                ),
                Some(l) => {
                    let p = l.record.predicate();
                    if p.run_id != cp.run_id {
                        problem(
                            &s.name,
                            "run_mismatch",
                            format!(
                                "names run {}, listed by checkpoint of run {}",
                                p.run_id, cp.run_id
                            ),
                        );
                    }
                    if p.started_at < cp.started_at || p.finished_at > cp.finished_at {
                        problem(
                            &s.name,
                            "outside_checkpoint",
                            format!(
                                "times {}–{} fall outside its run {}–{} (checkpoint {})",
                                p.started_at.to_rfc3339(),
                                p.finished_at.to_rfc3339(),
                                cp.started_at.to_rfc3339(),
                                cp.finished_at.to_rfc3339(),
                                c.key
                            ),
                        );
                    }
                }
            }
        }
    }
    let timestamps = check_timestamps(
        store.as_ref(),
        opts,
        &checkpoint_listing,
        &checkpoint_hashes,
        &checkpoints,
        &record_index,
        &mut problem,
        &mut warnings,
    )
    .await?;
    for l in streams.values().flatten() {
        if !checkpointed.contains(l.key.as_str()) {
            warnings.push(Problem {
                location: l.key.clone(),
                code: "not_checkpointed",
                message: format!(
                    "not in any checkpoint: run {} was interrupted before it finished",
                    l.record.predicate().run_id
                ),
            });
        }
    }

    // Coverage.
    let as_of = opts
        .to
        .or_else(|| checkpoints.iter().map(|c| c.predicate().finished_at).max());
    let mut summaries = Vec::new();
    for (stream, records) in &streams {
        let mut statuses = BTreeMap::new();
        for l in records {
            *statuses
                .entry(l.record.predicate().status.as_str().to_string())
                .or_insert(0) += 1;
        }
        let last = records.last().map(|l| l.record.predicate());
        let coverage = coverage(store.as_ref(), records, opts.from, as_of).await;
        summaries.push(StreamSummary {
            stream: stream.clone(),
            records: records.len(),
            statuses,
            first: records.first().map(|l| l.record.predicate().started_at),
            last: last.map(|p| p.finished_at),
            last_status: last.map(|p| p.status),
            coverage,
        });
    }

    problems.sort();
    problems.dedup();
    Ok(Report {
        store: store.describe(),
        keys_from,
        key_ids: keys.ids().map(str::to_string).collect(),
        records: record_count,
        payloads_checked: hashed.len(),
        payload_bytes,
        checkpoints: checkpoint_count,
        timestamps,
        streams: summaries,
        intact: problems.is_empty(),
        problems,
        warnings,
    })
}

/// Checks each checkpoint's RFC 3161 token, and the record times it
/// vouches for.
///
/// A token proves the checkpoint's bytes existed at its `genTime` (G).
/// Everything the checkpoint lists must then have finished by G (within
/// `tolerance`, for clock skew), else `time_after_timestamp`. And the agent
/// asks for the token right after writing the checkpoint, so nothing it
/// lists should claim to have finished long before G: a record (or the
/// checkpoint itself) that claims a time more than `max_delay` before G is
/// `backdated` — its time is not corroborated by the TSA, whether it was
/// forged with an old time or its token was fetched that late.
#[allow(clippy::too_many_arguments)]
async fn check_timestamps(
    store: &dyn Store,
    opts: &Options,
    listing: &[String],
    hashes: &BTreeMap<String, String>,
    checkpoints: &[Checkpoint],
    records: &HashMap<&str, &Loaded>,
    problem: &mut impl FnMut(&str, &'static str, String),
    warnings: &mut Vec<Problem>,
) -> Result<TimestampSummary, StoreError> {
    let t = &opts.timestamps;
    let (trust, trust_from) = match &t.trust {
        Some((trust, from)) => (trust.clone(), Some(from.clone())),
        None => {
            let mut trust = TrustAnchors::default();
            for key in store.list(layout::TSA).await? {
                let Some(bytes) = store.get(&key).await? else {
                    continue;
                };
                match TrustAnchors::from_pem(&bytes) {
                    Ok(certs) => {
                        let named = certs
                            .pems()
                            .iter()
                            .any(|(sha, _)| key == layout::tsa_cert(sha));
                        if !named {
                            problem(
                                &key,
                                "tsa_cert_misnamed",
                                "is not named by the SHA-256 of the certificate it holds".into(),
                            );
                        }
                        trust.extend(certs);
                    }
                    Err(e) => problem(&key, "tsa_cert_malformed", e),
                }
            }
            let from = (!trust.is_empty()).then(|| {
                "the store's tsa/ (not independent: pass --tsa-cert with the TSA's CA certificate)"
                    .to_string()
            });
            (trust, from)
        }
    };
    let present: HashSet<&str> = listing.iter().map(String::as_str).collect();
    let tokens: Vec<&String> = listing.iter().filter(|k| layout::is_token(k)).collect();
    let mut summary = TimestampSummary {
        trusted: trust.subjects(),
        in_use: !tokens.is_empty() || !trust.is_empty() || t.require,
        trust_from,
        ..Default::default()
    };
    for token in &tokens {
        let owner = layout::checkpoint_of_token(token).unwrap_or_default();
        if !present.contains(owner.as_str()) {
            problem(
                token,
                "timestamp_orphan",
                format!(
                    "a token for {owner}, which is not in the store: the checkpoint was removed"
                ),
            );
        }
    }
    let opened: HashMap<&str, &Checkpoint> =
        checkpoints.iter().map(|c| (c.key.as_str(), c)).collect();
    let tolerance = chrono::Duration::from_std(t.tolerance).unwrap_or_default();
    let max_delay = chrono::Duration::from_std(t.max_delay).unwrap_or_default();
    let span = |d: chrono::Duration| {
        humantime::format_duration(std::time::Duration::from_secs(
            d.num_seconds().unsigned_abs(),
        ))
        .to_string()
    };
    for (key, sha) in hashes {
        let token_key = layout::token(key);
        if !present.contains(token_key.as_str()) {
            summary.missing += 1;
            let message = format!(
                "has no RFC 3161 token ({token_key}): the TSA could not be reached when it was written and no token was fetched since"
            );
            if t.require {
                problem(key, "timestamp_missing", message);
            } else if summary.in_use {
                warnings.push(Problem {
                    location: key.clone(),
                    code: "timestamp_missing",
                    message,
                });
            }
            continue;
        }
        let Some(bytes) = store.get(&token_key).await? else {
            continue;
        };
        let digest = hex::decode(sha).expect("our own hex");
        let v = match timestamp::verify(&bytes, &digest, &trust) {
            Ok(v) => v,
            Err(e) => {
                problem(&token_key, e.code(), format!("token of {key}: {e}"));
                continue;
            }
        };
        summary.timestamped += 1;
        let g = v.gen_time;
        if let Some(c) = opened.get(key.as_str()) {
            let mut times: Vec<(&str, DateTime<Utc>)> =
                vec![(c.key.as_str(), c.predicate().finished_at)];
            for s in c.records() {
                if let Some(l) = records.get(s.name.as_str()) {
                    times.push((l.key.as_str(), l.record.predicate().finished_at));
                }
            }
            for (what, at) in times {
                if at > g + tolerance {
                    problem(
                        what,
                        "time_after_timestamp",
                        format!(
                            "claims it finished at {}, {} after the RFC 3161 time of {key} ({}), more than the tolerance of {}: the agent's clock ran ahead",
                            at.to_rfc3339(),
                            span(at - g),
                            g.to_rfc3339(),
                            span(tolerance)
                        ),
                    );
                } else if at < g - max_delay {
                    problem(
                        what,
                        "backdated",
                        format!(
                            "claims it finished at {}, but the first proof that it existed is the RFC 3161 token of {key} at {}, {} later (more than the max delay of {}): back-dated, or timestamped that late",
                            at.to_rfc3339(),
                            g.to_rfc3339(),
                            span(g - at),
                            span(max_delay)
                        ),
                    );
                }
            }
        }
        summary.tokens.push(TokenSummary {
            checkpoint: key.clone(),
            token: token_key,
            gen_time: g,
            tsa: v.signer,
            trusted_by: v.anchor,
            policy: v.policy,
            serial: v.serial,
        });
    }
    Ok(summary)
}

async fn coverage(
    store: &dyn Store,
    records: &[Loaded],
    from: Option<DateTime<Utc>>,
    as_of: Option<DateTime<Utc>>,
) -> Option<Coverage> {
    let newest = records
        .iter()
        .rev()
        .find_map(|l| l.record.predicate().schedule.clone())?;
    let schedule = Schedule::parse(&newest).ok()?;
    let first = records.first()?.record.predicate();
    let start = from.unwrap_or(first.scheduled_for.unwrap_or(first.started_at));
    let end = as_of?;
    if end < start {
        return None;
    }
    // Slots in [start, end]: slots_between is (from, to], so step back 1 s.
    let (slots, expected) =
        schedule.slots_between(start - chrono::Duration::seconds(1), end, usize::MAX);
    let mut served: HashMap<DateTime<Utc>, Status> = HashMap::new();
    let mut recorded_missed: HashSet<DateTime<Utc>> = HashSet::new();
    for l in records {
        let p = l.record.predicate();
        if p.status == Status::Missed {
            if let Some(sha) = l.record.payload_sha256()
                && let Ok(Some(bytes)) = store.get(&layout::blob(sha)).await
                && let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                for s in doc["slots"].as_array().into_iter().flatten() {
                    if let Some(t) = s.as_str().and_then(|t| t.parse().ok()) {
                        recorded_missed.insert(t);
                    }
                }
            }
        } else if let Some(slot) = p.scheduled_for {
            // A later attempt for the same slot replaces an earlier one.
            served.insert(slot, p.status);
        }
    }
    let mut c = Coverage {
        schedule: newest,
        from: Some(start),
        to: Some(end),
        expected,
        ..Default::default()
    };
    for slot in slots {
        match served.get(&slot) {
            Some(Status::Ok) => c.ok += 1,
            Some(Status::Partial) => c.partial += 1,
            Some(Status::Failed) => c.failed += 1,
            Some(Status::Missed) | None => {
                c.missed += 1;
                if recorded_missed.contains(&slot) {
                    c.missed_recorded += 1;
                }
                if c.missed_slots.len() < 20 {
                    c.missed_slots.push(slot);
                }
            }
        }
    }
    Some(c)
}

/// Whether a record a checkpoint lists lies outside what a bundle holds: a
/// stream not sampled, or a record before the period.
fn outside_bundle(b: &BundleScope, streams: &BTreeMap<String, Vec<Loaded>>, key: &str) -> bool {
    let (stream, seq) = split_record_key(key);
    if !b.streams.contains(&stream) {
        return true;
    }
    let first = streams
        .get(&stream)
        .and_then(|r| r.iter().filter_map(|l| l.seq_from_key).min());
    matches!((seq, first), (Some(n), Some(f)) if n < f)
}

/// A record's key → (stream, seq); the number is `None` when the file name
/// is not a well-formed record number.
fn split_record_key(key: &str) -> (String, Option<u64>) {
    match layout::stream_record(key) {
        Some((stream, seq)) => (stream, Some(seq)),
        None => (layout::stream_of(key).unwrap_or_default().to_string(), None),
    }
}

impl Report {
    /// The human form of the verdict.
    pub fn render(&self, show_coverage: bool) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "Store:       {}", self.store);
        let _ = writeln!(
            o,
            "Keys:        {} [{}]",
            self.keys_from,
            self.key_ids.join(", ")
        );
        let _ = writeln!(
            o,
            "Checked:     {} records in {} streams, {} payloads ({} bytes), {} checkpoints",
            self.records,
            self.streams.len(),
            self.payloads_checked,
            self.payload_bytes,
            self.checkpoints
        );
        let ts = &self.timestamps;
        if ts.in_use {
            let _ = writeln!(
                o,
                "Timestamps:  {} of {} checkpoints timestamped (RFC 3161), {} without a token; TSA trust: {} [{}]",
                ts.timestamped,
                ts.timestamped + ts.missing,
                ts.missing,
                ts.trust_from.as_deref().unwrap_or("none"),
                ts.trusted.join("; ")
            );
        } else if self.checkpoints > 0 {
            let _ = writeln!(o, "Timestamps:  none (no RFC 3161 token in this store)");
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<40} {:>7}  {:<8} {:<25} COVERAGE ok/partial/failed/missed of expected",
            "STREAM", "RECORDS", "LAST", "LAST AT"
        );
        for s in &self.streams {
            let cov = s.coverage.as_ref().map_or("-".to_string(), |c| {
                format!(
                    "{}/{}/{}/{} of {}",
                    c.ok, c.partial, c.failed, c.missed, c.expected
                )
            });
            let _ = writeln!(
                o,
                "{:<40} {:>7}  {:<8} {:<25} {}",
                s.stream,
                s.records,
                s.last_status.map_or("-", |st| st.as_str()),
                s.last.map_or("-".into(), |t| t
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                cov
            );
        }
        if show_coverage {
            for s in &self.streams {
                if let Some(c) = &s.coverage
                    && c.missed > 0
                {
                    let _ = writeln!(
                        o,
                        "  {}: {} missed slot(s) ({} recorded as missed), first: {}",
                        s.stream,
                        c.missed,
                        c.missed_recorded,
                        c.missed_slots
                            .iter()
                            .take(5)
                            .map(|t| t.to_rfc3339())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(o, "\nWarnings ({}):", self.warnings.len());
            for w in &self.warnings {
                let _ = writeln!(o, "  {}: {}: {}", w.location, w.code, w.message);
            }
        }
        if !self.problems.is_empty() {
            let _ = writeln!(o, "\nProblems ({}):", self.problems.len());
            for p in &self.problems {
                let _ = writeln!(o, "  {}: {}: {}", p.location, p.code, p.message);
            }
        }
        let _ = writeln!(
            o,
            "\nVerdict:     {}",
            if self.intact {
                "INTACT — every signature, hash, link and checkpoint checks out".to_string()
            } else {
                format!("FAILED — {} problem(s)", self.problems.len())
            }
        );
        o
    }
}
