//! The read side: what a store holds, as streams of records in sequence
//! order and their payloads, for every command that reads evidence (`list`,
//! `show`, `diff`, `report`, `export`, `sample`).
//!
//! A [`Reader`] lists the store once into an [`Index`] (stream → record
//! numbers), kept and extended by [`Reader::refresh`] as records land, and
//! reads records lazily, a few ahead of the consumer, so that walking
//! 100,000 records over S3 neither holds them all nor waits for each in
//! turn. It shows what records claim ([`Reader::new`]) or checks their
//! signatures first ([`Reader::checking`]); either way, what is wrong with
//! a record never panics and never hides it: the record comes back marked
//! ([`Record::flaw`]), and each command decides whether it can go on.
//! `verify` remains what checks a store end to end.

mod record;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use serde_json::Value;

use crate::evidence::keys::KeyRing;
use crate::evidence::{layout, sha256_hex};
use crate::store::{Store, StoreError};

pub use record::Record;

/// Records read ahead of the consumer: enough to hide S3's latency, few
/// enough that a walk stopped early reads little in vain.
const READ_AHEAD: usize = 8;

/// Why something could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record that cannot be read, or taken at its word.
    #[error("{key}: {reason}")]
    Record {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record's payload that cannot be read.
    #[error("payload of {key}: {reason}")]
    Payload {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The streams of a store and the numbers of their records, from one
/// listing. Keys under `records/` that are not records (strays, misnumbered
/// files) are left out; `verify` names them.
#[derive(Debug, Clone, Default)]
pub struct Index {
    streams: BTreeMap<String, Vec<u64>>,
}

impl Index {
    /// The index of these keys.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut streams: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for key in keys {
            if let Some((stream, seq)) = layout::stream_record(key) {
                streams.entry(stream).or_default().push(seq);
            }
        }
        for seqs in streams.values_mut() {
            seqs.sort_unstable();
            seqs.dedup();
        }
        Index { streams }
    }

    /// Every stream, in order, with its record numbers in order.
    pub fn streams(&self) -> impl Iterator<Item = (&str, &[u64])> {
        self.streams.iter().map(|(s, n)| (s.as_str(), n.as_slice()))
    }

    /// The record numbers of `stream`, in order; `None` when it has none.
    pub fn seqs(&self, stream: &str) -> Option<&[u64]> {
        self.streams.get(stream).map(Vec::as_slice)
    }

    /// Whether `stream` has records.
    pub fn contains(&self, stream: &str) -> bool {
        self.streams.contains_key(stream)
    }

    /// How many streams.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// How many records, in every stream.
    pub fn records(&self) -> usize {
        self.streams.values().map(Vec::len).sum()
    }

    /// The records of `newer` that this index lacks, by stream and number.
    fn added(&self, newer: &Index) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (stream, seqs) in newer.streams() {
            let known = self.seqs(stream).unwrap_or_default();
            out.extend(
                seqs.iter()
                    .filter(|n| known.binary_search(n).is_err())
                    .map(|n| (stream.to_string(), *n)),
            );
        }
        out
    }
}

/// Reads the records of a store.
#[derive(Debug)]
pub struct Reader {
    store: Arc<dyn Store>,
    keys: Option<KeyRing>,
    index: RwLock<Option<Arc<Index>>>,
}

