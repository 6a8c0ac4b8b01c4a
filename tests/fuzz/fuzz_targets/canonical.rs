//! Canonicalisation never panics, its output is JSON, and canonicalising it
//! again changes nothing — except where a double of 2^53 or more prints as
//! an integer, which then reads back as an integer beyond double precision
//! and is kept as a string by design (see canonical.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn has_huge_number(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f.abs() >= 9007199254740992.0),
        Value::Array(a) => a.iter().any(has_huge_number),
        Value::Object(m) => m.values().any(has_huge_number),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(once) = exhibit::evidence::canonical::to_vec(&value) else { return };
    let back: Value = serde_json::from_slice(&once).expect("canonical output is JSON");
    if has_huge_number(&back) {
        return;
    }
    let twice = exhibit::evidence::canonical::to_vec(&back).expect("re-canonicalises");
    assert_eq!(once, twice, "canonicalisation is not idempotent");
});
