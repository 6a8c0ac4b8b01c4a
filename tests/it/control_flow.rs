//! Controls where people meet them, through the real binary: the daemon
//! evaluating a control as its input lands (and recording a failed
//! evaluation as an `error` result, going on collecting), the nightly review
//! opening with what changed state, and the leavers reconciliation across
//! Okta (its recorded responses), GitHub (octokit's fixtures server) and
//! AWS (moto) failing on the person who left until their access is gone.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sha2::Digest as _;

use crate::support::moto::{self, Moto};
use crate::support::{Workspace, code, net, octokit, replay, text};

pub(crate) const ACCOUNT: &str = "123456789012";
const AGENT_SECRET: &str = "agent-secret-flow-7Hq2";

/// `exhibit show --json RECORD`.
pub(crate) fn show(ws: &Workspace, record: &str) -> Value {
    let out = ws.run(&["show", "--json", record]);
    assert_eq!(code(&out), 0, "show {record}: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("show --json prints JSON")
}

/// The SHA-256 of the stored bytes at `key`.
pub(crate) fn stored_sha256(ws: &Workspace, key: &str) -> String {
    let bytes = std::fs::read(ws.store().join(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
    hex::encode(sha2::Sha256::digest(&bytes))
}

/// How many records `stream` holds in the workspace's store.
fn count(ws: &Workspace, stream: &str) -> usize {
    std::fs::read_dir(ws.store().join("records").join(stream))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits up to `secs` for `stream` to hold at least `n` records.
fn wait_records(ws: &Workspace, stream: &str, n: usize, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while count(ws, stream) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{stream} never reached {n} records (has {})",
            count(ws, stream)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

const ROSTER_CONTROL: &str = r#"
title = "Everyone on the roster has MFA"
criteria = ["CC6.1"]
frequency = "continuous"
policy_file = "roster-mfa.rego"
mapping_file = "people.csv"

[[inputs]]
name = "roster"
kind = "command"
collector = "roster"
"#;

const ROSTER_POLICY: &str = r#"package roster_mfa

person(login) := object.get(object.get(input.mapping, "hr", {}), login, login)

findings contains {"entity": p.login, "reason": sprintf("%s has no MFA", [person(p.login)])} if {
	some r in input.inputs.roster
	some p in r.payload.output.people
	not p.mfa
}
"#;

#[test]
fn the_daemon_evaluates_a_control_as_its_input_lands_and_records_a_failed_evaluation() {
    let ws = Workspace::new(
        r#"
[agent]
catch_up = false

[[collectors]]
name = "roster"
kind = "command"
schedule = "* * * * * *"
command = ["cat", "roster.json"]
retries = 0
"#,
    );
    let mine = ws.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("roster-mfa.toml"), ROSTER_CONTROL).unwrap();
    std::fs::write(mine.join("roster-mfa.rego"), ROSTER_POLICY).unwrap();
    let people = mine.join("people.csv");
    std::fs::write(&people, "system,account,person\nhr,bob,bob@example.com\n").unwrap();
    std::fs::write(
        ws.path().join("roster.json"),
        r#"{"people": [{"login": "alice", "mfa": true}, {"login": "bob", "mfa": false}]}"#,
    )
    .unwrap();

    let admin = format!("127.0.0.1:{}", net::free_port());
    let mut daemon = ws
        .cmd(&["run", "--admin-listen", &admin])
        .env("EXHIBIT_CONTROLS_DIR", &mine)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the daemon starts");
    let stream = "control/roster-mfa";
    wait_records(&ws, stream, 1, 30);

    // The mapping file gone: the evaluation cannot be made. It is an
    // `error` result, and the daemon goes on.
    std::fs::remove_file(&people).unwrap();
    let gone = count(&ws, stream);
    wait_records(&ws, stream, gone + 2, 30);
    std::fs::write(&people, "system,account,person\nhr,bob,bob@example.com\n").unwrap();
    let back = count(&ws, stream);
    wait_records(&ws, stream, back + 2, 30);
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon must survive a failed evaluation"
    );
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(daemon.wait().unwrap().success());

    // The first result judged the roster record that had just landed, by
    // the sha256 of its stored bytes, and failed on bob alone.
    let first = show(&ws, &format!("{stream}@1"));
    let p = &first["statement"]["predicate"];
    assert_eq!(p["assessment"]["state"], "fail", "{first}");
    let inputs = p["assessment"]["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 1, "{p}");
    let judged = inputs[0]["record"].as_str().unwrap();
    assert!(judged.starts_with("records/roster/"), "{judged}");
    assert_eq!(inputs[0]["sha256"], stored_sha256(&ws, judged).as_str());
    // The input had landed before the result was written: it was judged
    // as it landed, not on a later pass.
    let input_seq: u64 = judged
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".json")
        .parse()
        .unwrap();
    let input = show(
        &ws,
        &format!(
            "{}@{input_seq}",
            &judged["records/".len()..judged.rfind('/').unwrap()]
        ),
    );
    assert!(
        input["statement"]["predicate"]["finished_at"]
            .as_str()
            .unwrap()
            <= p["finished_at"].as_str().unwrap()
    );
    let findings = first["payload"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["entity"], "bob");
    assert_eq!(findings[0]["reason"], "bob@example.com has no MFA");

    // Among the results: an error naming the missing mapping file, and
    // after it (the file restored) a fail again.
    let states: Vec<(String, Value)> = (1..=count(&ws, stream))
        .map(|seq| {
            let r = show(&ws, &format!("{stream}@{seq}"));
            let p = r["statement"]["predicate"].clone();
            (p["assessment"]["state"].as_str().unwrap().to_string(), p)
        })
        .collect();
    let error = states
        .iter()
        .position(|(s, _)| s == "error")
        .unwrap_or_else(|| panic!("no error result: {states:?}"));
    let (_, p) = &states[error];
    assert_eq!(p["status"], "failed", "{p}");
    assert!(
        p["error"].as_str().unwrap().contains("people.csv"),
        "the error says what failed: {p}"
    );
    assert!(
        states[error..].iter().any(|(s, _)| s == "fail"),
        "evaluation resumed once the file was back: {states:?}"
    );
    // Every result is under a checkpoint: the store verifies.
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

/// Runs python with boto3 against `moto`: `script` sees `iam`, a client.
pub(crate) fn iam(moto: &Moto, script: &str) {
    let out = Command::new(moto::python())
        .arg("-c")
        .arg(format!(
            "import boto3\niam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='AKIASEEDTEST', aws_secret_access_key='seed')\n{script}",
            moto.endpoint()
        ))
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{script}: {}", text(&out));
}

/// A workspace collecting from `moto` with `collectors` (name, kind).
pub(crate) struct AwsWorkspace {
    pub(crate) ws: Workspace,
    endpoint: String,
}

impl AwsWorkspace {
    pub(crate) fn new(moto: &Moto, collectors: &[(&str, &str)], extra: &str) -> Self {
        let mut config = String::from("[agent]\nid = \"flow\"\n");
        for (name, kind) in collectors {
            config.push_str(&format!(
                "[[collectors]]\nname = \"{name}\"\nkind = \"{kind}\"\nschedule = \"@daily\"\nretries = 0\nregions = [\"us-east-1\"]\nmax_attempts = 2\n"
            ));
        }
        config.push_str(extra);
        let ws = Workspace::new(&config);
        std::fs::write(ws.path().join("aws-config"), "").unwrap();
        AwsWorkspace {
            ws,
            endpoint: moto.endpoint(),
        }
    }

    /// Runs the binary with the AWS environment pointing at moto.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.ws.cmd(args);
        moto::aws_env(
            &mut cmd,
            &self.endpoint,
            AGENT_SECRET,
            &self.ws.path().join("aws-config"),
        )
        .output()
        .expect("the exhibit binary runs")
    }
}

/// bob first has no console password (aws-console-mfa passes), then one
/// without MFA (it fails on him); an exception for `excepted` is added.
pub(crate) fn mfa_story(excepted: &str) -> (Moto, AwsWorkspace) {
    let moto = Moto::start();
    iam(&moto, "iam.create_user(UserName='bob')");
    let aws = AwsWorkspace::new(&moto, &[("iam-report", "aws-iam-credential-report")], "");
    let out = aws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = aws.run(&["assess", "--control", "aws-console-mfa"]);
    assert_eq!(code(&out), 0, "no console user without MFA: {}", text(&out));

    iam(
        &moto,
        "iam.create_login_profile(UserName='bob', Password='Corr3ct-Horse-Battery!')",
    );
    let out = aws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = aws.run(&["assess", "--control", "aws-console-mfa"]);
    assert_eq!(code(&out), 1, "bob has no MFA: {}", text(&out));
    assert!(text(&out).contains(&format!("arn:aws:iam::{ACCOUNT}:user/bob")));

    let out = aws.run(&[
        "exception",
        "add",
        "--control",
        "aws-console-mfa",
        "--entity",
        excepted,
        "--reason",
        "break-glass account, key in the safe",
        "--approver",
        "ciso@example.com",
        "--expires",
        "2099-01-01",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    (moto, aws)
}

/// One POST captured on a local port: its body.
fn capture_one_post() -> (String, std::thread::JoinHandle<Vec<u8>>) {
    crate::review::capture_one_post()
}

#[test]
fn the_review_opens_with_control_changes_failures_and_exceptions() {
    let breakglass = format!("arn:aws:iam::{ACCOUNT}:user/breakglass");
    let bob = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let (_moto, aws) = mfa_story(&breakglass);

    let out = aws.run(&["report", "--json", "--since", "1h"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &report["controls"];
    let changes: Vec<(Value, Value)> = c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["control"] == "aws-console-mfa")
        .map(|x| (x["from"].clone(), x["to"].clone()))
        .collect();
    assert_eq!(
        changes,
        [(Value::Null, "pass".into()), ("pass".into(), "fail".into())],
        "{c}"
    );
    let now = &c["attention"][0];
    assert_eq!(now["control"], "aws-console-mfa", "{c}");
    assert_eq!(now["state"], "fail");
    assert_eq!(now["open"][0][0], bob.as_str());
    // Failing since the evaluation that found bob, not since the first.
    assert_eq!(now["since"], c["changes"][1]["at"]);
    assert_eq!(c["exceptions"][0]["entity"], breakglass.as_str());
    assert_eq!(c["exceptions"][0]["approver"], "ciso@example.com");

    // Markdown: the controls come first.
    let out = aws.run(&["report", "--format", "md", "--since", "1h"]);
    let md = String::from_utf8(out.stdout).unwrap();
    let controls = md.find("## Controls").expect("a controls section");
    assert!(controls < md.find("## Highlights").unwrap(), "{md}");
    assert!(md.contains("aws-console-mfa: pass → fail at "), "{md}");
    assert!(
        md.contains(&format!(
            "`{bob}`: console password enabled without an MFA device"
        )),
        "{md}"
    );
    assert!(md.contains(&format!("aws-console-mfa: `{breakglass}` excepted until 2099-01-02T00:00:00Z, approved by ciso@example.com")), "{md}");

    // HTML: the same section, before the highlights.
    let out = aws.run(&["report", "--since", "1h"]);
    let html = String::from_utf8(out.stdout).unwrap();
    let at = html
        .find("id=\"control-changes\"")
        .expect("changes in the page");
    assert!(at < html.find("id=\"highlights\"").unwrap());
    assert!(html.contains("pass → fail"));
    assert!(html.contains(&breakglass));

    // The chat summary leads with them too.
    let (url, server) = capture_one_post();
    let out = aws.run(&[
        "report",
        "--format",
        "md",
        "--out",
        "/dev/null",
        "--since",
        "1h",
        "--webhook",
        &url,
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let body: Value = serde_json::from_slice(&server.join().unwrap()).unwrap();
    let t = body["text"].as_str().unwrap();
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[1],
        "Controls: 1 assessed, 2 state change(s), 1 failing or not evaluated, 1 exception(s) in force.",
        "{t}"
    );
    assert!(lines[2].contains("aws-console-mfa: pass → fail"), "{t}");
    assert!(t.contains(&format!("e.g. {bob}")), "{t}");
}

/// The leavers control with the identity mapping of `people`: a copy of
/// the built-in control in a controls directory of the user's own.
fn leavers_dir(dir: &Path, people: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let root = crate::support::root().join("controls");
    let toml = std::fs::read_to_string(root.join("leavers-removed.toml")).unwrap();
    std::fs::write(
        dir.join("leavers-removed.toml"),
        format!("mapping_file = \"people.csv\"\n{toml}"),
    )
    .unwrap();
    std::fs::copy(
        root.join("leavers-removed.rego"),
        dir.join("leavers-removed.rego"),
    )
    .unwrap();
    std::fs::write(dir.join("people.csv"), people).unwrap();
}

#[test]
fn a_leaver_still_in_aws_fails_the_reconciliation_until_their_user_is_gone() {
    // Okta: John Doe-Suspend is suspended (Okta's own recording).
    let okta = replay::replay(
        "okta-leaver.yaml",
        &[("Authorization", "SSWS 00TESTtokenSSWS-leaver")],
    );
    // GitHub: the fixture org's members (none of whom left).
    let github = octokit::scenario("exhibit-members");
    // AWS: the leaver still has an IAM user, jdoe; alice stays.
    let moto = Moto::start();
    iam(
        &moto,
        "iam.create_user(UserName='jdoe')\niam.create_user(UserName='alice')",
    );
    let extra = format!(
        r#"
[[collectors]]
name = "okta"
kind = "http"
schedule = "@daily"
definition = "okta-users"
base_url = "{}"
token = "00TESTtokenSSWS-leaver"
retries = 0
{}"#,
        okta.url,
        octokit::collector("gh-members", "github-members", &github, "")
    );
    let aws = AwsWorkspace::new(&moto, &[("iam-users", "aws-iam-users")], &extra);
    let mine = aws.ws.path().join("mine");
    leavers_dir(
        &mine,
        "system,account,person\naws,jdoe,John.Doe-Suspend@example.com\naws,alice,alice@example.com\ngithub,carol,carol@example.com\n",
    );
    let out = aws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let idp = show(&aws.ws, "okta/127.0.0.1");
    let users = idp["payload"]["users"]["items"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{idp}");
    assert_eq!(users[0]["status"], "SUSPENDED");

    let dir = mine.to_str().unwrap();
    let assess = || {
        aws.run(&[
            "assess",
            "--control",
            "leavers-removed",
            "--controls-dir",
            dir,
        ])
    };
    let out = assess();
    let t = text(&out);
    assert_eq!(code(&out), 1, "the leaver still has access: {t}");
    let jdoe = format!("arn:aws:iam::{ACCOUNT}:user/jdoe");
    assert!(t.contains(&jdoe), "{t}");
    let result = show(&aws.ws, "control/leavers-removed");
    let findings = result["payload"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "only the leaver: {findings:?}");
    assert_eq!(findings[0]["entity"], jdoe.as_str());
    assert_eq!(
        findings[0]["reason"],
        "john.doe-suspend@example.com left (Okta) but is still IAM user jdoe"
    );
    // The result judged all three snapshots, each by its stored sha256.
    let inputs = result["statement"]["predicate"]["assessment"]["inputs"]
        .as_array()
        .unwrap()
        .clone();
    let streams: Vec<&str> = inputs
        .iter()
        .map(|i| i["record"].as_str().unwrap().split('/').nth(1).unwrap())
        .collect();
    assert_eq!(streams, ["gh-members", "iam-users", "okta"], "{inputs:?}");
    for i in &inputs {
        let key = i["record"].as_str().unwrap();
        assert_eq!(i["sha256"], stored_sha256(&aws.ws, key).as_str());
    }

    // Their IAM user removed and AWS collected again: the control passes
    // on the new AWS snapshot and the same Okta and GitHub ones.
    iam(&moto, "iam.delete_user(UserName='jdoe')");
    let out = aws.run(&["collect", "iam-users"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = assess();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let result = show(&aws.ws, "control/leavers-removed");
    assert_eq!(
        result["statement"]["predicate"]["assessment"]["state"],
        "pass"
    );
    assert_eq!(result["payload"]["findings"], Value::Array(vec![]));
    let judged: Vec<&str> = result["statement"]["predicate"]["assessment"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["record"].as_str().unwrap())
        .collect();
    assert!(
        judged.contains(&format!("records/iam-users/{ACCOUNT}/000000000002.json").as_str()),
        "{judged:?}"
    );
}
