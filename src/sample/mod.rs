//! `exhibit sample`: an auditor's reproducible random sample of records over
//! a period, exported as a bundle that proves its own completeness offline.
//!
//! The bundle's population is every record the period's signed checkpoints
//! list (`chain`), found by following the checkpoint chain from each head
//! (a chain's newest checkpoint when the sample is drawn) back to the last
//! checkpoint before the period. The draw (`draw`) ranks each record by the
//! SHA-256 of the seed and its key, so the same seed over the same store
//! always gives the same sample, and `verify.sh` redraws it with
//! `sha256sum` and `sort`.
//!
//! This module writes bundles; [`crate::verify::bundle`] reads and checks
//! them.

pub mod chain;
pub mod control;
pub mod draw;
mod files;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::evidence::checkpoint::CheckpointPredicate;
use crate::evidence::record::{RecordPredicate, Statement, peek};
use crate::evidence::{layout, sha256_hex};
use crate::read::Reader;
use crate::schedule::Schedule;
use crate::store::Store;
use chain::Walk;

pub use draw::{check_seed, draw, rank};
pub use files::ROOT;

/// The POSIX shell verifier shipped in every bundle.
pub const VERIFY_SH: &str = include_str!("verify.sh");

/// Default sample sizes by how often a control operates, following common
/// audit practice (the upper end of the usual ranges for the frequent ones).
pub const SIZES: &[(&str, &str, usize)] = &[
    ("several times a day", "more than 365 runs a year", 40),
    ("daily", "53 to 365 runs a year", 25),
    ("weekly", "13 to 52 runs a year", 10),
    ("monthly", "5 to 12 runs a year", 3),
    ("quarterly", "2 to 4 runs a year", 2),
    ("annual", "1 run a year", 1),
];

/// The control frequency of a schedule and its default sample size.
pub fn frequency(schedule: &Schedule) -> (&'static str, usize) {
    let start: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().expect("valid");
    let end: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("valid");
    let (_, per_year) = schedule.slots_between(start, end, 0);
    let i = match per_year {
        n if n > 365 => 0,
        53..=365 => 1,
        13..=52 => 2,
        5..=12 => 3,
        2..=4 => 4,
        _ => 5,
    };
    (SIZES[i].0, SIZES[i].2)
}

/// What to sample.
#[derive(Debug, Clone)]
pub struct Request {
    /// Streams (empty: every stream in the store).
    pub streams: Vec<String>,
    /// Start of the period.
    pub from: DateTime<Utc>,
    /// End of the period.
    pub to: DateTime<Utc>,
    /// Sample size per stream (default: by control frequency).
    pub size: Option<usize>,
    /// The seed, recorded in the bundle.
    pub seed: String,
}

/// The sample of one stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamSample {
    /// The stream.
    pub stream: String,
    /// Its schedule, when it has one.
    pub schedule: Option<String>,
    /// The control frequency the default size came from.
    pub frequency: Option<String>,
    /// Records of the stream in the period.
    pub population: usize,
    /// How many were drawn.
    pub size: usize,
    /// The drawn records' keys, in stream order.
    pub sampled: Vec<String>,
}

/// `sample.json` in a bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The seed.
    pub seed: String,
    /// Start of the period.
    pub from: DateTime<Utc>,
    /// End of the period.
    pub to: DateTime<Utc>,
    /// The store sampled.
    pub store: String,
    /// The store's head when the sample was drawn: the SHA-256 of its
    /// newest checkpoint.
    pub head: String,
    /// The head of each checkpoint chain (one per agent), newest last.
    pub heads: Vec<String>,
    /// Records of the period, in every stream.
    pub population: usize,
    /// Per sampled stream.
    pub streams: Vec<StreamSample>,
}

/// A checkpoint as read from the store, for the walk.
struct StoredCheckpoint {
    key: String,
    sha256: String,
    bytes: Vec<u8>,
    statement: Statement<CheckpointPredicate>,
}

