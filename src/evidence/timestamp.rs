//! RFC 3161 time-stamp tokens over checkpoints: the request the agent sends
//! to a Time-Stamp Authority, and the checks `verify` (and the agent, before
//! storing a token) makes of the reply.
//!
//! A token proves that the checkpoint's bytes existed at the TSA's
//! `genTime`, independently of the agent's clock. The token is the TSA's
//! `TimeStampResp` exactly as received, stored beside its checkpoint as
//! `<run id>.tsr`, so that `openssl ts -verify -in <run id>.tsr` reads it.
//!
//! What is checked, in order: the response says the request was granted;
//! the token is CMS SignedData whose content is a TSTInfo; the TSTInfo's
//! message imprint is SHA-256 over the checkpoint's stored bytes; there is
//! one signer, whose signed attributes bind the TSTInfo (content type and
//! message digest) and the signer's certificate (ESS signingCertificate);
//! the signature over those attributes verifies with that certificate's key;
//! the certificate has the critical extendedKeyUsage timeStamping and only
//! that, and chains, through certificates in the token or the trust store,
//! to a trusted certificate, every link valid at `genTime`.
//!
//! Signature algorithms supported: RSA PKCS#1 v1.5 and ECDSA over P-256 and
//! P-384, with SHA-256, SHA-384 or SHA-512. RSA-PSS, Ed25519 and SHA-1
//! signatures are refused (SHA-1 is accepted only as the ESSCertID hash,
//! which RFC 3161's version 1 attribute prescribes).

use chrono::{DateTime, NaiveDate, Utc};
use cmpv2::status::PkiStatus;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{Int, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Reader, Sequence, SliceReader, Tag, Tagged};
use sha2_010::Digest as _;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_cert::spki::{AlgorithmIdentifier, SubjectPublicKeyInfoOwned};
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion};

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_KP_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");

/// Longest chain from the TSA's certificate to a trusted one; real TSAs
/// have one or two intermediates.
const MAX_CHAIN: usize = 6;

/// What went wrong with a token; each maps to a stable problem code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a time-stamp response that can be read.
    #[error("{0}")]
    Malformed(String),
    /// The TSA did not grant the request.
    #[error("{0}")]
    Rejected(String),
    /// The token is over other bytes than the checkpoint's.
    #[error("{0}")]
    Imprint(String),
    /// The CMS signature or its signed attributes do not check out.
    #[error("{0}")]
    Signature(String),
    /// The signer is not a trusted time-stamping certificate.
    #[error("{0}")]
    Untrusted(String),
}

impl TokenError {
    /// The problem code `verify` reports.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "timestamp_malformed",
            TokenError::Rejected(_) => "timestamp_rejected",
            TokenError::Imprint(_) => "timestamp_mismatch",
            TokenError::Signature(_) => "timestamp_bad_signature",
            TokenError::Untrusted(_) => "timestamp_untrusted",
        }
    }
}

fn malformed(what: &str, e: impl std::fmt::Display) -> TokenError {
    TokenError::Malformed(format!("{what}: {e}"))
}

/// A time-stamp request for a SHA-256 digest.
#[derive(Debug, Clone)]
pub struct Request {
    /// The DER `TimeStampReq`, the body of the HTTP POST.
    pub der: Vec<u8>,
    /// The nonce sent, which the token must carry back.
    pub nonce: Vec<u8>,
}

/// Builds a request for `sha256` with a fresh 64-bit nonce and
/// `certReq = true` (so that the token carries the TSA's certificate),
/// asking for `policy` when given.
pub fn request(sha256: &[u8; 32], policy: Option<ObjectIdentifier>) -> Request {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).expect("the system's random source works");
    // Positive, and without a leading zero byte, so that its DER encoding
    // is exactly these eight bytes.
    nonce[0] = (nonce[0] & 0x7f) | 0x40;
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            // NULL parameters, as OpenSSL and most TSAs send them.
            hash_algorithm: AlgorithmIdentifier {
                oid: ID_SHA256,
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(sha256.to_vec()).expect("32 bytes fit"),
        },
        req_policy: policy,
        nonce: Some(Int::new(&nonce).expect("a valid integer")),
        cert_req: true,
        extensions: None,
    };
    Request {
        der: req.to_der().expect("a request encodes"),
        nonce: nonce.to_vec(),
    }
}

