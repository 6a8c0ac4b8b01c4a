//! Reading a sample bundle never panics and never writes outside the
//! directory it unpacks into.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bundle.tar.gz");
    std::fs::write(&file, data).expect("write");
    let into = dir.path().join("out");
    std::fs::create_dir(&into).expect("mkdir");
    if let Ok(root) = exhibit::verify::bundle::unpack(&file, &into) {
        assert!(root.starts_with(&into));
        let _ = exhibit::verify::bundle::manifest(&root);
    }
});
