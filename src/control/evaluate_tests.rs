//! Each state, and above all: a failed, partial, stale or missing input can
//! never give `pass`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::control::definition;
use crate::control::exception::Exception;

const MFA: &str = r#"
title = "Console users have MFA"
criteria = ["CC6.1"]
frequency = "daily"
policy = '''
package t
findings contains {"entity": u.user, "reason": "console password without MFA"} if {
    some r in input.inputs.report
    some u in r.payload.users
    u.password_enabled
    not u.mfa_active
}
not_applicable := "no users" if {
    every r in input.inputs.report { count(r.payload.users) == 0 }
}
'''

[[inputs]]
name = "report"
kind = "aws-iam-credential-report"
tolerate = ["access key last used"]
"#;

fn control(text: &str) -> (Control, Policy) {
    let c = definition::parse(Path::new("t.toml"), text, &|n: &str| {
        Err::<(PathBuf, String), _>(n.to_string())
    })
    .unwrap();
    let p = Policy::compile(&c.policy).unwrap();
    (c, p)
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    t("2025-03-10T06:00:00Z")
}

fn record(
    stream: &str,
    seq: u64,
    status: Status,
    at: DateTime<Utc>,
    payload: Value,
) -> InputRecord {
    InputRecord::from_parts(
        RecordRef {
            stream: stream.into(),
            seq,
            sha256: format!("{seq:064}"),
        },
        CollectorInfo {
            name: "report".into(),
            kind: "aws-iam-credential-report".into(),
            version: "0".into(),
        },
        json!({"account": "123456789012"}),
        status,
        match status {
            Status::Ok => None,
            Status::Partial => Some("incomplete: access key last used: throttled".into()),
            _ => Some("AccessDenied".into()),
        },
        at,
        &payload,
    )
}

fn users(mfa_for_bob: bool) -> Value {
    json!({"users": [
        {"user": "alice", "password_enabled": true, "mfa_active": true},
        {"user": "bob", "password_enabled": true, "mfa_active": mfa_for_bob},
        {"user": "svc", "password_enabled": false, "mfa_active": false}
    ]})
}

fn run(
    c: &(Control, Policy),
    records: &[InputRecord],
    exceptions: &[Exception],
    reviews: &[Review],
) -> Evaluation {
    evaluate(
        &c.0,
        &c.1,
        &Context {
            at: now(),
            records,
            exceptions,
            reviews,
            mapping: None,
        },
    )
}

#[test]
fn pass_and_fail() {
    let c = control(MFA);
    let ok = [record(
        "r/1",
        1,
        Status::Ok,
        now() - chrono::Duration::hours(2),
        users(true),
    )];
    let e = run(&c, &ok, &[], &[]);
    assert_eq!(e.state, State::Pass, "{e:?}");
    assert_eq!(e.judged, vec![ok[0].record.clone()]);
    assert_eq!(e.policy_sha256, c.0.policy.sha256);

    let bad = [record(
        "r/1",
        1,
        Status::Ok,
        now() - chrono::Duration::hours(2),
        users(false),
    )];
    let e = run(&c, &bad, &[], &[]);
    assert_eq!(e.state, State::Fail);
    assert_eq!(e.findings.len(), 1);
    assert_eq!(e.findings[0].entity, "bob");
    assert!(e.findings[0].is_open());
}

#[test]
fn a_failed_partial_stale_or_missing_input_is_never_a_pass() {
    let c = control(MFA);
    let fresh = now() - chrono::Duration::hours(1);
    // The policy would pass on this payload; the record's state decides.
    for status in [Status::Failed, Status::Missed] {
        let e = run(
            &c,
            &[record("r/1", 1, status, fresh, users(true))],
            &[],
            &[],
        );
        assert_ne!(e.state, State::Pass, "{status:?}");
        assert_eq!(e.state, State::NotEvaluated, "{status:?}");
    }
    // A failed newest record hides an older good one.
    let e = run(
        &c,
        &[
            record(
                "r/1",
                1,
                Status::Ok,
                fresh - chrono::Duration::hours(3),
                users(true),
            ),
            record(
                "r/1",
                2,
                Status::Failed,
                fresh,
                json!({"error": "AccessDenied"}),
            ),
        ],
        &[],
        &[],
    );
    assert_eq!(e.state, State::NotEvaluated);
    assert!(
        e.reason.as_deref().unwrap().contains("AccessDenied"),
        "{e:?}"
    );
    assert_eq!(e.judged.len(), 1);
    assert_eq!(e.judged[0].seq, 2);
    // Stale: 37 hours old for a daily control.
    let e = run(
        &c,
        &[record(
            "r/1",
            1,
            Status::Ok,
            now() - chrono::Duration::hours(37),
            users(true),
        )],
        &[],
        &[],
    );
    assert_eq!(e.state, State::NotEvaluated);
    assert!(e.reason.unwrap().contains("freshness"));
    // Missing altogether, or only collected after the evaluation time.
    assert_eq!(run(&c, &[], &[], &[]).state, State::NotEvaluated);
    let later = [record(
        "r/1",
        1,
        Status::Ok,
        now() + chrono::Duration::hours(1),
        users(true),
    )];
    assert_eq!(run(&c, &later, &[], &[]).state, State::NotEvaluated);
    // One of two accounts failed: the whole control is not evaluated.
    let e = run(
        &c,
        &[
            record("r/1", 1, Status::Ok, fresh, users(true)),
            record("r/2", 1, Status::Failed, fresh, json!({})),
        ],
        &[],
        &[],
    );
    assert_eq!(e.state, State::NotEvaluated);
    assert_eq!(e.judged.len(), 2);
}

