//! Rego policies, compiled once with `regorus` and evaluated under one
//! contract (documented in `docs/controls.md`):
//!
//! - the policy is one module of any package; Rego v1 syntax;
//! - it reads `input.inputs.<name>` (a list of `{record, payload}`, one per
//!   selected stream), `input.params`, `input.now` / `input.now_ns`,
//!   `input.control`, `input.attestations` and `input.mapping`;
//! - it must define `findings`, a set of `{"entity": string, "reason":
//!   string}` objects (more keys are kept as details); it may define
//!   `not_applicable` (`true` or a reason string) and, for event controls,
//!   `occurrences`, a set of objects with a string `id` and an RFC 3339 `at`.
//!
//! Anything else — a parse error, a builtin error, a `findings` that is
//! undefined or has the wrong shape — is an error, never a pass.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::definition::PolicySource;

/// A compiled policy.
#[derive(Clone)]
pub struct Policy {
    engine: regorus::Engine,
    package: String,
    not_applicable: bool,
    occurrences: bool,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("package", &self.package)
            .finish_non_exhaustive()
    }
}

/// One finding as the policy states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFinding {
    /// The entity at fault (a user, a bucket, a pull request id).
    pub entity: String,
    /// Why.
    pub reason: String,
    /// Further keys of the finding object, kept as they are.
    pub details: Map<String, Value>,
}

/// One occurrence an event policy lists.
#[derive(Debug, Clone, PartialEq)]
pub struct RawOccurrence {
    /// Its stable id.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Further keys (author, approvers, checks…).
    pub attributes: Map<String, Value>,
}

/// What a policy concluded.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The findings, sorted and without duplicates.
    pub findings: Vec<RawFinding>,
    /// Why the control does not apply, when the policy says so.
    pub not_applicable: Option<String>,
    /// The occurrences, for policies that define them, in time order.
    pub occurrences: Option<Vec<RawOccurrence>>,
}

/// Builds regorus values from JSON; payloads are converted once and shared
/// by every control that reads them.
pub fn to_rego(value: &Value) -> regorus::Value {
    regorus::Value::from(value.clone())
}

/// An object of regorus values.
pub fn rego_object(entries: Vec<(&str, regorus::Value)>) -> regorus::Value {
    let map: std::collections::BTreeMap<regorus::Value, regorus::Value> = entries
        .into_iter()
        .map(|(k, v)| (regorus::Value::from(k), v))
        .collect();
    regorus::Value::from(map)
}

impl Policy {
    /// Parses and prepares the policy; errors name the file and line.
    pub fn compile(source: &PolicySource) -> Result<Policy, String> {
        let mut engine = regorus::Engine::new();
        let path = source.path.display().to_string();
        let package = engine
            .add_policy(path.clone(), source.text.clone())
            .map_err(|e| format!("{e:#}"))?;
        let declared = |engine: &regorus::Engine, rule: &str| {
            engine
                .has_declared_rule_rooted_at(&path, rule)
                .map_err(|e| format!("{path}: {e:#}"))
        };
        if !declared(&engine, "findings")? {
            return Err(format!(
                "{path}: the policy defines no `findings` (a set of {{\"entity\", \"reason\"}} objects)"
            ));
        }
        let not_applicable = declared(&engine, "not_applicable")?;
        let occurrences = declared(&engine, "occurrences")?;
        // Prepares the interpreter (rule checks) once, so that every clone
        // starts ready.
        engine
            .eval_query("true".to_string(), false)
            .map_err(|e| format!("{e:#}"))?;
        Ok(Policy {
            engine,
            package,
            not_applicable,
            occurrences,
        })
    }

    /// Whether the policy defines `occurrences`.
    pub fn has_occurrences(&self) -> bool {
        self.occurrences
    }

