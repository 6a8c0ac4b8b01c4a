//! `exhibit export --format oscal`: the evidence of a period as an OSCAL
//! assessment-results document (NIST OSCAL 1.1.2). Each record becomes an
//! observation — what was collected, when, from where, with what outcome,
//! for which SOC 2 criteria — whose relevant evidence points at a
//! back-matter resource naming the record and its payload by sha256, so
//! that a GRC tool can fetch and check them.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt as _;
use serde_json::{Value, json};

use crate::evidence::record::Status;
use crate::read::Reader;
use crate::store::Store;

/// OSCAL version of the documents written.
pub const OSCAL_VERSION: &str = "1.1.2";
/// Namespace of Exhibit's OSCAL properties.
const NS: &str = "https://exhibit.dev/ns/oscal";

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Builds the document for records that finished in `[from, to]`.
pub async fn assessment_results(
    store: Arc<dyn Store>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Value> {
    let reader = Reader::new(store);
    let mut observations = Vec::new();
    let mut resources = Vec::new();
    for (stream, _) in reader.index().await?.streams() {
        let mut period = std::pin::pin!(reader.range(stream, from, to));
        while let Some(record) = period.try_next().await? {
            // The document points at each record's payload by hash: a
            // record that cannot be read, or names no payload, is refused
            // rather than left out.
            let (Some(st), Some(payload_sha256)) = (&record.statement, record.payload_sha256())
            else {
                return Err(anyhow::Error::from(record.error()).context(
                    "cannot export a record that cannot be read; `exhibit verify` names what is wrong",
                ));
            };
            let (p, key) = (&st.predicate, &record.key);
            let payload_name = st.subject.first().map_or("", |s| s.name.as_str());
            let resource = id();
            resources.push(json!({
                "uuid": resource,
                "title": format!("{} #{}", p.stream, p.seq),
                "description": format!("Signed record and payload of {} collection #{} ({})", p.stream, p.seq, p.status.as_str()),
                "props": [{"name": "stream", "ns": NS, "value": p.stream}],
                "rlinks": [
                    {
                        "href": key,
                        "media-type": "application/json",
                        "hashes": [{"algorithm": "SHA-256", "value": record.sha256}]
                    },
                    {
                        "href": payload_name,
                        "media-type": p.payload.media_type,
                        "hashes": [{"algorithm": "SHA-256", "value": payload_sha256}]
                    }
                ]
            }));
            let mut props = vec![
                json!({"name": "stream", "ns": NS, "value": p.stream}),
                json!({"name": "sequence", "ns": NS, "value": p.seq.to_string()}),
                json!({"name": "status", "ns": NS, "value": p.status.as_str()}),
                json!({"name": "collector-kind", "ns": NS, "value": p.collector.kind}),
            ];
            for c in &p.criteria {
                props.push(json!({"name": "soc2-criterion", "ns": NS, "value": c}));
            }
            let mut description = format!(
                "{} collection of `{}` by the {} collector, {} to {}.",
                match p.status {
                    Status::Ok => "Successful",
                    Status::Partial => "Partial",
                    Status::Failed => "Failed",
                    Status::Missed => "Missed",
                },
                p.stream,
                p.collector.kind,
                ts(&p.started_at),
                ts(&p.finished_at)
            );
            if let Some(e) = &p.error {
                description.push_str(&format!(" Error: {e}"));
            }
            observations.push(json!({
                "uuid": id(),
                "title": format!("{} #{}", p.stream, p.seq),
                "description": description,
                "props": props,
                "methods": ["TEST"],
                "types": ["control-objective"],
                "relevant-evidence": [{
                    "href": format!("#{resource}"),
                    "description": format!("record {key}, payload sha256 {payload_sha256}")
                }],
                "collected": ts(&p.finished_at),
            }));
        }
    }
    let now = Utc::now();
    let mut result = json!({
        "uuid": id(),
        "title": "Exhibit continuous evidence collection",
        "description": format!("Evidence collected by Exhibit from {} to {}, every attempt signed and hash-chained.", ts(&from), ts(&to)),
        "start": ts(&from),
        "end": ts(&to),
        "reviewed-controls": {"control-selections": [{"include-all": {}}]},
    });
    if !observations.is_empty() {
        result["observations"] = Value::Array(observations);
    }
    let mut doc = json!({
        "assessment-results": {
            "uuid": id(),
            "metadata": {
                "title": "Exhibit evidence for SOC 2",
                "last-modified": ts(&now),
                "version": env!("CARGO_PKG_VERSION"),
                "oscal-version": OSCAL_VERSION,
            },
            "import-ap": {"href": "#assessment-plan"},
            "results": [result],
        }
    });
    if !resources.is_empty() {
        doc["assessment-results"]["back-matter"] = json!({ "resources": resources });
    }
    Ok(doc)
}
