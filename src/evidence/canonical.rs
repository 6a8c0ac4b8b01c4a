//! RFC 8785 (JCS) canonical JSON.
//!
//! The JCS implementation serialises every number as an IEEE-754 double, as
//! the RFC requires; integers beyond 2^53 would silently lose precision (AWS
//! and GitHub ids can be that large). They are turned into decimal strings
//! first, so that the canonical form never says something the source did not.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{self, Write};

/// The largest integer an IEEE-754 double represents exactly.
const MAX_SAFE: u64 = 1 << 53;

/// Replaces integers outside ±2^53 with their decimal string, in place.
pub fn protect_large_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            let unsafe_int = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u > MAX_SAFE,
                (None, Some(i)) => i.unsigned_abs() > MAX_SAFE,
                _ => false,
            };
            if unsafe_int {
                *value = Value::String(n.to_string());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(protect_large_integers),
        Value::Object(map) => map.values_mut().for_each(protect_large_integers),
        _ => {}
    }
}

/// Canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

/// Streams the canonical form of `value` into `writer`, so that a large
/// payload need not exist twice in memory.
pub fn write<W: Write>(value: &Value, writer: &mut W) -> Result<(), serde_json::Error> {
    if needs_protection(value) {
        let mut owned = value.clone();
        protect_large_integers(&mut owned);
        serde_json_canonicalizer::to_writer(&owned, writer)
    } else {
        serde_json_canonicalizer::to_writer(value, writer)
    }
}

fn needs_protection(value: &Value) -> bool {
    match value {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u > MAX_SAFE,
            (None, Some(i)) => i.unsigned_abs() > MAX_SAFE,
            _ => false,
        },
        Value::Array(items) => items.iter().any(needs_protection),
        Value::Object(map) => map.values().any(needs_protection),
        _ => false,
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Returns the inner writer, the hex SHA-256 and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(s: &str) -> String {
        let v: Value = serde_json::from_str(s).unwrap();
        String::from_utf8(to_vec(&v).unwrap()).unwrap()
    }

    /// RFC 8785 section 3.2.2: the sample input and its canonical output.
    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(canon(input), expected);
    }

    /// RFC 8785 section 3.2.3: property sorting by UTF-16 code units.
    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let out = canon(input);
        let order: Vec<&str> = vec![
            "\\r",
            "1",
            "\u{0080}",
            "\u{00f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ];
        let mut last = 0;
        for key in order {
            let pos = out.find(&format!("\"{key}\"")).unwrap();
            assert!(pos >= last, "{key} out of order in {out}");
            last = pos;
        }
    }

    /// RFC 8785 appendix B: IEEE-754 number serialisation samples.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("9007199254740992", "9007199254740992"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("295147905179352830000", "295147905179352830000"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ];
        for (input, expected) in cases {
            assert_eq!(canon(input), expected, "input {input}");
        }
    }

    #[test]
    fn large_integers_keep_every_digit() {
        let v = json!({"id": 123456789012345678u64, "small": 42, "neg": -9007199254740993i64});
        let out = String::from_utf8(to_vec(&v).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"id":"123456789012345678","neg":"-9007199254740993","small":42}"#
        );
    }

    #[test]
    fn hashing_writer_matches_one_shot_hash() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, hash, len) = w.finish();
        assert_eq!(hash, crate::evidence::sha256_hex(&bytes));
        assert_eq!(len, 11);
    }
}
