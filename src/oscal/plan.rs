//! The catalog of the control library and the assessment plan that reviews
//! its controls: what the assessment results refer to.
//!
//! A catalog control is a library control: its id, title, SOC 2 criteria,
//! frequency, and the SHA-256 of its definition and policy; its statement
//! part (`<id>_smt`, the description) is what findings target. The plan
//! names the catalog as a back-matter resource (by file name and SHA-256)
//! and, having no system security plan to import, a resource saying so.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{CATALOG_FILE, id, metadata, prop, ts};
use crate::control::Library;

/// A control id as an OSCAL token (which cannot start with a digit).
pub(super) fn oscal_id(control: &str) -> String {
    if control.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{control}")
    } else {
        control.to_string()
    }
}

/// Reviewed controls: the given ones, or all when there are none.
pub(super) fn reviewed<'a>(ids: impl Iterator<Item = &'a str>) -> Value {
    let include: Vec<Value> = ids.map(|c| json!({"control-id": oscal_id(c)})).collect();
    if include.is_empty() {
        json!({"control-selections": [{"include-all": {}}]})
    } else {
        json!({"control-selections": [{"include-controls": include}]})
    }
}

/// The catalog of `library`, plus the `unknown` controls (id, title) the
/// store holds results of.
pub(super) fn catalog(library: &Library, unknown: &[(String, String)]) -> Value {
    let mut controls: Vec<Value> = library
        .iter()
        .map(|c| {
            let c = &c.control;
            let mut props = vec![
                prop("control-id", &c.id),
                prop("frequency", c.frequency.as_str()),
                prop("definition-sha256", &c.sha256),
                prop("policy-sha256", &c.policy.sha256),
            ];
            props.extend(c.criteria.iter().map(|k| prop("soc2-criterion", k)));
            let inputs: Vec<String> = c
                .inputs
                .iter()
                .map(|i| match &i.definition {
                    Some(d) => format!("{} ({}, definition {d})", i.name, i.kind),
                    None => format!("{} ({})", i.name, i.kind),
                })
                .collect();
            json!({
                "id": oscal_id(&c.id),
                "class": "exhibit-control",
                "title": c.title,
                "props": props,
                "parts": [
                    {
                        "id": format!("{}_smt", oscal_id(&c.id)),
                        "name": "statement",
                        "prose": c.description.as_deref().unwrap_or(&c.title).trim(),
                    },
                    {
                        "id": format!("{}_asm", oscal_id(&c.id)),
                        "name": "assessment-method",
                        "prose": format!(
                            "Evaluated by a Rego policy (sha256 {}) over the newest records of its inputs: {}. Every evaluation is a signed record of the stream control/{}.",
                            c.policy.sha256,
                            inputs.join(", "),
                            c.id
                        ),
                    }
                ],
            })
        })
        .collect();
    for (cid, title) in unknown {
        controls.push(json!({
            "id": oscal_id(cid),
            "class": "exhibit-control",
            "title": title,
            "props": [prop("control-id", cid)],
            "parts": [{
                "id": format!("{}_smt", oscal_id(cid)),
                "name": "statement",
                "prose": format!("{title} (a control the store holds results of, not in the library exported)."),
            }],
        }));
    }
    json!({
        "catalog": {
            "uuid": id(),
            "metadata": metadata("Exhibit control library"),
            "controls": controls,
        }
    })
}

/// The plan: every control of the catalog reviewed over `[from, to]`.
pub(super) fn plan(
    library: &Library,
    unknown: &[(String, String)],
    catalog_sha256: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Value {
    let system = id();
    let catalog = id();
    let ids = library
        .iter()
        .map(|c| c.control.id.as_str())
        .chain(unknown.iter().map(|(c, _)| c.as_str()));
    json!({
        "assessment-plan": {
            "uuid": id(),
            "metadata": metadata("Exhibit assessment plan"),
            "import-ssp": {"href": format!("#{system}")},
            "reviewed-controls": reviewed(ids),
            "terms-and-conditions": {
                "parts": [{
                    "name": "assessment-period",
                    "title": "Observation period",
                    "prose": format!("From {} to {}. Each control is evaluated whenever one of its input records lands, and on demand; results are signed evidence in the same chain as the records they judge.", ts(&from), ts(&to)),
                }]
            },
            "back-matter": {
                "resources": [
                    {
                        "uuid": system,
                        "title": "The system under assessment",
                        "description": "No system security plan is exported: the system is described by the evidence store the results name, whose records carry each source's identity (accounts, organisations, regions).",
                    },
                    {
                        "uuid": catalog,
                        "title": "Control catalog: the Exhibit control library",
                        "props": [prop("role", "catalog")],
                        "rlinks": [{
                            "href": CATALOG_FILE,
                            "media-type": "application/json",
                            "hashes": [{"algorithm": "SHA-256", "value": catalog_sha256}],
                        }],
                    }
                ]
            }
        }
    })
}