/// Draws the sample and writes the bundle to `out` (a .tar.gz).
pub async fn bundle(store: Arc<dyn Store>, req: &Request, out: &Path) -> anyhow::Result<Manifest> {
    check_seed(&req.seed).map_err(anyhow::Error::msg)?;
    if req.from > req.to {
        bail!(
            "the period starts ({}) after it ends ({})",
            req.from,
            req.to
        );
    }
    let index = Reader::new(store.clone()).index().await?;
    for s in &req.streams {
        if !index.contains(s) {
            bail!(
                "no stream `{s}` in {}; `exhibit list` shows the streams",
                store.describe()
            );
        }
    }
    let stored = stored_checkpoints(store.as_ref()).await?;
    let links = links(&stored);
    let heads = chain::heads(&links);
    if heads.is_empty() {
        bail!(
            "{} holds no checkpoint: no record is under a signed checkpoint, so no sample could prove its completeness; `exhibit verify` says more",
            store.describe()
        );
    }
    let mut walked = Vec::new();
    for h in &heads {
        let w = chain::walk(h.key, &links, req.from, req.to);
        if let Some((key, why)) = &w.broken {
            bail!(
                "cannot sample: the checkpoint chain is broken at {key} ({why}); `exhibit verify` names what is wrong"
            );
        }
        walked.push(w);
    }
    let population = chain::population(
        walked
            .iter()
            .flat_map(|w| w.period.iter().map(String::as_str)),
        &links,
    );
    if population.is_empty() {
        bail!(
            "no checkpoint of {} finished between {} and {}: no record to sample in the period",
            store.describe(),
            req.from.to_rfc3339(),
            req.to.to_rfc3339()
        );
    }
    let mut by_stream: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for key in population.keys() {
        let (stream, _) = layout::stream_record(key).expect("population keys are record keys");
        by_stream.entry(stream).or_default().push(key);
    }
    let wanted: Vec<String> = if req.streams.is_empty() {
        by_stream.keys().cloned().collect()
    } else {
        for s in &req.streams {
            if !by_stream.contains_key(s) {
                bail!(
                    "stream `{s}` has no record under a checkpoint of the period {} to {}: nothing to sample",
                    req.from.to_rfc3339(),
                    req.to.to_rfc3339()
                );
            }
        }
        req.streams.clone()
    };

    // Every record of the period, as its checkpoint signed it.
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut predicates: HashMap<&str, Statement<RecordPredicate>> = HashMap::new();
    for (key, sha) in &population {
        let bytes = store.get(key).await?.with_context(|| {
            format!("cannot sample: {key}, listed by a checkpoint of the period, is missing; `exhibit verify` says more")
        })?;
        if sha256_hex(&bytes) != *sha {
            bail!(
                "cannot sample: {key} differs from what its checkpoint signed; `exhibit verify` says more"
            );
        }
        let st: Statement<RecordPredicate> = peek(&bytes).with_context(|| {
            format!("cannot sample: {key} cannot be read; `exhibit verify` names what is wrong")
        })?;
        predicates.insert(key.as_str(), st);
        files.insert(key.clone(), bytes);
    }
    let mut samples = Vec::new();
    for stream in &wanted {
        let keys = &by_stream[stream];
        let schedule = keys
            .iter()
            .rev()
            .find_map(|k| predicates[k].predicate.schedule.clone());
        let freq = schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
            .map(|s| frequency(&s));
        let size = req.size.or(freq.map(|f| f.1)).unwrap_or(25);
        let mut sampled = Vec::new();
        for key in draw(&req.seed, keys, size) {
            let st = &predicates[key];
            let [subject] = st.subject.as_slice() else {
                bail!("cannot sample: {key} does not name one payload");
            };
            if !chain::is_sha256(&subject.digest.sha256) {
                bail!(
                    "cannot sample: the payload of {key} is named by `{}`, which is not a SHA-256",
                    subject.digest.sha256
                );
            }
            let blob = layout::blob(&subject.digest.sha256);
            let bytes = store
                .get(&blob)
                .await?
                .with_context(|| format!("{blob}, the payload of {key}, is missing"))?;
            if sha256_hex(&bytes) != subject.digest.sha256 {
                bail!("cannot sample: {blob}, the payload of {key}, differs from what it signs");
            }
            files.insert(blob, bytes);
            sampled.push(key.to_string());
        }
        samples.push(StreamSample {
            stream: stream.clone(),
            schedule,
            frequency: freq.map(|f| f.0.to_string()),
            population: keys.len(),
            size: sampled.len(),
            sampled,
        });
    }
    // The chain from each head back to the last checkpoint before the
    // period, each with its RFC 3161 token; the TSA certificates and the
    // public keys.
    copy_checkpoints(
        store.as_ref(),
        &stored,
        walked.iter().flat_map(Walk::checkpoints),
        &mut files,
    )
    .await?;
    copy_trust(store.as_ref(), &mut files).await?;
    let period = chain::Period {
        from: req.from,
        to: req.to,
        seed: req.seed.clone(),
        heads: heads.iter().map(|h| h.sha256.to_string()).collect(),
    };
    let manifest = Manifest {
        seed: req.seed.clone(),
        from: req.from,
        to: req.to,
        store: store.describe(),
        head: period.heads.last().cloned().unwrap_or_default(),
        heads: period.heads.clone(),
        population: population.len(),
        streams: samples,
    };
    files::write(out, files, &manifest, &period)?;
    Ok(manifest)
}

