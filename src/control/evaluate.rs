//! One evaluation of a control at one time: which input records it judges,
//! whether they are fit to judge (present, fresh, complete), what the policy
//! concludes, which findings exceptions cover, and whether the required
//! review was signed. The order of those checks is what guarantees that no
//! error and no missing evidence is ever read as a pass.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::State;
use super::attest::Review;
use super::definition::{Control, ControlKind, InputSpec};
use super::exception::{self, Exception, RecordRef};
use super::finding::{ExceptionNote, Finding};
use super::period::{Period, review_due};
use super::policy::{Policy, RawFinding, rego_object, to_rego};
use crate::evidence::record::{CollectorInfo, RecordPredicate, Status};

/// A record offered to a control as input. The payload is converted for the
/// policy engine once, and shared by every control that reads it.
#[derive(Debug, Clone)]
pub struct InputRecord {
    /// Where it is.
    pub record: RecordRef,
    /// The collector that wrote it.
    pub collector: CollectorInfo,
    /// Its source identity.
    pub source: Value,
    /// The collection outcome.
    pub status: Status,
    /// The error, when failed or partial.
    pub error: Option<String>,
    /// When the collection finished.
    pub finished_at: DateTime<Utc>,
    payload: regorus::Value,
}

impl InputRecord {
    /// An input from a stored record's predicate and payload.
    pub fn new(record: RecordRef, predicate: &RecordPredicate, payload: &Value) -> Self {
        InputRecord {
            record,
            collector: predicate.collector.clone(),
            source: predicate.source.clone(),
            status: predicate.status,
            error: predicate.error.clone(),
            finished_at: predicate.finished_at,
            payload: to_rego(payload),
        }
    }

    /// An input from its parts (fixtures, benchmarks).
    pub fn from_parts(
        record: RecordRef,
        collector: CollectorInfo,
        source: Value,
        status: Status,
        error: Option<String>,
        finished_at: DateTime<Utc>,
        payload: &Value,
    ) -> Self {
        InputRecord {
            record,
            collector,
            source,
            status,
            error,
            finished_at,
            payload: to_rego(payload),
        }
    }

    /// Whether the input `spec` selects this record's stream.
    pub fn matches(&self, spec: &InputSpec) -> bool {
        spec.selects(&self.record.stream, &self.collector, &self.source)
    }

    fn document(&self) -> regorus::Value {
        let meta = json!({
            "stream": self.record.stream,
            "seq": self.record.seq,
            "sha256": self.record.sha256,
            "collected_at": self.finished_at,
            "status": self.status.as_str(),
            "error": self.error,
            "collector": {"name": self.collector.name, "kind": self.collector.kind},
            "source": self.source,
        });
        rego_object(vec![
            ("record", to_rego(&meta)),
            ("payload", self.payload.clone()),
        ])
    }

    /// Why this record cannot be judged for `spec`, if it cannot.
    fn unfit(
        &self,
        spec: &InputSpec,
        at: DateTime<Utc>,
        freshness: chrono::Duration,
    ) -> Option<String> {
        let label = self.record.label();
        if at - self.finished_at > freshness {
            return Some(format!(
                "input `{}`: the newest record {label} ({}) is older than the freshness window",
                spec.name,
                self.finished_at.to_rfc3339()
            ));
        }
        match self.status {
            Status::Ok => None,
            Status::Failed | Status::Missed => Some(format!(
                "input `{}`: record {label} {}: {}",
                spec.name,
                self.status.as_str(),
                self.error.as_deref().unwrap_or("no error recorded")
            )),
            Status::Partial => {
                let failures: Vec<&str> = self
                    .error
                    .as_deref()
                    .map(|e| e.strip_prefix("incomplete: ").unwrap_or(e))
                    .map(|e| e.split("; ").collect())
                    .unwrap_or_default();
                let needed: Vec<&&str> = failures
                    .iter()
                    .filter(|f| !spec.tolerate.iter().any(|t| f.contains(t.as_str())))
                    .collect();
                if failures.is_empty() || !needed.is_empty() {
                    Some(format!(
                        "input `{}`: record {label} is incomplete: {}",
                        spec.name,
                        self.error.as_deref().unwrap_or("no error recorded")
                    ))
                } else {
                    None
                }
            }
        }
    }
}

