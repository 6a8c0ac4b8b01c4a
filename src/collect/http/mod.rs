//! `kind = "http"`: declarative SaaS collectors. The engine here reads a
//! definition (see [`definition`]) and turns it into requests, pages,
//! follow-ups and a payload; the knowledge of each vendor lives in the
//! definition files under `collectors/`, which users can copy and adapt
//! without a new release.
//!
//! This module builds an instance from its settings and assembles the
//! payload; the jobs in between each have their module: `template`
//! fills `{variables}`, `auth` obtains credentials, `client` sends one
//! request (throttled and retried), `fetch` walks pages and follow-ups,
//! `shape` keeps and redacts fields and scrubs secrets, and `error`
//! classifies failures.
//!
//! Failure policy: a request whose pages cannot all be fetched makes the
//! record `partial` and its payload section says so (`complete: false` and
//! the error); only when nothing at all could be collected does the
//! collection fail. A list is never silently shorter than the source's.

mod auth;
mod client;
pub mod definition;
mod error;
mod fetch;
mod shape;
mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{CollectError, Collector, Context, KindSpec, Previous, Snapshot, Target};
use crate::config::{ConfigError, Settings};
use auth::Authenticator;
use client::Client;
use definition::Definition;
use error::Failure;
use fetch::Fetcher;
use shape::{Redaction, Scrubber};
use template::{Vars, render};

pub use client::redirect_policy;

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    name: "http",
    criteria: &[],
    secrets: &[
        "token",
        "api_key",
        "app_key",
        "password",
        "client_secret",
        "private_key",
    ],
    build,
    windowed: &[],
    // Each definition reads another API; the generic identities serve
    // them all, as the read side knows the kind but not the definition.
    identities: &[],
};

/// Minutes of overlap between consecutive windows.
const WINDOW_OVERLAP_MINUTES: i64 = 5;

/// Instance settings of `kind = "http"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSettings {
    /// The definition's name, e.g. `okta-users`.
    definition: String,
    /// A folder of the user's own definitions (relative to the config);
    /// they add to and override the built-in ones.
    collectors_dir: Option<PathBuf>,
    /// Overrides the definition's base URL (an Okta org, a test server).
    base_url: Option<String>,
    token: Option<String>,
    api_key: Option<String>,
    app_key: Option<String>,
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// A Google service account's JSON key (usually `private_key_file`).
    private_key: Option<String>,
    /// The Workspace admin a Google service account acts as.
    subject: Option<String>,
    /// Values of the definition's `{variables}`.
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

/// One configured instance: its definition, composed with the parts that
/// send, fetch and shape.
struct HttpCollector {
    name: String,
    definition: Arc<Definition>,
    definition_name: String,
    /// Whether the definition is the built-in one or the user's, and its
    /// SHA-256, for the record's source identity.
    definition_builtin: bool,
    definition_sha256: String,
    base_url: String,
    vars: Vars,
    /// Whether requests use `{window_minutes}` (recorded in the payload).
    uses_window: bool,
    client: Client,
    redaction: Redaction,
}

fn build(settings: &Settings) -> Result<Box<dyn Collector>, ConfigError> {
    let s: HttpSettings = settings.parse()?;
    let user_dir = s.collectors_dir.as_ref().map(|d| settings.base_dir.join(d));
    let (path, text, builtin) = definition::find(&s.definition, user_dir.as_deref())
        .map_err(|m| settings.error("definition", m))?;
    let loaded = definition::parse(&path, text)?;
    let d = loaded.definition.clone();
    let base_url = s
        .base_url
        .clone()
        .or_else(|| d.base_url.clone())
        .ok_or_else(|| {
            settings.error(
                "base_url",
                format!(
                    "definition `{}` has no default base URL: set `base_url`",
                    s.definition
                ),
            )
        })?;
    let base_url = base_url.trim_end_matches('/').to_string();
    reqwest::Url::parse(&base_url).map_err(|e| {
        settings.error(
            "base_url",
            format!(
                "`{}` is not a URL: {e}",
                crate::config::redact_url_credentials(&base_url)
            ),
        )
    })?;
    let vars = template::instance_vars(settings, &s.definition, &d, &s.vars, &base_url)?;
    // Every template must resolve now, not at 3 a.m.
    let uses_window = template::check(&d, &vars, &loaded.source)?;
    let auth = Authenticator::new(settings, &s, &d, &vars)?;
    Ok(Box::new(HttpCollector {
        uses_window,
        name: settings.name.clone(),
        client: Client::new(settings.name.clone(), &d, &vars, auth),
        redaction: Redaction::new(&d),
        definition: d,
        definition_name: s.definition,
        definition_builtin: builtin,
        definition_sha256: loaded.sha256.clone(),
        base_url,
        vars,
    }))
}

