//! `exhibit export --format oscal`: the evidence of a period as NIST OSCAL
//! 1.1.2 documents that reference one another and the store:
//!
//! - the **assessment results**: each record collected in the period is an
//!   observation — what was collected, when, from where, with what outcome,
//!   for which SOC 2 criteria — and each control assessed in the period an
//!   observation of its own, with a finding for the control (its state) and
//!   one per entity its newest result found, and a risk per exception
//!   ([`controls`]). Relevant evidence points at back-matter resources that
//!   name each record (and payload) by store key and sha256;
//! - the **assessment plan** it imports (`assessment-plan.json`), which
//!   reviews the control library's controls ([`plan`]);
//! - the **catalog** of the control library (`catalog.json`), whose
//!   statement parts the findings target.
//!
//! Record hrefs are store keys, relative to the root of the store (or of a
//! bundle holding the records); the documents refer to each other by file
//! name, so they are written side by side.

mod controls;
mod plan;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt as _;
use serde_json::{Value, json};

use crate::control::Library;
use crate::evidence::record::Status;
use crate::read::Reader;
use crate::store::Store;

/// OSCAL version of the documents written.
pub const OSCAL_VERSION: &str = "1.1.2";
/// Namespace of Exhibit's OSCAL properties.
const NS: &str = "https://exhibit.dev/ns/oscal";
/// File name of the assessment results, beside the plan and catalog.
pub const RESULTS_FILE: &str = "assessment-results.json";
/// File name of the assessment plan the results import.
pub const PLAN_FILE: &str = "assessment-plan.json";
/// File name of the catalog of the control library.
pub const CATALOG_FILE: &str = "catalog.json";

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn prop(name: &str, value: impl std::fmt::Display) -> Value {
    json!({"name": name, "ns": NS, "value": value.to_string()})
}

fn metadata(title: &str) -> Value {
    json!({
        "title": title,
        "last-modified": ts(&Utc::now()),
        "version": env!("CARGO_PKG_VERSION"),
        "oscal-version": OSCAL_VERSION,
    })
}

/// The back-matter resources naming stored records, one per record, so that
/// every reference to a record is to the same resource.
#[derive(Debug, Default)]
struct Evidence {
    resources: Vec<Value>,
    by_key: HashMap<String, String>,
}

impl Evidence {
    /// The uuid of the resource of the record at `key`, naming it by the
    /// SHA-256 of its stored bytes (made if there is none yet).
    fn record(&mut self, key: &str, sha256: &str, title: String) -> String {
        if let Some(uuid) = self.by_key.get(key) {
            return uuid.clone();
        }
        let uuid = id();
        self.resources.push(json!({
            "uuid": uuid,
            "title": title,
            "description": format!("Signed record {key}"),
            "rlinks": [{
                "href": key,
                "media-type": "application/json",
                "hashes": [{"algorithm": "SHA-256", "value": sha256}]
            }]
        }));
        self.by_key.insert(key.to_string(), uuid.clone());
        uuid
    }
}

/// The three documents of an export.
#[derive(Debug, Clone)]
pub struct Documents {
    /// The assessment results (`assessment-results.json`).
    pub results: Value,
    /// The assessment plan (`assessment-plan.json`).
    pub plan: Value,
    /// The catalog of the control library (`catalog.json`).
    pub catalog: Value,
}

impl Documents {
    /// Each document's file name and bytes, as the plan's hash of the
    /// catalog was taken over them.
    pub fn files(&self) -> [(&'static str, Vec<u8>); 3] {
        [
            (RESULTS_FILE, pretty(&self.results)),
            (PLAN_FILE, pretty(&self.plan)),
            (CATALOG_FILE, pretty(&self.catalog)),
        ]
    }
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(v).expect("serialises");
    bytes.push(b'\n');
    bytes
}

/// The assessment results alone, for the records and results in `[from,
/// to]`, the built-in controls making the catalog (see [`export`]).
pub async fn assessment_results(
    store: Arc<dyn Store>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Value> {
    Ok(export(store, &Library::builtin()?, from, to).await?.results)
}

/// The three documents for records and results in `[from, to]`, the catalog
/// made of `library` and of any other control the store holds results of.
pub async fn export(
    store: Arc<dyn Store>,
    library: &Library,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Documents> {
    let reader = Reader::new(store);
    let mut evidence = Evidence::default();
    let mut observations = records(&reader, from, to, &mut evidence).await?;
    let assessed = controls::assess(&reader, library, from, to, &mut evidence).await?;
    observations.extend(assessed.observations);
    let catalog = plan::catalog(library, &assessed.unknown);
    let catalog_sha256 = crate::evidence::sha256_hex(&pretty(&catalog));
    let plan = plan::plan(library, &assessed.unknown, &catalog_sha256, from, to);
    let mut result = json!({
        "uuid": id(),
        "title": "Exhibit continuous evidence collection and control assessment",
        "description": format!("Evidence collected by Exhibit from {} to {}, every attempt signed and hash-chained, and the controls evaluated over it.", ts(&from), ts(&to)),
        "start": ts(&from),
        "end": ts(&to),
        "reviewed-controls": plan::reviewed(assessed.controls.iter().map(String::as_str)),
    });
    if !observations.is_empty() {
        result["observations"] = Value::Array(observations);
    }
    if !assessed.risks.is_empty() {
        result["risks"] = Value::Array(assessed.risks);
    }
    if !assessed.findings.is_empty() {
        result["findings"] = Value::Array(assessed.findings);
    }
    let mut doc = json!({
        "assessment-results": {
            "uuid": id(),
            "metadata": metadata("Exhibit evidence for SOC 2"),
            "import-ap": {"href": PLAN_FILE},
            "results": [result],
        }
    });
    if !evidence.resources.is_empty() {
        doc["assessment-results"]["back-matter"] = json!({ "resources": evidence.resources });
    }
    Ok(Documents {
        results: doc,
        plan,
        catalog,
    })
}

/// One observation per record that finished in `[from, to]`, each with its
/// resource (record and payload by sha256).
async fn records(
    reader: &Reader,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    evidence: &mut Evidence,
) -> anyhow::Result<Vec<Value>> {
    let mut observations = Vec::new();
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
            evidence.by_key.insert(key.clone(), resource.clone());
            evidence.resources.push(json!({
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
    Ok(observations)
}
