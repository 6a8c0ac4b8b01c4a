//! The config parser never panics, whatever the file holds.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = exhibit::config::parse(std::path::Path::new("fuzz/exhibit.toml"), text);
});
