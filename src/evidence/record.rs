//! The record: an in-toto Statement v1 about one collection attempt, whose
//! subject is the payload blob and whose predicate says what was collected,
//! from where, when, with what outcome, and which record came before it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dsse::{Envelope, EnvelopeError, IN_TOTO_PAYLOAD_TYPE};
use super::keys::{KeyRing, Signer};

/// `_type` of every in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of a record.
pub const RECORD_PREDICATE_TYPE: &str = "https://exhibit.dev/evidence/record/v1";
/// `predicateType` of a checkpoint.
pub const CHECKPOINT_PREDICATE_TYPE: &str = "https://exhibit.dev/evidence/checkpoint/v1";
/// Media type of payloads that collectors return.
pub const JSON_MEDIA_TYPE: &str = "application/json";

/// An in-toto Statement v1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Statement<P> {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// What kind of predicate follows.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim.
    pub predicate: P,
}

/// A subject: a name and its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The store key of the subject.
    pub name: String,
    /// `{"sha256": "<hex>"}`.
    pub digest: Digest,
}

/// The digest set of a subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// Outcome of a collection attempt.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The payload is the snapshot.
    Ok,
    /// Some parts could not be collected; the payload says which.
    Partial,
    /// Collection failed; the payload is an error document.
    Failed,
    /// Scheduled slots that did not run; the payload lists them.
    Missed,
}

impl Status {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Partial => "partial",
            Status::Failed => "failed",
            Status::Missed => "missed",
        }
    }
}

/// Why a collection ran.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A cron slot of the daemon.
    Scheduled,
    /// The daemon's run after it found slots missed while it was down.
    CatchUp,
    /// `exhibit collect`.
    Manual,
    /// Not a run: the record of slots that did not run.
    Gap,
    /// Not a run: the signing key was rotated.
    KeyRotation,
}

/// The collector that produced a record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CollectorInfo {
    /// The instance name from the config.
    pub name: String,
    /// The collector kind, e.g. `git`.
    pub kind: String,
    /// The version of the code that collected.
    pub version: String,
}

/// Size and type of the payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PayloadInfo {
    /// Canonical byte length.
    pub size: u64,
    /// Media type of the canonical bytes.
    pub media_type: String,
}

/// The predicate of a record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordPredicate {
    /// The stream this record belongs to.
    pub stream: String,
    /// Position in the stream, from 1.
    pub seq: u64,
    /// SHA-256 of the previous record's stored bytes; `None` for the first.
    pub prev: Option<String>,
    /// The agent (checkpoint chain) that wrote the record.
    pub agent: String,
    /// The run that wrote the record; its checkpoint lists it.
    pub run_id: String,
    /// Why the collection ran.
    pub trigger: Trigger,
    /// The cron expression in force (UTC), if scheduled.
    pub schedule: Option<String>,
    /// The cron slot this attempt served, if any.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Who collected.
    pub collector: CollectorInfo,
    /// Where from: account id, org, region, host, repository…
    pub source: Value,
    /// When the attempt began.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// The outcome.
    pub status: Status,
    /// What went wrong, when it did.
    pub error: Option<String>,
    /// Tries made (1 when the first try succeeded).
    pub attempts: u32,
    /// Size and media type of the payload.
    pub payload: PayloadInfo,
    /// SOC 2 criteria the evidence supports, e.g. `CC6.1`.
    pub criteria: Vec<String>,
    /// Collector-defined position for the next incremental run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Value>,
    /// What a control result judged (records of `control/<id>` only);
    /// absent from every collected record, so their bytes are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Assessment>,
    /// On a stream's first record only: the stream of the same collector
    /// that this agent wrote before and now writes here instead (a command
    /// collector's `<name>/local` of earlier versions). That stream ends
    /// where this one begins: `verify` owes it no slot from this record's
    /// on. Absent from every other record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
}

/// The state of a control at one evaluation. No state reads an error as a
/// pass: a policy that failed to run is `error`, an input that is missing,
/// stale, failed or incomplete is `not_evaluated`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ControlState {
    /// The policy ran over complete, fresh inputs and found nothing.
    Pass,
    /// The policy found at least one finding not covered by an exception.
    Fail,
    /// Every finding is covered by a live exception.
    Excepted,
    /// The policy could not be evaluated (syntax, runtime or contract error).
    Error,
    /// No usable input: missing, outside the freshness window, failed, or
    /// incomplete in a part the control needs.
    NotEvaluated,
    /// The policy declared that the control does not apply to these inputs.
    NotApplicable,
}

impl ControlState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlState::Pass => "pass",
            ControlState::Fail => "fail",
            ControlState::Excepted => "excepted",
            ControlState::Error => "error",
            ControlState::NotEvaluated => "not_evaluated",
            ControlState::NotApplicable => "not_applicable",
        }
    }
}

impl std::fmt::Display for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The predicate part of a control result: which policy judged which
/// records, and what it concluded. `verify` can check that every judged
/// record exists with exactly these bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    /// The control id (the stream is `control/<id>`).
    pub control: String,
    /// SHA-256 of the Rego policy text evaluated.
    pub policy_sha256: String,
    /// Every record judged: input snapshots and attestations.
    pub inputs: Vec<AssessedRecord>,
    /// The state concluded.
    pub state: ControlState,
}

/// One record a control result judged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct AssessedRecord {
    /// Its store key (`records/<stream>/<seq>.json`).
    pub record: String,
    /// SHA-256 of its stored bytes.
    pub sha256: String,
}

