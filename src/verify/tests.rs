//! The verdict as a whole, on the memory store: integrity and completeness
//! apart, and never INTACT over nothing.

use std::sync::Arc;

use chrono::Duration;

use super::*;
use crate::evidence::layout;
use crate::store::mem::MemStore;
use crate::verify::testing::{Fixture, Objects, checkpoints, day};

async fn verdict(objects: Objects, opts: &Options) -> Report {
    verify(Arc::new(MemStore::from_objects(objects)), opts)
        .await
        .unwrap()
}

/// Verified just after the standard fixture's last run.
fn right_after() -> Options {
    Options {
        now: Some(day(2) + Duration::minutes(1)),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_complete_untouched_store_is_intact_with_its_head() {
    let fx = Fixture::standard().await;
    let objects = fx.objects();
    let r = verdict(objects.clone(), &right_after()).await;
    assert_eq!(r.verdict, Verdict::Intact, "{:?} {:?}", r.problems, r.gaps);
    assert!(r.intact && r.complete && r.passed());
    let newest = checkpoints(&objects).pop().unwrap();
    assert_eq!(r.head_checkpoint.as_deref(), Some(newest.as_str()));
    assert_eq!(
        r.head.as_deref(),
        Some(crate::evidence::sha256_hex(&objects[&newest]).as_str())
    );
    assert_eq!(r.records_in_period, 6);
}

#[tokio::test]
async fn nothing_at_all_is_no_evidence_with_or_without_keys() {
    let r = verdict(Objects::new(), &Options::default()).await;
    assert_eq!(r.verdict, Verdict::NoEvidence);
    assert!(!r.intact && !r.passed());
    assert_eq!(r.head, None);

    let fx = Fixture::standard().await;
    let mut ring = crate::evidence::keys::KeyRing::default();
    ring.insert(fx.signer.public());
    let with_key = Options {
        keys: Some(ring),
        ..Default::default()
    };
    let r = verdict(Objects::new(), &with_key).await;
    assert_eq!(r.verdict, Verdict::NoEvidence, "{:?}", r.problems);

    // A store holding only its keys.
    let mut keys_only = fx.objects();
    keys_only.retain(|k, _| k.starts_with(layout::KEYS));
    let r = verdict(keys_only.clone(), &Options::default()).await;
    assert_eq!(r.verdict, Verdict::NoEvidence, "{:?}", r.problems);
    let r = verdict(keys_only, &with_key).await;
    assert_eq!(r.verdict, Verdict::NoEvidence);
}

#[tokio::test]
async fn a_period_before_the_store_existed_is_no_evidence() {
    let fx = Fixture::standard().await;
    let before = Options {
        from: Some(day(-400)),
        to: Some(day(-35)),
        ..Default::default()
    };
    let r = verdict(fx.objects(), &before).await;
    assert_eq!(r.verdict, Verdict::NoEvidence);
    assert_eq!((r.records, r.records_in_period), (6, 0));
    assert!(!r.intact);
}

#[tokio::test]
async fn the_period_ends_now_so_slots_since_the_last_run_are_gaps() {
    let fx = Fixture::standard().await;
    let objects = fx.objects();
    let a_week_later = Options {
        now: Some(day(9) + Duration::hours(12)),
        ..Default::default()
    };
    let r = verdict(objects.clone(), &a_week_later).await;
    assert_eq!(r.verdict, Verdict::Incomplete, "{:?}", r.problems);
    assert!(r.intact && !r.complete);
    let codes: Vec<_> = r
        .gaps
        .iter()
        .map(|g| (g.location.as_str(), g.code))
        .collect();
    assert_eq!(
        codes,
        [
            ("records/git/app/", "slots_unaccounted"),
            ("records/iam/111/", "slots_unaccounted")
        ]
    );
    let c = r.streams[1].coverage.as_ref().unwrap();
    assert_eq!((c.expected, c.ok, c.unaccounted), (10, 3, 7));

    // Slots of the last RUN_GRACE are not due yet.
    let just_after_midnight = Options {
        now: Some(day(3) + Duration::minutes(30)),
        ..Default::default()
    };
    assert_eq!(
        verdict(objects.clone(), &just_after_midnight).await.verdict,
        Verdict::Intact
    );

    // An explicit end is exact.
    let to = Options {
        to: Some(day(2) + Duration::hours(1)),
        now: Some(day(9)),
        ..Default::default()
    };
    assert_eq!(verdict(objects, &to).await.verdict, Verdict::Intact);
}

#[tokio::test]
async fn deleting_the_newest_run_is_caught_by_the_known_head() {
    let fx = Fixture::standard().await;
    let objects = fx.objects();
    let head = verdict(objects.clone(), &right_after()).await.head.unwrap();
    let cps = checkpoints(&objects);
    let mut truncated = objects.clone();
    truncated.remove(&cps[2]);
    truncated.remove(&layout::record("iam/111", 3));
    truncated.remove(&layout::record("git/app", 3));
    // Alone, a shorter store is consistent.
    assert_eq!(
        verdict(truncated.clone(), &right_after()).await.verdict,
        Verdict::Intact
    );
    let pinned = Options {
        known_head: Some(head.clone()),
        ..right_after()
    };
    let r = verdict(truncated, &pinned).await;
    assert_eq!(r.verdict, Verdict::Failed);
    assert_eq!(r.problems[0].code, "known_head_missing");
    assert_eq!(verdict(objects, &pinned).await.verdict, Verdict::Intact);
}

#[tokio::test]
async fn a_record_from_the_future_fails() {
    let fx = Fixture::standard().await;
    let early = Options {
        now: Some(day(1) + Duration::hours(2)),
        to: Some(day(1) + Duration::hours(2)),
        ..Default::default()
    };
    let r = verdict(fx.objects(), &early).await;
    assert_eq!(r.verdict, Verdict::Failed);
    assert!(r.problems.iter().any(|p| p.code == "future_dated"));
}
