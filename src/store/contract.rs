//! The contract every [`Store`] keeps, as one check that runs against each
//! backend: the memory store, the filesystem store and the spool (unit
//! tests), and S3 on a real S3 peer (an integration test). Public so that
//! both kinds of test share it; not part of the API.
//!
//! What it checks, on a fresh, empty store:
//! - `get`, `exists` and `hash` of a missing key say it is missing;
//! - `put_new` never overwrites: a second write of a key fails with
//!   [`StoreError::Exists`] and the first bytes stay, also when two writes
//!   race;
//! - `hash` is the SHA-256 and size of what was written;
//! - `list` is sorted, holds exactly the keys under its prefix, nested ones
//!   included, and keys outside the evidence layout (strays, which `verify`
//!   must see) like any other;
//! - keys and prefixes that are not plain names (`..`, `.`, empty segments,
//!   hidden names, a leading `/`) are refused by every operation, and
//!   nothing is written;
//! - large objects round-trip, through `put_new` and, where the backend
//!   has them, through its [`FileWrites`];
//! - a lease excludes a second holder, leaves other names free and, where
//!   the backend releases on drop, can be taken once dropped.
//!
//! A spool accepts a second write of a payload blob it has already shipped
//! (it keeps no copy of payloads; the remote refuses the write when it is
//! shipped, keeping the first bytes), so the check writes twice only to
//! records, which every backend refuses at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, Utc};

use super::{FileWrites, Store, StoreError};
use crate::evidence::{layout, sha256_hex};

/// What differs between backends by design.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Whether a dropped lease can be taken by another holder (at once, or
    /// within seconds where the backend releases in the background). False
    /// for the spool, which holds its leases in the remote store for as
    /// long as it may still ship.
    pub leases_released_on_drop: bool,
    /// Size in bytes of the large objects written.
    pub large: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            leases_released_on_drop: true,
            // Over the sizes where clients switch strategies (8 MB parts),
            // and not a power of two.
            large: 9 * 1024 * 1024 + 7,
        }
    }
}

/// Checks every rule of the contract on `store`, which must be empty;
/// `rival` is another handle on the same store, as a second process would
/// hold it (for the leases). Fails naming the first rule broken.
pub async fn check(
    store: Arc<dyn Store>,
    rival: Arc<dyn Store>,
    rules: &Rules,
) -> anyhow::Result<()> {
    missing(store.as_ref()).await.context("missing keys")?;
    never_overwrites(store.as_ref())
        .await
        .context("put_new never overwrites")?;
    listing(store.as_ref()).await.context("list")?;
    refusals(store.as_ref()).await.context("unsafe keys")?;
    large(&store, rules.large).await.context("large objects")?;
    leases(store.as_ref(), rival.as_ref(), rules)
        .await
        .context("leases")?;
    Ok(())
}

async fn missing(store: &dyn Store) -> anyhow::Result<()> {
    let key = layout::record("contract/missing", 1);
    ensure!(store.get(&key).await?.is_none(), "get of {key} is not None");
    ensure!(!store.exists(&key).await?, "{key} exists");
    ensure!(
        store.hash(&key).await?.is_none(),
        "hash of {key} is not None"
    );
    ensure!(
        store.list(layout::RECORDS).await?.is_empty(),
        "the store is not empty"
    );
    Ok(())
}

async fn same_object(store: &dyn Store, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let got = store
        .get(key)
        .await?
        .with_context(|| format!("{key} vanished"))?;
    ensure!(
        got == bytes,
        "{key} holds {} bytes, not the {} written",
        got.len(),
        bytes.len()
    );
    ensure!(store.exists(key).await?, "{key} does not exist");
    let hash = store.hash(key).await?;
    ensure!(
        hash == Some((sha256_hex(bytes), bytes.len() as u64)),
        "hash of {key} is {hash:?}, not the SHA-256 and size of its bytes"
    );
    Ok(())
}

async fn never_overwrites(store: &dyn Store) -> anyhow::Result<()> {
    let key = layout::record("contract/once", 1);
    store.put_new(&key, b"first").await?;
    same_object(store, &key, b"first").await?;
    for bytes in [&b"second"[..], b"first"] {
        match store.put_new(&key, bytes).await {
            Err(StoreError::Exists(k)) => ensure!(k == key, "Exists names {k}, not {key}"),
            other => bail!("a second write of {key} answered {other:?}, not Exists"),
        }
    }
    same_object(store, &key, b"first").await?;

    // Two writers racing for one key: exactly one wins, and its bytes stay.
    let key = layout::record("contract/race", 1);
    let (a, b) = futures::join!(store.put_new(&key, b"a"), store.put_new(&key, b"b"));
    let winner: &[u8] = match (a, b) {
        (Ok(()), Err(StoreError::Exists(_))) => b"a",
        (Err(StoreError::Exists(_)), Ok(())) => b"b",
        other => bail!("racing writes of {key} answered {other:?}"),
    };
    same_object(store, &key, winner).await
}

