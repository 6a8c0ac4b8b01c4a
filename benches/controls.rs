//! Control assessment at the scale of an audit period:
//!
//! - every starter control evaluated over one day's snapshots, and over a
//!   year of daily snapshots (365 × the input streams), with 2,000 users in
//!   the IdP (Okta, Google Workspace) and IAM payloads (users, credential
//!   report) and 2,000 GitHub members — payloads made in-process from the
//!   controls' own passing fixtures (real collector shapes), scaled up;
//!   each day's payloads are converted for the policy engine afresh, as the
//!   daemon would read them from the store, and dropped after the day, so
//!   memory stays flat in the number of days (the year run prints its
//!   resident set size after the first and the last day);
//! - the export of a population of 10,000 merged pull requests (canonical
//!   JSON array, its SHA-256, and the 25-item hash-rank sample).
//!
//! `cargo bench --bench controls`; `EXHIBIT_BENCH_DAYS=3` shortens the year
//! (the smoke run under `cargo test --bench controls` takes two days). Targets (issue 16): a year ≤ 60 s on the 2-core
//! reference machine; the population export ≤ 1 s.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

use exhibit::control::evaluate::{Context, InputRecord, evaluate};
use exhibit::control::exception::RecordRef;
use exhibit::control::fixtures::FixtureFile;
use exhibit::control::population::{Occurrence, Population, draw, seed};
use exhibit::control::{Library, State};
use exhibit::evidence::record::{CollectorInfo, Status};

const PEOPLE: usize = 2_000;

/// Kinds whose payloads list people, scaled to [`PEOPLE`].
fn lists_people(kind: &str, definition: Option<&str>) -> bool {
    matches!(
        (kind, definition),
        (
            "aws-iam-users" | "aws-iam-credential-report" | "github-members",
            _
        ) | ("http", Some("okta-users" | "google-workspace-directory"))
    )
}

/// Makes `v`'s identifying strings distinct for copy `i`.
fn rename(v: &mut Value, i: usize) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s)
                        if matches!(
                            k.as_str(),
                            "user"
                                | "login"
                                | "email"
                                | "id"
                                | "user_name"
                                | "arn"
                                | "primaryEmail"
                        ) =>
                    {
                        *s = match s.split_once('@') {
                            Some((a, b)) => format!("{a}+{i}@{b}"),
                            None => format!("{s}-{i}"),
                        };
                    }
                    _ => rename(x, i),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename(x, i)),
        _ => {}
    }
}

/// Grows the longest array of objects in `v` to `n` items.
fn scale(v: &mut Value, n: usize) {
    fn longest(v: &Value, at: String, best: &mut (usize, String)) {
        match v {
            Value::Array(a) => {
                if a.first().is_some_and(Value::is_object) && a.len() > best.0 {
                    *best = (a.len(), at.clone());
                }
                for (i, x) in a.iter().enumerate() {
                    longest(x, format!("{at}/{i}"), best);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    longest(
                        x,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        best,
                    );
                }
            }
            _ => {}
        }
    }
    let mut best = (0, String::new());
    longest(v, String::new(), &mut best);
    if let Some(Value::Array(items)) = v.pointer_mut(&best.1) {
        let base = items.clone();
        items.clear();
        for i in 0..n {
            let mut item = base[i % base.len()].clone();
            rename(&mut item, i);
            items.push(item);
        }
    }
}

/// One payload per (kind, definition) from the passing fixtures.
fn templates(lib: &Library) -> Vec<(CollectorInfo, Value, Value)> {
    let mut out: BTreeMap<(String, Option<String>), Value> = BTreeMap::new();
    for c in lib.iter() {
        let (_, text) = c.fixtures.as_ref().expect("starter controls have fixtures");
        let f: FixtureFile = serde_json::from_str(text).expect("fixtures parse");
        let Some(case) = f.cases.iter().find(|c| c.expect.state == State::Pass) else {
            continue;
        };
        for (name, records) in &case.inputs {
            let spec = c.control.inputs.iter().find(|s| &s.name == name).unwrap();
            let key = (spec.kind.clone(), spec.definition.clone());
            let payload = records[0].payload.clone();
            let size = |v: &Value| v.to_string().len();
            if out.get(&key).is_none_or(|old| size(old) < size(&payload)) {
                out.insert(key, payload);
            }
        }
    }
    out.into_iter()
        .map(|((kind, definition), mut payload)| {
            if lists_people(&kind, definition.as_deref()) {
                scale(&mut payload, PEOPLE);
            }
            let source = match &definition {
                Some(d) => json!({"definition": d}),
                None => json!({}),
            };
            let name = definition.clone().unwrap_or_else(|| kind.clone());
            (
                CollectorInfo {
                    name,
                    kind,
                    version: "bench".into(),
                },
                source,
                payload,
            )
        })
        .collect()
}

