//! The changes that matter for controls. Rules look at field names and
//! values rather than at one collector's payload shape, so that they apply
//! to every source that reports the same kind of fact (`mfa_enabled` from
//! AWS, `two_factor_disabled` from GitHub, `is_logging` from CloudTrail…).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::diff::{Change, ChangeKind};

use super::render::FailureGroup;

/// How much a highlight matters.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act today.
    High,
    /// Look at it.
    Medium,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
        }
    }
}

/// One thing the security lead should look at.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Highlight {
    /// A stable rule id, e.g. `mfa_disabled`.
    pub rule: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// What happened, in words.
    pub message: String,
}

fn last_key(path: &str) -> String {
    let seg = path.rsplit('.').next().unwrap_or(path);
    seg.split('[').next().unwrap_or(seg).to_ascii_lowercase()
}

/// The entity a path is about: `users[login=bob].mfa` → `users[login=bob]`.
fn entity(path: &str) -> &str {
    match path.rfind(']') {
        Some(i) => &path[..=i],
        None => path,
    }
}

/// The outermost entity of a path: `users[arn=x].attached_policies[…]` →
/// `users[arn=x]`.
fn outer_entity(path: &str) -> &str {
    match path.find(']') {
        Some(i) => &path[..=i],
        None => path,
    }
}

fn is_admin_flag(k: &str) -> bool {
    ["is_admin", "isadmin", "site_admin"].contains(&k)
}

fn is_mfa_key(k: &str) -> bool {
    k.contains("mfa") || k.contains("two_factor") || k.contains("2fa") || k.contains("2sv")
}

fn mentions_admin(v: &Value) -> bool {
    let s = v.to_string();
    s.contains("AdministratorAccess")
        || s.contains("\"is_admin\":true")
        || s.contains("\"isAdmin\":true")
        || v.get("role").is_some_and(is_privileged_role)
}

/// A role that administers what it belongs to: `admin`, `owner`
/// (GitHub's organisation owner), in any case.
fn is_privileged_role(v: &Value) -> bool {
    v.as_str().is_some_and(|r| {
        [
            "admin",
            "owner",
            "administrator",
            "super_admin",
            "superadmin",
        ]
        .contains(&r.to_ascii_lowercase().as_str())
    })
}

/// A Unix account with user id 0: root by another name.
fn is_uid_zero(v: &Value) -> bool {
    v.get("uid")
        .is_some_and(|u| u.as_u64() == Some(0) || u.as_str().is_some_and(|s| s.trim() == "0"))
}

