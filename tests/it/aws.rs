//! The AWS collectors against a real AWS peer: moto's server over HTTP,
//! seeded with boto3 (`tests/support/aws_seed.py`) and read by the real
//! `exhibit` binary through the real SDK clients. The tests assert the
//! facts the evidence states, not only that records exist.
//!
//! One moto_server and one seeded estate serve every test of this suite;
//! the tests that inject faults put their own proxy
//! (`tests/support/aws_proxy.py`) in front of it. moto_server must be
//! installed (`bash tests/run.sh` installs the pinned one); these tests
//! fail, never skip, without it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::moto::{self, Moto, Proxy};
use crate::support::{Workspace, code, root, text};

/// The agent's own secret access key: it must not show anywhere either.
const AGENT_SECRET: &str = "agent-secret-Zq81xWv0pLm3";

pub(crate) const ACCOUNT: &str = "123456789012";

/// moto_server with the seeded estate, and what the seed reported.
pub(crate) struct Estate {
    pub(crate) moto: Moto,
    seed: Value,
}

pub(crate) fn estate() -> &'static Estate {
    static ESTATE: OnceLock<Estate> = OnceLock::new();
    ESTATE.get_or_init(|| {
        // AdministratorAccess and the other AWS-managed policies exist only
        // when moto is asked to load them.
        let moto = Moto::start_with(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
        let out = Command::new(moto::python())
            .arg(root().join("tests/support/aws_seed.py"))
            .arg(moto.endpoint())
            .output()
            .expect("the seed script runs");
        assert!(out.status.success(), "seeding moto failed: {}", text(&out));
        let seed: Value = serde_json::from_slice(&out.stdout).expect("the seed prints JSON");
        Estate { moto, seed }
    })
}

/// A config with one instance per kind.
fn config(kinds: &[&str], settings: &str) -> String {
    let mut c = String::from("[agent]\nid = \"aws-test\"\n");
    for k in kinds {
        c.push_str(&format!(
            "[[collectors]]\nname = \"{k}\"\nkind = \"{k}\"\nschedule = \"@daily\"\nretries = 0\n{settings}\n"
        ));
    }
    c
}

/// One `exhibit collect` and what it left.
pub(crate) struct Run {
    pub(crate) ws: Workspace,
    pub(crate) out: Output,
}

/// Runs `exhibit collect` with debug logs in JSON, against `endpoint`, with
/// test credentials and nothing from the developer's own ~/.aws.
pub(crate) fn collect(kinds: &[&str], settings: &str, endpoint: &str) -> Run {
    let ws = Workspace::new(&config(kinds, settings));
    let empty = ws.path().join("aws-config");
    std::fs::write(&empty, "").unwrap();
    let mut cmd = ws.cmd(&["--log-format", "json", "collect"]);
    let out = moto::aws_env(&mut cmd, endpoint, AGENT_SECRET, &empty)
        .env("EXHIBIT_LOG", "debug")
        .output()
        .expect("the exhibit binary runs");
    Run { ws, out }
}

impl Run {
    /// `exhibit show --json STREAM`: the record's statement and payload.
    fn show(&self, stream: &str) -> Value {
        let out = self.ws.run(&["show", "--json", stream]);
        assert_eq!(code(&out), 0, "show {stream}: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("show --json prints JSON")
    }

    fn payload(&self, stream: &str) -> Value {
        self.show(stream)["payload"].clone()
    }

    fn predicate(&self, stream: &str) -> Value {
        self.show(stream)["statement"]["predicate"].clone()
    }

    /// The IAM actions the collectors called, from the debug journal.
    fn actions(&self) -> BTreeSet<String> {
        String::from_utf8_lossy(&self.out.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "exhibit::aws::action")
            .filter_map(|v| v["action"].as_str().map(str::to_string))
            .collect()
    }

    /// Every byte the run left in the store, and everything it printed.
    fn everything(&self) -> Vec<u8> {
        fn walk(dir: &Path, into: &mut Vec<u8>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), into);
                } else {
                    into.extend(std::fs::read(e.path()).unwrap());
                }
            }
        }
        let mut all = self.out.stdout.clone();
        all.extend(&self.out.stderr);
        walk(&self.ws.store(), &mut all);
        all
    }
}

