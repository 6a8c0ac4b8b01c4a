//! The evidence writer: turns a collection outcome into a signed, chained
//! record in the store, and closes each run with a signed checkpoint. The
//! first checkpoint it writes acknowledges the records of this agent's
//! interrupted runs (`interrupted`), so that every record is vouched for.
//!
//! It is the single place that knows a stream's head (sequence number and
//! hash of the last record), and it holds a lease on every stream it writes
//! and on its agent's checkpoint chain, so that no other process can fork
//! either. It checks every head before extending it ([`heads`]): a head not
//! signed by the agent's own keys, or not linked to what comes before it, is
//! refused rather than extended. Times never run backwards along a chain: a
//! clock found behind what is extended stamps no earlier than it, and the
//! checkpoint records the skew.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::clock::Clock;
use crate::collect::Previous;
use crate::evidence::checkpoint::{CheckpointPredicate, ClockSkew, KeyRotation, PrevCheckpoint};
use crate::evidence::keys::{KeyRing, PublicKey, Signer};
use crate::evidence::record::{
    CHECKPOINT_PREDICATE_TYPE, CollectorInfo, Digest, JSON_MEDIA_TYPE, PayloadInfo,
    RECORD_PREDICATE_TYPE, RecordPredicate, Status, Subject, Trigger, peek, seal,
};
use crate::evidence::{canonical, layout, sha256_hex, validate_stream_id};
use crate::store::{Lease, Store, StoreError};

mod heads;
mod interrupted;
use heads::ChainTip;
pub use heads::Refusal;

/// Errors while writing evidence.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store holds something the writer cannot continue from.
    #[error("{0}")]
    Corrupt(String),
    /// The head to extend failed its checks (not signed by the agent's
    /// keys, unreadable, or not linked to what precedes it).
    #[error("{0}")]
    Refused(Refusal),
    /// The payload is not representable as canonical JSON.
    #[error("payload cannot be canonicalised: {0}")]
    Canonical(String),
}

#[derive(Debug, Clone)]
struct Head {
    seq: u64,
    sha256: Option<String>,
    finished_at: Option<DateTime<Utc>>,
    scheduled_for: Option<DateTime<Utc>>,
    cursor: Option<Value>,
}

/// One record to write: what its predicate says about the attempt, and the
/// payload.
///
/// The writer owns the predicate's place in the chain and in the run, and
/// what it says of the stored payload: it sets `seq`, `prev`, `agent`,
/// `run_id`, `trigger` and `payload` (size and media type), replacing
/// whatever the entry held there. Everything else is stored as given.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record's predicate.
    pub predicate: RecordPredicate,
    /// The payload (snapshot or error document).
    pub payload: Value,
}