/// A record as stored: the envelope, its statement and its stored bytes.
#[derive(Debug, Clone)]
pub struct Record {
    /// The decoded statement.
    pub statement: Statement<RecordPredicate>,
    /// The id of the key that signed it.
    pub key_id: String,
    /// SHA-256 of the stored envelope bytes (what `prev` refers to).
    pub sha256: String,
}

impl Record {
    /// The predicate.
    pub fn predicate(&self) -> &RecordPredicate {
        &self.statement.predicate
    }

    /// SHA-256 of the payload blob.
    pub fn payload_sha256(&self) -> Option<&str> {
        self.statement
            .subject
            .first()
            .map(|s| s.digest.sha256.as_str())
    }
}

/// Builds, canonicalises and signs a statement; returns the stored bytes.
pub fn seal<P: Serialize>(
    subject: Vec<Subject>,
    predicate_type: &str,
    predicate: &P,
    signer: &Signer,
) -> Vec<u8> {
    let statement = Statement {
        type_: STATEMENT_TYPE.to_string(),
        subject,
        predicate_type: predicate_type.to_string(),
        predicate,
    };
    let value = serde_json::to_value(&statement).expect("statements serialise");
    let canonical = super::canonical::to_vec(&value).expect("statements canonicalise");
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &canonical, signer).to_bytes()
}

/// Why stored bytes are not a valid record or checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The envelope or its signature.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The signed payload is not the expected statement.
    #[error("signed statement is malformed: {0}")]
    Statement(String),
}

/// Checks the signature over stored bytes and decodes the statement inside.
pub fn open<P: serde::de::DeserializeOwned>(
    bytes: &[u8],
    predicate_type: &str,
    keys: &KeyRing,
) -> Result<(Statement<P>, String), OpenError> {
    let env = Envelope::from_bytes(bytes)?;
    let (payload, key_id) = env.verify(IN_TOTO_PAYLOAD_TYPE, keys)?;
    let statement: Statement<P> =
        serde_json::from_slice(&payload).map_err(|e| OpenError::Statement(e.to_string()))?;
    if statement.type_ != STATEMENT_TYPE {
        return Err(OpenError::Statement(format!(
            "_type is `{}`",
            statement.type_
        )));
    }
    if statement.predicate_type != predicate_type {
        return Err(OpenError::Statement(format!(
            "predicateType is `{}`, expected `{predicate_type}`",
            statement.predicate_type
        )));
    }
    Ok((statement, key_id))
}

/// Opens a stored record.
pub fn open_record(bytes: &[u8], keys: &KeyRing) -> Result<Record, OpenError> {
    let (statement, key_id) = open::<RecordPredicate>(bytes, RECORD_PREDICATE_TYPE, keys)?;
    if statement.subject.len() != 1 {
        return Err(OpenError::Statement(
            "a record has exactly one subject".into(),
        ));
    }
    Ok(Record {
        statement,
        key_id,
        sha256: super::sha256_hex(bytes),
    })
}

/// Reads the statement inside stored bytes without checking the signature,
/// for browsing commands that show what a record claims.
pub fn peek<P: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Statement<P>, OpenError> {
    let env = Envelope::from_bytes(bytes)?;
    serde_json::from_slice(&env.payload_bytes()?).map_err(|e| OpenError::Statement(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record statement as written before control results existed,
    /// byte for byte (canonical form).
    const OLD: &str = r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"agent":"default","attempts":1,"collector":{"kind":"aws-iam-users","name":"iam","version":"0.1.0"},"criteria":["CC6.1"],"error":null,"finished_at":"2025-03-01T00:00:05Z","payload":{"media_type":"application/json","size":42},"prev":null,"run_id":"0195","schedule":"@daily","scheduled_for":"2025-03-01T00:00:00Z","seq":1,"source":{"account":"123456789012"},"started_at":"2025-03-01T00:00:00Z","status":"ok","stream":"iam/123456789012","trigger":"scheduled"},"predicateType":"https://exhibit.dev/evidence/record/v1","subject":[{"digest":{"sha256":"ab"},"name":"blobs/sha256/ab/ab"}]}"#;

    #[test]
    fn records_without_an_assessment_keep_their_bytes() {
        let st: Statement<RecordPredicate> = serde_json::from_str(OLD).unwrap();
        assert!(st.predicate.assessment.is_none());
        let again = super::super::canonical::to_vec(&serde_json::to_value(&st).unwrap()).unwrap();
        assert_eq!(String::from_utf8(again).unwrap(), OLD);
    }

    #[test]
    fn an_assessment_round_trips_and_unknown_fields_are_refused() {
        let mut st: Statement<RecordPredicate> = serde_json::from_str(OLD).unwrap();
        st.predicate.assessment = Some(Assessment {
            control: "aws-console-mfa".into(),
            policy_sha256: "cd".repeat(32),
            inputs: vec![AssessedRecord {
                record: "records/iam/123456789012/000000000001.json".into(),
                sha256: "ef".repeat(32),
            }],
            state: ControlState::Fail,
        });
        let text = serde_json::to_string(&st).unwrap();
        assert!(text.contains(r#""state":"fail""#), "{text}");
        let back: Statement<RecordPredicate> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, st);
        let bad = text.replace(r#""state":"fail""#, r#""state":"fail","extra":1"#);
        assert!(serde_json::from_str::<Statement<RecordPredicate>>(&bad).is_err());
    }
}
