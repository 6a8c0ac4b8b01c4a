//! `exhibit diff`: what changed between two payloads of a stream, keyed by
//! the entities' natural identities (users by ARN or login, buckets by name,
//! repositories by full name, pull requests by number…), not by their
//! position in an array, so that a new user at the top of a list shows as
//! one added user rather than every user changed.
//!
//! Which fields are identities is the payload's kind's knowledge
//! ([`KindSpec::identities`](crate::collect::KindSpec)), given to every
//! function here, most specific first: an array of objects is matched by
//! the first identity that every element of both arrays has, with values
//! unique within each array. Objects without any (policy statements, ACL
//! grants) are compared as a collection whose order means nothing. A kind
//! that declares none gets [`GENERIC`].

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

/// The identities of free-form payloads, whose kind declares none (see
/// [`KindSpec::identities`](crate::collect::KindSpec)): a command's output,
/// a SaaS API read by a definition. These are the names JSON APIs commonly
/// identify entities by (AWS's ARNs, GitHub's logins and full names, the
/// `name`, `id` and `key` of most others), most specific first; a list of
/// several fields is one identity made of all of them.
pub const GENERIC: &[&[&str]] = &[
    // A number such as a pull request's is unique only within its
    // repository.
    &["repository", "number"],
    &["arn"],
    &["Arn"],
    &["full_name"],
    &["repository"],
    &["user_name"],
    &["UserName"],
    &["login"],
    &["email"],
    &["sha"],
    &["number"],
    &["name"],
    &["Name"],
    &["id"],
    &["Id"],
    &["key"],
];

/// A kind's identities, or the generic ones when it declares none.
fn or_generic<'i>(identities: &'i [&'i [&'i str]]) -> &'i [&'i [&'i str]] {
    if identities.is_empty() {
        GENERIC
    } else {
        identities
    }
}

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

