//! The definition format of declarative HTTP collectors: one TOML file per
//! collector, shipped in `collectors/` (embedded in the binary) or written by
//! users in their own `collectors_dir`.
//!
//! A definition is data, so it is checked as thoroughly as the config: TOML
//! and type errors, JSONPath syntax and unknown `{variables}` are all reported
//! with the definition file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json_path::JsonPath;
use toml::Spanned;
use toml::de::DeTable;

use crate::config::{ConfigError, Source};

/// The definitions shipped with Exhibit, embedded so that a container needs
/// no files beside the binary. A user's `collectors_dir` overrides them by
/// name.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "okta-users",
        include_str!("../../../collectors/okta-users.toml"),
    ),
    (
        "okta-policies",
        include_str!("../../../collectors/okta-policies.toml"),
    ),
    (
        "okta-apps",
        include_str!("../../../collectors/okta-apps.toml"),
    ),
    (
        "pagerduty",
        include_str!("../../../collectors/pagerduty.toml"),
    ),
    (
        "datadog-monitors",
        include_str!("../../../collectors/datadog-monitors.toml"),
    ),
    (
        "datadog-users",
        include_str!("../../../collectors/datadog-users.toml"),
    ),
    (
        "google-workspace-directory",
        include_str!("../../../collectors/google-workspace-directory.toml"),
    ),
    (
        "jira-changes",
        include_str!("../../../collectors/jira-changes.toml"),
    ),
];

/// A declarative collector: where to connect, how to authenticate, what to
/// request and what to keep.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// What the collector gathers, for people reading the definition.
    pub description: String,
    /// Default base URL, e.g. `https://admin.googleapis.com`. Instances may
    /// override it with `base_url`; when absent they must give one.
    pub base_url: Option<String>,
    /// SOC 2 criteria the evidence supports, e.g. `["CC6.1"]`.
    pub criteria: Vec<String>,
    /// Default values of `{variables}` used in paths, queries and the
    /// source; instances override them with `vars`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// How requests authenticate.
    pub auth: Auth,
    /// Headers sent with every request, e.g. a vendor's versioned
    /// `Accept`. Not for secrets: those go in `auth`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The source identity recorded with every record (templates).
    #[serde(default)]
    pub source: BTreeMap<String, String>,
    /// The stream key (template); by default the base URL's host.
    pub stream_key: Option<String>,
    /// Throttling behaviour.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// Field names removed from every kept object, at any depth, in
    /// addition to the built-in list of secret-looking names.
    #[serde(default)]
    pub redact_fields: Vec<String>,
    /// The largest response body read, in bytes (default 256 MiB): a
    /// larger one fails its request naming this cap, so that a broken or
    /// hostile server cannot exhaust the agent's memory.
    #[serde(default = "default_max_body")]
    pub max_body: u64,
    /// The requests; each becomes a section of the payload.
    pub requests: Vec<Request>,
}

fn default_max_body() -> u64 {
    256 * 1024 * 1024
}

/// Authentication. Secrets come from the instance settings (`token`,
/// `api_key`, `app_key`, `password`, `client_secret`, `private_key`), never
/// from the definition.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(NoFields),
    /// Fixed headers whose values are templates over the secrets, e.g.
    /// `Authorization = "SSWS {token}"` or `DD-API-KEY = "{api_key}"`.
    Headers(HeadersAuth),
    /// HTTP basic with `username` and `password`.
    Basic(NoFields),
    /// OAuth 2.0 client credentials grant (`client_id`, `client_secret`).
    Oauth2ClientCredentials(OAuth2Auth),
    /// A Google service account with domain-wide delegation: a JWT signed
    /// with the account's key (`private_key`, the JSON key file) acting as
    /// `subject`, exchanged for an access token.
    GoogleServiceAccount(OAuth2Scopes),
    /// No authentication (public endpoints, tests).
    None(NoFields),
}

/// An auth variant without settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// Header authentication.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersAuth {
    /// Header name → value template.
    pub headers: BTreeMap<String, String>,
}

/// Scopes of a Google service account.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Scopes {
    /// Read-only scopes requested.
    pub scopes: Vec<String>,
}

/// OAuth 2.0 client credentials.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Auth {
    /// The token endpoint (template; may use `{base_url}`).
    pub token_url: String,
    /// Scopes requested; read-only ones.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Throttling.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests in flight at once for one instance.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Header with the requests left in the window (e.g.
    /// `x-rate-limit-remaining`); at 0 the collector waits for the reset.
    pub remaining_header: Option<String>,
    /// Header with the window's reset time, in epoch seconds
    /// (`x-rate-limit-reset`), or seconds from now when `reset_is_delay`.
    pub reset_header: Option<String>,
    /// Whether `reset_header` is a delay in seconds rather than a time.
    #[serde(default)]
    pub reset_is_delay: bool,
    /// Retries of one request after a 429 or 5xx.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The longest single wait, in seconds; a longer demand fails the
    /// request (the runner retries the whole collection later).
    #[serde(default = "default_max_wait")]
    pub max_wait_secs: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            concurrency: default_concurrency(),
            remaining_header: None,
            reset_header: None,
            reset_is_delay: false,
            retries: default_retries(),
            max_wait_secs: default_max_wait(),
        }
    }
}

