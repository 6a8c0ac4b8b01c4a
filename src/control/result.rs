//! Evaluations as evidence: what the writer stores as a record of
//! `control/<id>`. The payload holds the state, findings and occurrences;
//! the predicate's `assessment` names the policy's SHA-256 and the SHA-256
//! of every record judged, so that `verify` can check each exists.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::definition::Control;
use super::evaluate::Evaluation;
use super::library::Origin;
use super::{State, result_stream};
use crate::evidence::record::{AssessedRecord, Assessment, CollectorInfo, Status};

/// The collector kind recorded on control results.
pub const RESULT_KIND: &str = "control";

/// Everything the writer needs for one result record. The fields mirror
/// `writer::Entry`, plus the predicate's `assessment`.
#[derive(Debug, Clone)]
pub struct ResultEntry {
    /// `control/<id>`.
    pub stream: String,
    /// `{name: <id>, kind: "control", version}`.
    pub collector: CollectorInfo,
    /// The control's identity: id, title, definition and policy hashes,
    /// origin.
    pub source: Value,
    /// When the evaluation began.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// `ok`, or `failed` when the policy could not be evaluated.
    pub status: Status,
    /// The error, for `error` results.
    pub error: Option<String>,
    /// The payload.
    pub payload: Value,
    /// The control's criteria.
    pub criteria: Vec<String>,
    /// The predicate's `assessment`.
    pub assessment: Assessment,
}

/// The result record of `eval`, made by `control` (from `origin`).
pub fn entry(
    control: &Control,
    origin: Origin,
    eval: &Evaluation,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
) -> ResultEntry {
    let assessment = Assessment {
        control: control.id.clone(),
        policy_sha256: eval.policy_sha256.clone(),
        inputs: eval
            .judged
            .iter()
            .map(|r| AssessedRecord {
                record: r.key(),
                sha256: r.sha256.clone(),
            })
            .collect(),
        state: eval.state,
    };
    let (status, error) = match eval.state {
        State::Error => (Status::Failed, eval.reason.clone()),
        _ => (Status::Ok, None),
    };
    ResultEntry {
        stream: result_stream(&control.id),
        collector: CollectorInfo {
            name: control.id.clone(),
            kind: RESULT_KIND.into(),
            version: crate::collect::VERSION.into(),
        },
        source: json!({
            "control": control.id,
            "title": control.title,
            "frequency": control.frequency,
            "definition_sha256": control.sha256,
            "policy_sha256": control.policy.sha256,
            "origin": origin.as_str(),
        }),
        started_at,
        finished_at,
        status,
        error,
        payload: payload(eval),
        criteria: control.criteria.clone(),
        assessment,
    }
}

/// The payload of a result record.
pub fn payload(eval: &Evaluation) -> Value {
    serde_json::to_value(eval).expect("evaluations serialise")
}

/// Reads a result record's payload back.
pub fn from_payload(payload: &Value) -> Result<Evaluation, String> {
    serde_json::from_value(payload.clone()).map_err(|e| format!("not a control result: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::exception::RecordRef;
    use crate::control::finding::Finding;
    use crate::control::library::Library;

    #[test]
    fn a_result_names_the_policy_and_every_judged_record() {
        let lib = Library::builtin().unwrap();
        let c = lib.get("aws-console-mfa").unwrap();
        let at: DateTime<Utc> = "2025-03-01T00:00:00Z".parse().unwrap();
        let judged = RecordRef {
            stream: "iam-report/123456789012".into(),
            seq: 7,
            sha256: "ab".repeat(32),
        };
        let eval = Evaluation {
            control: c.control.id.clone(),
            at,
            state: State::Fail,
            reason: None,
            findings: vec![Finding {
                entity: "bob".into(),
                reason: "console password without MFA".into(),
                details: Default::default(),
                exception: None,
            }],
            occurrences: vec![],
            judged: vec![judged.clone()],
            policy_sha256: c.control.policy.sha256.clone(),
        };
        let e = entry(&c.control, c.origin, &eval, at, at);
        assert_eq!(e.stream, "control/aws-console-mfa");
        assert_eq!(e.status, Status::Ok);
        assert_eq!(
            e.assessment.policy_sha256,
            crate::evidence::sha256_hex(c.control.policy.text.as_bytes())
        );
        assert_eq!(
            e.assessment.inputs,
            vec![AssessedRecord {
                record: "records/iam-report/123456789012/000000000007.json".into(),
                sha256: judged.sha256.clone(),
            }]
        );
        assert_eq!(e.assessment.state, State::Fail);
        assert_eq!(e.payload["state"], "fail");
        assert_eq!(e.payload["findings"][0]["entity"], "bob");
        assert_eq!(from_payload(&e.payload).unwrap(), eval);

        let mut broken = eval.clone();
        broken.state = State::Error;
        broken.reason = Some("evaluating `findings`: boom".into());
        let e = entry(&c.control, c.origin, &broken, at, at);
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.error.as_deref(), Some("evaluating `findings`: boom"));
    }
}