#[test]
fn a_partial_record_counts_only_when_the_missing_part_is_tolerated() {
    let c = control(MFA);
    let fresh = now() - chrono::Duration::hours(1);
    let e = run(
        &c,
        &[record("r/1", 1, Status::Partial, fresh, users(true))],
        &[],
        &[],
    );
    assert_eq!(
        e.state,
        State::Pass,
        "the failure is in a tolerated part: {e:?}"
    );
    let strict = control(&MFA.replace("tolerate = [\"access key last used\"]", ""));
    let e = run(
        &strict,
        &[record("r/1", 1, Status::Partial, fresh, users(true))],
        &[],
        &[],
    );
    assert_eq!(e.state, State::NotEvaluated);
    assert!(e.reason.unwrap().contains("incomplete"));
    // A second, untolerated failure.
    let mut r = record("r/1", 1, Status::Partial, fresh, users(true));
    r.error = Some("incomplete: access key last used: x; mfa devices: AccessDenied".into());
    assert_eq!(run(&c, &[r], &[], &[]).state, State::NotEvaluated);
}

#[test]
fn gap_records_are_skipped_and_the_newest_of_each_stream_is_judged() {
    let c = control(MFA);
    let e = run(
        &c,
        &[
            record(
                "r/1",
                1,
                Status::Ok,
                now() - chrono::Duration::hours(5),
                users(false),
            ),
            record(
                "r/1",
                2,
                Status::Ok,
                now() - chrono::Duration::hours(3),
                users(true),
            ),
            record(
                "r/1",
                3,
                Status::Missed,
                now() - chrono::Duration::hours(1),
                json!({}),
            ),
            record(
                "r/2",
                1,
                Status::Ok,
                now() - chrono::Duration::hours(2),
                users(false),
            ),
        ],
        &[],
        &[],
    );
    assert_eq!(e.state, State::Fail);
    let judged: Vec<(String, u64)> = e.judged.iter().map(|r| (r.stream.clone(), r.seq)).collect();
    assert_eq!(judged, [("r/1".to_string(), 2), ("r/2".to_string(), 1)]);
}

#[test]
fn policy_errors_and_not_applicable() {
    let broken = control(&MFA.replace(
        "u.password_enabled\n",
        "u.password_enabled\n    time.parse_rfc3339_ns(u.user) > 0\n",
    ));
    let fresh = now() - chrono::Duration::hours(1);
    let e = run(
        &broken,
        &[record("r/1", 1, Status::Ok, fresh, users(true))],
        &[],
        &[],
    );
    assert_eq!(e.state, State::Error, "{e:?}");
    assert!(e.findings.is_empty());

    let c = control(MFA);
    let e = run(
        &c,
        &[record("r/1", 1, Status::Ok, fresh, json!({"users": []}))],
        &[],
        &[],
    );
    assert_eq!(e.state, State::NotApplicable);
    assert_eq!(e.reason.as_deref(), Some("no users"));
}

#[test]
fn exceptions_cover_findings_until_they_expire() {
    let c = control(MFA);
    let fresh = now() - chrono::Duration::hours(1);
    let input = [record("r/1", 1, Status::Ok, fresh, users(false))];
    let live = Exception::new(
        "t",
        "bob",
        "key on order",
        "CISO",
        t("2025-03-01T00:00:00Z"),
        t("2025-03-15T00:00:00Z"),
    )
    .unwrap();
    let e = run(&c, &input, std::slice::from_ref(&live), &[]);
    assert_eq!(e.state, State::Excepted);
    assert_eq!(e.findings[0].exception.as_ref().unwrap().approver, "CISO");
    assert_eq!(e.open_findings().count(), 0);
    // Expired mid-period: the finding is open again.
    let expired = Exception {
        expires: t("2025-03-10T00:00:00Z"),
        ..live.clone()
    };
    assert_eq!(run(&c, &input, &[expired], &[]).state, State::Fail);
    // Another control's or another entity's exception does not count.
    let other = Exception {
        control: "other".into(),
        ..live.clone()
    };
    assert_eq!(run(&c, &input, &[other], &[]).state, State::Fail);
    let carol = Exception {
        entity: "carol".into(),
        ..live
    };
    assert_eq!(run(&c, &input, &[carol], &[]).state, State::Fail);
}