fn default_concurrency() -> usize {
    4
}
fn default_retries() -> u32 {
    3
}
fn default_max_wait() -> u64 {
    120
}
fn default_method() -> String {
    "GET".into()
}
fn default_max_pages() -> u32 {
    1000
}

/// One request (with its pages) and what to keep of its items.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The payload section it fills, e.g. `users`.
    pub name: String,
    /// `GET` (default) or `POST` (for search APIs that read with POST).
    #[serde(default = "default_method")]
    pub method: String,
    /// Path after the base URL (template; follow-ups may use `{item.x}`).
    pub path: String,
    /// Query parameters (values are templates).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A JSON body for POST (strings inside are templates).
    #[schemars(with = "Option<serde_json::Value>")]
    pub body: Option<toml::Value>,
    /// JSONPath (RFC 9535) selecting the items in a response; without it
    /// the whole response body is one item.
    #[schemars(with = "Option<String>")]
    pub items: Option<Spanned<String>>,
    /// Output field → JSONPath relative to an item. Without it, the whole
    /// item is kept (minus redacted fields).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub keep: BTreeMap<String, Spanned<String>>,
    /// How to get the next page.
    #[serde(default)]
    pub pagination: Pagination,
    /// The most pages followed before the result is marked incomplete:
    /// a server that always returns a next page cannot loop us forever.
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// HTTP statuses that mean "nothing here" (e.g. 404 for a user with no
    /// roles) and give an empty list instead of a failure.
    #[serde(default)]
    pub empty_on: Vec<u16>,
    /// Requests made once per kept item, e.g. the factors of each user;
    /// their results are stored in the item under their name.
    #[serde(default)]
    pub each: Vec<Request>,
}

/// Pagination styles seen across SaaS APIs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One response holds everything.
    None {},
    /// RFC 8288 `Link: <…>; rel="next"` (Okta, GitHub).
    LinkHeader {},
    /// A cursor in the body sent back as a query parameter (Google's
    /// `nextPageToken` → `pageToken`, Slack's `next_cursor`).
    Cursor {
        /// JSONPath of the cursor in the body; absent or empty ends paging.
        cursor: String,
        /// The query parameter that carries it.
        param: String,
    },
    /// Offset/limit (PagerDuty): the offset grows by the items received.
    Offset {
        /// Offset parameter name.
        param: String,
        /// JSONPath of a "more pages" boolean; without it paging stops at
        /// an empty page.
        more: Option<String>,
    },
    /// Page numbers (Datadog `page`, Jira `startAt` uses offset).
    Page {
        /// Page parameter name.
        param: String,
        /// The first page's number (0 or 1).
        #[serde(default)]
        start: u64,
        /// The query parameter holding the page size: a page shorter than
        /// it is the last one (saves a request for an empty page).
        size_param: Option<String>,
    },
    /// The next page's URL in the body (Datadog v2 `links.next`, Jira
    /// `nextPage`).
    NextUrl {
        /// JSONPath of the URL.
        next: String,
    },
}

impl Default for Pagination {
    fn default() -> Self {
        Pagination::None {}
    }
}

/// Where a definition came from, for error messages.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed definition.
    pub definition: std::sync::Arc<Definition>,
    /// Its source text, for located errors found after parsing.
    pub source: Source,
    /// SHA-256 of the definition file, recorded with the evidence so that
    /// an auditor can tell which version of a (possibly user-modified)
    /// definition produced it.
    pub sha256: String,
}

/// Finds a definition by name: the user's directory first, then the
/// built-in ones.
/// Returns the file, its text, and whether it is a built-in one.
pub fn find(name: &str, user_dir: Option<&Path>) -> Result<(PathBuf, String, bool), String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!(
            "`{name}` is not a definition name (like `okta-users`)"
        ));
    }
    if let Some(dir) = user_dir {
        let path = dir.join(format!("{name}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok((path, text, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    if let Some((n, text)) = BUILTIN.iter().find(|(n, _)| *n == name) {
        return Ok((
            PathBuf::from(format!("collectors/{n}.toml")),
            text.to_string(),
            true,
        ));
    }
    let known: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "no definition `{name}`{}; built-in definitions: {}",
        user_dir
            .map(|d| format!(" in {} or built in", d.display()))
            .unwrap_or_default(),
        known.join(", ")
    ))
}

