//! Schedules as people mistype them: a cron parser's own message for
//! `@dayly` or `0 25 * * *` says what the parser expected, not what the
//! user wrote wrong. This names the shortcut or the field at fault, with
//! its valid range, before falling back to the parser's message.

use super::suggest::nearest;

/// The shortcuts the scheduler understands.
const SHORTCUTS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// A cron field: its name and its valid numeric range.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
};
const DAY: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
};
const WEEKDAY: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
};
const YEAR: Field = Field {
    name: "year",
    min: 1970,
    max: 9999,
};

/// Parses `expression` as a schedule; when it does not parse, the message
/// names what is wrong in the user's terms.
pub fn parse(expression: &str) -> Result<crate::schedule::Schedule, String> {
    let s = crate::schedule::Schedule::parse(expression)
        .map_err(|parser| explain(expression, &parser))?;
    // A schedule that never fires would leave its evidence silently absent.
    s.require_future_slot(chrono::Utc::now())?;
    Ok(s)
}

/// What is wrong with an expression the parser refused (`parser` is its
/// message, kept when nothing better can be said).
pub fn explain(expression: &str, parser: &str) -> String {
    let e = expression.trim();
    if e.starts_with('@') {
        let lower = e.to_ascii_lowercase();
        let mut m = format!("unknown schedule shortcut `{e}`");
        if let Some(n) = nearest(&lower, SHORTCUTS.iter().copied()) {
            m.push_str(&format!("; did you mean `{n}`?"));
        }
        m.push_str(&format!(
            " Shortcuts: {}; or a cron expression (minute hour day-of-month month day-of-week)",
            SHORTCUTS.join(", ")
        ));
        return m;
    }
    let parts: Vec<&str> = e.split_whitespace().collect();
    let fields: &[Field] = match parts.len() {
        5 => &[MINUTE, HOUR, DAY, MONTH, WEEKDAY],
        6 => &[SECOND, MINUTE, HOUR, DAY, MONTH, WEEKDAY],
        7 => &[SECOND, MINUTE, HOUR, DAY, MONTH, WEEKDAY, YEAR],
        n => {
            return format!(
                "invalid cron schedule `{e}`: it has {n} field(s); a cron schedule has 5 (minute hour day-of-month month day-of-week), 6 with seconds first, 7 with a year last, or is a shortcut ({})",
                SHORTCUTS.join(", ")
            );
        }
    };
    for (part, field) in parts.iter().zip(fields) {
        for value in numbers(part) {
            if value < field.min || value > field.max {
                return format!(
                    "invalid cron schedule `{e}`: the {} field is `{part}`, and {value} is out of its range {}–{}",
                    field.name, field.min, field.max
                );
            }
        }
    }
    format!("invalid cron schedule `{e}`: {}", strip_prefix(parser, e))
}

/// The parser's message without the "invalid cron schedule `…`: " it may
/// already carry.
fn strip_prefix<'a>(parser: &'a str, e: &str) -> &'a str {
    parser
        .strip_prefix(&format!("invalid cron schedule `{e}`: "))
        .unwrap_or(parser)
}

/// The numbers a field names as values or range bounds (`1-5/2,7` gives
/// 1, 5 and 7; the step is no value of the field).
fn numbers(part: &str) -> Vec<u32> {
    part.split(',')
        .flat_map(|item| {
            let range = item.split('/').next().unwrap_or("");
            range
                .split('-')
                .filter_map(|n| n.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcut_typos_and_out_of_range_fields_are_named() {
        let m = parse("@dayly").unwrap_err();
        assert!(
            m.starts_with("unknown schedule shortcut `@dayly`; did you mean `@daily`?"),
            "{m}"
        );
        let m = parse("0 25 * * *").unwrap_err();
        assert!(
            m.contains("the hour field is `25`, and 25 is out of its range 0–23"),
            "{m}"
        );
        let m = parse("61 * * * *").unwrap_err();
        assert!(m.contains("the minute field"), "{m}");
        let m = parse("0 0 1 13 *").unwrap_err();
        assert!(m.contains("the month field"), "{m}");
        let m = parse("0 0 *").unwrap_err();
        assert!(m.contains("it has 3 field(s)"), "{m}");
        assert!(parse("@daily").is_ok());
        assert!(parse("*/5 1-3 * * MON-FRI").is_ok());
    }
}
