//! Collectors the config enables that have no record at all. The store
//! alone cannot show them: a stream that was never written is not in it.
//! Given the config (`list`, `report`, and `verify` run with one), each of
//! them is named; for `verify` it is a gap once its schedule was due in the
//! period, so that the verdict is `INCOMPLETE`, never `INTACT`. Without a
//! config (an auditor's copy of the store) nothing here applies.

use chrono::{DateTime, Utc};

use super::Findings;
use super::load::Loaded;
use crate::evidence::layout;
use crate::schedule::Schedule;

/// A collector the config enables: records of it are expected in the
/// store, under `<name>/`.
#[derive(Debug, Clone)]
pub struct Configured {
    /// Its instance name, the first segment of its streams.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// When it runs.
    pub schedule: Schedule,
}

impl Configured {
    /// The enabled collectors of `config`, in file order.
    pub fn enabled_in(config: &crate::config::Config) -> Vec<Configured> {
        config
            .collectors
            .iter()
            .filter(|c| c.enabled)
            .map(|c| Configured {
                name: c.name.clone(),
                kind: c.kind.clone(),
                schedule: c.schedule.clone(),
            })
            .collect()
    }

    /// How many of its slots fell in `[from, until]`, and the first.
    pub fn due(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> (usize, Option<DateTime<Utc>>) {
        if until < from {
            return (0, None);
        }
        let (first, n) = self
            .schedule
            .slots_between(from - chrono::Duration::seconds(1), until, 1);
        (n, first.first().copied())
    }

    /// Whether `stream` is one of its streams.
    fn owns(&self, stream: &str) -> bool {
        stream.split('/').next() == Some(self.name.as_str()) && stream.contains('/')
    }
}

/// The collectors of `configured` that none of `streams` belongs to: they
/// never produced a record.
pub fn never_collected<'a>(configured: &'a [Configured], streams: &[&str]) -> Vec<&'a Configured> {
    configured
        .iter()
        .filter(|c| !streams.iter().any(|s| c.owns(s)))
        .collect()
}

/// A gap for each configured collector with no record at all whose
/// schedule was due between `from` (else the store's first record) and
/// `until`.
pub(super) fn gaps(
    view: &Loaded,
    configured: &[Configured],
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    found: &mut Findings,
) {
    let Some(until) = until else { return };
    let first_record = view
        .records()
        .map(|l| l.record.predicate().started_at)
        .min();
    // Nothing tells when the collector was configured: the period is
    // counted from its start, else from the store's beginning.
    let Some(start) = from.or(first_record) else {
        return;
    };
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let streams: Vec<&str> = view.streams.keys().map(String::as_str).collect();
    for c in never_collected(configured, &streams) {
        let (due, first) = c.due(start, until);
        let Some(first) = first else { continue };
        found.gap(
            &layout::collector_prefix(&c.name),
            "never_collected",
            format!(
                "collector `{}` ({}) is enabled in the config but has no record at all: its schedule `{}` was due {due} time(s) from {} to {}",
                c.name,
                c.kind,
                c.schedule.expression(),
                stamp(first),
                stamp(until)
            ),
        );
    }
}
