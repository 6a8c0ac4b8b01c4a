//! Exceptions: a named person's approval that one entity may fail one
//! control, for a reason, until a date. A finding covered by a live
//! exception is reported as `excepted`, not failed; once the exception
//! expires the finding is open again. Exceptions are records of the stream
//! `exception/<control>`, so they are signed and chained like the rest.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a record is: its stream, position and the SHA-256 of its stored
/// bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    /// The stream.
    pub stream: String,
    /// The sequence number.
    pub seq: u64,
    /// SHA-256 of the record's stored bytes.
    pub sha256: String,
}

impl RecordRef {
    /// The record's store key.
    pub fn key(&self) -> String {
        crate::evidence::layout::record(&self.stream, self.seq)
    }

    /// `stream@seq`, as the commands name records.
    pub fn label(&self) -> String {
        format!("{}@{}", self.stream, self.seq)
    }
}

/// An approved exception.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// The control it applies to.
    pub control: String,
    /// The entity it covers, exactly as the policy names it in findings.
    pub entity: String,
    /// Why the entity may fail the control.
    pub reason: String,
    /// Who approved it.
    pub approver: String,
    /// When it was granted (from then on it covers findings).
    pub granted_at: DateTime<Utc>,
    /// When it stops covering findings.
    pub expires: DateTime<Utc>,
    /// The exception record, once stored (not part of its payload).
    #[serde(default, skip_serializing)]
    pub record: Option<RecordRef>,
}

/// Why an exception cannot be granted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExceptionError {
    /// A field is empty.
    #[error("an exception needs a non-empty {0}")]
    Empty(&'static str),
    /// It would expire before it starts.
    #[error("the exception expires ({expires}) before it is granted ({granted})")]
    Backwards {
        /// Granted at.
        granted: DateTime<Utc>,
        /// Expires.
        expires: DateTime<Utc>,
    },
    /// The date is not a date.
    #[error("`{0}` is not a date (YYYY-MM-DD) or an RFC 3339 time")]
    Date(String),
}

/// Reads `--expires`: a date means "through that day" (the exception
/// expires at the next midnight UTC); an RFC 3339 time is taken as is.
pub fn parse_expires(text: &str) -> Result<DateTime<Utc>, ExceptionError> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let next = d
            .succ_opt()
            .ok_or_else(|| ExceptionError::Date(text.into()))?;
        return Ok(next
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ExceptionError::Date(text.into()))
}

impl Exception {
    /// A new exception, checked.
    pub fn new(
        control: &str,
        entity: &str,
        reason: &str,
        approver: &str,
        granted_at: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<Exception, ExceptionError> {
        for (what, v) in [
            ("control", control),
            ("entity", entity),
            ("reason", reason),
            ("approver", approver),
        ] {
            if v.trim().is_empty() {
                return Err(ExceptionError::Empty(what));
            }
        }
        if expires <= granted_at {
            return Err(ExceptionError::Backwards {
                granted: granted_at,
                expires,
            });
        }
        Ok(Exception {
            control: control.into(),
            entity: entity.into(),
            reason: reason.into(),
            approver: approver.into(),
            granted_at,
            expires,
            record: None,
        })
    }

    /// Whether it covers findings at `at`.
    pub fn live_at(&self, at: DateTime<Utc>) -> bool {
        self.granted_at <= at && at < self.expires
    }

    /// Whether it covers `entity`'s findings of `control` at `at`.
    pub fn covers(&self, control: &str, entity: &str, at: DateTime<Utc>) -> bool {
        self.control == control && self.entity == entity && self.live_at(at)
    }

    /// The payload of the exception record (stream `exception/<control>`).
    pub fn payload(&self) -> Value {
        serde_json::to_value(self).expect("exceptions serialise")
    }

    /// Reads an exception record's payload.
    pub fn from_payload(payload: &Value, record: Option<RecordRef>) -> Result<Exception, String> {
        let mut e: Exception = serde_json::from_value(payload.clone())
            .map_err(|e| format!("not an exception record: {e}"))?;
        e.record = record;
        Ok(e)
    }
}

/// The live exception covering `entity`'s findings of `control` at `at`,
/// if any; of several, the one that lasts longest.
pub fn covering<'a>(
    exceptions: &'a [Exception],
    control: &str,
    entity: &str,
    at: DateTime<Utc>,
) -> Option<&'a Exception> {
    exceptions
        .iter()
        .filter(|e| e.covers(control, entity, at))
        .max_by_key(|e| e.expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_exception_covers_its_entity_until_it_expires() {
        let e = Exception::new(
            "aws-console-mfa",
            "bob",
            "hardware key on order",
            "CISO",
            t("2025-01-10T00:00:00Z"),
            parse_expires("2025-03-31").unwrap(),
        )
        .unwrap();
        assert_eq!(e.expires, t("2025-04-01T00:00:00Z"));
        assert!(!e.covers("aws-console-mfa", "bob", t("2025-01-09T23:59:59Z")));
        assert!(e.covers("aws-console-mfa", "bob", t("2025-03-31T23:59:59Z")));
        assert!(!e.covers("aws-console-mfa", "bob", t("2025-04-01T00:00:00Z")));
        assert!(!e.covers("aws-console-mfa", "carol", t("2025-02-01T00:00:00Z")));
        assert!(!e.covers("aws-root-keys", "bob", t("2025-02-01T00:00:00Z")));
    }

    #[test]
    fn bad_exceptions_are_refused() {
        let now = t("2025-01-10T00:00:00Z");
        assert_eq!(
            Exception::new("c", "e", " ", "a", now, t("2025-02-01T00:00:00Z")),
            Err(ExceptionError::Empty("reason"))
        );
        assert!(matches!(
            Exception::new("c", "e", "r", "a", now, t("2025-01-01T00:00:00Z")),
            Err(ExceptionError::Backwards { .. })
        ));
        assert!(parse_expires("next week").is_err());
        assert_eq!(
            parse_expires("2025-06-01T12:00:00+02:00").unwrap(),
            t("2025-06-01T10:00:00Z")
        );
    }

    #[test]
    fn payloads_round_trip_without_the_record() {
        let mut e = Exception::new(
            "c",
            "e",
            "r",
            "a",
            t("2025-01-10T00:00:00Z"),
            t("2025-02-01T00:00:00Z"),
        )
        .unwrap();
        e.record = Some(RecordRef {
            stream: "exception/c".into(),
            seq: 1,
            sha256: "ab".into(),
        });
        let p = e.payload();
        assert!(p.get("record").is_none(), "{p}");
        let back = Exception::from_payload(&p, e.record.clone()).unwrap();
        assert_eq!(back, e);
        assert!(Exception::from_payload(&serde_json::json!({"control": "c"}), None).is_err());
    }

    #[test]
    fn the_longest_live_exception_is_named() {
        let mk = |exp: &str| {
            Exception::new("c", "e", "r", "a", t("2025-01-01T00:00:00Z"), t(exp)).unwrap()
        };
        let all = [mk("2025-02-01T00:00:00Z"), mk("2025-05-01T00:00:00Z")];
        let at = t("2025-01-15T00:00:00Z");
        assert_eq!(
            covering(&all, "c", "e", at).unwrap().expires,
            all[1].expires
        );
        assert!(covering(&all, "c", "e", t("2025-06-01T00:00:00Z")).is_none());
    }
}
