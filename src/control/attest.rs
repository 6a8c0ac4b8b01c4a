//! Signed human reviews: a reviewer signs off one record (a quarterly access
//! review over the IdP users snapshot, a policy acknowledgement) with their
//! own SSH key, in OpenSSH's standard `SSHSIG` format, so that an auditor
//! checks it with nothing but `ssh-keygen -Y verify` and an allowed-signers
//! file. The review is stored as a record of `attest/<control>`.
//!
//! The signed message is the RFC 8785 canonical JSON of the review's claims
//! (type, control, record, statement, time), kept verbatim in the payload
//! beside the armoured signature.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::exception::RecordRef;
use crate::evidence::canonical;

/// The SSHSIG namespace of every review (`ssh-keygen -n`).
pub const NAMESPACE: &str = "exhibit-attest";
/// The `type` inside every signed message.
pub const MESSAGE_TYPE: &str = "https://exhibit.dev/attestation/v1";

/// Why a review cannot be signed or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The key file.
    #[error("cannot use the SSH key {path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The signature or the message.
    #[error("the review does not verify: {0}")]
    Invalid(String),
    /// The payload is not a review.
    #[error("not a review record: {0}")]
    Malformed(String),
}

/// Who signed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignerInfo {
    /// The public key, in OpenSSH format (`ssh-ed25519 AAAA…`).
    pub public_key: String,
    /// Its SHA-256 fingerprint (`SHA256:…`), as `ssh-keygen -l` shows it.
    pub fingerprint: String,
}

/// A signed review, as stored in the payload of an `attest/<control>`
/// record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The control the review serves.
    pub control: String,
    /// The record reviewed.
    pub record: RecordRef,
    /// What the reviewer states.
    pub statement: String,
    /// When it was signed (by the reviewer's clock).
    pub signed_at: DateTime<Utc>,
    /// The reviewer's key.
    pub signer: SignerInfo,
    /// The exact bytes signed (canonical JSON).
    pub message: String,
    /// The armoured `SSHSIG` signature (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
}

/// A review that verified, as controls see it (`input.attestations`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Review {
    /// The control.
    pub control: String,
    /// The review's own record (`attest/<control>`).
    pub record: RecordRef,
    /// The record reviewed.
    pub reviewed: RecordRef,
    /// The statement.
    pub statement: String,
    /// The signer's fingerprint.
    pub signer: String,
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
}