impl Entry {
    /// An attempt on `stream` by `collector` that began and ended `at` with
    /// `status`; the rest of its description (source, error, tries,
    /// criteria, schedule, slot, cursor) is empty until set.
    pub fn new(
        stream: impl Into<String>,
        collector: CollectorInfo,
        status: Status,
        at: DateTime<Utc>,
        payload: Value,
    ) -> Self {
        Entry {
            predicate: RecordPredicate {
                stream: stream.into(),
                collector,
                source: Value::Null,
                started_at: at,
                finished_at: at,
                status,
                error: None,
                attempts: 0,
                criteria: Vec::new(),
                schedule: None,
                scheduled_for: None,
                cursor: None,
                assessment: None,
                continues: None,
                // The writer's own fields.
                seq: 0,
                prev: None,
                agent: String::new(),
                run_id: String::new(),
                trigger: Trigger::Manual,
                payload: PayloadInfo {
                    size: 0,
                    media_type: JSON_MEDIA_TYPE.to_string(),
                },
            },
            payload,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The stream.
    pub stream: String,
    /// Its new sequence number.
    pub seq: u64,
    /// SHA-256 of the stored record.
    pub sha256: String,
    /// SHA-256 of the payload.
    pub payload_sha256: String,
    /// The record's store key.
    pub key: String,
}

/// A run in progress: the records it wrote so far.
#[derive(Debug)]
pub struct Run {
    /// The run id (a UUIDv7, so ids sort by time).
    pub id: String,
    /// Why the run happened.
    pub trigger: Trigger,
    /// When it began.
    pub started_at: DateTime<Utc>,
    records: Mutex<Vec<Subject>>,
    times: Mutex<RunTimes>,
}

/// What a run's records said of time: the latest they finished (its
/// checkpoint is not earlier), and the most the clock was found behind.
#[derive(Debug, Default)]
struct RunTimes {
    latest: Option<DateTime<Utc>>,
    behind: Option<chrono::Duration>,
}

impl Run {
    /// The records written so far.
    pub fn written(&self) -> Vec<Subject> {
        self.records.lock().expect("run lock").clone()
    }

    fn clock_behind(&self, by: chrono::Duration) {
        let mut t = self.times.lock().expect("run lock");
        t.behind = Some(t.behind.map_or(by, |b| b.max(by)));
    }

    fn finished(&self, at: DateTime<Utc>) {
        let mut t = self.times.lock().expect("run lock");
        t.latest = Some(t.latest.map_or(at, |l| l.max(at)));
    }
}

/// The writer of one agent.
pub struct Writer {
    store: Arc<dyn Store>,
    signer: Arc<Signer>,
    agent: String,
    heads: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Head>>>>>,
    leases: Mutex<Vec<Box<dyn Lease>>>,
    checkpoint: tokio::sync::Mutex<Option<ChainTip>>,
    trusted: KeyRing,
    refused: Vec<Refusal>,
    /// Records of interrupted runs, for the next checkpoint to acknowledge.
    interrupted: Mutex<Vec<Subject>>,
    /// Held while acknowledging them, so that it happens once.
    acknowledging: tokio::sync::Mutex<()>,
    clock: Clock,
    timestamper: Option<Arc<crate::tsa::Timestamper>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("store", &self.store.describe())
            .field("agent", &self.agent)
            .finish()
    }
}

impl Writer {
    /// Claims the agent's checkpoint chain, finds its head, and publishes
    /// the public key into `keys/`; trusts what `signer` signed only.
    pub async fn open(
        store: Arc<dyn Store>,
        signer: Arc<Signer>,
        agent: &str,
    ) -> Result<Self, WriteError> {
        Self::open_with_retired(store, signer, &[], agent).await
    }

    /// [`Writer::open`] for an agent whose earlier keys were `retired` by
    /// rotations: what they signed is extended too.
    pub async fn open_with_retired(
        store: Arc<dyn Store>,
        signer: Arc<Signer>,
        retired: &[PublicKey],
        agent: &str,
    ) -> Result<Self, WriteError> {
        let lease = store.lease(&format!("agent/{agent}")).await?;
        publish_key(store.as_ref(), &signer).await?;
        let mut trusted = KeyRing::default();
        trusted.insert(signer.public());
        for k in retired {
            trusted.insert(k.clone());
        }
        let head = heads::chain_head(store.as_ref(), agent, &trusted).await?;
        for r in &head.refused {
            tracing::error!(object = %r.key, reason = %r.reason, "refusing to extend a checkpoint");
        }
        let interrupted = interrupted::unacknowledged(store.as_ref(), agent).await?;
        Ok(Writer {
            store,
            signer,
            agent: agent.to_string(),
            heads: Default::default(),
            leases: Mutex::new(vec![lease]),
            checkpoint: tokio::sync::Mutex::new(head.tip),
            trusted,
            refused: head.refused,
            interrupted: Mutex::new(interrupted),
            acknowledging: Default::default(),
            clock: Clock::system(),
            timestamper: None,
        })
    }

    /// The checkpoints found claiming to extend this agent's chain that
    /// failed their checks, and were not extended (empty when all is well).
    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    /// Stamps records and checkpoints by `clock` instead of the system
    /// clock: the agent's clock, or a fixed one in tests that need a known
    /// time.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Timestamps every checkpoint this writer writes (RFC 3161).
    pub fn with_timestamper(mut self, t: Arc<crate::tsa::Timestamper>) -> Self {
        self.timestamper = Some(t);
        self
    }

    /// The timestamper, when timestamps are configured.
    pub fn timestamper(&self) -> Option<&Arc<crate::tsa::Timestamper>> {
        self.timestamper.as_ref()
    }

    /// The store written to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time by the writer's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The writer's clock, for collectors to measure windows by.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The id of the key this writer signs with.
    pub fn key_id(&self) -> &str {
        self.signer.key_id()
    }

    /// Starts a run.
    pub fn begin_run(&self, trigger: Trigger) -> Run {
        Run {
            id: uuid::Uuid::now_v7().to_string(),
            trigger,
            started_at: self.now(),
            records: Mutex::new(Vec::new()),
            times: Mutex::new(RunTimes::default()),
        }
    }

