//! The control file format: one TOML file per control, named `<id>.toml`,
//! with its policy in Rego either inline (`policy = '''…'''`) or in a
//! sibling file (`policy_file = "<id>.rego"`).
//!
//! A control is data, so it is checked as thoroughly as the config: TOML and
//! type errors, durations, identifiers, criteria and input selectors are all
//! reported with the control file, line and key. Whether the Rego compiles
//! is checked by [`super::policy`] when the library loads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;
use toml::de::DeTable;

use super::Frequency;
use crate::config::{ConfigError, Source};
use crate::evidence::record::CollectorInfo;
use crate::evidence::sha256_hex;

/// A control file as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlFile {
    /// One line saying what the control asserts, e.g. "Every console user
    /// has MFA".
    pub title: String,
    /// What the control checks and why, for people reading the library.
    pub description: Option<String>,
    /// SOC 2 trust services criteria the control supports, e.g. `["CC6.1"]`.
    pub criteria: Vec<String>,
    /// How often the control operates.
    pub frequency: Frequency,
    /// How old an input snapshot may be at evaluation time (e.g. `"36h"`);
    /// by default from the frequency (daily: 36h, weekly: 10 days…).
    #[schemars(with = "Option<String>")]
    pub freshness: Option<Spanned<String>>,
    /// `state` (judges snapshots) or `event` (judges occurrences such as
    /// merged pull requests, listed by the policy's `occurrences`).
    #[serde(default)]
    pub kind: ControlKind,
    /// The records the policy reads, by collector kind (and optionally
    /// instance, definition or stream).
    pub inputs: Vec<InputSpec>,
    /// The policy, inline.
    pub policy: Option<String>,
    /// The policy, in a file beside the control file.
    #[schemars(with = "Option<String>")]
    pub policy_file: Option<Spanned<String>>,
    /// Values the policy reads as `input.params` (thresholds, allow-lists).
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub params: toml::Table,
    /// A signed human review required in every period.
    pub attestation: Option<AttestationSpec>,
    /// A CSV file beside the control file, with a header
    /// `system,account,person`, that maps accounts of different systems to
    /// one person (for reconciliation controls); the policy reads it as
    /// `input.mapping[system][account]`.
    #[schemars(with = "Option<String>")]
    pub mapping_file: Option<Spanned<String>>,
    /// Sample size for a year; by default from the frequency.
    pub sample_size: Option<usize>,
}

/// What a control judges.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// A state over snapshots: each evaluation is one occurrence.
    #[default]
    State,
    /// Events inside the inputs (merged changes, deployments): each event
    /// the policy lists in `occurrences` is one occurrence.
    Event,
}

/// Records a control reads, selected by collector kind and optionally
/// narrowed by instance name, HTTP definition or stream.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The name the policy reads it by: `input.inputs.<name>`.
    pub name: String,
    /// The collector kind, e.g. `aws-iam-credential-report` or `http`.
    pub kind: String,
    /// For `kind = "http"`: the definition name, e.g. `okta-users`.
    pub definition: Option<String>,
    /// Only the streams of this collector instance (its `name` in the
    /// config).
    pub collector: Option<String>,
    /// Only this stream.
    pub stream: Option<String>,
    /// When true, a missing input leaves `input.inputs.<name>` empty
    /// instead of making the control `not_evaluated`.
    #[serde(default)]
    pub optional: bool,
    /// Parts of a partial record that the policy does not need: a
    /// `partial` record whose every failure contains one of these texts is
    /// judged; any other failure makes the control `not_evaluated`.
    #[serde(default)]
    pub tolerate: Vec<String>,
}

impl InputSpec {
    /// Whether this input selects `stream`, written by `collector` from
    /// `source` (a record's predicate says all three).
    pub fn selects(&self, stream: &str, collector: &CollectorInfo, source: &Value) -> bool {
        collector.kind == self.kind
            && self
                .definition
                .as_ref()
                .is_none_or(|d| source.get("definition").and_then(Value::as_str) == Some(d))
            && self.collector.as_ref().is_none_or(|c| &collector.name == c)
            && self.stream.as_ref().is_none_or(|s| s == stream)
    }
}

