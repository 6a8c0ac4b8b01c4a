//! `exhibit verify --bundle`: verifying a sample bundle (`exhibit sample`
//! writes them). The bundle is unpacked, bounded, into a temporary
//! directory (`unpack`); its `MANIFEST.sha256` is checked against the
//! files; its completeness is checked from signed data only (`complete`:
//! the checkpoint chain from the head, the population, the draw); and the
//! directory is verified as a store within what the bundle holds: every
//! record of the period, and the payloads of the sampled records only.
//! `verify.sh`, shipped in every bundle, makes the same checks.
//!
//! A control bundle (`exhibit sample --control`, with `control.txt`) holds
//! the evidence of a sample of a control's population rather than whole
//! streams; `control` checks it as `verify.sh` does. With `--known-head`,
//! either kind fails unless that checkpoint is on the chain the bundle
//! carries, as a head or an ancestor of one.

mod complete;
mod control;
mod unpack;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;

pub use complete::{BundleFacts, StreamDraw};
pub use control::ControlFacts;
pub use unpack::{MAX_ENTRIES, MAX_UNPACKED, unpack};

use super::{Options, Problem, Report};
use crate::evidence::keys::{KeyRing, PublicKey};
use crate::evidence::{layout, sha256_hex};
use crate::store::fs::FsStore;

/// Why a bundle could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file is not a readable Exhibit sample bundle: a usage error.
    #[error(transparent)]
    NotABundle(anyhow::Error),
    /// Reading or verifying the unpacked bundle failed.
    #[error(transparent)]
    Failed(anyhow::Error),
}

/// The verdict on a bundle: the store-wide verdict over its contents, and
/// what the bundle proved of its own completeness.
#[derive(Debug, Clone, Serialize)]
pub struct BundleVerdict {
    /// The verdict over the bundle's contents, the bundle's own problems
    /// included.
    #[serde(flatten)]
    pub report: Report,
    /// The period, head, population and draw.
    pub bundle: BundleFacts,
    /// For a control bundle: the control, the engagement, the population
    /// hash, the seed and the draw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlFacts>,
}

impl BundleVerdict {
    /// The human form: the bundle's facts, then the verdict.
    pub fn render(&self, show_coverage: bool) -> String {
        let f = &self.bundle;
        let time =
            |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("?".into(), |t| t.to_rfc3339());
        let mut o = match &self.control {
            Some(c) => format!(
                "Bundle:      control {}, engagement `{}`, period {} to {}\nPopulation:  {} occurrence(s), sha256 {}\nSeed:        {} (derived from the engagement, the control and the population hash)\nSampled:     {} of {} occurrence(s), redrawn from the seed\n",
                c.control,
                c.engagement,
                time(f.from),
                time(f.to),
                c.population,
                c.population_sha256,
                c.seed,
                c.sampled,
                c.population
            ),
            None => format!(
                "Bundle:      period {} to {}, seed `{}`\n",
                time(f.from),
                time(f.to),
                f.seed
            ),
        };
        o.push_str(&format!(
            "Head:        {} (the store's newest checkpoint when the sample was drawn: compare it with the head you noted)\n",
            f.head.as_deref().unwrap_or("none")
        ));
        if f.heads.len() > 1 {
            o.push_str(&format!(
                "Chains:      {} heads: {}\n",
                f.heads.len(),
                f.heads.join(", ")
            ));
        }
        if self.control.is_none() {
            o.push_str(&format!(
                "Population:  {} record(s) of the period, under {} checkpoint(s)\n",
                f.population, f.checkpoints_in_period
            ));
        }
        for s in &f.streams {
            o.push_str(&format!(
                "Sampled:     {} of {} record(s) of {}, redrawn from the seed\n",
                s.sampled, s.population, s.stream
            ));
        }
        o.push_str(&self.report.render(show_coverage));
        o
    }
}

/// Verifies the sample bundle at `path` with `opts` (whose `bundle` scope
/// is the bundle's own). The verdict names the bundle as its store, and
/// counts what its manifest and its completeness checks reveal as
/// problems.
pub async fn verify_bundle(path: &Path, mut opts: Options) -> Result<BundleVerdict, BundleError> {
    let unpacked = tempfile::tempdir().map_err(|e| BundleError::Failed(e.into()))?;
    let root = unpack(path, unpacked.path())?;
    let mut problems = manifest(&root).map_err(BundleError::Failed)?;
    let keys = match &opts.keys {
        Some(k) => k.clone(),
        None => bundle_keys(&root).map_err(BundleError::Failed)?,
    };
    if root.join("control.txt").exists() {
        return verify_control(path, &root, problems, &keys, &opts);
    }
    let outcome = complete::check(&root, &keys).map_err(BundleError::Failed)?;
    opts.bundle = Some(outcome.scope.clone());
    // The head noted earlier is judged against the chain the bundle
    // carries (below), not against whatever checkpoints it holds.
    let known = opts.known_head.take();
    let mut report = super::verify(Arc::new(FsStore::new(root)), &opts)
        .await
        .map_err(|e| BundleError::Failed(e.into()))?;
    report.store = path.display().to_string();
    // The checkpoints that are here for the chain's sake list records
    // outside the bundle, and the anchor's own predecessor is outside it:
    // the completeness checks cover what the bundle must hold.
    report.problems.retain(|p| {
        !(p.code == "record_missing" && outcome.outside.contains(&p.location)
            || p.code == "checkpoint_chain_broken" && outcome.anchors.contains(&p.location))
    });
    problems.extend(outcome.problems);
    problems.extend(known_head(known.as_deref(), &outcome.on_chain));
    report.problems.extend(problems);
    report.problems.sort();
    report.problems.dedup();
    report.intact = report.problems.is_empty();
    Ok(BundleVerdict {
        report,
        bundle: outcome.facts,
        control: None,
    })
}

