//! What of a response becomes evidence: a request's `keep` selection of
//! each item, minus redacted fields (the built-in secret-looking names and
//! the definition's own), and the final sweep that replaces any secret
//! value that still made it into a string.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::definition::{Definition, Request};

/// Field names never kept in evidence, whatever a definition says: they
/// name credentials in the APIs we read.
const ALWAYS_REDACTED: &[&str] = &[
    "password",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "private_key",
    "sharedSecret",
    "recovery_question",
];

/// Secrets shorter than this are not looked for in strings: they would
/// match ordinary text and say nothing about a leak.
const SHORTEST_SCRUBBED: usize = 4;

/// A request's `keep` selection, compiled once per request rather than
/// once per item.
pub(super) struct Keep(Vec<(String, JsonPath, bool)>);

impl Keep {
    /// Compiles the request's `keep` paths.
    pub(super) fn new(r: &Request) -> Self {
        Keep(
            r.keep
                .iter()
                .filter_map(|(field, path)| {
                    // Validated at load, so parsing cannot fail here.
                    let p = JsonPath::parse(path.get_ref()).ok()?;
                    Some((field.clone(), p, is_singular(path.get_ref())))
                })
                .collect(),
        )
    }
}

/// The field names removed from kept items, at any depth.
pub(super) struct Redaction {
    /// The definition's `redact_fields`, lowercased.
    fields: Vec<String>,
}

impl Redaction {
    /// The definition's `redact_fields` on top of the built-in names.
    pub(super) fn new(d: &Definition) -> Self {
        Self::of(&d.redact_fields)
    }

    fn of(fields: &[String]) -> Self {
        Redaction {
            fields: fields.iter().map(|s| s.to_ascii_lowercase()).collect(),
        }
    }

    fn apply(&self, v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, v| {
                    let k = k.to_ascii_lowercase();
                    if ALWAYS_REDACTED.iter().any(|r| r.eq_ignore_ascii_case(&k)) {
                        // Secrets are strings; `password` as an object is a
                        // policy's settings (Okta), which is evidence. Its own
                        // secret-named strings are still dropped below.
                        !v.is_string() && !v.is_number()
                    } else {
                        !self.fields.contains(&k)
                    }
                });
                for x in m.values_mut() {
                    self.apply(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.apply(x)),
            _ => {}
        }
    }
}

/// Keeps the selected fields of an item, minus redacted ones.
pub(super) fn shape(raw: &Value, keep: &Keep, redaction: &Redaction) -> Value {
    let mut v = if keep.0.is_empty() {
        raw.clone()
    } else {
        let mut m = Map::new();
        for (field, path, singular) in &keep.0 {
            let nodes = path.query(raw).all();
            // A path that can select several nodes always gives a list, so
            // that one team and two teams have the same shape in diffs.
            let value = if *singular {
                nodes.first().map(|v| (*v).clone()).unwrap_or(Value::Null)
            } else {
                Value::Array(nodes.into_iter().cloned().collect())
            };
            m.insert(field.clone(), value);
        }
        Value::Object(m)
    };
    redaction.apply(&mut v);
    v
}

/// Whether a JSONPath selects at most one node (RFC 9535 "singular
/// query": names and indexes only).
fn is_singular(path: &str) -> bool {
    !(path.contains('*') || path.contains("..") || path.contains('?') || path.contains(':'))
}

/// Replaces secret values found inside strings with `[redacted]`, so that
/// an API echoing a token (in a URL, say) never puts it in the store.
pub(super) struct Scrubber {
    /// Looked for in this order: a secret inside another is replaced after.
    secrets: Vec<String>,
}

impl Scrubber {
    /// A scrubber of these secret values (the too-short ones are skipped).
    pub(super) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        Scrubber {
            secrets: secrets
                .into_iter()
                .filter(|s| s.len() >= SHORTEST_SCRUBBED)
                .map(str::to_string)
                .collect(),
        }
    }

    /// Scrubs every string of `v`; returns how many replacements were made
    /// (one per secret per string).
    pub(super) fn scrub(&self, v: &mut Value) -> usize {
        match v {
            Value::String(s) => {
                let mut n = 0;
                for secret in &self.secrets {
                    if s.contains(secret.as_str()) {
                        *s = s.replace(secret.as_str(), crate::config::REDACTED);
                        n += 1;
                    }
                }
                n
            }
            Value::Array(a) => a.iter_mut().map(|x| self.scrub(x)).sum(),
            Value::Object(m) => m.values_mut().map(|x| self.scrub(x)).sum(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(toml: &str) -> Request {
        toml::from_str(&format!("name='x'\npath='/'\n{toml}")).unwrap()
    }

    #[test]
    fn secret_fields_are_dropped_at_any_depth() {
        let r = request("");
        let v = shape(
            &json!({"a": 1, "pin": "1234", "token": "t", "credentials": {
                "password": {"minLength": 8, "secret": "s"}, "client_secret": "s", "apiKey": "k"}}),
            &Keep::new(&r),
            &Redaction::of(&["pin".into()]),
        );
        // `password` the object stays (a policy's settings are evidence);
        // secret-named strings and the definition's own fields go.
        assert_eq!(
            v,
            json!({"a": 1, "credentials": {"password": {"minLength": 8}}})
        );
    }

    #[test]
    fn definition_redactions_match_any_case_inside_lists() {
        let v = shape(
            &json!({"items": [{"PIN": "1", "Name": "a"}, {"pin": 2, "name": "b"}]}),
            &Keep::new(&request("")),
            &Redaction::of(&["Pin".into()]),
        );
        assert_eq!(v, json!({"items": [{"Name": "a"}, {"name": "b"}]}));
    }

    #[test]
    fn keep_gives_one_value_for_singular_paths_and_a_list_otherwise() {
        let r = request(
            "[keep]\nid = '$.id'\nfirst = '$.teams[0].name'\nteams = '$.teams[*].name'\nnone = '$.missing'\nall = '$..name'",
        );
        let raw = json!({"id": "u1", "teams": [{"name": "a", "token": "x"}], "other": 1});
        assert_eq!(
            shape(&raw, &Keep::new(&r), &Redaction::of(&[])),
            json!({"id": "u1", "first": "a", "teams": ["a"], "none": null, "all": ["a"]})
        );
    }

    #[test]
    fn kept_subtrees_are_redacted_too() {
        let r = request("[keep]\nteam = '$.teams[0]'");
        let raw = json!({"teams": [{"name": "a", "token": "x"}]});
        assert_eq!(
            shape(&raw, &Keep::new(&r), &Redaction::of(&[])),
            json!({"team": {"name": "a"}})
        );
    }

    #[test]
    fn scrubbing_replaces_secrets_in_every_string_and_counts() {
        let s = Scrubber::new(["s3cr3t-token", "abc", "hunter22"]);
        let mut v = json!({
            "url": "https://x/?t=s3cr3t-token&u=hunter22",
            "list": ["hunter22", "abc", 5]
        });
        assert_eq!(s.scrub(&mut v), 3);
        assert_eq!(
            v,
            json!({
                "url": "https://x/?t=[redacted]&u=[redacted]",
                "list": ["[redacted]", "abc", 5]
            })
        );
    }
}
