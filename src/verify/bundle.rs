//! `exhibit verify --bundle`: verifying a sample bundle (`exhibit sample`
//! writes them). The bundle is unpacked into a temporary directory, its
//! `MANIFEST.sha256` checked against the files, and the directory verified
//! as a store within what the bundle promises to hold: every record of its
//! streams in the period, and the payloads of the sampled records only.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use super::{BundleScope, Options, Problem, Report};
use crate::evidence::sha256_hex;
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

/// Verifies the sample bundle at `path` with `opts` (whose `bundle` scope
/// is the bundle's own). The verdict names the bundle as its store, and
/// counts what its manifest reveals as problems.
pub async fn verify_bundle(path: &Path, mut opts: Options) -> Result<Report, BundleError> {
    let unpacked = tempfile::tempdir().map_err(|e| BundleError::Failed(e.into()))?;
    let root = unpack(path, unpacked.path()).map_err(BundleError::NotABundle)?;
    let (scope, manifest_problems) = scope(&root).map_err(BundleError::Failed)?;
    opts.bundle = Some(scope);
    let mut report = super::verify(Arc::new(FsStore::new(root)), &opts)
        .await
        .map_err(|e| BundleError::Failed(e.into()))?;
    report.store = path.display().to_string();
    report.problems.extend(manifest_problems);
    report.intact = report.problems.is_empty();
    Ok(report)
}

/// Unpacks a bundle into `dir`; returns the bundle's root directory.
pub fn unpack(bundle: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let file =
        std::fs::File::open(bundle).with_context(|| format!("cannot open {}", bundle.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    // Entries are confined to `dir` (tar rejects `..` and absolute paths).
    archive
        .unpack(dir)
        .with_context(|| format!("{} is not a readable .tar.gz bundle", bundle.display()))?;
    let root = dir.join("exhibit-sample");
    if !root.join("sample.json").exists() {
        bail!(
            "{} is not an Exhibit sample bundle (no exhibit-sample/sample.json)",
            bundle.display()
        );
    }
    Ok(root)
}

/// What an unpacked bundle promises (its streams and sampled records), and
/// the problems its MANIFEST.sha256 reveals: files changed, missing or
/// added.
pub fn scope(root: &Path) -> anyhow::Result<(BundleScope, Vec<Problem>)> {
    let read = |name: &str| {
        std::fs::read_to_string(root.join(name))
            .with_context(|| format!("the bundle has no {name}"))
    };
    let lines = |text: String| -> HashSet<String> {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let scope = BundleScope {
        streams: lines(read("streams.txt")?),
        sampled: lines(read("sampled.txt")?),
    };
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for line in read("MANIFEST.sha256")?.lines() {
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
    let mut present = Vec::new();
    walk(root, "", &mut present)?;
    for name in present {
        if name != "MANIFEST.sha256" && !listed.contains(&name) {
            problems.push(Problem {
                location: name,
                code: "manifest",
                message: "is not listed in MANIFEST.sha256".into(),
            });
        }
    }
    Ok((scope, problems))
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
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

#[cfg(test)]
mod tests {
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
        let report = verify_bundle(&path, Options::default()).await.unwrap();
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
        let report = verify_bundle(&edited, Options::default()).await.unwrap();
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