/// TSTInfo as RFC 3161 §2.4.2 defines it. Kept here rather than taken from
/// `x509_tsp::TstInfo` for `genTime`: RFC 3161 allows fractional seconds
/// (`20260101120000.123Z`), which many TSAs send and `der`'s
/// GeneralizedTime refuses.
#[derive(Clone, Debug, Sequence)]
struct TstInfo {
    version: TspVersion,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<x509_tsp::Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<Any>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// ESS SigningCertificate (RFC 2634), whose ESSCertID hashes are SHA-1.
#[derive(Clone, Debug, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// ESS SigningCertificateV2 (RFC 5035), hash algorithm per certificate.
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifier<Any>>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// The hash functions tokens may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &ObjectIdentifier) -> Option<Hash> {
        match *oid {
            ID_SHA1 => Some(Hash::Sha1),
            ID_SHA256 => Some(Hash::Sha256),
            ID_SHA384 => Some(Hash::Sha384),
            ID_SHA512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(bytes).to_vec(),
            Hash::Sha256 => sha2_010::Sha256::digest(bytes).to_vec(),
            Hash::Sha384 => sha2_010::Sha384::digest(bytes).to_vec(),
            Hash::Sha512 => sha2_010::Sha512::digest(bytes).to_vec(),
        }
    }
}

/// A certificate with the bytes it was read from (signatures are over the
/// original encoding of its TBSCertificate, and trust is by exact bytes).
#[derive(Debug, Clone)]
struct Cert {
    cert: Certificate,
    der: Vec<u8>,
}

impl Cert {
    fn from_der(der: Vec<u8>) -> Result<Cert, String> {
        let cert = Certificate::from_der(&der).map_err(|e| format!("not a certificate: {e}"))?;
        Ok(Cert { cert, der })
    }

    fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    fn tbs_bytes(&self) -> Result<&[u8], String> {
        let mut r = SliceReader::new(&self.der).map_err(|e| e.to_string())?;
        let header = r.peek_header().map_err(|e| e.to_string())?;
        if header.tag != Tag::Sequence {
            return Err("a certificate is a SEQUENCE".into());
        }
        let _ = der::Header::decode(&mut r).map_err(|e| e.to_string())?;
        r.tlv_bytes().map_err(|e| e.to_string())
    }

    fn valid_at(&self, t: DateTime<Utc>) -> bool {
        let v = &self.cert.tbs_certificate.validity;
        let secs = |x: x509_cert::time::Time| x.to_unix_duration().as_secs() as i64;
        (secs(v.not_before)..=secs(v.not_after)).contains(&t.timestamp())
    }

    fn is_ca(&self) -> bool {
        matches!(
            self.cert.tbs_certificate.get::<BasicConstraints>(),
            Ok(Some((_, bc))) if bc.ca
        )
    }

    fn subject_key_id(&self) -> Option<Vec<u8>> {
        match self.cert.tbs_certificate.get::<SubjectKeyIdentifier>() {
            Ok(Some((_, ski))) => Some(ski.0.as_bytes().to_vec()),
            _ => None,
        }
    }
}

/// The certificates trusted to sign tokens: TSA certificates themselves or
/// the CAs that issue them.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    certs: Vec<Cert>,
}

