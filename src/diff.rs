//! `exhibit diff`: what changed between two payloads of a stream, keyed by
//! the entities' natural identities (users by ARN or login, buckets by name,
//! repositories by full name, pull requests by number…), not by their
//! position in an array, so that a new user at the top of a list shows as
//! one added user rather than every user changed.

use serde::Serialize;
use serde_json::Value;

/// Fields that name an entity, most specific first. An array of objects is
/// matched by the first of these that every element has, uniquely.
const IDENTITY_KEYS: &[&str] = &[
    "arn",
    "Arn",
    "full_name",
    "repository",
    "user_name",
    "UserName",
    "login",
    "email",
    "sha",
    "number",
    "name",
    "Name",
    "bucket",
    "id",
    "Id",
    "key",
    "user",
];

/// How an entity or value changed.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Present only in the newer payload.
    Added,
    /// Present only in the older payload.
    Removed,
    /// Present in both, with another value.
    Changed,
}

/// One change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// Where: `users[login=bob].mfa`.
    pub path: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The older value (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The newer value (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The changes from `before` to `after`.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            for (k, va) in ma {
                match mb.get(k) {
                    Some(vb) => walk(&join(path, k), va, vb, out),
                    None => out.push(Change {
                        path: join(path, k),
                        kind: ChangeKind::Removed,
                        before: Some(va.clone()),
                        after: None,
                    }),
                }
            }
            for (k, vb) in mb {
                if !ma.contains_key(k) {
                    out.push(Change {
                        path: join(path, k),
                        kind: ChangeKind::Added,
                        before: None,
                        after: Some(vb.clone()),
                    });
                }
            }
        }
        (Value::Array(xa), Value::Array(xb)) => match identity_key(xa, xb) {
            Some(id) => {
                let ident = |v: &Value| scalar_text(&v[id]);
                for va in xa {
                    let key = ident(va);
                    let here = format!("{path}[{id}={key}]");
                    match xb.iter().find(|vb| ident(vb) == key) {
                        Some(vb) => walk(&here, va, vb, out),
                        None => out.push(Change {
                            path: here,
                            kind: ChangeKind::Removed,
                            before: Some(va.clone()),
                            after: None,
                        }),
                    }
                }
                for vb in xb {
                    let key = ident(vb);
                    if !xa.iter().any(|va| ident(va) == key) {
                        out.push(Change {
                            path: format!("{path}[{id}={key}]"),
                            kind: ChangeKind::Added,
                            before: None,
                            after: Some(vb.clone()),
                        });
                    }
                }
            }
            None if xa.iter().chain(xb).all(|v| !v.is_object() && !v.is_array()) => {
                // A set of scalars (e.g. events, regions): membership counts.
                for va in xa.iter().filter(|va| !xb.contains(va)) {
                    out.push(Change {
                        path: format!("{path}[]"),
                        kind: ChangeKind::Removed,
                        before: Some(va.clone()),
                        after: None,
                    });
                }
                for vb in xb.iter().filter(|vb| !xa.contains(vb)) {
                    out.push(Change {
                        path: format!("{path}[]"),
                        kind: ChangeKind::Added,
                        before: None,
                        after: Some(vb.clone()),
                    });
                }
            }
            None => {
                for i in 0..xa.len().max(xb.len()) {
                    let here = format!("{path}[{i}]");
                    match (xa.get(i), xb.get(i)) {
                        (Some(va), Some(vb)) => walk(&here, va, vb, out),
                        (Some(va), None) => out.push(Change {
                            path: here,
                            kind: ChangeKind::Removed,
                            before: Some(va.clone()),
                            after: None,
                        }),
                        (None, Some(vb)) => out.push(Change {
                            path: here,
                            kind: ChangeKind::Added,
                            before: None,
                            after: Some(vb.clone()),
                        }),
                        (None, None) => {}
                    }
                }
            }
        },
        _ => out.push(Change {
            path: path.to_string(),
            kind: ChangeKind::Changed,
            before: Some(a.clone()),
            after: Some(b.clone()),
        }),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The identity field shared, with unique scalar values, by every object of
/// both arrays.
fn identity_key(a: &[Value], b: &[Value]) -> Option<&'static str> {
    if a.is_empty() && b.is_empty() {
        return None;
    }
    IDENTITY_KEYS.iter().copied().find(|k| {
        [a, b].iter().all(|xs| {
            let mut seen = std::collections::HashSet::new();
            xs.iter().all(|v| {
                v.get(*k)
                    .filter(|id| !id.is_object() && !id.is_array() && !id.is_null())
                    .is_some_and(|id| seen.insert(scalar_text(id)))
            })
        })
    })
}

/// Renders changes for people; `colour` adds ANSI colours.
pub fn render(changes: &[Change], colour: bool) -> String {
    use std::fmt::Write;
    let paint = |code: &str, s: String| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s
        }
    };
    let short = |v: &Option<Value>| {
        let s = v.as_ref().map(Value::to_string).unwrap_or_default();
        if s.chars().count() > 120 {
            format!("{}…", s.chars().take(120).collect::<String>())
        } else {
            s
        }
    };
    let mut o = String::new();
    for c in changes {
        let line = match c.kind {
            ChangeKind::Added => paint("32", format!("+ {}  {}", c.path, short(&c.after))),
            ChangeKind::Removed => paint("31", format!("- {}  {}", c.path, short(&c.before))),
            ChangeKind::Changed => paint(
                "33",
                format!("~ {}: {} → {}", c.path, short(&c.before), short(&c.after)),
            ),
        };
        let _ = writeln!(o, "{line}");
    }
    if changes.is_empty() {
        o.push_str("no changes\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entities_are_matched_by_identity_not_position() {
        let a = json!({"users": [
            {"login": "alice", "mfa": true, "groups": ["dev"]},
            {"login": "bob", "mfa": true},
        ]});
        let b = json!({"users": [
            {"login": "carol", "mfa": true},
            {"login": "alice", "mfa": false, "groups": ["dev", "admin"]},
        ]});
        let c = diff(&a, &b);
        let paths: Vec<(&str, ChangeKind)> = c.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            paths,
            vec![
                ("users[login=alice].mfa", ChangeKind::Changed),
                ("users[login=alice].groups[]", ChangeKind::Added),
                ("users[login=bob]", ChangeKind::Removed),
                ("users[login=carol]", ChangeKind::Added),
            ]
        );
        assert_eq!(c[1].after, Some(json!("admin")));
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn arrays_without_identities_fall_back_to_position() {
        let c = diff(&json!([[1], [2]]), &json!([[1], [3], [4]]));
        let paths: Vec<(&str, ChangeKind)> = c.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            paths,
            vec![
                ("[1][]", ChangeKind::Removed),
                ("[1][]", ChangeKind::Added),
                ("[2]", ChangeKind::Added),
            ]
        );
    }
}
