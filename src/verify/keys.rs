//! The keys check: the store's published keys are well-formed and named by
//! their ids, there is a key to verify with, and there is evidence at all;
//! and every key is used within its window.
//!
//! A key's window opens with the agent's first checkpoint (the key that
//! signs it is where the chain starts) or with the rotation checkpoint that
//! introduces it, signed by the key it retires; the check of
//! `checkpoints.rs` closes it at that retirement. A key that neither starts
//! a chain nor was introduced by a rotation is trusted by nothing but its
//! presence — in `keys/` or on the auditor's command line — and is a
//! problem: someone holding only a new key could otherwise re-sign the
//! history from before its rotation and drop the rotation. Records and
//! checkpoints dated before their key's rotation are problems too.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::load::{KEYS_GIVEN, KeyFile, Loaded};
use super::{Findings, Options};
use crate::evidence::layout;

/// Reports misnamed and malformed key files, a store with no key or
/// nothing at all, keys no rotation introduced, and signatures made before
/// their key's window opened.
pub(super) fn check(view: &Loaded, opts: &Options, found: &mut Findings) {
    for (key, file) in &view.key_files {
        match file {
            KeyFile::Trusted => {}
            KeyFile::Misnamed(id) => found.problem(key, "key_misnamed", format!("holds key {id}")),
            KeyFile::Malformed(e) => found.problem(key, "key_malformed", e.clone()),
        }
    }
    let empty =
        view.keys.is_empty() && view.records_listed == 0 && view.checkpoint_listing.is_empty();
    if empty {
        // Never "intact" over nothing: a mistyped path must not pass.
        found.problem(
            &view.store.describe(),
            "empty_store",
            "no evidence here: no keys, records or checkpoints".into(),
        );
    } else if view.keys.is_empty() {
        found.problem(
            layout::KEYS,
            "no_keys",
            "no public key to verify signatures with".into(),
        );
    }
    windows(view, opts, found);
}

/// Where a key's window opens: the rotation checkpoint that introduced it,
/// and when that finished.
type Introduced<'a> = BTreeMap<&'a str, (DateTime<Utc>, &'a str)>;

/// The keys introduced by a rotation (signed by the key it retires), each
/// at its earliest such rotation.
fn introduced(view: &Loaded) -> Introduced<'_> {
    let mut introduced: Introduced<'_> = BTreeMap::new();
    for c in &view.checkpoints {
        let Some(r) = &c.predicate().rotation else {
            continue;
        };
        // A rotation signed by another key is `bad_rotation`, and
        // introduces nothing.
        if c.key_id != r.retired_key {
            continue;
        }
        let at = c.predicate().finished_at;
        let entry = introduced
            .entry(r.new_key.as_str())
            .or_insert((at, c.key.as_str()));
        if at < entry.0 {
            *entry = (at, c.key.as_str());
        }
    }
    introduced
}

/// The keys that start a chain: the signers of the agents' first
/// checkpoints or, in a store with no checkpoint at all (its first run was
/// interrupted), of its earliest record.
fn origins(view: &Loaded) -> BTreeSet<&str> {
    if view.checkpoints.is_empty() {
        return view
            .records()
            .min_by_key(|l| l.record.predicate().started_at)
            .map(|l| l.record.key_id.as_str())
            .into_iter()
            .collect();
    }
    view.checkpoints
        .iter()
        .filter(|c| c.predicate().prev.is_none())
        .map(|c| c.key_id.as_str())
        .collect()
}