async fn listing(store: &dyn Store) -> anyhow::Result<()> {
    let stream = "contract/list";
    let nested = "contract/list/nested";
    let stray = format!("{}stray.txt", layout::stream_prefix(stream));
    let blob = layout::blob(&sha256_hex(b"payload"));
    let at: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().expect("a valid time");
    let checkpoint = layout::checkpoint(at, "run-1");
    // Written out of order: the listing sorts.
    let written = [
        layout::record(stream, 2),
        layout::record(nested, 1),
        stray.clone(),
        layout::record(stream, 1),
        blob.clone(),
        checkpoint.clone(),
        layout::public_key("0123456789abcdef"),
    ];
    for key in &written {
        store.put_new(key, key.as_bytes()).await?;
    }
    let under = |prefix: &str| -> Vec<String> {
        let mut keys: Vec<String> = written
            .iter()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    for prefix in [
        layout::stream_prefix(stream),
        layout::stream_prefix(nested),
        layout::BLOBS.to_string(),
        layout::CHECKPOINTS.to_string(),
        layout::KEYS.to_string(),
        layout::TSA.to_string(),
    ] {
        let listed = store.list(&prefix).await?;
        ensure!(
            listed == under(&prefix),
            "list({prefix}) is {listed:?}, not {:?}",
            under(&prefix)
        );
    }
    let all = store.list("").await?;
    let mut sorted = all.clone();
    sorted.sort();
    ensure!(all == sorted, "list(\"\") is not sorted: {all:?}");
    for key in &written {
        ensure!(all.contains(key), "list(\"\") lacks {key}: {all:?}");
    }
    ensure!(
        store
            .list(&layout::stream_prefix("contract/none"))
            .await?
            .is_empty(),
        "an empty prefix lists keys"
    );
    Ok(())
}

async fn refusals(store: &dyn Store) -> anyhow::Result<()> {
    let before = store.list("").await?;
    let good = layout::record("contract/refused", 1);
    let bad = [
        layout::record("../escape", 1),
        layout::record("contract/./x", 1),
        layout::record("contract//x", 1),
        layout::record("contract/.hidden", 1),
        format!("/{good}"),
        format!("{good}/"),
        String::new(),
    ];
    for key in &bad {
        refused("put_new", key, store.put_new(key, b"x").await)?;
        refused("get", key, store.get(key).await)?;
        refused("exists", key, store.exists(key).await)?;
        refused("hash", key, store.hash(key).await)?;
    }
    for prefix in [layout::stream_prefix(".."), "records".to_string()] {
        refused("list", &prefix, store.list(&prefix).await)?;
    }
    let after = store.list("").await?;
    ensure!(after == before, "refused writes left {after:?}");
    Ok(())
}

fn refused<T: std::fmt::Debug>(
    what: &str,
    key: &str,
    answer: Result<T, StoreError>,
) -> anyhow::Result<()> {
    match answer {
        Err(StoreError::Config(_)) => Ok(()),
        other => bail!("{what}(`{key}`) answered {other:?}, not a refusal"),
    }
}

/// Bytes that no compression or deduplication flatters.
fn pattern(len: usize, salt: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(salt).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

async fn large(store: &Arc<dyn Store>, len: usize) -> anyhow::Result<()> {
    let bytes = pattern(len, 1);
    let key = layout::blob(&sha256_hex(&bytes));
    store.put_new(&key, &bytes).await?;
    same_object(store.as_ref(), &key, &bytes).await?;

    let Some(files) = store.file_writes() else {
        return Ok(());
    };
    // A staged file, handed over.
    let bytes = pattern(len, 2);
    let key = layout::blob(&sha256_hex(&bytes));
    let staged = stage(files, &bytes)?;
    let staged_path = staged.path().to_path_buf();
    files.put_new_file(&key, staged).await?;
    same_object(store.as_ref(), &key, &bytes).await?;
    ensure!(
        !staged_path.exists(),
        "the staged file {} outlived its write",
        staged_path.display()
    );

    // A file that stays where it is.
    let bytes = pattern(len, 3);
    let key = layout::blob(&sha256_hex(&bytes));
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("object");
    std::fs::write(&path, &bytes)?;
    files.put_new_from_path(&key, &path).await?;
    same_object(store.as_ref(), &key, &bytes).await?;
    ensure!(std::fs::read(&path)? == bytes, "the source file changed");

    // Neither overwrites.
    let key = layout::record("contract/files", 1);
    store.put_new(&key, b"first").await?;
    match files.put_new_file(&key, stage(files, b"second")?).await {
        Err(StoreError::Exists(_)) => {}
        other => bail!("put_new_file over {key} answered {other:?}, not Exists"),
    }
    match files.put_new_from_path(&key, &path).await {
        Err(StoreError::Exists(_)) => {}
        other => bail!("put_new_from_path over {key} answered {other:?}, not Exists"),
    }
    same_object(store.as_ref(), &key, b"first").await
}

fn stage(files: &dyn FileWrites, bytes: &[u8]) -> anyhow::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let dir = files.staging_dir().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir)?;
    let mut file = tempfile::NamedTempFile::new_in(&dir)?;
    file.write_all(bytes)?;
    file.flush()?;
    Ok(file)
}

