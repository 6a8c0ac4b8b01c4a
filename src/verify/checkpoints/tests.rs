//! The checkpoints check against a written store and tamperings of it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::evidence::checkpoint::CheckpointPredicate;
use crate::evidence::keys::Signer;
use crate::evidence::record::{Statement, Status, peek};
use crate::verify::testing::{
    Fixture, Objects, STREAMS, checkpoints, day, entry, load_objects, problems, resign_checkpoint,
    resign_record, warnings,
};

/// (problems, gaps, warnings) of the checkpoints check.
type Found = (
    Vec<(String, &'static str)>,
    Vec<(String, &'static str)>,
    Vec<(String, &'static str)>,
);

/// When the checks' tests verify: well after the fixtures' days.
fn later() -> DateTime<Utc> {
    day(10)
}

fn gaps(found: &Findings) -> Vec<(String, &'static str)> {
    found
        .gaps
        .iter()
        .map(|p| (p.location.clone(), p.code))
        .collect()
}

async fn run_check(objects: Objects, opts: &Options) -> Found {
    let view = load_objects(objects, opts).await;
    let mut found = Findings::default();
    check(&view, opts, &mut found);
    unlisted(&view, opts, opts.now.unwrap_or_else(later), &mut found);
    (problems(&found), gaps(&found), warnings(&found))
}

async fn check_default(objects: Objects) -> Found {
    run_check(objects, &Options::default()).await
}

fn rec(stream: &str, seq: u64) -> String {
    layout::record(stream, seq)
}

/// Record number `seq` of each standard stream, with `code`, in verdict
/// order.
fn both_of(seq: u64, code: &'static str) -> Vec<(String, &'static str)> {
    vec![(rec("git/app", seq), code), (rec("iam/111", seq), code)]
}

/// The one checkpoint that acknowledges records.
fn acknowledging(objects: &Objects) -> String {
    let found: Vec<String> = checkpoints(objects)
        .into_iter()
        .filter(|k| !predicate(objects, k).acknowledged.is_empty())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

fn predicate(objects: &Objects, key: &str) -> CheckpointPredicate {
    peek::<CheckpointPredicate>(&objects[key])
        .unwrap()
        .predicate
}

/// Copies the checkpoint at `from` under the key of a new run, edited by
/// `edit` and signed by `signer`; returns the new key.
fn forge(
    objects: &mut Objects,
    from: &str,
    signer: &Signer,
    edit: impl FnOnce(&mut Statement<CheckpointPredicate>),
) -> String {
    let mut st: Statement<CheckpointPredicate> = peek(&objects[from]).unwrap();
    st.predicate.run_id = uuid::Uuid::now_v7().to_string();
    edit(&mut st);
    let key = layout::checkpoint(st.predicate.finished_at, &st.predicate.run_id);
    objects.insert(key.clone(), objects[from].clone());
    resign_checkpoint(objects, &key, signer, |s| *s = st);
    key
}

#[tokio::test]
async fn a_written_store_has_no_checkpoint_problem_or_warning() {
    let fx = Fixture::standard().await;
    assert_eq!(check_default(fx.objects()).await, (vec![], vec![], vec![]));
}

#[tokio::test]
async fn a_deleted_or_edited_checkpoint_breaks_the_chain() {
    let fx = Fixture::standard().await;
    let objects = fx.objects();
    let cps = checkpoints(&objects);

    // Its records are then under no checkpoint, and a later run began
    // after them: a problem, not an interruption.
    let mut deleted = objects.clone();
    deleted.remove(&cps[1]);
    let mut expected = vec![(cps[2].clone(), "checkpoint_chain_broken")];
    expected.extend(both_of(2, "not_checkpointed"));
    expected.sort();
    assert_eq!(check_default(deleted).await, (expected, vec![], vec![]));

    // Re-signed without one of its records: the next link no longer holds.
    let mut edited = objects.clone();
    resign_checkpoint(&mut edited, &cps[1], &fx.signer, |st| {
        st.subject.retain(|s| s.name != rec("iam/111", 2));
    });
    assert_eq!(
        check_default(edited).await,
        (
            vec![
                (cps[2].clone(), "checkpoint_chain_broken"),
                (rec("iam/111", 2), "not_checkpointed")
            ],
            vec![],
            vec![]
        )
    );
}

#[tokio::test]
async fn a_link_to_another_agents_checkpoint_or_back_in_time_is_reported() {
    let fx = Fixture::standard().await;
    let mut objects = fx.objects();
    let cps = checkpoints(&objects);
    resign_checkpoint(&mut objects, &cps[1], &fx.signer, |st| {
        st.predicate.agent = "other".into();
    });
    let relinked = crate::evidence::sha256_hex(&objects[&cps[1]]);
    resign_checkpoint(&mut objects, &cps[2], &fx.signer, |st| {
        st.predicate.prev.as_mut().unwrap().sha256 = relinked;
    });
    let view = load_objects(objects, &Options::default()).await;
    let mut found = Findings::default();
    check(&view, &Options::default(), &mut found);
    assert_eq!(
        problems(&found),
        [
            (cps[1].clone(), "checkpoint_chain_broken"),
            (cps[2].clone(), "checkpoint_chain_broken"),
        ]
    );
    let to_2 = found
        .problems
        .iter()
        .find(|p| p.location == cps[2])
        .unwrap();
    assert_eq!(
        to_2.message,
        format!("previous checkpoint {} belongs to agent `other`", cps[1])
    );

    // A checkpoint that finished before the one it follows.
    let mut objects = fx.objects();
    let before = predicate(&objects, &cps[1]).finished_at - Duration::seconds(1);
    let back = forge(&mut objects, &cps[2], &fx.signer, |st| {
        st.predicate.finished_at = before;
        st.predicate.started_at = before;
        st.subject.clear();
    });
    objects.remove(&cps[2]);
    assert_eq!(
        check_default(objects).await,
        (
            vec![(back, "time_backwards")],
            both_of(3, "awaiting_checkpoint"),
            vec![]
        )
    );
}

#[tokio::test]
async fn two_checkpoints_after_one_or_two_first_checkpoints_are_forks() {
    let fx = Fixture::standard().await;
    let objects = fx.objects();
    let cps = checkpoints(&objects);

    let mut forked = objects.clone();
    forge(&mut forked, &cps[2], &fx.signer, |st| st.subject.clear());
    assert_eq!(
        check_default(forked).await,
        (vec![(cps[1].clone(), "checkpoint_fork")], vec![], vec![])
    );

    let mut rooted = objects.clone();
    let second_root = forge(&mut rooted, &cps[2], &fx.signer, |st| {
        st.subject.clear();
        st.predicate.prev = None;
    });
    assert_eq!(
        check_default(rooted).await,
        (vec![(second_root, "checkpoint_fork")], vec![], vec![])
    );
}

#[tokio::test]
async fn a_checkpoint_that_does_not_open_or_sits_under_another_key_is_reported() {
    let fx = Fixture::standard().await;
    let objects = fx.objects();
    let cps = checkpoints(&objects);

    let mut garbage = objects.clone();
    garbage.insert(cps[2].clone(), b"{}".to_vec());
    assert_eq!(
        check_default(garbage).await,
        (
            vec![(cps[2].clone(), "bad_checkpoint")],
            both_of(3, "awaiting_checkpoint"),
            vec![]
        )
    );

    let mut moved = objects.clone();
    let bytes = moved.remove(&cps[2]).unwrap();
    let run_id = predicate(&objects, &cps[2]).run_id;
    let elsewhere = layout::checkpoint(crate::verify::testing::day(9), &run_id);
    moved.insert(elsewhere.clone(), bytes);
    assert_eq!(
        check_default(moved).await,
        (vec![(elsewhere, "checkpoint_misplaced")], vec![], vec![])
    );
}

#[tokio::test]
async fn a_listed_record_missing_or_different_is_reported() {
    let fx = Fixture::standard().await;
    let objects = fx.objects();
    let cps = checkpoints(&objects);
    let iam3 = rec("iam/111", 3);

    let mut missing = objects.clone();
    missing.remove(&iam3);
    let view = load_objects(missing, &Options::default()).await;
    let mut found = Findings::default();
    check(&view, &Options::default(), &mut found);
    assert_eq!(problems(&found), [(cps[2].clone(), "record_missing")]);
    assert_eq!(
        found.problems[0].message,
        format!("lists {iam3} which is missing or unreadable")
    );

    let mut changed = objects.clone();
    resign_record(&mut changed, &iam3, &fx.signer, |st| {
        st.predicate.attempts = 2;
    });
    assert_eq!(
        check_default(changed).await,
        (vec![(iam3.clone(), "record_mismatch")], vec![], vec![])
    );
}

#[tokio::test]
async fn listed_records_of_another_run_or_outside_its_times_are_reported() {
    let fx = Fixture::standard().await;
    let objects = fx.objects();
    let cps = checkpoints(&objects);
    let both = |code| vec![(rec("git/app", 3), code), (rec("iam/111", 3), code)];

    let mut other_run = objects.clone();
    forge(&mut other_run, &cps[2], &fx.signer, |_| {});
    other_run.remove(&cps[2]);
    assert_eq!(
        check_default(other_run).await,
        (both("run_mismatch"), vec![], vec![])
    );

    let mut late_start = objects.clone();
    resign_checkpoint(&mut late_start, &cps[2], &fx.signer, |st| {
        st.predicate.started_at = st.predicate.finished_at;
    });
    assert_eq!(
        check_default(late_start).await,
        (both("outside_checkpoint"), vec![], vec![])
    );
}

#[tokio::test]
async fn a_bundle_may_leave_out_other_streams_and_what_came_before_its_period() {
    let fx = Fixture::standard().await;
    let mut objects = fx.objects();
    let cps = checkpoints(&objects);
    // Only iam/111 was sampled, from its second record on.
    objects.remove(&rec("iam/111", 1));
    objects.retain(|k, _| !k.starts_with(&layout::stream_prefix("git/app")));
    let bundle = Options {
        bundle: Some(BundleScope {
            streams: ["iam/111".to_string()].into(),
            sampled: Default::default(),
        }),
        ..Default::default()
    };
    assert_eq!(
        run_check(objects.clone(), &bundle).await,
        (vec![], vec![], vec![])
    );
    // The same holes in a whole store are problems.
    let missing = |i: usize| (cps[i].clone(), "record_missing");
    assert_eq!(
        check_default(objects.clone()).await.0,
        [missing(0), missing(1), missing(2)]
    );

    // A period that starts after the first checkpoint.
    objects.remove(&cps[0]);
    assert_eq!(
        run_check(objects.clone(), &bundle).await,
        (vec![], vec![], vec![])
    );
    assert_eq!(
        check_default(objects).await.0,
        [
            (cps[1].clone(), "checkpoint_chain_broken"),
            missing(1),
            missing(2)
        ]
    );
}

#[tokio::test]
async fn a_retired_key_signs_nothing_after_its_retirement() {
    let fx = Fixture::standard().await;
    let old = fx.signer.clone();
    let (fx, rotation) = fx.rotate(3, Arc::new(Signer::generate())).await;
    let after = fx.run(4, &STREAMS).await;
    let objects = fx.objects();
    assert_eq!(
        check_default(objects.clone()).await,
        (vec![], vec![], vec![])
    );

    let mut record = objects.clone();
    let iam4 = rec("iam/111", 4);
    resign_record(&mut record, &iam4, &old, |_| {});
    assert_eq!(
        check_default(record).await.0,
        [(iam4.clone(), "record_mismatch"), (iam4, "retired_key")]
    );

    let mut checkpoint = objects.clone();
    resign_checkpoint(&mut checkpoint, &after, &old, |_| {});
    assert_eq!(
        check_default(checkpoint).await.0,
        [(after.clone(), "retired_key")]
    );

    // Only the retiring key may sign its retirement.
    let mut usurped = objects.clone();
    resign_checkpoint(&mut usurped, &rotation, &fx.signer, |_| {});
    assert_eq!(
        check_default(usurped).await.0,
        [
            (rotation, "bad_rotation"),
            (after, "checkpoint_chain_broken"),
        ]
    );
}

#[tokio::test]
async fn an_interrupted_run_is_a_gap_until_the_next_checkpoint_acknowledges_it() {
    let fx = Fixture::standard().await;
    let run = fx
        .unfinished_run(3, vec![entry("iam/111", 3, Status::Failed)])
        .await;
    drop(run);
    let iam4 = rec("iam/111", 4);
    // Nothing ran since: awaiting acknowledgement, a gap.
    let (p, g, w) = check_default(fx.objects()).await;
    assert_eq!((p, w), (vec![], vec![]));
    assert_eq!(g, [(iam4.clone(), "awaiting_checkpoint")]);

    // The next writer (a new process) acknowledges it in a checkpoint of
    // its own before it writes, and only there.
    let fx = fx.reopen().await;
    fx.run(4, &["git/app"]).await;
    fx.run(5, &["git/app"]).await;
    let objects = fx.objects();
    let next = acknowledging(&objects);
    assert_eq!(
        predicate(&objects, &next)
            .acknowledged
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        [iam4.as_str()]
    );
    assert!(predicate(&objects, &next).trigger == crate::evidence::record::Trigger::Gap);
    let (p, g, w) = check_default(objects.clone()).await;
    assert_eq!((p, g), (vec![], vec![]));
    assert_eq!(w, [(iam4.clone(), "interrupted_run")]);

    // Re-signed without the acknowledgement by someone holding the key:
    // a run began after the record, so it is a problem.
    let mut dropped = objects.clone();
    resign_checkpoint(&mut dropped, &next, &fx.signer, |st| {
        st.predicate.acknowledged.clear();
    });
    let (p, _, _) = check_default(dropped).await;
    assert!(p.contains(&(iam4.clone(), "not_checkpointed")), "{p:?}");

    // Still less than RUN_GRACE old: it may be a run in progress.
    let mut unacked = objects.clone();
    resign_checkpoint(&mut unacked, &next, &fx.signer, |st| {
        st.predicate.acknowledged.clear();
    });
    let view = load_objects(unacked, &Options::default()).await;
    let mut found = Findings::default();
    let soon = day(3) + Duration::minutes(10);
    unlisted(&view, &Options::default(), soon, &mut found);
    assert_eq!(gaps(&found), [(iam4.clone(), "awaiting_checkpoint")]);
    assert_eq!(problems(&found), []);
}

#[tokio::test]
async fn an_acknowledgement_must_name_the_record_as_stored_by_the_agent_before_it() {
    let fx = Fixture::standard().await;
    drop(
        fx.unfinished_run(3, vec![entry("iam/111", 3, Status::Ok)])
            .await,
    );
    let fx = fx.reopen().await;
    fx.run(4, &["git/app"]).await;
    let objects = fx.objects();
    let next = acknowledging(&objects);
    let iam4 = rec("iam/111", 4);

    let mut changed = objects.clone();
    resign_record(&mut changed, &iam4, &fx.signer, |st| {
        st.predicate.attempts = 7;
    });
    assert!(
        check_default(changed)
            .await
            .0
            .contains(&(iam4.clone(), "record_mismatch"))
    );

    let mut missing = objects.clone();
    missing.remove(&iam4);
    assert!(
        check_default(missing)
            .await
            .0
            .contains(&(next.clone(), "record_missing"))
    );

    let mut foreign = objects.clone();
    resign_record(&mut foreign, &iam4, &fx.signer, |st| {
        st.predicate.agent = "other".into();
    });
    let sha = crate::evidence::sha256_hex(&foreign[&iam4]);
    resign_checkpoint(&mut foreign, &next, &fx.signer, |st| {
        st.predicate.acknowledged[0].digest.sha256 = sha;
    });
    assert!(
        check_default(foreign)
            .await
            .0
            .contains(&(iam4.clone(), "run_mismatch"))
    );
}

#[tokio::test]
async fn deleting_every_checkpoint_is_a_problem_for_all_but_the_newest_records() {
    let fx = Fixture::standard().await;
    let mut objects = fx.objects();
    objects.retain(|k, _| !k.starts_with(layout::CHECKPOINTS));
    let (p, g, _) = check_default(objects.clone()).await;
    let mut expected = both_of(1, "not_checkpointed");
    expected.extend(both_of(2, "not_checkpointed"));
    expected.sort();
    assert_eq!(p, expected);
    assert_eq!(g, both_of(3, "awaiting_checkpoint"));

    // The newest records deleted too: what is left is still no checkpoint's.
    objects.remove(&rec("iam/111", 3));
    objects.remove(&rec("git/app", 3));
    let (p, g, _) = check_default(objects).await;
    assert_eq!(p, both_of(1, "not_checkpointed"));
    assert_eq!(g, both_of(2, "awaiting_checkpoint"));
}