/// Every kind, in two regions, straight against moto.
fn main_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let e = estate();
        collect(
            &moto::aws_kinds(),
            "regions = [\"us-east-1\", \"eu-west-1\"]\nmax_attempts = 2",
            &e.moto.endpoint(),
        )
    })
}

fn user<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_name"] == name)
        .unwrap_or_else(|| panic!("user {name} is missing: {p}"))
}

fn named<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|x| x[key] == name)
        .unwrap_or_else(|| panic!("{name} is missing from {list}"))
}

#[test]
fn users_record_mfa_keys_console_access_and_admin_access() {
    let run = main_run();
    let stream = format!("aws-iam-users/{ACCOUNT}");
    let pred = run.predicate(&stream);
    assert_eq!(pred["status"], "ok", "{pred}");
    assert_eq!(pred["source"]["account_id"], ACCOUNT);
    assert_eq!(pred["source"]["partition"], "aws");
    assert_eq!(pred["source"]["regions"], json!(["us-east-1", "eu-west-1"]));
    assert_eq!(pred["criteria"], json!(["CC6.1", "CC6.2", "CC6.3"]));
    let p = run.payload(&stream);
    let seed = &estate().seed;

    let alice = user(&p, "alice");
    assert_eq!(alice["mfa_enabled"], true);
    assert_eq!(
        alice["mfa_devices"][0]["serial_number"],
        format!("arn:aws:iam::{ACCOUNT}:mfa/alice")
    );
    assert_eq!(alice["console_access"], true);
    assert_eq!(alice["groups"], json!(["developers"]));
    let key = &alice["access_keys"][0];
    assert_eq!(key["access_key_id"], seed["alice_key"]);
    assert_eq!(key["status"], "Active");
    assert!(
        key["last_used_date"].is_string(),
        "alice's key was used: {key}"
    );
    assert_eq!(key["last_used_service"], "iam");
    assert!(
        key["create_date"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC: {key}"
    );

    let bob = user(&p, "bob");
    assert_eq!(bob["mfa_enabled"], false, "bob has no MFA");
    assert_eq!(bob["mfa_devices"], json!([]));
    assert_eq!(bob["console_access"], true);
    assert_eq!(bob["access_keys"][0]["access_key_id"], seed["bob_key"]);
    assert_eq!(bob["access_keys"][0]["status"], "Active");
    assert_eq!(
        bob["access_keys"][0]["last_used_date"],
        Value::Null,
        "bob's key was never used"
    );
    // The inline policy is decoded from IAM's URL encoding into JSON.
    assert_eq!(
        bob["inline_policies"][0]["document"]["Statement"][0]["Action"],
        "*"
    );
    assert_eq!(bob["is_admin"], true, "bob's inline policy allows *:*");

    let carol = user(&p, "carol");
    assert_eq!(carol["console_access"], false);
    assert_eq!(
        carol["attached_policies"][0]["policy_name"],
        "AdministratorAccess"
    );
    assert_eq!(carol["is_admin"], true);
    assert_eq!(user(&p, "erin")["admin_via_groups"], json!(["admins"]));
    assert_eq!(user(&p, "alice")["is_admin"], false);

    let ci = user(&p, "svc-ci");
    let statuses: BTreeSet<&str> = ci["access_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, BTreeSet::from(["Active", "Inactive"]));

    assert_eq!(p["console_users_without_mfa"], json!(["bob"]));
    assert_eq!(p["admins"], json!(["bob", "carol", "erin"]));
    assert_eq!(p["counts"]["users"], 5);
    assert_eq!(p["counts"]["active_access_keys"], 3);
}

#[test]
fn roles_and_policies_are_read_across_pages_with_decoded_documents() {
    let run = main_run();
    let roles = run.payload(&format!("aws-iam-roles/{ACCOUNT}"));
    // 105 roles: IAM (and moto) answer 100 per page, so the second page
    // was read.
    assert_eq!(roles["count"], 105, "{}", roles["count"]);
    assert_eq!(roles["roles"].as_array().unwrap().len(), 105);
    let ci = named(&roles["roles"], "role_name", "ci-deploy");
    assert_eq!(
        ci["trusted_principals"],
        json!(["AWS:arn:aws:iam::111111111111:root"])
    );
    assert_eq!(
        ci["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "acme-ci"
    );
    assert_eq!(ci["inline_policies"][0]["policy_name"], "deploy-inline");
    assert_eq!(ci["attached_policies"][0]["policy_name"], "deploy");
    assert_eq!(ci["description"], "CI deploys from the tools account");
    assert_eq!(roles["admin_roles"], json!(["breakglass"]));
    let app = named(&roles["roles"], "role_name", "app-000");
    assert_eq!(
        app["trusted_principals"],
        json!(["Service:ec2.amazonaws.com"])
    );

    let policies = run.payload(&format!("aws-iam-policies/{ACCOUNT}"));
    assert_eq!(policies["count"], 105, "customer-managed only, all pages");
    let deploy = named(&policies["policies"], "policy_name", "deploy");
    assert_eq!(deploy["default_version_id"], "v3");
    assert_eq!(deploy["versions"].as_array().unwrap().len(), 3);
    assert_eq!(
        deploy["document"]["Statement"][0]["Action"], "ec2:Describe*",
        "the default version's document"
    );
    assert_eq!(deploy["attachment_count"], 2);
    assert!(
        !policies.to_string().contains("arn:aws:iam::aws:policy/"),
        "AWS-managed policies are not copied"
    );
}

#[test]
fn groups_credential_report_password_policy_and_account_summary() {
    let run = main_run();
    let groups = run.payload(&format!("aws-iam-groups/{ACCOUNT}"));
    let admins = named(&groups["groups"], "group_name", "admins");
    assert_eq!(admins["members"], json!(["erin"]));
    assert_eq!(admins["is_admin"], true);
    let devs = named(&groups["groups"], "group_name", "developers");
    assert_eq!(devs["members"], json!(["alice", "bob"]));
    assert_eq!(
        devs["inline_policies"][0]["document"]["Version"],
        "2012-10-17"
    );
    assert_eq!(groups["admin_groups"], json!(["admins"]));

    let pp = run.predicate(&format!("aws-iam-password-policy/{ACCOUNT}"));
    assert_eq!(pp["status"], "ok", "no password policy is a fact: {pp}");
    let pp = run.payload(&format!("aws-iam-password-policy/{ACCOUNT}"));
    assert_eq!(pp["configured"], false);
    assert_eq!(pp["status"], "none set");
    assert_eq!(pp["password_policy"], Value::Null);

    let report = run.payload(&format!("aws-iam-credential-report/{ACCOUNT}"));
    let sha = report["sha256"].as_str().unwrap();
    assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()));
    let bob = named(&report["rows"], "user", "bob");
    assert_eq!(bob["mfa_active"], false);
    assert_eq!(bob["password_enabled"], true);
    assert_eq!(bob["access_key_1_active"], true);
    assert_eq!(named(&report["rows"], "user", "alice")["mfa_active"], true);
    assert_eq!(
        named(&report["rows"], "user", "carol")["password_enabled"],
        false
    );

    let summary = run.payload(&format!("aws-account-summary/{ACCOUNT}"));
    assert_eq!(summary["aliases"], json!(["acme-prod"]));
    assert_eq!(summary["root_mfa_enabled"], false);
    assert_eq!(summary["root_access_keys_present"], false);
    assert_eq!(summary["summary"]["users"], 5);
    assert_eq!(summary["summary"]["mfa_devices_in_use"], 1);
}

#[test]
fn s3_buckets_record_protections_and_what_is_not_configured() {
    let run = main_run();
    let stream = format!("aws-s3-buckets/{ACCOUNT}");
    let pred = run.predicate(&stream);
    assert_eq!(
        pred["status"], "ok",
        "not-configured answers are facts: {pred}"
    );
    assert_eq!(pred["criteria"], json!(["CC6.1", "CC6.7", "A1.2"]));
    let p = run.payload(&stream);
    let b = |n: &str| named(&p["buckets"], "name", n).clone();

    let public = b("acme-public");
    assert_eq!(public["encrypted"], false, "acme-public is unencrypted");
    assert_eq!(public["encryption"], Value::Null);
    assert_eq!(public["public_access_block"], Value::Null);
    assert_eq!(public["policy_status"]["is_public"], true);
    assert_eq!(public["versioning"]["status"], Value::Null);
    assert_eq!(public["logging"], Value::Null);
    assert_eq!(public["object_lock"], Value::Null);
    assert_eq!(public["lifecycle"], Value::Null);

    let data = b("acme-data");
    assert_eq!(
        data["default_encryption"], "aws:kms",
        "acme-data has SSE-KMS"
    );
    assert_eq!(
        data["encryption"]["rules"][0]["kms_master_key_id"],
        "arn:aws:kms:us-east-1:123456789012:key/data-key"
    );
    assert_eq!(data["encryption"]["rules"][0]["bucket_key_enabled"], true);
    assert_eq!(data["versioning"]["status"], "Suspended");
    assert_eq!(data["logging"]["target_bucket"], "acme-logs");
    assert_eq!(data["logging"]["target_prefix"], "s3/acme-data/");
    assert_eq!(data["policy"]["Statement"][0]["Sid"], "DenyInsecure");
    assert_eq!(data["policy_status"]["is_public"], false);
    assert_eq!(data["object_ownership"], "BucketOwnerEnforced");

    let logs = b("acme-logs");
    assert_eq!(logs["default_encryption"], "AES256");
    // moto's GetBucketVersioning answer has a root element the SDK
    // refuses; the status is still read.
    assert_eq!(logs["versioning"]["status"], "Enabled");
    assert_eq!(logs["versioning"]["enabled"], true);
    assert_eq!(
        logs["public_access_block"],
        json!({"block_public_acls": true, "ignore_public_acls": true, "block_public_policy": true, "restrict_public_buckets": true})
    );
    assert_eq!(logs["lifecycle"]["rules"][0]["id"], "expire-old-logs");
    assert_eq!(logs["lifecycle"]["rules"][0]["expiration_days"], 400);

    let locked = b("acme-locked");
    assert_eq!(locked["object_lock"]["enabled"], true);
    assert_eq!(locked["object_lock"]["default_mode"], "COMPLIANCE");
    assert_eq!(locked["object_lock"]["default_days"], 30);
    assert_eq!(b("acme-eu")["region"], "eu-west-1");
    assert_eq!(logs["region"], "us-east-1");

    // Account level, through S3 Control (whose endpoint rules put the
    // account id in front of the host).
    assert_eq!(
        p["account_public_access_block"],
        json!({"block_public_acls": true, "ignore_public_acls": true, "block_public_policy": false, "restrict_public_buckets": false})
    );
    assert_eq!(
        p["unencrypted"],
        json!(["acme-eu", "acme-locked", "acme-public"])
    );
    assert_eq!(p["public"], json!(["acme-public"]));
    assert_eq!(p["count"], 5);
}

#[test]
fn cloudtrail_records_logging_validation_scope_and_selectors() {
    let run = main_run();
    let stream = format!("aws-cloudtrail/{ACCOUNT}");
    assert_eq!(run.predicate(&stream)["status"], "ok");
    let p = run.payload(&stream);
    let audit = named(&p["trails"], "name", "org-audit");
    assert_eq!(audit["is_logging"], true, "trail org-audit is logging");
    assert_eq!(audit["log_file_validation_enabled"], true);
    assert_eq!(audit["is_multi_region_trail"], true);
    assert_eq!(audit["home_region"], "us-east-1");
    assert_eq!(
        audit["kms_key_id"],
        "arn:aws:kms:us-east-1:123456789012:key/trail-key"
    );
    assert_eq!(audit["s3_bucket_name"], "acme-logs");
    assert_eq!(
        audit["event_selectors"][0]["data_resources"][0]["values"],
        json!(["arn:aws:s3:::acme-data/"])
    );
    assert!(audit["start_logging_time"].is_string());
    let scratch = named(&p["trails"], "name", "eu-scratch");
    assert_eq!(scratch["is_logging"], false);
    assert_eq!(scratch["log_file_validation_enabled"], false);
    assert_eq!(scratch["home_region"], "eu-west-1");
    // The multi-region trail shows in eu-west-1 too, and covers it.
    assert_eq!(
        p["regions"]["eu-west-1"]["trails"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(p["regions"]["eu-west-1"]["logging"], true);
    assert_eq!(p["regions_without_logging_trail"], json!([]));
    assert_eq!(p["count"], 2, "each trail once, not once per region");
}

#[test]
fn monitoring_is_partial_and_names_the_api_moto_lacks() {
    let run = main_run();
    let stream = format!("aws-monitoring/{ACCOUNT}");
    let pred = run.predicate(&stream);
    // moto implements DescribeHub but not GetEnabledStandards: the record
    // keeps everything else and says what is missing.
    assert_eq!(pred["status"], "partial", "{pred}");
    let error = pred["error"].as_str().unwrap();
    assert!(
        error.contains("securityhub:GetEnabledStandards") && error.contains("us-east-1"),
        "{error}"
    );
    assert!(
        !error.contains("Werkzeug"),
        "no raw response in the error: {error}"
    );
    let p = run.payload(&stream);
    let us = &p["regions"]["us-east-1"];
    assert_eq!(us["config"]["enabled"], true);
    assert_eq!(us["config"]["recorders"][0]["name"], "default");
    assert_eq!(us["config"]["recorders"][0]["recording"], true);
    assert_eq!(us["config"]["recorders"][0]["all_supported"], true);
    assert_eq!(
        us["config"]["delivery_channels"][0]["s3_bucket_name"],
        "acme-logs"
    );
    assert_eq!(us["guardduty"]["enabled"], true);
    assert_eq!(us["guardduty"]["detectors"][0]["status"], "ENABLED");
    assert_eq!(
        us["guardduty"]["detectors"][0]["finding_publishing_frequency"],
        "ONE_HOUR"
    );
    assert_eq!(us["security_hub"]["enabled"], true);
    assert_eq!(
        us["security_hub"]["hub_arn"],
        "arn:aws:securityhub:us-east-1:123456789012:hub/default"
    );
    assert_eq!(us["security_hub"]["standards"], Value::Null);
    let eu = &p["regions"]["eu-west-1"];
    assert_eq!(eu["config"]["enabled"], false);
    assert_eq!(eu["guardduty"]["enabled"], false);
    assert_eq!(eu["security_hub"]["enabled"], false);
    assert_eq!(p["regions_without_guardduty"], json!(["eu-west-1"]));
}

/// Two accounts, a role assumed in each, through a proxy that keeps the
/// credentials STS hands out (to check that they go nowhere).
fn accounts_run() -> &'static (Run, Vec<String>) {
    static RUN: OnceLock<(Run, Vec<String>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let e = estate();
        let proxy = Proxy::start(&e.moto.endpoint(), json!([]), Some("Action=AssumeRole"));
        let run = collect(
            &["aws-iam-users", "aws-s3-buckets"],
            "accounts = [\"111111111111\", \"123456789012\"]\nrole_name = \"ExhibitReadOnly\"\nexternal_id = \"acme-exhibit\"",
            &proxy.url,
        );
        let mut secrets = Vec::new();
        for entry in proxy.journal() {
            if let Some(r) = entry["response"].as_str() {
                for tag in ["SessionToken", "SecretAccessKey"] {
                    if let Some(v) = r
                        .split(&format!("<{tag}>"))
                        .nth(1)
                        .and_then(|x| x.split(&format!("</{tag}>")).next())
                    {
                        secrets.push(v.to_string());
                    }
                }
            }
        }
        (run, secrets)
    })
}

#[test]
fn each_account_is_a_stream_read_through_its_assumed_role() {
    let (run, sts_secrets) = accounts_run();
    assert_eq!(code(&run.out), 0, "{}", text(&run.out));
    assert!(
        sts_secrets.len() >= 4,
        "two roles assumed, each with a key and a token: {sts_secrets:?}"
    );
    let other = run.predicate("aws-iam-users/111111111111");
    assert_eq!(other["status"], "ok", "{other}");
    assert_eq!(
        other["source"]["role_arn"],
        "arn:aws:iam::111111111111:role/ExhibitReadOnly"
    );
    assert_eq!(
        other["source"]["arn"],
        "arn:aws:sts::111111111111:assumed-role/ExhibitReadOnly/exhibit"
    );
    let p = run.payload("aws-iam-users/111111111111");
    assert_eq!(p["account_id"], "111111111111");
    let names: Vec<&str> = p["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dave"], "account 111111111111 has its own users");
    let main = run.payload("aws-iam-users/123456789012");
    assert_eq!(main["counts"]["users"], 5);
    assert_eq!(run.payload("aws-s3-buckets/111111111111")["count"], 0);
}