async fn leases(store: &dyn Store, rival: &dyn Store, rules: &Rules) -> anyhow::Result<()> {
    let name = "stream/contract/leased";
    let held = store.lease(name).await?;
    match rival.lease(name).await {
        Err(StoreError::Locked { what, .. }) => {
            ensure!(what == name, "Locked names {what}, not {name}")
        }
        other => bail!("a second holder of {name} got {other:?}, not Locked"),
    }
    let other = rival
        .lease("stream/contract/other")
        .await
        .context("another name is free")?;
    drop(held);
    if rules.leases_released_on_drop {
        // Some backends release in the background (S3 deletes the lease
        // object after the drop).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rival.lease(name).await {
                Ok(_) => break,
                Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => bail!("{name} was not released when dropped: {e}"),
            }
        }
    }
    drop(other);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::store::Lease;
    use crate::store::fs::FsStore;
    use crate::store::mem::MemStore;
    use crate::store::spool::Spool;

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        let store = MemStore::new();
        check(Arc::new(store.clone()), Arc::new(store), &Rules::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_filesystem_store_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = Arc::new(FsStore::new(root.clone()));
        // Another process's handle: its own lock files.
        let rival = Arc::new(FsStore::new(root.clone()));
        check(store, rival, &Rules::default()).await.unwrap();
        // Staging and temporary files are not left behind.
        let leftovers: Vec<_> = walkdir(&root)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".tmp"))
                    || p.parent().is_some_and(|d| d.ends_with(".staging"))
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(walkdir(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_spool_keeps_the_contract_while_it_ships() {
        let dir = tempfile::tempdir().unwrap();
        let remote = MemStore::new();
        let spool = Spool::open(dir.path(), Arc::new(remote.clone()))
            .await
            .unwrap();
        let rules = Rules {
            leases_released_on_drop: false,
            ..Rules::default()
        };
        check(Arc::new(spool.clone()), Arc::new(spool.clone()), &rules)
            .await
            .unwrap();
        assert_eq!(spool.flush(Duration::from_secs(30)).await, 0);
        // Everything it took reached the remote, and nothing else.
        assert_eq!(
            remote.list("").await.unwrap(),
            spool.list("").await.unwrap()
        );
    }

    /// A store that overwrites: the check must catch it.
    #[derive(Debug, Default)]
    struct Careless(Mutex<BTreeMap<String, Vec<u8>>>);

    #[async_trait]
    impl Store for Careless {
        async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.0.lock().unwrap().insert(key.into(), bytes.to_vec());
            Ok(())
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            let objects = self.0.lock().unwrap();
            Ok(objects
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect())
        }
        async fn exists(&self, key: &str) -> Result<bool, StoreError> {
            Ok(self.0.lock().unwrap().contains_key(key))
        }
        async fn lease(&self, _: &str) -> Result<Box<dyn Lease>, StoreError> {
            Err(StoreError::Config("no leases".into()))
        }
        fn describe(&self) -> String {
            "careless".into()
        }
    }

    #[tokio::test]
    async fn a_store_that_overwrites_breaks_the_contract() {
        let store = Arc::new(Careless::default());
        let err = check(store.clone(), store, &Rules::default())
            .await
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.starts_with("put_new never overwrites: "), "{err}");
        assert!(err.contains("not Exists"), "{err}");
    }
}
