//! `exhibit sample --control`: the sample of a control's population that an
//! auditor re-derives with `sha256sum` and `sort` (docs/auditors.md), as a
//! bundle that carries its own proof.
//!
//! The population is the one `exhibit population` prints
//! ([`crate::assess::population`]); the seed and the draw are
//! [`crate::control::population`]'s. The bundle holds the population's exact
//! bytes (`population.json`), the seed's inputs (`control.txt`), the sampled
//! occurrences (`sampled.txt`, lowest rank first), and the evidence behind
//! each: the result record that judged it (`evidence.txt` names it), every
//! record that result judged, their payloads, and the checkpoint chain from
//! the store's head back to the oldest checkpoint listing one of them. Both
//! verifiers (`verify.sh`, [`crate::verify::bundle`]) redraw the sample and
//! check the evidence from signed data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chain::{self, is_sha256};
use super::{copy_checkpoints, copy_trust, files, links, stored_checkpoints};
use crate::assess;
use crate::control::exception::RecordRef;
use crate::control::population::{draw, seed};
use crate::control::{ControlKind, LoadedControl};
use crate::evidence::record::{RecordPredicate, Statement, peek};
use crate::evidence::{layout, sha256_hex};
use crate::read::Reader;
use crate::store::Store;

/// What to sample.
#[derive(Debug, Clone)]
pub struct ControlRequest {
    /// The engagement, one of the seed's inputs.
    pub engagement: String,
    /// Start of the period.
    pub from: DateTime<Utc>,
    /// End of the period.
    pub to: DateTime<Utc>,
    /// How many occurrences to draw (default: the control's sample size).
    pub size: Option<usize>,
}

/// Why no control bundle was written.
#[derive(Debug, thiserror::Error)]
pub enum ControlSampleError {
    /// The control has no occurrence in the period: nothing to sample.
    #[error("{0}")]
    Empty(String),
    /// Anything else.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// One sampled occurrence, in `sample.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampledOccurrence {
    /// Its rank: the SHA-256 of `<seed>\n<id>`.
    pub rank: String,
    /// The occurrence, as `population.json` lists it.
    pub occurrence: Value,
    /// The result record that judged it.
    pub result: String,
    /// The records that result judged.
    pub inputs: Vec<String>,
}

/// `sample.json` in a control bundle: a summary for reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlManifest {
    /// The seed's inputs, the period, the size and the hashes.
    #[serde(flatten)]
    pub text: ControlText,
    /// Occurrences in the population.
    pub population_size: usize,
    /// The store sampled.
    pub store: String,
    /// The sample, lowest rank first.
    pub sampled: Vec<SampledOccurrence>,
}

/// What `control.txt` holds: the seed's inputs and what was derived from
/// them, one `name value` line each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlText {
    /// The engagement.
    pub engagement: String,
    /// The control id.
    pub control: String,
    /// Start of the period.
    pub from: DateTime<Utc>,
    /// End of the period.
    pub to: DateTime<Utc>,
    /// How many occurrences were asked for (the sample is the population
    /// when it is smaller).
    pub size: usize,
    /// SHA-256 of `population.json`.
    pub population: String,
    /// SHA-256 of `<engagement>\n<control>\n<population>`.
    pub seed: String,
    /// SHA-256 of each checkpoint chain's newest checkpoint when the sample
    /// was drawn, the store's head last.
    pub heads: Vec<String>,
}

impl ControlText {
    /// The file's text.
    pub fn to_text(&self) -> String {
        let t = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut s = format!(
            "engagement {}\ncontrol {}\nfrom {}\nto {}\nsize {}\npopulation {}\nseed {}\n",
            self.engagement,
            self.control,
            t(self.from),
            t(self.to),
            self.size,
            self.population,
            self.seed
        );
        for h in &self.heads {
            s.push_str(&format!("head {h}\n"));
        }
        s
    }