#[test]
fn no_secret_reaches_the_store_or_the_logs() {
    let main = main_run();
    let (accounts, sts_secrets) = accounts_run();
    let mut secrets: Vec<String> = estate().seed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(secrets.len() >= 7, "the seed made keys and passwords");
    secrets.extend(sts_secrets.iter().cloned());
    secrets.push(AGENT_SECRET.to_string());
    for run in [main, accounts] {
        let all = run.everything();
        assert!(all.len() > 10_000, "the run left evidence and debug logs");
        for s in &secrets {
            assert!(
                !all.windows(s.len()).any(|w| w == s.as_bytes()),
                "a secret ({}…) reached the store or the output",
                &s[..4]
            );
        }
    }
}

/// The organisation's accounts and every enabled region. moto has no
/// Account API, so the proxy answers ListRegions in its documented shape.
fn organization_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let e = estate();
        let regions = json!({"Regions": [
            {"RegionName": "us-east-1", "RegionOptStatus": "ENABLED_BY_DEFAULT"},
            {"RegionName": "eu-west-1", "RegionOptStatus": "ENABLED_BY_DEFAULT"}
        ]});
        let proxy = Proxy::start(
            &e.moto.endpoint(),
            json!([{"match": "^POST /listRegions", "status": 200, "content_type": "application/json", "body": regions.to_string()}]),
            None,
        );
        let run = collect(
            &["aws-cloudtrail"],
            "organization = true\nrole_name = \"ExhibitReadOnly\"\nregions = [\"all\"]",
            &proxy.url,
        );
        assert!(
            proxy
                .journal()
                .iter()
                .any(|j| j["faulted"] == true && j["request"].as_str().unwrap().contains("listRegions")),
            "ListRegions was asked"
        );
        run
    })
}

