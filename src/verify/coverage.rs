//! The per-stream summary: records by status, first and last, and schedule
//! coverage — the slots the stream's schedule had in the period against the
//! records that served them. It reports no problem: a missed slot is a
//! finding for the auditor, not tampering. A slot with no record at all —
//! not even one saying it was missed — is a gap: the verdict is then
//! `INCOMPLETE`, whatever the reason (the agent stopped, or its newest runs
//! were deleted).
//!
//! A stream can end: when another stream of the same collector begins by
//! saying it continues it (its first record's `continues`, which the
//! writer sets only for a stream the same agent wrote), the old stream owes
//! no slot from that record's slot on, and the new one owes them instead.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::load::{Loaded, LoadedRecord};
use super::{Coverage, Findings, StreamSummary};
use crate::evidence::layout;
use crate::evidence::record::Status;
use crate::schedule::Schedule;
use crate::store::Store;

/// Summarises every stream, its coverage counted from `from` (else the
/// stream's beginning) up to `as_of`.
pub(super) async fn summarise(
    view: &Loaded,
    from: Option<DateTime<Utc>>,
    as_of: Option<DateTime<Utc>>,
) -> Vec<StreamSummary> {
    let ends = successors(view);
    let mut summaries = Vec::new();
    for (stream, records) in &view.streams {
        let mut statuses = BTreeMap::new();
        for l in records {
            *statuses
                .entry(l.record.predicate().status.as_str().to_string())
                .or_insert(0) += 1;
        }
        let last = records.last().map(|l| l.record.predicate());
        let end = ends.get(stream.as_str());
        let until = match (as_of, end) {
            // The successor's first slot is its own: the old stream's last
            // is the one before it.
            (Some(a), Some((_, at))) => Some(a.min(*at - chrono::Duration::seconds(1))),
            (a, _) => a,
        };
        let mut coverage = coverage(view.store.as_ref(), records, from, until).await;
        if let (Some(c), Some((next, _))) = (coverage.as_mut(), end) {
            c.continued_in = Some(next.to_string());
        }
        summaries.push(StreamSummary {
            stream: stream.clone(),
            records: records.len(),
            statuses,
            first: records.first().map(|l| l.record.predicate().started_at),
            last: last.map(|p| p.finished_at),
            last_status: last.map(|p| p.status),
            coverage,
        });
    }
    summaries
}

/// The streams that ended, each with the stream that continues it and
/// the time it took over: the slot its first record served, else when
/// that record began. Only a stream's first record may say so, and only of
/// a stream of the same collector that is in the store.
fn successors(view: &Loaded) -> HashMap<&str, (&str, DateTime<Utc>)> {
    let mut ends: HashMap<&str, (&str, DateTime<Utc>)> = HashMap::new();
    for (stream, records) in &view.streams {
        let Some(first) = records.first().map(|l| l.record.predicate()) else {
            continue;
        };
        let Some(former) = first.continues.as_deref() else {
            continue;
        };
        let collector = |s: &str| s.split('/').next().map(str::to_string);
        if first.seq != 1
            || former == stream
            || collector(former) != collector(stream)
            || !view.streams.contains_key(former)
        {
            continue;
        }
        let at = first.scheduled_for.unwrap_or(first.started_at);
        let end = ends.entry(former).or_insert((stream.as_str(), at));
        if at < end.1 {
            *end = (stream.as_str(), at);
        }
    }
    ends
}

/// A gap for each stream with scheduled slots that have no record at all.
pub(super) fn gaps(streams: &[StreamSummary], found: &mut Findings) {
    for s in streams {
        let Some(c) = &s.coverage else { continue };
        if c.unaccounted == 0 {
            continue;
        }
        let first: Vec<String> = c
            .unaccounted_slots
            .iter()
            .take(5)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect();
        found.gap(
            &layout::stream_prefix(&s.stream),
            "slots_unaccounted",
            format!(
                "{} of {} scheduled slot(s) of `{}` in the period have no record at all, not even a missed one: {}{}",
                c.unaccounted,
                c.expected,
                c.schedule,
                first.join(", "),
                if c.unaccounted > first.len() { ", …" } else { "" }
            ),
        );
    }
}