#[async_trait]
impl Collector for HttpCollector {
    async fn targets(&self, _ctx: &Context) -> Result<Vec<Target>, CollectError> {
        let key = match &self.definition.stream_key {
            Some(t) => render(t, &self.vars, None),
            None => self.vars.get("host").cloned().unwrap_or_default(),
        };
        let mut source = Map::new();
        source.insert("definition".into(), json!(self.definition_name));
        source.insert("base_url".into(), json!(self.base_url));
        source.insert("definition_sha256".into(), json!(self.definition_sha256));
        source.insert(
            "definition_origin".into(),
            json!(if self.definition_builtin {
                "built-in"
            } else {
                "collectors_dir"
            }),
        );
        for (k, t) in &self.definition.source {
            source.insert(k.clone(), json!(render(t, &self.vars, None)));
        }
        Ok(vec![Target {
            key,
            source: Value::Object(source),
        }])
    }

    fn criteria(&self) -> Option<Vec<String>> {
        Some(self.definition.criteria.clone())
    }

    async fn collect(
        &self,
        ctx: &Context,
        _target: &Target,
        previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        self.client.auth().start_collection().await;
        // `{window_minutes}`: the time since the previous record of the
        // stream (plus an overlap, so that nothing falls between two runs),
        // or the definition's `initial_window_minutes` on the first run.
        // Relative minutes sidestep the vendor's idea of time zones.
        let mut vars = self.vars.clone();
        let window = match previous {
            Some(p) => ((ctx.now() - p.finished_at).num_minutes().max(0) + WINDOW_OVERLAP_MINUTES)
                .to_string(),
            None => self
                .vars
                .get("initial_window_minutes")
                .cloned()
                .unwrap_or_else(|| "1440".into()),
        };
        vars.insert("window_minutes".into(), window.clone());
        let fetcher = Fetcher {
            ctx,
            client: &self.client,
            redaction: &self.redaction,
            base_url: &self.base_url,
            vars: &vars,
        };
        let sections = futures::future::join_all(
            self.definition
                .requests
                .iter()
                .map(|r| fetcher.section(r, None)),
        )
        .await;
        if ctx.cancel.is_cancelled() {
            return Err(CollectError::Cancelled);
        }
        let mut payload = Map::new();
        payload.insert("definition".into(), json!(self.definition_name));
        payload.insert("base_url".into(), json!(self.base_url));
        if self.uses_window {
            payload.insert("window_minutes".into(), json!(window));
        }
        let mut failures = Vec::new();
        let mut all_failed = true;
        let mut first_error = None;
        for (r, section) in self.definition.requests.iter().zip(sections) {
            if section.complete || section.pages > 0 {
                all_failed = false;
            } else if first_error.is_none() {
                first_error = Some(Failure::new(
                    section.failures.first().cloned().unwrap_or_default(),
                    section.retryable,
                ));
            }
            failures.extend(section.failures);
            payload.insert(r.name.clone(), section.value);
        }
        if all_failed && let Some(e) = first_error {
            return Err(e.into());
        }
        if !failures.is_empty() {
            payload.insert("missing".into(), json!(failures));
        }
        let mut payload = Value::Object(payload);
        let secrets = self.client.auth().secrets().await;
        let scrubbed = Scrubber::new(secrets.values()).scrub(&mut payload);
        if scrubbed > 0 {
            tracing::warn!(collector = %self.name, count = scrubbed, "secret values found in responses were replaced");
        }
        Ok(Snapshot {
            payload,
            cursor: None,
            failures,
        })
    }
}