#[test]
fn an_organisation_is_read_account_by_account_in_every_enabled_region() {
    let run = organization_run();
    assert_eq!(code(&run.out), 0, "{}", text(&run.out));
    let streams = run.ws.run(&["list", "--json"]);
    let listed = String::from_utf8_lossy(&streams.stdout).to_string();
    let org = &estate().seed["org_account"];
    let org = org.as_str().unwrap();
    for account in [ACCOUNT, org] {
        assert!(
            listed.contains(&format!("aws-cloudtrail/{account}")),
            "{account} missing: {listed}"
        );
    }
    assert!(!listed.contains("111111111111"), "not in the organisation");
    let pred = run.predicate(&format!("aws-cloudtrail/{ACCOUNT}"));
    assert_eq!(pred["source"]["regions"], json!(["eu-west-1", "us-east-1"]));
    let p = run.payload(&format!("aws-cloudtrail/{ACCOUNT}"));
    assert_eq!(named(&p["trails"], "name", "org-audit")["is_logging"], true);
    assert_eq!(run.payload(&format!("aws-cloudtrail/{org}"))["count"], 0);
}

#[test]
fn the_readonly_policy_has_exactly_the_actions_the_collectors_call() {
    let policy: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/aws/exhibit-readonly-policy.json")).unwrap(),
    )
    .unwrap();
    let allowed: BTreeSet<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let mut called = BTreeSet::new();
    for run in [main_run(), &accounts_run().0, organization_run()] {
        called.extend(run.actions());
    }
    assert!(called.len() > 40, "the journal was read: {called:?}");
    let missing: Vec<_> = called.difference(&allowed).collect();
    assert!(
        missing.is_empty(),
        "the collectors call actions the read-only policy lacks: {missing:?}"
    );
    let unused: Vec<_> = allowed.difference(&called).collect();
    assert!(
        unused.is_empty(),
        "the policy allows actions no collector calls: {unused:?}"
    );
    for a in &allowed {
        let op = a.split(':').nth(1).unwrap();
        assert!(
            ["Get", "List", "Describe"]
                .iter()
                .any(|p| op.starts_with(p))
                || a == "iam:GenerateCredentialReport",
            "{a} is not a read action"
        );
    }
}

