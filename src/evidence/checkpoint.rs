//! Checkpoints: at the end of every run the agent signs the list of records
//! the run wrote and the hash of its previous checkpoint, so that deleting a
//! whole run breaks a chain `verify` can follow (as CloudTrail digest files).
//!
//! A run that was interrupted (the process killed, the store unreachable
//! when the checkpoint was due) leaves records no checkpoint lists. The
//! next checkpoint the agent writes names them in `acknowledged`, so that
//! every record is vouched for by a signed checkpoint and a record that no
//! checkpoint lists or acknowledges is a problem `verify` reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;
use super::record::{CHECKPOINT_PREDICATE_TYPE, OpenError, Statement, Subject};

/// A link to the previous checkpoint of the same agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PrevCheckpoint {
    /// Its store key.
    pub key: String,
    /// SHA-256 of its stored bytes.
    pub sha256: String,
}

/// The predicate of a checkpoint; the subjects are the records of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointPredicate {
    /// The agent whose chain this is.
    pub agent: String,
    /// The run.
    pub run_id: String,
    /// `scheduled`, `catch_up`, `manual`…
    pub trigger: super::record::Trigger,
    /// When the run began.
    pub started_at: DateTime<Utc>,
    /// When it ended (the checkpoint's time).
    pub finished_at: DateTime<Utc>,
    /// The previous checkpoint of this agent; `None` for the first.
    pub prev: Option<PrevCheckpoint>,
    /// Set on the checkpoint that retires the signing key: signed by the
    /// retiring key, it names its successor. Records and checkpoints signed
    /// by the retired key after this checkpoint are invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<KeyRotation>,
    /// Set when the system clock was found behind the evidence already
    /// written (a clock that was fast, then corrected): the writer then
    /// stamps no earlier than what it extends, so that neither the chain
    /// nor a stream goes back in time, and says by how much it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew: Option<ClockSkew>,
    /// Records of earlier runs of this agent that were interrupted before
    /// their checkpoint: this checkpoint vouches that they were written
    /// (name and SHA-256 of the stored record, as the subjects are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acknowledged: Vec<Subject>,
}

/// How far the system clock was behind the chain during a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClockSkew {
    /// What the system clock read when the checkpoint was sealed; the
    /// checkpoint's `finished_at` is later.
    pub system_time: DateTime<Utc>,
    /// The most the clock was behind during the run, in milliseconds: its
    /// records' and its checkpoint's times were moved forward by up to this.
    pub behind_ms: u64,
}

/// A signing key handing over to its successor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    /// The key id retired by this checkpoint (the one that signs it).
    pub retired_key: String,
    /// The key id that signs from now on.
    pub new_key: String,
}

/// A checkpoint as stored.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Its store key.
    pub key: String,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// The decoded statement.
    pub statement: Statement<CheckpointPredicate>,
    /// The id of the key that signed it.
    pub key_id: String,
}

impl Checkpoint {
    /// The predicate.
    pub fn predicate(&self) -> &CheckpointPredicate {
        &self.statement.predicate
    }

    /// The records of the run.
    pub fn records(&self) -> &[Subject] {
        &self.statement.subject
    }

    /// The records of interrupted earlier runs this checkpoint acknowledges.
    pub fn acknowledged(&self) -> &[Subject] {
        &self.statement.predicate.acknowledged
    }
}

/// Checks the signature and decodes a stored checkpoint.
pub fn open_checkpoint(key: &str, bytes: &[u8], keys: &KeyRing) -> Result<Checkpoint, OpenError> {
    let (statement, key_id) =
        super::record::open::<CheckpointPredicate>(bytes, CHECKPOINT_PREDICATE_TYPE, keys)?;
    Ok(Checkpoint {
        key: key.to_string(),
        sha256: super::sha256_hex(bytes),
        statement,
        key_id,
    })
}