/// Every checkpoint of `store`, as stored.
async fn stored_checkpoints(store: &dyn Store) -> anyhow::Result<Vec<StoredCheckpoint>> {
    let mut stored = Vec::new();
    for key in store.list(layout::CHECKPOINTS).await? {
        if !layout::is_checkpoint(&key) {
            continue;
        }
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        let statement: Statement<CheckpointPredicate> = peek(&bytes).with_context(|| {
            format!("cannot sample: checkpoint {key} cannot be read; `exhibit verify` names what is wrong")
        })?;
        stored.push(StoredCheckpoint {
            sha256: sha256_hex(&bytes),
            key,
            bytes,
            statement,
        });
    }
    Ok(stored)
}

/// The checkpoints as the chain walk sees them, by key.
fn links(stored: &[StoredCheckpoint]) -> HashMap<&str, chain::Link<'_>> {
    stored
        .iter()
        .map(|c| {
            (
                c.key.as_str(),
                chain::Link {
                    key: &c.key,
                    sha256: &c.sha256,
                    predicate: &c.statement.predicate,
                    records: &c.statement.subject,
                },
            )
        })
        .collect()
}

/// Adds the checkpoints `keys` (each once) to `files`, each with its
/// RFC 3161 token when it has one.
async fn copy_checkpoints<'a>(
    store: &dyn Store,
    stored: &[StoredCheckpoint],
    keys: impl IntoIterator<Item = &'a str>,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> anyhow::Result<()> {
    let by_key: HashMap<&str, &StoredCheckpoint> =
        stored.iter().map(|c| (c.key.as_str(), c)).collect();
    for key in keys {
        let token = layout::token(key);
        if let Some(t) = store.get(&token).await? {
            files.insert(token, t);
        }
        files.insert(key.to_string(), by_key[key].bytes.clone());
    }
    Ok(())
}

/// Adds the TSA certificates the agent trusted (so that the tokens can be
/// checked offline; an auditor may pass their own copy instead) and the
/// public keys to `files`.
async fn copy_trust(
    store: &dyn Store,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> anyhow::Result<()> {
    for prefix in [layout::TSA, layout::KEYS] {
        for key in store.list(prefix).await? {
            if let Some(bytes) = store.get(&key).await? {
                files.insert(key, bytes);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_documented_table() {
        let f = |s: &str| frequency(&Schedule::parse(s).unwrap());
        assert_eq!(f("0 * * * *"), ("several times a day", 40));
        assert_eq!(f("@daily"), ("daily", 25));
        assert_eq!(f("0 6 * * 1-5"), ("daily", 25));
        assert_eq!(f("@weekly"), ("weekly", 10));
        assert_eq!(f("@monthly"), ("monthly", 3));
        assert_eq!(f("0 0 1 */3 *"), ("quarterly", 2));
        assert_eq!(f("@yearly"), ("annual", 1));
    }
}
