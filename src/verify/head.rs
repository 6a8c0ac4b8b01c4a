//! The head of a store, and a head noted earlier.
//!
//! No chain proves on its own that its newest links were not cut off: a
//! store whose newest runs were deleted whole is a consistent, shorter
//! store. So the head — the SHA-256 of the newest checkpoint's stored
//! bytes — is printed by `collect` and `verify`, carried by the nightly
//! report, the metrics and sample bundles, and an auditor notes it. Later,
//! `verify --known-head SHA` checks that this checkpoint is still there and
//! that the chain of its agent still runs through it, from that agent's
//! newest checkpoint back: truncation after a noted head fails the verdict.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Findings;
use super::load::{Loaded, store_keys};
use crate::evidence::checkpoint::{Checkpoint, open_checkpoint};
use crate::evidence::keys::KeyRing;
use crate::evidence::layout;
use crate::store::{Store, StoreError};

/// A checkpoint at the head of a chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Head {
    /// The SHA-256 of its stored bytes: the value to note.
    pub sha256: String,
    /// Its store key.
    pub checkpoint: String,
    /// The agent whose chain it ends.
    pub agent: String,
    /// When its run finished.
    pub finished_at: DateTime<Utc>,
}

impl Head {
    fn of(c: &Checkpoint) -> Self {
        Head {
            sha256: c.sha256.clone(),
            checkpoint: c.key.clone(),
            agent: c.predicate().agent.clone(),
            finished_at: c.predicate().finished_at,
        }
    }
}

/// The newest of `checkpoints` (by finish time, then key) of each agent.
fn newest_by_agent(checkpoints: &[Checkpoint]) -> BTreeMap<&str, &Checkpoint> {
    let mut newest: BTreeMap<&str, &Checkpoint> = BTreeMap::new();
    for c in checkpoints {
        let e = newest.entry(c.predicate().agent.as_str()).or_insert(c);
        if (c.predicate().finished_at, &c.key) > (e.predicate().finished_at, &e.key) {
            *e = c;
        }
    }
    newest
}

/// The newest checkpoint of each agent that opened, by agent.
pub(super) fn heads(view: &Loaded) -> Vec<Head> {
    newest_by_agent(&view.checkpoints)
        .into_values()
        .map(Head::of)
        .collect()
}

/// The newest of the agents' heads: the store's head.
pub(super) fn newest(heads: &[Head]) -> Option<&Head> {
    heads
        .iter()
        .max_by(|a, b| (a.finished_at, &a.checkpoint).cmp(&(b.finished_at, &b.checkpoint)))
}

/// The store's head: its newest checkpoint that opens under `keys` (else
/// under the store's own `keys/`). What `sample` puts in a bundle; `verify`
/// reports the same value.
pub async fn head(store: &dyn Store, keys: Option<&KeyRing>) -> Result<Option<Head>, StoreError> {
    let ring = match keys {
        Some(k) => k.clone(),
        None => store_keys(store).await?.0,
    };
    let mut opened = Vec::new();
    for key in store.list(layout::CHECKPOINTS).await? {
        if !layout::is_checkpoint(&key) {
            continue;
        }
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        if let Ok(c) = open_checkpoint(&key, &bytes, &ring) {
            opened.push(c);
        }
    }
    let heads: Vec<Head> = newest_by_agent(&opened)
        .into_values()
        .map(Head::of)
        .collect();
    Ok(newest(&heads).cloned())
}

