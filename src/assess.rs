//! Control assessment over a store: where [`crate::control`] (the model and
//! the policy engine, which touch no store) meets the evidence. This module
//! finds the records each control reads through the read side, evaluates a
//! control at a time or at every time one of its inputs landed, turns
//! results, exceptions and signed reviews into writer entries, and reads a
//! control's results back into its state over a period and its population.
//!
//! Nothing here reads an error as a pass: a record whose bytes or payload
//! cannot be read is offered to the policy as a failed input (so the control
//! is `not_evaluated`), and a control with no results in a period has no
//! state, which every caller shows as such.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::control::attest::{Attestation, Review};
use crate::control::evaluate::{Context, Evaluation, InputRecord, evaluate};
use crate::control::exception::RecordRef;
use crate::control::period::{Point, Summary, summarize};
use crate::control::population::{Occurrence, Population};
use crate::control::{
    ATTEST_STREAM_PREFIX, ControlKind, EXCEPTION_STREAM_PREFIX, Exception, Finding, LoadedControl,
    RESULT_STREAM_PREFIX, State, result, result_stream,
};
use crate::evidence::record::{RecordPredicate, Status};
use crate::read::{Reader, Record};
use crate::writer::Entry;

mod record;

pub use record::{Assessed, assess_into, failed_evaluation, landed};

/// Whether `stream` holds what assessment writes (results, exceptions,
/// reviews) rather than collected evidence.
pub fn is_assessment_stream(stream: &str) -> bool {
    [
        RESULT_STREAM_PREFIX,
        EXCEPTION_STREAM_PREFIX,
        ATTEST_STREAM_PREFIX,
    ]
    .iter()
    .any(|p| stream.starts_with(p))
}

/// A stream of collected evidence, with what its newest readable record
/// says of its collector and source (enough to match controls' inputs).
#[derive(Debug, Clone)]
pub struct Source {
    /// The stream.
    pub stream: String,
    /// The newest readable record's predicate.
    pub predicate: RecordPredicate,
}

/// Every stream of collected evidence in the store.
pub async fn sources(reader: &Reader) -> anyhow::Result<Vec<Source>> {
    let index = reader.index().await?;
    let mut out = Vec::new();
    for (stream, _) in index.streams() {
        if is_assessment_stream(stream) {
            continue;
        }
        let mut newest = Box::pin(reader.newest_first(stream));
        while let Some(r) = newest.try_next().await? {
            if let Some(p) = r.predicate() {
                out.push(Source {
                    stream: stream.to_string(),
                    predicate: p.clone(),
                });
                break;
            }
        }
    }
    Ok(out)
}

/// The streams `control` reads among `sources`.
pub fn inputs_of<'a>(control: &LoadedControl, sources: &'a [Source]) -> Vec<&'a Source> {
    sources
        .iter()
        .filter(|s| {
            control
                .control
                .inputs
                .iter()
                .any(|spec| spec.selects(&s.stream, &s.predicate.collector, &s.predicate.source))
        })
        .collect()
}

/// Whether the store holds a stream for every required input of `control`
/// (a control none of whose sources is collected is not this store's to
/// assess unless asked for by name).
pub fn has_inputs(control: &LoadedControl, sources: &[Source]) -> bool {
    control
        .control
        .inputs
        .iter()
        .filter(|spec| !spec.optional)
        .all(|spec| {
            sources
                .iter()
                .any(|s| spec.selects(&s.stream, &s.predicate.collector, &s.predicate.source))
        })
}

/// The exceptions and verified reviews in the store, which every
/// evaluation consults.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// Every exception record.
    pub exceptions: Vec<Exception>,
    /// Every review whose signature verified.
    pub reviews: Vec<Review>,
    /// What could not be read or did not verify, for the caller to show.
    pub problems: Vec<String>,
}

impl Standing {
    /// The exceptions of `control`.
    pub fn exceptions_of(&self, control: &str) -> Vec<Exception> {
        let mine = |e: &&Exception| e.control == control;
        self.exceptions.iter().filter(mine).cloned().collect()
    }

    /// The verified reviews of `control`.
    pub fn reviews_of(&self, control: &str) -> Vec<Review> {
        let mine = |r: &&Review| r.control == control;
        self.reviews.iter().filter(mine).cloned().collect()
    }
}