impl TrustAnchors {
    /// Reads every certificate of a PEM text (one file may hold a bundle).
    pub fn from_pem(pem: &[u8]) -> Result<TrustAnchors, String> {
        let certs = Certificate::load_pem_chain(pem).map_err(|e| format!("not PEM: {e}"))?;
        if certs.is_empty() {
            return Err("holds no PEM certificate".into());
        }
        let certs = certs
            .into_iter()
            .map(|c| {
                let der = c.to_der().map_err(|e| e.to_string())?;
                Ok(Cert { cert: c, der })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(TrustAnchors { certs })
    }

    /// Adds the certificates of `other` not already here.
    pub fn extend(&mut self, other: TrustAnchors) {
        for c in other.certs {
            if !self.certs.iter().any(|t| t.der == c.der) {
                self.certs.push(c);
            }
        }
    }

    /// Whether there is nothing to trust.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The subjects of the trusted certificates, for the verdict.
    pub fn subjects(&self) -> Vec<String> {
        self.certs.iter().map(Cert::subject).collect()
    }

    /// Each certificate as (SHA-256 of its DER in hex, PEM text), as the
    /// agent publishes them in the store's `tsa/`.
    pub fn pems(&self) -> Vec<(String, String)> {
        use base64::Engine as _;
        self.certs
            .iter()
            .map(|c| {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&c.der);
                let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
                for line in b64.as_bytes().chunks(64) {
                    pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
                    pem.push('\n');
                }
                pem.push_str("-----END CERTIFICATE-----\n");
                (super::sha256_hex(&c.der), pem)
            })
            .collect()
    }

    fn contains(&self, c: &Cert) -> bool {
        self.certs.iter().any(|t| t.der == c.der)
    }
}

/// A token that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The TSA's time.
    pub gen_time: DateTime<Utc>,
    /// The TSA policy it was issued under (an OID).
    pub policy: String,
    /// The token's serial number, hex.
    pub serial: String,
    /// The nonce it carries (the request's), big-endian.
    pub nonce: Option<Vec<u8>>,
    /// The subject of the signing certificate.
    pub signer: String,
    /// The subject of the trusted certificate its chain ends at.
    pub anchor: String,
}