/// A review that a person must sign in every period (e.g. a quarterly
/// access review over the IdP users snapshot).
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttestationSpec {
    /// The period: `monthly`, `quarterly` or `annual`.
    pub every: Frequency,
    /// The input whose record the review signs off.
    pub input: String,
    /// How long after a period ends its review may still be signed
    /// (default `"30d"`); a period is judged once this has passed.
    #[schemars(with = "Option<String>")]
    pub grace: Option<Spanned<String>>,
    /// The statement reviewers are expected to sign, for `exhibit attest`.
    pub statement: Option<String>,
}

/// A policy's text and identity.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// The file it came from (the control file, when inline).
    pub path: PathBuf,
    /// The Rego text.
    pub text: String,
    /// SHA-256 of the text, named by every result.
    pub sha256: String,
}

/// A validated control.
#[derive(Debug, Clone)]
pub struct Control {
    /// The id, from the file name; results go to `control/<id>`.
    pub id: String,
    /// The title.
    pub title: String,
    /// The description.
    pub description: Option<String>,
    /// SOC 2 criteria.
    pub criteria: Vec<String>,
    /// How often it operates.
    pub frequency: Frequency,
    /// The freshness window of inputs.
    pub freshness: Duration,
    /// State or event control.
    pub kind: ControlKind,
    /// The inputs.
    pub inputs: Vec<InputSpec>,
    /// `input.params`.
    pub params: Value,
    /// The required review, if any.
    pub attestation: Option<Attestation>,
    /// The identity mapping file, resolved beside the control file.
    pub mapping_file: Option<PathBuf>,
    /// Sample size for a year.
    pub sample_size: usize,
    /// The policy.
    pub policy: PolicySource,
    /// SHA-256 of the control file.
    pub sha256: String,
}

/// A validated attestation requirement.
#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    /// The period.
    pub every: Frequency,
    /// The input reviewed.
    pub input: String,
    /// The grace after each period.
    pub grace: Duration,
    /// The expected statement.
    pub statement: Option<String>,
}

/// Reads a file beside the control file: its path and text.
pub type ReadSibling<'a> = &'a dyn Fn(&str) -> Result<(PathBuf, String), String>;

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `id` may name a control: lower-case letters, digits and inner
/// dashes, as it becomes the stream `control/<id>`.
pub fn is_control_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

fn is_criterion(c: &str) -> bool {
    let letters = c.chars().take_while(|c| c.is_ascii_uppercase()).count();
    let rest = &c[letters..];
    (1..=3).contains(&letters)
        && !rest.is_empty()
        && rest
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn duration(source: &Source, s: &Spanned<String>) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s.get_ref()).map_err(|e| {
        source.error_at(
            Some(s.span()),
            format!(
                "`{}` is not a duration (like \"36h\" or \"30d\"): {e}",
                s.get_ref()
            ),
        )
    })
}

/// Parses and validates the control file `path` (whose stem is the id).
/// `read_sibling` reads the policy and mapping files it names.
pub fn parse(path: &Path, text: &str, read_sibling: ReadSibling) -> Result<Control, ConfigError> {
    let source = Source::new(path.to_path_buf(), text.to_string());
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if !is_control_id(&id) {
        return Err(source.error_at(
            None,
            format!("`{id}` is not a control id: name the file with lower-case letters, digits and dashes"),
        ));
    }
    let table = DeTable::parse(text).map_err(|e| source.error_at(e.span(), e.message()))?;
    let file: ControlFile = source.deserialize(table)?;
    validate(&source, path, file, id, text, read_sibling)
}

/// The offset of a top-level `key = …` (before any table header).
fn top_level_key(text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            return None;
        }
        if t.split_once('=')
            .is_some_and(|(k, _)| k.trim().trim_matches('"') == key)
        {
            return Some(offset + line.len() - t.len());
        }
        offset += line.len();
    }
    None
}

