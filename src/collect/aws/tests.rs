//! Unit tests of the AWS collectors' settings, and of the payload
//! conventions the report's highlights and the semantic diff rely on. The
//! collectors themselves are tested against moto in `tests/aws.rs`.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::collect::instance::{CollectorInstance, build_all};
use crate::config::{ConfigError, parse};

fn load(settings: &str) -> Result<Vec<CollectorInstance>, ConfigError> {
    build_all(&parse(
        Path::new("exhibit.toml"),
        format!(
            "[[collectors]]\nname = \"u\"\nkind = \"aws-iam-users\"\nschedule = \"@daily\"\n{settings}\n"
        ),
    )?)
}

fn error(settings: &str) -> ConfigError {
    load(settings).expect_err("the settings are refused")
}

#[test]
fn valid_settings_load() {
    load("").unwrap();
    load("regions = [\"all\"]\nrole_arn = \"arn:aws:iam::123456789012:role/Exhibit\"\nexternal_id = \"x\"").unwrap();
    load("accounts = [\"111111111111\"]\nrole_name = \"ExhibitReadOnly\"").unwrap();
    load("organization = true\nrole_name = \"ExhibitReadOnly\"\nexclude_accounts = [\"222222222222\"]").unwrap();
}

#[test]
fn bad_settings_are_located_and_explained() {
    let e = error("acounts = [\"111111111111\"]");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("unknown field `acounts`"), "{e}");

    let e = error("accounts = [\"1111\"]\nrole_name = \"R\"");
    assert_eq!(e.key.as_deref(), Some("collectors[0].accounts"), "{e}");
    assert!(e.message.contains("12-digit"), "{e}");

    let e = error("accounts = [\"111111111111\"]");
    assert!(e.message.contains("`role_name` is missing"), "{e}");

    let e = error("accounts = [\"111111111111\"]\norganization = true\nrole_name = \"R\"");
    assert!(e.message.contains("not both"), "{e}");

    let e = error("role_name = \"R\"");
    assert!(e.message.contains("give `role_arn`"), "{e}");

    let e = error("role_arn = \"arn:aws:iam::123:user/bob\"");
    assert_eq!(e.key.as_deref(), Some("collectors[0].role_arn"), "{e}");

    let e = error("regions = [\"all\", \"us-east-1\"]");
    assert!(e.message.contains("stands alone"), "{e}");

    let e = error("regions = [\"US East\"]");
    assert!(e.message.contains("not a region name"), "{e}");

    let e = error("external_id = \"x\"");
    assert!(e.message.contains("needs a role"), "{e}");

    let e = error("concurrency = 0");
    assert_eq!(e.key.as_deref(), Some("collectors[0].concurrency"), "{e}");
}

#[test]
fn every_kind_is_registered_with_its_criteria() {
    for (kind, criterion) in [
        ("aws-iam-users", "CC6.1"),
        ("aws-iam-credential-report", "CC6.2"),
        ("aws-iam-password-policy", "CC6.1"),
        ("aws-iam-roles", "CC6.3"),
        ("aws-iam-policies", "CC6.3"),
        ("aws-iam-groups", "CC6.2"),
        ("aws-account-summary", "CC6.1"),
        ("aws-s3-buckets", "CC6.7"),
        ("aws-cloudtrail", "CC7.2"),
        ("aws-monitoring", "CC7.2"),
    ] {
        let spec = crate::collect::kind(kind).unwrap_or_else(|| panic!("{kind} is not registered"));
        assert!(
            spec.criteria.contains(&criterion),
            "{kind}: {:?}",
            spec.criteria
        );
        assert_eq!(spec.secrets, ["external_id"]);
    }
}

#[test]
fn aws_payloads_drive_the_report_highlights() {
    use crate::report::highlights::{from_changes, from_snapshot};
    // The shapes the collectors emit (tests/aws.rs asserts them on moto).
    let before = json!({
        "users": [{"user_name": "alice", "arn": "arn:aws:iam::1:user/alice", "mfa_enabled": true,
                   "attached_policies": []}],
        "trails": [{"name": "org-audit", "arn": "arn:aws:cloudtrail:us-east-1:1:trail/org-audit", "is_logging": true}],
    });
    let after = json!({
        "users": [
            {"user_name": "alice", "arn": "arn:aws:iam::1:user/alice", "mfa_enabled": false,
             "attached_policies": [{"policy_name": "AdministratorAccess", "policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"}]},
            {"user_name": "mallory", "arn": "arn:aws:iam::1:user/mallory", "mfa_enabled": false,
             "attached_policies": []}
        ],
        "trails": [{"name": "org-audit", "arn": "arn:aws:cloudtrail:us-east-1:1:trail/org-audit", "is_logging": false}],
    });
    let rules: Vec<&str> = from_changes(&crate::diff::diff(
        &before,
        &after,
        crate::collect::identities("aws-iam-users"),
    ))
    .iter()
    .map(|h| h.rule)
    .collect();
    for r in [
        "mfa_disabled",
        "new_admin",
        "logging_stopped",
        "new_without_mfa",
    ] {
        assert!(rules.contains(&r), "{r} missing from {rules:?}");
    }
    let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
    let keys = json!({"users": [{"user_name": "bob", "access_keys": [
        {"access_key_id": "AKIA1", "status": "Active", "create_date": "2025-01-01T00:00:00Z", "last_used_date": null},
        {"access_key_id": "AKIA2", "status": "Inactive", "create_date": "2025-01-01T00:00:00Z", "last_used_date": null}
    ]}]});
    let h = from_snapshot(&keys, now);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].rule, "old_access_key");
    assert!(h[0].message.contains("access_keys[0]"), "{h:?}");
}
