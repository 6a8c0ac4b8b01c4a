//! The cost of turning one snapshot into stored evidence — canonicalise,
//! hash, sign, write blob and record — for 1 KB, 1 MB and 50 MB payloads,
//! against a baseline in the same run: SHA-256 of the same number of bytes
//! (the least any content-addressed store must do).
//!
//! `cargo bench --bench pipeline`; figures are in docs/benchmarks.md.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

use exhibit::evidence::keys::Signer;
use exhibit::evidence::record::{CollectorInfo, Status, Trigger};
use exhibit::store::fs::FsStore;
use exhibit::writer::{Entry, Writer};

/// A payload shaped like collector output (an array of user objects) of
/// roughly `bytes` canonical bytes.
fn payload(bytes: usize, salt: u64) -> Value {
    let one = 200; // canonical size of one user below, roughly
    let users: Vec<Value> = (0..(bytes / one).max(1))
        .map(|i| {
            json!({
                "arn": format!("arn:aws:iam::123456789012:user/user-{salt}-{i}"),
                "user_name": format!("user-{i}"),
                "mfa_enabled": i % 3 != 0,
                "access_keys": [{"id": format!("AKIA{i:016}"), "status": "Active"}],
                "created": "2024-01-01T00:00:00Z",
            })
        })
        .collect();
    json!({ "users": users })
}

fn entry(stream: &str, payload: Value) -> Entry {
    let collector = CollectorInfo {
        name: "bench".into(),
        kind: "bench".into(),
        version: "0".into(),
    };
    let mut entry = Entry::new(stream, collector, Status::Ok, chrono::Utc::now(), payload);
    entry.predicate.source = json!({"account": "123456789012"});
    entry.predicate.attempts = 1;
    entry.predicate.criteria = vec!["CC6.1".into()];
    entry
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::new(dir.path().join("evidence")));
    let writer = rt
        .block_on(Writer::open(store, Arc::new(Signer::generate()), "bench"))
        .unwrap();
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    // The smoke run (`cargo test --bench`, no `--bench` argument) proves each
    // path once; 50 MB in a debug build would only add minutes.
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes: &[(&str, usize)] = if measuring {
        &[("1KB", 1 << 10), ("1MB", 1 << 20), ("50MB", 50 << 20)]
    } else {
        &[("1KB", 1 << 10), ("1MB", 1 << 20)]
    };
    for &(label, size) in sizes {
        let mut salt = 0u64;
        // Payloads differ per iteration (content addressing would otherwise
        // skip the blob write), so they are built outside the timed part.
        let template = payload(size, 0);
        let canonical_len = exhibit::evidence::canonical::to_vec(&template)
            .unwrap()
            .len();
        group.throughput(Throughput::Bytes(canonical_len as u64));
        group.bench_with_input(
            BenchmarkId::new("canonicalise+hash+sign+write", label),
            &size,
            |b, &size| {
                b.iter_batched(
                    || {
                        salt += 1;
                        entry(&format!("bench/{label}"), payload(size, salt))
                    },
                    |e| {
                        let run = writer.begin_run(Trigger::Manual);
                        rt.block_on(writer.append(&run, e)).unwrap();
                    },
                    criterion::BatchSize::PerIteration,
                )
            },
        );
        let bytes = vec![0x5au8; canonical_len];
        group.bench_with_input(
            BenchmarkId::new("baseline: sha256 of the same bytes", label),
            &bytes,
            |b, bytes| b.iter(|| exhibit::evidence::sha256_hex(bytes)),
        );
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
