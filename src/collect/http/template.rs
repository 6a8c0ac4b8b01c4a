//! Templates of a definition: `{name}` in paths, queries, bodies, headers
//! and the source identity, filled from the instance's variables, and
//! `{item.a.b}` in follow-up requests, filled from the item they follow.
//! Owns the variables an instance's templates see and the check, at load,
//! that every template resolves (not at 3 a.m.).

use std::collections::BTreeMap;

use serde_json::Value;

use super::definition::{Definition, Request};
use crate::config::{ConfigError, Settings, Source};

/// Template variables: name → value.
pub(super) type Vars = BTreeMap<String, String>;

/// The variables an instance's templates see: the definition's defaults,
/// overridden by the instance's `vars` (which may only name declared
/// ones), plus `base_url`, `host` and `window_minutes` (filled per
/// collection).
pub(super) fn instance_vars(
    settings: &Settings,
    definition_name: &str,
    d: &Definition,
    overrides: &Vars,
    base_url: &str,
) -> Result<Vars, ConfigError> {
    let mut vars = d.vars.clone();
    for (k, v) in overrides {
        if !vars.contains_key(k) {
            return Err(settings.error(
                "vars",
                format!(
                    "definition `{definition_name}` has no variable `{k}`; it has: {}",
                    d.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        vars.insert(k.clone(), v.clone());
    }
    vars.insert("base_url".into(), base_url.to_string());
    // Filled per collection; declared here so that templates may use it.
    vars.insert("window_minutes".into(), String::new());
    vars.insert(
        "host".into(),
        reqwest::Url::parse(base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default(),
    );
    Ok(vars)
}

/// Checks that every template of the definition (source, stream key,
/// paths and queries, follow-ups included) uses only known variables.
/// Returns whether any uses `{window_minutes}`.
pub(super) fn check(d: &Definition, vars: &Vars, source: &Source) -> Result<bool, ConfigError> {
    let mut templates: Vec<&str> = d.source.values().map(String::as_str).collect();
    templates.extend(d.stream_key.as_deref());
    fn request_templates<'a>(r: &'a Request, out: &mut Vec<&'a str>) {
        out.push(&r.path);
        out.extend(r.query.values().map(String::as_str));
        for e in &r.each {
            request_templates(e, out);
        }
    }
    for r in &d.requests {
        request_templates(r, &mut templates);
    }
    let uses_window = templates.iter().any(|t| t.contains("{window_minutes}"));
    for t in templates {
        for var in variables(t) {
            if !var.starts_with("item.") && !vars.contains_key(var) {
                return Err(source.error_at(
                    None,
                    format!("template `{t}` uses `{{{var}}}`, which is not a variable of this definition (declare it under [vars])"),
                ));
            }
        }
    }
    Ok(uses_window)
}

/// The `{names}` a template refers to.
pub(super) fn variables(t: &str) -> impl Iterator<Item = &str> {
    t.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// Fills `{name}` from `vars`, and `{item.a.b}` from the item's fields.
/// Unknown names and absent or null fields render as nothing; a `{`
/// without its `}` is kept as written.
pub(super) fn render(t: &str, vars: &Vars, item: Option<&Value>) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        if let Some(field) = name.strip_prefix("item.") {
            let v = item.and_then(|i| field.split('.').try_fold(i, |v, k| v.get(k)));
            match v {
                Some(Value::String(s)) => out.push_str(s),
                Some(Value::Null) | None => {}
                Some(other) => out.push_str(&other.to_string()),
            }
        } else if let Some(v) = vars.get(name) {
            out.push_str(v);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Renders every string of a JSON value (a request body) as a template;
/// keys and other values stay as they are.
pub(super) fn render_json(v: &Value, vars: &Vars, item: Option<&Value>) -> Value {
    match v {
        Value::String(s) => Value::String(render(s, vars, item)),
        Value::Array(a) => Value::Array(a.iter().map(|x| render_json(x, vars, item)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), render_json(x, vars, item)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A definition's TOML body as the JSON it is sent as.
pub(super) fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::http::definition;
    use serde_json::json;

    #[test]
    fn templates_render_vars_and_item_fields() {
        let vars = BTreeMap::from([("page_size".to_string(), "200".to_string())]);
        let item = json!({"id": "u1", "profile": {"login": "a@b"}});
        assert_eq!(
            render(
                "/users/{item.id}/x?l={page_size}&p={item.profile.login}",
                &vars,
                Some(&item)
            ),
            "/users/u1/x?l=200&p=a@b"
        );
    }

    #[test]
    fn unknown_names_and_missing_fields_render_empty_and_numbers_as_json() {
        let item = json!({"n": 7, "gone": null, "flag": true});
        assert_eq!(
            render(
                "a{nope}b{item.n}c{item.gone}d{item.flag}e{item.x.y}f",
                &Vars::new(),
                Some(&item)
            ),
            "ab7cdtrueef"
        );
        // Without an item, `{item.…}` is empty too; an open brace stays.
        assert_eq!(
            render("/x/{item.id}/{open", &Vars::new(), None),
            "/x//{open"
        );
    }

    #[test]
    fn json_bodies_render_their_strings_only() {
        let vars = Vars::from([("jql".into(), "updated >= -5m".into())]);
        let body = json!({"{jql}": "{jql}", "n": 5, "list": ["{jql}", null]});
        assert_eq!(
            render_json(&body, &vars, None),
            json!({"{jql}": "updated >= -5m", "n": 5, "list": ["updated >= -5m", null]})
        );
    }

    #[test]
    fn variables_are_listed_in_order() {
        assert_eq!(
            variables("{a}/x/{item.id}?q={b}&open{").collect::<Vec<_>>(),
            ["a", "item.id", "b"]
        );
    }

    fn loaded(requests: &str) -> definition::Loaded {
        let text = format!(
            "description = \"x\"\ncriteria = []\nauth = {{ type = \"none\" }}\n[vars]\nlimit = \"5\"\n{requests}"
        );
        definition::parse(std::path::Path::new("d.toml"), text).unwrap()
    }

    #[test]
    fn check_rejects_unknown_variables_and_spots_the_window() {
        let l = loaded(
            "[[requests]]\nname = \"a\"\npath = \"/a?l={limit}\"\n[[requests.each]]\nname = \"b\"\npath = \"/b/{item.id}\"\nquery = { since = \"{window_minutes}\" }\n",
        );
        let mut vars = l.definition.vars.clone();
        vars.insert("window_minutes".into(), String::new());
        assert!(check(&l.definition, &vars, &l.source).unwrap());

        let l = loaded("[[requests]]\nname = \"a\"\npath = \"/a?l={limit}\"\n");
        assert!(!check(&l.definition, &l.definition.vars, &l.source).unwrap());

        let l = loaded("[[requests]]\nname = \"a\"\npath = \"/a\"\nquery = { org = \"{org}\" }\n");
        let e = check(&l.definition, &l.definition.vars, &l.source).unwrap_err();
        assert!(
            e.to_string()
                .contains("template `{org}` uses `{org}`, which is not a variable"),
            "{e}"
        );
    }
}
