//! DSSE (Dead Simple Signing Envelope) v1: the pre-authentication encoding,
//! the envelope's JSON form, signing and verification.
//!
//! The envelope is serialised with a fixed field order (`payloadType`,
//! `payload`, `signatures`) and no insignificant white space, so that an
//! auditor can pull it apart with `sed` and check it with `openssl`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::keys::{KeyRing, Signer};

/// Media type of an in-toto statement inside a DSSE envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Media type of the payload.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 (standard, padded) of the payload bytes.
    pub payload: String,
    /// One or more signatures over the PAE of type and payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature in a DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The id of the key that made the signature.
    pub keyid: String,
    /// Base64 of the raw 64-byte Ed25519 signature.
    pub sig: String,
}

/// Why an envelope did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not JSON, or not an envelope.
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    /// The payload type is not the one expected here.
    #[error("payload type is `{0}`, expected `{1}`")]
    WrongType(String, String),
    /// No signature names a key we trust.
    #[error("signed by unknown key `{0}`")]
    UnknownKey(String),
    /// A signature did not verify.
    #[error("bad signature by key `{0}`")]
    BadSignature(String),
}

/// DSSE pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` and wraps it.
    pub fn sign(payload_type: &str, payload: &[u8], signer: &Signer) -> Self {
        let sig = signer.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_string(),
            payload: B64.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: signer.key_id().to_string(),
                sig: B64.encode(sig),
            }],
        }
    }

    /// The stored form: compact JSON and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("envelope serialises");
        out.push(b'\n');
        out
    }

    /// Parses the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// The decoded payload bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        B64.decode(&self.payload)
            .map_err(|e| EnvelopeError::Malformed(format!("payload is not base64: {e}")))
    }

    /// Verifies the payload type and that at least one signature is valid
    /// under a key in `keys`; returns the payload and the id of that key.
    pub fn verify(
        &self,
        expected_type: &str,
        keys: &KeyRing,
    ) -> Result<(Vec<u8>, String), EnvelopeError> {
        if self.payload_type != expected_type {
            return Err(EnvelopeError::WrongType(
                self.payload_type.clone(),
                expected_type.to_string(),
            ));
        }
        let payload = self.payload_bytes()?;
        let message = pae(&self.payload_type, &payload);
        let mut last = EnvelopeError::Malformed("no signatures".into());
        for s in &self.signatures {
            let Some(key) = keys.get(&s.keyid) else {
                last = EnvelopeError::UnknownKey(s.keyid.clone());
                continue;
            };
            let Ok(raw) = B64.decode(&s.sig) else {
                last = EnvelopeError::BadSignature(s.keyid.clone());
                continue;
            };
            if key.verify(&message, &raw) {
                return Ok((payload, s.keyid.clone()));
            }
            last = EnvelopeError::BadSignature(s.keyid.clone());
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the DSSE protocol document.
    #[test]
    fn pae_matches_the_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn sign_then_verify_round_trip_and_tamper() {
        let signer = Signer::generate();
        let mut ring = KeyRing::default();
        ring.insert(signer.public());
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &signer);
        let parsed = Envelope::from_bytes(&env.to_bytes()).unwrap();
        let (payload, kid) = parsed.verify(IN_TOTO_PAYLOAD_TYPE, &ring).unwrap();
        assert_eq!(payload, b"{\"a\":1}");
        assert_eq!(kid, signer.key_id());

        let mut tampered = parsed.clone();
        tampered.payload = B64.encode(b"{\"a\":2}");
        assert_eq!(
            tampered.verify(IN_TOTO_PAYLOAD_TYPE, &ring),
            Err(EnvelopeError::BadSignature(signer.key_id().to_string()))
        );
        assert!(matches!(
            parsed.verify("text/plain", &ring),
            Err(EnvelopeError::WrongType(..))
        ));
        let other = Signer::generate();
        let mut ring2 = KeyRing::default();
        ring2.insert(other.public());
        assert!(matches!(
            parsed.verify(IN_TOTO_PAYLOAD_TYPE, &ring2),
            Err(EnvelopeError::UnknownKey(_))
        ));
    }
}