    /// Evaluates the policy over `input`.
    pub fn evaluate(&self, input: regorus::Value) -> Result<Output, String> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        let mut rule = |name: &str| {
            let v = engine
                .eval_rule(format!("{}.{name}", self.package))
                .map_err(|e| format!("evaluating `{name}`: {e:#}"))?;
            if v == regorus::Value::Undefined {
                return Ok(None);
            }
            serde_json::to_value(&v)
                .map(Some)
                .map_err(|e| format!("`{name}` is not JSON: {e}"))
        };
        let findings = rule("findings")?.ok_or_else(|| {
            "`findings` is undefined: define it as a set, empty when nothing is wrong".to_string()
        })?;
        let findings = parse_findings(findings)?;
        let not_applicable = if self.not_applicable {
            match rule("not_applicable")? {
                None | Some(Value::Bool(false)) => None,
                Some(Value::Bool(true)) => Some("the policy declared it not applicable".into()),
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                Some(other) => {
                    return Err(format!(
                        "`not_applicable` must be true or a reason string, not {other}"
                    ));
                }
            }
        } else {
            None
        };
        if not_applicable.is_some() && !findings.is_empty() {
            return Err(
                "the policy says both `not_applicable` and has findings; one of them is wrong"
                    .into(),
            );
        }
        let occurrences = if self.occurrences {
            Some(parse_occurrences(
                rule("occurrences")?.unwrap_or(Value::Array(vec![])),
            )?)
        } else {
            None
        };
        Ok(Output {
            findings,
            not_applicable,
            occurrences,
        })
    }
}