fn validate(
    source: &Source,
    path: &Path,
    f: ControlFile,
    id: String,
    text: &str,
    read_sibling: ReadSibling,
) -> Result<Control, ConfigError> {
    let key_error = |key: &str, msg: String| {
        let mut e = source.error_at(top_level_key(text, key).map(|at| at..at), msg);
        e.key = Some(key.to_string());
        e
    };
    if f.title.trim().is_empty() {
        return Err(key_error("title", "a control needs a title".into()));
    }
    if f.criteria.is_empty() {
        return Err(key_error(
            "criteria",
            "a control supports at least one criterion, e.g. [\"CC6.1\"]".into(),
        ));
    }
    if let Some(c) = f.criteria.iter().find(|c| !is_criterion(c)) {
        return Err(key_error(
            "criteria",
            format!("`{c}` is not a trust services criterion (like CC6.1 or A1.2)"),
        ));
    }
    let freshness = match &f.freshness {
        Some(s) => duration(source, s)?,
        None => f.frequency.default_freshness(),
    };
    if f.inputs.is_empty() {
        return Err(source.error_at(None, "a control needs at least one [[inputs]]"));
    }
    let mut names = BTreeSet::new();
    for (i, input) in f.inputs.iter().enumerate() {
        let err = |key: &str, msg: String| source.error_for_key("inputs", i, key, msg);
        if !is_identifier(&input.name) {
            return Err(err(
                "name",
                format!(
                    "`{}` is not an input name: lower-case letters, digits and `_`, as the policy reads `input.inputs.<name>`",
                    input.name
                ),
            ));
        }
        if !names.insert(input.name.as_str()) {
            return Err(err(
                "name",
                format!("two inputs are named `{}`", input.name),
            ));
        }
        if input.kind.is_empty()
            || !input
                .kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(err(
                "kind",
                format!("`{}` is not a collector kind", input.kind),
            ));
        }
        if input.definition.is_some() && input.kind != "http" {
            return Err(err(
                "definition",
                "`definition` selects an HTTP definition: it needs kind = \"http\"".into(),
            ));
        }
        if let Some(s) = &input.stream {
            crate::evidence::validate_stream_id(s).map_err(|e| err("stream", e))?;
        }
    }
    let attestation = match f.attestation {
        None => None,
        Some(a) => {
            let err = |key: &str, msg: String| source.error_for_key("attestation", 0, key, msg);
            if !matches!(
                a.every,
                Frequency::Monthly | Frequency::Quarterly | Frequency::Annual
            ) {
                return Err(err(
                    "every",
                    "reviews are required monthly, quarterly or annually".into(),
                ));
            }
            if !names.contains(a.input.as_str()) {
                return Err(err(
                    "input",
                    format!("`{}` is not one of this control's inputs", a.input),
                ));
            }
            let grace = match &a.grace {
                Some(g) => duration(source, g)?,
                None => Duration::from_secs(30 * 86_400),
            };
            Some(Attestation {
                every: a.every,
                input: a.input,
                grace,
                statement: a.statement,
            })
        }
    };
    let policy = match (f.policy, f.policy_file) {
        (Some(text_inline), None) => PolicySource {
            path: path.to_path_buf(),
            sha256: sha256_hex(text_inline.as_bytes()),
            text: text_inline,
        },
        (None, Some(file)) => {
            let (path, text) =
                read_sibling(file.get_ref()).map_err(|e| source.error_at(Some(file.span()), e))?;
            PolicySource {
                path,
                sha256: sha256_hex(text.as_bytes()),
                text,
            }
        }
        _ => {
            return Err(source.error_at(
                None,
                "a control needs exactly one of `policy` (inline Rego) and `policy_file`",
            ));
        }
    };
    let mapping_file = match &f.mapping_file {
        None => None,
        Some(m) => {
            let (path, _) =
                read_sibling(m.get_ref()).map_err(|e| source.error_at(Some(m.span()), e))?;
            Some(path)
        }
    };
    if f.sample_size == Some(0) {
        return Err(key_error(
            "sample_size",
            "a sample has at least one item".into(),
        ));
    }
    let params = serde_json::to_value(&f.params).expect("TOML tables are JSON");
    Ok(Control {
        id,
        title: f.title,
        description: f.description,
        criteria: f.criteria,
        sample_size: f.sample_size.unwrap_or(f.frequency.default_sample_size()),
        frequency: f.frequency,
        freshness,
        kind: f.kind,
        inputs: f.inputs,
        params,
        attestation,
        mapping_file,
        policy,
        sha256: sha256_hex(text.as_bytes()),
    })
}

