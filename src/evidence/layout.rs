//! The store's key layout (DESIGN.md), in one place: where every kind of
//! object lives, built and parsed by one type. Every backend (filesystem,
//! S3, the spool) stores exactly these keys, and nothing else in the code
//! spells them out, so that the writer, `verify`, the read side and the
//! bundles cannot drift apart.
//!
//! ```text
//! blobs/sha256/<first 2 hex>/<64 hex>          canonical payload bytes
//! records/<stream>/<seq, 12 digits>.json       DSSE envelope of a record
//! checkpoints/<YYYY>/<MM>/<DD>/<run id>.json   DSSE envelope of a checkpoint
//! checkpoints/<YYYY>/<MM>/<DD>/<run id>.tsr    RFC 3161 token over that checkpoint
//! tsa/<sha256 of the certificate>.pem          TSA certificates the agent trusted
//! keys/<key id>.pub                            public keys (Ed25519, PEM)
//! ```

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// Prefix of every payload blob.
pub const BLOBS: &str = "blobs/";
/// Prefix of every record.
pub const RECORDS: &str = "records/";
/// Prefix of every checkpoint and its token.
pub const CHECKPOINTS: &str = "checkpoints/";
/// Prefix of the published public keys.
pub const KEYS: &str = "keys/";
/// Prefix of the published TSA certificates.
pub const TSA: &str = "tsa/";

/// Digits of a record's sequence number in its key.
const SEQ_DIGITS: usize = 12;

/// One object of the store, by what it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKey {
    /// A content-addressed payload.
    Blob {
        /// Lower-case hex SHA-256 of the canonical bytes.
        sha256: String,
    },
    /// A record of a stream.
    Record {
        /// The stream id.
        stream: String,
        /// The position in the stream, from 1.
        seq: u64,
    },
    /// A run's checkpoint.
    Checkpoint {
        /// The day the run finished (UTC), its directory.
        day: NaiveDate,
        /// The run id.
        run_id: String,
    },
    /// The RFC 3161 token over a checkpoint.
    Token {
        /// The checkpoint's day.
        day: NaiveDate,
        /// The checkpoint's run id.
        run_id: String,
    },
    /// A published public key.
    PublicKey {
        /// The key id (16 hex digits).
        key_id: String,
    },
    /// A published TSA certificate.
    TsaCert {
        /// Lower-case hex SHA-256 of the certificate (DER).
        sha256: String,
    },
}

impl ObjectKey {
    /// The checkpoint of the run `run_id` that finished at `finished_at`.
    pub fn checkpoint(finished_at: DateTime<Utc>, run_id: &str) -> Self {
        ObjectKey::Checkpoint {
            day: finished_at.date_naive(),
            run_id: run_id.to_string(),
        }
    }

    /// The token of this checkpoint (`None` for other objects).
    pub fn token(&self) -> Option<Self> {
        match self {
            ObjectKey::Checkpoint { day, run_id } => Some(ObjectKey::Token {
                day: *day,
                run_id: run_id.clone(),
            }),
            _ => None,
        }
    }

    /// The checkpoint this token is over (`None` for other objects).
    pub fn token_of(&self) -> Option<Self> {
        match self {
            ObjectKey::Token { day, run_id } => Some(ObjectKey::Checkpoint {
                day: *day,
                run_id: run_id.clone(),
            }),
            _ => None,
        }
    }