/// The name an account goes by, when its object says.
fn who(v: &Value) -> Option<&str> {
    ["user", "user_name", "login", "name", "username"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
}

/// Whether a trail's own `is_logging` flag went from on to off among
/// `changes`: the regions it covered going dark are that same event.
fn a_trail_stopped(changes: &[Change]) -> bool {
    changes.iter().any(|c| {
        last_key(&c.path) == "is_logging"
            && c.before == Some(Value::Bool(true))
            && c.after == Some(Value::Bool(false))
    })
}

/// Highlights from the changes of the window.
pub fn from_changes(changes: &[Change]) -> Vec<Highlight> {
    let mut out = Vec::new();
    for c in changes {
        let key = last_key(&c.path);
        let path_lc = c.path.to_ascii_lowercase();
        let after = c.after.as_ref();
        let before = c.before.as_ref();
        match c.kind {
            ChangeKind::Changed if is_mfa_key(&key) => {
                let off = if key.contains("disabled") {
                    after == Some(&Value::Bool(true))
                } else {
                    after == Some(&Value::Bool(false))
                };
                if off {
                    out.push(Highlight {
                        rule: "mfa_disabled",
                        severity: Severity::High,
                        message: format!("MFA turned off: {}", entity(&c.path)),
                    });
                }
            }
            ChangeKind::Changed
                if ["is_logging", "logging", "islogging", "enabled"].contains(&key.as_str())
                    && after == Some(&Value::Bool(false))
                    && before == Some(&Value::Bool(true)) =>
            {
                // One event, one highlight: a multi-region trail that stops
                // also turns off `logging` in each region it covered.
                if key != "is_logging" && a_trail_stopped(changes) {
                    continue;
                }
                let mut message = format!("Stopped: {} went from on to off", c.path);
                if key == "is_logging" {
                    let dark: Vec<&str> = changes
                        .iter()
                        .filter(|r| {
                            last_key(&r.path) == "logging"
                                && r.before == Some(Value::Bool(true))
                                && r.after == Some(Value::Bool(false))
                        })
                        .map(|r| entity(&r.path))
                        .collect();
                    if !dark.is_empty() {
                        message.push_str(&format!(" (no longer logging: {})", dark.join(", ")));
                    }
                }
                out.push(Highlight {
                    rule: "logging_stopped",
                    severity: Severity::High,
                    message,
                });
            }
            ChangeKind::Changed
                if key == "role"
                    && after.is_some_and(is_privileged_role)
                    && !before.is_some_and(is_privileged_role) =>
            {
                out.push(Highlight {
                    rule: "new_admin",
                    severity: Severity::High,
                    message: format!(
                        "New administrator access: {} is now {}",
                        outer_entity(&c.path),
                        after.map(|v| v.to_string()).unwrap_or_default()
                    ),
                });
            }
            ChangeKind::Removed
                if path_lc.contains("protection") || path_lc.contains("ruleset") =>
            {
                out.push(Highlight {
                    rule: "protection_removed",
                    severity: Severity::High,
                    message: format!("Branch protection or ruleset removed: {}", c.path),
                });
            }
            ChangeKind::Changed
                if key == "protected"
                    && before == Some(&Value::Bool(true))
                    && after == Some(&Value::Bool(false)) =>
            {
                out.push(Highlight {
                    rule: "protection_removed",
                    severity: Severity::High,
                    message: format!("Branch protection removed: {}", entity(&c.path)),
                });
            }
            // A list of unprotected names says what the entities' own
            // `protected` flags say; the flag names the entity, so the list
            // speaks only for names no flag covers.
            ChangeKind::Added
                if path_lc.ends_with("unprotected[]")
                    && !after.and_then(Value::as_str).is_some_and(|name| {
                        changes.iter().any(|f| {
                            last_key(&f.path) == "protected"
                                && f.after == Some(Value::Bool(false))
                                && entity(&f.path).contains(&format!("={name}]"))
                        })
                    }) =>
            {
                out.push(Highlight {
                    rule: "protection_removed",
                    severity: Severity::High,
                    message: format!(
                        "Now unprotected: {}",
                        after.map(|v| v.to_string()).unwrap_or_default()
                    ),
                });
            }
            ChangeKind::Changed
                if is_admin_flag(&key)
                    && before != Some(&Value::Bool(true))
                    && after == Some(&Value::Bool(true)) =>
            {
                out.push(Highlight {
                    rule: "new_admin",
                    severity: Severity::High,
                    message: format!("New administrator access: {}", outer_entity(&c.path)),
                });
            }
            _ => {}
        }
        if c.kind == ChangeKind::Added && after.is_some_and(is_uid_zero) {
            out.push(Highlight {
                rule: "new_privileged_account",
                severity: Severity::High,
                message: format!(
                    "New account with uid 0 (root privileges): {}{}",
                    after
                        .and_then(who)
                        .map(|w| format!("{w} at "))
                        .unwrap_or_default(),
                    entity(&c.path)
                ),
            });
        }
        if c.kind == ChangeKind::Changed
            && key == "uid"
            && after.is_some_and(|u| u.as_u64() == Some(0) || u.as_str() == Some("0"))
        {
            out.push(Highlight {
                rule: "new_privileged_account",
                severity: Severity::High,
                message: format!("Account given uid 0 (root privileges): {}", entity(&c.path)),
            });
        }
        if c.kind == ChangeKind::Added && after.is_some_and(mentions_admin) {
            out.push(Highlight {
                rule: "new_admin",
                severity: Severity::High,
                message: format!("New administrator access: {}", outer_entity(&c.path)),
            });
        }
        if c.kind == ChangeKind::Added
            && after.is_some_and(|v| v.is_object())
            && after.is_some_and(|v| {
                v.as_object()
                    .unwrap()
                    .iter()
                    .any(|(k, x)| is_mfa_key(&k.to_ascii_lowercase()) && mfa_off(k, x))
            })
        {
            out.push(Highlight {
                rule: "new_without_mfa",
                severity: Severity::Medium,
                message: format!("New, without MFA: {}", entity(&c.path)),
            });
        }
    }
    // One entity granted admin rights shows once, however many of its
    // fields say so (a policy attached and its `is_admin` flag).
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert((h.rule, h.message.clone())));
    out
}