    async fn head_slot(
        &self,
        stream: &str,
    ) -> Result<Arc<tokio::sync::Mutex<Option<Head>>>, WriteError> {
        validate_stream_id(stream).map_err(WriteError::Corrupt)?;
        let mut heads = self.heads.lock().await;
        if let Some(h) = heads.get(stream) {
            return Ok(h.clone());
        }
        let lease = self.store.lease(&format!("stream/{stream}")).await?;
        self.leases.lock().expect("lease lock").push(lease);
        let slot = Arc::new(tokio::sync::Mutex::new(None));
        heads.insert(stream.to_string(), slot.clone());
        Ok(slot)
    }

    async fn load_head(&self, stream: &str) -> Result<Head, WriteError> {
        let store = self.store.as_ref();
        let numbered = heads::numbered(store, stream).await?;
        let Some(record) = heads::checked_head(store, stream, &numbered, &self.trusted).await?
        else {
            return Ok(Head {
                seq: 0,
                sha256: None,
                finished_at: None,
                scheduled_for: None,
                cursor: None,
            });
        };
        let seq = numbered.last().expect("a head was found").0;
        let sha256 = record.sha256.clone();
        let statement = record.statement;
        let p = statement.predicate;
        let cursor = if p.status == Status::Ok {
            p.cursor
        } else {
            self.last_ok_cursor(&numbered[..numbered.len() - 1]).await?
        };
        Ok(Head {
            seq,
            sha256: Some(sha256),
            finished_at: Some(p.finished_at),
            scheduled_for: p.scheduled_for,
            cursor,
        })
    }

    /// The cursor of the newest successful record among `records` (sorted
    /// by sequence number). After failed attempts the next collection must
    /// start where the last good one ended, exactly as a daemon that never
    /// restarted would: starting afresh would overlap (or, with a short
    /// initial window, miss) what happened in between.
    async fn last_ok_cursor(&self, records: &[(u64, String)]) -> Result<Option<Value>, WriteError> {
        for (_, key) in records.iter().rev() {
            let Some(bytes) = self.store.get(key).await? else {
                return Ok(None);
            };
            let Ok(statement) = peek::<RecordPredicate>(&bytes) else {
                return Ok(None);
            };
            if statement.predicate.status == Status::Ok {
                return Ok(statement.predicate.cursor);
            }
        }
        Ok(None)
    }

    /// What the last record of `stream` said; claims the stream for this
    /// process on first use.
    pub async fn previous(&self, stream: &str) -> Result<Option<Previous>, WriteError> {
        let slot = self.head_slot(stream).await?;
        let mut head = slot.lock().await;
        if head.is_none() {
            *head = Some(self.load_head(stream).await?);
        }
        let h = head.as_ref().expect("loaded above");
        Ok(h.finished_at.map(|finished_at| Previous {
            seq: h.seq,
            finished_at,
            cursor: h.cursor.clone(),
        }))
    }

    /// The last slot a stream served or, failing that, when it last wrote.
    pub async fn last_slot(&self, stream: &str) -> Result<Option<DateTime<Utc>>, WriteError> {
        self.previous(stream).await?;
        let slot = self.head_slot(stream).await?;
        let head = slot.lock().await;
        Ok(head
            .as_ref()
            .and_then(|h| h.scheduled_for.or(h.finished_at)))
    }

    /// Acknowledges the records of interrupted runs in a checkpoint of
    /// their own before this writer adds to any stream, so that a run
    /// interrupted in turn never leaves two unacknowledged runs behind: a
    /// record no checkpoint vouches for is then always its stream's last.
    async fn acknowledge_interrupted(&self) -> Result<(), WriteError> {
        if self.interrupted.lock().expect("ack lock").is_empty() {
            return Ok(());
        }
        let _once = self.acknowledging.lock().await;
        if self.interrupted.lock().expect("ack lock").is_empty() {
            return Ok(());
        }
        let run = self.begin_run(Trigger::Gap);
        let key = self.write_checkpoint(run, None).await?;
        tracing::info!(checkpoint = %key, "acknowledged the records of interrupted runs");
        Ok(())
    }

