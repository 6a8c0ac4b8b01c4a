//! What makes a bundle complete, checked from signed data only: the
//! checkpoint chain from each head in `period.txt` back past the period's
//! start; the population (every record the period's checkpoints list),
//! which must be exactly the bundle's records, byte for byte as signed;
//! the draw, redrawn from the seed and the population; and no payload
//! beyond the sampled records'. `verify.sh` makes the same checks, in the
//! same order, with the same outcome.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use super::files_under;
use crate::evidence::checkpoint::{Checkpoint, open_checkpoint};
use crate::evidence::keys::KeyRing;
use crate::evidence::record::peek;
use crate::evidence::{layout, sha256_hex};
use crate::sample::chain::{self, Link, Period};
use crate::sample::draw;
use crate::verify::{BundleScope, Problem};

/// What the bundle proved of itself, for the verdict.
#[derive(Debug, Clone, Serialize, Default)]
pub struct BundleFacts {
    /// Start of the period.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the period.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// The seed of the draw.
    pub seed: String,
    /// The store's head when the sample was drawn (the newest of `heads`).
    pub head: Option<String>,
    /// The head of each checkpoint chain, newest last.
    pub heads: Vec<String>,
    /// Checkpoints whose runs finished in the period.
    pub checkpoints_in_period: usize,
    /// Records the period's checkpoints list: the population.
    pub population: usize,
    /// Per sampled stream.
    pub streams: Vec<StreamDraw>,
}

/// One stream's draw.
#[derive(Debug, Clone, Serialize)]
pub struct StreamDraw {
    /// The stream.
    pub stream: String,
    /// Its records in the period.
    pub population: usize,
    /// How many were drawn.
    pub sampled: usize,
}

/// The outcome of the completeness checks.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub facts: BundleFacts,
    pub problems: Vec<Problem>,
    /// What the bundle holds, for the store-wide checks.
    pub scope: BundleScope,
    /// Checkpoints that are in the bundle for the chain's sake only (the
    /// anchor before the period, those after it): the records they list
    /// are outside the bundle.
    pub outside: HashSet<String>,
    /// The anchors: their own previous checkpoints are outside the bundle.
    pub anchors: HashSet<String>,
    /// The checkpoints on the chain from a head, anchors included: key and
    /// SHA-256.
    pub on_chain: Vec<(String, String)>,
}

impl Outcome {
    fn problem(&mut self, location: &str, code: &'static str, message: String) {
        self.problems.push(Problem::new(location, code, message));
    }
}

