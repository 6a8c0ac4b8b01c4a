//! Reading the store once, into the view every check works on: the trusted
//! keys and TSA certificates and where they came from, every record opened
//! (its signature checked) and grouped by stream in sequence order, every
//! checkpoint opened, and the raw checkpoint listing with each checkpoint's
//! hash.
//!
//! Loading judges nothing: what cannot be opened is kept, with why, for the
//! check that owns it to report. Payload blobs and RFC 3161 tokens are not
//! loaded: the checks that need them read them one at a time, so that
//! memory follows the number of objects rather than their size.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::Options;
use crate::evidence::checkpoint::{Checkpoint, open_checkpoint};
use crate::evidence::keys::{KeyRing, PublicKey};
use crate::evidence::record::{Record, open_record};
use crate::evidence::timestamp::TrustAnchors;
use crate::evidence::{layout, sha256_hex};
use crate::store::{Store, StoreError};

/// Where the keys came from when `--key` gave them.
pub(super) const KEYS_GIVEN: &str = "given with --key";
/// Where the keys came from when the store's own `keys/` were trusted.
pub(super) const KEYS_FROM_STORE: &str =
    "the store's keys/ (not independent: pass --key with your own copy)";
/// Where the TSA certificates came from when the store's `tsa/` was trusted.
pub(super) const TSA_FROM_STORE: &str =
    "the store's tsa/ (not independent: pass --tsa-cert with the TSA's CA certificate)";

/// A read that may find nothing.
pub(super) type Fetched<T> = Result<Option<T>, StoreError>;

/// The store as read for verification.
#[derive(Debug)]
pub(super) struct Loaded {
    /// The store, for the checks that read payloads and tokens.
    pub store: Arc<dyn Store>,
    /// The keys signatures are checked with.
    pub keys: KeyRing,
    /// Where they came from, for the verdict.
    pub keys_from: String,
    /// What each file of the store's `keys/` held (empty with `--key`).
    pub key_files: Vec<(String, KeyFile)>,
    /// The TSA certificates tokens are checked against.
    pub tsa: TsaTrust,
    /// How many keys `records/` lists, whatever their names.
    pub records_listed: usize,
    /// Records read, opened or not.
    pub records_read: usize,
    /// The records that opened, by the stream their key names, each stream
    /// in the order of the numbers in the keys (misnumbered keys last).
    pub streams: BTreeMap<String, Vec<LoadedRecord>>,
    /// Records that did not open (bad signature, malformed): key and why.
    pub bad_records: Vec<(String, String)>,
    /// Every key under `checkpoints/`: checkpoints, tokens, stray files.
    pub checkpoint_listing: Vec<String>,
    /// The SHA-256 of every checkpoint's bytes, opened or not: a token is
    /// checked against the bytes, so that an edited checkpoint is also an
    /// imprint mismatch.
    pub checkpoint_hashes: BTreeMap<String, String>,
    /// The checkpoints that opened, in listing order.
    pub checkpoints: Vec<Checkpoint>,
    /// Checkpoints that did not open: key and why.
    pub bad_checkpoints: Vec<(String, String)>,
}

/// One opened record and what its key says.
#[derive(Debug)]
pub(super) struct LoadedRecord {
    /// Its store key.
    pub key: String,
    /// The number in its key; `None` when the file name is not one.
    pub seq_from_key: Option<u64>,
    /// The record.
    pub record: Record,
}

/// What a file under `keys/` held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyFile {
    /// A public key, named by its id: it is in the key ring.
    Trusted,
    /// A public key under another key's name (its id here): not trusted.
    Misnamed(String),
    /// Not a public key: why.
    Malformed(String),
}

/// The TSA certificates trusted, and what the store's `tsa/` held.
#[derive(Debug, Default)]
pub(super) struct TsaTrust {
    /// The certificates.
    pub anchors: TrustAnchors,
    /// Where they came from; `None` when there are none.
    pub from: Option<String>,
    /// What each file of the store's `tsa/` held (empty with `--tsa-cert`).
    pub files: Vec<(String, TsaFile)>,
}

/// What a file under `tsa/` held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TsaFile {
    /// Certificates, named by the SHA-256 of one of them.
    Named,
    /// Certificates under a name that is none of theirs (still trusted, as
    /// the agent trusted them).
    Misnamed,
    /// Not PEM certificates: why.
    Malformed(String),
}