/// The coverage of one stream's schedule (that of its newest record that
/// has one) from `from`, else its first slot or record, to `as_of`.
async fn coverage(
    store: &dyn Store,
    records: &[LoadedRecord],
    from: Option<DateTime<Utc>>,
    as_of: Option<DateTime<Utc>>,
) -> Option<Coverage> {
    let newest = records
        .iter()
        .rev()
        .find_map(|l| l.record.predicate().schedule.clone())?;
    let schedule = Schedule::parse(&newest).ok()?;
    let first = records.first()?.record.predicate();
    let first_seen = first.scheduled_for.unwrap_or(first.started_at);
    // No slot is owed before the stream's first record: a period that
    // starts earlier (a review's window) is counted from there.
    let start = from.map_or(first_seen, |f| f.max(first_seen));
    let end = as_of?;
    if end < start {
        return None;
    }
    // Slots in [start, end]: slots_between is (from, to], so step back 1 s.
    let (slots, expected) =
        schedule.slots_between(start - chrono::Duration::seconds(1), end, usize::MAX);
    let mut served: HashMap<DateTime<Utc>, Status> = HashMap::new();
    let mut recorded_missed: HashSet<DateTime<Utc>> = HashSet::new();
    for l in records {
        let p = l.record.predicate();
        if p.status == Status::Missed {
            if let Some(sha) = l.record.payload_sha256()
                && let Ok(Some(bytes)) = store.get(&layout::blob(sha)).await
                && let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                for s in doc["slots"].as_array().into_iter().flatten() {
                    if let Some(t) = s.as_str().and_then(|t| t.parse().ok()) {
                        recorded_missed.insert(t);
                    }
                }
            }
        } else if let Some(slot) = p.scheduled_for {
            // A later attempt for the same slot replaces an earlier one.
            served.insert(slot, p.status);
        }
    }
    let mut c = Coverage {
        schedule: newest,
        from: Some(start),
        to: Some(end),
        expected,
        ..Default::default()
    };
    for slot in slots {
        match served.get(&slot) {
            Some(Status::Ok) => c.ok += 1,
            Some(Status::Partial) => c.partial += 1,
            Some(Status::Failed) => c.failed += 1,
            Some(Status::Missed) | None => {
                c.missed += 1;
                if recorded_missed.contains(&slot) {
                    c.missed_recorded += 1;
                } else {
                    c.unaccounted += 1;
                    if c.unaccounted_slots.len() < 20 {
                        c.unaccounted_slots.push(slot);
                    }
                }
                if c.missed_slots.len() < 20 {
                    c.missed_slots.push(slot);
                }
            }
        }
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::verify::testing::{Fixture, day, entry, load_objects};

    use crate::verify::Options;

    /// The summaries as of `opts.to`, else the newest checkpoint.
    async fn summaries(fx: &Fixture, opts: &Options) -> Vec<StreamSummary> {
        let view = load_objects(fx.objects(), opts).await;
        let as_of = opts.to.or_else(|| view.newest_checkpoint_at());
        summarise(&view, opts.from, as_of).await
    }

    #[tokio::test]
    async fn every_slot_served_is_full_coverage() {
        let fx = Fixture::standard().await;
        let s = summaries(&fx, &Options::default()).await;
        assert_eq!(
            s.iter().map(|s| s.stream.as_str()).collect::<Vec<_>>(),
            ["git/app", "iam/111"]
        );
        let iam = &s[1];
        assert_eq!(iam.records, 3);
        assert_eq!(iam.statuses, BTreeMap::from([("ok".to_string(), 3)]));
        assert_eq!(iam.last_status, Some(Status::Ok));
        assert!(iam.first.unwrap() > day(0) && iam.first.unwrap() < day(1));
        assert!(iam.last.unwrap() > day(2) && iam.last.unwrap() < day(3));
        let c = iam.coverage.as_ref().unwrap();
        assert_eq!(c.unaccounted, 0);
        assert_eq!(c.schedule, "@daily");
        assert_eq!(c.from, Some(day(0)));
        assert!(c.to.unwrap() > day(2), "as of the newest checkpoint");
        assert_eq!((c.expected, c.ok, c.missed), (3, 3, 0));
    }

    #[tokio::test]
    async fn slots_without_a_run_are_missed_and_counted_as_recorded_when_they_were() {
        let fx = Fixture::new().await;
        fx.run(0, &["iam/1"]).await;
        fx.run_entries(1, vec![entry("iam/1", 1, Status::Failed)])
            .await;
        // Days 2 and 3 did not run; the agent noticed day 2 only.
        let mut gap = entry("iam/1", 4, Status::Missed);
        gap.predicate.scheduled_for = None;
        gap.payload = json!({"slots": [day(2)]});
        fx.run_entries(4, vec![gap, entry("iam/1", 4, Status::Partial)])
            .await;
        let s = summaries(&fx, &Options::default()).await;
        let c = s[0].coverage.as_ref().unwrap();
        assert_eq!(
            (c.expected, c.ok, c.partial, c.failed, c.missed),
            (5, 1, 1, 1, 2)
        );
        assert_eq!(c.missed_recorded, 1);
        assert_eq!(c.missed_slots, [day(2), day(3)]);
        // Day 3 has no record at all, not even a missed one: a gap.
        assert_eq!(
            (c.unaccounted, c.unaccounted_slots.clone()),
            (1, vec![day(3)])
        );
        let mut found = Findings::default();
        gaps(&s, &mut found);
        assert_eq!(found.gaps.len(), 1);
        assert_eq!(found.gaps[0].location, "records/iam/1/");
        assert_eq!(found.gaps[0].code, "slots_unaccounted");
        assert!(
            found.gaps[0]
                .message
                .starts_with("1 of 5 scheduled slot(s) of `@daily` in the period have no record at all, not even a missed one: 2026-03-04T00:00:00Z"),
            "{}",
            found.gaps[0].message
        );
        assert_eq!(s[0].statuses.len(), 4);
        assert_eq!(s[0].last_status, Some(Status::Partial));

        // Counted only over the period asked for.
        let period = Options {
            from: Some(day(1)),
            to: Some(day(2)),
            ..Default::default()
        };
        let s = summaries(&fx, &period).await;
        let c = s[0].coverage.as_ref().unwrap();
        assert_eq!((c.expected, c.failed, c.missed), (2, 1, 1));
    }

    #[tokio::test]
    async fn a_stream_ends_where_a_stream_of_its_collector_says_it_continues_it() {
        let fx = Fixture::new().await;
        fx.run(0, &["cmd/local", "iam/1"]).await;
        fx.run(1, &["cmd/local", "iam/1"]).await;
        let mut first = entry("cmd/host-a", 2, Status::Ok);
        first.predicate.continues = Some("cmd/local".into());
        // Another collector's stream is not this one's to end.
        let mut stray = entry("x/1", 2, Status::Ok);
        stray.predicate.continues = Some("iam/1".into());
        fx.run_entries(2, vec![first, stray]).await;
        fx.run(3, &["cmd/host-a", "x/1"]).await;
        let to = Options {
            to: Some(day(3) + chrono::Duration::hours(1)),
            ..Default::default()
        };
        let s = summaries(&fx, &to).await;
        let of = |name: &str| {
            s.iter()
                .find(|s| s.stream == name)
                .and_then(|s| s.coverage.clone())
                .unwrap()
        };
        let old = of("cmd/local");
        assert_eq!((old.expected, old.ok, old.unaccounted), (2, 2, 0));
        assert_eq!(old.continued_in.as_deref(), Some("cmd/host-a"));
        assert_eq!(old.to, Some(day(2) - chrono::Duration::seconds(1)));
        let new = of("cmd/host-a");
        assert_eq!((new.expected, new.ok, new.continued_in), (2, 2, None));
        let iam = of("iam/1");
        assert_eq!(
            (iam.expected, iam.unaccounted, iam.continued_in),
            (4, 2, None)
        );
        let mut found = Findings::default();
        gaps(&s, &mut found);
        assert_eq!(found.gaps.len(), 1);
        assert_eq!(found.gaps[0].location, "records/iam/1/");
    }

    #[tokio::test]
    async fn a_stream_without_a_schedule_or_a_period_has_no_coverage() {
        let fx = Fixture::new().await;
        let mut once = entry("once/1", 0, Status::Ok);
        once.predicate.schedule = None;
        fx.run_entries(0, vec![once]).await;
        let s = summaries(&fx, &Options::default()).await;
        assert_eq!(s[0].records, 1);
        assert_eq!(s[0].coverage, None);

        let fx = Fixture::standard().await;
        let before = Options {
            to: Some(day(-1)),
            ..Default::default()
        };
        assert!(
            summaries(&fx, &before)
                .await
                .iter()
                .all(|s| s.coverage.is_none())
        );
    }
}