/// Runs the completeness checks over the bundle unpacked at `root`, with
/// signatures checked against `keys`.
pub(super) fn check(root: &Path, keys: &KeyRing) -> anyhow::Result<Outcome> {
    let read = |name: &str| {
        std::fs::read_to_string(root.join(name))
            .with_context(|| format!("the bundle has no {name}"))
    };
    let period = Period::parse(&read("period.txt")?).map_err(anyhow::Error::msg)?;
    let streams: Vec<String> = lines(&read("streams.txt")?);
    let sampled: BTreeSet<String> = lines(&read("sampled.txt")?).into_iter().collect();
    let mut out = Outcome::default();
    out.facts.from = Some(period.from);
    out.facts.to = Some(period.to);
    out.facts.seed = period.seed.clone();
    out.facts.heads = period.heads.clone();
    out.facts.head = period.heads.last().cloned();

    // The checkpoints that open under the trusted keys; the store-wide
    // checks report those that do not.
    let mut opened: Vec<Checkpoint> = Vec::new();
    for key in files_under(root, layout::CHECKPOINTS)? {
        if layout::is_checkpoint(&key)
            && let Ok(bytes) = std::fs::read(root.join(&key))
            && let Ok(c) = open_checkpoint(&key, &bytes, keys)
        {
            opened.push(c);
        }
    }
    let links = Link::index(&opened);

    // 1. The chain from each head back past the period's start.
    if period.heads.is_empty() {
        out.problem(
            "period.txt",
            "bundle_head",
            "names no head: the bundle shows no checkpoint chain".into(),
        );
    }
    let mut on_chain: HashSet<String> = HashSet::new();
    let mut in_period: Vec<String> = Vec::new();
    for head in &period.heads {
        let Some(h) = opened.iter().find(|c| &c.sha256 == head) else {
            out.problem(
                "period.txt",
                "bundle_head",
                format!("head {head} is not among the bundle's signed checkpoints"),
            );
            continue;
        };
        let w = chain::walk(&h.key, &links, period.from, period.to);
        if let Some((key, why)) = &w.broken {
            out.problem(
                key,
                "bundle_chain",
                format!("the checkpoint chain is broken: {why}"),
            );
        }
        out.outside.extend(w.after.iter().cloned());
        out.outside.extend(w.anchor.iter().cloned());
        out.anchors.extend(w.anchor.iter().cloned());
        on_chain.extend(w.checkpoints().map(str::to_string));
        in_period.extend(w.period);
    }
    for c in &opened {
        if on_chain.contains(&c.key) {
            out.on_chain.push((c.key.clone(), c.sha256.clone()));
        } else {
            out.problem(
                &c.key,
                "bundle_chain",
                "is not on the checkpoint chain from any head".into(),
            );
        }
    }
    for key in files_under(root, layout::CHECKPOINTS)? {
        if !key.ends_with(".json") && !key.ends_with(".tsr") {
            out.problem(
                &key,
                "bundle_files",
                "is neither a checkpoint nor a token".into(),
            );
        }
    }
    out.facts.checkpoints_in_period = in_period.len();

    // 2. The population: exactly the records the period's checkpoints
    //    list, byte for byte.
    let population = chain::population(in_period.iter().map(String::as_str), &links);
    out.facts.population = population.len();
    if population.is_empty() {
        out.problem(
            "records/",
            "bundle_population",
            "no record of the period: the bundle shows nothing".into(),
        );
    }
    let present: BTreeSet<String> = files_under(root, layout::RECORDS)?.into_iter().collect();
    for (key, sha) in &population {
        match std::fs::read(root.join(key)) {
            Err(_) => out.problem(
                key,
                "bundle_population",
                "is listed by a checkpoint of the period but missing".into(),
            ),
            Ok(bytes) if sha256_hex(&bytes) != *sha => out.problem(
                key,
                "bundle_population",
                "differs from what the period's checkpoint signed".into(),
            ),
            Ok(_) => {}
        }
    }
    for key in present.iter().filter(|k| !population.contains_key(*k)) {
        out.problem(
            key,
            "bundle_population",
            "is not listed by any checkpoint of the period".into(),
        );
    }

    // 3. The draw, redrawn from the seed and the population.
    let mut by_stream: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for key in population.keys() {
        if let Some((stream, _)) = layout::stream_record(key) {
            by_stream.entry(stream).or_default().push(key);
        }
    }
    if streams.is_empty() {
        out.problem("streams.txt", "bundle_draw", "samples no stream".into());
    }
    let stream_of = |k: &str| layout::stream_record(k).map(|(s, _)| s);
    for s in &sampled {
        if !stream_of(s).is_some_and(|st| streams.contains(&st)) {
            out.problem(
                "sampled.txt",
                "bundle_draw",
                format!("names {s}, which is not a record of a sampled stream"),
            );
        }
    }
    for stream in &streams {
        let pop = by_stream.get(stream).map(Vec::as_slice).unwrap_or_default();
        let mine: Vec<&str> = sampled
            .iter()
            .filter(|k| stream_of(k).as_deref() == Some(stream.as_str()))
            .map(String::as_str)
            .collect();
        out.facts.streams.push(StreamDraw {
            stream: stream.clone(),
            population: pop.len(),
            sampled: mine.len(),
        });
        if pop.is_empty() {
            out.problem(
                "streams.txt",
                "bundle_draw",
                format!("samples stream {stream}, which has no record in the period"),
            );
        } else if mine.is_empty() {
            out.problem(
                "sampled.txt",
                "bundle_draw",
                format!("holds no record of stream {stream}"),
            );
        } else if draw::draw(&period.seed, pop, mine.len()) != mine {
            out.problem(
                "sampled.txt",
                "bundle_draw",
                format!(
                    "the records sampled from stream {stream} are not the {} the seed draws from its {} records",
                    mine.len(),
                    pop.len()
                ),
            );
        }
    }

    // 4. No payload but the sampled records'.
    let mut payloads = HashSet::new();
    for key in &sampled {
        if let Ok(bytes) = std::fs::read(root.join(key))
            && let Ok(st) = peek::<serde_json::Value>(&bytes)
        {
            payloads.extend(st.subject.iter().map(|s| layout::blob(&s.digest.sha256)));
        }
    }
    for blob in files_under(root, layout::BLOBS)? {
        if !payloads.contains(&blob) {
            out.problem(
                &blob,
                "bundle_files",
                "is not the payload of a sampled record".into(),
            );
        }
    }
    out.scope = BundleScope {
        streams: by_stream.keys().cloned().collect(),
        sampled: sampled.into_iter().collect(),
    };
    Ok(out)
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