fn mfa_off(key: &str, v: &Value) -> bool {
    if key.to_ascii_lowercase().contains("disabled") {
        v == &Value::Bool(true)
    } else {
        v == &Value::Bool(false)
    }
}

/// Highlights from the latest snapshot itself: facts that matter whether or
/// not they changed tonight.
pub fn from_snapshot(latest: &Value, now: DateTime<Utc>) -> Vec<Highlight> {
    let mut out = Vec::new();
    let mut old_keys = Vec::new();
    let mut unapproved = Vec::new();
    walk(latest, "", &mut |path, obj| {
        let active = obj
            .get("status")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("active"));
        let created = ["create_date", "created_at", "CreateDate", "created"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(Value::as_str))
            .and_then(|s| s.parse::<DateTime<Utc>>().ok());
        if active
            && path.to_ascii_lowercase().contains("key")
            && let Some(c) = created
        {
            let days = (now - c).num_days();
            if days > 90 {
                old_keys.push(format!("{} ({days} days)", path.trim_start_matches('.')));
            }
        }
        let flagged = obj
            .get("flags")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == "merged_without_independent_approval"));
        if obj.get("independent_approval") == Some(&Value::Bool(false)) || flagged {
            let n = obj.get("number").map(|n| n.to_string()).unwrap_or_default();
            let repo = obj.get("repository").and_then(Value::as_str).unwrap_or("");
            unapproved.push(format!("{repo}#{n}").trim_start_matches('#').to_string());
        }
    });
    if !old_keys.is_empty() {
        out.push(Highlight {
            rule: "old_access_key",
            severity: Severity::Medium,
            message: format!(
                "Active access keys older than 90 days: {}",
                old_keys.join(", ")
            ),
        });
    }
    if !unapproved.is_empty() {
        out.push(Highlight {
            rule: "unapproved_merge",
            severity: Severity::High,
            message: format!(
                "Merged without independent approval: {}",
                unapproved.join(", ")
            ),
        });
    }
    out
}

fn walk(v: &Value, path: &str, f: &mut dyn FnMut(&str, &serde_json::Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            f(path, m);
            for (k, x) in m {
                walk(x, &format!("{path}.{k}"), f);
            }
        }
        Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                walk(x, &format!("{path}[{i}]"), f);
            }
        }
        _ => {}
    }
}

