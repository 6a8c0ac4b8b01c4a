//! The payloads check: every payload blob in scope exists and hashes to
//! what its records signed. Blobs are hashed in parallel and streamed, never
//! held whole: this is where verify spends its time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::load::{Fetched, Loaded, LoadedRecord};
use super::{Findings, Options};
use crate::evidence::layout;

/// What the payloads check hashed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hashed {
    /// Distinct blobs hashed.
    pub checked: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Hashes the payloads in scope — those of the records of the period, or
/// in a bundle those of the sampled records — and reports each one missing,
/// unreadable or not hashing to its name.
pub(super) async fn check(view: &Loaded, opts: &Options, found: &mut Findings) -> Hashed {
    let blobs = in_scope(view, opts);
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let hashed: Vec<(String, Fetched<(String, u64)>)> =
        futures::stream::iter(blobs.keys().cloned())
            .map(|sha| {
                let store = view.store.clone();
                async move {
                    let r = store.hash(&layout::blob(&sha)).await;
                    (sha, r)
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
    let mut bytes = 0;
    for (sha, result) in &hashed {
        let blob = layout::blob(sha);
        let referrers = blobs[sha].join(", ");
        match result {
            Ok(Some((actual, len))) => {
                bytes += len;
                if actual != sha {
                    found.problem(
                        &blob,
                        "payload_mismatch",
                        format!(
                            "content hashes to {actual}, not {sha} (referenced by {referrers})"
                        ),
                    );
                }
            }
            Ok(None) => found.problem(
                &blob,
                "payload_missing",
                format!("payload blob is missing (referenced by {referrers})"),
            ),
            Err(e) => found.problem(&blob, "payload_unreadable", e.to_string()),
        }
    }
    Hashed {
        checked: hashed.len(),
        bytes,
    }
}

/// The payloads in scope, by SHA-256, each with the records that name it.
fn in_scope<'a>(view: &'a Loaded, opts: &Options) -> BTreeMap<String, Vec<&'a str>> {
    let in_period =
        |t: DateTime<Utc>| opts.from.is_none_or(|f| t >= f) && opts.to.is_none_or(|to| t <= to);
    let mut blobs: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for records in view.streams.values() {
        // In key order, as the store lists them, so that the referrers are
        // named in the same order whatever the records' numbers.
        let mut listed: Vec<&LoadedRecord> = records.iter().collect();
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        for loaded in listed {
            let wanted = match &opts.bundle {
                Some(b) => b.sampled.contains(&loaded.key),
                None => in_period(loaded.record.predicate().finished_at),
            };
            if wanted && let Some(sha) = loaded.record.payload_sha256() {
                blobs
                    .entry(sha.to_string())
                    .or_default()
                    .push(loaded.key.as_str());
            }
        }
    }
    blobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::record::Status;
    use crate::evidence::sha256_hex;
    use crate::verify::BundleScope;
    use crate::verify::testing::{Fixture, Objects, STREAMS, day, entry, load_objects, problems};

    async fn payload_check(objects: Objects, opts: &Options) -> (Findings, Hashed) {
        let view = load_objects(objects, opts).await;
        let mut found = Findings::default();
        let hashed = check(&view, opts, &mut found).await;
        (found, hashed)
    }

    /// The blob of the record at `key`.
    fn blob_of(objects: &Objects, key: &str) -> String {
        let st = crate::evidence::record::peek::<crate::evidence::record::RecordPredicate>(
            &objects[key],
        )
        .unwrap();
        st.subject[0].name.clone()
    }

    #[tokio::test]
    async fn every_payload_of_a_written_store_hashes_to_its_name() {
        let fx = Fixture::standard().await;
        let objects = fx.objects();
        let (found, hashed) = payload_check(objects.clone(), &Options::default()).await;
        assert_eq!(problems(&found), []);
        let blobs: Vec<_> = objects.iter().filter(|(k, _)| layout::is_blob(k)).collect();
        assert_eq!(hashed.checked, 6);
        assert_eq!(blobs.len(), 6);
        assert_eq!(
            hashed.bytes,
            blobs.iter().map(|(_, v)| v.len() as u64).sum::<u64>()
        );
    }

    #[tokio::test]
    async fn a_changed_or_deleted_payload_is_reported_with_its_records() {
        let fx = Fixture::new().await;
        // Both records sign the same payload: one blob, two referrers.
        let mut a = entry("a/1", 0, Status::Ok);
        let mut b = entry("b/1", 0, Status::Ok);
        a.payload = serde_json::json!({"same": true});
        b.payload = a.payload.clone();
        fx.run_entries(0, vec![a, b]).await;
        let mut objects = fx.objects();
        let (ka, kb) = (layout::record("a/1", 1), layout::record("b/1", 1));
        let blob = blob_of(&objects, &ka);
        objects.insert(blob.clone(), b"{\"same\":false}".to_vec());
        let (found, hashed) = payload_check(objects.clone(), &Options::default()).await;
        assert_eq!(problems(&found), [(blob.clone(), "payload_mismatch")]);
        assert_eq!(hashed.checked, 1);
        let actual = sha256_hex(b"{\"same\":false}");
        assert!(
            found.problems[0]
                .message
                .starts_with(&format!("content hashes to {actual}, not ")),
            "{}",
            found.problems[0].message
        );
        assert!(
            found.problems[0]
                .message
                .ends_with(&format!("(referenced by {ka}, {kb})")),
            "{}",
            found.problems[0].message
        );

        objects.remove(&blob);
        let (found, hashed) = payload_check(objects, &Options::default()).await;
        assert_eq!(problems(&found), [(blob, "payload_missing")]);
        assert_eq!(
            hashed,
            Hashed {
                checked: 1,
                bytes: 0
            }
        );
    }

    #[tokio::test]
    async fn only_the_payloads_of_the_period_or_of_the_sample_are_hashed() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        let first = layout::record(STREAMS[0], 1);
        let third = layout::record(STREAMS[0], 3);
        let gone = blob_of(&objects, &first);
        objects.remove(&gone);
        let from_day_1 = Options {
            from: Some(day(1)),
            ..Default::default()
        };
        let (found, hashed) = payload_check(objects.clone(), &from_day_1).await;
        assert_eq!(problems(&found), []);
        assert_eq!(hashed.checked, 4);
        let to_day_1 = Options {
            to: Some(day(1)),
            ..Default::default()
        };
        let (found, hashed) = payload_check(objects.clone(), &to_day_1).await;
        assert_eq!(problems(&found), [(gone.clone(), "payload_missing")]);
        assert_eq!(hashed.checked, 2);

        let sampled = |key: &str| Options {
            bundle: Some(BundleScope {
                streams: Default::default(),
                sampled: [key.to_string()].into(),
            }),
            ..Default::default()
        };
        let (found, hashed) = payload_check(objects.clone(), &sampled(&third)).await;
        assert_eq!((problems(&found), hashed.checked), (vec![], 1));
        let (found, _) = payload_check(objects, &sampled(&first)).await;
        assert_eq!(problems(&found), [(gone, "payload_missing")]);
    }
}
