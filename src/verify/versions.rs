//! The versions check, for an S3 store: the bucket's version history under
//! the store's prefix must show each evidence object written once and never
//! deleted. A delete marker (a delete without a version id, which Object
//! Lock does not prevent) hides an object from the listing every other
//! check reads; a second version of a key is an overwrite. Either is a
//! problem, named with the object and when it happened. Other stores have
//! no history to read.

use super::Findings;
use super::load::Loaded;
use crate::store::StoreError;

/// Reads the version history when the store is in S3, and reports every
/// evidence object deleted or overwritten.
pub(super) async fn check(view: &Loaded, found: &mut Findings) -> Result<(), StoreError> {
    #[cfg(feature = "aws")]
    {
        let any: &dyn std::any::Any = view.store.as_ref();
        if let Some(s3) = any.downcast_ref::<crate::store::s3::S3Store>() {
            judge(&s3.versions().await?, found);
        }
    }
    #[cfg(not(feature = "aws"))]
    let _ = (view, found);
    Ok(())
}

/// Whether a key is evidence (not a lease or other working file).
#[cfg(feature = "aws")]
fn is_evidence(key: &str) -> bool {
    use crate::evidence::layout;
    [
        layout::BLOBS,
        layout::RECORDS,
        layout::CHECKPOINTS,
        layout::KEYS,
        layout::TSA,
    ]
    .iter()
    .any(|p| key.starts_with(p))
}

#[cfg(feature = "aws")]
fn judge(versions: &[crate::store::s3::ObjectVersion], found: &mut Findings) {
    use std::collections::BTreeMap;
    let mut by_key: BTreeMap<&str, Vec<&crate::store::s3::ObjectVersion>> = BTreeMap::new();
    for v in versions.iter().filter(|v| is_evidence(&v.key)) {
        by_key.entry(v.key.as_str()).or_default().push(v);
    }
    let when = |v: &crate::store::s3::ObjectVersion| {
        v.last_modified
            .clone()
            .unwrap_or_else(|| "an unknown time".into())
    };
    for (key, vs) in by_key {
        let objects: Vec<_> = vs.iter().filter(|v| !v.delete_marker).collect();
        for m in vs.iter().filter(|v| v.delete_marker) {
            let message = if m.is_latest {
                format!(
                    "deleted at {} (delete marker {}): the listing no longer shows it; {} earlier version(s) remain in the bucket's history",
                    when(m),
                    m.version_id,
                    objects.len()
                )
            } else {
                format!(
                    "was deleted at {} (delete marker {}), and is back since",
                    when(m),
                    m.version_id
                )
            };
            found.problem(key, "object_deleted", message);
        }
        if objects.len() > 1 {
            found.problem(
                key,
                "object_overwritten",
                format!(
                    "has {} versions: evidence is written once, so it was overwritten (versions {})",
                    objects.len(),
                    objects
                        .iter()
                        .map(|v| format!("{} at {}", v.version_id, when(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use super::*;
    use crate::store::s3::ObjectVersion;
    use crate::verify::testing::problems;

    fn v(key: &str, id: &str, latest: bool, marker: bool) -> ObjectVersion {
        ObjectVersion {
            key: key.into(),
            version_id: id.into(),
            is_latest: latest,
            delete_marker: marker,
            last_modified: Some("2026-12-07T10:00:00Z".into()),
        }
    }

    #[test]
    fn deleted_and_overwritten_evidence_is_reported_and_leases_are_not() {
        let rec = "records/iam/1/000000000001.json";
        let cp = "checkpoints/2026/12/07/run.json";
        let blob = "blobs/sha256/aa/aa";
        let versions = [
            v(rec, "2", true, true),
            v(rec, "1", false, false),
            v(cp, "4", true, false),
            v(cp, "3", false, false),
            v(blob, "5", true, false),
            v(".leases/agent/a", "7", true, false),
            v(".leases/agent/a", "6", false, false),
            v(".leases/agent/b", "8", true, true),
        ];
        let mut found = Findings::default();
        judge(&versions, &mut found);
        assert_eq!(
            problems(&found),
            [
                (cp.to_string(), "object_overwritten"),
                (rec.to_string(), "object_deleted"),
            ]
        );
        assert!(
            found
                .problems
                .iter()
                .any(|p| p.message.contains("1 earlier version(s) remain"))
        );

        let mut found = Findings::default();
        judge(
            &[v(rec, "2", false, true), v(rec, "1", true, false)],
            &mut found,
        );
        assert_eq!(problems(&found), [(rec.to_string(), "object_deleted")]);
        assert!(found.problems[0].message.contains("is back since"));
    }
}