    /// Writes the payload blob and the record, and adds it to `run`.
    pub async fn append(&self, run: &Run, entry: Entry) -> Result<Written, WriteError> {
        self.acknowledge_interrupted().await?;
        // Canonicalise and hash off the async threads, straight into a
        // staged file: a payload can be large, and is then never held twice.
        let Entry {
            mut predicate,
            payload,
        } = entry;
        let files = self.store.file_writes();
        let staging = files
            .and_then(|f| f.staging_dir())
            .unwrap_or_else(std::env::temp_dir);
        let (staged, payload_sha, size) = tokio::task::spawn_blocking(move || {
            // Staging is a write to the store's filesystem: its failure is
            // the store's (read-only, full), not the payload's.
            let io = |e: std::io::Error| {
                WriteError::Store(StoreError::io(staging.display().to_string(), e))
            };
            std::fs::create_dir_all(&staging).map_err(io)?;
            let file = tempfile::NamedTempFile::new_in(&staging).map_err(io)?;
            let mut w =
                canonical::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 16, file));
            canonical::write(&payload, &mut w).map_err(|e| WriteError::Canonical(e.to_string()))?;
            drop(payload);
            let (buf, sha, len) = w.finish();
            let file = buf.into_inner().map_err(|e| io(e.into_error()))?;
            Ok::<_, WriteError>((file, sha, len))
        })
        .await
        .expect("canonicalisation does not panic")?;
        let blob = layout::blob(&payload_sha);
        let put = match files {
            Some(files) => files.put_new_file(&blob, staged).await,
            // A store that cannot write from files (memory) takes the bytes.
            None => match tokio::fs::read(staged.path()).await {
                Ok(bytes) => self.store.put_new(&blob, &bytes).await,
                Err(e) => Err(StoreError::io(blob.clone(), e)),
            },
        };
        match put {
            Ok(()) | Err(StoreError::Exists(_)) => {}
            Err(e) => return Err(e.into()),
        }

