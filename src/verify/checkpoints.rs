//! The checkpoints check: every checkpoint opened and sits under its run's
//! key; each agent's checkpoints form one chain without forks; a retired
//! key signs nothing after its retirement; every record a checkpoint lists
//! or acknowledges exists with that hash, in that run and its time window.
//!
//! And every record is under a signed checkpoint: listed by its run's, or,
//! when its run was interrupted, acknowledged by a later checkpoint of the
//! same agent (the writer acknowledges before it writes again). A record
//! that is neither is a problem — its checkpoint was deleted — unless its
//! run is its stream's last and may still be running or wait for the next
//! run to acknowledge it (it began after its agent's newest checkpoint, or
//! less than [`RUN_GRACE`] ago): then it is a gap, and the verdict is at
//! best `INCOMPLETE`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::load::{Loaded, split_record_key};
use super::{BundleScope, Findings, Options, RUN_GRACE};
use crate::evidence::checkpoint::Checkpoint;
use crate::evidence::layout;
use crate::evidence::record::Subject;

/// Reports checkpoints that did not open or are misplaced, breaks and forks
/// in the chains, misuse of retired keys, and records a checkpoint lists
/// that are missing or differ.
pub(super) fn check(view: &Loaded, opts: &Options, found: &mut Findings) {
    opened(view, found);
    chain(view, opts, found);
    rotation(view, found);
    listed(view, opts, found);
}

/// Reports each record no checkpoint lists or acknowledges (a problem, or
/// a gap while it may be a run in progress or awaiting acknowledgement),
/// and warns of each acknowledged interrupted run's records.
pub(super) fn unlisted(view: &Loaded, opts: &Options, now: DateTime<Utc>, found: &mut Findings) {
    let checkpointed: HashSet<&str> = view
        .checkpoints
        .iter()
        .flat_map(|c| c.records().iter().map(|s| s.name.as_str()))
        .collect();
    let acknowledged: HashMap<&str, &str> = view
        .checkpoints
        .iter()
        .flat_map(|c| {
            c.acknowledged()
                .iter()
                .map(move |s| (s.name.as_str(), c.key.as_str()))
        })
        .collect();
    // When each agent's newest checkpoint was sealed.
    let mut newest: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for c in &view.checkpoints {
        let p = c.predicate();
        let t = newest.entry(p.agent.as_str()).or_insert(p.finished_at);
        *t = (*t).max(p.finished_at);
    }
    for records in view.streams.values() {
        // Whether a record of another run follows, from the end back.
        let mut later_run = vec![false; records.len()];
        let mut after: Option<&str> = None;
        let mut mixed = false;
        for (i, l) in records.iter().enumerate().rev() {
            let run = l.record.predicate().run_id.as_str();
            later_run[i] = mixed || after.is_some_and(|a| a != run);
            mixed = later_run[i];
            after = Some(run);
        }
        for (i, l) in records.iter().enumerate() {
            if checkpointed.contains(l.key.as_str()) {
                continue;
            }
            let p = l.record.predicate();
            if let Some(by) = acknowledged.get(l.key.as_str()) {
                found.warning(
                    &l.key,
                    "interrupted_run",
                    format!(
                        "run {} was interrupted before its checkpoint; checkpoint {by} acknowledges this record",
                        p.run_id
                    ),
                );
                continue;
            }
            if opts.bundle.is_some() {
                // A bundle holds the checkpoints of its period only.
                found.warning(
                    &l.key,
                    "not_checkpointed",
                    format!(
                        "not in any checkpoint of the bundle: run {} was interrupted",
                        p.run_id
                    ),
                );
                continue;
            }
            // A later run wrote this stream, so this run had ended (the
            // writer acknowledges an interrupted run before it writes
            // again): its checkpoint or acknowledgement is gone. Else it is
            // its stream's last run, which may still be running, or have
            // been interrupted and wait for the next run.
            let after_newest = newest
                .get(p.agent.as_str())
                .is_none_or(|t| p.started_at >= *t);
            let in_period = opts.from.is_none_or(|f| p.finished_at >= f)
                && opts.to.is_none_or(|t| p.started_at <= t);
            if !later_run[i] && (after_newest || p.finished_at > now - RUN_GRACE) {
                // A run after the period leaves the period complete.
                let note: fn(&mut Findings, &str, &'static str, String) = if in_period {
                    Findings::gap
                } else {
                    Findings::warning
                };
                note(
                    found,
                    &l.key,
                    "awaiting_checkpoint",
                    format!(
                        "not under any checkpoint yet: run {} is in progress, or was interrupted and no later run has acknowledged it",
                        p.run_id
                    ),
                );
            } else {
                found.problem(
                    &l.key,
                    "not_checkpointed",
                    format!(
                        "no checkpoint lists or acknowledges it (run {}): its checkpoint was removed, or it was added to the store",
                        p.run_id
                    ),
                );
            }
        }
    }
}