/// An AWS error answer in the query protocol's XML.
fn query_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>test</RequestId></ErrorResponse>"
    )
}

#[test]
fn one_failing_api_makes_a_partial_record_that_names_it() {
    let e = estate();
    let proxy = Proxy::start(
        &e.moto.endpoint(),
        json!([{
            "match": "(?=[\\s\\S]*Action=GetLoginProfile)(?=[\\s\\S]*UserName=bob)",
            "status": 500,
            "body": query_error("InternalFailure", "injected failure"),
        }]),
        None,
    );
    let run = collect(&["aws-iam-users"], "max_attempts = 2", &proxy.url);
    assert_eq!(
        code(&run.out),
        1,
        "a partial record is a failed collection: {}",
        text(&run.out)
    );
    let stream = format!("aws-iam-users/{ACCOUNT}");
    let pred = run.predicate(&stream);
    assert_eq!(pred["status"], "partial", "{pred}");
    let error = pred["error"].as_str().unwrap();
    assert!(
        error.contains("user bob: login profile: iam:GetLoginProfile: InternalFailure: injected failure (HTTP 500)"),
        "{error}"
    );
    let p = run.payload(&stream);
    assert_eq!(
        user(&p, "bob")["console_access"],
        Value::Null,
        "unknown, not false"
    );
    assert_eq!(
        user(&p, "bob")["mfa_enabled"],
        false,
        "the rest of bob is kept"
    );
    assert_eq!(user(&p, "alice")["console_access"], true);
    let tries = proxy
        .journal()
        .iter()
        .filter(|j| j["faulted"] == true)
        .count();
    assert_eq!(tries, 2, "the SDK retried the 500 once (max_attempts = 2)");
}

