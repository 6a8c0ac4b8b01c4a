//! `exhibit list`, `exhibit show` and the records `exhibit diff` compares:
//! read-only views of a store for people, over the [`crate::read`] side.
//! They show what records claim, and what is wrong with a record when
//! something is; `verify` is what checks them.

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use serde_json::Value;

use crate::evidence::record::{RecordPredicate, Statement, Status};
use crate::read::{ReadError, Reader, Record};

/// Streams whose last records `list` reads at once.
const LIST_AHEAD: usize = 8;

/// One line of `exhibit list`.
#[derive(Debug, Serialize)]
pub struct StreamLine {
    /// The stream.
    pub stream: String,
    /// How many records.
    pub records: usize,
    /// The collector kind.
    pub kind: String,
    /// The last record's sequence number.
    pub last_seq: u64,
    /// The last record's status.
    pub last_status: String,
    /// When it finished.
    pub last_at: String,
    /// Its error, if any.
    pub last_error: Option<String>,
}

/// Lists the streams of a store. A stream whose last record cannot be read
/// is listed with `unreadable` as its status and the reason as its error.
pub async fn list(reader: &Reader) -> anyhow::Result<Vec<StreamLine>> {
    let index = reader.index().await?;
    futures::stream::iter(index.streams())
        .map(|(stream, seqs)| async move {
            let seq = *seqs.last().expect("indexed streams have records");
            let last = reader
                .record(stream, seq)
                .await?
                .unwrap_or_else(|| Record::vanished(stream, seq));
            Ok::<_, anyhow::Error>(line(last, seqs.len()))
        })
        .buffered(LIST_AHEAD)
        .try_collect()
        .await
}

fn line(last: Record, records: usize) -> StreamLine {
    match last.statement {
        Some(s) => StreamLine {
            stream: last.stream,
            records,
            kind: s.predicate.collector.kind,
            last_seq: s.predicate.seq,
            last_status: s.predicate.status.as_str().to_string(),
            last_at: s
                .predicate
                .finished_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            last_error: s.predicate.error,
        },
        None => StreamLine {
            stream: last.stream,
            records,
            kind: "-".into(),
            last_seq: last.seq,
            last_status: "unreadable".into(),
            last_at: "-".into(),
            last_error: last.flaw,
        },
    }
}

/// Renders `list` for people.
pub fn render_list(lines: &[StreamLine]) -> String {
    use std::fmt::Write;
    if lines.is_empty() {
        return "The store holds no records yet.\n".into();
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<40} {:<10} {:>7} {:<8} LAST AT",
        "STREAM", "KIND", "RECORDS", "LAST"
    );
    for l in lines {
        let _ = writeln!(
            o,
            "{:<40} {:<10} {:>7} {:<8} {}{}",
            l.stream,
            l.kind,
            l.records,
            l.last_status,
            l.last_at,
            l.last_error
                .as_ref()
                .map(|e| format!("  ({})", truncate(e, 80)))
                .unwrap_or_default()
        );
    }
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// A record and its payload, for `show`.
#[derive(Debug, Serialize)]
pub struct Shown {
    /// The record's key.
    pub key: String,
    /// The statement.
    pub statement: Statement<RecordPredicate>,
    /// The payload, parsed.
    pub payload: Option<Value>,
    /// What is wrong with the record, when something is (see
    /// [`Record::flaw`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flaw: Option<String>,
}

/// Resolves `STREAM[@SEQ]` (default: the last record) and reads it.
pub async fn show(reader: &Reader, spec: &str) -> anyhow::Result<Shown> {
    let (stream, seq) = match spec.rsplit_once('@') {
        Some((s, n)) => (
            s,
            Some(
                n.parse::<u64>()
                    .with_context(|| format!("`{n}` is not a sequence number"))?,
            ),
        ),
        None => (spec, None),
    };
    match seq {
        Some(n) => show_at(reader, stream, n).await,
        None => match reader.latest(stream).await? {
            Some(record) => shown(reader, record).await,
            None => bail!(
                "no stream `{stream}` in {}; `exhibit list` shows the streams",
                reader.describe()
            ),
        },
    }
}

/// Reads record `seq` of `stream` for `show`.
async fn show_at(reader: &Reader, stream: &str, seq: u64) -> anyhow::Result<Shown> {
    match reader.record(stream, seq).await? {
        Some(record) => shown(reader, record).await,
        None => bail!(
            "{} does not exist in {}",
            crate::evidence::layout::record(stream, seq),
            reader.describe()
        ),
    }
}

/// A record with its payload; an error when the record is not one.
async fn shown(reader: &Reader, record: Record) -> anyhow::Result<Shown> {
    // A record that names no payload is still shown, with its flaw.
    let payload = match record.payload_key() {
        Some(_) => reader.payload(&record).await?,
        None => None,
    };
    let Record {
        key,
        statement,
        flaw,
        ..
    } = record;
    match statement {
        Some(statement) => Ok(Shown {
            key,
            statement,
            payload,
            flaw,
        }),
        None => Err(ReadError::Record {
            key,
            reason: flaw.unwrap_or_else(|| "not a record".into()),
        }
        .into()),
    }
}