/// The verdict on a control bundle unpacked at `root`, whose manifest
/// showed `problems`.
fn verify_control(
    path: &Path,
    root: &Path,
    mut problems: Vec<Problem>,
    keys: &KeyRing,
    opts: &Options,
) -> Result<BundleVerdict, BundleError> {
    let o = control::check(root, keys, &opts.timestamps).map_err(BundleError::Failed)?;
    problems.extend(o.problems);
    problems.extend(known_head(opts.known_head.as_deref(), &o.on_chain));
    problems.sort();
    problems.dedup();
    let text = o.text.expect("the checks read control.txt");
    let keys_from = match &opts.keys {
        Some(_) => "given with --key",
        None => "the bundle's own keys/ (not independent: pass --key)",
    };
    let key_ids = keys.ids().map(str::to_string).collect();
    let mut report = super::Report {
        verdict: super::Verdict::Failed,
        store: path.display().to_string(),
        period: super::Period {
            from: Some(text.from),
            to: Some(text.to),
        },
        head: text.heads.last().cloned(),
        head_checkpoint: None,
        heads: Vec::new(),
        keys_from: keys_from.to_string(),
        key_ids,
        records: o.records,
        records_in_period: o.records,
        payloads_checked: o.payloads,
        payload_bytes: o.payload_bytes,
        checkpoints: o.checkpoints,
        timestamps: super::TimestampSummary {
            trust_from: opts.timestamps.trust.as_ref().map(|(_, from)| from.clone()),
            timestamped: o.timestamped,
            missing: o.untimestamped,
            in_use: o.timestamped > 0 || opts.timestamps.require,
            ..Default::default()
        },
        streams: Vec::new(),
        problems,
        gaps: Vec::new(),
        warnings: Vec::new(),
        intact: false,
        complete: false,
    };
    report.settle();
    Ok(BundleVerdict {
        report,
        bundle: BundleFacts {
            from: Some(text.from),
            to: Some(text.to),
            seed: o.facts.seed.clone(),
            head: text.heads.last().cloned(),
            heads: text.heads.clone(),
            checkpoints_in_period: o.on_chain.len(),
            population: o.facts.population,
            streams: Vec::new(),
        },
        control: Some(o.facts),
    })
}

/// The problem with a head noted earlier (`--known-head`) that is not on
/// the chain the bundle carries (`on_chain`: key and SHA-256 of each
/// checkpoint passed from the bundle's heads). A head older than the
/// bundle's chain is not in it either: the bundle cannot show it.
fn known_head(known: Option<&str>, on_chain: &[(String, String)]) -> Option<Problem> {
    let known = known?.trim().to_ascii_lowercase();
    if on_chain.iter().any(|(_, sha)| *sha == known) {
        return None;
    }
    Some(Problem {
        location: layout::CHECKPOINTS.to_string(),
        code: "known_head_missing",
        message: format!(
            "the head noted earlier ({known}) is not on the checkpoint chain this bundle carries, neither as its head nor as an ancestor: checkpoints up to it were cut, the evidence was replaced, or it is older than the chain the bundle holds"
        ),
    })
}

/// The keys in the bundle's `keys/`, trusted when the auditor gave none.
fn bundle_keys(root: &Path) -> anyhow::Result<KeyRing> {
    let mut ring = KeyRing::default();
    for key in files_under(root, layout::KEYS)? {
        if let Ok(pem) = std::fs::read_to_string(root.join(&key))
            && let Ok(k) = PublicKey::from_pem(&pem)
        {
            ring.insert(k);
        }
    }
    Ok(ring)
}