fn windows(view: &Loaded, opts: &Options, found: &mut Findings) {
    let introduced = introduced(view);
    // A bundle's period may start after the first checkpoint and after a
    // rotation: only what it holds can be judged. A store in which nothing
    // is signed yet (the first run was stopped after publishing its key)
    // trusts no key with anything.
    let nothing_signed = view.checkpoints.is_empty() && view.records().next().is_none();
    if opts.bundle.is_none() && !nothing_signed {
        let origins = origins(view);
        for id in view.keys.ids() {
            if introduced.contains_key(id) || origins.contains(id) {
                continue;
            }
            let records = view.records().filter(|l| l.record.key_id == id).count();
            let checkpoints = view.checkpoints.iter().filter(|c| c.key_id == id).count();
            let whose = if view.keys_from == KEYS_GIVEN {
                "given with --key, but"
            } else {
                "in keys/, but"
            };
            found.problem(
                &layout::public_key(id),
                "key_not_introduced",
                format!(
                    "key {id} is {whose} no rotation signed by a previous key introduces it, \
                     and it signs no agent's first checkpoint (it signs {records} record(s) and \
                     {checkpoints} checkpoint(s)); history re-signed without its rotation, or a \
                     key added to the store, is not trusted"
                ),
            );
        }
    }
    for l in view.records() {
        let p = l.record.predicate();
        if let Some((at, by)) = introduced.get(l.record.key_id.as_str())
            && p.started_at < *at
        {
            found.problem(
                &l.key,
                "key_window",
                format!(
                    "dated {}, but signed by key {}, which rotation {by} introduced only at {}",
                    p.started_at.to_rfc3339(),
                    l.record.key_id,
                    at.to_rfc3339()
                ),
            );
        }
    }
    for c in &view.checkpoints {
        let p = c.predicate();
        if let Some((at, by)) = introduced.get(c.key_id.as_str())
            && p.finished_at < *at
        {
            found.problem(
                &c.key,
                "key_window",
                format!(
                    "finished {}, but signed by key {}, which rotation {by} introduced only at {}",
                    p.finished_at.to_rfc3339(),
                    c.key_id,
                    at.to_rfc3339()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::keys::{KeyRing, Signer};
    use crate::verify::Options;
    use crate::verify::testing::{
        Fixture, Objects, STREAMS, checkpoints, load_objects, problems, resign_checkpoint,
        resign_record,
    };
    use std::sync::Arc;

    fn given(keys: &[&Signer]) -> Options {
        let mut ring = KeyRing::default();
        for k in keys {
            ring.insert(k.public());
        }
        Options {
            keys: Some(ring),
            ..Default::default()
        }
    }

    async fn keys_problems(objects: Objects, opts: &Options) -> Vec<(String, &'static str)> {
        let view = load_objects(objects, opts).await;
        let mut found = Findings::default();
        check(&view, opts, &mut found);
        problems(&found)
    }

    #[tokio::test]
    async fn a_written_store_has_no_key_problem() {
        let fx = Fixture::standard().await;
        assert_eq!(keys_problems(fx.objects(), &Options::default()).await, []);
    }

    #[tokio::test]
    async fn a_key_under_another_name_or_a_garbage_key_file_is_reported() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        let other = Signer::generate();
        let misnamed = layout::public_key(&"0".repeat(16));
        objects.insert(misnamed.clone(), other.public().to_pem().into_bytes());
        let garbage = layout::public_key(&"1".repeat(16));
        objects.insert(garbage.clone(), b"not a key".to_vec());
        let view = load_objects(objects.clone(), &Options::default()).await;
        assert_eq!(view.keys.len(), 1, "neither is trusted");
        let mut found = Findings::default();
        check(&view, &Options::default(), &mut found);
        assert_eq!(
            problems(&found),
            [
                (misnamed.clone(), "key_misnamed"),
                (garbage, "key_malformed")
            ]
        );
        assert_eq!(
            found.problems[0].message,
            format!("holds key {}", other.key_id())
        );

        // With keys given, the store's keys/ are not read at all.
        let mut ring = KeyRing::default();
        ring.insert(fx.signer.public());
        let given = Options {
            keys: Some(ring),
            ..Default::default()
        };
        assert_eq!(keys_problems(objects, &given).await, []);
    }

    #[tokio::test]
    async fn records_without_a_key_are_no_keys_and_nothing_at_all_is_an_empty_store() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        objects.remove(&fx.key_file());
        assert_eq!(
            keys_problems(objects, &Options::default()).await,
            [(layout::KEYS.to_string(), "no_keys")]
        );
        assert_eq!(
            keys_problems(Objects::new(), &Options::default()).await,
            [("memory".to_string(), "empty_store")]
        );
        // A checkpoint alone is not nothing.
        let mut only_checkpoints = fx.objects();
        only_checkpoints.retain(|k, _| k.starts_with(layout::CHECKPOINTS));
        assert_eq!(
            keys_problems(only_checkpoints, &Options::default()).await,
            [(layout::KEYS.to_string(), "no_keys")]
        );
    }

    #[tokio::test]
    async fn a_key_signs_only_from_the_rotation_that_introduced_it() {
        let fx = Fixture::standard().await;
        let old = fx.signer.clone();
        let new = Arc::new(Signer::generate());
        let (fx, rotation) = fx.rotate(3, new.clone()).await;
        fx.run(4, &STREAMS).await;
        let objects = fx.objects();
        assert_eq!(
            keys_problems(objects.clone(), &Options::default()).await,
            []
        );
        assert_eq!(
            keys_problems(objects.clone(), &given(&[old.as_ref(), new.as_ref()])).await,
            []
        );

        // History from before the rotation, re-signed by the new key.
        let iam1 = layout::record("iam/111", 1);
        let mut record = objects.clone();
        resign_record(&mut record, &iam1, &new, |_| {});
        let view = load_objects(record, &Options::default()).await;
        let mut found = Findings::default();
        check(&view, &Options::default(), &mut found);
        assert_eq!(problems(&found), [(iam1, "key_window")]);
        assert!(
            found.problems[0]
                .message
                .contains(&format!("which rotation {rotation} introduced only at")),
            "{}",
            found.problems[0].message
        );
        let cps = checkpoints(&objects);
        let mut checkpoint = objects.clone();
        resign_checkpoint(&mut checkpoint, &cps[1], &new, |_| {});
        assert_eq!(
            keys_problems(checkpoint, &Options::default()).await,
            [(cps[1].clone(), "key_window")]
        );

        // All of it re-signed by the new key alone, the rotation dropped:
        // the old key is then introduced by nothing, whether the store's
        // keys/ or the auditor's keys are trusted.
        let mut rewritten = objects.clone();
        rewritten.remove(&rotation);
        let signed: Vec<String> = rewritten
            .keys()
            .filter(|k| k.starts_with(layout::RECORDS))
            .cloned()
            .collect();
        for k in &signed {
            resign_record(&mut rewritten, k, &new, |_| {});
        }
        for k in checkpoints(&rewritten) {
            resign_checkpoint(&mut rewritten, &k, &new, |_| {});
        }
        let old_file = layout::public_key(old.key_id());
        assert_eq!(
            keys_problems(rewritten.clone(), &Options::default()).await,
            [(old_file.clone(), "key_not_introduced")]
        );
        assert_eq!(
            keys_problems(rewritten, &given(&[old.as_ref(), new.as_ref()])).await,
            [(old_file, "key_not_introduced")]
        );
    }

    #[tokio::test]
    async fn a_key_in_keys_or_given_that_no_rotation_introduced_is_a_problem() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        let stray = Signer::generate();
        let file = layout::public_key(stray.key_id());
        objects.insert(file.clone(), stray.public().to_pem().into_bytes());
        let view = load_objects(objects.clone(), &Options::default()).await;
        let mut found = Findings::default();
        check(&view, &Options::default(), &mut found);
        assert_eq!(problems(&found), [(file.clone(), "key_not_introduced")]);
        assert!(
            found.problems[0].message.contains("is in keys/, but"),
            "{}",
            found.problems[0].message
        );

        let opts = given(&[fx.signer.as_ref(), &stray]);
        let view = load_objects(fx.objects(), &opts).await;
        let mut found = Findings::default();
        check(&view, &opts, &mut found);
        assert_eq!(problems(&found), [(file, "key_not_introduced")]);
        assert!(found.problems[0].message.contains("given with --key"));

        // Nothing signed yet: no key is trusted with anything.
        let mut only_keys = objects.clone();
        only_keys.retain(|k, _| k.starts_with(layout::KEYS));
        assert_eq!(keys_problems(only_keys, &Options::default()).await, []);

        // A bundle's period may begin after the first checkpoint.
        let bundle = Options {
            bundle: Some(crate::verify::BundleScope::default()),
            ..Default::default()
        };
        assert_eq!(keys_problems(objects, &bundle).await, []);
    }
}
