//! Time: the calendar periods reviews are due in, and the state of a control
//! over an observation period — how many occurrences, how many passed,
//! failed, were excepted or could not be evaluated, what is open now, and
//! since when the current state holds.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::finding::Finding;
use super::{Frequency, State};

/// A calendar period (UTC), `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `2025-Q1`, `2025-03` or `2025`.
    pub label: String,
    /// Its first instant.
    pub start: DateTime<Utc>,
    /// The first instant after it.
    pub end: DateTime<Utc>,
}

fn midnight(y: i32, m: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(y, m, 1)
        .expect("valid month")
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
}

/// The monthly, quarterly or annual period containing `t` (other
/// frequencies are treated as monthly).
pub fn period_of(every: Frequency, t: DateTime<Utc>) -> Period {
    let (y, m) = (t.year(), t.month());
    let (first, months, label) = match every {
        Frequency::Annual => (1, 12, format!("{y}")),
        Frequency::Quarterly => {
            let q = (m - 1) / 3;
            (q * 3 + 1, 3, format!("{y}-Q{}", q + 1))
        }
        _ => (m, 1, format!("{y}-{m:02}")),
    };
    let next = first + months;
    let end = if next > 12 {
        midnight(y + 1, next - 12)
    } else {
        midnight(y, next)
    };
    Period {
        label,
        start: midnight(y, first),
        end,
    }
}

/// The latest period whose review is due at `at`: the last one that ended
/// at least `grace` before `at`.
pub fn review_due(every: Frequency, grace: Duration, at: DateTime<Utc>) -> Period {
    let grace = chrono::Duration::from_std(grace).unwrap_or_default();
    let current = period_of(every, at - grace);
    period_of(every, current.start - chrono::Duration::seconds(1))
}

/// One evaluation (state control) or one occurrence (event control), for
/// [`summarize`].
#[derive(Debug, Clone)]
pub struct Point {
    /// When it was evaluated or happened.
    pub at: DateTime<Utc>,
    /// Its state.
    pub state: State,
}

/// A control over a period.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Occurrences in the period.
    pub occurrences: usize,
    /// Of which passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Failed only on excepted findings.
    pub excepted: usize,
    /// Could not be evaluated (no fresh, complete input).
    pub not_evaluated: usize,
    /// Could not be evaluated (policy error).
    pub error: usize,
    /// Did not apply.
    pub not_applicable: usize,
    /// The state of the newest occurrence.
    pub current: Option<State>,
    /// Since when the current state holds: the first of the trailing run of
    /// occurrences in that state.
    pub since: Option<DateTime<Utc>>,
    /// The open findings of the newest evaluation.
    pub open_findings: Vec<Finding>,
}

/// Counts `points` inside `[from, to]` and finds since when the newest
/// state holds. `latest_findings` are the findings of the newest
/// evaluation; the open ones are kept.
pub fn summarize(
    points: impl IntoIterator<Item = Point>,
    latest_findings: &[Finding],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Summary {
    let mut points: Vec<Point> = points
        .into_iter()
        .filter(|p| p.at >= from && p.at <= to)
        .collect();
    points.sort_by_key(|p| p.at);
    let mut s = Summary {
        occurrences: points.len(),
        ..Summary::default()
    };
    for p in &points {
        *match p.state {
            State::Pass => &mut s.pass,
            State::Fail => &mut s.fail,
            State::Excepted => &mut s.excepted,
            State::NotEvaluated => &mut s.not_evaluated,
            State::Error => &mut s.error,
            State::NotApplicable => &mut s.not_applicable,
        } += 1;
    }
    if let Some(last) = points.last() {
        s.current = Some(last.state);
        s.since = points
            .iter()
            .rev()
            .take_while(|p| p.state == last.state)
            .last()
            .map(|p| p.at);
    }
    s.open_findings = latest_findings
        .iter()
        .filter(|f| f.is_open())
        .cloned()
        .collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn calendar_periods() {
        let p = period_of(Frequency::Quarterly, t("2025-11-15T10:00:00Z"));
        assert_eq!(p.label, "2025-Q4");
        assert_eq!(
            (p.start, p.end),
            (t("2025-10-01T00:00:00Z"), t("2026-01-01T00:00:00Z"))
        );
        let p = period_of(Frequency::Monthly, t("2024-02-29T23:59:59Z"));
        assert_eq!(p.label, "2024-02");
        assert_eq!(p.end, t("2024-03-01T00:00:00Z"));
        assert_eq!(
            period_of(Frequency::Annual, t("2025-06-01T00:00:00Z")).label,
            "2025"
        );
    }

    #[test]
    fn a_review_is_due_once_the_grace_after_its_period_has_passed() {
        let grace = Duration::from_secs(30 * 86_400);
        // 2025-04-20 minus 30 days is in Q1: Q1's review is not due yet.
        assert_eq!(
            review_due(Frequency::Quarterly, grace, t("2025-04-20T00:00:00Z")).label,
            "2024-Q4"
        );
        // From 2025-05-01 on, Q1's is.
        assert_eq!(
            review_due(Frequency::Quarterly, grace, t("2025-05-01T00:00:00Z")).label,
            "2025-Q1"
        );
        assert_eq!(
            review_due(Frequency::Annual, grace, t("2025-01-31T00:00:00Z")).label,
            "2024"
        );
    }

    #[test]
    fn counts_and_since_when() {
        let day = |d: u32, state| Point {
            at: t(&format!("2025-03-{d:02}T00:00:00Z")),
            state,
        };
        let points = vec![
            day(1, State::Pass),
            day(2, State::Fail),
            day(3, State::NotEvaluated),
            day(4, State::Excepted),
            day(5, State::Pass),
            day(6, State::Pass),
            day(7, State::Error),
            day(8, State::Pass),
            day(9, State::Pass),
            day(20, State::Fail),
        ];
        let open = Finding {
            entity: "bob".into(),
            reason: "no MFA".into(),
            details: Default::default(),
            exception: None,
        };
        let s = summarize(
            points,
            std::slice::from_ref(&open),
            t("2025-03-01T00:00:00Z"),
            t("2025-03-10T00:00:00Z"),
        );
        assert_eq!(
            (
                s.occurrences,
                s.pass,
                s.fail,
                s.excepted,
                s.not_evaluated,
                s.error
            ),
            (9, 5, 1, 1, 1, 1)
        );
        assert_eq!(s.current, Some(State::Pass));
        assert_eq!(s.since, Some(t("2025-03-08T00:00:00Z")));
        assert_eq!(s.open_findings, vec![open]);
        let empty = summarize(
            Vec::new(),
            &[],
            t("2025-03-01T00:00:00Z"),
            t("2025-03-10T00:00:00Z"),
        );
        assert_eq!(
            (empty.occurrences, empty.current, empty.since),
            (0, None, None)
        );
    }
}
