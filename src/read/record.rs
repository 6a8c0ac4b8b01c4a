//! A record as the read side hands it out: where it is stored, its bytes,
//! what it claims, and — instead of a panic or a refusal — what is wrong
//! with it when something is.

use crate::evidence::keys::KeyRing;
use crate::evidence::record::{
    RECORD_PREDICATE_TYPE, RecordPredicate, STATEMENT_TYPE, Statement, Status, open_record, peek,
};
use crate::evidence::{layout, sha256_hex};

/// A record read from the store.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its stream, from its key.
    pub stream: String,
    /// Its sequence number, from its key.
    pub seq: u64,
    /// Its store key.
    pub key: String,
    /// The stored bytes (a DSSE envelope); empty when the record vanished.
    pub bytes: Vec<u8>,
    /// SHA-256 of the stored bytes (what the next record's `prev` names).
    pub sha256: String,
    /// What the record claims; `None` when its bytes are not a record.
    pub statement: Option<Statement<RecordPredicate>>,
    /// The id of the key whose signature was checked; `None` when the
    /// reader only peeks.
    pub signed_by: Option<String>,
    /// Why the record cannot be taken at its word, when it cannot: its
    /// bytes are not a record, its signature does not verify, it names no
    /// payload, or it claims another place than the one it is stored at.
    pub flaw: Option<String>,
}

impl Record {
    /// Reads stored bytes as record `seq` of `stream`: signature checked
    /// against `keys` when given, otherwise only decoded.
    pub(crate) fn parse(stream: &str, seq: u64, bytes: Vec<u8>, keys: Option<&KeyRing>) -> Self {
        let key = layout::record(stream, seq);
        let sha256 = sha256_hex(&bytes);
        let (statement, signed_by, flaw) = match keys {
            Some(keys) => match open_record(&bytes, keys) {
                Ok(r) => (Some(r.statement), Some(r.key_id), None),
                // What it claims is still shown, marked.
                Err(e) => (peek(&bytes).ok(), None, Some(e.to_string())),
            },
            None => match peek(&bytes) {
                Ok(s) => (Some(s), None, None),
                Err(e) => (None, None, Some(e.to_string())),
            },
        };
        let flaw = flaw.or_else(|| statement.as_ref().and_then(|s| flaw_of(s, stream, seq)));
        Record {
            stream: stream.to_string(),
            seq,
            key,
            bytes,
            sha256,
            statement,
            signed_by,
            flaw,
        }
    }

    /// A record the listing named but the store no longer holds.
    pub(crate) fn vanished(stream: &str, seq: u64) -> Self {
        let key = layout::record(stream, seq);
        Record {
            stream: stream.to_string(),
            seq,
            flaw: Some(format!("{key} was listed but is no longer in the store")),
            key,
            bytes: Vec::new(),
            sha256: sha256_hex(b""),
            statement: None,
            signed_by: None,
        }
    }

    /// What the record claims, when its bytes are a record.
    pub fn predicate(&self) -> Option<&RecordPredicate> {
        self.statement.as_ref().map(|s| &s.predicate)
    }

    /// The outcome it claims.
    pub fn status(&self) -> Option<Status> {
        self.predicate().map(|p| p.status)
    }

    /// The SHA-256 of its payload, when it names exactly one that is a
    /// SHA-256.
    pub fn payload_sha256(&self) -> Option<&str> {
        match self.statement.as_ref()?.subject.as_slice() {
            [one] if is_sha256(&one.digest.sha256) => Some(&one.digest.sha256),
            _ => None,
        }
    }

    /// The store key of its payload, when it names one.
    pub fn payload_key(&self) -> Option<String> {
        self.payload_sha256().map(layout::blob)
    }

    /// Its flaw as an error, for commands that cannot go on with a record
    /// they cannot read.
    pub fn error(&self) -> super::ReadError {
        super::ReadError::Record {
            key: self.key.clone(),
            reason: self.flaw.clone().unwrap_or_else(|| "not a record".into()),
        }
    }
}

/// What is wrong with a statement that decoded, for its place in the store.
fn flaw_of(s: &Statement<RecordPredicate>, stream: &str, seq: u64) -> Option<String> {
    if s.type_ != STATEMENT_TYPE || s.predicate_type != RECORD_PREDICATE_TYPE {
        return Some(format!(
            "not a record statement (_type `{}`, predicateType `{}`)",
            s.type_, s.predicate_type
        ));
    }
    match s.subject.as_slice() {
        [one] if is_sha256(&one.digest.sha256) => {}
        [one] => {
            return Some(format!(
                "its payload digest {:?} is not a SHA-256",
                one.digest.sha256
            ));
        }
        many => {
            return Some(format!(
                "a record names exactly one payload; this one names {}",
                many.len()
            ));
        }
    }
    let p = &s.predicate;
    (p.stream != stream || p.seq != seq).then(|| {
        format!(
            "it claims to be {} #{}, but is stored as {stream} #{seq}",
            p.stream, p.seq
        )
    })
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