/// The canonical message a reviewer signs.
pub fn message(
    control: &str,
    record: &RecordRef,
    statement: &str,
    signed_at: DateTime<Utc>,
) -> Vec<u8> {
    let v = json!({
        "type": MESSAGE_TYPE,
        "control": control,
        "record": {"stream": record.stream, "seq": record.seq, "sha256": record.sha256},
        "statement": statement,
        "signed_at": signed_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    canonical::to_vec(&v).expect("messages canonicalise")
}

/// Reads an OpenSSH private key (e.g. `~/.ssh/id_ed25519`), decrypting it
/// with `passphrase` when it is protected.
pub fn load_key(path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, AttestError> {
    let err = |message: String| AttestError::Key {
        path: path.display().to_string(),
        message,
    };
    let key = PrivateKey::read_openssh_file(path).map_err(|e| err(e.to_string()))?;
    if !key.is_encrypted() {
        return Ok(key);
    }
    let pass = passphrase.ok_or_else(|| {
        err("the key is protected by a passphrase; give it to decrypt the key".into())
    })?;
    key.decrypt(pass)
        .map_err(|e| err(format!("cannot decrypt: {e}")))
}

/// Signs a review of `record` for `control`.
pub fn sign(
    key: &PrivateKey,
    control: &str,
    record: &RecordRef,
    statement: &str,
    signed_at: DateTime<Utc>,
) -> Result<Attestation, AttestError> {
    let signed_at = signed_at
        .to_rfc3339_opts(SecondsFormat::Secs, true)
        .parse()
        .expect("an RFC 3339 time parses");
    let msg = message(control, record, statement, signed_at);
    let sig = key
        .sign(NAMESPACE, HashAlg::Sha512, &msg)
        .map_err(|e| AttestError::Key {
            path: "(in memory)".into(),
            message: format!("cannot sign: {e}"),
        })?;
    let public = key.public_key();
    Ok(Attestation {
        control: control.into(),
        record: record.clone(),
        statement: statement.into(),
        signed_at,
        signer: SignerInfo {
            public_key: public.to_openssh().expect("public keys encode"),
            fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        },
        message: String::from_utf8(msg).expect("canonical JSON is UTF-8"),
        signature: sig.to_pem(LineEnding::LF).expect("signatures encode"),
    })
}

impl Attestation {
    /// The payload of the `attest/<control>` record.
    pub fn payload(&self) -> Value {
        serde_json::to_value(self).expect("attestations serialise")
    }

    /// Reads an `attest/<control>` record's payload.
    pub fn from_payload(payload: &Value) -> Result<Attestation, AttestError> {
        serde_json::from_value(payload.clone()).map_err(|e| AttestError::Malformed(e.to_string()))
    }

    /// Checks that the message says what the fields say and that the
    /// signature over it verifies under the signer's key, in the review
    /// namespace. Whether the key belongs to an allowed reviewer is
    /// [`allowed_principals`]'s question.
    pub fn verify(&self) -> Result<(), AttestError> {
        let bad = |m: String| AttestError::Invalid(m);
        let want = message(&self.control, &self.record, &self.statement, self.signed_at);
        if want != self.message.as_bytes() {
            return Err(bad(
                "the signed message differs from the review's fields".into()
            ));
        }
        let sig = SshSig::from_pem(&self.signature).map_err(|e| bad(format!("signature: {e}")))?;
        let key = PublicKey::from_openssh(&self.signer.public_key)
            .map_err(|e| bad(format!("public key: {e}")))?;
        if sig.public_key() != key.key_data() {
            return Err(bad(
                "the signature was made by another key than the signer's".into(),
            ));
        }
        if key.fingerprint(HashAlg::Sha256).to_string() != self.signer.fingerprint {
            return Err(bad("the fingerprint is not the public key's".into()));
        }
        key.verify(NAMESPACE, self.message.as_bytes(), &sig)
            .map_err(|e| bad(format!("signature: {e}")))
    }

    /// The review as controls read it, once verified; `record` is where the
    /// review itself is stored.
    pub fn review(&self, record: RecordRef) -> Review {
        Review {
            control: self.control.clone(),
            record,
            reviewed: self.record.clone(),
            statement: self.statement.clone(),
            signer: self.signer.fingerprint.clone(),
            signed_at: self.signed_at,
        }
    }
}

/// The principals an allowed-signers file (`ssh-keygen -Y verify -f`)
/// lists for `public_key` (OpenSSH format); empty when it is not listed.
/// Options such as `namespaces="…"` are not interpreted: `ssh-keygen`
/// remains the authority an auditor uses.
pub fn allowed_principals(allowed_signers: &str, public_key: &str) -> Vec<String> {
    let mut wanted = public_key.split_whitespace();
    let (Some(kt), Some(kb)) = (wanted.next(), wanted.next()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in allowed_signers.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.windows(2).skip(1).any(|w| w[0] == kt && w[1] == kb) {
            out.extend(tokens[0].split(',').map(str::to_string));
        }
    }
    out
}

/// One line of an allowed-signers file for `principal` and `public_key`.
pub fn allowed_signers_line(principal: &str, public_key: &str) -> String {
    let mut parts = public_key.split_whitespace();
    let kt = parts.next().unwrap_or_default();
    let kb = parts.next().unwrap_or_default();
    format!("{principal} namespaces=\"{NAMESPACE}\" {kt} {kb}")
}

#[cfg(test)]
#[path = "attest_tests.rs"]
mod tests;
