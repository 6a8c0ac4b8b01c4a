//! The future check: nothing in the store may be dated after the time of
//! verification (beyond [`FUTURE_TOLERANCE`] of clock skew). A record or
//! checkpoint from the future was written by an agent whose clock ran
//! ahead, or forged to outlast the evidence after it; either way its time
//! cannot be believed, and a checkpoint dated ahead would otherwise pass for
//! the head.

use chrono::{DateTime, Utc};

use super::load::Loaded;
use super::{FUTURE_TOLERANCE, Findings};

/// Reports each record and checkpoint dated after `now` plus the tolerance.
pub(super) fn check(view: &Loaded, now: DateTime<Utc>, found: &mut Findings) {
    let limit = now + FUTURE_TOLERANCE;
    let message = |at: DateTime<Utc>| {
        format!(
            "dated {}, after the time of verification ({}) by more than {} minutes: the agent's clock ran ahead, or the date is forged",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            FUTURE_TOLERANCE.num_minutes()
        )
    };
    for l in view.records() {
        let p = l.record.predicate();
        let at = p.started_at.max(p.finished_at);
        if at > limit {
            found.problem(&l.key, "future_dated", message(at));
        }
    }
    for c in &view.checkpoints {
        let p = c.predicate();
        let at = p.started_at.max(p.finished_at);
        if at > limit {
            found.problem(&c.key, "future_dated", message(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::verify::Options;
    use crate::verify::testing::{
        Fixture, Objects, checkpoints, day, load_objects, problems, resign_record,
    };

    async fn future_problems(objects: Objects, now: DateTime<Utc>) -> Vec<(String, &'static str)> {
        let view = load_objects(objects, &Options::default()).await;
        let mut found = Findings::default();
        check(&view, now, &mut found);
        problems(&found)
    }

    #[tokio::test]
    async fn nothing_after_now_beyond_the_tolerance() {
        let fx = Fixture::standard().await;
        let objects = fx.objects();
        // Verified right after the last run, and a little before it (skew).
        assert_eq!(future_problems(objects.clone(), day(3)).await, []);
        assert_eq!(
            future_problems(objects.clone(), day(2) + Duration::minutes(1)).await,
            []
        );
        // Verified on day 1: day 2's run is from the future.
        let cps = checkpoints(&objects);
        let found = future_problems(objects.clone(), day(1) + Duration::hours(1)).await;
        let mut expected = vec![
            (cps[2].clone(), "future_dated"),
            (
                crate::evidence::layout::record("git/app", 3),
                "future_dated",
            ),
            (
                crate::evidence::layout::record("iam/111", 3),
                "future_dated",
            ),
        ];
        expected.sort();
        assert_eq!(found, expected);

        // A record re-signed a year ahead by someone holding the key.
        let mut forged = objects;
        let key = crate::evidence::layout::record("iam/111", 3);
        resign_record(&mut forged, &key, &fx.signer, |st| {
            st.predicate.finished_at += Duration::days(365);
        });
        assert_eq!(
            future_problems(forged, day(3)).await,
            [(key, "future_dated")]
        );
    }
}
