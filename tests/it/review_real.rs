//! `exhibit diff` and the nightly review on real collector payloads: a git
//! repository, moto's AWS (seeded by `tests/support/aws_seed.py`, then
//! changed by `tests/support/aws_change.py`) and @octokit/fixtures-server's
//! GitHub, each collected in two seeded states. The diff must name exactly
//! the entities that changed, by their natural identities, and the report
//! must raise the highlights on these payloads' own field names.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Workspace, code, git, moto, octokit, root, text};

/// `exhibit diff STREAM [ARGS…] --json`.
fn diff(ws: &Workspace, stream: &str, args: &[&str]) -> Value {
    let mut all = vec!["diff", stream];
    all.extend(args);
    all.push("--json");
    let out = ws.run(&all);
    assert_eq!(code(&out), 0, "diff {stream}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("diff --json prints JSON")
}

/// The (path, kind) of every change, in order.
fn changes(d: &Value) -> Vec<(String, String)> {
    d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn change<'a>(d: &'a Value, path: &str) -> &'a Value {
    d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no change at {path}: {d:#}"))
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(p, k)| (p.to_string(), k.to_string()))
        .collect()
}

/// Arrays of objects that have no natural identity, which the diff
/// compares as collections whose order means nothing: IAM policy
/// statements (their `Sid` is optional), S3 ACL grants and encryption
/// rules, CloudTrail event selectors.
const WITHOUT_IDENTITY: &[&str] = &[
    ".Statement",
    ".acl.grants",
    ".encryption.rules",
    ".event_selectors",
    ".data_resources",
];

