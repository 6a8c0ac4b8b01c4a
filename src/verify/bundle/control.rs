//! Verifying a control bundle (`exhibit sample --control`): the checks
//! `verify.sh` makes on one, in the same order, from signed data only —
//! every record's signature, place, link and payload; the checkpoint chain
//! from each head in `control.txt` back to the oldest checkpoint here, with
//! every record listed by it byte for byte; the population hash, the seed
//! and the draw, derived here from `population.json`; the evidence of each
//! sampled occurrence; and the RFC 3161 tokens.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use super::files_under;
use crate::control::population::{rank, seed};
use crate::evidence::checkpoint::{Checkpoint, open_checkpoint};
use crate::evidence::keys::KeyRing;
use crate::evidence::record::{Record, open_record};
use crate::evidence::timestamp::TrustAnchors;
use crate::evidence::{layout, sha256_hex};
use crate::sample::chain::{self, Link};
use crate::sample::control::{ControlText, flat_ids};
use crate::verify::{Problem, TimestampOptions};

/// What a control bundle proved of itself, for the verdict.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ControlFacts {
    /// The control.
    pub control: String,
    /// The engagement.
    pub engagement: String,
    /// SHA-256 of `population.json`.
    pub population_sha256: String,
    /// The seed, derived from the engagement, the control and the hash.
    pub seed: String,
    /// Occurrences in the population.
    pub population: usize,
    /// Occurrences sampled, redrawn from the seed.
    pub sampled: usize,
}

/// The outcome of the checks.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub text: Option<ControlText>,
    pub facts: ControlFacts,
    pub problems: Vec<Problem>,
    pub records: usize,
    pub payloads: usize,
    pub payload_bytes: u64,
    pub checkpoints: usize,
    pub timestamped: usize,
    pub untimestamped: usize,
    /// The checkpoints on the chain from a head: (key, SHA-256).
    pub on_chain: Vec<(String, String)>,
}

impl Outcome {
    fn problem(&mut self, location: &str, code: &'static str, message: String) {
        self.problems.push(Problem::new(location, code, message));
    }
}