/// What `diff` compares.
#[derive(Debug)]
pub struct Pair {
    /// The older record.
    pub older: Shown,
    /// The newer record.
    pub newer: Shown,
    /// The newer side's payload: the newer record's, or for a stream whose
    /// records hold their own window of events, every window after the
    /// older record up to the newer one (see [`crate::diff::span`]).
    pub after: Value,
    /// The windowed fields of the stream's kind.
    pub windowed: &'static [&'static str],
    /// The identities of the stream's kind's entities (none: generic).
    pub identities: &'static [&'static [&'static str]],
    /// Records the defaults passed over, newest first: failed and
    /// missed ones, whose payloads are error documents, not snapshots.
    pub skipped: Vec<(u64, Status)>,
}

/// Whether a record's payload is a snapshot of its source (whole or in
/// part) rather than an error document.
fn holds_snapshot(s: Status) -> bool {
    matches!(s, Status::Ok | Status::Partial)
}

/// The two records `diff` compares: the given sequence numbers, or by
/// default the last two records of the stream that hold snapshots (ok or
/// partial), passing over failed and missed ones, which are listed.
pub async fn pick_pair(
    reader: &Reader,
    stream: &str,
    a: Option<u64>,
    b: Option<u64>,
) -> anyhow::Result<Pair> {
    let Some(seqs) = reader.seqs(stream).await? else {
        bail!(
            "no stream `{stream}` in {}; `exhibit list` shows the streams",
            reader.describe()
        );
    };
    let mut skipped = Vec::new();
    // The newest records holding snapshots, as many as the pair still
    // needs, passing over (and naming) the others.
    let mut snapshots = Vec::new();
    let wanted = match (a, b) {
        (Some(_), Some(_)) => 0,
        (Some(_), None) => 1,
        _ => 2,
    };
    if wanted > 0 {
        let mut newest = std::pin::pin!(reader.read(stream, seqs.into_iter().rev()));
        while let Some(record) = newest.try_next().await? {
            let Some(p) = record.predicate() else {
                return Err(record.error().into());
            };
            if holds_snapshot(p.status) {
                snapshots.push(p.seq);
                if snapshots.len() == wanted {
                    break;
                }
            } else {
                skipped.push((p.seq, p.status));
            }
        }
    }
    let (a, b) = match (a, b, &snapshots[..]) {
        (Some(a), Some(b), _) => (a, b),
        (Some(a), None, [newer]) => (a, *newer),
        (None, _, [newer, older]) => (*older, *newer),
        _ => bail!(
            "`{stream}` has too few records holding snapshots (ok or partial) to compare; \
             failed and missed records hold error documents"
        ),
    };
    let older = show_at(reader, stream, a).await?;
    let newer = show_at(reader, stream, b).await?;
    let spec = crate::collect::kind(&newer.statement.predicate.collector.kind);
    let windowed = spec.map(|k| k.windowed).unwrap_or_default();
    let identities = spec.map(|k| k.identities).unwrap_or_default();
    let newest = newer.payload.clone().unwrap_or(Value::Null);
    let after = if windowed.is_empty() {
        newest
    } else {
        let between: Vec<Shown> = futures::stream::iter(a + 1..b)
            .map(|seq| show_at(reader, stream, seq))
            .buffered(LIST_AHEAD)
            .try_collect()
            .await?;
        let mut run: Vec<Value> = between
            .into_iter()
            .filter(|r| holds_snapshot(r.statement.predicate.status))
            .filter_map(|r| r.payload)
            .collect();
        run.push(newest);
        let refs: Vec<&Value> = run.iter().collect();
        crate::diff::span(&refs, identities, windowed).unwrap_or(Value::Null)
    };
    Ok(Pair {
        older,
        newer,
        after,
        windowed,
        identities,
        skipped,
    })
}

/// Renders `show` for people.
pub fn render_show(s: &Shown) -> String {
    let p = &s.statement.predicate;
    let mut o = format!(
        "Record   {}\nStream   {} #{}\nStatus   {}{}\nKind     {} ({} {})\nSource   {}\nTime     {} → {} ({} attempt(s))\nCriteria {}\nPayload  {} ({} bytes)\nPrev     {}\nRun      {} ({:?})\n",
        s.key,
        p.stream,
        p.seq,
        p.status.as_str(),
        p.error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default(),
        p.collector.kind,
        p.collector.name,
        p.collector.version,
        p.source,
        p.started_at.to_rfc3339(),
        p.finished_at.to_rfc3339(),
        p.attempts,
        p.criteria.join(", "),
        s.statement
            .subject
            .first()
            .map_or("-", |x| x.digest.sha256.as_str()),
        p.payload.size,
        p.prev.as_deref().unwrap_or("none (first record)"),
        p.run_id,
        p.trigger,
    );
    if let Some(flaw) = &s.flaw {
        o.push_str(&format!("Flaw     {flaw}\n"));
    }
    o.push('\n');
    match (&s.payload, &s.flaw) {
        (Some(v), _) => o.push_str(&serde_json::to_string_pretty(v).unwrap_or_default()),
        (None, None) => o.push_str("(payload blob missing)"),
        (None, Some(_)) => o.push_str("(payload not shown: see the flaw above)"),
    }
    o.push('\n');
    o
}