/// The problems MANIFEST.sha256 reveals: files changed, missing or added.
pub fn manifest(root: &Path) -> anyhow::Result<Vec<Problem>> {
    let text = std::fs::read_to_string(root.join("MANIFEST.sha256"))
        .context("the bundle has no MANIFEST.sha256")?;
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for line in text.lines() {
        let Some((hash, name)) = line.split_once("  ") else {
            continue;
        };
        listed.insert(name.to_string());
        let problem = match std::fs::read(root.join(name)) {
            Ok(bytes) if sha256_hex(&bytes) == hash => continue,
            Ok(_) => "differs from MANIFEST.sha256",
            Err(_) => "is listed in MANIFEST.sha256 but missing",
        };
        problems.push(Problem {
            location: name.to_string(),
            code: "manifest",
            message: problem.into(),
        });
    }
    for name in files_under(root, "")? {
        if name != "MANIFEST.sha256" && !listed.contains(&name) {
            problems.push(Problem {
                location: name,
                code: "manifest",
                message: "is not listed in MANIFEST.sha256".into(),
            });
        }
    }
    Ok(problems)
}

/// The files under `prefix` (a directory of the bundle, with its slash, or
/// "" for all), as bundle-relative names, sorted.
fn files_under(root: &Path, prefix: &str) -> anyhow::Result<Vec<String>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in entries {
            let e = e?;
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            if e.file_type()?.is_dir() {
                walk(&e.path(), &format!("{name}/"), out)?;
            } else {
                out.push(name);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&root.join(prefix.trim_end_matches('/')), prefix, &mut out)
        .with_context(|| format!("cannot read the bundle's {prefix}"))?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::sample::Request;
    use crate::verify::testing::{Fixture, STREAMS, day};

    /// A bundle of the standard store, sampling one record per stream.
    async fn bundle(dir: &Path) -> PathBuf {
        let fx = Fixture::standard().await;
        let out = dir.join("sample.tar.gz");
        let req = Request {
            streams: vec![],
            from: day(1),
            to: day(3),
            size: Some(1),
            seed: "seed".into(),
        };
        crate::sample::bundle(Arc::new(fx.store.clone()), &req, &out)
            .await
            .unwrap();
        out
    }

    /// Unpacks `bundle`, lets `edit` change the files, and packs it again.
    fn repack(bundle: &Path, edit: impl FnOnce(&Path)) -> PathBuf {
        let dir = bundle.parent().unwrap().join("edited");
        std::fs::create_dir(&dir).unwrap();
        let root = unpack(bundle, &dir).unwrap();
        edit(&root);
        let out = bundle.with_file_name("edited.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&out).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all("exhibit-sample", &root).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        out
    }

    #[tokio::test]
    async fn a_genuine_bundle_verifies_and_is_named_in_the_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let path = bundle(dir.path()).await;
        let report = verify_bundle(&path, Options::default())
            .await
            .unwrap()
            .report;
        assert_eq!(report.problems, []);
        assert!(report.intact);
        assert_eq!(report.store, path.display().to_string());
        assert_eq!(report.records, 4, "days 1 and 2 of both streams");
        assert_eq!(report.payloads_checked, STREAMS.len(), "one sampled each");
    }

    #[tokio::test]
    async fn a_changed_missing_or_added_file_is_a_manifest_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = bundle(dir.path()).await;
        let edited = repack(&path, |root| {
            std::fs::write(root.join("README.md"), "edited").unwrap();
            std::fs::remove_file(root.join("verify.sh")).unwrap();
            std::fs::write(root.join("extra.txt"), "added").unwrap();
        });
        let report = verify_bundle(&edited, Options::default())
            .await
            .unwrap()
            .report;
        assert!(!report.intact);
        let mut found: Vec<_> = report
            .problems
            .iter()
            .map(|p| (p.location.as_str(), p.code, p.message.as_str()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("README.md", "manifest", "differs from MANIFEST.sha256"),
                ("extra.txt", "manifest", "is not listed in MANIFEST.sha256"),
                (
                    "verify.sh",
                    "manifest",
                    "is listed in MANIFEST.sha256 but missing"
                ),
            ]
        );
    }

    #[tokio::test]
    async fn a_file_that_is_no_bundle_is_a_usage_error_and_a_broken_bundle_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.tar.gz");
        std::fs::write(&junk, "not gzip").unwrap();
        let e = verify_bundle(&junk, Options::default()).await.unwrap_err();
        assert!(
            matches!(&e, BundleError::NotABundle(e) if format!("{e:#}").contains("is not a readable .tar.gz bundle")),
            "{e:#}"
        );
        let e = verify_bundle(&dir.path().join("absent.tar.gz"), Options::default())
            .await
            .unwrap_err();
        assert!(matches!(e, BundleError::NotABundle(_)), "{e:#}");

        let path = bundle(dir.path()).await;
        let edited = repack(&path, |root| {
            std::fs::remove_file(root.join("streams.txt")).unwrap();
        });
        let e = verify_bundle(&edited, Options::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, BundleError::Failed(e) if format!("{e:#}") == "the bundle has no streams.txt: No such file or directory (os error 2)"),
            "{e:#}"
        );
    }
}