fn parse_findings(v: Value) -> Result<Vec<RawFinding>, String> {
    let Value::Array(items) = v else {
        return Err(format!("`findings` must be a set of objects, not {v}"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(mut m) = item else {
            return Err(format!(
                "a finding must be an object with `entity` and `reason`, not {item}"
            ));
        };
        let mut text = |key: &str| match m.remove(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(Value::Number(n)) if key == "entity" => Ok(n.to_string()),
            other => Err(format!(
                "a finding's `{key}` must be a non-empty string, not {}",
                other.map_or("nothing".to_string(), |v| v.to_string())
            )),
        };
        let entity = text("entity")?;
        let reason = text("reason")?;
        out.push(RawFinding {
            entity,
            reason,
            details: m,
        });
    }
    out.sort_by(|a, b| (&a.entity, &a.reason).cmp(&(&b.entity, &b.reason)));
    out.dedup_by(|a, b| a.entity == b.entity && a.reason == b.reason);
    Ok(out)
}

fn parse_occurrences(v: Value) -> Result<Vec<RawOccurrence>, String> {
    let Value::Array(items) = v else {
        return Err(format!("`occurrences` must be a set of objects, not {v}"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(mut m) = item else {
            return Err(format!("an occurrence must be an object, not {item}"));
        };
        let id = match m.remove("id") {
            Some(Value::String(s)) if super::population::is_occurrence_id(&s) => s,
            other => {
                return Err(format!(
                    "an occurrence's `id` must be a string without quotes, backslashes or line breaks, not {}",
                    other.map_or("nothing".to_string(), |v| v.to_string())
                ));
            }
        };
        let at = match m.remove("at") {
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("occurrence `{id}`: `at` is not RFC 3339 ({s}): {e}"))?,
            other => {
                return Err(format!(
                    "occurrence `{id}`: `at` must be an RFC 3339 time, not {}",
                    other.map_or("nothing".to_string(), |v| v.to_string())
                ));
            }
        };
        out.push(RawOccurrence {
            id,
            at,
            attributes: m,
        });
    }
    out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    if let Some(w) = out.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(format!("two occurrences have the id `{}`", w[0].id));
    }
    Ok(out)
}

/// A compiled policy shared between threads.
pub type SharedPolicy = Arc<Policy>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn compile(text: &str) -> Result<Policy, String> {
        Policy::compile(&PolicySource {
            path: PathBuf::from("t.rego"),
            text: text.into(),
            sha256: String::new(),
        })
    }

    fn run(text: &str, input: Value) -> Result<Output, String> {
        compile(text)?.evaluate(to_rego(&input))
    }

    #[test]
    fn findings_are_read_sorted_and_deduplicated() {
        let p = r#"package t
findings contains {"entity": u.name, "reason": "no MFA", "arn": u.arn} if {
    some u in input.users
    not u.mfa
}"#;
        let out = run(
            p,
            json!({"users": [
                {"name": "bob", "arn": "b", "mfa": false},
                {"name": "alice", "arn": "a", "mfa": true},
                {"name": "al", "arn": "c"}
            ]}),
        )
        .unwrap();
        let e: Vec<_> = out.findings.iter().map(|f| f.entity.as_str()).collect();
        assert_eq!(e, ["al", "bob"]);
        assert_eq!(out.findings[1].details["arn"], "b");
        // No match is an empty set, not an undefined rule.
        let out = run(p, json!({"users": []})).unwrap();
        assert!(out.findings.is_empty());
    }

    #[test]
    fn contract_violations_are_errors() {
        assert!(
            compile("package t\nallow := true")
                .unwrap_err()
                .contains("no `findings`")
        );
        assert!(compile("package t\nfindings contains x if {").is_err());
        let e = run("package t\nfindings := 3", json!({})).unwrap_err();
        assert!(e.contains("must be a set"), "{e}");
        let e = run("package t\nfindings := {\"x\"}", json!({})).unwrap_err();
        assert!(e.contains("must be an object"), "{e}");
        let e = run("package t\nfindings := {{\"entity\": \"x\"}}", json!({})).unwrap_err();
        assert!(e.contains("`reason`"), "{e}");
        // A rule whose body does not hold leaves `findings` undefined.
        let e = run("package t\nfindings := set() if input.never", json!({})).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
        // A builtin error is an error, not an empty result.
        let e = run(
            "package t\nfindings contains {\"entity\": \"x\", \"reason\": \"r\"} if {\n  time.parse_rfc3339_ns(input.t) > 0\n}",
            json!({"t": "not a time"}),
        )
        .unwrap_err();
        assert!(e.contains("findings"), "{e}");
    }

    #[test]
    fn not_applicable_and_occurrences() {
        let out = run(
            "package t\nfindings := set()\nnot_applicable := \"no console users\" if count(input.users) == 0",
            json!({"users": []}),
        )
        .unwrap();
        assert_eq!(out.not_applicable.as_deref(), Some("no console users"));
        let e = run(
            "package t\nfindings := {{\"entity\": \"x\", \"reason\": \"r\"}}\nnot_applicable := true",
            json!({}),
        )
        .unwrap_err();
        assert!(e.contains("both"), "{e}");

        let p = r#"package t
occurrences contains {"id": pr.id, "at": pr.merged_at, "author": pr.author} if some pr in input.prs
findings contains {"entity": pr.id, "reason": "self-approved"} if {
    some pr in input.prs
    pr.author == pr.approver
}"#;
        let out = run(
            p,
            json!({"prs": [
                {"id": "r#2", "merged_at": "2025-01-02T00:00:00Z", "author": "a", "approver": "a"},
                {"id": "r#1", "merged_at": "2025-01-01T00:00:00+01:00", "author": "a", "approver": "b"}
            ]}),
        )
        .unwrap();
        let occ = out.occurrences.unwrap();
        assert_eq!(occ[0].id, "r#1");
        assert_eq!(occ[0].at.to_rfc3339(), "2024-12-31T23:00:00+00:00");
        assert_eq!(occ[1].attributes["author"], "a");
        assert_eq!(out.findings[0].entity, "r#2");
        let e = run(
            p,
            json!({"prs": [{"id": "x", "merged_at": "yesterday", "author": "a", "approver": "b"}]}),
        )
        .unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn policies_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Policy>();
    }
}