    /// Reads the file's text, as strictly as `verify.sh` does: each field
    /// once, hashes as lower-case hex, nothing else but `head` lines.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        let mut heads = Vec::new();
        for line in text.lines() {
            let unexpected = || format!("control.txt: unexpected line `{line}`");
            let (name, value) = line.split_once(' ').ok_or_else(unexpected)?;
            match name {
                "head" if is_sha256(value) => heads.push(value.to_string()),
                "engagement" | "control" | "from" | "to" | "size" | "population" | "seed" => {
                    if fields.insert(name, value).is_some() {
                        return Err(format!("control.txt names `{name}` more than once"));
                    }
                }
                _ => return Err(unexpected()),
            }
        }
        let get = |n: &str| {
            fields
                .get(n)
                .copied()
                .ok_or_else(|| format!("control.txt names no `{n}`"))
        };
        let time = |n: &str| {
            let v = get(n)?;
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("control.txt: `{n} {v}`: {e}"))
        };
        let hash = |n: &str| {
            let v = get(n)?;
            is_sha256(v)
                .then(|| v.to_string())
                .ok_or_else(|| format!("control.txt: `{n} {v}` is not a SHA-256"))
        };
        let size = get("size")?;
        Ok(ControlText {
            engagement: get("engagement")?.to_string(),
            control: get("control")?.to_string(),
            from: time("from")?,
            to: time("to")?,
            size: size
                .parse()
                .ok()
                .filter(|n| *n > 0 && size.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("control.txt: `size {size}` is not a positive number"))?,
            population: hash("population")?,
            seed: hash("seed")?,
            heads,
        })
    }
}

