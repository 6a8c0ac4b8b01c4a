//! Cron schedules in UTC: standard 5-field expressions, 6-field ones with
//! seconds (handy in tests), and the `@daily`-style aliases.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::CronParser;

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    expression: String,
    cron: Cron,
}

impl Schedule {
    /// Parses a cron expression; the error says what is wrong with it.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let cron = CronParser::new()
            .parse(expression.trim())
            .map_err(|e| format!("invalid cron schedule `{expression}`: {e}"))?;
        Ok(Schedule {
            expression: expression.trim().to_string(),
            cron,
        })
    }

    /// Parses a schedule the agent is to run: besides being valid, it must
    /// have a slot after now, or the collector would never run (`0 0 31 2
    /// *`, or a year gone by). Records keep old schedules, so reading them
    /// uses [`Schedule::parse`].
    pub fn parse_upcoming(expression: &str) -> Result<Self, String> {
        let s = Self::parse(expression)?;
        s.require_future_slot(Utc::now())?;
        Ok(s)
    }

    /// An error unless the schedule has a slot after `now`.
    pub fn require_future_slot(&self, now: DateTime<Utc>) -> Result<(), String> {
        match self.next_after(now) {
            Some(_) => Ok(()),
            None => Err(format!(
                "schedule `{}` has no future slot: it would never run",
                self.expression
            )),
        }
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }

    /// Slots in `(from, to]`, at most `limit` of them, and the total count
    /// (counted up to `count_limit`).
    pub fn slots_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        const COUNT_LIMIT: usize = 10_000_000;
        let mut out = Vec::new();
        let mut count = 0;
        let mut t = from;
        while let Some(next) = self.next_after(t) {
            if next > to || count >= COUNT_LIMIT {
                break;
            }
            if out.len() < limit {
                out.push(next);
            }
            count += 1;
            t = next;
        }
        (out, count)
    }

    /// The longest wait between two consecutive slots, looking ahead from
    /// `start`: what "on schedule" allows between two successes of a
    /// stream. `@daily` gives a day; `0 9 * * 1-5` gives the three days over
    /// a weekend. `None` for a schedule with fewer than two future slots.
    ///
    /// Cron patterns repeat within a year (leap days aside), so 400 days of
    /// slots are looked at: every gap among the first [`GAP_EXACT_SLOTS`],
    /// and after that, for a dense schedule, probes at least an hour apart.
    /// A gap longer than the probe step always contains a probe, and the
    /// slots on either side of a probe measure its gap exactly; shorter gaps
    /// are shorter than one already found or than an hour.
    pub fn longest_gap_after(&self, start: DateTime<Utc>) -> Option<std::time::Duration> {
        let first = self.next_after(start)?;
        let end = first + chrono::Duration::days(400);
        let mut longest = chrono::Duration::zero();
        let mut prev = first;
        let mut seen = 0;
        while prev <= end && seen < GAP_EXACT_SLOTS {
            let Some(next) = self.next_after(prev) else {
                break;
            };
            longest = longest.max(next - prev);
            prev = next;
            seen += 1;
        }
        if seen == 0 {
            return None;
        }
        while prev <= end && seen == GAP_EXACT_SLOTS {
            let probe = prev + longest.max(chrono::Duration::hours(1));
            let Some(after) = self.next_after(probe) else {
                break;
            };
            let before = self
                .cron
                .find_previous_occurrence(&probe, true)
                .unwrap_or(prev);
            longest = longest.max(after - before);
            prev = after;
        }
        longest.to_std().ok()
    }
}

/// How many slots [`Schedule::longest_gap_after`] measures one by one.
pub const GAP_EXACT_SLOTS: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_field_six_field_and_aliases() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 10, 30, 15).unwrap();
        let daily = Schedule::parse("@daily").unwrap();
        assert_eq!(
            daily.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap()
        );
        let every5 = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(
            every5.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 10, 35, 0).unwrap()
        );
        let secs = Schedule::parse("*/2 * * * * *").unwrap();
        assert_eq!(
            secs.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 10, 30, 16).unwrap()
        );
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("not cron").is_err());
    }

    #[test]
    fn a_schedule_that_never_comes_is_refused() {
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
        // There is no 31 February: valid cron, no slot ever.
        let feb31 = Schedule::parse("0 0 31 2 *").unwrap();
        let err = feb31.require_future_slot(now).unwrap_err();
        assert!(err.contains("`0 0 31 2 *` has no future slot"), "{err}");
        assert!(Schedule::parse_upcoming("0 0 31 2 *").is_err());
        // A year gone by, with seconds and year fields.
        let past = Schedule::parse("0 0 0 1 1 * 2020").unwrap();
        assert!(past.require_future_slot(now).is_err());
        assert!(Schedule::parse_upcoming("@daily").is_ok());
        assert!(Schedule::parse_upcoming("0 0 29 2 *").is_ok());
    }

    #[test]
    fn slots_between_is_half_open() {
        let s = Schedule::parse("0 * * * *").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 1, 1, 5, 0, 0).unwrap();
        let (slots, n) = s.slots_between(from, to, 3);
        assert_eq!(n, 5);
        assert_eq!(slots.len(), 3);
        assert_eq!(slots[0], Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap());
    }

    #[test]
    fn the_longest_gap_is_what_the_schedule_allows_between_runs() {
        // A Wednesday, so that every scan has to cross a weekend.
        let t = Utc.with_ymd_and_hms(2026, 1, 7, 10, 30, 0).unwrap();
        let gap = |e: &str| {
            Schedule::parse(e)
                .unwrap()
                .longest_gap_after(t)
                .map(|d| d.as_secs())
        };
        assert_eq!(gap("@daily"), Some(86_400));
        assert_eq!(gap("@hourly"), Some(3_600));
        assert_eq!(gap("*/2 * * * * *"), Some(2));
        // Weekdays at 09:00: Friday to Monday.
        assert_eq!(gap("0 9 * * 1-5"), Some(3 * 86_400));
        // Irregular within a day: 06:00 and 18:00 → 12 h; 08:00 and 10:00 → 22 h.
        assert_eq!(gap("0 6,18 * * *"), Some(12 * 3_600));
        assert_eq!(gap("0 8,10 * * *"), Some(22 * 3_600));
        // Monthly on the 31st skips the short months: 31 Aug → 31 Oct
        // is 61 days, the longest.
        assert_eq!(gap("0 0 31 * *"), Some(61 * 86_400));
        // Every minute of office hours on weekdays: Friday 17:59 → Monday 09:00.
        assert_eq!(gap("* 9-17 * * 1-5"), Some(2 * 86_400 + 15 * 3_600 + 60));
        // Dense and weekday-only: beyond the slots measured one by one, the
        // probes still find the weekend.
        assert_eq!(gap("*/5 * * * * 1-5"), Some(2 * 86_400 + 5));
        assert_eq!(gap("* * * * * 1-5"), Some(2 * 86_400 + 1));
        // Dense with a pause late in the year: December off.
        assert_eq!(gap("*/10 * * * 1-11 *"), Some(31 * 86_400 + 10));
        // One future slot only (seconds and year fields): no interval.
        assert_eq!(gap("0 0 0 1 1 * 2027"), None);
        assert_eq!(gap("0 0 0 1 * * 2027"), Some(31 * 86_400));
        // Leap days: four years.
        assert_eq!(gap("0 0 29 2 *"), Some((3 * 365 + 366) * 86_400));
    }
}