/// Runs the checks over the control bundle unpacked at `root`, with
/// signatures checked against `keys` and tokens as `ts` says.
pub(super) fn check(root: &Path, keys: &KeyRing, ts: &TimestampOptions) -> anyhow::Result<Outcome> {
    let read = |name: &str| {
        std::fs::read(root.join(name)).with_context(|| format!("the bundle has no {name}"))
    };
    let text = String::from_utf8_lossy(&read("control.txt")?).into_owned();
    let text = ControlText::parse(&text).map_err(anyhow::Error::msg)?;
    let population = read("population.json")?;
    let sampled_txt = String::from_utf8_lossy(&read("sampled.txt")?).into_owned();
    let evidence_txt = String::from_utf8_lossy(&read("evidence.txt")?).into_owned();
    let mut out = Outcome::default();

    // Records: signed, in their place, linked where the record before is
    // here, with their payloads.
    let mut records: BTreeMap<String, Record> = BTreeMap::new();
    let mut hashes: HashMap<String, String> = HashMap::new();
    for key in files_under(root, layout::RECORDS)? {
        out.records += 1;
        let bytes = std::fs::read(root.join(&key))?;
        hashes.insert(key.clone(), sha256_hex(&bytes));
        match open_record(&bytes, keys) {
            Ok(r) => {
                records.insert(key, r);
            }
            Err(e) => out.problem(&key, "signature", format!("does not open: {e}")),
        }
    }
    for (key, r) in &records {
        let p = r.predicate();
        if layout::record(&p.stream, p.seq) != *key {
            out.problem(
                key,
                "sequence_mismatch",
                format!("the record says it is number {} of {}", p.seq, p.stream),
            );
        }
        let before = layout::record(&p.stream, p.seq.saturating_sub(1));
        if let Some(h) = hashes.get(&before)
            && p.prev.as_deref() != Some(h.as_str())
        {
            out.problem(key, "broken_link", format!("prev does not match {before}"));
        }
        let sha = r.payload_sha256().unwrap_or_default();
        match std::fs::read(root.join(layout::blob(sha))) {
            Ok(b) if sha256_hex(&b) == sha => {
                out.payloads += 1;
                out.payload_bytes += b.len() as u64;
            }
            Ok(_) => out.problem(
                &layout::blob(sha),
                "payload_mismatch",
                format!("does not match what {key} signs"),
            ),
            Err(_) => out.problem(key, "payload_missing", "its payload is missing".into()),
        }
    }
    let payloads: HashSet<String> = records
        .values()
        .filter_map(|r| r.payload_sha256().map(layout::blob))
        .collect();
    for blob in files_under(root, layout::BLOBS)? {
        if !payloads.contains(&blob) {
            out.problem(
                &blob,
                "bundle_files",
                "is not the payload of a record here".into(),
            );
        }
    }

    // Checkpoints: signed, and chained from each head back to the oldest
    // here; every record listed by one of them with its bytes.
    let mut opened: Vec<Checkpoint> = Vec::new();
    for key in files_under(root, layout::CHECKPOINTS)? {
        if layout::is_checkpoint(&key) {
            out.checkpoints += 1;
            let bytes = std::fs::read(root.join(&key))?;
            match open_checkpoint(&key, &bytes, keys) {
                Ok(c) => opened.push(c),
                Err(e) => out.problem(&key, "signature", format!("does not open: {e}")),
            }
        } else if !layout::is_token(&key) {
            out.problem(
                &key,
                "bundle_files",
                "is neither a checkpoint nor a token".into(),
            );
        }
    }
    let links = Link::index(&opened);
    if text.heads.is_empty() {
        out.problem(
            "control.txt",
            "bundle_head",
            "names no head: the bundle shows no checkpoint chain".into(),
        );
    }
    let mut on_chain: BTreeSet<&str> = BTreeSet::new();
    for head in &text.heads {
        let Some(h) = opened.iter().find(|c| &c.sha256 == head) else {
            out.problem(
                "control.txt",
                "bundle_head",
                format!("head {head} is not among the bundle's signed checkpoints"),
            );
            continue;
        };
        let w = chain::walk_to_start(&h.key, &links);
        if let Some((key, why)) = &w.broken {
            out.problem(
                key,
                "bundle_chain",
                format!("the checkpoint chain is broken: {why}"),
            );
        }
        for k in &w.period {
            on_chain.insert(links[k.as_str()].key);
        }
    }
    let mut listed: HashSet<(&str, &str)> = HashSet::new();
    for c in &opened {
        if !on_chain.contains(c.key.as_str()) {
            out.problem(
                &c.key,
                "bundle_chain",
                "is not on the checkpoint chain from any head".into(),
            );
            continue;
        }
        out.on_chain.push((c.key.clone(), c.sha256.clone()));
        for s in c.records().iter().chain(c.acknowledged()) {
            listed.insert((s.name.as_str(), s.digest.sha256.as_str()));
        }
    }
    let mut record_keys: Vec<&String> = hashes.keys().collect();
    record_keys.sort();
    for key in record_keys {
        if !listed.contains(&(key.as_str(), hashes[key].as_str())) {
            out.problem(
                key,
                "bundle_population",
                "is not listed, with these bytes, by any checkpoint of the chain".into(),
            );
        }
    }

    // The population hash, the seed and the draw.
    let popsha = sha256_hex(&population);
    if popsha != text.population {
        out.problem(
            "control.txt",
            "bundle_draw",
            format!(
                "names population {}, but population.json hashes to {popsha}",
                text.population
            ),
        );
    }
    let derived = seed(&text.engagement, &text.control, &popsha);
    if derived != text.seed {
        out.problem(
            "control.txt",
            "bundle_draw",
            format!("names seed {}, but the sha256 of its engagement, control and population hash is {derived}", text.seed),
        );
    }
    let ids = flat_ids(&population);
    if ids.is_empty() {
        out.problem(
            "population.json",
            "bundle_draw",
            "holds no occurrence".into(),
        );
    }
    let mut ranked: Vec<(String, &str)> = ids
        .iter()
        .map(|id| (rank(&derived, id), id.as_str()))
        .collect();
    ranked.sort();
    let n = text.size.min(ids.len());
    let drawn: Vec<&str> = ranked.iter().take(n).map(|(_, id)| *id).collect();
    let mine: Vec<&str> = sampled_txt.lines().filter(|l| !l.is_empty()).collect();
    if drawn != mine {
        out.problem(
            "sampled.txt",
            "bundle_draw",
            format!("the occurrences sampled are not the {n} the seed draws from the {} of population.json", ids.len()),
        );
    }
    out.facts = ControlFacts {
        control: text.control.clone(),
        engagement: text.engagement.clone(),
        population_sha256: popsha,
        seed: derived,
        population: ids.len(),
        sampled: mine.len(),
    };

    // The evidence of each sampled occurrence.
    let mut behind: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in evidence_txt.lines().filter(|l| !l.is_empty()) {
        let (id, key) = line.split_once('\t').unwrap_or((line, ""));
        behind.entry(id).or_default().push(key);
    }
    for id in behind.keys().filter(|id| !mine.contains(id)) {
        out.problem(
            "evidence.txt",
            "bundle_evidence",
            format!("names {id}, which is not sampled"),
        );
    }
    let mut evidence: HashSet<String> = HashSet::new();
    let prefix = format!(
        "{}{}/",
        layout::RECORDS,
        crate::control::result_stream(&text.control)
    );
    for id in &mine {
        let keys = behind.get(id).map(Vec::as_slice).unwrap_or_default();
        let [r] = keys else {
            out.problem(
                "evidence.txt",
                "bundle_evidence",
                format!(
                    "names {} results for sampled occurrence {id}, not one",
                    keys.len()
                ),
            );
            continue;
        };
        if !r.starts_with(&prefix) || !r.ends_with(".json") {
            out.problem(
                "evidence.txt",
                "bundle_evidence",
                format!(
                    "{r}, named for {id}, is not a result of control {}",
                    text.control
                ),
            );
            continue;
        }
        let Some(result) = records.get(*r) else {
            if !hashes.contains_key(*r) {
                out.problem(
                    r,
                    "bundle_evidence",
                    format!("the result behind sampled occurrence {id} is missing"),
                );
            }
            continue;
        };
        evidence.insert(r.to_string());
        let own = id
            .rsplit_once('@')
            .and_then(|(s, q)| {
                q.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| (s, q.parse::<u64>()))
            })
            .and_then(|(s, q)| q.ok().map(|q| layout::record(s, q)));
        let names = || {
            let sha = result.payload_sha256().unwrap_or_default();
            std::fs::read(root.join(layout::blob(sha)))
                .map(|b| String::from_utf8_lossy(&b).contains(&format!("\"id\":\"{id}\"")))
                .unwrap_or(false)
        };
        if own.as_deref() != Some(*r) && !names() {
            out.problem(
                r,
                "bundle_evidence",
                format!("does not judge sampled occurrence {id}"),
            );
        }
        for input in result.predicate().assessment.iter().flat_map(|a| &a.inputs) {
            evidence.insert(input.record.clone());
            match hashes.get(&input.record) {
                None => out.problem(
                    &input.record,
                    "bundle_evidence",
                    format!("judged by {r} (sampled occurrence {id}), is missing"),
                ),
                Some(h) if *h != input.sha256 => out.problem(
                    &input.record,
                    "bundle_evidence",
                    format!("differs from what {r} judged"),
                ),
                Some(_) => {}
            }
        }
    }
    let mut extra: Vec<&String> = hashes.keys().filter(|k| !evidence.contains(*k)).collect();
    extra.sort();
    for k in extra {
        out.problem(
            k,
            "bundle_evidence",
            "is not the evidence of a sampled occurrence".into(),
        );
    }

    tokens(root, &opened, ts, &mut out)?;
    out.text = Some(text);
    Ok(out)
}

