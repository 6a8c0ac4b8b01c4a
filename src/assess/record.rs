//! Results written: one control evaluated into a run, the one path by which
//! `exhibit assess` (on demand) and the daemon (as input records land)
//! turn evaluations into records of `control/<id>`.
//!
//! An evaluation that cannot be made — the store cannot be read, the
//! mapping file is gone, the policy engine panics — is written as an
//! `error` result: the gap is evidence, and the daemon goes on collecting.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::FutureExt as _;

use super::{
    Source, Standing, evaluate_at, evaluate_over, has_inputs, inputs_of, is_assessment_stream,
    result_entry, sources, standing,
};
use crate::agent::Agent;
use crate::control::{Evaluation, Library, LoadedControl, State};
use crate::evidence::layout;
use crate::read::Reader;
use crate::writer::Run;

/// What assessing one control wrote.
#[derive(Debug)]
pub struct Assessed {
    /// The newest evaluation (the only one, unless over a period).
    pub newest: Option<Evaluation>,
    /// How many result records were written.
    pub written: usize,
    /// Why a result could not be written, when one could not (the rest
    /// of the control's evaluations are then not written either).
    pub failure: Option<anyhow::Error>,
}

/// The evaluation of `control` at `at` that could not be made, and why.
pub fn failed_evaluation(control: &LoadedControl, at: DateTime<Utc>, why: String) -> Evaluation {
    Evaluation {
        control: control.control.id.clone(),
        at,
        state: State::Error,
        reason: Some(why),
        findings: Vec::new(),
        occurrences: Vec::new(),
        judged: Vec::new(),
        policy_sha256: control.control.policy.sha256.clone(),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Evaluates `control` now, or at every time an input landed in `period`,
/// and writes each result within `run`.
pub async fn assess_into(
    agent: &Agent,
    run: &Run,
    reader: &Reader,
    control: &LoadedControl,
    sources: &[Source],
    standing: &Standing,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Assessed {
    let started = agent.now();
    let evaluation = async {
        match period {
            Some((from, to)) => evaluate_over(reader, control, sources, standing, from, to).await,
            None => evaluate_at(reader, control, sources, standing, started)
                .await
                .map(|e| vec![e]),
        }
    };
    let evals = match std::panic::AssertUnwindSafe(evaluation)
        .catch_unwind()
        .await
    {
        Ok(Ok(evals)) => evals,
        Ok(Err(e)) => vec![failed_evaluation(control, started, format!("{e:#}"))],
        Err(panic) => vec![failed_evaluation(
            control,
            started,
            format!("the evaluation panicked: {}", panic_text(panic.as_ref())),
        )],
    };
    let mut out = Assessed {
        newest: None,
        written: 0,
        failure: None,
    };
    for e in &evals {
        let entry = result_entry(control, e, started, agent.now());
        match agent.append(run, entry).await {
            Ok(_) => out.written += 1,
            Err(e) => {
                out.failure = Some(anyhow::anyhow!(
                    "cannot record the result of {}: {e}",
                    control.control.id
                ));
                break;
            }
        }
    }
    out.newest = evals.into_iter().last();
    out
}

/// The collected streams `run` has written records of so far.
fn landed_streams(run: &Run) -> BTreeSet<String> {
    run.written()
        .iter()
        .filter_map(|s| layout::stream_record(&s.name).map(|(stream, _)| stream))
        .filter(|s| !is_assessment_stream(s))
        .collect()
}

/// Evaluates, within `run`, every control of `library` that reads a stream
/// `run` has written a record of (and whose required inputs the store
/// holds, as `exhibit assess` chooses), and writes their results: what the
/// daemon does after each collection. Nothing here fails the caller; what
/// goes wrong is an `error` result, or when not even that can be written,
/// a logged error. Returns each control assessed with what was written.
pub async fn landed(agent: &Agent, library: &Library, run: &Run) -> Vec<(String, Assessed)> {
    let landed = landed_streams(run);
    if landed.is_empty() {
        return Vec::new();
    }
    let reader = Reader::new(agent.store().clone());
    let context = async { anyhow::Ok((sources(&reader).await?, standing(&reader).await?)) };
    let mut out = Vec::new();
    match context.await {
        Ok((sources, standing)) => {
            for p in &standing.problems {
                tracing::warn!(problem = %p, "an exception or review is not used");
            }
            let reads_landed = |c: &&LoadedControl| {
                inputs_of(c, &sources)
                    .iter()
                    .any(|s| landed.contains(&s.stream))
                    && has_inputs(c, &sources)
            };
            for c in library.iter().filter(reads_landed) {
                let a = assess_into(agent, run, &reader, c, &sources, &standing, None).await;
                out.push((c.control.id.clone(), a));
            }
        }
        Err(e) => {
            // Which controls read the landed records cannot be told from
            // the store; their collectors' kinds tell it well enough to
            // record that they could not be evaluated.
            let why = format!("cannot read the store to evaluate: {e:#}");
            let kinds: BTreeSet<&str> = agent
                .instances()
                .iter()
                .filter(|i| {
                    landed
                        .iter()
                        .any(|s| s.starts_with(&format!("{}/", i.name)))
                })
                .map(|i| i.kind.as_str())
                .collect();
            for c in library.iter().filter(|c| {
                c.control
                    .inputs
                    .iter()
                    .any(|spec| kinds.contains(spec.kind.as_str()))
            }) {
                let eval = failed_evaluation(c, agent.now(), why.clone());
                let entry = result_entry(c, &eval, eval.at, agent.now());
                let failure = agent.append(run, entry).await.err().map(|e| e.into());
                let written = usize::from(failure.is_none());
                out.push((
                    c.control.id.clone(),
                    Assessed {
                        newest: Some(eval),
                        written,
                        failure,
                    },
                ));
            }
        }
    }
    for (id, a) in &out {
        let state = a.newest.as_ref().map_or("none", |e| e.state.as_str());
        let open = a.newest.as_ref().map_or(0, |e| e.open_findings().count());
        match &a.failure {
            None => {
                tracing::info!(control = %id, state, open_findings = open, "control evaluated as its input landed")
            }
            Some(e) => {
                tracing::error!(control = %id, state, error = format!("{e:#}"), "cannot record a control's result")
            }
        }
    }
    out
}
