//! The timestamps check: each checkpoint's RFC 3161 token, and the record
//! times it vouches for.
//!
//! A token proves the checkpoint's bytes existed at its `genTime` (G).
//! Everything the checkpoint lists must then have finished by G (within
//! `tolerance`, for clock skew), else `time_after_timestamp`. And the agent
//! asks for the token right after writing the checkpoint, so nothing it
//! lists should claim to have finished long before G: a record (or the
//! checkpoint itself) that claims a time more than `max_delay` before G is
//! `backdated` — its time is not corroborated by the TSA, whether it was
//! forged with an old time or its token was fetched that late.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::load::{Loaded, TsaFile};
use super::{Findings, Options, TimestampSummary, TokenSummary};
use crate::evidence::checkpoint::Checkpoint;
use crate::evidence::layout;
use crate::evidence::timestamp;
use crate::store::StoreError;

/// Reports malformed or misnamed TSA certificates, orphaned tokens,
/// missing tokens (a problem when required, else a warning when timestamps
/// are in use), tokens that do not check out, and record times the tokens
/// contradict. Tokens are read one at a time.
pub(super) async fn check(
    view: &Loaded,
    opts: &Options,
    found: &mut Findings,
) -> Result<TimestampSummary, StoreError> {
    let t = &opts.timestamps;
    let trust = &view.tsa.anchors;
    for (key, file) in &view.tsa.files {
        match file {
            TsaFile::Named => {}
            TsaFile::Misnamed => found.problem(
                key,
                "tsa_cert_misnamed",
                "is not named by the SHA-256 of the certificate it holds".into(),
            ),
            TsaFile::Malformed(e) => found.problem(key, "tsa_cert_malformed", e.clone()),
        }
    }
    let listing = &view.checkpoint_listing;
    let present: HashSet<&str> = listing.iter().map(String::as_str).collect();
    let tokens: Vec<&String> = listing.iter().filter(|k| layout::is_token(k)).collect();
    let mut summary = TimestampSummary {
        trusted: trust.subjects(),
        in_use: !tokens.is_empty() || !trust.is_empty() || t.require,
        trust_from: view.tsa.from.clone(),
        ..Default::default()
    };
    for token in &tokens {
        let owner = layout::checkpoint_of_token(token).unwrap_or_default();
        if !present.contains(owner.as_str()) {
            found.problem(
                token,
                "timestamp_orphan",
                format!(
                    "a token for {owner}, which is not in the store: the checkpoint was removed"
                ),
            );
        }
    }
    let opened: HashMap<&str, &Checkpoint> = view
        .checkpoints
        .iter()
        .map(|c| (c.key.as_str(), c))
        .collect();
    let records = view.record_index();
    let tolerance = chrono::Duration::from_std(t.tolerance).unwrap_or_default();
    let max_delay = chrono::Duration::from_std(t.max_delay).unwrap_or_default();
    let span = |d: chrono::Duration| {
        humantime::format_duration(std::time::Duration::from_secs(
            d.num_seconds().unsigned_abs(),
        ))
        .to_string()
    };
    for (key, sha) in &view.checkpoint_hashes {
        let token_key = layout::token(key);
        if !present.contains(token_key.as_str()) {
            summary.missing += 1;
            let message = format!(
                "has no RFC 3161 token ({token_key}): the TSA could not be reached when it was written and no token was fetched since"
            );
            if t.require {
                found.problem(key, "timestamp_missing", message);
            } else if summary.in_use {
                found.warning(key, "timestamp_missing", message);
            }
            continue;
        }
        let Some(bytes) = view.store.get(&token_key).await? else {
            continue;
        };
        let digest = hex::decode(sha).expect("our own hex");
        let v = match timestamp::verify(&bytes, &digest, trust) {
            Ok(v) => v,
            Err(e) => {
                found.problem(&token_key, e.code(), format!("token of {key}: {e}"));
                continue;
            }
        };
        summary.timestamped += 1;
        let g = v.gen_time;
        if let Some(c) = opened.get(key.as_str()) {
            let mut times: Vec<(&str, DateTime<Utc>)> =
                vec![(c.key.as_str(), c.predicate().finished_at)];
            for s in c.records() {
                if let Some(l) = records.get(s.name.as_str()) {
                    times.push((l.key.as_str(), l.record.predicate().finished_at));
                }
            }
            for (what, at) in times {
                if at > g + tolerance {
                    found.problem(
                        what,
                        "time_after_timestamp",
                        format!(
                            "claims it finished at {}, {} after the RFC 3161 time of {key} ({}), more than the tolerance of {}: the agent's clock ran ahead",
                            at.to_rfc3339(),
                            span(at - g),
                            g.to_rfc3339(),
                            span(tolerance)
                        ),
                    );
                } else if at < g - max_delay {
                    found.problem(
                        what,
                        "backdated",
                        format!(
                            "claims it finished at {}, but the first proof that it existed is the RFC 3161 token of {key} at {}, {} later (more than the max delay of {}): back-dated, or timestamped that late",
                            at.to_rfc3339(),
                            g.to_rfc3339(),
                            span(g - at),
                            span(max_delay)
                        ),
                    );
                }
            }
        }
        summary.tokens.push(TokenSummary {
            checkpoint: key.clone(),
            token: token_key,
            gen_time: g,
            tsa: v.signer,
            trusted_by: v.anchor,
            policy: v.policy,
            serial: v.serial,
        });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::checkpoint::CheckpointPredicate;
    use crate::evidence::keys::PublicKey;
    use crate::evidence::record::{Status, peek};
    use crate::evidence::timestamp::TrustAnchors;
    use crate::verify::TimestampOptions;
    use crate::verify::testing::{
        Fixture, Objects, checkpoints, entry, load_objects, problems, warnings,
    };

    // The fixtures, and how they were made: testdata/README.md.
    /// The CA of the test TSA.
    const TEST_CA: &str = include_str!("testdata/tsa-ca.pem");
    /// A checkpoint listing `ts/early`, `ts/late` and `ts/ok`.
    const CHECKPOINT: &[u8] = include_bytes!("testdata/checkpoint.json");
    /// The key that signed it.
    const CHECKPOINT_KEY: &str = include_str!("testdata/checkpoint-key.pub");
    /// Its RFC 3161 token.
    const TOKEN: &[u8] = include_bytes!("testdata/checkpoint.tsr");
    /// The token's time.
    const GEN_TIME: &str = "2026-12-07T13:45:45Z";

    /// (summary, problems, warnings) of the timestamps check.
    async fn run_check(
        objects: Objects,
        opts: &Options,
    ) -> (
        TimestampSummary,
        Vec<(String, &'static str)>,
        Vec<(String, &'static str)>,
    ) {
        let view = load_objects(objects, opts).await;
        let mut found = Findings::default();
        let summary = check(&view, opts, &mut found).await.unwrap();
        (summary, problems(&found), warnings(&found))
    }

    fn required() -> Options {
        Options {
            timestamps: TimestampOptions {
                require: true,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn ca_key() -> String {
        let (sha, _) = &TrustAnchors::from_pem(TEST_CA.as_bytes()).unwrap().pems()[0];
        layout::tsa_cert(sha)
    }

    #[tokio::test]
    async fn without_tokens_or_tsa_timestamps_are_not_in_use_unless_required() {
        let fx = Fixture::standard().await;
        let (summary, p, w) = run_check(fx.objects(), &Options::default()).await;
        assert_eq!((p, w), (vec![], vec![]));
        assert!(!summary.in_use);
        assert_eq!((summary.missing, summary.timestamped), (3, 0));
        assert_eq!(summary.trust_from, None);

        let (summary, p, w) = run_check(fx.objects(), &required()).await;
        let all: Vec<_> = checkpoints(&fx.objects())
            .into_iter()
            .map(|k| (k, "timestamp_missing"))
            .collect();
        assert_eq!((p, w), (all, vec![]));
        assert!(summary.in_use);
    }

    #[tokio::test]
    async fn with_a_tsa_certificate_a_missing_token_is_a_warning() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        objects.insert(ca_key(), TEST_CA.as_bytes().to_vec());
        let (summary, p, w) = run_check(objects.clone(), &Options::default()).await;
        assert_eq!(p, []);
        let cps = checkpoints(&objects);
        assert_eq!(
            w,
            cps.iter()
                .map(|k| (k.clone(), "timestamp_missing"))
                .collect::<Vec<_>>()
        );
        assert!(summary.in_use);
        assert_eq!(summary.trusted, ["CN=Verify Test TSA CA"]);
        assert_eq!(
            summary.trust_from.as_deref(),
            Some(crate::verify::load::TSA_FROM_STORE)
        );
    }

    #[tokio::test]
    async fn a_misnamed_or_malformed_tsa_certificate_is_reported_unless_trust_is_given() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        let misnamed = layout::tsa_cert(&"a".repeat(64));
        let malformed = layout::tsa_cert(&"b".repeat(64));
        objects.insert(misnamed.clone(), TEST_CA.as_bytes().to_vec());
        objects.insert(malformed.clone(), b"not a certificate".to_vec());
        let (summary, p, _) = run_check(objects.clone(), &Options::default()).await;
        assert_eq!(
            p,
            [
                (misnamed, "tsa_cert_misnamed"),
                (malformed, "tsa_cert_malformed")
            ]
        );
        // Misnamed, it is still what the agent trusted.
        assert_eq!(summary.trusted, ["CN=Verify Test TSA CA"]);

        let given = Options {
            timestamps: TimestampOptions {
                trust: Some((
                    TrustAnchors::from_pem(TEST_CA.as_bytes()).unwrap(),
                    "given with --tsa-cert".into(),
                )),
                ..Default::default()
            },
            ..Default::default()
        };
        let (summary, p, _) = run_check(objects, &given).await;
        assert_eq!(p, []);
        assert_eq!(summary.trust_from.as_deref(), Some("given with --tsa-cert"));
    }

    #[tokio::test]
    async fn a_token_without_its_checkpoint_is_an_orphan_and_garbage_is_malformed() {
        let fx = Fixture::standard().await;
        let mut objects = fx.objects();
        let cps = checkpoints(&objects);
        let (orphan, garbage) = (layout::token(&cps[0]), layout::token(&cps[1]));
        objects.insert(orphan.clone(), b"token".to_vec());
        objects.remove(&cps[0]);
        objects.insert(garbage.clone(), b"not DER".to_vec());
        let (summary, p, w) = run_check(objects, &Options::default()).await;
        assert_eq!(
            p,
            [
                (orphan, "timestamp_orphan"),
                (garbage.clone(), "timestamp_malformed")
            ]
        );
        assert_eq!(w, [(cps[2].clone(), "timestamp_missing")]);
        assert!(summary.in_use);
        assert_eq!((summary.missing, summary.timestamped), (1, 0));
        assert!(summary.tokens.is_empty());
    }

    /// A store holding the fixture checkpoint, its token and the TSA's CA,
    /// and the records it lists, each finished at the time given; returns
    /// it with the checkpoint's and the token's keys.
    async fn stamped(times: [(&str, DateTime<Utc>); 3]) -> (Objects, String, String) {
        let fx = Fixture::new().await;
        for (stream, at) in times {
            fx.unfinished_run_at(at, vec![entry(stream, 0, Status::Ok)])
                .await;
        }
        let mut objects = fx.objects();
        let p = peek::<CheckpointPredicate>(CHECKPOINT).unwrap().predicate;
        let checkpoint = layout::checkpoint(p.finished_at, &p.run_id);
        let token = layout::token(&checkpoint);
        objects.insert(checkpoint.clone(), CHECKPOINT.to_vec());
        objects.insert(token.clone(), TOKEN.to_vec());
        let key = PublicKey::from_pem(CHECKPOINT_KEY).unwrap();
        objects.insert(layout::public_key(key.id()), CHECKPOINT_KEY.into());
        objects.insert(ca_key(), TEST_CA.into());
        (objects, checkpoint, token)
    }

    fn gen_time() -> DateTime<Utc> {
        GEN_TIME.parse().unwrap()
    }

    #[tokio::test]
    async fn record_times_long_before_or_after_the_token_are_backdated_or_ahead() {
        let g = gen_time();
        let (objects, checkpoint, token) = stamped([
            ("ts/early", g - chrono::Duration::days(2)),
            ("ts/late", g + chrono::Duration::hours(1)),
            ("ts/ok", g - chrono::Duration::seconds(70)),
        ])
        .await;
        let (summary, p, w) = run_check(objects, &Options::default()).await;
        assert_eq!(
            p,
            [
                (layout::record("ts/early", 1), "backdated"),
                (layout::record("ts/late", 1), "time_after_timestamp"),
            ]
        );
        assert_eq!(w, []);
        assert_eq!((summary.timestamped, summary.missing), (1, 0));
        let t = &summary.tokens[0];
        assert_eq!((&t.checkpoint, &t.token), (&checkpoint, &token));
        assert_eq!(t.gen_time, g);
        assert_eq!(t.tsa, "CN=Verify Test TSA");
        assert_eq!(t.trusted_by, "CN=Verify Test TSA CA");
        assert_eq!(t.policy, "1.3.6.1.4.1.55555.1.1");

        // A wider window accepts both.
        let lenient = Options {
            timestamps: TimestampOptions {
                tolerance: std::time::Duration::from_secs(2 * 3600),
                max_delay: std::time::Duration::from_secs(3 * 24 * 3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let (objects, ..) = stamped([
            ("ts/early", g - chrono::Duration::days(2)),
            ("ts/late", g + chrono::Duration::hours(1)),
            ("ts/ok", g),
        ])
        .await;
        let (summary, p, _) = run_check(objects, &lenient).await;
        assert_eq!((p, summary.timestamped), (vec![], 1));
    }

    #[tokio::test]
    async fn a_token_over_other_bytes_or_from_an_untrusted_tsa_is_reported() {
        let g = gen_time();
        let (objects, checkpoint, token) = stamped([
            ("ts/early", g - chrono::Duration::days(2)),
            ("ts/late", g),
            ("ts/ok", g),
        ])
        .await;
        let mut edited = objects.clone();
        edited.get_mut(&checkpoint).unwrap().push(b' ');
        let (summary, p, _) = run_check(edited, &Options::default()).await;
        assert_eq!(p, [(token.clone(), "timestamp_mismatch")]);
        assert_eq!(summary.timestamped, 0);

        let mut untrusted = objects;
        untrusted.remove(&ca_key());
        let (summary, p, _) = run_check(untrusted, &Options::default()).await;
        assert_eq!(p, [(token, "timestamp_untrusted")]);
        assert!(summary.trusted.is_empty());
    }
}
