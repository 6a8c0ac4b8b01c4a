//! The evidence format: canonical payloads, in-toto statements, DSSE envelopes,
//! Ed25519 signing and checkpoints. Everything here is pure (no I/O beyond key
//! files), so that `verify` and the writer share exactly one definition of
//! what a valid record is.

pub mod canonical;
pub mod checkpoint;
pub mod dsse;
pub mod keys;
pub mod layout;
pub mod record;
pub mod timestamp;

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks that a stream id is safe to use as a store path: non-empty
/// segments of `[A-Za-z0-9._-]`, no `.`/`..` segments, separated by `/`.
pub fn validate_stream_id(stream: &str) -> Result<(), String> {
    if stream.is_empty() || stream.len() > 200 {
        return Err("stream ids must be 1 to 200 characters".into());
    }
    for seg in stream.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.starts_with('.') {
            return Err(format!("stream id `{stream}` has an empty or dot segment"));
        }
        if !seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
        {
            return Err(format!(
                "stream id `{stream}` may only contain letters, digits, `._-@+` and `/`"
            ));
        }
    }
    Ok(())
}

/// Reduces an arbitrary source name (a repository path, an org login) to a
/// stream id segment.
pub fn sanitize_segment(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "_".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lower_case_hex() {
        let h = sha256_hex(b"abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stream_ids_cannot_escape_the_store() {
        assert!(validate_stream_id("aws-iam-users/123456789012").is_ok());
        assert!(validate_stream_id("../etc").is_err());
        assert!(validate_stream_id("a//b").is_err());
        assert!(validate_stream_id("a/.hidden").is_err());
        assert!(validate_stream_id("a b").is_err());
        assert_eq!(sanitize_segment("my repo/../x"), "my-repo-..-x");
    }
}
