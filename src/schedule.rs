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
}

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
    fn slots_between_is_half_open() {
        let s = Schedule::parse("0 * * * *").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 1, 1, 5, 0, 0).unwrap();
        let (slots, n) = s.slots_between(from, to, 3);
        assert_eq!(n, 5);
        assert_eq!(slots.len(), 3);
        assert_eq!(slots[0], Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap());
    }
}