    /// Parses a store key; `None` for anything outside the layout (a
    /// stray file, a record number of another width, a bad stream id).
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(rest) = key.strip_prefix("blobs/sha256/") {
            let (dir, sha256) = rest.split_once('/')?;
            return (is_sha256(sha256) && dir == &sha256[..2]).then(|| ObjectKey::Blob {
                sha256: sha256.to_string(),
            });
        }
        if let Some(rest) = key.strip_prefix(RECORDS) {
            let (stream, file) = rest.rsplit_once('/')?;
            let seq = parse_seq(file.strip_suffix(".json")?)?;
            super::validate_stream_id(stream).ok()?;
            return Some(ObjectKey::Record {
                stream: stream.to_string(),
                seq,
            });
        }
        if let Some(rest) = key.strip_prefix(CHECKPOINTS) {
            let mut parts = rest.splitn(4, '/');
            let (y, m, d, file) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if y.len() != 4 || m.len() != 2 || d.len() != 2 {
                return None;
            }
            let day = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
            let (run_id, token) = match (file.strip_suffix(".json"), file.strip_suffix(".tsr")) {
                (Some(id), _) => (id, false),
                (None, Some(id)) => (id, true),
                _ => return None,
            };
            if !is_run_id(run_id) {
                return None;
            }
            let run_id = run_id.to_string();
            return Some(if token {
                ObjectKey::Token { day, run_id }
            } else {
                ObjectKey::Checkpoint { day, run_id }
            });
        }
        if let Some(rest) = key.strip_prefix(KEYS) {
            let key_id = rest.strip_suffix(".pub")?;
            return (!key_id.is_empty() && key_id.chars().all(|c| c.is_ascii_hexdigit())).then(
                || ObjectKey::PublicKey {
                    key_id: key_id.to_string(),
                },
            );
        }
        if let Some(rest) = key.strip_prefix(TSA) {
            let sha256 = rest.strip_suffix(".pem")?;
            return is_sha256(sha256).then(|| ObjectKey::TsaCert {
                sha256: sha256.to_string(),
            });
        }
        None
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKey::Blob { sha256 } => {
                // `get`: a digest read from an unverified record may be
                // short or not even ASCII; a key is still printed.
                write!(
                    f,
                    "blobs/sha256/{}/{sha256}",
                    sha256.get(..2).unwrap_or(sha256)
                )
            }
            ObjectKey::Record { stream, seq } => {
                write!(
                    f,
                    "{RECORDS}{stream}/{seq:0width$}.json",
                    width = SEQ_DIGITS
                )
            }
            ObjectKey::Checkpoint { day, run_id } => write!(f, "{}{run_id}.json", day_dir(*day)),
            ObjectKey::Token { day, run_id } => write!(f, "{}{run_id}.tsr", day_dir(*day)),
            ObjectKey::PublicKey { key_id } => write!(f, "{KEYS}{key_id}.pub"),
            ObjectKey::TsaCert { sha256 } => write!(f, "{TSA}{sha256}.pem"),
        }
    }
}

