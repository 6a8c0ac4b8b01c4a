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

/// Canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

/// Streams the canonical form of `value` into `writer`.
///
/// The JCS crate buffers every object's members to sort them, so a large
/// payload would sit in memory two or three times over. Here objects are
/// walked with their keys sorted as RFC 8785 requires (by UTF-16 code
/// units) and written straight through; strings are escaped by serde_json
/// (whose escapes are exactly the RFC's), and numbers are formatted by the
/// JCS crate (ECMAScript number serialisation is the subtle part). The unit
/// tests hold this to the RFC's examples and to the crate's own output.
pub fn write<W: Write>(value: &Value, writer: &mut W) -> Result<(), serde_json::Error> {
    let punct = |w: &mut W, b: &[u8]| w.write_all(b).map_err(serde_json::Error::io);
    match value {
        Value::Null | Value::Bool(_) => serde_json::to_writer(writer, value),
        Value::Number(n) => {
            let beyond_double = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u > MAX_SAFE,
                (None, Some(i)) => i.unsigned_abs() > MAX_SAFE,
                _ => false,
            };
            if beyond_double {
                serde_json::to_writer(writer, &n.to_string())
            } else {
                serde_json_canonicalizer::to_writer(n, writer)
            }
        }
        Value::String(s) => serde_json::to_writer(writer, s),
        Value::Array(items) => {
            punct(writer, b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    punct(writer, b",")?;
                }
                write(item, writer)?;
            }
            punct(writer, b"]")
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            punct(writer, b"{")?;
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    punct(writer, b",")?;
                }
                serde_json::to_writer(&mut *writer, k)?;
                punct(writer, b":")?;
                write(v, writer)?;
            }
            punct(writer, b"}")
        }
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

    /// On values without large integers, the streaming writer and the JCS
    /// crate agree byte for byte.
    #[test]
    fn streaming_writer_agrees_with_the_jcs_crate() {
        let samples = [
            r#"{"b":[1,2.5,-0.0,1e-7,1e21,{"z":null,"a":true}],"a":"x\u0001\"\\/\u00e9\ud83d\ude00","\u20ac":1,"\r":2,"1":3,"\ufb33":4,"\ud83d\ude00":5}"#,
            r#"[[],{},"",0,-1,123456789,0.1,100,1e100,-5e-324]"#,
            r#"{"nested":{"deeper":{"k2":"v","k1":[{"y":1,"x":2}]}}}"#,
        ];
        for s in samples {
            let v: Value = serde_json::from_str(s).unwrap();
            assert_eq!(
                String::from_utf8(to_vec(&v).unwrap()).unwrap(),
                serde_json_canonicalizer::to_string(&v).unwrap(),
                "{s}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn streaming_writer_agrees_on_random_values(v in arb_json()) {
            proptest::prop_assert_eq!(
                String::from_utf8(to_vec(&v).unwrap()).unwrap(),
                serde_json_canonicalizer::to_string(&v).unwrap()
            );
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..(1i64 << 53)).prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(".*", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Found by the fuzzer: a double of 2^53 or more prints as an integer
    /// (ECMAScript does), which read back is an integer beyond double
    /// precision and so becomes a string. The double's canonical form is the
    /// RFC's; the integer's protection is ours. Both are stable.
    #[test]
    fn large_doubles_print_as_integers_and_large_integers_as_strings() {
        let double: Value = serde_json::from_str("2.2222222222222223e18").unwrap();
        assert_eq!(to_vec(&double).unwrap(), b"2222222222222222300");
        let integer: Value = serde_json::from_str("2222222222222222300").unwrap();
        assert_eq!(to_vec(&integer).unwrap(), b"\"2222222222222222300\"");
        assert_eq!(to_vec(&integer).unwrap(), to_vec(&integer).unwrap());
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
