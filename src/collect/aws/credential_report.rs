//! `kind = "aws-iam-credential-report"`: IAM's credential report, generated
//! and fetched (waiting for it to complete, with backoff), parsed into one
//! row per user (the root user included), with the SHA-256 of the CSV as
//! AWS delivered it so that an auditor can match it against a download of
//! their own. The report holds no secrets: it says whether passwords and
//! keys exist and when they were used or rotated.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::api::{self, Session};
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // One row per user (the root account included).
    identities: &[&["arn"], &["user"]],
    ..super::spec(
        "aws-iam-credential-report",
        &["CC6.1", "CC6.2", "CC6.3"],
        |s| super::build_kind(s, Box::new(CredentialReport)),
    )
};

struct CredentialReport;

/// How often the report's state is asked for: AWS usually finishes within
/// seconds; the attempt's own timeout bounds the wait.
const FIRST_WAIT: Duration = Duration::from_millis(250);
const LONGEST_WAIT: Duration = Duration::from_secs(8);

/// A report cell as JSON: `true`/`false` as booleans, AWS's markers for
/// "nothing" (`N/A`, `no_information`, `not_supported`) kept as text, since
/// they mean different things.
fn cell(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        s => Value::String(s.to_string()),
    }
}

/// Parses the CSV into rows keyed by its header.
pub(crate) fn parse(csv_bytes: &[u8]) -> Result<Vec<Value>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(csv_bytes);
    let headers = reader
        .headers()
        .map_err(|e| format!("the credential report is not CSV: {e}"))?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("the credential report is not CSV: {e}"))?;
        let mut row = Map::new();
        for (h, v) in headers.iter().zip(record.iter()) {
            row.insert(h.to_string(), cell(v));
        }
        rows.push(Value::Object(row));
    }
    Ok(rows)
}

#[async_trait]
impl Kind for CredentialReport {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let iam = s.iam();
        let mut wait = FIRST_WAIT;
        loop {
            let out = s
                .call(
                    ctx,
                    "iam:GenerateCredentialReport",
                    iam.generate_credential_report().send(),
                )
                .await?;
            if out.state().map(|s| s.as_str()) == Some("COMPLETE") {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ctx.cancel.cancelled() => return Err(CollectError::Cancelled),
            }
            wait = (wait * 2).min(LONGEST_WAIT);
        }
        let report = s
            .call(
                ctx,
                "iam:GetCredentialReport",
                iam.get_credential_report().send(),
            )
            .await?;
        let raw = report.content().map(|b| b.as_ref()).unwrap_or_default();
        let rows = parse(raw).map_err(CollectError::fatal)?;
        let mut payload = account_header(s);
        payload.insert("generated_time".into(), api::time(report.generated_time()));
        payload.insert(
            "report_format".into(),
            json!(report.report_format().map(|f| f.as_str())),
        );
        payload.insert("sha256".into(), json!(hex::encode(Sha256::digest(raw))));
        payload.insert("count".into(), json!(rows.len()));
        payload.insert("rows".into(), json!(rows));
        Ok(Snapshot::new(Value::Object(payload)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_are_keyed_by_the_header_and_flags_are_booleans() {
        let csv = "user,arn,mfa_active,access_key_1_last_used_date\n<root_account>,arn:aws:iam::123456789012:root,true,N/A\nbob,arn:aws:iam::123456789012:user/bob,false,2026-01-01T00:00:00+00:00\n";
        let rows = super::parse(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["mfa_active"], true);
        assert_eq!(rows[1]["user"], "bob");
        assert_eq!(rows[1]["mfa_active"], false);
        assert_eq!(rows[0]["access_key_1_last_used_date"], "N/A");
    }
}