        let slot = self.head_slot(&predicate.stream).await?;
        let mut head = slot.lock().await;
        if head.is_none() {
            *head = Some(self.load_head(&predicate.stream).await?);
        }
        let h = head.as_mut().expect("loaded above");
        // A clock found behind the stream's last record (it was fast, and
        // was corrected) must not take the stream back in time: the record
        // is stamped from that record on, and its run's checkpoint says by
        // how much. Otherwise the entry's times are stored as given.
        if let Some(last) = h.finished_at
            && self.now() < last
            && predicate.started_at < last
        {
            let behind = last - predicate.started_at;
            predicate.started_at += behind;
            predicate.finished_at += behind;
            run.clock_behind(behind);
        }
        run.finished(predicate.finished_at);
        let seq = h.seq + 1;
        // Only a stream's first record may say which stream it continues,
        // and only of a stream this agent wrote.
        predicate.continues = match predicate.continues.take() {
            Some(former) if seq == 1 && former != predicate.stream => {
                heads::own_stream(self.store.as_ref(), former, &self.trusted).await?
            }
            _ => None,
        };
        predicate.seq = seq;
        predicate.prev = h.sha256.clone();
        predicate.agent = self.agent.clone();
        predicate.run_id = run.id.clone();
        predicate.trigger = run.trigger;
        predicate.payload = PayloadInfo {
            size,
            media_type: JSON_MEDIA_TYPE.to_string(),
        };
        let subject = vec![Subject {
            name: blob.clone(),
            digest: Digest {
                sha256: payload_sha.clone(),
            },
        }];
        let stored = seal(subject, RECORD_PREDICATE_TYPE, &predicate, &self.signer);
        let key = layout::record(&predicate.stream, seq);
        self.store.put_new(&key, &stored).await?;
        let sha256 = sha256_hex(&stored);
        *h = Head {
            seq,
            sha256: Some(sha256.clone()),
            finished_at: Some(predicate.finished_at),
            scheduled_for: predicate.scheduled_for,
            cursor: if predicate.status == Status::Ok {
                predicate.cursor
            } else {
                h.cursor.take()
            },
        };
        run.records.lock().expect("run lock").push(Subject {
            name: key.clone(),
            digest: Digest {
                sha256: sha256.clone(),
            },
        });
        Ok(Written {
            stream: predicate.stream,
            seq,
            sha256,
            payload_sha256: payload_sha,
            key,
        })
    }

    /// Closes `run` with a signed checkpoint chained to the previous one;
    /// returns its key.
    pub async fn checkpoint(&self, run: Run) -> Result<String, WriteError> {
        self.write_checkpoint(run, None).await
    }

    /// The head of this agent's checkpoint chain: the last checkpoint it
    /// wrote (or found when it opened).
    pub async fn head(&self) -> Option<PrevCheckpoint> {
        self.checkpoint
            .lock()
            .await
            .as_ref()
            .map(|t| t.link.clone())
    }

    /// Retires this writer's signing key in favour of `new_key`: publishes
    /// the new public key, then writes a checkpoint, signed by the old key,
    /// that names its successor. The writer must not be used afterwards.
    pub async fn rotate_key(&self, new_key: &Signer) -> Result<String, WriteError> {
        publish_key(self.store.as_ref(), new_key).await?;
        let run = self.begin_run(Trigger::KeyRotation);
        let rotation = KeyRotation {
            retired_key: self.signer.key_id().to_string(),
            new_key: new_key.key_id().to_string(),
        };
        self.write_checkpoint(run, Some(rotation)).await
    }

    async fn write_checkpoint(
        &self,
        run: Run,
        rotation: Option<KeyRotation>,
    ) -> Result<String, WriteError> {
        let (key, stored, finished_at) = self.seal_checkpoint(run, rotation).await?;
        // After the chain lock is released: a slow TSA delays this run's
        // end, never another run's checkpoint.
        if let Some(t) = &self.timestamper
            && let Err(e) = t
                .stamp(self.store.as_ref(), &key, &stored, finished_at)
                .await
        {
            tracing::warn!(checkpoint = %key, error = %e, "checkpoint written but not timestamped; the token is fetched later");
        }
        Ok(key)
    }

    async fn seal_checkpoint(
        &self,
        run: Run,
        rotation: Option<KeyRotation>,
    ) -> Result<(String, Vec<u8>, DateTime<Utc>), WriteError> {
        let mut prev = self.checkpoint.lock().await;
        let system_time = self.now();
        let times = run.times.into_inner().expect("run lock");
        // Never before the checkpoint it follows nor the records it lists:
        // a clock set back must not fork the chain nor leave a record
        // outside its run.
        let finished_at = [
            Some(system_time),
            prev.as_ref().map(|p| p.finished_at),
            times.latest,
        ]
        .into_iter()
        .flatten()
        .max()
        .expect("the system time is there");
        let behind = times
            .behind
            .into_iter()
            .chain(Some(finished_at - system_time))
            .max()
            .filter(|b| *b > chrono::Duration::zero());
        if let Some(b) = behind {
            tracing::warn!(
                behind_seconds = b.num_seconds(),
                "the system clock is behind the evidence already written; times are kept from going backwards"
            );
        }
        let clock_skew = behind.map(|b| ClockSkew {
            system_time,
            behind_ms: u64::try_from(b.num_milliseconds()).unwrap_or(0),
        });
        // Under the chain lock: exactly one checkpoint acknowledges them.
        let acknowledged = std::mem::take(&mut *self.interrupted.lock().expect("ack lock"));
        let predicate = CheckpointPredicate {
            agent: self.agent.clone(),
            run_id: run.id.clone(),
            trigger: run.trigger,
            started_at: run.started_at,
            finished_at,
            prev: prev.as_ref().map(|p| p.link.clone()),
            rotation,
            clock_skew,
            acknowledged,
        };
        let subjects = run.records.into_inner().expect("run lock");
        let stored = seal(
            subjects.clone(),
            CHECKPOINT_PREDICATE_TYPE,
            &predicate,
            &self.signer,
        );
        let key = layout::checkpoint(finished_at, &run.id);
        if let Err(e) = self.store.put_new(&key, &stored).await {
            // This run is now interrupted too: the next checkpoint
            // acknowledges its records and those it was to acknowledge.
            let mut pending = self.interrupted.lock().expect("ack lock");
            pending.extend(predicate.acknowledged);
            pending.extend(subjects);
            return Err(e.into());
        }
        let sha = sha256_hex(&stored);
        // Logged so that the head of the chain is also anchored in the log
        // pipeline, outside the store.
        tracing::info!(checkpoint = %key, sha256 = %sha, "checkpoint written");
        *prev = Some(ChainTip {
            link: PrevCheckpoint {
                key: key.clone(),
                sha256: sha,
            },
            finished_at,
        });
        Ok((key, stored, finished_at))
    }
}

/// Puts the public key into `keys/` (once; an existing file must match).
async fn publish_key(store: &dyn Store, signer: &Signer) -> Result<(), WriteError> {
    let key_path = layout::public_key(signer.key_id());
    let pem = signer.public().to_pem();
    match store.put_new(&key_path, pem.as_bytes()).await {
        Ok(()) | Err(StoreError::Exists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if store.get(&key_path).await?.as_deref() != Some(pem.as_bytes()) {
        return Err(WriteError::Corrupt(format!(
            "{key_path} in the store is not this agent's public key"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
