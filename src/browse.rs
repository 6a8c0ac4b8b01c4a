//! `exhibit list` and `exhibit show`: read-only views of a store for people.
//! They show what records claim; `verify` is what checks them.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::Value;

use crate::evidence::layout;
use crate::evidence::record::{RecordPredicate, Statement, Status, peek};
use crate::store::Store;

/// Every stream in the store, with its record keys in order.
pub async fn streams(store: &dyn Store) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in store.list(layout::RECORDS).await? {
        if let Some((stream, _)) = layout::stream_record(&key) {
            out.entry(stream).or_default().push(key);
        }
    }
    Ok(out)
}

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

/// Lists the streams of a store.
pub async fn list(store: &dyn Store) -> anyhow::Result<Vec<StreamLine>> {
    let mut out = Vec::new();
    for (stream, keys) in streams(store).await? {
        let last = keys.last().expect("streams have records");
        let bytes = store.get(last).await?.context("record vanished")?;
        let s: Statement<RecordPredicate> = peek(&bytes).with_context(|| last.clone())?;
        out.push(StreamLine {
            stream,
            records: keys.len(),
            kind: s.predicate.collector.kind,
            last_seq: s.predicate.seq,
            last_status: s.predicate.status.as_str().to_string(),
            last_at: s
                .predicate
                .finished_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            last_error: s.predicate.error,
        });
    }
    Ok(out)
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
}

/// Resolves `STREAM[@SEQ]` (default: the last record) and reads it.
pub async fn show(store: &dyn Store, spec: &str) -> anyhow::Result<Shown> {
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
    let key = match seq {
        Some(n) => layout::record(stream, n),
        None => {
            let all = streams(store).await?;
            match all.get(stream).and_then(|k| k.last()) {
                Some(k) => k.clone(),
                None => bail!(
                    "no stream `{stream}` in {}; `exhibit list` shows the streams",
                    store.describe()
                ),
            }
        }
    };
    let bytes = store
        .get(&key)
        .await?
        .with_context(|| format!("{key} does not exist in {}", store.describe()))?;
    let statement: Statement<RecordPredicate> = peek(&bytes).with_context(|| key.clone())?;
    let payload = match statement.subject.first() {
        Some(s) => match store.get(&layout::blob(&s.digest.sha256)).await? {
            Some(b) => {
                Some(serde_json::from_slice(&b).with_context(|| format!("payload of {key}"))?)
            }
            None => None,
        },
        None => None,
    };
    Ok(Shown {
        key,
        statement,
        payload,
    })
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
    store: &dyn Store,
    stream: &str,
    a: Option<u64>,
    b: Option<u64>,
) -> anyhow::Result<Pair> {
    let all = streams(store).await?;
    let Some(keys) = all.get(stream) else {
        bail!(
            "no stream `{stream}` in {}; `exhibit list` shows the streams",
            store.describe()
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
        for key in keys.iter().rev() {
            let bytes = store.get(key).await?.context("record vanished")?;
            let s: Statement<RecordPredicate> = peek(&bytes).with_context(|| key.clone())?;
            if holds_snapshot(s.predicate.status) {
                snapshots.push(s.predicate.seq);
                if snapshots.len() == wanted {
                    break;
                }
            } else {
                skipped.push((s.predicate.seq, s.predicate.status));
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
    let older = show(store, &format!("{stream}@{a}")).await?;
    let newer = show(store, &format!("{stream}@{b}")).await?;
    let windowed = crate::collect::kind(&newer.statement.predicate.collector.kind)
        .map(|k| k.windowed)
        .unwrap_or_default();
    let newest = newer.payload.clone().unwrap_or(Value::Null);
    let after = if windowed.is_empty() {
        newest
    } else {
        let mut run = Vec::new();
        for seq in a + 1..b {
            let r = show(store, &format!("{stream}@{seq}")).await?;
            if holds_snapshot(r.statement.predicate.status)
                && let Some(p) = r.payload
            {
                run.push(p);
            }
        }
        run.push(newest);
        let refs: Vec<&Value> = run.iter().collect();
        crate::diff::span(&refs, windowed).unwrap_or(Value::Null)
    };
    Ok(Pair {
        older,
        newer,
        after,
        windowed,
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
    o.push('\n');
    match &s.payload {
        Some(v) => o.push_str(&serde_json::to_string_pretty(v).unwrap_or_default()),
        None => o.push_str("(payload blob missing)"),
    }
    o.push('\n');
    o
}