fn day_dir(day: NaiveDate) -> String {
    format!(
        "{CHECKPOINTS}{:04}/{:02}/{:02}/",
        day.year(),
        day.month(),
        day.day()
    )
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_run_id(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A record number as written in its key: exactly twelve digits.
fn parse_seq(s: &str) -> Option<u64> {
    (s.len() == SEQ_DIGITS && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The key of the payload blob with this SHA-256.
pub fn blob(sha256: &str) -> String {
    ObjectKey::Blob {
        sha256: sha256.to_string(),
    }
    .to_string()
}

/// The key of record `seq` of `stream`.
pub fn record(stream: &str, seq: u64) -> String {
    ObjectKey::Record {
        stream: stream.to_string(),
        seq,
    }
    .to_string()
}

/// The prefix under which `stream`'s records (and those of streams nested
/// under it, which [`stream_record`] tells apart) are listed.
pub fn stream_prefix(stream: &str) -> String {
    format!("{RECORDS}{stream}/")
}

/// The prefix of every stream whose id starts with `name/` (the streams of
/// one collector instance).
pub fn collector_prefix(name: &str) -> String {
    format!("{RECORDS}{name}/")
}

/// The stream and number of a record key, `None` for any other key.
pub fn stream_record(key: &str) -> Option<(String, u64)> {
    match ObjectKey::parse(key)? {
        ObjectKey::Record { stream, seq } => Some((stream, seq)),
        _ => None,
    }
}

/// The stream a key under `records/` belongs to, whatever its file name:
/// for listing streams even when one holds a stray or misnumbered file.
pub fn stream_of(key: &str) -> Option<&str> {
    key.strip_prefix(RECORDS)?
        .rsplit_once('/')
        .map(|(stream, _)| stream)
}

/// The key of the checkpoint of run `run_id`, finished at `finished_at`.
pub fn checkpoint(finished_at: DateTime<Utc>, run_id: &str) -> String {
    ObjectKey::checkpoint(finished_at, run_id).to_string()
}

/// Whether a key is a payload blob.
pub fn is_blob(key: &str) -> bool {
    matches!(ObjectKey::parse(key), Some(ObjectKey::Blob { .. }))
}

/// Whether a key is a checkpoint (not its token, not a stray file).
pub fn is_checkpoint(key: &str) -> bool {
    matches!(ObjectKey::parse(key), Some(ObjectKey::Checkpoint { .. }))
}

/// Whether a key is a checkpoint's RFC 3161 token.
pub fn is_token(key: &str) -> bool {
    matches!(ObjectKey::parse(key), Some(ObjectKey::Token { .. }))
}

/// The key of the token over the checkpoint at `checkpoint_key`.
pub fn token(checkpoint_key: &str) -> String {
    match ObjectKey::parse(checkpoint_key).and_then(|k| k.token()) {
        Some(t) => t.to_string(),
        // Not a well-formed checkpoint key: the token still sits beside it,
        // so that a misplaced checkpoint's token is looked for where it is.
        None => format!(
            "{}.tsr",
            checkpoint_key
                .strip_suffix(".json")
                .unwrap_or(checkpoint_key)
        ),
    }
}

/// The key of the checkpoint a token at `token_key` is over.
pub fn checkpoint_of_token(token_key: &str) -> Option<String> {
    token_key
        .strip_suffix(".tsr")
        .map(|stem| format!("{stem}.json"))
}

/// The key of a published public key.
pub fn public_key(key_id: &str) -> String {
    ObjectKey::PublicKey {
        key_id: key_id.to_string(),
    }
    .to_string()
}

/// The key of a published TSA certificate.
pub fn tsa_cert(sha256: &str) -> String {
    ObjectKey::TsaCert {
        sha256: sha256.to_string(),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn every_kind_of_key_builds_as_documented_and_parses_back() {
        let at: DateTime<Utc> = "2026-03-04T23:59:59Z".parse().unwrap();
        let cases = [
            (
                ObjectKey::Blob { sha256: SHA.into() },
                format!("blobs/sha256/ba/{SHA}"),
            ),
            (
                ObjectKey::Record {
                    stream: "git/exhibit".into(),
                    seq: 7,
                },
                "records/git/exhibit/000000000007.json".into(),
            ),
            (
                ObjectKey::checkpoint(at, "0190-abc"),
                "checkpoints/2026/03/04/0190-abc.json".into(),
            ),
            (
                ObjectKey::checkpoint(at, "0190-abc").token().unwrap(),
                "checkpoints/2026/03/04/0190-abc.tsr".into(),
            ),
            (
                ObjectKey::PublicKey {
                    key_id: "0123456789abcdef".into(),
                },
                "keys/0123456789abcdef.pub".into(),
            ),
            (
                ObjectKey::TsaCert { sha256: SHA.into() },
                format!("tsa/{SHA}.pem"),
            ),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text);
            assert_eq!(ObjectKey::parse(&text), Some(key), "{text}");
        }
        assert_eq!(record("a/b", 1), "records/a/b/000000000001.json");
        assert_eq!(
            stream_record("records/a/b/000000000012.json"),
            Some(("a/b".into(), 12))
        );
        assert_eq!(token(&checkpoint(at, "r")), "checkpoints/2026/03/04/r.tsr");
        assert_eq!(
            checkpoint_of_token("checkpoints/2026/03/04/r.tsr").as_deref(),
            Some("checkpoints/2026/03/04/r.json")
        );
        assert_eq!(checkpoint_of_token("checkpoints/2026/03/04/r.json"), None);
    }

    #[test]
    fn a_malformed_digest_still_prints_a_key() {
        // A digest read from an unverified record: short, empty, or not
        // ASCII (the first two bytes of `€` split a character).
        for d in ["a", "", "€", "é€"] {
            let key = ObjectKey::Blob { sha256: d.into() }.to_string();
            assert!(
                key.starts_with("blobs/sha256/") && key.ends_with(d),
                "{key}"
            );
            assert_eq!(ObjectKey::parse(&key), None, "{key}");
        }
    }

    #[test]
    fn keys_outside_the_layout_do_not_parse() {
        for bad in [
            "records/a/1.json",
            "records/a/0000000000001.json",
            "records/../x/000000000001.json",
            "records/a/000000000001.txt",
            "blobs/sha256/bb/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "blobs/sha256/ab/abc",
            "checkpoints/2026/13/01/r.json",
            "checkpoints/2026/1/01/r.json",
            "checkpoints/2026/01/01/r.txt",
            "keys/agent.pem",
            "tsa/x.pem",
            "spool/x",
        ] {
            assert_eq!(ObjectKey::parse(bad), None, "{bad}");
        }
        assert_eq!(stream_of("records/a/b/stray.txt"), Some("a/b"));
        assert!(is_checkpoint("checkpoints/2026/01/01/r.json"));
        assert!(!is_checkpoint("checkpoints/2026/01/01/r.tsr"));
        assert!(is_token("checkpoints/2026/01/01/r.tsr"));
        assert!(is_blob(&blob(SHA)));
        assert!(!is_blob("blobs/sha256/xx"));
    }
}
