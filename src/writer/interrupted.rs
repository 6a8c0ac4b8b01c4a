//! Finding the records of this agent's interrupted runs, so that the next
//! checkpoint acknowledges them.
//!
//! A run that ends without its checkpoint (the process killed, the store
//! unreachable at the end) leaves records that no checkpoint lists, and
//! `verify` reports every such record unless a later checkpoint of the same
//! agent acknowledges it. The writer looks for them once, when it opens,
//! before it writes anything: an interrupted run can only have been the
//! last thing written to each of its streams, so each stream is read back
//! from its newest record while the records belong to runs that have no
//! checkpoint. Those a checkpoint acknowledged already are left out, which
//! needs reading only the checkpoints written since the oldest of them.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::WriteError;
use crate::evidence::checkpoint::CheckpointPredicate;
use crate::evidence::layout::{self, ObjectKey};
use crate::evidence::record::{Digest, RecordPredicate, Subject, peek};
use crate::evidence::sha256_hex;
use crate::store::Store;

/// The records of `agent` that no checkpoint lists or acknowledges, oldest
/// stream first, each stream in sequence order.
pub(super) async fn unacknowledged(
    store: &dyn Store,
    agent: &str,
) -> Result<Vec<Subject>, WriteError> {
    // A checkpoint is stored under its day and run id: runs with one are
    // done.
    let checkpoints: Vec<(NaiveDate, String, String)> = store
        .list(layout::CHECKPOINTS)
        .await?
        .into_iter()
        .filter_map(|k| match ObjectKey::parse(&k) {
            Some(ObjectKey::Checkpoint { day, run_id }) => Some((day, run_id, k)),
            _ => None,
        })
        .collect();
    let finished: HashSet<&str> = checkpoints.iter().map(|(_, r, _)| r.as_str()).collect();
    let mut streams: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for key in store.list(layout::RECORDS).await? {
        if let Some((stream, seq)) = layout::stream_record(&key) {
            streams.entry(stream).or_default().push(seq);
        }
    }
    let mut found: Vec<(DateTime<Utc>, Subject)> = Vec::new();
    for (stream, mut seqs) in streams {
        seqs.sort_unstable();
        for seq in seqs.into_iter().rev() {
            let key = layout::record(&stream, seq);
            let Some(bytes) = store.get(&key).await? else {
                break;
            };
            // An unreadable record is not this scan's to judge: the writer
            // refuses to extend it, and verify reports it.
            let Ok(st) = peek::<RecordPredicate>(&bytes) else {
                break;
            };
            let p = st.predicate;
            if p.agent != agent || finished.contains(p.run_id.as_str()) {
                break;
            }
            found.push((
                p.finished_at,
                Subject {
                    name: key,
                    digest: Digest {
                        sha256: sha256_hex(&bytes),
                    },
                },
            ));
        }
    }
    let Some(oldest) = found.iter().map(|(t, _)| *t).min() else {
        return Ok(Vec::new());
    };
    let acknowledged = acknowledged_since(store, agent, &checkpoints, oldest).await?;
    let mut pending: Vec<Subject> = found
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| !acknowledged.contains(&s.name))
        .collect();
    pending.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pending)
}

/// The records acknowledged by checkpoints of `agent` stored under a day
/// no earlier than the day before `since` (a day of slack for clocks).
async fn acknowledged_since(
    store: &dyn Store,
    agent: &str,
    checkpoints: &[(NaiveDate, String, String)],
    since: DateTime<Utc>,
) -> Result<HashSet<String>, WriteError> {
    let first_day = (since - Duration::days(1)).date_naive();
    let mut acknowledged = HashSet::new();
    for (day, _, key) in checkpoints {
        if *day < first_day {
            continue;
        }
        let Some(bytes) = store.get(key).await? else {
            continue;
        };
        let Ok(st) = peek::<CheckpointPredicate>(&bytes) else {
            continue;
        };
        if st.predicate.agent == agent {
            acknowledged.extend(st.predicate.acknowledged.into_iter().map(|s| s.name));
        }
    }
    Ok(acknowledged)
}