/// Checks a stored token (a DER `TimeStampResp`) against the SHA-256 of the
/// checkpoint's bytes and the trusted certificates.
pub fn verify(
    response: &[u8],
    sha256: &[u8],
    trust: &TrustAnchors,
) -> Result<Verified, TokenError> {
    let resp =
        TimeStampResp::from_der(response).map_err(|e| malformed("not a TimeStampResp", e))?;
    match resp.status.status {
        PkiStatus::Accepted | PkiStatus::GrantedWithMods => {}
        other => {
            let text = resp
                .status
                .status_string
                .as_ref()
                .map(|s| {
                    s.iter()
                        .map(|t| t.as_str().to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            return Err(TokenError::Rejected(format!(
                "the TSA did not grant the request: {other:?} {text}"
            )));
        }
    }
    let token = resp
        .time_stamp_token
        .ok_or_else(|| TokenError::Malformed("the response holds no token".into()))?;
    check_token(&token, sha256, trust)
}

fn check_token(
    token: &ContentInfo,
    sha256: &[u8],
    trust: &TrustAnchors,
) -> Result<Verified, TokenError> {
    if token.content_type != ID_SIGNED_DATA {
        return Err(TokenError::Malformed(format!(
            "the token is {}, not CMS SignedData",
            token.content_type
        )));
    }
    let sd: SignedData = token
        .content
        .decode_as()
        .map_err(|e| malformed("the token's SignedData", e))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(TokenError::Malformed(format!(
            "the token signs {}, not a TSTInfo",
            sd.encap_content_info.econtent_type
        )));
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| TokenError::Malformed("the token has no TSTInfo".into()))?;
    if econtent.tag() != Tag::OctetString {
        return Err(TokenError::Malformed(
            "the TSTInfo is not in an OCTET STRING".into(),
        ));
    }
    let tst_bytes = econtent.value();
    let tst = TstInfo::from_der(tst_bytes).map_err(|e| malformed("the TSTInfo", e))?;
    let gen_time = parse_gen_time(&tst.gen_time)?;

    // The imprint first: the most likely failure (a token of other bytes)
    // gets the most useful message.
    if tst.message_imprint.hash_algorithm.oid != ID_SHA256 {
        return Err(TokenError::Imprint(format!(
            "the token's imprint uses {}, not SHA-256",
            tst.message_imprint.hash_algorithm.oid
        )));
    }
    let imprint = tst.message_imprint.hashed_message.as_bytes();
    if imprint != sha256 {
        return Err(TokenError::Imprint(format!(
            "the token is over {}, but the checkpoint hashes to {}",
            hex::encode(imprint),
            hex::encode(sha256)
        )));
    }

    // RFC 3161 §2.4.2: the token is signed by the TSA alone.
    let [signer_info] = sd.signer_infos.0.as_slice() else {
        return Err(TokenError::Malformed(format!(
            "the token has {} signers; a TSA token has exactly one",
            sd.signer_infos.0.len()
        )));
    };
    // Unsigned, but a token whose structure disagrees with itself is not
    // one a TSA made.
    if !sd
        .digest_algorithms
        .iter()
        .any(|a| a.oid == signer_info.digest_alg.oid)
    {
        return Err(TokenError::Malformed(
            "the signer's digest algorithm is not among the SignedData's".into(),
        ));
    }
    let mut pool: Vec<Cert> = Vec::new();
    if let Some(set) = &sd.certificates {
        for choice in set.0.iter() {
            if let CertificateChoices::Certificate(c) = choice {
                let der = c.to_der().map_err(|e| malformed("a certificate", e))?;
                pool.push(Cert::from_der(der).map_err(TokenError::Malformed)?);
            }
        }
    }
    pool.extend(trust.certs.iter().cloned());
    let signer = find_signer(&signer_info.sid, &pool).ok_or_else(|| {
        TokenError::Untrusted(
            "the signer's certificate is neither in the token nor among the trusted TSA certificates"
                .into(),
        )
    })?;

    check_signed_attributes(signer_info, tst_bytes, signer)?;

    // The signing certificate: a time-stamping certificate, valid then…
    match signer.cert.tbs_certificate.get::<ExtendedKeyUsage>() {
        Ok(Some((true, eku))) if eku.0 == [ID_KP_TIME_STAMPING] => {}
        Ok(Some((false, _))) => {
            return Err(TokenError::Untrusted(format!(
                "{}: its extendedKeyUsage is not critical, as RFC 3161 requires of a TSA certificate",
                signer.subject()
            )));
        }
        _ => {
            return Err(TokenError::Untrusted(format!(
                "{}: not a time-stamping certificate (extendedKeyUsage must be timeStamping only)",
                signer.subject()
            )));
        }
    }
    // …and chained to a trusted certificate.
    let anchor = chain_to_trust(signer, &pool, trust, gen_time)?;

    Ok(Verified {
        gen_time,
        policy: tst.policy.to_string(),
        serial: hex::encode(tst.serial_number.as_bytes()),
        nonce: tst.nonce.map(|n| n.as_bytes().to_vec()),
        signer: signer.subject(),
        anchor,
    })
}

/// The signed attributes bind the TSTInfo and the signer's certificate,
/// and the signature over them verifies with that certificate's key.
fn check_signed_attributes(
    si: &SignerInfo,
    tst_bytes: &[u8],
    signer: &Cert,
) -> Result<(), TokenError> {
    let bad = |m: String| TokenError::Signature(m);
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("the signer has no signed attributes".into()))?;
    let digest_hash = Hash::from_oid(&si.digest_alg.oid)
        .filter(|h| *h != Hash::Sha1)
        .ok_or_else(|| {
            bad(format!(
                "unsupported digest algorithm {}",
                si.digest_alg.oid
            ))
        })?;
    let single = |oid: ObjectIdentifier| -> Option<&Any> {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.iter().next())
    };
    let content_type = single(ID_CONTENT_TYPE)
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| bad("no content-type attribute".into()))?;
    if content_type != ID_CT_TST_INFO {
        return Err(bad(format!(
            "the content-type attribute is {content_type}, not TSTInfo"
        )));
    }
    let digest = single(ID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| bad("no message-digest attribute".into()))?;
    if digest.as_bytes() != digest_hash.digest(tst_bytes) {
        return Err(bad(
            "the signed message digest is not the TSTInfo's: the TSTInfo was altered".into(),
        ));
    }
    // ESS signingCertificate: the signer certificate is the one the TSA
    // meant, not another with the same key.
    let cert_hash_ok = if let Some(v) = single(ID_SIGNING_CERTIFICATE_V2) {
        let sc: SigningCertificateV2 = v
            .decode_as()
            .map_err(|e| bad(format!("the signingCertificateV2 attribute: {e}")))?;
        let first = sc
            .certs
            .first()
            .ok_or_else(|| bad("an empty signingCertificateV2 attribute".into()))?;
        let alg = first.hash_algorithm.as_ref().map_or(ID_SHA256, |a| a.oid);
        let h = Hash::from_oid(&alg)
            .ok_or_else(|| bad(format!("unsupported ESSCertIDv2 hash {alg}")))?;
        first.cert_hash.as_bytes() == h.digest(&signer.der)
    } else if let Some(v) = single(ID_SIGNING_CERTIFICATE) {
        let sc: SigningCertificate = v
            .decode_as()
            .map_err(|e| bad(format!("the signingCertificate attribute: {e}")))?;
        let first = sc
            .certs
            .first()
            .ok_or_else(|| bad("an empty signingCertificate attribute".into()))?;
        first.cert_hash.as_bytes() == Hash::Sha1.digest(&signer.der)
    } else {
        return Err(bad(
            "no signingCertificate attribute, which RFC 3161 requires".into(),
        ));
    };
    if !cert_hash_ok {
        return Err(bad(format!(
            "the signingCertificate attribute names another certificate than {}",
            signer.subject()
        )));
    }
    // The signature is over the DER SET OF the attributes (RFC 5652 §5.4),
    // not their [0] IMPLICIT form inside the SignerInfo.
    let signed = attrs
        .to_der()
        .map_err(|e| bad(format!("the signed attributes do not encode: {e}")))?;
    let hash = match si.signature_algorithm.oid {
        RSA_ENCRYPTION => digest_hash,
        oid => signature_hash(&oid)
            .ok_or_else(|| bad(format!("unsupported signature algorithm {oid}")))?,
    };
    verify_signature(
        &signer.cert.tbs_certificate.subject_public_key_info,
        &si.signature_algorithm.oid,
        hash,
        &signed,
        si.signature.as_bytes(),
    )
    .map_err(|e| bad(format!("the TSA's signature does not verify: {e}")))
}

