//! `exhibit kinds`: the collector kinds of this build, from the registry
//! (`collect::kinds()`): what each collects, its default SOC 2 criteria,
//! the settings it requires and accepts, and the permissions it needs.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cli::Failure;
use crate::collect::about::about;
use crate::collect::instance::kind_keys;

/// Prints every kind, as text or (`json`) as one JSON array.
pub(crate) fn exec(json: bool) -> Result<ExitCode, Failure> {
    let kinds: Vec<Value> = crate::collect::kinds()
        .map(|k| {
            let a = about(k.name);
            let mut v = json!({
                "kind": k.name,
                "collects": a.map(|a| a.collects),
                "criteria": k.criteria,
                "required": a.map(|a| a.required).unwrap_or_default(),
                "settings": kind_keys(k).unwrap_or_default(),
                "secrets": k.secrets,
                "permissions": a.map(|a| a.permissions),
                "docs": a.map(|a| a.docs),
            });
            if k.name == "http" {
                v["definitions"] = definitions();
            }
            v
        })
        .collect();
    let mut out = String::new();
    if json {
        out = serde_json::to_string_pretty(&kinds).map_err(anyhow::Error::from)? + "\n";
    } else {
        use std::fmt::Write;
        let list = |v: &Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        for k in &kinds {
            let _ = writeln!(out, "{}", k["kind"].as_str().unwrap_or(""));
            let _ = writeln!(
                out,
                "  collects     {}",
                k["collects"].as_str().unwrap_or("—")
            );
            let criteria = list(&k["criteria"]);
            let _ = writeln!(
                out,
                "  criteria     {}",
                if criteria.is_empty() {
                    "none by default (set `criteria`)".into()
                } else {
                    criteria
                }
            );
            let required = list(&k["required"]);
            let _ = writeln!(
                out,
                "  requires     {}",
                if required.is_empty() {
                    "nothing beyond name, kind and schedule".into()
                } else {
                    required
                }
            );
            let _ = writeln!(out, "  settings     {}", list(&k["settings"]));
            let _ = writeln!(
                out,
                "  permissions  {}",
                k["permissions"].as_str().unwrap_or("—")
            );
            if let Some(defs) = k["definitions"].as_array() {
                let _ = writeln!(out, "  definitions");
                for d in defs {
                    let _ = writeln!(
                        out,
                        "    {:<28} {}",
                        d["name"].as_str().unwrap_or(""),
                        d["description"].as_str().unwrap_or("")
                    );
                }
            }
            let _ = writeln!(
                out,
                "  docs         {}\n",
                k["docs"].as_str().unwrap_or("—")
            );
        }
        let _ = writeln!(
            out,
            "Every collector also takes: {}.",
            crate::config::COMMON_KEYS.join(", ")
        );
    }
    super::print_quietly(&out);
    Ok(ExitCode::SUCCESS)
}

/// The built-in definitions of `kind = "http"`, with their descriptions.
fn definitions() -> Value {
    crate::collect::http::definition::BUILTIN
        .iter()
        .map(|(name, text)| {
            let description = text.parse::<toml::Table>().ok().and_then(|t| {
                t.get("description")
                    .and_then(|d| d.as_str())
                    .map(str::to_string)
            });
            json!({"name": name, "description": description})
        })
        .collect()
}
