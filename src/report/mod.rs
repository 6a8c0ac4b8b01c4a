//! `exhibit report`: the security lead's nightly review. It opens with the
//! controls ([`controls`]: state changes, what is failing, exceptions in
//! force); then, for every stream:
//! its last status, what changed during the window (entity by entity), the
//! changes that matter for controls (highlights), failed and missed
//! collections, coverage, and a small status timeline. Rendered as
//! Markdown or as one self-contained HTML page (no external assets).

pub mod controls;
pub(crate) mod highlights;
mod html;
mod never_collected;
mod render;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use futures::TryStreamExt as _;

use crate::diff::Change;
use crate::evidence::record::{RecordPredicate, Statement, Status};
use crate::read::{ReadError, Reader, Record};
use crate::store::Store;
use crate::verify::Coverage;

pub use highlights::Highlight;
pub use never_collected::NeverCollected;
pub use render::{FailureGroup, change_lines, failure_groups, write_out};

/// Most changes listed per stream; the count is always exact.
const CHANGES_LISTED: usize = 200;
/// Records shown in each stream's timeline.
const TIMELINE: usize = 60;

/// One collection in the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    /// Sequence number.
    pub seq: u64,
    /// When it finished.
    pub at: DateTime<Utc>,
    /// Its outcome.
    pub status: Status,
}

/// A failed, partial or missed collection in the window.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Sequence number.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Outcome.
    pub status: Status,
    /// What went wrong.
    pub error: Option<String>,
}

/// The review of one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// The stream.
    pub stream: String,
    /// Collector kind.
    pub kind: String,
    /// SOC 2 criteria.
    pub criteria: Vec<String>,
    /// Last record's status.
    pub last_status: Status,
    /// When it finished.
    pub last_at: DateTime<Utc>,
    /// Records written in the window.
    pub records_in_window: usize,
    /// Changes between the last good snapshot before the window and the
    /// last good one in it (at most 200 listed).
    pub changes: Vec<Change>,
    /// How many changes there were.
    pub change_count: usize,
    /// The changes that matter for controls.
    pub highlights: Vec<Highlight>,
    /// Failed, partial and missed collections in the window.
    pub failures: Vec<Failure>,
    /// Schedule coverage in the window.
    pub coverage: Option<Coverage>,
    /// Recent collections, oldest first.
    pub timeline: Vec<Tick>,
}

/// The whole review.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// Start of the window.
    pub since: DateTime<Utc>,
    /// The store.
    pub store: String,
    /// Whether `verify` found the store intact.
    pub intact: bool,
    /// Integrity problems (from `verify`).
    pub problems: Vec<String>,
    /// The store's head (the SHA-256 of its newest checkpoint), for the
    /// readers to keep: `verify --known-head` later proves nothing before
    /// it was cut off.
    pub head: Option<String>,
    /// The controls: what changed state, what needs attention, the
    /// exceptions in force. The review opens with it.
    pub controls: controls::Controls,
    /// Per stream.
    pub streams: Vec<StreamReport>,
    /// The collectors the config enables that have no record at all (only
    /// when the review was made with the config).
    pub never_collected: Vec<NeverCollected>,
}

impl Report {
    /// Every highlight, with its stream, the most severe first (streams in
    /// order within a severity).
    pub fn all_highlights(&self) -> std::vec::IntoIter<(&str, &Highlight)> {
        let mut all: Vec<(&str, &Highlight)> = self
            .streams
            .iter()
            .flat_map(|s| s.highlights.iter().map(move |h| (s.stream.as_str(), h)))
            .chain(
                self.never_collected
                    .iter()
                    .map(|n| (n.streams.as_str(), &n.highlight)),
            )
            .collect();
        all.sort_by_key(|(_, h)| h.severity);
        all.into_iter()
    }

    /// Streams whose last collection did not succeed.
    pub fn failing(&self) -> impl Iterator<Item = &StreamReport> {
        self.streams.iter().filter(|s| s.last_status != Status::Ok)
    }
}