/// The JSON Schema of the control file format, as published in
/// `docs/controls/control.schema.json`.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(ControlFile)).expect("a schema is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
title = "Every console user has MFA"
criteria = ["CC6.1"]
frequency = "daily"
policy = "package x\nfindings := set()"

[[inputs]]
name = "report"
kind = "aws-iam-credential-report"
"#;

    fn no_files(name: &str) -> Result<(PathBuf, String), String> {
        Err(format!("no file `{name}`"))
    }

    fn parse_text(text: &str) -> Result<Control, ConfigError> {
        parse(Path::new("controls/mfa.toml"), text, &no_files)
    }

    #[test]
    fn a_minimal_control_takes_its_defaults_from_the_frequency() {
        let c = parse_text(BASE).unwrap();
        assert_eq!(c.id, "mfa");
        assert_eq!(c.freshness, Duration::from_secs(36 * 3600));
        assert_eq!(c.sample_size, 25);
        assert_eq!(c.kind, ControlKind::State);
        assert_eq!(c.policy.sha256, sha256_hex(b"package x\nfindings := set()"));
        assert_eq!(c.params, serde_json::json!({}));
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = parse_text(&BASE.replace("\"daily\"", "\"hourly\"")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("controls/mfa.toml:4:"), "{s}");
        assert!(s.contains("frequency"), "{s}");

        let e = parse_text(&format!("freshness = \"soon\"{BASE}")).unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("not a duration"), "{e}");

        let e = parse_text(&BASE.replace("\"CC6.1\"", "\"security\"")).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("criterion"), "{e}");

        let e = parse_text(&format!("{BASE}definition = \"okta-users\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("inputs[0].definition"), "{e}");

        let e = parse_text(&BASE.replace("name = \"report\"", "name = \"Report-1\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("inputs[0].name"), "{e}");

        let e = parse_text(&format!("colour = 1{BASE}")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn a_policy_comes_from_exactly_one_place() {
        let both = format!("policy_file = \"mfa.rego\"{BASE}");
        assert!(
            parse_text(&both)
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        let file = BASE.replace(
            "policy = \"package x\\nfindings := set()\"",
            "policy_file = \"mfa.rego\"",
        );
        let e = parse_text(&file).unwrap_err();
        assert!(e.to_string().contains("no file `mfa.rego`"), "{e}");
        let read = |name: &str| {
            Ok::<_, String>((
                PathBuf::from(format!("controls/{name}")),
                "package y".into(),
            ))
        };
        let c = parse(Path::new("controls/mfa.toml"), &file, &read).unwrap();
        assert_eq!(c.policy.path, PathBuf::from("controls/mfa.rego"));
        assert_eq!(c.policy.text, "package y");
    }

    #[test]
    fn attestations_name_one_of_the_inputs() {
        let ok = format!("{BASE}[attestation]\nevery = \"quarterly\"\ninput = \"report\"\n");
        let a = parse_text(&ok).unwrap().attestation.unwrap();
        assert_eq!(a.grace, Duration::from_secs(30 * 86_400));
        let e = parse_text(&ok.replace("input = \"report\"", "input = \"users\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("attestation.input"), "{e}");
        let e = parse_text(&ok.replace("quarterly", "daily")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("attestation.every"), "{e}");
    }

    #[test]
    fn ids_and_criteria() {
        assert!(is_control_id("aws-console-mfa"));
        assert!(!is_control_id("AWS"));
        assert!(!is_control_id("-x"));
        assert!(!is_control_id("a/b"));
        assert!(is_criterion("CC6.1"));
        assert!(is_criterion("A1.2"));
        assert!(is_criterion("PI1.1"));
        assert!(!is_criterion("CC"));
        assert!(!is_criterion("CC6."));
        assert!(!is_criterion("cc6.1"));
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod schema_tests;