/// The hash of a combined signature algorithm (`sha256WithRSAEncryption`,
/// `ecdsa-with-SHA256`…).
fn signature_hash(oid: &ObjectIdentifier) -> Option<Hash> {
    match *oid {
        SHA256_WITH_RSA | ECDSA_WITH_SHA256 => Some(Hash::Sha256),
        SHA384_WITH_RSA | ECDSA_WITH_SHA384 => Some(Hash::Sha384),
        SHA512_WITH_RSA | ECDSA_WITH_SHA512 => Some(Hash::Sha512),
        _ => None,
    }
}

fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &ObjectIdentifier,
    hash: Hash,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use rsa::pkcs8::DecodePublicKey;
    let spki_der = spki.to_der().map_err(|e| e.to_string())?;
    let digest = hash.digest(message);
    match *alg {
        RSA_ENCRYPTION | SHA256_WITH_RSA | SHA384_WITH_RSA | SHA512_WITH_RSA => {
            let key = rsa::RsaPublicKey::from_public_key_der(&spki_der)
                .map_err(|e| format!("not an RSA key: {e}"))?;
            let scheme = match hash {
                Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2_010::Sha256>(),
                Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2_010::Sha384>(),
                Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2_010::Sha512>(),
                Hash::Sha1 => return Err("SHA-1 signatures are not accepted".into()),
            };
            key.verify(scheme, &digest, signature)
                .map_err(|e| e.to_string())
        }
        ECDSA_WITH_SHA256 | ECDSA_WITH_SHA384 | ECDSA_WITH_SHA512 => {
            if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der) {
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|e| e.to_string())?;
                key.verify_prehash(&digest, &sig).map_err(|e| e.to_string())
            } else if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der) {
                let sig = p384::ecdsa::Signature::from_der(signature).map_err(|e| e.to_string())?;
                key.verify_prehash(&digest, &sig).map_err(|e| e.to_string())
            } else {
                Err("an ECDSA signature by a key that is not P-256 or P-384".into())
            }
        }
        other => Err(format!("unsupported signature algorithm {other}")),
    }
}

fn find_signer<'a>(sid: &SignerIdentifier, pool: &'a [Cert]) -> Option<&'a Cert> {
    pool.iter().find(|c| match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            c.cert.tbs_certificate.issuer == isn.issuer
                && c.cert.tbs_certificate.serial_number == isn.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            c.subject_key_id().as_deref() == Some(ski.0.as_bytes())
        }
    })
}

