//! The review's opening section: the controls. Which changed state in the
//! window (pass → fail, and when), which are failing, in error or not
//! evaluated now (and since when, with their open findings), and every
//! exception in force. Read from the results and exception records in the
//! store, so it needs no control library: a control is known by its
//! results.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::html::esc;
use crate::assess;
use crate::control::{RESULT_STREAM_PREFIX, State};
use crate::read::Reader;

/// Most state changes listed per control; the rest are counted.
const CHANGES_LISTED: usize = 10;
/// Most open findings listed per control; the rest are counted.
const FINDINGS_LISTED: usize = 10;

/// A control whose state changed in the window.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    /// The control id.
    pub control: String,
    /// The state before (none: its first result).
    pub from: Option<State>,
    /// The state after.
    pub to: State,
    /// When the evaluation that found it was made.
    pub at: DateTime<Utc>,
    /// The result record, `control/<id>@<seq>`.
    pub record: String,
}

/// A control that needs someone's attention now.
#[derive(Debug, Clone, Serialize)]
pub struct Attention {
    /// The control id.
    pub control: String,
    /// Its title, as its newest result records it.
    pub title: String,
    /// `fail`, `error` or `not_evaluated`.
    pub state: State,
    /// Since when it holds: the first of the trailing results in it.
    pub since: DateTime<Utc>,
    /// Why, for `error` and `not_evaluated`.
    pub reason: Option<String>,
    /// Open findings of the newest result, `(entity, reason)` (at most
    /// ten listed).
    pub open: Vec<(String, String)>,
    /// How many open findings there are.
    pub open_count: usize,
}

/// An exception in force when the review was made.
#[derive(Debug, Clone, Serialize)]
pub struct LiveException {
    /// The control.
    pub control: String,
    /// The entity excepted.
    pub entity: String,
    /// Why.
    pub reason: String,
    /// Who approved it.
    pub approver: String,
    /// When it stops covering findings.
    pub expires: DateTime<Utc>,
    /// Its record, `exception/<control>@<seq>`.
    pub record: Option<String>,
}

/// The controls section of the review.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Controls {
    /// How many controls have results in the store.
    pub assessed: usize,
    /// State changes in the window, oldest first.
    pub changes: Vec<StateChange>,
    /// Changes not listed (beyond ten per control).
    pub changes_unlisted: usize,
    /// Controls failing, in error or not evaluated now.
    pub attention: Vec<Attention>,
    /// Exceptions in force.
    pub exceptions: Vec<LiveException>,
    /// Results or exceptions that could not be read.
    pub problems: Vec<String>,
}

/// Reads the section from the store, as of `now`, for the window since
/// `since`.
pub async fn build(
    reader: &Reader,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Controls> {
    let mut out = Controls::default();
    let index = reader.index().await?;
    let ids: Vec<String> = index
        .streams()
        .filter_map(|(s, _)| s.strip_prefix(RESULT_STREAM_PREFIX).map(str::to_string))
        .collect();
    for id in ids {
        let results = match assess::results(reader, &id, DateTime::<Utc>::MIN_UTC, now).await {
            Ok(r) => r,
            Err(e) => {
                out.problems.push(format!(
                    "{RESULT_STREAM_PREFIX}{id}: cannot read its results: {e:#}"
                ));
                continue;
            }
        };
        let Some((_, newest)) = results.last() else {
            continue;
        };
        out.assessed += 1;
        let mut listed = 0;
        let mut prev: Option<State> = None;
        for (r, e) in &results {
            if e.at >= since && prev != Some(e.state) {
                if listed < CHANGES_LISTED {
                    out.changes.push(StateChange {
                        control: id.clone(),
                        from: prev,
                        to: e.state,
                        at: e.at,
                        record: r.label(),
                    });
                    listed += 1;
                } else {
                    out.changes_unlisted += 1;
                }
            }
            prev = Some(e.state);
        }
        if matches!(
            newest.state,
            State::Fail | State::Error | State::NotEvaluated
        ) {
            let since = assess::state_since(&results).unwrap_or(newest.at);
            let open: Vec<_> = newest.open_findings().collect();
            out.attention.push(Attention {
                title: assess::recorded_title(reader, &id)
                    .await
                    .unwrap_or_else(|| id.clone()),
                control: id.clone(),
                state: newest.state,
                since,
                reason: newest.reason.clone(),
                open: open
                    .iter()
                    .take(FINDINGS_LISTED)
                    .map(|f| (f.entity.clone(), f.reason.clone()))
                    .collect(),
                open_count: open.len(),
            });
        }
    }
    out.changes
        .sort_by(|a, b| (a.at, &a.control).cmp(&(b.at, &b.control)));
    let standing = assess::standing(reader).await?;
    out.problems.extend(standing.problems);
    out.exceptions = standing
        .exceptions
        .into_iter()
        .filter(|e| e.granted_at <= now && now < e.expires)
        .map(|e| LiveException {
            record: e.record.as_ref().map(|r| r.label()),
            control: e.control,
            entity: e.entity,
            reason: e.reason,
            approver: e.approver,
            expires: e.expires,
        })
        .collect();
    Ok(out)
}

fn t(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl StateChange {
    /// `aws-console-mfa: pass → fail at 2025-03-01T06:00:00Z (control/aws-console-mfa@4)`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} → {} at {} ({})",
            self.control,
            self.from.map_or("(first result)", State::as_str),
            self.to.as_str(),
            t(&self.at),
            self.record
        )
    }
}