impl Loaded {
    /// Every opened record, stream by stream.
    pub fn records(&self) -> impl Iterator<Item = &LoadedRecord> {
        self.streams.values().flatten()
    }

    /// The opened records by key.
    pub fn record_index(&self) -> HashMap<&str, &LoadedRecord> {
        self.records().map(|l| (l.key.as_str(), l)).collect()
    }

    /// When the newest checkpoint finished.
    pub fn newest_checkpoint_at(&self) -> Option<DateTime<Utc>> {
        self.checkpoints
            .iter()
            .map(|c| c.predicate().finished_at)
            .max()
    }
}

/// Reads `store` for verification with `opts`.
pub(super) async fn load(store: Arc<dyn Store>, opts: &Options) -> Result<Loaded, StoreError> {
    let (keys, keys_from, key_files) = match &opts.keys {
        Some(k) => (k.clone(), KEYS_GIVEN.to_string(), Vec::new()),
        None => {
            let (ring, files) = store_keys(store.as_ref()).await?;
            (ring, KEYS_FROM_STORE.to_string(), files)
        }
    };
    let record_listing = store.list(layout::RECORDS).await?;
    let records_listed = record_listing.len();
    // Each record is opened as it arrives and its bytes dropped, so that
    // memory follows the number of records, not their size.
    let opened: Vec<(String, Fetched<Result<Record, String>>)> =
        futures::stream::iter(record_listing.into_iter().filter(|k| k.ends_with(".json")))
            .map(|k| {
                let store = store.clone();
                let keys = &keys;
                async move {
                    let r = store
                        .get(&k)
                        .await
                        .map(|b| b.map(|b| open_record(&b, keys).map_err(|e| e.to_string())));
                    (k, r)
                }
            })
            .buffered(32)
            .collect()
            .await;
    let mut streams: BTreeMap<String, Vec<LoadedRecord>> = BTreeMap::new();
    let mut bad_records = Vec::new();
    let mut records_read = 0;
    for (key, opened) in opened {
        let Some(opened) = opened? else { continue };
        records_read += 1;
        let (stream, seq_from_key) = split_record_key(&key);
        match opened {
            Ok(record) => streams.entry(stream).or_default().push(LoadedRecord {
                key,
                seq_from_key,
                record,
            }),
            Err(e) => bad_records.push((key, e)),
        }
    }
    for records in streams.values_mut() {
        // Stable: misnumbered keys stay in listing order, after the others.
        records.sort_by_key(|l| l.seq_from_key.unwrap_or(u64::MAX));
    }

    let checkpoint_listing = store.list(layout::CHECKPOINTS).await?;
    let mut checkpoint_hashes = BTreeMap::new();
    let mut checkpoints = Vec::new();
    let mut bad_checkpoints = Vec::new();
    for key in &checkpoint_listing {
        if !layout::is_checkpoint(key) {
            continue;
        }
        let Some(bytes) = store.get(key).await? else {
            continue;
        };
        checkpoint_hashes.insert(key.clone(), sha256_hex(&bytes));
        match open_checkpoint(key, &bytes, &keys) {
            Ok(c) => checkpoints.push(c),
            Err(e) => bad_checkpoints.push((key.clone(), e.to_string())),
        }
    }

    let tsa = match &opts.timestamps.trust {
        Some((anchors, from)) => TsaTrust {
            anchors: anchors.clone(),
            from: Some(from.clone()),
            files: Vec::new(),
        },
        None => store_tsa(store.as_ref()).await?,
    };

    Ok(Loaded {
        store,
        keys,
        keys_from,
        key_files,
        tsa,
        records_listed,
        records_read,
        streams,
        bad_records,
        checkpoint_listing,
        checkpoint_hashes,
        checkpoints,
        bad_checkpoints,
    })
}

/// The keys of the store's `keys/`: only a key named by its own id is
/// trusted.
pub(super) async fn store_keys(
    store: &dyn Store,
) -> Result<(KeyRing, Vec<(String, KeyFile)>), StoreError> {
    let mut ring = KeyRing::default();
    let mut files = Vec::new();
    for key in store.list(layout::KEYS).await? {
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        let file = match PublicKey::from_pem(&String::from_utf8_lossy(&bytes)) {
            Ok(k) if key == layout::public_key(k.id()) => {
                ring.insert(k);
                KeyFile::Trusted
            }
            Ok(k) => KeyFile::Misnamed(k.id().to_string()),
            Err(e) => KeyFile::Malformed(e),
        };
        files.push((key, file));
    }
    Ok((ring, files))
}

