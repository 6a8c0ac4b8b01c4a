//! The controls in the assessment results: for each control with results in
//! the period, one observation (its state, its counts over the period, and
//! as relevant evidence every result record and every record those results
//! judged, each by sha256), one finding for the control targeting its
//! statement in the catalog, one finding per entity its newest result
//! found, and one risk per exception that bears on the period (a deviation
//! approved while it is in force, closed once expired), which the findings
//! it covers name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::plan::oscal_id;
use super::{Evidence, id, prop, ts};
use crate::assess;
use crate::control::exception::RecordRef;
use crate::control::{Evaluation, Exception, Library, RESULT_STREAM_PREFIX, State};
use crate::read::Reader;

/// What the controls add to the results.
#[derive(Debug, Default)]
pub(super) struct Assessed {
    /// One per control assessed in the period.
    pub observations: Vec<Value>,
    /// Per control and per entity.
    pub findings: Vec<Value>,
    /// Per exception.
    pub risks: Vec<Value>,
    /// The ids of the controls assessed in the period.
    pub controls: Vec<String>,
    /// Controls with results that the library does not hold, with the
    /// title their results record: the catalog lists them too.
    pub unknown: Vec<(String, String)>,
}

/// The objective status of a control in a state. OSCAL knows two states;
/// the reason and remarks keep Exhibit's, so that neither "not evaluated"
/// nor "error" reads as satisfied.
fn status(state: State, reason: Option<&str>) -> Value {
    let (oscal, why) = match state {
        State::Pass => ("satisfied", "pass"),
        State::Excepted | State::NotApplicable => ("satisfied", "other"),
        State::Fail => ("not-satisfied", "fail"),
        State::Error | State::NotEvaluated => ("not-satisfied", "other"),
    };
    let mut s = json!({"state": oscal, "reason": why});
    let remarks = match (state, reason) {
        (State::Excepted, _) => Some(
            "Every finding is covered by an approved exception (see the related risks).".into(),
        ),
        (State::Pass | State::Fail, None) => None,
        (_, r) => Some(format!(
            "{}: {}",
            state.as_str(),
            r.unwrap_or("no reason recorded")
        )),
    };
    if let Some(r) = remarks {
        s["remarks"] = Value::String(r);
    }
    s
}

/// The control's statement in the catalog, with `status`; `state` is
/// Exhibit's own.
fn target(control: &str, state: &str, status: Value) -> Value {
    json!({
        "type": "statement-id",
        "target-id": format!("{}_smt", oscal_id(control)),
        "status": status,
        "props": [prop("state", state)],
    })
}

/// One risk per exception granted before `to` and expiring after `from`
/// (a deviation approved while it is in force at the period's end, else
/// closed); returns them and, by exception record key, the risk's uuid.
fn risks(
    exceptions: &[Exception],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    evidence: &mut Evidence,
) -> (Vec<Value>, HashMap<String, String>) {
    let mut out = Vec::new();
    let mut by_record = HashMap::new();
    // In force at the end of the period, or now if the period runs on.
    let end = to.min(Utc::now());
    for e in exceptions
        .iter()
        .filter(|e| e.granted_at <= to && e.expires > from)
    {
        let uuid = id();
        let live = e.expires > end;
        let mut risk = json!({
            "uuid": uuid,
            "title": format!("Exception: {} for {}", e.control, e.entity),
            "description": e.reason,
            "statement": format!(
                "{} may fail control {} until {}, approved by {} on {}.",
                e.entity, e.control, ts(&e.expires), e.approver, ts(&e.granted_at)
            ),
            "props": [
                prop("control-id", &e.control),
                prop("entity", &e.entity),
                prop("approver", &e.approver),
            ],
            "status": if live { "deviation-approved" } else { "closed" },
            "deadline": ts(&e.expires),
        });
        if let Some(r) = &e.record {
            let resource = evidence.record(&r.key(), &r.sha256, r.label());
            risk["links"] = json!([{"href": format!("#{resource}"), "rel": "evidence", "text": format!("exception record {}, sha256 {}", r.key(), r.sha256)}]);
            by_record.insert(r.key(), uuid);
        }
        out.push(risk);
    }
    (out, by_record)
}

/// A relevant-evidence entry naming `r` by sha256.
fn relevant(r: &RecordRef, what: &str, evidence: &mut Evidence) -> Value {
    let resource = evidence.record(&r.key(), &r.sha256, r.label());
    json!({
        "href": format!("#{resource}"),
        "description": format!("{what} {} (sha256 {})", r.key(), r.sha256),
        "props": [prop("record-sha256", &r.sha256)],
    })
}

