//! What the writer extends, checked before it is extended.
//!
//! Whoever can write the store can plant objects in it: a checkpoint dated
//! 2099, a record numbered 999999999999. The writer therefore never takes a
//! head from the store's listing order. The head of the agent's checkpoint
//! chain is found by following the links between the checkpoints signed by
//! the agent's own keys (its current key and the keys it retired); a
//! stream's newest record must be signed by those keys, claim its own place
//! and link to the record before it. Whatever fails is refused — never
//! linked to — and named, so that `collect` and `run` can report it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::WriteError;
use crate::evidence::checkpoint::{CheckpointPredicate, PrevCheckpoint, open_checkpoint};
use crate::evidence::keys::KeyRing;
use crate::evidence::layout::{self, ObjectKey};
use crate::evidence::record::{Record, open_record, peek};
use crate::evidence::sha256_hex;
use crate::store::Store;

/// A store object the writer would otherwise have extended, and why it
/// does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The object's store key.
    pub key: String,
    /// Why it is not extended.
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// The newest checkpoint of the agent's chain.
#[derive(Debug, Clone)]
pub(super) struct ChainTip {
    /// The link the next checkpoint carries.
    pub link: PrevCheckpoint,
    /// When it finished: the next checkpoint is not earlier.
    pub finished_at: DateTime<Utc>,
}

/// The head of the chain and what was refused on the way.
#[derive(Debug, Default)]
pub(super) struct ChainHead {
    /// The tip; `None` when the agent has no trusted checkpoint yet.
    pub tip: Option<ChainTip>,
    /// Checkpoints claiming to be the agent's, not signed by its keys or
    /// unreadable, that are not older than the tip.
    pub refused: Vec<Refusal>,
}

struct Node {
    key: String,
    sha256: String,
    prev: Option<PrevCheckpoint>,
    finished_at: DateTime<Utc>,
}

/// Finds the head of `agent`'s checkpoint chain among the checkpoints
/// `trusted` signed: of the checkpoints no other one follows (the tips of
/// the chain; more than one only where an older agent forked it), the one
/// that finished last.
pub(super) async fn chain_head(
    store: &dyn Store,
    agent: &str,
    trusted: &KeyRing,
) -> Result<ChainHead, WriteError> {
    let keys: Vec<String> = store
        .list(layout::CHECKPOINTS)
        .await?
        .into_iter()
        .filter(|k| layout::is_checkpoint(k))
        .collect();
    let fetched: Vec<_> = futures::stream::iter(keys)
        .map(|key| async move {
            let bytes = store.get(&key).await;
            (key, bytes)
        })
        .buffered(32)
        .collect()
        .await;
    let mut nodes = Vec::new();
    // Untrusted objects, each with the time it claims (when readable).
    let mut suspects: Vec<(String, Option<DateTime<Utc>>, String)> = Vec::new();
    for (key, bytes) in fetched {
        let Some(bytes) = bytes? else { continue };
        match open_checkpoint(&key, &bytes, trusted) {
            Ok(c) if c.predicate().agent == agent => nodes.push(Node {
                sha256: c.sha256.clone(),
                prev: c.predicate().prev.clone(),
                finished_at: c.predicate().finished_at,
                key,
            }),
            // Another agent's chain, signed with the same key.
            Ok(_) => {}
            Err(e) => match peek::<CheckpointPredicate>(&bytes) {
                Ok(st) if st.predicate.agent == agent => suspects.push((
                    key,
                    Some(st.predicate.finished_at),
                    format!(
                        "claims to be a checkpoint of agent `{agent}` but is not signed by \
                         its keys ({e}); the chain is not extended from it"
                    ),
                )),
                // Another agent's checkpoint, under its own key.
                Ok(_) => {}
                Err(e) => suspects.push((
                    key,
                    None,
                    format!("unreadable ({e}); the chain is not extended from it"),
                )),
            },
        }
    }

    let followed: HashSet<(&str, &str)> = nodes
        .iter()
        .filter_map(|n| n.prev.as_ref())
        .map(|p| (p.key.as_str(), p.sha256.as_str()))
        .collect();
    let tip = nodes
        .iter()
        .filter(|n| !followed.contains(&(n.key.as_str(), n.sha256.as_str())))
        .max_by(|a, b| (a.finished_at, &a.key).cmp(&(b.finished_at, &b.key)));
    let tips = nodes
        .iter()
        .filter(|n| !followed.contains(&(n.key.as_str(), n.sha256.as_str())))
        .count();
    if tips > 1 {
        tracing::warn!(
            agent,
            tips,
            "the agent's checkpoint chain is forked; it is extended from the branch that finished last"
        );
    }
    if let Some(t) = tip
        && let Some(prev) = &t.prev
        && !nodes
            .iter()
            .any(|n| n.key == prev.key && n.sha256 == prev.sha256)
    {
        tracing::warn!(
            checkpoint = %t.key,
            previous = %prev.key,
            "the checkpoint chain is broken below its head: the previous checkpoint is missing or altered"
        );
    }
    // Older junk is verify's to report; what claims to be newer than the
    // head is what the writer would have extended.
    let tip_day = tip.and_then(|t| day_of(&t.key));
    let refused = suspects
        .into_iter()
        .filter(|(key, at, _)| match tip {
            None => true,
            Some(t) => {
                at.is_none_or(|at| at >= t.finished_at)
                    && day_of(key)
                        .zip(tip_day)
                        .is_none_or(|(d, tip_day)| d >= tip_day)
            }
        })
        .map(|(key, _, reason)| Refusal { key, reason })
        .collect();
    Ok(ChainHead {
        tip: tip.map(|t| ChainTip {
            link: PrevCheckpoint {
                key: t.key.clone(),
                sha256: t.sha256.clone(),
            },
            finished_at: t.finished_at,
        }),
        refused,
    })
}