/// Reads every exception and review record.
pub async fn standing(reader: &Reader) -> anyhow::Result<Standing> {
    let index = reader.index().await?;
    let mut out = Standing::default();
    let streams: Vec<String> = index
        .streams()
        .map(|(s, _)| s.to_string())
        .filter(|s| s.starts_with(EXCEPTION_STREAM_PREFIX) || s.starts_with(ATTEST_STREAM_PREFIX))
        .collect();
    for stream in &streams {
        let mut records = Box::pin(reader.records(stream));
        while let Some(r) = records.try_next().await? {
            let at = reference(&r);
            let payload = match readable(reader, &r).await {
                Ok(p) => p,
                Err(e) => {
                    out.problems.push(e);
                    continue;
                }
            };
            if stream.starts_with(EXCEPTION_STREAM_PREFIX) {
                match Exception::from_payload(&payload, Some(at)) {
                    Ok(e) => out.exceptions.push(e),
                    Err(e) => out.problems.push(format!("{}: {e}", r.key)),
                }
            } else {
                match Attestation::from_payload(&payload).and_then(|a| a.verify().map(|()| a)) {
                    Ok(a) => out.reviews.push(a.review(at)),
                    Err(e) => out.problems.push(format!("{}: {e}", r.key)),
                }
            }
        }
    }
    Ok(out)
}

/// Where `r` is, as results name it.
pub fn reference(r: &Record) -> RecordRef {
    RecordRef {
        stream: r.stream.clone(),
        seq: r.seq,
        sha256: r.sha256.clone(),
    }
}

/// The payload of a record that can be taken at its word, or why not.
async fn readable(reader: &Reader, r: &Record) -> Result<Value, String> {
    if let Some(flaw) = &r.flaw {
        return Err(format!("{}: {flaw}", r.key));
    }
    match reader.payload(r).await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(format!("{}: its payload is not in the store", r.key)),
        Err(e) => Err(e.to_string()),
    }
}

/// `r` as an input to a policy. A record that cannot be read is offered
/// as a failed collection, so that the control is not evaluated on it.
async fn input(reader: &Reader, r: &Record) -> Option<InputRecord> {
    let p = r.predicate()?;
    Some(match readable(reader, r).await {
        Ok(payload) => InputRecord::new(reference(r), p, &payload),
        Err(why) => {
            let mut i = InputRecord::new(reference(r), p, &Value::Null);
            i.status = Status::Failed;
            i.error = Some(format!("unreadable evidence: {why}"));
            i
        }
    })
}

/// Reads a control's identity mapping (`system,account,person` CSV) into
/// `input.mapping[system][account] = person`.
pub fn mapping(control: &LoadedControl) -> anyhow::Result<Option<Value>> {
    let Some(path) = &control.control.mapping_file else {
        return Ok(None);
    };
    read_mapping(path).map(Some)
}