/// The certificates of the store's `tsa/`, all trusted, misnamed or not.
async fn store_tsa(store: &dyn Store) -> Result<TsaTrust, StoreError> {
    let mut trust = TsaTrust::default();
    for key in store.list(layout::TSA).await? {
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        let file = match TrustAnchors::from_pem(&bytes) {
            Ok(certs) => {
                let named = certs
                    .pems()
                    .iter()
                    .any(|(sha, _)| key == layout::tsa_cert(sha));
                trust.anchors.extend(certs);
                if named {
                    TsaFile::Named
                } else {
                    TsaFile::Misnamed
                }
            }
            Err(e) => TsaFile::Malformed(e),
        };
        trust.files.push((key, file));
    }
    trust.from = (!trust.anchors.is_empty()).then(|| TSA_FROM_STORE.to_string());
    Ok(trust)
}

/// A record's key → (stream, seq); the number is `None` when the file name
/// is not a well-formed record number.
pub(super) fn split_record_key(key: &str) -> (String, Option<u64>) {
    match layout::stream_record(key) {
        Some((stream, seq)) => (stream, Some(seq)),
        None => (layout::stream_of(key).unwrap_or_default().to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testing::{Fixture, load_objects};

    #[tokio::test]
    async fn records_are_grouped_by_stream_in_number_order_and_bad_ones_kept_aside() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        let second = layout::record("iam/111", 2);
        objects.insert(second.clone(), b"not an envelope".to_vec());
        let view = load_objects(objects, &Options::default()).await;
        assert_eq!(view.records_read, 6);
        assert_eq!(view.records_listed, 6);
        assert_eq!(
            view.streams.keys().collect::<Vec<_>>(),
            ["git/app", "iam/111"]
        );
        let seqs = |s: &str| {
            view.streams[s]
                .iter()
                .map(|l| l.seq_from_key)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs("git/app"), [Some(1), Some(2), Some(3)]);
        assert_eq!(seqs("iam/111"), [Some(1), Some(3)]);
        assert_eq!(view.bad_records.len(), 1);
        assert_eq!(view.bad_records[0].0, second);
        assert_eq!(view.checkpoints.len(), 3);
        assert_eq!(view.checkpoint_hashes.len(), 3);
        assert_eq!(view.keys_from, KEYS_FROM_STORE);
        assert_eq!(view.key_files, [(fx.key_file(), KeyFile::Trusted)]);
        assert_eq!(view.record_index().len(), 5);
    }

    #[tokio::test]
    async fn given_keys_and_tsa_certificates_replace_the_stores() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        objects.insert(layout::public_key("00"), b"junk".to_vec());
        objects.insert(layout::tsa_cert(&"0".repeat(64)), b"junk".to_vec());
        let view = load_objects(objects.clone(), &Options::default()).await;
        assert_eq!(view.key_files.len(), 2);
        assert_eq!(view.tsa.files.len(), 1);
        assert!(view.tsa.from.is_none(), "nothing trusted, so from nowhere");

        let mut ring = KeyRing::default();
        ring.insert(fx.signer.public());
        let opts = Options {
            keys: Some(ring),
            timestamps: crate::verify::TimestampOptions {
                trust: Some((TrustAnchors::default(), "given".into())),
                ..Default::default()
            },
            ..Default::default()
        };
        let view = load_objects(objects, &opts).await;
        assert_eq!(view.keys_from, KEYS_GIVEN);
        assert!(view.key_files.is_empty());
        assert!(view.tsa.files.is_empty());
        assert_eq!(view.tsa.from.as_deref(), Some("given"));
        assert_eq!(view.checkpoints.len(), 3, "opened with the given key");
    }

    #[test]
    fn record_keys_split_into_stream_and_number() {
        assert_eq!(
            split_record_key(&layout::record("a/b", 12)),
            ("a/b".to_string(), Some(12))
        );
        assert_eq!(
            split_record_key("records/a/b/12.json"),
            ("a/b".to_string(), None)
        );
    }
}
