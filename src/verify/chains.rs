//! The records check: every record opened, says the stream and number its
//! key says, and follows the record before it in its stream — next number,
//! `prev` naming that record's hash, not earlier in time.

use super::load::{Loaded, LoadedRecord};
use super::{Findings, Options};

/// Reports records that did not open, and every break in each stream's
/// chain.
pub(super) fn check(view: &Loaded, opts: &Options, found: &mut Findings) {
    for (key, e) in &view.bad_records {
        found.problem(key, "bad_record", e.clone());
    }
    for (stream, records) in &view.streams {
        let mut prev: Option<&LoadedRecord> = None;
        for loaded in records {
            check_record(stream, loaded, prev, opts, found);
            prev = Some(loaded);
        }
    }
}

/// One record against its key and the record before it (`None` for the
/// first of the stream).
fn check_record(
    stream: &str,
    loaded: &LoadedRecord,
    prev: Option<&LoadedRecord>,
    opts: &Options,
    found: &mut Findings,
) {
    let p = loaded.record.predicate();
    let key = &loaded.key;
    if p.stream != stream {
        found.problem(
            key,
            "stream_mismatch",
            format!("record belongs to stream `{}`, not `{stream}`", p.stream),
        );
    }
    if Some(p.seq) != loaded.seq_from_key {
        found.problem(
            key,
            "sequence_mismatch",
            format!("record says it is number {} of its stream", p.seq),
        );
    }
    if p.finished_at < p.started_at {
        found.problem(key, "time_inverted", "finished before it started".into());
    }
    match prev {
        // A bundle starts where its period starts.
        None if opts.bundle.is_some() => {}
        None => {
            if p.seq != 1 || loaded.seq_from_key != Some(1) {
                found.problem(
                    key,
                    "sequence_gap",
                    format!(
                        "stream starts at number {} instead of 1",
                        loaded.seq_from_key.unwrap_or(0)
                    ),
                );
            }
            if p.prev.is_some() && p.seq == 1 {
                found.problem(
                    key,
                    "broken_link",
                    "the first record names a predecessor".into(),
                );
            }
        }
        Some(before) => {
            let expected = before.seq_from_key.map(|s| s + 1);
            if loaded.seq_from_key != expected {
                found.problem(
                    key,
                    "sequence_gap",
                    format!(
                        "follows number {} — record(s) in between are missing",
                        before.seq_from_key.unwrap_or(0)
                    ),
                );
            }
            if p.prev.as_deref() != Some(before.record.sha256.as_str()) {
                found.problem(
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
                found.problem(
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
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::evidence::layout;
    use crate::verify::BundleScope;
    use crate::verify::testing::{Fixture, Objects, load_objects, problems, resign_record};

    async fn chain_problems(objects: Objects, opts: &Options) -> Vec<(String, &'static str)> {
        let view = load_objects(objects, opts).await;
        let mut found = Findings::default();
        check(&view, opts, &mut found);
        problems(&found)
    }

    fn iam(seq: u64) -> String {
        layout::record("iam/111", seq)
    }

    #[tokio::test]
    async fn written_chains_have_no_problem() {
        let fx = Fixture::standard().await;
        assert_eq!(chain_problems(fx.objects(), &Options::default()).await, []);
    }

    #[tokio::test]
    async fn a_record_that_does_not_open_is_a_bad_record() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        // Signed by a key the store does not hold.
        let stranger = crate::evidence::keys::Signer::generate();
        resign_record(&mut objects, &iam(3), &stranger, |_| {});
        assert_eq!(
            chain_problems(objects, &Options::default()).await,
            [(iam(3), "bad_record")]
        );
    }

    #[tokio::test]
    async fn a_deleted_record_is_a_gap_and_a_broken_link_after_it() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        objects.remove(&iam(2));
        assert_eq!(
            chain_problems(objects.clone(), &Options::default()).await,
            [(iam(3), "broken_link"), (iam(3), "sequence_gap")]
        );
        // Without its first record a stream starts at 2, and says so.
        objects.remove(&iam(1));
        let view = load_objects(objects.clone(), &Options::default()).await;
        let mut found = Findings::default();
        check(&view, &Options::default(), &mut found);
        assert_eq!(problems(&found), [(iam(3), "sequence_gap")]);
        assert_eq!(
            found.problems[0].message,
            "stream starts at number 3 instead of 1"
        );
        // A bundle's period may start mid-stream.
        let bundle = Options {
            bundle: Some(BundleScope::default()),
            ..Default::default()
        };
        assert_eq!(chain_problems(objects, &bundle).await, []);
    }

    #[tokio::test]
    async fn a_record_claiming_another_stream_or_number_is_a_mismatch() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        resign_record(&mut objects, &iam(3), &fx.signer, |st| {
            st.predicate.stream = "git/app".into();
        });
        assert_eq!(
            chain_problems(objects, &Options::default()).await,
            [(iam(3), "stream_mismatch")]
        );
        let mut objects = fx.objects();
        resign_record(&mut objects, &iam(3), &fx.signer, |st| st.predicate.seq = 4);
        assert_eq!(
            chain_problems(objects, &Options::default()).await,
            [(iam(3), "sequence_mismatch")]
        );
    }

    #[tokio::test]
    async fn a_record_moved_into_another_stream_breaks_its_chain() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        let moved = objects.remove(&layout::record("git/app", 3)).unwrap();
        objects.insert(iam(4), moved);
        assert_eq!(
            chain_problems(objects, &Options::default()).await,
            [
                (iam(4), "broken_link"),
                (iam(4), "sequence_mismatch"),
                (iam(4), "stream_mismatch"),
            ]
        );
    }

    #[tokio::test]
    async fn times_that_run_backwards_are_reported() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        resign_record(&mut objects, &iam(3), &fx.signer, |st| {
            st.predicate.started_at = st.predicate.finished_at + Duration::seconds(1);
        });
        assert_eq!(
            chain_problems(objects, &Options::default()).await,
            [(iam(3), "time_inverted")]
        );
        let mut objects = fx.objects();
        resign_record(&mut objects, &iam(3), &fx.signer, |st| {
            st.predicate.started_at -= Duration::days(2);
        });
        assert_eq!(
            chain_problems(objects, &Options::default()).await,
            [(iam(3), "time_backwards")]
        );
    }

    #[tokio::test]
    async fn a_first_record_naming_a_predecessor_is_a_broken_link() {
        let fx = Fixture::new().await;
        fx.run(0, &["iam/111"]).await;
        let mut objects = fx.objects();
        resign_record(&mut objects, &iam(1), &fx.signer, |st| {
            st.predicate.prev = Some("0".repeat(64));
        });
        let view = load_objects(objects, &Options::default()).await;
        let mut found = Findings::default();
        check(&view, &Options::default(), &mut found);
        assert_eq!(problems(&found), [(iam(1), "broken_link")]);
        assert_eq!(
            found.problems[0].message,
            "the first record names a predecessor"
        );
    }
}