fn opened(view: &Loaded, found: &mut Findings) {
    for (key, e) in &view.bad_checkpoints {
        found.problem(key, "bad_checkpoint", e.clone());
    }
    for c in &view.checkpoints {
        let p = c.predicate();
        if !c.key.ends_with(&format!("/{}.json", p.run_id))
            || c.key != layout::checkpoint(p.finished_at, &p.run_id)
        {
            found.problem(
                &c.key,
                "checkpoint_misplaced",
                "key does not match the checkpoint's run id and date".into(),
            );
        }
    }
}

/// Each checkpoint's link to the one before it, and forks: a checkpoint
/// followed twice, or an agent with two first checkpoints.
fn chain(view: &Loaded, opts: &Options, found: &mut Findings) {
    let checkpoints = &view.checkpoints;
    let by_key: HashMap<&str, &Checkpoint> =
        checkpoints.iter().map(|c| (c.key.as_str(), c)).collect();
    let first_checkpoint_at = checkpoints.iter().map(|c| c.predicate().finished_at).min();
    let mut referenced: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut roots: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in checkpoints {
        let Some(prev) = &c.predicate().prev else {
            roots
                .entry(c.predicate().agent.as_str())
                .or_default()
                .push(&c.key);
            continue;
        };
        referenced
            .entry(prev.key.as_str())
            .or_default()
            .push(&c.key);
        match by_key.get(prev.key.as_str()) {
            // In a bundle, only the period's first checkpoint may point
            // before it.
            None if opts.bundle.is_some()
                && Some(c.predicate().finished_at) == first_checkpoint_at => {}
            None => found.problem(
                &c.key,
                "checkpoint_chain_broken",
                format!("previous checkpoint {} is missing", prev.key),
            ),
            Some(p) if p.sha256 != prev.sha256 => found.problem(
                &c.key,
                "checkpoint_chain_broken",
                format!(
                    "previous checkpoint {} hashes to {}, not {}",
                    prev.key, p.sha256, prev.sha256
                ),
            ),
            Some(p) if p.predicate().agent != c.predicate().agent => found.problem(
                &c.key,
                "checkpoint_chain_broken",
                format!(
                    "previous checkpoint {} belongs to agent `{}`",
                    prev.key,
                    p.predicate().agent
                ),
            ),
            Some(p) if p.predicate().finished_at > c.predicate().finished_at => found.problem(
                &c.key,
                "time_backwards",
                format!("finished before its previous checkpoint {}", prev.key),
            ),
            Some(_) => {}
        }
    }
    for (prev, children) in &referenced {
        if children.len() > 1 {
            found.problem(
                prev,
                "checkpoint_fork",
                format!(
                    "followed by more than one checkpoint: {}",
                    children.join(", ")
                ),
            );
        }
    }
    for (agent, r) in &roots {
        if r.len() > 1 {
            found.problem(
                r[1],
                "checkpoint_fork",
                format!(
                    "agent `{agent}` has more than one first checkpoint: {}",
                    r.join(", ")
                ),
            );
        }
    }
}

/// Key rotation: a retired key signs nothing after its retirement, and
/// only the key retired may sign its retirement.
fn rotation(view: &Loaded, found: &mut Findings) {
    let mut retired: HashMap<&str, (DateTime<Utc>, &str)> = HashMap::new();
    for c in &view.checkpoints {
        if let Some(r) = &c.predicate().rotation {
            if c.key_id != r.retired_key {
                found.problem(
                    &c.key,
                    "bad_rotation",
                    format!(
                        "retires key {} but is signed by {}",
                        r.retired_key, c.key_id
                    ),
                );
            } else {
                retired.insert(&r.retired_key, (c.predicate().finished_at, &c.key));
            }
        }
    }
    for l in view.records() {
        if let Some((at, by)) = retired.get(l.record.key_id.as_str())
            && l.record.predicate().started_at > *at
        {
            found.problem(
                &l.key,
                "retired_key",
                format!(
                    "signed by key {} after it was retired by {by}",
                    l.record.key_id
                ),
            );
        }
    }
    for c in &view.checkpoints {
        if let Some((at, by)) = retired.get(c.key_id.as_str())
            && c.key != *by
            && c.predicate().finished_at > *at
        {
            found.problem(
                &c.key,
                "retired_key",
                format!("signed by key {} after it was retired by {by}", c.key_id),
            );
        }
    }
}