/// Builds the review of everything since `since`; the enabled collectors
/// of the config (`configured`, empty without one) that have no record at
/// all are highlighted.
pub async fn build(
    store: Arc<dyn Store>,
    since: DateTime<Utc>,
    configured: &[crate::verify::Configured],
) -> anyhow::Result<Report> {
    let now = Utc::now();
    // Coverage is `verify`'s own: counted from the window's start or the
    // stream's first record, whichever is later, up to the newest
    // checkpoint, so that the review and `verify --from` always agree.
    let verdict = crate::verify::verify(
        store.clone(),
        &crate::verify::Options {
            from: Some(since),
            to: Some(now),
            now: Some(now),
            ..Default::default()
        },
    )
    .await?;
    let reader = Reader::new(store.clone());
    let mut streams = Vec::new();
    let index = reader.index().await?;
    // Every stream listed, read or not: one whose records cannot be read
    // is `verify`'s to name, not a collector that never ran.
    let never_collected = NeverCollected::all(
        configured,
        index.streams().map(|(s, _)| s).collect(),
        since,
        now,
    );
    for (stream, seqs) in index.streams() {
        let Some(walk) = walk(&reader, stream, seqs, since).await? else {
            // Not one record of the stream can be read: `verify`, above,
            // names them.
            continue;
        };
        let Walk {
            timeline,
            window,
            before_ok,
            newest,
        } = walk;
        let last = match window.first() {
            Some((st, _)) => st.clone(),
            None => newest,
        };
        let failures: Vec<Failure> = window
            .iter()
            .rev()
            .filter(|(st, _)| st.predicate.status != Status::Ok)
            .map(|(st, _)| Failure {
                seq: st.predicate.seq,
                at: st.predicate.finished_at,
                status: st.predicate.status,
                error: st.predicate.error.clone(),
            })
            .collect();
        // The window's good snapshots, oldest first.
        let good: Vec<&Value> = window
            .iter()
            .rev()
            .filter(|(st, _)| st.predicate.status == Status::Ok)
            .filter_map(|(_, p)| p.as_ref())
            .collect();
        // A stream new in this window is compared with its own first
        // snapshot in the window.
        let (baseline, after_baseline): (Option<&Value>, &[&Value]) = match &before_ok {
            Some(b) => (Some(b), &good[..]),
            None => match good.split_first() {
                Some((first, rest)) => (Some(*first), rest),
                None => (None, &[][..]),
            },
        };
        // A stream whose records hold their own window of events is read
        // over every window since the baseline, not only the last one.
        let spec = crate::collect::kind(&last.predicate.collector.kind);
        let windowed = spec.map(|k| k.windowed).unwrap_or_default();
        let ids = spec.map(|k| k.identities).unwrap_or_default();
        let changes = match (baseline, crate::diff::span(after_baseline, ids, windowed)) {
            (Some(b), Some(l)) => crate::diff::diff_windows(b, &l, ids, windowed),
            _ => Vec::new(),
        };
        let in_window = window.len();
        let mut highlights = highlights::from_changes(&changes);
        if let Some(latest) = crate::diff::span(&good, ids, windowed) {
            highlights.extend(highlights::from_snapshot(&latest, now));
        }
        for g in failure_groups(&failures) {
            highlights.push(Highlight::failures(&g));
        }
        let coverage = verdict
            .streams
            .iter()
            .find(|s| s.stream == stream)
            .and_then(|s| s.coverage.clone());
        if let Some(c) = &coverage
            && c.missed > 0
        {
            highlights.push(Highlight::missed(c.missed));
        }
        streams.push(StreamReport {
            stream: stream.to_string(),
            kind: last.predicate.collector.kind.clone(),
            criteria: last.predicate.criteria.clone(),
            last_status: last.predicate.status,
            last_at: last.predicate.finished_at,
            records_in_window: in_window,
            change_count: changes.len(),
            changes: changes.into_iter().take(CHANGES_LISTED).collect(),
            highlights,
            failures,
            coverage,
            timeline,
        });
    }
    let controls = controls::build(&reader, since, now).await?;
    Ok(Report {
        generated_at: now,
        controls,
        since,
        store: store.describe(),
        // Integrity only: a quiet window is not a failure of the store.
        intact: verdict.problems.is_empty(),
        head: verdict.head.clone(),
        problems: verdict
            .problems
            .iter()
            .map(|p| format!("{}: {}: {}", p.location, p.code, p.message))
            .collect(),
        never_collected,
        streams,
    })
}