impl Highlight {
    /// Failed, partial or missed collections that went wrong the same way,
    /// once, with their count.
    pub fn failures(g: &FailureGroup<'_>) -> Self {
        let what = if g.seqs.len() == 1 {
            format!("Collection #{} {}", g.seqs[0], g.status.as_str())
        } else {
            format!(
                "{} collections {} ({})",
                g.seqs.len(),
                g.status.as_str(),
                g.seqs
                    .iter()
                    .map(|s| format!("#{s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Highlight {
            rule: "collection_failed",
            severity: Severity::High,
            message: format!("{what}: {}", g.error.unwrap_or("")),
        }
    }

    /// Scheduled slots that did not run.
    pub fn missed(n: usize) -> Self {
        Highlight {
            rule: "missed_slots",
            severity: Severity::Medium,
            message: format!("{n} scheduled collection(s) did not run in the window"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_fire_on_the_facts_they_name() {
        let before = json!({"users": [{"arn": "u/alice", "mfa_enabled": true}], "trails": [{"name": "main", "is_logging": true}], "branches": {"main": {"protection": {"required_reviews": 1}}}});
        let after = json!({"users": [{"arn": "u/alice", "mfa_enabled": false}, {"arn": "u/eve", "mfa_enabled": false, "policies": ["AdministratorAccess"]}], "trails": [{"name": "main", "is_logging": false}], "branches": {"main": {}}});
        let h = from_changes(&crate::diff::diff(&before, &after, &[]));
        let rules: Vec<&str> = h.iter().map(|h| h.rule).collect();
        for r in [
            "mfa_disabled",
            "logging_stopped",
            "protection_removed",
            "new_admin",
            "new_without_mfa",
        ] {
            assert!(rules.contains(&r), "{r} missing from {rules:?}");
        }
        assert!(
            h.iter()
                .any(|h| h.message == "MFA turned off: users[arn=u/alice]")
        );
        assert!(from_changes(&crate::diff::diff(&before, &before, &[])).is_empty());
    }

    #[test]
    fn snapshot_rules() {
        let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let s = json!({
            "users": [{"user_name": "bob", "access_keys": [
                {"id": "AKIA1", "status": "Active", "create_date": "2026-01-01T00:00:00Z"},
                {"id": "AKIA2", "status": "Inactive", "create_date": "2025-01-01T00:00:00Z"},
                {"id": "AKIA3", "status": "Active", "create_date": "2026-05-01T00:00:00Z"}
            ]}],
            "pull_requests": [{"repository": "acme/app", "number": 7, "independent_approval": false}]
        });
        let h = from_snapshot(&s, now);
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(
            h[0].message.contains("access_keys[0]") && !h[0].message.contains("access_keys[1]"),
            "{h:?}"
        );
        assert!(h[1].message.contains("acme/app#7"), "{h:?}");
    }

    #[test]
    fn a_stopped_multi_region_trail_is_one_highlight() {
        let before = json!({
            "trails": [{"arn": "arn:t/main", "is_logging": true, "is_multi_region_trail": true}],
            "regions": {"us-east-1": {"logging": true}, "eu-west-1": {"logging": true}},
        });
        let after = json!({
            "trails": [{"arn": "arn:t/main", "is_logging": false, "is_multi_region_trail": true}],
            "regions": {"us-east-1": {"logging": false}, "eu-west-1": {"logging": false}},
        });
        let h = from_changes(&crate::diff::diff(&before, &after, &[&["arn"]]));
        assert_eq!(h.len(), 1, "{h:#?}");
        assert_eq!(h[0].rule, "logging_stopped");
        assert!(h[0].message.contains("trails[arn=arn:t/main]"), "{h:?}");
        assert!(
            h[0].message.contains("regions.eu-west-1")
                && h[0].message.contains("regions.us-east-1"),
            "{h:?}"
        );
    }

    #[test]
    fn a_new_uid_0_account_or_owner_is_high() {
        let before = json!({"output": [{"user": "root", "uid": 0}, {"user": "alice", "uid": 1000}], "members": [{"login": "bob", "role": "member"}]});
        let after = json!({"output": [{"user": "root", "uid": 0}, {"user": "alice", "uid": 1000}, {"user": "toor", "uid": 0}], "members": [{"login": "bob", "role": "owner"}, {"login": "eve", "role": "admin"}]});
        let h = from_changes(&crate::diff::diff(&before, &after, &[]));
        let high: Vec<(&str, &str)> = h
            .iter()
            .filter(|h| h.severity == Severity::High)
            .map(|h| (h.rule, h.message.as_str()))
            .collect();
        assert!(
            high.iter()
                .any(|(r, m)| *r == "new_privileged_account" && m.contains("toor")),
            "{h:#?}"
        );
        assert!(
            high.iter()
                .any(|(r, m)| *r == "new_admin" && m.contains("bob") && m.contains("owner")),
            "{h:#?}"
        );
        assert!(
            high.iter()
                .any(|(r, m)| *r == "new_admin" && m.contains("eve")),
            "{h:#?}"
        );
    }

    #[test]
    fn rules_fire_on_flags_that_flip() {
        let before = json!({
            "users": [{"arn": "u/svc", "is_admin": false, "attached_policies": []}],
            "unprotected": ["web"],
            "repositories": [{"repository": "api", "protected": true}, {"repository": "web", "protected": false}],
        });
        let after = json!({
            "users": [{"arn": "u/svc", "is_admin": true, "attached_policies": [
                {"policy_name": "AdministratorAccess", "policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"}]}],
            "unprotected": ["api", "web", "new"],
            "repositories": [{"repository": "api", "protected": false}, {"repository": "web", "protected": false}],
        });
        let h = from_changes(&crate::diff::diff(&before, &after, &[]));
        let messages: Vec<&str> = h.iter().map(|h| h.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "New administrator access: users[arn=u/svc]",
                "Now unprotected: \"new\"",
                "Branch protection removed: repositories[repository=api]",
            ],
            "one highlight per entity; the list speaks only where no flag does"
        );
    }
}