fn day_of(key: &str) -> Option<chrono::NaiveDate> {
    match ObjectKey::parse(key) {
        Some(ObjectKey::Checkpoint { day, .. }) => Some(day),
        _ => None,
    }
}

/// Opens the newest record of `stream`, at `key` with number `seq`, and
/// checks that it may be extended: signed by a `trusted` key, claiming this
/// stream and number, and linked to the record before it (`before`, the
/// key of number `seq - 1` when it is listed).
pub(super) async fn check_stream_head(
    store: &dyn Store,
    stream: &str,
    seq: u64,
    key: &str,
    before: Option<&str>,
    trusted: &KeyRing,
) -> Result<Record, WriteError> {
    let refuse = |why: String| {
        WriteError::Refused(Refusal {
            key: key.to_string(),
            reason: format!("{why}; refusing to extend stream {stream}"),
        })
    };
    let bytes = store
        .get(key)
        .await?
        .ok_or_else(|| WriteError::Corrupt(format!("{key} vanished while reading")))?;
    let record = match open_record(&bytes, trusted) {
        Ok(r) => r,
        Err(e) => {
            return Err(refuse(match peek::<serde_json::Value>(&bytes) {
                Ok(_) => format!("not signed by this agent's keys ({e})"),
                Err(_) => format!("unreadable ({e})"),
            }));
        }
    };
    let p = record.predicate();
    if p.seq != seq || p.stream != stream {
        return Err(refuse(format!("claims to be {}@{}", p.stream, p.seq)));
    }
    match (seq, &p.prev) {
        (1, None) => {}
        (1, Some(_)) => return Err(refuse("the first record names a predecessor".into())),
        (_, None) => return Err(refuse("names no predecessor".into())),
        (_, Some(prev)) => {
            let Some(before) = before else {
                return Err(refuse(format!(
                    "its predecessor {} is missing",
                    layout::record(stream, seq - 1)
                )));
            };
            let Some(prev_bytes) = store.get(before).await? else {
                return Err(refuse(format!("its predecessor {before} is missing")));
            };
            let actual = sha256_hex(&prev_bytes);
            if &actual != prev {
                return Err(refuse(format!(
                    "it links to {prev}, but its predecessor {before} hashes to {actual}"
                )));
            }
        }
    }
    Ok(record)
}

/// The record keys of `stream` by number, in order. Only this stream's:
/// its prefix also lists the streams nested under it.
pub(super) async fn numbered(
    store: &dyn Store,
    stream: &str,
) -> Result<Vec<(u64, String)>, WriteError> {
    let keys = store.list(&layout::stream_prefix(stream)).await?;
    let mut numbered: Vec<(u64, String)> = keys
        .into_iter()
        .filter_map(|k| match layout::stream_record(&k) {
            Some((s, n)) if s == stream => Some((n, k)),
            _ => None,
        })
        .collect();
    numbered.sort_unstable_by_key(|(n, _)| *n);
    Ok(numbered)
}

/// The newest of `numbered` (the records of `stream`) when it may be
/// extended ([`check_stream_head`]); `None` when the stream is empty.
pub(super) async fn checked_head(
    store: &dyn Store,
    stream: &str,
    numbered: &[(u64, String)],
    trusted: &KeyRing,
) -> Result<Option<Record>, WriteError> {
    let Some((seq, key)) = numbered.last() else {
        return Ok(None);
    };
    let before = numbered
        .len()
        .checked_sub(2)
        .map(|i| &numbered[i])
        .filter(|(n, _)| *n + 1 == *seq)
        .map(|(_, k)| k.as_str());
    check_stream_head(store, stream, *seq, key, before, trusted)
        .await
        .map(Some)
}

/// `former` when it is a stream of this agent (its newest record is signed
/// by the `trusted` keys, in its place), for a new stream to say it
/// continues it; else `None`: a stream is never ended by an agent that did
/// not write it.
pub(super) async fn own_stream(
    store: &dyn Store,
    former: String,
    trusted: &KeyRing,
) -> Result<Option<String>, WriteError> {
    if crate::evidence::validate_stream_id(&former).is_err() {
        return Ok(None);
    }
    let numbered = numbered(store, &former).await?;
    match checked_head(store, &former, &numbered, trusted).await {
        Ok(Some(_)) => Ok(Some(former)),
        Ok(None) | Err(WriteError::Refused(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