/// The controls' part of the results for `[from, to]`.
pub(super) async fn assess(
    reader: &Reader,
    library: &Library,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    evidence: &mut Evidence,
) -> anyhow::Result<Assessed> {
    let standing = assess::standing(reader).await?;
    let (risks, risk_of) = risks(&standing.exceptions, from, to, evidence);
    let mut out = Assessed {
        risks,
        ..Assessed::default()
    };
    let ids: Vec<String> = reader
        .index()
        .await?
        .streams()
        .filter_map(|(s, _)| s.strip_prefix(RESULT_STREAM_PREFIX).map(str::to_string))
        .collect();
    for cid in ids {
        let results = assess::results(reader, &cid, from, to).await?;
        let Some((newest_ref, newest)) = results.last() else {
            continue;
        };
        let title = match library.get(&cid) {
            Some(c) => c.control.title.clone(),
            None => {
                let t = assess::recorded_title(reader, &cid)
                    .await
                    .unwrap_or_else(|| cid.clone());
                out.unknown.push((cid.clone(), t.clone()));
                t
            }
        };
        let observation = id();
        out.observations
            .push(observe(&observation, &cid, &title, &results, evidence));
        out.findings.push(json!({
            "uuid": id(),
            "title": format!("{cid}: {}", newest.state.as_str()),
            "description": format!(
                "{title}. Newest result {} at {}: {}{}.",
                newest_ref.label(),
                ts(&newest.at),
                newest.state.as_str(),
                match newest.open_findings().count() {
                    0 => String::new(),
                    n => format!(", {n} open finding(s)"),
                }
            ),
            "props": [prop("control-id", &cid), prop("result-sha256", &newest_ref.sha256)],
            "target": target(
                &cid,
                newest.state.as_str(),
                status(newest.state, newest.reason.as_deref()),
            ),
            "related-observations": [{"observation-uuid": observation}],
        }));
        out.findings
            .extend(entity_findings(&cid, newest, &observation, &risk_of));
        out.controls.push(cid);
    }
    Ok(out)
}

/// The observation of one control over the period.
fn observe(
    uuid: &str,
    control: &str,
    title: &str,
    results: &[(RecordRef, Evaluation)],
    evidence: &mut Evidence,
) -> Value {
    let (_, newest) = results.last().expect("a control observed has results");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, e) in results {
        *counts.entry(e.state.as_str()).or_default() += 1;
    }
    let since = assess::state_since(results).unwrap_or(newest.at);
    let mut props = vec![
        prop("control-id", control),
        prop("state", newest.state.as_str()),
        prop("state-since", ts(&since)),
        prop("results", results.len()),
        prop("policy-sha256", &newest.policy_sha256),
    ];
    for (state, n) in &counts {
        props.push(prop(&format!("results-{}", state.replace('_', "-")), n));
    }
    let mut relevant_evidence = Vec::new();
    for (r, e) in results {
        relevant_evidence.push(relevant(
            r,
            &format!("result ({}) at {}:", e.state.as_str(), ts(&e.at)),
            evidence,
        ));
    }
    let judged: BTreeSet<&RecordRef> = results.iter().flat_map(|(_, e)| &e.judged).collect();
    for r in judged {
        relevant_evidence.push(relevant(r, "judged record", evidence));
    }
    let counted: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    json!({
        "uuid": uuid,
        "title": format!("Control {control}: {title}"),
        "description": format!(
            "{} evaluation(s) of control {control} in the period ({}); {} since {}.",
            results.len(),
            counted.join(", "),
            newest.state.as_str(),
            ts(&since)
        ),
        "props": props,
        "methods": ["TEST"],
        "types": ["control-objective"],
        "relevant-evidence": relevant_evidence,
        "collected": ts(&newest.at),
    })
}

/// One finding per entity the newest result found, open or excepted; an
/// excepted one names the risk of its exception.
fn entity_findings(
    control: &str,
    newest: &Evaluation,
    observation: &str,
    risk_of: &HashMap<String, String>,
) -> Vec<Value> {
    newest
        .findings
        .iter()
        .map(|f| {
            // An excepted entity is a deviation approved, not a pass.
            let (state, status) = match &f.exception {
                None => ("fail", json!({"state": "not-satisfied", "reason": "fail"})),
                Some(x) => (
                    "excepted",
                    json!({
                        "state": "not-satisfied",
                        "reason": "other",
                        "remarks": format!(
                            "Excepted until {} by {}: {}",
                            ts(&x.expires),
                            x.approver,
                            x.reason
                        ),
                    }),
                ),
            };
            let mut finding = json!({
                "uuid": id(),
                "title": format!("{control}: {}", f.entity),
                "description": f.reason,
                "props": [prop("control-id", control), prop("entity", &f.entity)],
                "target": target(control, state, status),
                "related-observations": [{"observation-uuid": observation}],
            });
            let risk = f
                .exception
                .as_ref()
                .and_then(|x| x.record.as_ref())
                .and_then(|r| risk_of.get(&r.key()));
            if let Some(risk) = risk {
                finding["related-risks"] = json!([{"risk-uuid": risk}]);
            }
            finding
        })
        .collect()
}
