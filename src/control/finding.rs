//! What an evaluation finds at fault, and the exception that covers a
//! finding: shared by the evaluation and the period roll-up, which both
//! report findings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::exception::RecordRef;

/// The exception covering a finding, as reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExceptionNote {
    /// Who approved it.
    pub approver: String,
    /// Why.
    pub reason: String,
    /// Until when.
    pub expires: DateTime<Utc>,
    /// The exception record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordRef>,
}

/// A finding of an evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// The entity at fault.
    pub entity: String,
    /// Why.
    pub reason: String,
    /// Further details from the policy.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
    /// The live exception covering it; `None` means the finding is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionNote>,
}

impl Finding {
    /// Whether no live exception covers it.
    pub fn is_open(&self) -> bool {
        self.exception.is_none()
    }
}
