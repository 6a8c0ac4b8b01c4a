//! The keys check: the store's published keys are well-formed and named by
//! their ids, there is a key to verify with, and there is evidence at all.

use super::Findings;
use super::load::{KeyFile, Loaded};
use crate::evidence::layout;

/// Reports misnamed and malformed key files, and a store with no key or
/// nothing at all.
pub(super) fn check(view: &Loaded, found: &mut Findings) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::keys::{KeyRing, Signer};
    use crate::verify::Options;
    use crate::verify::testing::{Fixture, Objects, load_objects, problems};

    async fn keys_problems(objects: Objects, opts: &Options) -> Vec<(String, &'static str)> {
        let view = load_objects(objects, opts).await;
        let mut found = Findings::default();
        check(&view, &mut found);
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
        check(&view, &mut found);
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
}
