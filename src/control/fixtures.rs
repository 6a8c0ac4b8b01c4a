//! `exhibit controls test`: every control's fixtures, run like `opa test`.
//!
//! A fixtures file (`fixtures/<id>.json`) holds cases; each gives the
//! evaluation time, the input records (payloads trimmed from real
//! collections, with optional record metadata: status, error, collection
//! time, source), optional exceptions and reviews, and the expected state
//! and entities with findings. A case passes when the evaluation concludes
//! exactly that.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::State;
use super::attest::Review;
use super::evaluate::{Context, InputRecord, evaluate};
use super::exception::{Exception, RecordRef};
use super::library::{Library, LoadedControl};
use crate::evidence::record::{CollectorInfo, Status};
use crate::evidence::{canonical, sha256_hex};

/// A fixtures file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureFile {
    /// Where the payloads came from (collector, peer, scenario).
    #[serde(default)]
    pub provenance: Option<String>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it shows.
    pub name: String,
    /// The evaluation time.
    pub now: DateTime<Utc>,
    /// Records by input name.
    #[serde(default)]
    pub inputs: BTreeMap<String, Vec<FixtureRecord>>,
    /// Params merged over the control's.
    #[serde(default)]
    pub params: Option<Value>,
    /// Exceptions in force.
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    /// Verified reviews.
    #[serde(default)]
    pub reviews: Vec<Review>,
    /// `input.mapping`.
    #[serde(default)]
    pub mapping: Option<Value>,
    /// What the evaluation must conclude.
    pub expect: Expect,
}

/// An input record of a case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRecord {
    /// The payload.
    pub payload: Value,
    /// The record's status (default `ok`).
    #[serde(default)]
    pub status: Option<Status>,
    /// Its error.
    #[serde(default)]
    pub error: Option<String>,
    /// When it was collected (default: an hour before `now`).
    #[serde(default)]
    pub collected_at: Option<DateTime<Utc>>,
    /// Its stream (default `<input name>/fixture`).
    #[serde(default)]
    pub stream: Option<String>,
    /// Its source (default: `{}`, plus the definition for HTTP inputs).
    #[serde(default)]
    pub source: Option<Value>,
}

/// The expected conclusion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The state.
    pub state: State,
    /// The entities with findings (sorted), when given.
    #[serde(default)]
    pub entities: Option<Vec<String>>,
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// The control.
    pub control: String,
    /// The case.
    pub case: String,
    /// Whether the expectation held.
    pub passed: bool,
    /// What was expected and what came, when it did not hold.
    pub detail: Option<String>,
}

fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut m = b.clone();
            for (k, v) in o {
                let merged = m.get(k).map_or_else(|| v.clone(), |old| merge(old, v));
                m.insert(k.clone(), merged);
            }
            Value::Object(m)
        }
        _ => over.clone(),
    }
}