/// What one walk over a stream's records, newest first, gathers.
struct Walk {
    /// The newest records' outcomes, oldest first.
    timeline: Vec<Tick>,
    /// The window's records, newest first, with the payloads of the good
    /// ones.
    window: Vec<(Statement<RecordPredicate>, Option<Value>)>,
    /// The last good snapshot before the window: the baseline the
    /// window's changes are measured from.
    before_ok: Option<Value>,
    /// The newest record that could be read.
    newest: Statement<RecordPredicate>,
}

/// Reads `stream` newest first, each record once, as far as the timeline
/// and the window need; `None` when no record of it can be read.
/// Unreadable records are passed over (`verify` names them).
async fn walk(
    reader: &Reader,
    stream: &str,
    seqs: &[u64],
    since: DateTime<Utc>,
) -> anyhow::Result<Option<Walk>> {
    let mut timeline = Vec::new();
    let mut window = Vec::new();
    let mut before_ok = None;
    let mut window_done = false;
    let mut newest = None;
    let mut records = std::pin::pin!(reader.read(stream, seqs.iter().rev().copied()));
    let mut walked = 0;
    while let Some(record) = records.try_next().await? {
        let in_timeline = walked < TIMELINE;
        walked += 1;
        if !in_timeline && window_done {
            break;
        }
        let Some(st) = record.statement.clone() else {
            continue;
        };
        let p = &st.predicate;
        if in_timeline {
            timeline.push(Tick {
                seq: p.seq,
                at: p.finished_at,
                status: p.status,
            });
        }
        if newest.is_none() {
            newest = Some(st.clone());
        }
        if window_done {
            continue;
        }
        if p.finished_at >= since {
            let payload = if p.status == Status::Ok {
                snapshot(reader, &record).await?
            } else {
                None
            };
            window.push((st, payload));
        } else if p.status == Status::Ok {
            before_ok = snapshot(reader, &record).await?;
            window_done = true;
        }
    }
    timeline.reverse();
    Ok(newest.map(|newest| Walk {
        timeline,
        window,
        before_ok,
        newest,
    }))
}