/// Parses and validates a definition. `known_vars` are the variable names
/// available to templates (besides `item.…` in follow-ups).
pub fn parse(path: &Path, text: String) -> Result<Loaded, ConfigError> {
    let sha256 = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    };
    let text: &'static str = Box::leak(text.into_boxed_str());
    let source = Source::new(path.to_path_buf(), text.to_string());
    let table = DeTable::parse(text).map_err(|e| source.error_at(e.span(), e.message()))?;
    let definition: Definition = source.deserialize(table)?;
    validate(&definition, &source)?;
    Ok(Loaded {
        definition: std::sync::Arc::new(definition),
        source,
        sha256,
    })
}

fn check_path(source: &Source, p: &Spanned<String>) -> Result<(), ConfigError> {
    JsonPath::parse(p.get_ref()).map(|_| ()).map_err(|e| {
        source.error_at(
            Some(p.span()),
            format!("`{}` is not a JSONPath (RFC 9535): {e}", p.get_ref()),
        )
    })
}

fn validate(d: &Definition, source: &Source) -> Result<(), ConfigError> {
    if d.requests.is_empty() {
        return Err(source.error_at(None, "a definition needs at least one [[requests]]"));
    }
    if d.rate_limit.concurrency == 0 {
        return Err(source.error_at(None, "rate_limit.concurrency must be at least 1"));
    }
    fn walk(r: &Request, source: &Source, names: &mut Vec<String>) -> Result<(), ConfigError> {
        if let Some(i) = &r.items {
            check_path(source, i)?;
        }
        for p in r.keep.values() {
            check_path(source, p)?;
        }
        let paging_path = match &r.pagination {
            Pagination::Cursor { cursor, .. } => Some(cursor),
            Pagination::Offset { more: Some(m), .. } => Some(m),
            Pagination::NextUrl { next } => Some(next),
            _ => None,
        };
        if let Some(p) = paging_path {
            // Spans are lost inside the tagged `pagination` table, so the
            // message names the request instead.
            JsonPath::parse(p).map_err(|e| {
                source.error_at(
                    None,
                    format!(
                        "request `{}`: pagination path `{p}` is not a JSONPath (RFC 9535): {e}",
                        r.name
                    ),
                )
            })?;
        }
        if !matches!(r.method.as_str(), "GET" | "POST") {
            return Err(source.error_at(
                None,
                format!(
                    "request `{}`: method `{}` is not allowed; collectors only read (GET, or POST for search APIs)",
                    r.name, r.method
                ),
            ));
        }
        if names.contains(&r.name) {
            return Err(source.error_at(None, format!("two requests are named `{}`", r.name)));
        }
        names.push(r.name.clone());
        let mut inner = Vec::new();
        for e in &r.each {
            walk(e, source, &mut inner)?;
        }
        Ok(())
    }
    let mut names = Vec::new();
    for r in &d.requests {
        walk(r, source, &mut names)?;
    }
    Ok(())
}

/// The JSON Schema of the definition format, as published in
/// `docs/collectors/http-definition.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Definition)).expect("a schema is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_are_rejected_even_inside_tagged_tables() {
        let base = "description = \"x\"\ncriteria = []\nauth = { type = \"bearer\" }\n[[requests]]\nname = \"a\"\npath = \"/\"\n";
        for extra in [
            "pagination = { type = \"cursor\", cursor = \"$.n\", parm = \"p\" }",
            "pagination = { type = \"link_header\", next = \"x\" }",
            "itmes = \"$[*]\"",
        ] {
            let text = format!("{base}{extra}\n");
            let e = parse(Path::new("d.toml"), text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {extra}"));
            assert!(e.to_string().contains("unknown field"), "{e}");
        }
        let bad_auth = "description = \"x\"\ncriteria = []\nauth = { type = \"bearer\", token = \"t\" }\n[[requests]]\nname = \"a\"\npath = \"/\"\n";
        assert!(parse(Path::new("d.toml"), bad_auth.into()).is_err());
    }

    #[test]
    fn pagination_paths_and_methods_are_checked() {
        let base = "description = \"x\"\ncriteria = []\nauth = { type = \"bearer\" }\n[[requests]]\nname = \"a\"\npath = \"/\"\n";
        let e = parse(
            Path::new("d.toml"),
            format!("{base}pagination = {{ type = \"next_url\", next = \"links.next\" }}\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("JSONPath"), "{e}");
        let e = parse(Path::new("d.toml"), format!("{base}method = \"DELETE\"\n")).unwrap_err();
        assert!(e.to_string().contains("only read"), "{e}");
    }

    #[test]
    fn every_builtin_definition_parses() {
        for (name, text) in BUILTIN {
            parse(Path::new(name), text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn the_published_schema_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/collectors/http-definition.schema.json"
        );
        let want = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("EXHIBIT_WRITE_SCHEMA").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/collectors/http-definition.schema.json is stale: run `EXHIBIT_WRITE_SCHEMA=1 cargo test the_published_schema_is_current`"
        );
    }
}
