//! `exhibit sample`: an auditor's reproducible random sample of records over
//! a period, exported as a bundle that verifies itself offline.
//!
//! The sample is drawn per stream with ChaCha20 seeded from the SHA-256 of
//! the seed and the stream id, so the same seed over the same store always
//! gives the same sample, whatever machine or version draws it.
//!
//! This module writes bundles; [`crate::verify::bundle`] reads and checks
//! them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::evidence::checkpoint::CheckpointPredicate;
use crate::evidence::record::{Statement, peek};
use crate::evidence::{layout, sha256_hex};
use crate::read::{Reader, Record};
use crate::schedule::Schedule;
use crate::store::Store;

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
    /// Records in the period.
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
    /// Per stream.
    pub streams: Vec<StreamSample>,
}

/// Draws `n` of `population` indices, reproducibly for `seed` and `stream`.
pub fn draw(seed: &str, stream: &str, population: usize, n: usize) -> Vec<usize> {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update([0]);
    h.update(stream.as_bytes());
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(h.finalize().into());
    let mut picked = rand::seq::index::sample(&mut rng, population, n.min(population)).into_vec();
    picked.sort_unstable();
    picked
}

/// Draws the sample and writes the bundle to `out` (a .tar.gz).
pub async fn bundle(store: Arc<dyn Store>, req: &Request, out: &Path) -> anyhow::Result<Manifest> {
    let reader = Reader::new(store.clone());
    let index = reader.index().await?;
    let wanted: Vec<String> = if req.streams.is_empty() {
        index.streams().map(|(s, _)| s.to_string()).collect()
    } else {
        for s in &req.streams {
            if !index.contains(s) {
                bail!(
                    "no stream `{s}` in {}; `exhibit list` shows the streams",
                    store.describe()
                );
            }
        }
        req.streams.clone()
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut runs: BTreeSet<String> = BTreeSet::new();
    let mut samples = Vec::new();
    for stream in &wanted {
        // The period's records, their bytes moved into the bundle.
        let mut period: Vec<Record> = Vec::new();
        let mut schedule = None;
        let mut records = std::pin::pin!(reader.range(stream, req.from, req.to));
        while let Some(mut record) = records.try_next().await? {
            let Some(p) = record.predicate() else {
                // Its time is unknown, so it may belong to the period: a
                // bundle that left it out would not be complete.
                return Err(anyhow::Error::from(record.error())
                    .context("cannot sample a store holding a record that cannot be read; `exhibit verify` names what is wrong"));
            };
            schedule = p.schedule.clone().or(schedule);
            runs.insert(p.run_id.clone());
            files.insert(record.key.clone(), std::mem::take(&mut record.bytes));
            period.push(record);
        }
        let freq = schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
            .map(|s| frequency(&s));
        let size = req
            .size
            .or(freq.map(|f| f.1))
            .unwrap_or(25)
            .min(period.len());
        let picked = draw(&req.seed, stream, period.len(), size);
        let mut sampled = Vec::new();
        for i in picked {
            let record = &period[i];
            let blob = record.payload_key().unwrap_or_default();
            let bytes = reader
                .payload_bytes(record)
                .await?
                .with_context(|| format!("{blob}, the payload of {}, is missing", record.key))?;
            files.insert(blob, bytes);
            sampled.push(record.key.clone());
        }
        samples.push(StreamSample {
            stream: stream.clone(),
            schedule,
            frequency: freq.map(|f| f.0.to_string()),
            population: period.len(),
            size: sampled.len(),
            sampled,
        });
    }
    // Checkpoints of the period, and those of every run a record of the
    // period belongs to, so the chain can be followed end to end.
    for key in store.list(layout::CHECKPOINTS).await? {
        if !layout::is_checkpoint(&key) {
            continue;
        }
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        let st: Statement<CheckpointPredicate> = peek(&bytes).with_context(|| key.clone())?;
        let p = &st.predicate;
        if runs.contains(&p.run_id) || (p.finished_at >= req.from && p.finished_at <= req.to) {
            // Its RFC 3161 token travels with it.
            let token = layout::token(&key);
            if let Some(t) = store.get(&token).await? {
                files.insert(token, t);
            }
            files.insert(key, bytes);
        }
    }
    // The TSA certificates the agent trusted, so that the tokens can be
    // checked offline (an auditor may pass their own copy instead).
    for key in store.list(layout::TSA).await? {
        if let Some(bytes) = store.get(&key).await? {
            files.insert(key, bytes);
        }
    }
    for key in store.list(layout::KEYS).await? {
        if let Some(bytes) = store.get(&key).await? {
            files.insert(key, bytes);
        }
    }
    let manifest = Manifest {
        seed: req.seed.clone(),
        from: req.from,
        to: req.to,
        store: store.describe(),
        streams: samples,
    };
    files.insert("sample.json".into(), serde_json::to_vec_pretty(&manifest)?);
    let sampled: Vec<&str> = manifest
        .streams
        .iter()
        .flat_map(|s| s.sampled.iter().map(String::as_str))
        .collect();
    files.insert(
        "sampled.txt".into(),
        format!("{}\n", sampled.join("\n")).into_bytes(),
    );
    files.insert(
        "streams.txt".into(),
        format!("{}\n", wanted.join("\n")).into_bytes(),
    );
    files.insert("README.md".into(), readme(&manifest).into_bytes());
    files.insert("verify.sh".into(), VERIFY_SH.as_bytes().to_vec());
    let listing: String = files
        .iter()
        .map(|(k, v)| format!("{}  {k}\n", sha256_hex(v)))
        .collect();
    files.insert("MANIFEST.sha256".into(), listing.into_bytes());
    write_tar(out, &files)?;
    Ok(manifest)
}

/// Writes the files under one top directory, with fixed metadata so that
/// the same sample gives the same bytes.
fn write_tar(out: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(if name == "verify.sh" { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, format!("exhibit-sample/{name}"), bytes.as_slice())?;
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(())
}

fn readme(m: &Manifest) -> String {
    let mut s = format!(
        "# Exhibit evidence sample\n\nPeriod: {} to {}\nSeed: `{}` (the same seed over the same store draws the same sample)\nStore: `{}`\n\n| stream | schedule | frequency | records in period | sampled |\n| --- | --- | --- | --- | --- |\n",
        m.from.to_rfc3339(),
        m.to.to_rfc3339(),
        m.seed,
        m.store
    );
    for st in &m.streams {
        s.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            st.stream,
            st.schedule.as_deref().unwrap_or("-"),
            st.frequency.as_deref().unwrap_or("-"),
            st.population,
            st.size
        ));
    }
    s.push_str(
        "\n## What is here\n\n- `records/`: every record of the sampled streams in the period (DSSE envelopes of in-toto statements, Ed25519-signed), so the chain can be followed end to end.\n- `blobs/`: the payloads (canonical JSON) of the sampled records; `sampled.txt` lists those records.\n- `checkpoints/`: the signed checkpoints of the period: each lists the records of one run and the hash of the checkpoint before it.\n- `keys/`: the agent's public keys. Compare them with the copy the company gave you out of band, or pass yours: `KEY=your-copy.pub sh verify.sh`.\n- `checkpoints/…/<run id>.tsr` (when the agent timestamps): the RFC 3161 token of each checkpoint, and `tsa/`: the TSA certificates the agent trusted. Better, pass the TSA's CA certificate obtained from the TSA itself: `TSA_CA=tsa-ca.pem sh verify.sh`.\n- `MANIFEST.sha256`: the sha256 of every file.\n\n## Verify\n\nWith standard tools only (sha256sum, openssl 3, sed, awk):\n\n    sh verify.sh\n\nor with Exhibit: `exhibit verify --bundle <this file>.tar.gz`. Both check every signature, every sampled payload's hash, the chain links between records, that no record of the period is missing, that the checkpoints list exactly these records, and each checkpoint's RFC 3161 token (`openssl ts -verify`); `exhibit verify` also checks the records' times against the tokens' (back-dating).\n\nTo read a sampled payload: `cat blobs/sha256/<2>/<hash>`; the record that signs it names the hash in its statement's `subject`.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_and_seed_dependent() {
        let a = draw("audit-2026", "iam/1", 365, 25);
        assert_eq!(a, draw("audit-2026", "iam/1", 365, 25));
        assert_ne!(a, draw("audit-2027", "iam/1", 365, 25));
        assert_ne!(a, draw("audit-2026", "iam/2", 365, 25));
        assert_eq!(a.len(), 25);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(draw("s", "x", 3, 25).len(), 3);
    }

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