/// A record's payload, or `None` when it cannot be read (the review goes
/// on without it); only the store failing is an error.
async fn snapshot(reader: &Reader, record: &Record) -> anyhow::Result<Option<Value>> {
    match reader.payload(record).await {
        Ok(p) => Ok(p),
        Err(ReadError::Store(e)) => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// A short summary for chat (Slack-compatible `text`).
pub fn summary(r: &Report, location: Option<&std::path::Path>) -> String {
    let highlights: Vec<_> = r.all_highlights().collect();
    let failing = r.failing().count();
    let mut s = format!(
        "Evidence review: {} stream(s), {} highlight(s), {} not ok, integrity {}.",
        r.streams.len(),
        highlights.len(),
        failing,
        if r.intact { "intact" } else { "FAILED" }
    );
    if let Some(h) = &r.head {
        s.push_str(&format!(" head: {h}"));
    }
    for line in r.controls.summary_lines(5) {
        s.push('\n');
        s.push_str(&line);
    }
    for (stream, h) in highlights.iter().take(10) {
        s.push_str(&format!(
            "\n• [{}] {stream}: {}",
            h.severity.as_str(),
            h.message
        ));
    }
    if highlights.len() > 10 {
        s.push_str(&format!("\n… and {} more", highlights.len() - 10));
    }
    if let Some(p) = location {
        s.push_str(&format!("\nFull report: {}", p.display()));
    }
    s
}

/// Posts the summary of `r` (see [`summary`]) to a Slack-compatible
/// webhook as `{"text": …}`: the one delivery of `report --webhook` and of
/// the daemon's nightly review. Anything but a 2xx answer is an error.
pub async fn post_summary(
    http: &reqwest::Client,
    url: &str,
    r: &Report,
    location: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let text = summary(r, location);
    let resp = http
        .post(url)
        .json(&serde_json::json!({ "text": text }))
        .send()
        .await
        // The webhook's URL is its credential: never in a message.
        .map_err(|e| e.without_url())
        .context("cannot reach the report webhook")?;
    if !resp.status().is_success() {
        anyhow::bail!("the report webhook answered {}", resp.status());
    }
    Ok(())
}

/// The Markdown form.
pub fn markdown(r: &Report) -> String {
    use std::fmt::Write;
    let t = |d: &DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut o = String::new();
    let _ = writeln!(o, "# Evidence review — {}\n", t(&r.generated_at));
    let _ = writeln!(
        o,
        "Window: since {} · Store: `{}` · Integrity: **{}**\n",
        t(&r.since),
        r.store,
        if r.intact { "intact" } else { "FAILED" }
    );
    let _ = writeln!(
        o,
        "head: `{}` (keep it: `exhibit verify --known-head` proves later that nothing up to it was removed)\n",
        r.head.as_deref().unwrap_or("none")
    );
    for p in &r.problems {
        let _ = writeln!(o, "- ⚠ {p}");
    }
    o.push_str(&r.controls.markdown(&r.since));
    let _ = writeln!(o, "## Highlights\n");
    let mut any = false;
    for (stream, h) in r.all_highlights() {
        any = true;
        let _ = writeln!(o, "- **{}** `{stream}`: {}", h.severity.as_str(), h.message);
    }
    if !any {
        let _ = writeln!(o, "Nothing that needs attention.");
    }
    let _ = writeln!(o, "\n## Streams\n");
    if let Some(at) = r.streams.iter().find_map(|s| s.coverage.as_ref()?.to) {
        let _ = writeln!(
            o,
            "Coverage is counted from each stream's first record or the window's start, whichever is later, as of the newest checkpoint ({}).\n",
            t(&at)
        );
    }
    let _ = writeln!(
        o,
        "| stream | last | at | records | changes | coverage ok/partial/failed/missed of expected |"
    );
    let _ = writeln!(o, "| --- | --- | --- | --- | --- | --- |");
    for s in &r.streams {
        let cov = s.coverage.as_ref().map_or("—".to_string(), |c| {
            format!(
                "{}/{}/{}/{} of {}",
                c.ok, c.partial, c.failed, c.missed, c.expected
            )
        });
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} | {} |",
            s.stream,
            s.last_status.as_str(),
            t(&s.last_at),
            s.records_in_window,
            s.change_count,
            cov
        );
    }
    for s in r
        .streams
        .iter()
        .filter(|s| !s.changes.is_empty() || !s.failures.is_empty())
    {
        let _ = writeln!(o, "\n### `{}`\n", s.stream);
        for g in failure_groups(&s.failures) {
            let _ = writeln!(o, "- {}: {}", g.summary(), g.error.unwrap_or(""));
        }
        if !s.changes.is_empty() {
            let _ = writeln!(o, "```diff\n{}```", change_lines(&s.changes));
            if s.change_count > s.changes.len() {
                let _ = writeln!(
                    o,
                    "… and {} more (`exhibit diff {}`)",
                    s.change_count - s.changes.len(),
                    s.stream
                );
            }
        }
    }
    o
}

pub use html::html;