/// Runs one case against `c`.
pub fn run_case(c: &LoadedControl, case: &Case) -> CaseOutcome {
    let fail = |detail: String| CaseOutcome {
        control: c.control.id.clone(),
        case: case.name.clone(),
        passed: false,
        detail: Some(detail),
    };
    let mut records = Vec::new();
    for (name, list) in &case.inputs {
        let Some(spec) = c.control.inputs.iter().find(|s| &s.name == name) else {
            return fail(format!("the control has no input `{name}`"));
        };
        for (i, r) in list.iter().enumerate() {
            let mut source = r.source.clone().unwrap_or_else(|| serde_json::json!({}));
            if let (Some(d), Some(m)) = (&spec.definition, source.as_object_mut()) {
                m.entry("definition").or_insert(Value::String(d.clone()));
            }
            let bytes = canonical::to_vec(&r.payload).expect("JSON canonicalises");
            records.push(InputRecord::from_parts(
                RecordRef {
                    stream: r
                        .stream
                        .clone()
                        .unwrap_or_else(|| format!("{name}/fixture")),
                    seq: i as u64 + 1,
                    sha256: sha256_hex(&bytes),
                },
                CollectorInfo {
                    name: spec.collector.clone().unwrap_or_else(|| name.clone()),
                    kind: spec.kind.clone(),
                    version: crate::collect::VERSION.into(),
                },
                source,
                r.status.unwrap_or(Status::Ok),
                r.error.clone(),
                r.collected_at
                    .unwrap_or(case.now - chrono::Duration::hours(1)),
                &r.payload,
            ));
        }
    }
    let mut control = c.control.clone();
    if let Some(p) = &case.params {
        control.params = merge(&control.params, p);
    }
    let eval = evaluate(
        &control,
        &c.policy,
        &Context {
            at: case.now,
            records: &records,
            exceptions: &case.exceptions,
            reviews: &case.reviews,
            mapping: case.mapping.as_ref(),
        },
    );
    let mut entities: Vec<String> = eval.findings.iter().map(|f| f.entity.clone()).collect();
    entities.sort();
    entities.dedup();
    let state_ok = eval.state == case.expect.state;
    let entities_ok = case.expect.entities.as_ref().is_none_or(|want| {
        let mut want = want.clone();
        want.sort();
        want == entities
    });
    if state_ok && entities_ok {
        return CaseOutcome {
            control: c.control.id.clone(),
            case: case.name.clone(),
            passed: true,
            detail: None,
        };
    }
    fail(format!(
        "expected {}{}, got {} with findings for {:?}{}",
        case.expect.state,
        case.expect
            .entities
            .as_ref()
            .map(|e| format!(" with findings for {e:?}"))
            .unwrap_or_default(),
        eval.state,
        entities,
        eval.reason.map(|r| format!(" ({r})")).unwrap_or_default()
    ))
}

/// Runs every case of one control; a fixtures file that does not parse is
/// one failed case.
pub fn run_control(c: &LoadedControl) -> Vec<CaseOutcome> {
    let Some((path, text)) = &c.fixtures else {
        return Vec::new();
    };
    match serde_json::from_str::<FixtureFile>(text) {
        Ok(f) => f.cases.iter().map(|case| run_case(c, case)).collect(),
        Err(e) => vec![CaseOutcome {
            control: c.control.id.clone(),
            case: path.display().to_string(),
            passed: false,
            detail: Some(format!("the fixtures do not parse: {e}")),
        }],
    }
}

/// Runs the fixtures of every control of `lib`, in id order.
pub fn run(lib: &Library) -> Vec<CaseOutcome> {
    lib.iter().flat_map(run_control).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_control_passes_its_fixtures_with_a_pass_and_a_fail_case() {
        let lib = Library::builtin().unwrap();
        let outcomes = run(&lib);
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| {
                format!(
                    "{} / {}: {}",
                    o.control,
                    o.case,
                    o.detail.as_deref().unwrap_or("")
                )
            })
            .collect();
        assert!(failed.is_empty(), "{}", failed.join("\n"));
        for c in lib.iter() {
            let (_, text) = c.fixtures.as_ref().unwrap();
            let f: FixtureFile = serde_json::from_str(text).unwrap();
            let states: Vec<State> = f.cases.iter().map(|c| c.expect.state).collect();
            assert!(
                states.contains(&State::Pass),
                "{}: no passing case",
                c.control.id
            );
            assert!(
                states.contains(&State::Fail),
                "{}: no failing case",
                c.control.id
            );
            assert!(
                f.provenance.is_some(),
                "{}: say where the payloads came from",
                c.control.id
            );
        }
    }

    #[test]
    fn a_wrong_expectation_is_reported() {
        let lib = Library::builtin().unwrap();
        let c = lib.get("github-org-2fa").unwrap();
        let (_, text) = c.fixtures.as_ref().unwrap();
        let mut f: FixtureFile = serde_json::from_str(text).unwrap();
        let case = f
            .cases
            .iter_mut()
            .find(|c| c.expect.state == State::Fail)
            .unwrap();
        case.expect.state = State::Pass;
        let out = run_case(c, case);
        assert!(!out.passed);
        let detail = out.detail.unwrap();
        assert!(
            detail.starts_with("expected pass") && detail.contains("got fail"),
            "{detail}"
        );
    }
}