impl Reader {
    /// A reader that shows what records claim, without checking their
    /// signatures.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Reader {
            store,
            keys: None,
            index: RwLock::new(None),
        }
    }

    /// A reader that checks every record's signature against `keys`; a
    /// record that fails comes back flawed, with what it claims.
    pub fn checking(store: Arc<dyn Store>, keys: KeyRing) -> Self {
        Reader {
            keys: Some(keys),
            ..Reader::new(store)
        }
    }

    /// The store read.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The store, for people.
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// The index of the store: listed on first use, then kept (see
    /// [`Reader::refresh`]).
    pub async fn index(&self) -> Result<Arc<Index>, StoreError> {
        let listed = self.index.read().expect("index lock").clone();
        match listed {
            Some(index) => Ok(index),
            None => Ok(self.relist().await?.0),
        }
    }

    /// Lists the store again and returns the records that landed since the
    /// index was last listed (every record, the first time), in order.
    pub async fn refresh(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.relist().await?.1)
    }

    async fn relist(&self) -> Result<(Arc<Index>, Vec<(String, u64)>), StoreError> {
        let keys = self.store.list(layout::RECORDS).await?;
        let newer = Arc::new(Index::from_keys(keys.iter().map(String::as_str)));
        let mut slot = self.index.write().expect("index lock");
        let added = slot.as_deref().unwrap_or(&Index::default()).added(&newer);
        *slot = Some(newer.clone());
        Ok((newer, added))
    }

    /// The record numbers of `stream`, in order (`None` when it has no
    /// records): from the index when it was listed, else from a listing of
    /// that stream alone.
    pub async fn seqs(&self, stream: &str) -> Result<Option<Vec<u64>>, StoreError> {
        let listed = self.index.read().expect("index lock").clone();
        if let Some(index) = listed {
            return Ok(index.seqs(stream).map(<[u64]>::to_vec));
        }
        let keys = self.store.list(&layout::stream_prefix(stream)).await?;
        // The prefix also lists the streams nested under this one.
        let mine = keys
            .iter()
            .filter(|k| layout::stream_record(k).is_some_and(|(s, _)| s == stream));
        let index = Index::from_keys(mine.map(String::as_str));
        Ok(index.seqs(stream).map(<[u64]>::to_vec))
    }

    /// Record `seq` of `stream`; `None` when the store does not hold it.
    pub async fn record(&self, stream: &str, seq: u64) -> Result<Option<Record>, StoreError> {
        let key = layout::record(stream, seq);
        Ok(self
            .store
            .get(&key)
            .await?
            .map(|bytes| Record::parse(stream, seq, bytes, self.keys.as_ref())))
    }

    /// The newest record of `stream`; `None` when it has none.
    pub async fn latest(&self, stream: &str) -> Result<Option<Record>, StoreError> {
        let Some(seq) = self.seqs(stream).await?.and_then(|s| s.last().copied()) else {
            return Ok(None);
        };
        Ok(Some(
            self.record(stream, seq)
                .await?
                .unwrap_or_else(|| Record::vanished(stream, seq)),
        ))
    }

    /// Records `seqs` of `stream`, in the order given, read a few ahead of
    /// the consumer. A record listed but gone comes back flawed.
    pub fn read<'a>(
        &'a self,
        stream: &'a str,
        seqs: impl IntoIterator<Item = u64> + 'a,
    ) -> impl Stream<Item = Result<Record, StoreError>> + 'a {
        futures::stream::iter(seqs)
            .map(move |seq| async move {
                Ok(self
                    .record(stream, seq)
                    .await?
                    .unwrap_or_else(|| Record::vanished(stream, seq)))
            })
            .buffered(READ_AHEAD)
    }

    /// Every record of `stream`, oldest first.
    pub fn records<'a>(
        &'a self,
        stream: &'a str,
    ) -> impl Stream<Item = Result<Record, StoreError>> + 'a {
        self.listed(stream, false)
    }

    /// Every record of `stream`, newest first: for walks that stop early
    /// (the last good snapshot, the newest inside a freshness window).
    pub fn newest_first<'a>(
        &'a self,
        stream: &'a str,
    ) -> impl Stream<Item = Result<Record, StoreError>> + 'a {
        self.listed(stream, true)
    }

    fn listed<'a>(
        &'a self,
        stream: &'a str,
        reverse: bool,
    ) -> impl Stream<Item = Result<Record, StoreError>> + 'a {
        futures::stream::once(self.seqs(stream))
            .map_ok(move |seqs| {
                let mut seqs = seqs.unwrap_or_default();
                if reverse {
                    seqs.reverse();
                }
                self.read(stream, seqs)
            })
            .try_flatten()
    }

    /// The records of `stream` that finished in `[from, to]`, oldest first
    /// (a population over a period). Records whose time cannot be read come
    /// too, flawed: they may belong to the period.
    pub fn range<'a>(
        &'a self,
        stream: &'a str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Stream<Item = Result<Record, StoreError>> + 'a {
        self.records(stream).try_filter(move |r| {
            let keep = r
                .predicate()
                .is_none_or(|p| p.finished_at >= from && p.finished_at <= to);
            futures::future::ready(keep)
        })
    }

    /// The stored bytes of a record's payload; `None` when the store lacks
    /// the blob. A reader that checks signatures also checks the bytes
    /// against the record's digest.
    pub async fn payload_bytes(&self, record: &Record) -> Result<Option<Vec<u8>>, ReadError> {
        let (Some(sha), Some(key)) = (record.payload_sha256(), record.payload_key()) else {
            return Err(ReadError::Payload {
                key: record.key.clone(),
                reason: record
                    .flaw
                    .clone()
                    .unwrap_or_else(|| "the record names no payload".into()),
            });
        };
        let bytes = self.store.get(&key).await?;
        if self.keys.is_some()
            && let Some(b) = &bytes
            && sha256_hex(b) != sha
        {
            return Err(ReadError::Payload {
                key: record.key.clone(),
                reason: format!("{key} does not hash to its name"),
            });
        }
        Ok(bytes)
    }

    /// A record's payload, parsed; `None` when the store lacks the blob.
    pub async fn payload(&self, record: &Record) -> Result<Option<Value>, ReadError> {
        match self.payload_bytes(record).await? {
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| ReadError::Payload {
                        key: record.key.clone(),
                        reason: e.to_string(),
                    })
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