/// Paths of the arrays of objects in `v` that `exhibit diff` would not
/// match by an identity of the payload's kind (`ids`): taking every element
/// away shows which (removals at `[0]` or `[]` rather than at
/// `[key=value]`).
fn unkeyed_arrays(v: &Value, path: &str, ids: &[&[&str]], out: &mut Vec<String>) {
    match v {
        Value::Array(xs) => {
            if xs.iter().any(Value::is_object)
                && !WITHOUT_IDENTITY.iter().any(|s| path.ends_with(s))
            {
                let c = exhibit::diff::diff(&json!({ "a": v }), &json!({ "a": [] }), ids);
                if c.iter().any(|c| {
                    c.path == "a[]"
                        || (c.path.starts_with("a[") && c.path.as_bytes()[2].is_ascii_digit())
                }) {
                    out.push(path.to_string());
                }
            }
            for x in xs {
                unkeyed_arrays(x, &format!("{path}[]"), ids, out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                unkeyed_arrays(x, &format!("{path}.{k}"), ids, out);
            }
        }
        _ => {}
    }
}

/// Every stream of the workspace's store: its kind and last payload.
fn last_payloads(ws: &Workspace) -> Vec<(String, String, Value)> {
    let out = ws.run(&["list", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let stream = s["stream"].as_str().unwrap().to_string();
            let out = ws.run(&["show", &stream, "--json"]);
            assert_eq!(code(&out), 0, "{}", text(&out));
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            let kind = v["statement"]["predicate"]["collector"]["kind"]
                .as_str()
                .expect("the record names its kind")
                .to_string();
            (stream, kind, v["payload"].clone())
        })
        .collect()
}

/// Fails naming every array of objects in the stores' last payloads that
/// the diff, given the identities the stream's kind declares, would match
/// by position.
fn assert_every_array_has_an_identity(ws: &Workspace) {
    let mut bad = BTreeSet::new();
    for (stream, kind, p) in last_payloads(ws) {
        let mut here = Vec::new();
        unkeyed_arrays(&p, "", exhibit::collect::identities(&kind), &mut here);
        bad.extend(here.into_iter().map(|h| format!("{stream}: {h}")));
    }
    assert!(
        bad.is_empty(),
        "arrays of objects not matched by an identity:\n{}",
        bad.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// `exhibit report --format md` over the last hour.
fn report_md(ws: &Workspace) -> String {
    let out = ws.run(&["report", "--format", "md", "--since", "1h"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The highlight lines of a Markdown report.
fn highlight_lines(md: &str) -> Vec<&str> {
    md.split("## Highlights")
        .nth(1)
        .and_then(|s| s.split("## Streams").next())
        .unwrap_or("")
        .lines()
        .filter(|l| l.starts_with("- **"))
        .collect()
}

fn rev(dir: &Path, r: &str) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["rev-parse", r])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn commit(dir: &Path, file: &str, msg: &str) -> String {
    std::fs::write(dir.join(file), msg).unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", msg]);
    rev(dir, "HEAD")
}

const GIT_CONFIG: &str = r#"
[[collectors]]
name = "git-history"
kind = "git"
schedule = "@daily"
retries = 0
repository = "app"
"#;

#[test]
fn git_diff_lists_exactly_the_new_commits_and_tags() {
    let ws = Workspace::new(GIT_CONFIG);
    let repo = ws.path().join("app");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "commit.gpgsign", "false"]);
    git(&repo, &["config", "tag.gpgsign", "false"]);
    let first = commit(&repo, "a.txt", "first");
    let head1 = commit(&repo, "b.txt", "second");
    git(&repo, &["tag", "-a", "v1.0", "-m", "release 1.0"]);
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A collection that fails (the repository is away) lies between the
    // two states: it has no snapshot to compare.
    std::fs::rename(&repo, ws.path().join("away")).unwrap();
    assert_eq!(code(&ws.run(&["collect"])), 1);
    std::fs::rename(ws.path().join("away"), &repo).unwrap();

    git(&repo, &["checkout", "-q", "-b", "feature"]);
    let feature = commit(&repo, "c.txt", "feature work");
    git(&repo, &["checkout", "-q", "main"]);
    let fix = commit(&repo, "d.txt", "hotfix on main");
    git(
        &repo,
        &["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"],
    );
    let merge = rev(&repo, "HEAD");
    git(&repo, &["tag", "v1.1", &fix]);
    git(&repo, &["tag", "-a", "v2.0", "-m", "release 2.0"]);
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let stream = "git-history/app";
    // Each `collect` is a new process: the third record's window starts at
    // the last successful record's head, not afresh after the failure.
    let shown = ws.run(&["show", stream, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let window = &shown["payload"]["window"];
    assert_eq!(window["kind"], "since_previous_record", "{window}");
    assert_eq!(window["from_commit"], head1.as_str(), "{window}");
    assert_eq!(
        shown["payload"]["commits"].as_array().map(Vec::len),
        Some(3),
        "only the commits made since record #1"
    );
    let d = diff(&ws, stream, &[]);
    assert_eq!(d["from"]["seq"], 1);
    assert_eq!(d["to"]["seq"], 3);
    assert_eq!(
        d["skipped"],
        json!([{"seq": 2, "status": "failed"}]),
        "the failed record is named, not compared"
    );
    let got: BTreeSet<_> = changes(&d).into_iter().collect();
    let want = set(&[
        (&format!("commits[sha={feature}]"), "added"),
        (&format!("commits[sha={fix}]"), "added"),
        (&format!("commits[sha={merge}]"), "added"),
        ("tags[name=v1.1]", "added"),
        ("tags[name=v2.0]", "added"),
        ("repository.head", "changed"),
    ]);
    assert_eq!(
        got, want,
        "the older window's commits ({first}, {head1}) are not removed, and the window's own counts and bounds are no change"
    );
    assert_eq!(changes(&d).len(), want.len(), "each change once");
    let m = change(&d, &format!("commits[sha={merge}]"));
    assert_eq!(m["after"]["parents"].as_array().unwrap().len(), 2, "{m}");
    assert_eq!(m["after"]["subject"], "Merge feature");
    let head = change(&d, "repository.head");
    assert_eq!(head["before"], head1.as_str());
    assert_eq!(head["after"], merge.as_str());
    assert_eq!(
        change(&d, "tags[name=v1.1]")["after"]["commit"],
        fix.as_str()
    );
    assert_eq!(change(&d, "tags[name=v2.0]")["after"]["annotated"], true);

    let human = text(&ws.run(&["diff", stream]));
    assert!(
        human.contains("skipped #2 (failed): no snapshot to compare"),
        "{human}"
    );
    assert!(
        human.contains(&format!("+ commits[sha={merge}]")),
        "{human}"
    );

    // One more commit: the last pair shows it alone, while 1 → 4 gathers
    // every window since #1.
    let late = commit(&repo, "e.txt", "late");
    assert_eq!(code(&ws.run(&["collect"])), 0);
    let last = diff(&ws, stream, &[]);
    assert_eq!(last["from"]["seq"], 3);
    assert_eq!(last["skipped"], json!([]));
    assert_eq!(
        changes(&last).into_iter().collect::<BTreeSet<_>>(),
        set(&[
            (&format!("commits[sha={late}]"), "added"),
            ("repository.head", "changed"),
        ])
    );
    assert_every_array_has_an_identity(&ws);

    // A failed record last: B defaults to the last snapshot, #4.
    std::fs::rename(&repo, ws.path().join("away")).unwrap();
    assert_eq!(code(&ws.run(&["collect"])), 1);
    let span = diff(&ws, stream, &["1"]);
    assert_eq!(span["to"]["seq"], 4);
    assert_eq!(span["skipped"], json!([{"seq": 5, "status": "failed"}]));
    let added: BTreeSet<String> = changes(&span)
        .into_iter()
        .filter(|(p, k)| p.starts_with("commits[") && k == "added")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        added,
        [&feature, &fix, &merge, &late]
            .iter()
            .map(|s| format!("commits[sha={s}]"))
            .collect::<BTreeSet<_>>()
    );
}

fn aws_collect(ws: &Workspace, endpoint: &str) {
    let empty = ws.path().join("aws-config");
    std::fs::write(&empty, "").unwrap();
    let mut cmd = ws.cmd(&["collect"]);
    let out = moto::aws_env(&mut cmd, endpoint, "agent-secret-review", &empty)
        .output()
        .unwrap();
    // moto lacks Security Hub's standards, so aws-monitoring is partial
    // (and the run's exit code 1); every other stream must be ok.
    let list = ws.run(&["list", "--json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    for s in list.as_array().unwrap() {
        let want = if s["kind"] == "aws-monitoring" {
            "partial"
        } else {
            "ok"
        };
        assert_eq!(s["last_status"], want, "{s}\n{}", text(&out));
    }
}

fn python(script: &str, endpoint: &str, args: &[&str]) {
    let out = Command::new(moto::python())
        .arg(root().join("tests/support").join(script))
        .arg(endpoint)
        .args(args)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{script}: {}", text(&out));
}

#[test]
fn aws_diff_and_review_on_moto() {
    // A server of its own: this test changes the estate between its two
    // collections, and the AWS suite counts what its estate holds.
    let moto = moto::Moto::start_with(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
    let ep = moto.endpoint();
    python("aws_seed.py", &ep, &["--roles", "3", "--policies", "2"]);
    let mut config = String::from("[agent]\nid = \"review\"\n");
    for k in moto::aws_kinds() {
        config.push_str(&format!(
            "[[collectors]]\nname = \"{k}\"\nkind = \"{k}\"\nschedule = \"@daily\"\nretries = 0\nregions = [\"us-east-1\", \"eu-west-1\"]\n"
        ));
    }
    let ws = Workspace::new(&config);
    aws_collect(&ws, &ep);
    python("aws_change.py", &ep, &[]);
    aws_collect(&ws, &ep);

    let acct = "123456789012";
    let user = |n: &str| format!("users[arn=arn:aws:iam::{acct}:user/{n}]");
    let users = diff(&ws, &format!("aws-iam-users/{acct}"), &[]);
    let got: BTreeSet<_> = changes(&users).into_iter().collect();
    let want = set(&[
        (&user("frank"), "added"),
        (&format!("{}.mfa_enabled", user("alice")), "changed"),
        (
            &format!(
                "{}.mfa_devices[serial_number=arn:aws:iam::{acct}:mfa/alice]",
                user("alice")
            ),
            "removed",
        ),
        (
            &format!(
                "{}.attached_policies[policy_arn=arn:aws:iam::aws:policy/AdministratorAccess]",
                user("svc-ci")
            ),
            "added",
        ),
        (&format!("{}.is_admin", user("svc-ci")), "changed"),
        // The payload's own summaries of the same facts.
        ("counts.users", "changed"),
        ("counts.without_mfa", "changed"),
        ("counts.console_without_mfa", "changed"),
        ("counts.admins", "changed"),
        ("users_without_mfa[]", "added"),
        ("console_users_without_mfa[]", "added"),
        ("admins[]", "added"),
    ]);
    assert_eq!(got, want, "{users:#}");
    assert_eq!(
        change(&users, &format!("{}.mfa_enabled", user("alice")))["after"],
        false
    );
    let trail = format!("trails[arn=arn:aws:cloudtrail:us-east-1:{acct}:trail/org-audit]");
    let trails = diff(&ws, &format!("aws-cloudtrail/{acct}"), &[]);
    let logging = change(&trails, &format!("{trail}.is_logging"));
    assert_eq!(
        (&logging["before"], &logging["after"]),
        (&json!(true), &json!(false))
    );
    let mut got = changes(&trails);
    got.sort();
    let mut want: Vec<(String, String)> = [
        (format!("{trail}.is_logging"), "changed"),
        (format!("{trail}.stop_logging_time"), "changed"),
        // org-audit was the only trail logging, in every region.
        ("regions.us-east-1.logging".into(), "changed"),
        ("regions.eu-west-1.logging".into(), "changed"),
        ("regions_without_logging_trail[]".into(), "added"),
        ("regions_without_logging_trail[]".into(), "added"),
    ]
    .into_iter()
    .map(|(p, k)| (p, k.to_string()))
    .collect();
    want.sort();
    assert_eq!(got, want, "{trails:#}");

    let of = |kind: &str| {
        changes(&diff(&ws, &format!("{kind}/{acct}"), &[]))
            .into_iter()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        of("aws-iam-credential-report"),
        set(&[
            (
                &format!("rows[arn=arn:aws:iam::{acct}:user/alice].mfa_active"),
                "changed"
            ),
            (
                &format!("rows[arn=arn:aws:iam::{acct}:user/frank]"),
                "added"
            ),
            ("count", "changed"),
            // The report's own digest.
            ("sha256", "changed"),
        ])
    );
    assert_eq!(
        of("aws-account-summary"),
        set(&[
            ("summary.users", "changed"),
            ("summary.mfa_devices_in_use", "changed"),
            ("summary.policy_versions_in_use", "changed"),
        ])
    );
    for kind in [
        "aws-iam-password-policy",
        "aws-iam-roles",
        "aws-iam-policies",
        "aws-iam-groups",
        "aws-s3-buckets",
    ] {
        assert_eq!(of(kind), BTreeSet::new(), "{kind} did not change");
    }

    let md = report_md(&ws);
    let lines = highlight_lines(&md);
    for want in [
        format!("MFA turned off: {}", user("alice")),
        format!("New administrator access: {}", user("svc-ci")),
        format!("New, without MFA: {}", user("frank")),
        format!("Stopped: {trail}.is_logging went from on to off"),
    ] {
        // A highlight may go on to say more (the regions a trail left).
        assert!(
            lines.iter().any(|l| l.contains(&want)),
            "`{want}` missing from:\n{md}"
        );
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("New administrator access"))
            .count(),
        1,
        "svc-ci once, and no one else: {lines:#?}"
    );

    assert_every_array_has_an_identity(&ws);
}

#[test]
fn github_diff_and_review_on_the_fixtures_server() {
    use octokit::{ORG, collector, config, scenario};
    let table = |protection: &str, prs: &str| {
        config(&[
            collector("gh-protection", "github-branch-protection", protection, ""),
            collector(
                "gh-prs",
                "github-pull-requests",
                prs,
                "initial_window = \"3650d\"\nchecks = false",
            ),
        ])
    };
    let ws = Workspace::new(&table(
        &scenario("exhibit-branch-protection"),
        &scenario("exhibit-pull-requests-approved"),
    ));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // The next state: api's protection deleted, and #4 merged after the
    // first record's window closed, which only a scenario written now can
    // say.
    let merged_at = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(root().join("tests/fixtures/github/generate.py"))
        .args(["--merged-at", &merged_at, "--out"])
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out));
    let now_server = octokit::start(dir.path());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let prs_url = octokit::scenario_on(now_server.port, "exhibit-pull-requests-unapproved");
    std::fs::write(
        ws.config(),
        table(&scenario("exhibit-branch-protection-removed"), &prs_url),
    )
    .unwrap();
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    octokit::assert_all_consumed();

    let protection = diff(&ws, &format!("gh-protection/{ORG}"), &[]);
    let api = "repositories[repository=api]";
    let c = change(&protection, &format!("{api}.protected"));
    assert_eq!((&c["before"], &c["after"]), (&json!(true), &json!(false)));
    assert_eq!(
        change(&protection, &format!("{api}.classic"))["after"],
        Value::Null
    );
    assert_eq!(change(&protection, "unprotected[]")["after"], "api");
    for (path, _) in changes(&protection) {
        assert!(
            path.starts_with(api) || path == "unprotected[]",
            "only api changed: {path}"
        );
    }

    let prs = diff(&ws, &format!("gh-prs/{ORG}"), &[]);
    assert_eq!(
        changes(&prs),
        [
            ("flagged[]".to_string(), "added".to_string()),
            (
                "pull_requests[repository=api,number=4]".to_string(),
                "added".to_string()
            ),
        ],
        "#1 is outside the newer window, not removed: {prs:#}"
    );
    let four = change(&prs, "pull_requests[repository=api,number=4]");
    assert_eq!(four["after"]["independent_approval"], false);
    assert_eq!(
        four["after"]["flags"],
        json!(["merged_without_independent_approval", "self_merged"])
    );

    let md = report_md(&ws);
    let lines = highlight_lines(&md);
    for want in [
        format!("Branch protection removed: {api}"),
        "Merged without independent approval: api#4".to_string(),
    ] {
        // A highlight may go on to say more (the regions a trail left).
        assert!(
            lines.iter().any(|l| l.contains(&want)),
            "`{want}` missing from:\n{md}"
        );
    }
    assert!(
        !lines.iter().any(|l| l.contains("api#1")),
        "#1 was approved: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("Now unprotected")),
        "api's removal is said once: {lines:#?}"
    );

    assert_every_array_has_an_identity(&ws);
}

/// The other GitHub kinds' payloads, from the same scenarios as
/// the github suite, are matched by identity too.
#[test]
fn every_github_payload_array_has_an_identity() {
    use octokit::{collector, config, scenario};
    let ws = Workspace::new(&config(&[
        collector(
            "gh-members",
            "github-members",
            &scenario("exhibit-members"),
            "",
        ),
        collector("gh-teams", "github-teams", &scenario("exhibit-teams"), ""),
        collector(
            "gh-repos",
            "github-repositories",
            &scenario("exhibit-repositories"),
            "include_archived = true",
        ),
        collector(
            "gh-keys",
            "github-deploy-keys",
            &scenario("exhibit-deploy-keys"),
            "",
        ),
        collector(
            "gh-hooks",
            "github-webhooks",
            &scenario("exhibit-webhooks"),
            "",
        ),
        collector(
            "gh-actions",
            "github-actions",
            &scenario("exhibit-actions"),
            "",
        ),
        collector(
            "gh-invitations",
            "github-invitations",
            &scenario("exhibit-invitations"),
            "",
        ),
        collector(
            "gh-outside",
            "github-outside-collaborators",
            &scenario("exhibit-outside-collaborators"),
            "",
        ),
        collector(
            "gh-prs",
            "github-pull-requests",
            &scenario("exhibit-pull-requests"),
            "initial_window = \"3650d\"",
        ),
    ]));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    octokit::assert_all_consumed();
    assert_every_array_has_an_identity(&ws);
}