/// Assesses every control on one day; returns how many passed.
fn assess_day(
    lib: &Library,
    templates: &[(CollectorInfo, Value, Value)],
    at: DateTime<Utc>,
    day: u64,
) -> usize {
    let records: Vec<InputRecord> = templates
        .iter()
        .map(|(collector, source, payload)| {
            InputRecord::from_parts(
                RecordRef {
                    stream: format!("{}/bench", collector.name),
                    seq: day + 1,
                    sha256: format!("{day:064}"),
                },
                collector.clone(),
                source.clone(),
                Status::Ok,
                None,
                at - chrono::Duration::hours(1),
                payload,
            )
        })
        .collect();
    let ctx = Context {
        at,
        records: &records,
        exceptions: &[],
        reviews: &[],
        mapping: None,
    };
    lib.iter()
        .map(|c| evaluate(&c.control, &c.policy, &ctx))
        .filter(|e| e.state == State::Pass)
        .count()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn assessment(c: &mut Criterion) {
    let lib = Library::builtin().expect("the starter library loads");
    let templates = templates(&lib);
    let start: DateTime<Utc> = "2025-01-01T06:00:00Z".parse().unwrap();
    // `cargo test --bench` (no `--bench` argument) runs each benchmark once
    // to prove it works: two days prove the loop; a year in a debug build
    // would take minutes of CI for no more coverage.
    let measuring = std::env::args().any(|a| a == "--bench");
    let days: u64 = std::env::var("EXHIBIT_BENCH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(if measuring { 365 } else { 2 });
    let mut g = c.benchmark_group("controls");
    g.sample_size(10);
    g.bench_function(
        format!("assess {} controls, one day, {PEOPLE} users", lib.len()),
        |b| b.iter(|| assess_day(&lib, &templates, start, 0)),
    );
    // The baseline: what the writer does to the same day's payloads anyway
    // (RFC 8785 canonical bytes and their SHA-256), so the figure reads as
    // "assessing costs N times storing".
    g.bench_function(
        "baseline: canonicalise and hash the same day's payloads",
        |b| {
            b.iter(|| {
                templates
                    .iter()
                    .map(|(_, _, payload)| {
                        let bytes = exhibit::evidence::canonical::to_vec(payload).unwrap();
                        exhibit::evidence::sha256_hex(&bytes).len()
                    })
                    .sum::<usize>()
            })
        },
    );
    let mut reported = false;
    g.measurement_time(Duration::from_secs(1));
    g.bench_function(format!("assess {} controls over {days} daily snapshots", lib.len()), |b| {
        b.iter(|| {
            let mut passed = 0;
            let mut first = 0;
            for d in 0..days {
                passed += assess_day(&lib, &templates, start + chrono::Duration::days(d as i64), d);
                if d == 0 {
                    first = rss_kib();
                }
            }
            if !reported {
                eprintln!(
                    "year: {passed} passing evaluations of {}; RSS after day 1: {first} KiB, after day {days}: {} KiB",
                    days as usize * lib.len(),
                    rss_kib()
                );
                reported = true;
            }
            passed
        })
    });
    g.finish();
}

fn prs(n: usize) -> Vec<Occurrence> {
    let start: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
    (0..n)
        .map(|i| {
            let mut attributes = Map::new();
            attributes.insert(
                "repository".into(),
                json!(format!("acme/service-{}", i % 40)),
            );
            attributes.insert("author".into(), json!(format!("dev{}", i % 120)));
            attributes.insert("approvers".into(), json!([format!("dev{}", (i + 7) % 120)]));
            attributes.insert("checks".into(), json!(["ci/build", "ci/test"]));
            attributes.insert("state".into(), json!("pass"));
            Occurrence {
                id: format!("acme/service-{}#{}", i % 40, i / 40 + 1),
                at: start + chrono::Duration::minutes(50 * i as i64),
                attributes,
            }
        })
        .collect()
}

fn population(c: &mut Criterion) {
    let occurrences = prs(10_000);
    c.bench_function(
        "population of 10,000 merged PRs: canonical bytes, sha256, sample of 25",
        |b| {
            b.iter(|| {
                let p = Population::new(occurrences.clone()).unwrap();
                let s = seed("FY2025", "github-pr-approved", &p.sha256);
                draw(&p, &s, 25).len()
            })
        },
    );
    // The baseline: the SHA-256 of the same canonical bytes alone.
    let bytes = Population::new(occurrences.clone()).unwrap().bytes;
    c.bench_function(
        "baseline: sha256 of the same 10,000-PR population's bytes",
        |b| b.iter(|| exhibit::evidence::sha256_hex(&bytes)),
    );
}

criterion_group!(benches, assessment, population);
criterion_main!(benches);
