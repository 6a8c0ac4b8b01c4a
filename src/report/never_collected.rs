//! The review's entry for a collector the config enables that has no
//! record at all: there is no stream of it to review, and its absence is
//! what the security lead must see.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::highlights::{self, Highlight};

/// An enabled collector with no record at all: no stream to review.
#[derive(Debug, Clone, Serialize)]
pub struct NeverCollected {
    /// Its streams, `<name>/*`, as the highlights name them.
    pub streams: String,
    /// What the review says of it.
    pub highlight: Highlight,
}

impl NeverCollected {
    /// The entries of the `configured` collectors that none of `streams`
    /// (every stream the store lists) belongs to.
    pub(super) fn all(
        configured: &[crate::verify::Configured],
        streams: Vec<&str>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<Self> {
        crate::verify::never_collected(configured, &streams)
            .into_iter()
            .map(|c| Self::of(c, since, now))
            .collect()
    }

    /// The entry of `c`, a high highlight when its schedule was due in the
    /// window (evidence is missing), else a medium one naming its first
    /// slot.
    fn of(c: &crate::verify::Configured, since: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let what = format!(
            "collector `{}` ({}) is configured but has no evidence yet",
            c.name, c.kind
        );
        let (severity, message) = match c.due(since, now) {
            (n, Some(first)) => (
                highlights::Severity::High,
                format!(
                    "{what}: its schedule `{}` was due {n} time(s) in the window, first at {}",
                    c.schedule.expression(),
                    stamp(first)
                ),
            ),
            (_, None) => (
                highlights::Severity::Medium,
                match c.schedule.next_after(now) {
                    Some(next) => format!("{what}: its first slot is {}", stamp(next)),
                    None => format!(
                        "{what}: its schedule `{}` has no slot to come",
                        c.schedule.expression()
                    ),
                },
            ),
        };
        NeverCollected {
            streams: format!("{}/*", c.name),
            highlight: Highlight {
                rule: "never_collected",
                severity,
                message,
            },
        }
    }
}
