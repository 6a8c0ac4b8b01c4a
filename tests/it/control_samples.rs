//! Control samples an auditor re-derives: a store of 60 daily IAM
//! credential reports written through the library's writer (with an
//! exception granted before the period that expires in its middle), assessed
//! by the real binary, sampled per engagement into bundles that `verify.sh`,
//! the steps documented in docs/auditors.md and `exhibit verify --bundle`
//! all re-derive — and that fail once a sampled record is swapped or the
//! population edited.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use sha2::Digest;

use crate::bundle::{verify_rust, verify_sh};
use crate::support::{Workspace, code, root, text, unpack};
use exhibit::clock::Clock;
use exhibit::control::{Exception, Library, exception_stream};
use exhibit::evidence::keys::Signer;
use exhibit::evidence::record::{CollectorInfo, Status, Trigger};
use exhibit::store::fs::FsStore;
use exhibit::writer::{Entry, Writer};

const DAYS: i64 = 60;
/// The day the exception for bob expires (at its midnight).
const EXPIRES: i64 = 30;
const CONTROL: &str = "aws-console-mfa";
const ENGAGEMENT: &str = "ACME FY2026 SOC 2";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";

/// The simulated agent clock, in seconds since the epoch.
static NOW: AtomicI64 = AtomicI64::new(0);
/// Held while a store is written on the simulated clock, which the tests
/// running in parallel share.
static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn simulated() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW.load(Ordering::SeqCst), 0).unwrap()
}

/// Midnight of day `d` of the period, which ends well before today.
fn day(d: i64) -> DateTime<Utc> {
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    today - Duration::days(100) + Duration::days(d)
}

fn t(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

/// A credential report: alice has MFA, bob has a console password without.
fn report() -> Value {
    let row = |user: &str, mfa: bool| {
        json!({"user": user, "arn": format!("arn:aws:iam::123456789012:user/{user}"),
               "password_enabled": true, "mfa_active": mfa})
    };
    json!({"account_id": "123456789012", "rows": [row("alice", true), row("bob", false)]})
}

/// Writes, as agent `ctl` with the workspace's key, the exception (granted
/// on day 0, expiring on day [`EXPIRES`]) and one report a day for days
/// `days`, each in a run of its own.
fn write_days(ws: &Workspace, days: std::ops::RangeInclusive<i64>, exception: bool) {
    let _clock = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (signer, _) = Signer::load_or_create(&ws.path().join("exhibit.key")).unwrap();
        let store = Arc::new(FsStore::new(ws.store()));
        let writer = Writer::open(store, Arc::new(signer), "ctl")
            .await
            .unwrap()
            .with_clock(Clock::from_fn(simulated));
        let set = |at: DateTime<Utc>| NOW.store(at.timestamp(), Ordering::SeqCst);
        if exception {
            set(day(0) + Duration::hours(6));
            let lib = Library::builtin().unwrap();
            let control = lib.get(CONTROL).unwrap();
            let run = writer.begin_run(Trigger::Manual);
            let e = Exception::new(
                CONTROL,
                BOB,
                "hardware key on order",
                "ciso@example.com",
                writer.now(),
                day(EXPIRES),
            )
            .unwrap();
            let entry = exhibit::assess::entry_of(
                control,
                exception_stream(CONTROL),
                "exception",
                writer.now(),
                e.payload(),
            );
            writer.append(&run, entry).await.unwrap();
            writer.checkpoint(run).await.unwrap();
        }
        for d in days {
            let slot = day(d) + Duration::hours(6);
            set(slot + Duration::minutes(1));
            let run = writer.begin_run(Trigger::Scheduled);
            let collector = CollectorInfo {
                name: "iam".into(),
                kind: "aws-iam-credential-report".into(),
                version: "1".into(),
            };
            let mut e = Entry::new(
                "aws-iam-credential-report/123456789012",
                collector,
                Status::Ok,
                writer.now(),
                report(),
            );
            e.predicate.schedule = Some("0 6 * * *".into());
            e.predicate.scheduled_for = Some(slot);
            e.predicate.attempts = 1;
            writer.append(&run, e).await.unwrap();
            writer.checkpoint(run).await.unwrap();
        }
    });
}