fn read_mapping(path: &Path) -> anyhow::Result<Value> {
    let mut r = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read the mapping file {}", path.display()))?;
    let mut out: Map<String, Value> = Map::new();
    for (i, row) in r.records().enumerate() {
        let row = row.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let (Some(system), Some(account), Some(person)) = (row.get(0), row.get(1), row.get(2))
        else {
            anyhow::bail!(
                "{}: row {} needs three fields: system,account,person",
                path.display(),
                i + 2
            );
        };
        out.entry(system.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("an object")
            .insert(account.to_string(), Value::String(person.to_string()));
    }
    Ok(Value::Object(out))
}

/// Evaluates `control` at `at`, over the newest record of each of its
/// streams at that time.
pub async fn evaluate_at(
    reader: &Reader,
    control: &LoadedControl,
    sources: &[Source],
    standing: &Standing,
    at: DateTime<Utc>,
) -> anyhow::Result<Evaluation> {
    let mut records = Vec::new();
    for s in inputs_of(control, sources) {
        let mut newest = Box::pin(reader.newest_first(&s.stream));
        while let Some(r) = newest.try_next().await? {
            let Some(p) = r.predicate() else { continue };
            // A gap record is no snapshot: the freshness window notices
            // the collection it stands for is missing.
            if p.finished_at > at || p.status == Status::Missed {
                continue;
            }
            records.extend(input(reader, &r).await);
            break;
        }
    }
    let mapping = mapping(control)?;
    Ok(evaluate(
        &control.control,
        &control.policy,
        &Context {
            at,
            records: &records,
            exceptions: &standing.exceptions_of(&control.control.id),
            reviews: &standing.reviews_of(&control.control.id),
            mapping: mapping.as_ref(),
        },
    ))
}

/// Evaluates `control` at every time one of its input records landed in
/// `[from, to]`, oldest first, as it would have been evaluated then. Only
/// the newest record of each stream is held at a time, so memory does not
/// grow with the length of the period.
pub async fn evaluate_over(
    reader: &Reader,
    control: &LoadedControl,
    sources: &[Source],
    standing: &Standing,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<Evaluation>> {
    // When each record of the control's streams landed, from the envelopes
    // alone (payloads are read only for the records judged).
    let mut landings: Vec<(DateTime<Utc>, String, u64)> = Vec::new();
    for s in inputs_of(control, sources) {
        let mut records = Box::pin(reader.records(&s.stream));
        while let Some(r) = records.try_next().await? {
            if let Some(p) = r.predicate()
                && p.finished_at <= to
                && p.status != Status::Missed
            {
                landings.push((p.finished_at, r.stream.clone(), r.seq));
            }
        }
    }
    landings.sort();
    let mapping = mapping(control)?;
    let exceptions = standing.exceptions_of(&control.control.id);
    let reviews = standing.reviews_of(&control.control.id);
    let mut current: BTreeMap<String, InputRecord> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, (at, stream, seq)) in landings.iter().enumerate() {
        // Before the period only the last record of each stream matters.
        let superseded = *at < from
            && landings[i + 1..]
                .iter()
                .take_while(|(t, ..)| *t < from)
                .any(|(_, s, _)| s == stream);
        if superseded {
            continue;
        }
        let Some(r) = reader.record(stream, *seq).await? else {
            continue;
        };
        if let Some(input) = input(reader, &r).await {
            current.insert(stream.clone(), input);
        }
        // Records landing at the same instant are judged together.
        let same_instant_next = landings.get(i + 1).is_some_and(|(t, ..)| t == at);
        if *at < from || same_instant_next {
            continue;
        }
        let records: Vec<InputRecord> = current.values().cloned().collect();
        out.push(evaluate(
            &control.control,
            &control.policy,
            &Context {
                at: *at,
                records: &records,
                exceptions: &exceptions,
                reviews: &reviews,
                mapping: mapping.as_ref(),
            },
        ));
    }
    Ok(out)
}

/// A record that `control`'s people write by hand (an exception, a signed
/// review) on `stream`, made `at`, recorded under the control's criteria.
pub fn entry_of(
    control: &LoadedControl,
    stream: String,
    kind: &str,
    at: DateTime<Utc>,
    payload: Value,
) -> Entry {
    let collector = crate::evidence::record::CollectorInfo {
        name: control.control.id.clone(),
        kind: kind.into(),
        version: crate::collect::VERSION.into(),
    };
    let mut e = Entry::new(stream, collector, Status::Ok, at, payload);
    e.predicate.criteria = control.control.criteria.clone();
    e.predicate.attempts = 1;
    e
}

/// The writer entry of a result, evaluated between `started` and
/// `finished`.
pub fn result_entry(
    control: &LoadedControl,
    eval: &Evaluation,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> Entry {
    let r = result::entry(&control.control, control.origin, eval, started, finished);
    let mut e = Entry::new(r.stream, r.collector, r.status, r.finished_at, r.payload);
    e.predicate.source = r.source;
    e.predicate.started_at = r.started_at;
    e.predicate.error = r.error;
    e.predicate.criteria = r.criteria;
    e.predicate.attempts = 1;
    e.predicate.assessment = Some(r.assessment);
    e
}

/// Since when the newest of `results` (oldest first) holds its state: the
/// time of the first of the trailing run of results in that state.
pub fn state_since(results: &[(RecordRef, Evaluation)]) -> Option<DateTime<Utc>> {
    let (_, newest) = results.last()?;
    results
        .iter()
        .rev()
        .take_while(|(_, e)| e.state == newest.state)
        .last()
        .map(|(_, e)| e.at)
}

/// A control's results in `[from, to]` (by evaluation time), oldest
/// first, with the records they are stored in.
pub async fn results(
    reader: &Reader,
    control: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<(RecordRef, Evaluation)>> {
    let stream = result_stream(control);
    let mut out = Vec::new();
    let mut records = Box::pin(reader.records(&stream));
    while let Some(r) = records.try_next().await? {
        let payload = readable(reader, &r).await.map_err(anyhow::Error::msg)?;
        let eval = result::from_payload(&payload).map_err(|e| anyhow::anyhow!("{}: {e}", r.key))?;
        if eval.at >= from && eval.at <= to {
            out.push((reference(&r), eval));
        }
    }
    out.sort_by_key(|(r, e)| (e.at, r.seq));
    Ok(out)
}

/// The title the newest readable result of control `id` records (results
/// carry their control's identity), for controls the library at hand does
/// not hold.
pub async fn recorded_title(reader: &Reader, id: &str) -> Option<String> {
    let stream = result_stream(id);
    let mut newest = Box::pin(reader.newest_first(&stream));
    while let Ok(Some(r)) = newest.try_next().await {
        if let Some(t) = r.predicate().and_then(|p| p.source["title"].as_str()) {
            return Some(t.to_string());
        }
    }
    None
}

/// A control over a period, as `exhibit controls` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ControlStatus {
    /// The control id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// How often it operates.
    pub frequency: &'static str,
    /// Its SOC 2 criteria.
    pub criteria: Vec<String>,
    /// Results in the period.
    pub results: usize,
    /// When it was last evaluated (in the period).
    pub last_evaluated: Option<DateTime<Utc>>,
    /// Counts, the current state and since when it holds.
    #[serde(flatten)]
    pub summary: Summary,
}

/// The state of `control` over `[from, to]`, from its results.
pub async fn status(
    reader: &Reader,
    control: &LoadedControl,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<ControlStatus> {
    let c = &control.control;
    let results = results(reader, &c.id, from, to).await?;
    let latest: Vec<Finding> = results
        .last()
        .map(|(_, e)| e.findings.clone())
        .unwrap_or_default();
    let points: Vec<Point> = match c.kind {
        ControlKind::Event => occurrences(&results)
            .into_values()
            .map(|(at, state, _)| Point { at, state })
            .collect(),
        ControlKind::State => results
            .iter()
            .map(|(_, e)| Point {
                at: e.at,
                state: e.state,
            })
            .collect(),
    };
    Ok(ControlStatus {
        id: c.id.clone(),
        title: c.title.clone(),
        frequency: c.frequency.as_str(),
        criteria: c.criteria.clone(),
        results: results.len(),
        last_evaluated: results.last().map(|(_, e)| e.at),
        summary: summarize(points, &latest, from, to),
    })
}

/// An occurrence as judged: when it happened, its state, its attributes.
type Judged = (DateTime<Utc>, State, Map<String, Value>);

/// The occurrences of an event control across its results, each judged
/// by the newest result that saw it.
fn occurrences(results: &[(RecordRef, Evaluation)]) -> BTreeMap<String, Judged> {
    let mut out = BTreeMap::new();
    for (_, e) in results {
        for o in &e.occurrences {
            out.insert(o.id.clone(), (o.at, o.state, o.attributes.clone()));
        }
    }
    out
}

/// The population of `control` in `[from, to]`: for an event control every
/// occurrence (each merged change, say) its results saw, judged by the
/// newest; for a state control every evaluation, named by its result
/// record.
pub async fn population(
    reader: &Reader,
    control: &LoadedControl,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Population> {
    let c = &control.control;
    // Occurrences are judged by results up to `to`, whenever they happened.
    let since_ever = DateTime::<Utc>::MIN_UTC;
    let results = results(reader, &c.id, since_ever, to).await?;
    let occurrences: Vec<Occurrence> = match c.kind {
        ControlKind::Event => occurrences(&results)
            .into_iter()
            .filter(|(_, (at, ..))| *at >= from && *at <= to)
            .map(|(id, (at, state, mut attributes))| {
                attributes.insert("state".into(), Value::String(state.as_str().into()));
                Occurrence { id, at, attributes }
            })
            .collect(),
        ControlKind::State => results
            .iter()
            .filter(|(_, e)| e.at >= from && e.at <= to)
            .map(|(r, e)| {
                let mut attributes = Map::new();
                attributes.insert("state".into(), Value::String(e.state.as_str().into()));
                attributes.insert("record".into(), Value::String(r.label()));
                attributes.insert("sha256".into(), Value::String(r.sha256.clone()));
                attributes.insert(
                    "open_findings".into(),
                    Value::from(e.open_findings().count()),
                );
                Occurrence {
                    id: r.label(),
                    at: e.at,
                    attributes,
                }
            })
            .collect(),
    };
    Ok(Population::new(occurrences)?)
}
