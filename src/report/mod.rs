//! `exhibit report`: the security lead's nightly review. For every stream:
//! its last status, what changed during the window (entity by entity), the
//! changes that matter for controls (highlights), failed and missed
//! collections, coverage, and a small status timeline. Rendered as
//! Markdown or as one self-contained HTML page (no external assets).

pub(crate) mod highlights;
mod html;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::diff::Change;
use crate::evidence::layout;
use crate::evidence::record::{RecordPredicate, Statement, Status, peek};
use crate::store::Store;
use crate::verify::Coverage;

pub use highlights::Highlight;

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
    /// Per stream.
    pub streams: Vec<StreamReport>,
}

impl Report {
    /// Every highlight, with its stream.
    pub fn all_highlights(&self) -> impl Iterator<Item = (&str, &Highlight)> {
        self.streams
            .iter()
            .flat_map(|s| s.highlights.iter().map(move |h| (s.stream.as_str(), h)))
    }

    /// Streams whose last collection did not succeed.
    pub fn failing(&self) -> impl Iterator<Item = &StreamReport> {
        self.streams.iter().filter(|s| s.last_status != Status::Ok)
    }
}

async fn load(
    store: &dyn Store,
    key: &str,
) -> anyhow::Result<(Statement<RecordPredicate>, Option<Value>)> {
    let bytes = store
        .get(key)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{key} vanished"))?;
    let st: Statement<RecordPredicate> = peek(&bytes)?;
    let payload = match st.subject.first() {
        Some(s) => store
            .get(&layout::blob(&s.digest.sha256))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok()),
        None => None,
    };
    Ok((st, payload))
}

/// Builds the review of everything since `since`.
pub async fn build(store: Arc<dyn Store>, since: DateTime<Utc>) -> anyhow::Result<Report> {
    let now = Utc::now();
    let verdict = crate::verify::verify(
        store.clone(),
        &crate::verify::Options {
            from: Some(since),
            to: Some(now),
            keys: None,
            bundle: None,
            timestamps: Default::default(),
        },
    )
    .await?;
    let mut streams = Vec::new();
    for (stream, keys) in crate::browse::streams(store.as_ref()).await? {
        let mut timeline = Vec::new();
        for key in keys.iter().rev().take(TIMELINE) {
            let bytes = store.get(key).await?.unwrap_or_default();
            if let Ok(st) = peek::<RecordPredicate>(&bytes) {
                let p = st.predicate;
                timeline.push(Tick {
                    seq: p.seq,
                    at: p.finished_at,
                    status: p.status,
                });
            }
        }
        timeline.reverse();
        // The window's records (newest first), and the last good snapshot
        // before the window: the baseline the window's changes are
        // measured from.
        let mut window = Vec::new();
        let mut before_ok = None;
        for key in keys.iter().rev() {
            let (st, payload) = load(store.as_ref(), key).await?;
            if st.predicate.finished_at >= since {
                window.push((st, payload));
            } else if st.predicate.status == Status::Ok {
                before_ok = payload;
                break;
            }
        }
        let last = match window.first() {
            Some((st, _)) => st.clone(),
            None => {
                load(store.as_ref(), keys.last().expect("streams have records"))
                    .await?
                    .0
            }
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
        for f in &failures {
            highlights.push(Highlight::failure(f));
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
            stream,
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
    Ok(Report {
        generated_at: now,
        since,
        store: store.describe(),
        intact: verdict.intact,
        problems: verdict
            .problems
            .iter()
            .map(|p| format!("{}: {}: {}", p.location, p.code, p.message))
            .collect(),
        streams,
    })
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
    for p in &r.problems {
        let _ = writeln!(o, "- ⚠ {p}");
    }
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
        for f in &s.failures {
            let _ = writeln!(
                o,
                "- {} #{} at {}: {}",
                f.status.as_str(),
                f.seq,
                t(&f.at),
                f.error.as_deref().unwrap_or("")
            );
        }
        if !s.changes.is_empty() {
            let _ = writeln!(o, "```diff\n{}```", crate::diff::render(&s.changes, false));
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