/// Walks from the signer up to a trusted certificate; returns its subject.
fn chain_to_trust(
    signer: &Cert,
    pool: &[Cert],
    trust: &TrustAnchors,
    at: DateTime<Utc>,
) -> Result<String, TokenError> {
    let untrusted = |m: String| TokenError::Untrusted(m);
    if trust.is_empty() {
        return Err(untrusted(
            "no trusted TSA certificate to check it against".into(),
        ));
    }
    let mut current = signer;
    for _ in 0..MAX_CHAIN {
        if !current.valid_at(at) {
            return Err(untrusted(format!(
                "{} was not valid at the token's time {}",
                current.subject(),
                at.to_rfc3339()
            )));
        }
        if trust.contains(current) {
            return Ok(current.subject());
        }
        let tbs = current
            .tbs_bytes()
            .map_err(|e| untrusted(format!("{}: {e}", current.subject())))?;
        let issuer = pool.iter().find(|p| {
            p.cert.tbs_certificate.subject == current.cert.tbs_certificate.issuer
                && p.der != current.der
                && p.is_ca()
                && signature_hash(&current.cert.signature_algorithm.oid).is_some_and(|h| {
                    verify_signature(
                        &p.cert.tbs_certificate.subject_public_key_info,
                        &current.cert.signature_algorithm.oid,
                        h,
                        tbs,
                        current.cert.signature.raw_bytes(),
                    )
                    .is_ok()
                })
        });
        match issuer {
            Some(p) => current = p,
            None => {
                return Err(untrusted(format!(
                    "{} (issued by {}) does not chain to a trusted TSA certificate ({})",
                    signer.subject(),
                    current.cert.tbs_certificate.issuer,
                    trust.subjects().join("; ")
                )));
            }
        }
    }
    Err(untrusted(format!(
        "{}: the chain to a trusted certificate is longer than {MAX_CHAIN}",
        signer.subject()
    )))
}

/// GeneralizedTime `YYYYMMDDHHMMSS[.fff…]Z`.
fn parse_gen_time(any: &Any) -> Result<DateTime<Utc>, TokenError> {
    let bad = || TokenError::Malformed("the TSTInfo's genTime is not a UTC GeneralizedTime".into());
    if any.tag() != Tag::GeneralizedTime {
        return Err(bad());
    }
    let s = std::str::from_utf8(any.value()).map_err(|_| bad())?;
    let body = s.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (w, f),
        Some(_) => return Err(bad()),
        None => (body, ""),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<u32>().map_err(|_| bad());
    let date = NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?).ok_or_else(bad)?;
    let nanos = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction
            .chars()
            .chain("000000000".chars())
            .take(9)
            .collect();
        digits.parse::<u32>().map_err(|_| bad())?
    };
    let t = date
        .and_hms_nano_opt(n(8..10)?, n(10..12)?, n(12..14)?, nanos)
        .ok_or_else(bad)?;
    Ok(t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_the_digest_a_nonce_and_cert_req() {
        let sha = [7u8; 32];
        let r = request(&sha, None);
        let back = TimeStampReq::from_der(&r.der).unwrap();
        assert_eq!(back.message_imprint.hash_algorithm.oid, ID_SHA256);
        assert_eq!(back.message_imprint.hashed_message.as_bytes(), &sha);
        assert!(back.cert_req);
        assert_eq!(back.nonce.unwrap().as_bytes(), r.nonce.as_slice());
        assert_eq!(r.nonce.len(), 8);
        assert_ne!(
            request(&sha, None).nonce,
            r.nonce,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn gen_time_with_and_without_fractions() {
        let any = |s: &str| Any::new(Tag::GeneralizedTime, s.as_bytes()).unwrap();
        let t = parse_gen_time(&any("20260102030405Z")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let t = parse_gen_time(&any("20260102030405.25Z")).unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 250);
        for bad in [
            "20260102030405",
            "2026010203040Z",
            "20261302030405Z",
            "20260102030405.Z",
        ] {
            assert!(parse_gen_time(&any(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let e = verify(b"not DER", &[0; 32], &TrustAnchors::default()).unwrap_err();
        assert_eq!(e.code(), "timestamp_malformed");
    }
}