/// What a control is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The time of the evaluation: records after it are not seen.
    pub at: DateTime<Utc>,
    /// Candidate input records (any number per stream; the newest of each
    /// selected stream at `at` is judged).
    pub records: &'a [InputRecord],
    /// Exceptions of this control (others are ignored).
    pub exceptions: &'a [Exception],
    /// Verified reviews of this control.
    pub reviews: &'a [Review],
    /// The identity mapping (`input.mapping`), when the control has one.
    pub mapping: Option<&'a Value>,
}

/// An occurrence of an event control, judged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OccurrenceResult {
    /// Its stable id.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `pass`, `fail` or `excepted`.
    pub state: State,
    /// Further attributes from the policy.
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// The control id.
    pub control: String,
    /// When it was evaluated.
    pub at: DateTime<Utc>,
    /// The state.
    pub state: State,
    /// Why, for `error`, `not_evaluated` and `not_applicable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The findings, open and excepted.
    pub findings: Vec<Finding>,
    /// The occurrences (event controls).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub occurrences: Vec<OccurrenceResult>,
    /// Every record judged (inputs and reviews), sorted.
    pub judged: Vec<RecordRef>,
    /// SHA-256 of the policy text.
    pub policy_sha256: String,
}

impl Evaluation {
    /// The findings no exception covers.
    pub fn open_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.is_open())
    }
}

/// The newest record of each stream `spec` selects, as seen at `at`.
pub fn select<'a>(
    spec: &InputSpec,
    records: &'a [InputRecord],
    at: DateTime<Utc>,
) -> Vec<&'a InputRecord> {
    let mut newest: BTreeMap<&str, &InputRecord> = BTreeMap::new();
    for r in records {
        // A gap record says slots were missed; it is no snapshot, and the
        // freshness window catches the missing collection.
        if r.finished_at > at || r.status == Status::Missed || !r.matches(spec) {
            continue;
        }
        let slot = newest.entry(r.record.stream.as_str()).or_insert(r);
        if (r.finished_at, r.record.seq) > (slot.finished_at, slot.record.seq) {
            *slot = r;
        }
    }
    newest.into_values().collect()
}