/// The changes from `before` to `after`, entities matched by `identities`
/// (the payload's kind's; none: the generic ones).
pub fn diff(before: &Value, after: &Value, identities: &[&[&str]]) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", before, after, or_generic(identities), &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, a: &Value, b: &Value, ids: &[&[&str]], out: &mut Vec<Change>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            for (k, va) in ma {
                match mb.get(k) {
                    Some(vb) => walk(&join(path, k), va, vb, ids, out),
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
        (Value::Array(xa), Value::Array(xb)) => match identity_key(ids, xa, xb) {
            Some(id) => {
                let here = |v: &Value| format!("{path}[{}]", label(id, v));
                let in_a: HashSet<String> = xa.iter().map(|v| ident(id, v)).collect();
                let in_b: HashMap<String, &Value> = xb.iter().map(|v| (ident(id, v), v)).collect();
                for va in xa {
                    match in_b.get(&ident(id, va)) {
                        Some(vb) => walk(&here(va), va, vb, ids, out),
                        None => out.push(Change {
                            path: here(va),
                            kind: ChangeKind::Removed,
                            before: Some(va.clone()),
                            after: None,
                        }),
                    }
                }
                for vb in xb {
                    if !in_a.contains(&ident(id, vb)) {
                        out.push(Change {
                            path: here(vb),
                            kind: ChangeKind::Added,
                            before: None,
                            after: Some(vb.clone()),
                        });
                    }
                }
            }
            None if xa.iter().chain(xb).all(|v| !v.is_array()) => {
                // Scalars (events, regions) and objects without an identity
                // (policy statements, ACL grants): a collection whose order
                // means nothing, so what one side holds more of is added or
                // removed.
                let mut unmatched: Vec<&Value> = xb.iter().collect();
                for va in xa {
                    match unmatched.iter().position(|vb| *vb == va) {
                        Some(i) => {
                            unmatched.remove(i);
                        }
                        None => out.push(Change {
                            path: format!("{path}[]"),
                            kind: ChangeKind::Removed,
                            before: Some(va.clone()),
                            after: None,
                        }),
                    }
                }
                for vb in unmatched {
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
                        (Some(va), Some(vb)) => walk(&here, va, vb, ids, out),
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

/// An element's identity under `id`, as one comparable string.
fn ident(id: &[&str], v: &Value) -> String {
    id.iter()
        .map(|k| scalar_text(&v[*k]))
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// An element's identity under `id`, as written in a path: `login=bob`,
/// `repository=api,number=7`.
fn label(id: &[&str], v: &Value) -> String {
    id.iter()
        .map(|k| format!("{k}={}", scalar_text(&v[*k])))
        .collect::<Vec<_>>()
        .join(",")
}

fn has_scalar(v: &Value, k: &str) -> bool {
    v.get(k)
        .is_some_and(|id| !id.is_object() && !id.is_array() && !id.is_null())
}

/// The first of `ids` shared, with unique values, by every object of both
/// arrays.
fn identity_key<'i>(ids: &[&'i [&'i str]], a: &[Value], b: &[Value]) -> Option<&'i [&'i str]> {
    if a.is_empty() && b.is_empty() {
        return None;
    }
    ids.iter().copied().find(|id| {
        [a, b].iter().all(|xs| {
            let mut seen = HashSet::new();
            xs.iter()
                .all(|v| id.iter().all(|k| has_scalar(v, k)) && seen.insert(ident(id, v)))
        })
    })
}

/// The first of `ids` every element of `xs` has, unique or not (a run of
/// windows may hold one entity twice).
fn common_key<'i>(ids: &[&'i [&'i str]], xs: &[Value]) -> Option<&'i [&'i str]> {
    if xs.is_empty() {
        return None;
    }
    ids.iter()
        .copied()
        .find(|id| xs.iter().all(|v| id.iter().all(|k| has_scalar(v, k))))
}

/// [`diff`] for a payload whose top-level `windowed` fields hold the
/// record's own window of events (see
/// [`KindSpec::windowed`](crate::collect::KindSpec)): every entity of the
/// newer window is added unless the older window held it too (then it is
/// compared), an entity only in the older window is not reported, and the
/// windowed fields that are not arrays (counts, bounds) are left out.
/// Entities are matched by `identities`, as in [`diff`].
pub fn diff_windows(
    before: &Value,
    after: &Value,
    identities: &[&[&str]],
    windowed: &[&str],
) -> Vec<Change> {
    let ids = or_generic(identities);
    let (mut b, mut a) = (before.clone(), after.clone());
    if let (Some(bo), Some(ao)) = (b.as_object_mut(), a.as_object_mut()) {
        for f in windowed {
            match ao.get(*f) {
                Some(Value::Array(xa)) => {
                    let xb = match bo.get(*f) {
                        Some(Value::Array(xb)) => xb.clone(),
                        _ => Vec::new(),
                    };
                    let kept: Vec<Value> = match identity_key(ids, &xb, xa) {
                        Some(id) => {
                            let newer: HashSet<String> = xa.iter().map(|v| ident(id, v)).collect();
                            xb.into_iter()
                                .filter(|v| newer.contains(&ident(id, v)))
                                .collect()
                        }
                        None => xb.into_iter().filter(|v| xa.contains(v)).collect(),
                    };
                    bo.insert(f.to_string(), Value::Array(kept));
                }
                _ => {
                    ao.shift_remove(*f);
                    bo.shift_remove(*f);
                }
            }
        }
    }
    diff(&b, &a, ids)
}

/// One payload standing for a run of consecutive records of a windowed
/// stream, oldest first: the newest payload, with each windowed array
/// holding the entities of every window of the run (an entity seen in
/// several, as after a partial record, once, as last seen, entities told
/// apart by `identities` as in [`diff`]).
pub fn span(payloads: &[&Value], identities: &[&[&str]], windowed: &[&str]) -> Option<Value> {
    let ids = or_generic(identities);
    let mut out = (*payloads.last()?).clone();
    for f in windowed {
        if !out.get(*f).is_some_and(Value::is_array) {
            continue;
        }
        let all: Vec<Value> = payloads
            .iter()
            .filter_map(|p| p.get(*f).and_then(Value::as_array))
            .flatten()
            .cloned()
            .collect();
        let mut merged: Vec<Value> = Vec::with_capacity(all.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        let key = common_key(ids, &all);
        for v in all {
            let k = match key {
                Some(id) => ident(id, &v),
                None => v.to_string(),
            };
            match at.get(&k) {
                Some(&i) => merged[i] = v,
                None => {
                    at.insert(k, merged.len());
                    merged.push(v);
                }
            }
        }
        out[*f] = Value::Array(merged);
    }
    Some(out)
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
        let c = diff(&a, &b, &[]);
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
        assert!(diff(&a, &a, &[]).is_empty());
    }

    #[test]
    fn objects_without_identities_are_a_collection_whose_order_means_nothing() {
        let allow = |a: &str| json!({"Effect": "Allow", "Action": a});
        let a = json!([allow("s3:Get*"), allow("ec2:Describe*")]);
        let b = json!([allow("ec2:Describe*"), allow("s3:*")]);
        let c = diff(&a, &b, &[]);
        let got: Vec<(&str, ChangeKind, Option<&Value>)> = c
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.kind,
                    c.after.as_ref().or(c.before.as_ref()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("[]", ChangeKind::Removed, Some(&allow("s3:Get*"))),
                ("[]", ChangeKind::Added, Some(&allow("s3:*"))),
            ]
        );
        assert_eq!(
            diff(&json!(["x", "x"]), &json!(["x"]), &[]).len(),
            1,
            "a multiset"
        );
    }

    #[test]
    fn arrays_of_arrays_fall_back_to_position() {
        let c = diff(&json!([[1], [2]]), &json!([[1], [3], [4]]), &[]);
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

    #[test]
    fn pull_requests_are_matched_by_repository_and_number() {
        let a = json!([{"repository": "api", "number": 1, "ok": true},
                       {"repository": "web", "number": 1, "ok": true}]);
        let b = json!([{"repository": "web", "number": 1, "ok": false},
                       {"repository": "api", "number": 1, "ok": true}]);
        let c = diff(&a, &b, crate::collect::identities("github-pull-requests"));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].path, "[repository=web,number=1].ok");
    }

    #[test]
    fn a_windowed_field_reports_the_newer_window_as_added() {
        let w = ["window", "count", "commits"];
        let a = json!({"window": {"from": "x"}, "count": 2, "tags": [{"name": "v1"}],
                       "commits": [{"sha": "a1"}, {"sha": "a2"}]});
        let b = json!({"window": {"from": "y"}, "count": 1, "tags": [],
                       "commits": [{"sha": "b1"}]});
        let ids = crate::collect::identities("git");
        let c = diff_windows(&a, &b, ids, &w);
        let paths: Vec<(&str, ChangeKind)> = c.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            paths,
            vec![
                ("tags[name=v1]", ChangeKind::Removed),
                ("commits[sha=b1]", ChangeKind::Added),
            ],
            "the older window's commits are not removed; counts and bounds are no change"
        );
        // Without the kind's knowledge the same payloads read as removals.
        assert_eq!(diff(&a, &b, ids).len(), 6);
    }

    #[test]
    fn a_span_of_windows_holds_each_entity_once_as_last_seen() {
        let r1 = json!({"n": 1, "commits": [{"sha": "a", "v": 1}]});
        let r2 = json!({"n": 2, "commits": [{"sha": "a", "v": 2}, {"sha": "b", "v": 1}]});
        let ids = crate::collect::identities("git");
        let s = span(&[&r1, &r2], ids, &["commits"]).unwrap();
        assert_eq!(
            s,
            json!({"n": 2, "commits": [{"sha": "a", "v": 2}, {"sha": "b", "v": 1}]})
        );
        assert_eq!(span(&[], ids, &["commits"]), None);
    }

    #[test]
    fn a_kind_s_identities_are_the_ones_that_count() {
        let paths = |c: Vec<Change>| c.into_iter().map(|c| c.path).collect::<Vec<_>>();
        let a = json!({"detectors": [{"detector_id": "d1", "status": "ENABLED"}]});
        let b = json!({"detectors": [{"detector_id": "d1", "status": "DISABLED"}]});
        let guardduty: &[&[&str]] = &[&["detector_id"]];
        assert_eq!(
            paths(diff(&a, &b, guardduty)),
            ["detectors[detector_id=d1].status"]
        );
        // `detector_id` is no generic identity: without the kind's, a
        // changed detector is one gone and one new.
        assert_eq!(paths(diff(&a, &b, &[])), ["detectors[]", "detectors[]"]);
        // A kind's list is all its entities are matched by.
        let a = json!([{"name": "x", "v": 1}]);
        let b = json!([{"name": "x", "v": 2}]);
        assert_eq!(paths(diff(&a, &b, guardduty)), ["[]", "[]"]);
        assert_eq!(paths(diff(&a, &b, &[])), ["[name=x].v"]);
    }
}