/// The population hash `exhibit population` prints, and its bytes.
fn population(ws: &Workspace) -> (String, Vec<u8>) {
    let out = ws.run(&[
        "population",
        "--control",
        CONTROL,
        "--from",
        &t(day(1)),
        "--to",
        &t(day(DAYS + 1)),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let bytes = out.stdout.strip_suffix(b"\n").unwrap().to_vec();
    let err = String::from_utf8_lossy(&out.stderr);
    let sha = err
        .split("population sha256: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no hash: {err}"))[..64]
        .to_string();
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&bytes)));
    (sha, bytes)
}

/// Draws a control sample; returns the bundle and what the binary printed.
fn sample(ws: &Workspace, name: &str, engagement: &str, extra: &[&str]) -> (PathBuf, String) {
    let out_path = ws.path().join(format!("{name}.tar.gz"));
    let (from, to) = (t(day(1)), t(day(DAYS + 1)));
    let mut args = vec![
        "sample",
        "--control",
        CONTROL,
        "--engagement",
        engagement,
        "--from",
        &from,
        "--to",
        &to,
        "--out",
        out_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = ws.run(&args);
    assert_eq!(code(&out), 0, "{}", text(&out));
    (out_path, text(&out))
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The files under `dir`, relative to it, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn sha_of(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Rewrites MANIFEST.sha256 over the files as they are now, as a forger
/// would: the manifest is not signed.
fn remanifest(root: &Path) {
    let listing: String = files_in(root)
        .iter()
        .filter(|f| *f != "MANIFEST.sha256")
        .map(|f| format!("{}  {f}\n", sha_of(&root.join(f))))
        .collect();
    std::fs::write(root.join("MANIFEST.sha256"), listing).unwrap();
}

/// The shell block under "Re-derive a control sample by hand" in
/// docs/auditors.md.
fn documented_steps() -> String {
    let doc = std::fs::read_to_string(root().join("docs/auditors.md")).unwrap();
    let section = doc
        .split("### Re-derive a control sample by hand")
        .nth(1)
        .expect("the section is documented");
    let block = section.split("```sh\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_string()
}

#[test]
fn control_samples_are_rederived_by_verify_sh_the_documented_steps_and_exhibit() {
    let ws = Workspace::new("[agent]\nid = \"ctl\"\n");
    write_days(&ws, 1..=DAYS, true);
    let (from, to) = (t(day(1)), t(day(DAYS + 1)));

    // Nothing assessed yet: an empty population writes no bundle.
    let empty = ws.path().join("empty.tar.gz");
    let out = ws.run(&[
        "sample",
        "--control",
        CONTROL,
        "--engagement",
        ENGAGEMENT,
        "--from",
        &from,
        "--to",
        &to,
        "--out",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("is empty"), "{}", text(&out));
    assert!(!empty.exists());

    // Assessed up to the day before the last, then the last day: one more
    // occurrence in the same period changes the population hash.
    let out = ws.run(&[
        "assess",
        "--control",
        CONTROL,
        "--from",
        &from,
        "--to",
        &t(day(DAYS)),
    ]);
    assert_eq!(
        code(&out),
        1,
        "bob fails once the exception expires: {}",
        text(&out)
    );
    let (before, before_bytes) = population(&ws);
    let out = ws.run(&[
        "assess",
        "--control",
        CONTROL,
        "--from",
        &t(day(DAYS)),
        "--to",
        &to,
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let (after, after_bytes) = population(&ws);
    assert_ne!(before, after, "one more occurrence, another hash");
    let count = |b: &[u8]| {
        serde_json::from_slice::<Value>(b)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        (count(&before_bytes), count(&after_bytes)),
        (DAYS as usize - 1, DAYS as usize)
    );

    // The exception covers bob until day EXPIRES, and no longer.
    let occurrences: Vec<Value> = serde_json::from_slice(&after_bytes).unwrap();
    for o in &occurrences {
        let at: DateTime<Utc> = o["at"].as_str().unwrap().parse().unwrap();
        let want = if at < day(EXPIRES) {
            "excepted"
        } else {
            "fail"
        };
        assert_eq!(o["state"], want, "{o}");
    }
    let out = ws.run(&["controls", "--from", &from, "--to", &to, "--json"]);
    let controls: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mfa = controls["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == CONTROL)
        .unwrap();
    assert_eq!(mfa["current"], "fail", "{mfa}");
    assert_eq!(
        (mfa["excepted"].as_u64(), mfa["fail"].as_u64()),
        (Some(EXPIRES as u64 - 1), Some((DAYS - EXPIRES + 1) as u64)),
        "{mfa}"
    );

    // Same engagement, same sample (same bytes); another, another sample.
    let (a, printed) = sample(&ws, "a", ENGAGEMENT, &[]);
    let (a2, _) = sample(&ws, "a2", ENGAGEMENT, &[]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&a2).unwrap());
    let (b, _) = sample(&ws, "b", "Other LLP FY2026", &[]);
    let (_ga, ra) = unpack(&a);
    let (_gb, rb) = unpack(&b);
    let drawn = lines(&ra.join("sampled.txt"));
    assert_eq!(drawn.len(), 25, "a daily control samples 25");
    assert_ne!(drawn, lines(&rb.join("sampled.txt")));
    assert_eq!(
        std::fs::read(ra.join("population.json")).unwrap(),
        after_bytes,
        "the exact bytes `exhibit population` prints"
    );
    let printed_ids: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("sampled "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(printed_ids, drawn);
    let (small, _) = sample(&ws, "small", ENGAGEMENT, &["--size", "3"]);
    let (_gs, rs) = unpack(&small);
    assert_eq!(
        lines(&rs.join("sampled.txt")),
        drawn[..3],
        "the lowest three ranks"
    );

    // The evidence: each sampled result and the report it judged, signed.
    for (id, key) in lines(&ra.join("evidence.txt"))
        .iter()
        .map(|l| l.split_once('\t').unwrap())
    {
        assert!(drawn.iter().any(|d| d == id));
        let seq: u64 = id.rsplit_once('@').unwrap().1.parse().unwrap();
        assert_eq!(key, format!("records/control/{CONTROL}/{seq:012}.json"));
        assert!(ra.join(key).is_file());
    }
    assert!(
        ra.join("records/aws-iam-credential-report/123456789012")
            .is_dir()
    );

    // Both verifiers, and the documented steps, re-derive it.
    let (ok, out) = verify_sh(&ra, None);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("population: {DAYS} occurrence(s), sha256 {after}")),
        "{out}"
    );
    let out = ws.run(&["verify", "--bundle", a.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let listed = files_in(&ra);
    let steps = Command::new("sh")
        .arg("-e")
        .arg("-c")
        .arg(documented_steps())
        .current_dir(ra.parent().unwrap())
        .output()
        .unwrap();
    assert!(steps.status.success(), "{}", text(&steps));
    let shown = String::from_utf8_lossy(&steps.stdout);
    let by_hand: Vec<&str> = shown
        .lines()
        .filter(|l| {
            !l.starts_with("population ")
                && !l.starts_with("seed ")
                && *l != "sampled.txt is the draw"
        })
        .collect();
    assert_eq!(by_hand, drawn, "{shown}");
    assert!(shown.ends_with("sampled.txt is the draw\n"), "{shown}");
    assert_eq!(
        files_in(&ra),
        listed,
        "the documented steps write nothing into the bundle"
    );

    // A sampled record swapped for one the seed does not draw (in the
    // bundle of three, which verify.sh checks sooner).
    let pop: Vec<String> = occurrences
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    let outsider = pop.iter().find(|id| !drawn.contains(id)).unwrap();
    let swapped = tampered(&ws, &rs, "swapped", |r| {
        let mut s = lines(&r.join("sampled.txt"));
        s[0] = outsider.clone();
        std::fs::write(r.join("sampled.txt"), s.join("\n") + "\n").unwrap();
        let ev = std::fs::read_to_string(r.join("evidence.txt"))
            .unwrap()
            .replacen(&drawn[0], outsider, 1);
        std::fs::write(r.join("evidence.txt"), ev).unwrap();
    });
    assert_fails(
        &ws,
        &swapped,
        "the occurrences sampled are not the 3 the seed draws",
    );
    // An edited population: another hash than control.txt names.
    let edited = tampered(&ws, &rs, "edited", |r| {
        let p = std::fs::read_to_string(r.join("population.json"))
            .unwrap()
            .replacen("\"fail\"", "\"pass\"", 1);
        std::fs::write(r.join("population.json"), p).unwrap();
    });
    assert_fails(&ws, &edited, "names population");
    // A sampled result's evidence replaced by another day's snapshot.
    let forged = tampered(&ws, &rs, "forged", |r| {
        let dir = r.join("records/aws-iam-credential-report/123456789012");
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        std::fs::copy(&inputs[1], &inputs[0]).unwrap();
    });
    assert_fails(&ws, &forged, "differs from what");
}

/// A copy of the bundle at `root`, edited by `edit`, its manifest redone.
fn tampered(ws: &Workspace, root: &Path, name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let dir = ws.path().join(name);
    let copy = dir.join("exhibit-sample");
    crate::support::copy_tree(root, &copy);
    edit(&copy);
    remanifest(&copy);
    copy
}

/// `verify.sh` fails naming `why`, and `exhibit verify --bundle` fails too.
fn assert_fails(ws: &Workspace, root: &Path, why: &str) {
    let (ok, out) = verify_sh(root, None);
    assert!(
        !ok && out.contains(why),
        "verify.sh must fail with `{why}`: {out}"
    );
    let name = root
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let (rc, out) = verify_rust(ws, root, &name);
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains(why),
        "exhibit verify must fail with `{why}`: {out}"
    );
}

#[test]
fn a_known_head_must_be_on_the_chain_the_bundle_carries() {
    let ws = Workspace::new("[agent]\nid = \"ctl\"\n");
    write_days(&ws, 1..=10, true);
    let (from, to) = (t(day(1)), t(day(11)));
    let out = ws.run(&["assess", "--control", CONTROL, "--from", &from, "--to", &to]);
    assert_eq!(code(&out), 0, "bob is excepted throughout: {}", text(&out));
    let bundle = ws.path().join("k.tar.gz");
    let out = ws.run(&[
        "sample",
        "--control",
        CONTROL,
        "--engagement",
        ENGAGEMENT,
        "--from",
        &from,
        "--to",
        &to,
        "--size",
        "2",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let head = text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap()[..64]
        .to_string();
    let records = ws.path().join("r.tar.gz");
    let out = ws.run(&[
        "sample",
        "--seed",
        "s",
        "--from",
        &from,
        "--to",
        &to,
        "--out",
        records.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let checkpoints = |dir: &Path| -> Vec<PathBuf> {
        files_in(dir)
            .into_iter()
            .filter(|f| f.ends_with(".json"))
            .map(|f| dir.join(f))
            .collect()
    };
    let (_g, root) = unpack(&bundle);
    let carried = checkpoints(&root.join("checkpoints"));
    let ancestor = sha_of(&carried[0]);
    assert_ne!(ancestor, head);
    // The store's first checkpoint, of the exception's run, lists no record
    // a result judged: it is older than the chain the control bundle holds.
    let first = sha_of(&checkpoints(&ws.store().join("checkpoints"))[0]);
    assert!(carried.iter().all(|c| sha_of(c) != first));
    let verify = |b: &Path, known: &str| {
        let out = ws.run(&[
            "verify",
            "--bundle",
            b.to_str().unwrap(),
            "--known-head",
            known,
            // The record bundle's coverage: its period, not up to now.
            "--to",
            &to,
        ]);
        (code(&out), text(&out))
    };
    for (b, known) in [(&bundle, &head), (&bundle, &ancestor), (&records, &head)] {
        let (rc, out) = verify(b, known);
        assert_eq!(rc, 0, "{known} is on the chain: {out}");
    }
    for (b, known) in [
        (&bundle, first.clone()),
        (&bundle, "ab".repeat(32)),
        (&records, "ab".repeat(32)),
    ] {
        let (rc, out) = verify(b, &known);
        assert_eq!(rc, 1, "{out}");
        assert!(out.contains("known_head_missing"), "{out}");
    }
}