impl Attention {
    /// `aws-console-mfa (title): fail since …, 1 open finding`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} ({}): {} since {}",
            self.control,
            self.title,
            self.state.as_str(),
            t(&self.since)
        );
        if self.open_count > 0 {
            let _ = write!(s, ", {} open finding(s)", self.open_count);
        }
        if let Some(r) = &self.reason {
            let _ = write!(s, ": {r}");
        }
        s
    }
}

impl LiveException {
    /// `aws-console-mfa: bob excepted until … by ciso (reason)`.
    pub fn line(&self) -> String {
        format!(
            "{}: `{}` excepted until {}, approved by {}: {}{}",
            self.control,
            self.entity,
            t(&self.expires),
            self.approver,
            self.reason,
            self.record
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )
    }
}

impl Controls {
    /// One line for the chat summary.
    pub fn headline(&self) -> String {
        if self.assessed == 0 {
            return "Controls: none assessed yet (no results in the store).".into();
        }
        format!(
            "Controls: {} assessed, {} state change(s), {} failing or not evaluated, {} exception(s) in force.",
            self.assessed,
            self.changes.len() + self.changes_unlisted,
            self.attention.len(),
            self.exceptions.len()
        )
    }

    /// The chat summary's lines: the headline, then at most `n` changes
    /// and controls needing attention.
    pub fn summary_lines(&self, n: usize) -> Vec<String> {
        let mut lines = vec![self.headline()];
        lines.extend(
            self.changes
                .iter()
                .rev()
                .take(n)
                .map(|c| format!("• {}", c.line())),
        );
        lines.extend(self.attention.iter().take(n).map(|a| {
            let mut l = format!("• now {}", a.line());
            if let Some((entity, _)) = a.open.first() {
                let _ = write!(l, " — e.g. {entity}");
            }
            l
        }));
        lines
    }

    /// The Markdown section.
    pub fn markdown(&self, since: &DateTime<Utc>) -> String {
        let mut o = String::from("## Controls\n\n");
        if self.assessed == 0 {
            o.push_str("No control has results in the store: run `exhibit assess` (the daemon evaluates controls as their inputs land).\n\n");
        }
        let _ = writeln!(o, "### Changed since {}\n", t(since));
        if self.changes.is_empty() {
            o.push_str("No control changed state.\n");
        }
        for c in &self.changes {
            let _ = writeln!(o, "- {}", c.line());
        }
        if self.changes_unlisted > 0 {
            let _ = writeln!(o, "- … and {} more", self.changes_unlisted);
        }
        o.push_str("\n### Failing, in error or not evaluated\n\n");
        if self.attention.is_empty() {
            o.push_str("None.\n");
        }
        for a in &self.attention {
            let _ = writeln!(o, "- **{}**", a.line());
            for (entity, reason) in &a.open {
                let _ = writeln!(o, "  - `{entity}`: {reason}");
            }
            if a.open_count > a.open.len() {
                let _ = writeln!(o, "  - … and {} more", a.open_count - a.open.len());
            }
        }
        o.push_str("\n### Exceptions in force\n\n");
        if self.exceptions.is_empty() {
            o.push_str("None.\n");
        }
        for e in &self.exceptions {
            let _ = writeln!(o, "- {}", e.line());
        }
        for p in &self.problems {
            let _ = writeln!(o, "- ⚠ {p}");
        }
        o.push('\n');
        o
    }

    /// The HTML section.
    pub fn html(&self, since: &DateTime<Utc>) -> String {
        let mut o = String::from("<h2>Controls</h2><div class=\"card\" id=\"controls\">");
        if self.assessed == 0 {
            o.push_str("<p>No control has results in the store: run <code>exhibit assess</code> (the daemon evaluates controls as their inputs land).</p>");
        }
        let list = |o: &mut String, id: &str, items: Vec<String>, none: &str| {
            let _ = write!(o, "<ul id=\"{id}\">");
            if items.is_empty() {
                let _ = write!(o, "<li>{}</li>", esc(none));
            }
            for i in items {
                let _ = write!(o, "<li>{i}</li>");
            }
            o.push_str("</ul>");
        };
        let _ = write!(o, "<h3>Changed since {}</h3>", esc(&t(since)));
        let mut changes: Vec<String> = self.changes.iter().map(|c| esc(&c.line())).collect();
        if self.changes_unlisted > 0 {
            changes.push(format!("… and {} more", self.changes_unlisted));
        }
        list(
            &mut o,
            "control-changes",
            changes,
            "No control changed state.",
        );
        o.push_str("<h3>Failing, in error or not evaluated</h3>");
        let attention = self
            .attention
            .iter()
            .map(|a| {
                let mut li = format!("<strong>{}</strong>", esc(&a.line()));
                if !a.open.is_empty() {
                    li.push_str("<ul>");
                    for (entity, reason) in &a.open {
                        let _ =
                            write!(li, "<li><code>{}</code>: {}</li>", esc(entity), esc(reason));
                    }
                    li.push_str("</ul>");
                }
                li
            })
            .collect();
        list(&mut o, "control-attention", attention, "None.");
        o.push_str("<h3>Exceptions in force</h3>");
        let exceptions = self.exceptions.iter().map(|e| esc(&e.line())).collect();
        list(&mut o, "control-exceptions", exceptions, "None.");
        for p in &self.problems {
            let _ = write!(o, "<p>⚠ {}</p>", esc(p));
        }
        o.push_str("</div>");
        o
    }
}