/// Every record a checkpoint lists exists with that hash, and lies in its
/// checkpoint's run and time window; every record it acknowledges exists
/// with that hash, of its agent, written before it.
fn listed(view: &Loaded, opts: &Options, found: &mut Findings) {
    let record_index = view.record_index();
    for c in &view.checkpoints {
        acknowledged(view, opts, c, &record_index, found);
        let cp = c.predicate();
        for s in c.records() {
            let Some(l) = named(
                view,
                opts,
                c,
                s,
                ("lists", "recorded"),
                &record_index,
                found,
            ) else {
                continue;
            };
            let p = l.record.predicate();
            if p.run_id != cp.run_id {
                found.problem(
                    &s.name,
                    "run_mismatch",
                    format!(
                        "names run {}, listed by checkpoint of run {}",
                        p.run_id, cp.run_id
                    ),
                );
            }
            if p.started_at < cp.started_at || p.finished_at > cp.finished_at {
                found.problem(
                    &s.name,
                    "outside_checkpoint",
                    format!(
                        "times {}–{} fall outside its run {}–{} (checkpoint {})",
                        p.started_at.to_rfc3339(),
                        p.finished_at.to_rfc3339(),
                        cp.started_at.to_rfc3339(),
                        cp.finished_at.to_rfc3339(),
                        c.key
                    ),
                );
            }
        }
    }
}

/// The records `c` acknowledges.
fn acknowledged(
    view: &Loaded,
    opts: &Options,
    c: &Checkpoint,
    record_index: &RecordIndex,
    found: &mut Findings,
) {
    let cp = c.predicate();
    for s in c.acknowledged() {
        let Some(l) = named(
            view,
            opts,
            c,
            s,
            ("acknowledges", "acknowledged"),
            record_index,
            found,
        ) else {
            continue;
        };
        let p = l.record.predicate();
        if p.agent != cp.agent {
            found.problem(
                &s.name,
                "run_mismatch",
                format!(
                    "written by agent `{}`, acknowledged by checkpoint {} of agent `{}`",
                    p.agent, c.key, cp.agent
                ),
            );
        }
        if p.finished_at > cp.finished_at {
            found.problem(
                &s.name,
                "outside_checkpoint",
                format!(
                    "finished {}, after checkpoint {} that acknowledges it",
                    p.finished_at.to_rfc3339(),
                    c.key
                ),
            );
        }
    }
}

type RecordIndex<'a> = HashMap<&'a str, &'a super::load::LoadedRecord>;

/// The record a checkpoint names (`verb`: lists or acknowledges, and its
/// past tense for the message),
/// when it is there with the hash the checkpoint gives; otherwise the
/// problem is noted and there is nothing more to check. A record a bundle
/// does not hold (a stream not sampled, before the period) is no problem.
fn named<'a>(
    view: &Loaded,
    opts: &Options,
    c: &Checkpoint,
    s: &Subject,
    (verb, past): (&str, &str),
    record_index: &RecordIndex<'a>,
    found: &mut Findings,
) -> Option<&'a super::load::LoadedRecord> {
    match record_index.get(s.name.as_str()) {
        None if opts
            .bundle
            .as_ref()
            .is_some_and(|b| outside_bundle(b, view, &s.name)) =>
        {
            None
        }
        None => {
            found.problem(
                &c.key,
                "record_missing",
                format!("{verb} {} which is missing or unreadable", s.name),
            );
            None
        }
        Some(l) if l.record.sha256 != s.digest.sha256 => {
            found.problem(
                &s.name,
                "record_mismatch",
                format!(
                    "hashes to {}, but checkpoint {} {past} {}",
                    l.record.sha256, c.key, s.digest.sha256
                ),
            );
            None
        }
        Some(l) => Some(l),
    }
}

/// Whether a record a checkpoint lists lies outside what a bundle holds: a
/// stream not sampled, or a record before the period.
fn outside_bundle(b: &BundleScope, view: &Loaded, key: &str) -> bool {
    let (stream, seq) = split_record_key(key);
    if !b.streams.contains(&stream) {
        return true;
    }
    let first = view
        .streams
        .get(&stream)
        .and_then(|r| r.iter().filter_map(|l| l.seq_from_key).min());
    matches!((seq, first), (Some(n), Some(f)) if n < f)
}

#[cfg(test)]
mod tests;