/// Evaluates `control` (with its compiled `policy`) in `ctx`.
pub fn evaluate(control: &Control, policy: &Policy, ctx: &Context) -> Evaluation {
    let mut eval = Evaluation {
        control: control.id.clone(),
        at: ctx.at,
        state: State::NotEvaluated,
        reason: None,
        findings: Vec::new(),
        occurrences: Vec::new(),
        judged: Vec::new(),
        policy_sha256: control.policy.sha256.clone(),
    };
    let freshness = chrono::Duration::from_std(control.freshness).unwrap_or(chrono::Duration::MAX);
    let mut unfit = Vec::new();
    let mut inputs = Vec::new();
    let mut streams: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for spec in &control.inputs {
        let chosen = select(spec, ctx.records, ctx.at);
        if chosen.is_empty() && !spec.optional {
            unfit.push(format!(
                "input `{}`: no record of kind `{}`{} at {}",
                spec.name,
                spec.kind,
                spec.definition
                    .as_ref()
                    .map(|d| format!(" (definition `{d}`)"))
                    .unwrap_or_default(),
                ctx.at.to_rfc3339()
            ));
        }
        let mut docs = Vec::with_capacity(chosen.len());
        for r in chosen {
            eval.judged.push(r.record.clone());
            streams
                .entry(spec.name.as_str())
                .or_default()
                .push(&r.record.stream);
            match r.unfit(spec, ctx.at, freshness) {
                Some(why) => unfit.push(why),
                None => docs.push(r.document()),
            }
        }
        inputs.push((spec.name.as_str(), regorus::Value::from(docs)));
    }
    let mut reviews = Vec::new();
    for r in ctx
        .reviews
        .iter()
        .filter(|r| r.control == control.id && r.signed_at <= ctx.at)
    {
        reviews.push(to_rego(
            &serde_json::to_value(r).expect("reviews serialise"),
        ));
    }
    if !unfit.is_empty() {
        eval.reason = Some(unfit.join("; "));
        return finish(eval);
    }
    let input = rego_object(vec![
        (
            "control",
            to_rego(&json!({
                "id": control.id,
                "frequency": control.frequency,
                "kind": match control.kind { ControlKind::State => "state", ControlKind::Event => "event" },
            })),
        ),
        (
            "now",
            regorus::Value::from(
                ctx.at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    .as_str(),
            ),
        ),
        (
            "now_ns",
            to_rego(&json!(ctx.at.timestamp_nanos_opt().unwrap_or(i64::MAX))),
        ),
        ("params", to_rego(&control.params)),
        ("inputs", rego_object(inputs)),
        ("attestations", regorus::Value::from(reviews)),
        ("mapping", to_rego(ctx.mapping.unwrap_or(&json!({})))),
    ]);
    let output = match policy.evaluate(input) {
        Ok(o) => o,
        Err(e) => {
            eval.state = State::Error;
            eval.reason = Some(e);
            return finish(eval);
        }
    };
    if let Some(why) = output.not_applicable {
        eval.state = State::NotApplicable;
        eval.reason = Some(why);
        return finish(eval);
    }
    let mut raw = output.findings;
    if let Some(req) = &control.attestation {
        let due = review_due(req.every, req.grace, ctx.at);
        let reviewed_streams = streams.get(req.input.as_str()).cloned().unwrap_or_default();
        let found = ctx.reviews.iter().find(|r| {
            r.control == control.id
                && reviewed_streams.contains(&r.reviewed.stream.as_str())
                && r.signed_at >= due.start
                && r.signed_at < due.end + chrono::Duration::from_std(req.grace).unwrap_or_default()
                && r.signed_at <= ctx.at
        });
        match found {
            Some(r) => eval.judged.push(r.record.clone()),
            None => raw.push(missing_review(&due, &req.input)),
        }
    }
    eval.findings = raw
        .into_iter()
        .map(|f| {
            let exception = exception::covering(ctx.exceptions, &control.id, &f.entity, ctx.at)
                .map(|e| ExceptionNote {
                    approver: e.approver.clone(),
                    reason: e.reason.clone(),
                    expires: e.expires,
                    record: e.record.clone(),
                });
            Finding {
                entity: f.entity,
                reason: f.reason,
                details: f.details,
                exception,
            }
        })
        .collect();
    if let Some(occ) = output.occurrences {
        eval.occurrences = occ
            .into_iter()
            .map(|o| {
                let mine: Vec<&Finding> =
                    eval.findings.iter().filter(|f| f.entity == o.id).collect();
                let state = if mine.iter().any(|f| f.is_open()) {
                    State::Fail
                } else if mine.is_empty() {
                    State::Pass
                } else {
                    State::Excepted
                };
                OccurrenceResult {
                    id: o.id,
                    at: o.at,
                    state,
                    attributes: o.attributes,
                }
            })
            .collect();
    }
    eval.state = if eval.open_findings().next().is_some() {
        State::Fail
    } else if !eval.findings.is_empty() {
        State::Excepted
    } else if control.kind == ControlKind::Event && eval.occurrences.is_empty() {
        eval.reason = Some("no occurrences in the inputs".into());
        State::NotApplicable
    } else {
        State::Pass
    };
    finish(eval)
}

fn missing_review(due: &Period, input: &str) -> RawFinding {
    RawFinding {
        entity: format!("review {}", due.label),
        reason: format!(
            "no signed review of input `{input}` for {} ({} to {})",
            due.label,
            due.start.date_naive(),
            (due.end - chrono::Duration::days(1)).date_naive()
        ),
        details: Map::new(),
    }
}

fn finish(mut eval: Evaluation) -> Evaluation {
    eval.judged.sort();
    eval.judged.dedup();
    eval
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