/// Each checkpoint's RFC 3161 token, against the TSA certificates given
/// (else the bundle's `tsa/`).
fn tokens(
    root: &Path,
    opened: &[Checkpoint],
    ts: &TimestampOptions,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let mut trust = TrustAnchors::default();
    match &ts.trust {
        Some((t, _)) => trust.extend(t.clone()),
        None => {
            for cert in files_under(root, layout::TSA)? {
                if let Ok(t) = TrustAnchors::from_pem(&std::fs::read(root.join(&cert))?) {
                    trust.extend(t);
                }
            }
        }
    }
    let checkpoints: HashSet<&str> = opened.iter().map(|c| c.key.as_str()).collect();
    for t in files_under(root, layout::CHECKPOINTS)?
        .iter()
        .filter(|k| layout::is_token(k))
    {
        if !layout::checkpoint_of_token(t).is_some_and(|c| checkpoints.contains(c.as_str())) {
            out.problem(
                t,
                "timestamp_invalid",
                "a token for a checkpoint that is not here".into(),
            );
        }
    }
    for c in opened {
        let token = layout::token(&c.key);
        let Ok(bytes) = std::fs::read(root.join(&token)) else {
            out.untimestamped += 1;
            if ts.require {
                out.problem(&c.key, "timestamp_missing", "no RFC 3161 token".into());
            }
            continue;
        };
        let digest = hex::decode(&c.sha256).unwrap_or_default();
        match crate::evidence::timestamp::verify(&bytes, &digest, &trust) {
            Ok(_) => out.timestamped += 1,
            Err(e) => out.problem(
                &token,
                "timestamp_invalid",
                format!("the RFC 3161 token does not verify for {}: {e}", c.key),
            ),
        }
    }
    Ok(())
}