/// Reports a head noted earlier (`known`, a SHA-256) that is not in the
/// store, did not open, or is not on its agent's chain from the newest
/// checkpoint back.
pub(super) fn check_known(view: &Loaded, known: &str, found: &mut Findings) {
    let known = known.trim().to_ascii_lowercase();
    let Some((key, _)) = view
        .checkpoint_hashes
        .iter()
        .find(|(_, sha)| **sha == known)
    else {
        found.problem(
            layout::CHECKPOINTS,
            "known_head_missing",
            format!(
                "the head noted earlier ({known}) is not in the store: checkpoints up to and including it were deleted, or the evidence was replaced"
            ),
        );
        return;
    };
    let by_key: HashMap<&str, &Checkpoint> = view
        .checkpoints
        .iter()
        .map(|c| (c.key.as_str(), c))
        .collect();
    let Some(pinned) = by_key.get(key.as_str()) else {
        found.problem(
            key,
            "known_head_invalid",
            format!("the head noted earlier ({known}) is this checkpoint, which does not open"),
        );
        return;
    };
    let agent = pinned.predicate().agent.as_str();
    let newest = newest_by_agent(&view.checkpoints)[agent];
    // Back along the chain from the newest, each link checked by hash.
    let mut at = newest;
    for _ in 0..=view.checkpoints.len() {
        if at.key == pinned.key {
            return;
        }
        match at.predicate().prev.as_ref().and_then(|p| {
            by_key
                .get(p.key.as_str())
                .copied()
                .filter(|c| c.sha256 == p.sha256)
        }) {
            Some(prev) => at = prev,
            None => break,
        }
    }
    found.problem(
        key,
        "known_head_not_ancestor",
        format!(
            "the head noted earlier ({known}) is not on the chain of agent `{agent}` that ends at its newest checkpoint {}: the chain was cut or replaced after it",
            newest.key
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::record::Status;
    use crate::store::mem::MemStore;
    use crate::verify::Options;
    use crate::verify::testing::{Fixture, Objects, checkpoints, entry, load_objects, problems};

    async fn known_problems(objects: Objects, known: &str) -> Vec<(String, &'static str)> {
        let view = load_objects(objects, &Options::default()).await;
        let mut found = Findings::default();
        check_known(&view, known, &mut found);
        problems(&found)
    }

    fn sha(objects: &Objects, key: &str) -> String {
        crate::evidence::sha256_hex(&objects[key])
    }

    #[tokio::test]
    async fn the_head_is_the_newest_checkpoint_and_the_library_agrees() {
        let fx = Fixture::standard().await;
        let objects = fx.objects();
        let cps = checkpoints(&objects);
        let view = load_objects(objects.clone(), &Options::default()).await;
        let hs = heads(&view);
        assert_eq!(hs.len(), 1);
        let h = newest(&hs).unwrap();
        assert_eq!(h.checkpoint, cps[2]);
        assert_eq!(h.sha256, sha(&objects, &cps[2]));
        assert_eq!(h.agent, "agent");
        let store = MemStore::from_objects(objects.clone());
        assert_eq!(head(&store, None).await.unwrap().as_ref(), Some(h));
        // A checkpoint that does not open is never the head.
        let mut planted = objects;
        let late = layout::checkpoint(crate::verify::testing::day(400), "planted");
        planted.insert(late, b"not a checkpoint".to_vec());
        let store = MemStore::from_objects(planted);
        assert_eq!(head(&store, None).await.unwrap().as_ref(), Some(h));
        assert_eq!(head(&MemStore::new(), None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_known_head_must_be_the_newest_or_an_ancestor() {
        let fx = Fixture::standard().await;
        let objects = fx.objects();
        let cps = checkpoints(&objects);
        for cp in &cps {
            assert_eq!(
                known_problems(objects.clone(), &sha(&objects, cp)).await,
                []
            );
        }
        // Upper case, as some tools print it.
        let upper = sha(&objects, &cps[1]).to_uppercase();
        assert_eq!(known_problems(objects.clone(), &upper).await, []);

        // The newest run deleted whole: its checkpoint is gone.
        let mut truncated = objects.clone();
        truncated.remove(&cps[2]);
        truncated.remove(&layout::record("iam/111", 3));
        truncated.remove(&layout::record("git/app", 3));
        assert_eq!(
            known_problems(truncated, &sha(&objects, &cps[2])).await,
            [(layout::CHECKPOINTS.to_string(), "known_head_missing")]
        );

        // A checkpoint that does not open.
        let mut garbled = objects.clone();
        garbled.insert(cps[1].clone(), b"garbled".to_vec());
        let garbled_sha = crate::evidence::sha256_hex(b"garbled");
        assert_eq!(
            known_problems(garbled, &garbled_sha).await,
            [(cps[1].clone(), "known_head_invalid")]
        );
    }

    #[tokio::test]
    async fn a_known_head_cut_off_by_a_middle_deletion_is_not_an_ancestor() {
        let fx = Fixture::standard().await;
        fx.run_entries(3, vec![entry("iam/111", 3, Status::Ok)])
            .await;
        let objects = fx.objects();
        let cps = checkpoints(&objects);
        // The checkpoint after the pinned one is gone: the newest no longer
        // reaches it.
        let mut cut = objects.clone();
        cut.remove(&cps[2]);
        assert_eq!(
            known_problems(cut, &sha(&objects, &cps[1])).await,
            [(cps[1].clone(), "known_head_not_ancestor")]
        );
    }
}