#[test]
fn a_required_review_must_be_signed_for_the_period_due() {
    let c = control(&format!(
        "{MFA}\n[attestation]\nevery = \"quarterly\"\ninput = \"report\"\ngrace = \"30d\"\n"
    ));
    let fresh = now() - chrono::Duration::hours(1);
    let input = [record("r/1", 1, Status::Ok, fresh, users(true))];
    // Due at 2025-03-10: 2024-Q4's review (grace ended 2025-01-31).
    let e = run(&c, &input, &[], &[]);
    assert_eq!(e.state, State::Fail);
    assert_eq!(e.findings[0].entity, "review 2024-Q4");
    let review = |signed: &str, stream: &str| Review {
        control: "t".into(),
        record: RecordRef {
            stream: "attest/t".into(),
            seq: 1,
            sha256: "aa".repeat(32),
        },
        reviewed: RecordRef {
            stream: stream.into(),
            seq: 1,
            sha256: "bb".repeat(32),
        },
        statement: "reviewed".into(),
        signer: "SHA256:x".into(),
        signed_at: t(signed),
    };
    // Signed in the grace period after the quarter.
    let ok = review("2025-01-20T00:00:00Z", "r/1");
    let e = run(&c, &input, &[], std::slice::from_ref(&ok));
    assert_eq!(e.state, State::Pass, "{e:?}");
    assert!(e.judged.contains(&ok.record));
    // Too late, too early, or over another stream's record.
    for r in [
        review("2025-02-01T00:00:00Z", "r/1"),
        review("2024-09-30T00:00:00Z", "r/1"),
        review("2024-11-01T00:00:00Z", "other/1"),
    ] {
        assert_eq!(run(&c, &input, &[], &[r]).state, State::Fail);
    }
}

#[test]
fn event_controls_judge_each_occurrence() {
    let c = control(
        r#"
title = "Merged changes are approved"
criteria = ["CC8.1"]
frequency = "continuous"
freshness = "36h"
kind = "event"
policy = '''
package t
occurrences contains {"id": pr.id, "at": pr.merged_at, "author": pr.author} if {
    some r in input.inputs.prs
    some pr in r.payload.pulls
}
findings contains {"entity": pr.id, "reason": "no independent approval"} if {
    some r in input.inputs.prs
    some pr in r.payload.pulls
    count([a | some a in pr.approvers; a != pr.author]) == 0
}
'''
[[inputs]]
name = "prs"
kind = "aws-iam-credential-report"
"#,
    );
    let fresh = now() - chrono::Duration::hours(1);
    let prs = json!({"pulls": [
        {"id": "api#1", "merged_at": "2025-03-09T10:00:00Z", "author": "a", "approvers": ["b"]},
        {"id": "api#2", "merged_at": "2025-03-09T11:00:00Z", "author": "a", "approvers": ["a"]},
        {"id": "api#3", "merged_at": "2025-03-09T12:00:00Z", "author": "c", "approvers": []}
    ]});
    let ex = Exception::new(
        "t",
        "api#3",
        "hotfix",
        "CTO",
        t("2025-03-01T00:00:00Z"),
        t("2025-04-01T00:00:00Z"),
    )
    .unwrap();
    let e = run(&c, &[record("p/1", 1, Status::Ok, fresh, prs)], &[ex], &[]);
    assert_eq!(e.state, State::Fail);
    let states: Vec<(&str, State)> = e
        .occurrences
        .iter()
        .map(|o| (o.id.as_str(), o.state))
        .collect();
    assert_eq!(
        states,
        [
            ("api#1", State::Pass),
            ("api#2", State::Fail),
            ("api#3", State::Excepted)
        ]
    );
    assert_eq!(e.occurrences[0].attributes["author"], "a");
    // No occurrences at all: nothing to judge, which is not a pass.
    let e = run(
        &c,
        &[record("p/1", 1, Status::Ok, fresh, json!({"pulls": []}))],
        &[],
        &[],
    );
    assert_eq!(e.state, State::NotApplicable);
}

#[test]
fn optional_inputs_may_be_missing_and_selectors_narrow() {
    let two = format!(
        "{MFA}\n[[inputs]]\nname = \"okta\"\nkind = \"http\"\ndefinition = \"okta-users\"\noptional = true\n"
    );
    let c = control(&two);
    let fresh = now() - chrono::Duration::hours(1);
    assert_eq!(
        run(
            &c,
            &[record("r/1", 1, Status::Ok, fresh, users(true))],
            &[],
            &[]
        )
        .state,
        State::Pass
    );
    let spec = &c.0.inputs[1];
    let mut r = record("okta/x", 1, Status::Ok, fresh, json!({}));
    r.collector.kind = "http".into();
    assert!(!r.matches(spec));
    r.source = json!({"definition": "okta-users"});
    assert!(r.matches(spec));
    r.source = json!({"definition": "pagerduty"});
    assert!(!r.matches(spec));
}