/// The occurrence ids of a population file as `verify.sh` reads them: the
/// value of every `"id":"…"` in the text, in order.
pub fn flat_ids(population: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(population);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(i) = rest.find("\"id\":\"") {
        rest = &rest[i + 6..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// The result record behind each occurrence id of `control` up to `to`: for
/// a state control the result itself (its id is `control/<id>@<seq>`), for
/// an event control the newest result that saw it (as the population
/// judges it).
async fn results_behind(
    reader: &Reader,
    control: &LoadedControl,
    to: DateTime<Utc>,
) -> anyhow::Result<HashMap<String, RecordRef>> {
    let results =
        assess::results(reader, &control.control.id, DateTime::<Utc>::MIN_UTC, to).await?;
    let mut out = HashMap::new();
    for (r, e) in results {
        match control.control.kind {
            ControlKind::State => {
                out.insert(r.label(), r);
            }
            ControlKind::Event => {
                for o in &e.occurrences {
                    out.insert(o.id.clone(), r.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Reads `key` from the store and checks it hashes to `sha256`.
async fn fetch(store: &dyn Store, key: &str, sha256: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = store.get(key).await?.with_context(|| {
        format!("cannot sample: {key} is missing from the store; `exhibit verify` says more")
    })?;
    if sha256_hex(&bytes) != sha256 {
        bail!("cannot sample: {key} differs from what names it; `exhibit verify` says more");
    }
    Ok(bytes)
}

/// Draws the sample of `control` and writes the bundle to `out` (.tar.gz).
/// An empty population writes nothing.
pub async fn control_bundle(
    store: Arc<dyn Store>,
    control: &LoadedControl,
    req: &ControlRequest,
    out: &Path,
) -> Result<ControlManifest, ControlSampleError> {
    super::check_seed(&req.engagement)
        .map_err(|e| anyhow::anyhow!("{}", e.replace("seed", "engagement")))?;
    let id = &control.control.id;
    let reader = Reader::new(store.clone());
    let population = assess::population(&reader, control, req.from, req.to).await?;
    if population.occurrences.is_empty() {
        return Err(ControlSampleError::Empty(format!(
            "the population of {id} from {} to {} is empty: no result of the control in the period, so there is nothing to sample (run `exhibit assess --control {id} --from … --to …` first); no bundle written",
            req.from.to_rfc3339(),
            req.to.to_rfc3339()
        )));
    }
    let ids: Vec<&str> = population
        .occurrences
        .iter()
        .map(|o| o.id.as_str())
        .collect();
    if flat_ids(&population.bytes) != ids {
        return Err(anyhow::anyhow!(
            "the occurrences of {id} hold nested `id` fields, so `verify.sh` could not read their ids with grep: the sample could not be re-derived with standard tools"
        )
        .into());
    }
    let size = req.size.unwrap_or(control.control.sample_size);
    if size == 0 {
        return Err(anyhow::anyhow!("the sample size must be at least 1").into());
    }
    let seed = seed(&req.engagement, id, &population.sha256);
    let drawn = draw(&population, &seed, size);

    // The evidence behind each sampled occurrence: its result record, the
    // records that result judged, and their payloads.
    let behind = results_behind(&reader, control, req.to).await?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut needed: BTreeMap<String, String> = BTreeMap::new();
    let mut sampled = Vec::new();
    let mut evidence = String::new();
    for d in &drawn {
        let result = behind.get(&d.id).with_context(|| {
            format!(
                "cannot sample: no result record of {id} names occurrence {}",
                d.id
            )
        })?;
        let key = result.key();
        evidence.push_str(&format!("{}\t{key}\n", d.id));
        let bytes = fetch(store.as_ref(), &key, &result.sha256).await?;
        let st: Statement<RecordPredicate> =
            peek(&bytes).with_context(|| format!("cannot sample: {key} cannot be read"))?;
        let inputs: Vec<(String, String)> = st
            .predicate
            .assessment
            .iter()
            .flat_map(|a| &a.inputs)
            .map(|i| (i.record.clone(), i.sha256.clone()))
            .collect();
        sampled.push(SampledOccurrence {
            rank: d.rank.clone(),
            occurrence: population.occurrences[d.index].to_json(),
            result: key.clone(),
            inputs: inputs.iter().map(|(k, _)| k.clone()).collect(),
        });
        needed.insert(key.clone(), result.sha256.clone());
        files.insert(key, bytes);
        for (k, sha) in inputs {
            if !files.contains_key(&k) {
                files.insert(k.clone(), fetch(store.as_ref(), &k, &sha).await?);
                needed.insert(k, sha);
            }
        }
    }
    for key in needed.keys() {
        let st: Statement<RecordPredicate> =
            peek(&files[key]).with_context(|| format!("cannot sample: {key} cannot be read"))?;
        let [subject] = st.subject.as_slice() else {
            return Err(anyhow::anyhow!("cannot sample: {key} does not name one payload").into());
        };
        let blob = layout::blob(&subject.digest.sha256);
        if !is_sha256(&subject.digest.sha256) {
            return Err(anyhow::anyhow!(
                "cannot sample: the payload of {key} is not named by a SHA-256"
            )
            .into());
        }
        let bytes = fetch(store.as_ref(), &blob, &subject.digest.sha256).await?;
        files.insert(blob, bytes);
    }

    // The checkpoint chain from each head back to the oldest checkpoint
    // that lists (or acknowledges) one of the records.
    let stored = stored_checkpoints(store.as_ref()).await?;
    let links = links(&stored);
    let heads = chain::heads(&links);
    let mut unlisted: HashSet<(&str, &str)> = needed
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_str()))
        .collect();
    let mut chain_keys: Vec<&str> = Vec::new();
    for h in &heads {
        let w = chain::walk_to_start(h.key, &links);
        if let Some((key, why)) = &w.broken {
            bail_failed(format!(
                "cannot sample: the checkpoint chain is broken at {key} ({why}); `exhibit verify` names what is wrong"
            ))?;
        }
        let mut keep = 1;
        for (i, key) in w.period.iter().enumerate() {
            let l = &links[key.as_str()];
            let mut lists = false;
            for s in l.records.iter().chain(&l.predicate.acknowledged) {
                lists |= unlisted.remove(&(s.name.as_str(), s.digest.sha256.as_str()));
            }
            if lists {
                keep = i + 1;
            }
        }
        chain_keys.extend(w.period[..keep].iter().map(|k| links[k.as_str()].key));
    }
    if let Some((key, _)) = unlisted.iter().next() {
        bail_failed(format!(
            "cannot sample: {key} is not under any checkpoint of the store's chains; `exhibit verify` says more"
        ))?;
    }
    copy_checkpoints(store.as_ref(), &stored, chain_keys, &mut files).await?;
    copy_trust(store.as_ref(), &mut files).await?;

    let text = ControlText {
        engagement: req.engagement.clone(),
        control: id.clone(),
        from: req.from,
        to: req.to,
        size,
        population: population.sha256.clone(),
        seed,
        heads: heads.iter().map(|h| h.sha256.to_string()).collect(),
    };
    let manifest = ControlManifest {
        text: text.clone(),
        population_size: population.occurrences.len(),
        store: store.describe(),
        sampled,
    };
    let lines: String = drawn.iter().map(|d| format!("{}\n", d.id)).collect();
    files.insert("control.txt".into(), text.to_text().into_bytes());
    files.insert("population.json".into(), population.bytes.clone());
    files.insert("sampled.txt".into(), lines.into_bytes());
    files.insert("evidence.txt".into(), evidence.into_bytes());
    files.insert(
        "sample.json".into(),
        serde_json::to_vec_pretty(&manifest).map_err(anyhow::Error::from)?,
    );
    files.insert("README.md".into(), readme(&manifest).into_bytes());
    files::finish(out, files)?;
    Ok(manifest)
}

fn bail_failed(message: String) -> Result<(), ControlSampleError> {
    Err(ControlSampleError::Failed(anyhow::Error::msg(message)))
}

fn readme(m: &ControlManifest) -> String {
    let t = &m.text;
    format!(
        "# Exhibit control sample\n\nControl: `{}`\nEngagement: `{}`\nPeriod: {} to {}\nPopulation: {} occurrence(s), SHA-256 `{}`\nSeed: `{}`\nSampled: {} (size asked: {})\nStore: `{}`\nHead: `{}` (the SHA-256 of the store's newest checkpoint when the sample was drawn: compare it with the head you noted)\n{CONTROL_README_BODY}",
        t.control,
        t.engagement,
        t.from.to_rfc3339(),
        t.to.to_rfc3339(),
        m.population_size,
        t.population,
        t.seed,
        m.sampled.len(),
        t.size,
        m.store,
        t.heads.last().map(String::as_str).unwrap_or("none"),
    )
}

const CONTROL_README_BODY: &str = "
## What is here

- `population.json`: every occurrence of the control in the period, the
  RFC 8785 canonical JSON array (no trailing newline) whose SHA-256 is the
  population hash.
- `control.txt`: the engagement, the control, the period, the sample size,
  the population hash, the seed (the SHA-256 of
  `<engagement>\\n<control>\\n<population hash>`) and the head of each
  checkpoint chain.
- `sampled.txt`: the sampled occurrence ids, lowest rank first (an id's rank
  is the SHA-256 of `<seed>\\n<id>`); `evidence.txt`: for each, the result
  record that judged it.
- `records/`, `blobs/`: those result records, every record they judged, and
  all their payloads (signed DSSE envelopes of in-toto statements).
- `checkpoints/`: the signed checkpoint chain from each head back to the
  oldest checkpoint listing one of the records, with RFC 3161 tokens when
  the agent timestamps; `tsa/`: the TSA certificates; `keys/`: the agent's
  public keys (compare them with your own copy, or pass `KEY=`).
- `sample.json`, this README: summaries for reading.

## Verify

    sh verify.sh                  # or KEY=their-key.pub sh verify.sh

or `exhibit verify --bundle <this file>.tar.gz`. Both redraw the sample from
`population.json` with the seed they derive themselves, and check every
signature, payload hash and checkpoint link, that every record is listed by
a checkpoint of the chain, and that each sampled occurrence's result and
the records it judged are here. docs/auditors.md lists the commands to do it
by hand.
";