#[test]
fn a_throttled_call_is_retried() {
    let e = estate();
    // Throttled once, then answered: the SDK's adaptive retries carry it
    // through. (A single call, and one retry: after a throttle, adaptive
    // retry paces the process's later calls to a crawl at first, seconds
    // each, which would make a long test of anything bigger.)
    let brief = Proxy::start(
        &e.moto.endpoint(),
        json!([{"match": "Action=GetAccountPasswordPolicy", "status": 400, "times": 1,
                "body": query_error("Throttling", "Rate exceeded")}]),
        None,
    );
    let run = collect(&["aws-iam-password-policy"], "max_attempts = 2", &brief.url);
    let pred = run.predicate(&format!("aws-iam-password-policy/{ACCOUNT}"));
    assert_eq!(pred["status"], "ok", "{pred}");
    assert_eq!(
        run.payload(&format!("aws-iam-password-policy/{ACCOUNT}"))["status"],
        "none set"
    );
    let calls: Vec<bool> = brief
        .journal()
        .iter()
        .filter(|j| {
            j["request"]
                .as_str()
                .unwrap()
                .contains("Action=GetAccountPasswordPolicy")
        })
        .map(|j| j["faulted"] == true)
        .collect();
    assert_eq!(calls, [true, false]);
}

#[test]
fn a_call_throttled_past_its_retries_is_a_failed_record() {
    let e = estate();
    // Throttled for good: the attempt ends, and the record says so.
    let endless = Proxy::start(
        &e.moto.endpoint(),
        json!([{"match": "Action=GetAccountPasswordPolicy", "status": 400,
                "body": query_error("Throttling", "Rate exceeded")}]),
        None,
    );
    let run = collect(
        &["aws-iam-password-policy"],
        "max_attempts = 2",
        &endless.url,
    );
    assert_eq!(code(&run.out), 1, "{}", text(&run.out));
    let pred = run.predicate(&format!("aws-iam-password-policy/{ACCOUNT}"));
    assert_eq!(pred["status"], "failed", "{pred}");
    let error = pred["error"].as_str().unwrap();
    assert!(
        error.contains("iam:GetAccountPasswordPolicy: throttled")
            && error.contains("Rate exceeded"),
        "{error}"
    );
    let journal = endless.journal();
    let tries = journal.iter().filter(|j| j["faulted"] == true).count();
    assert_eq!(tries, 2, "max_attempts = 2: {journal:#?}");
}

#[test]
fn the_example_config_is_valid() {
    let example = std::fs::read_to_string(root().join("config/aws.toml")).unwrap();
    let ws = Workspace::new(&example);
    let out = ws.run(&["config", "check"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let t = text(&out);
    for kind in moto::aws_kinds() {
        assert!(t.contains(kind), "config/aws.toml has no {kind}: {t}");
    }
}
