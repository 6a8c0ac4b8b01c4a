//! The GitHub collectors: organisation access (CC6.1–CC6.3) and the change
//! population with its reviews (CC8.1), read through the REST API.
//!
//! Every kind shares this module's settings, authentication and HTTP layer
//! ([`api`]): a personal access token or a GitHub App installation, against
//! github.com or a GitHub Enterprise Server. Each kind lives in its own file
//! and records one stream per organisation, `<instance>/<org>`.
//!
//! Requests go through octocrab (auth, App token exchange, base URL, TLS)
//! but are issued with its raw `_get` and decoded into this module's own
//! serde types: payloads keep only what an auditor needs, and a field GitHub
//! adds or drops tomorrow cannot fail a collection.

mod actions;
pub(crate) mod api;
mod branch_protection;
mod deploy_keys;
mod invitations;
mod members;
mod org;
mod outside_collaborators;
mod pull_requests;
mod repositories;
mod teams;
pub(crate) mod types;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::{CollectError, Collector, Context, KindSpec, Previous, Snapshot, Target};
use crate::config::{ConfigError, Settings};
use api::{Api, Auth};

/// Every GitHub kind, for [`super::kinds`]: a new kind is its file and one
/// line here.
pub const KINDS: &[KindSpec] = &[
    org::SPEC,
    members::SPEC,
    outside_collaborators::SPEC,
    invitations::SPEC,
    teams::SPEC,
    repositories::SPEC,
    branch_protection::SPEC,
    pull_requests::SPEC,
    deploy_keys::SPEC,
    webhooks::SPEC,
    actions::SPEC,
];

/// Settings that hold secrets (`token_file`, `private_key_file` work too).
const SECRETS: &[&str] = &["token", "private_key"];

/// The public API, used when neither the config nor `GITHUB_API_URL` names
/// another (GitHub Enterprise Server: `https://HOST/api/v3`).
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The settings every GitHub kind accepts. One struct for all kinds keeps
/// the config uniform; keys that only one kind understands are rejected
/// (with their location) when given to another.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitHubSettings {
    /// The organisation login.
    org: String,
    /// REST API base URL; `GITHUB_API_URL`, else api.github.com.
    api_url: Option<String>,
    /// A personal access token; `GITHUB_TOKEN` when no auth is configured.
    token: Option<String>,
    /// GitHub App id (with `private_key` and `installation_id`).
    app_id: Option<u64>,
    /// The App's private key, PEM.
    private_key: Option<String>,
    /// The App installation on the organisation.
    installation_id: Option<u64>,
    /// Requests in flight at once for per-repository calls.
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    /// Longest rate-limit wait taken in place; longer waits end the attempt
    /// (the runner retries it later, or the record says what is missing).
    #[serde(default = "default_max_wait", with = "crate::config::duration")]
    max_rate_limit_wait: Duration,
    /// Only these repositories (names, without the org); default all.
    repositories: Option<Vec<String>>,
    /// Whether archived repositories are included by per-repository kinds.
    #[serde(default)]
    include_archived: bool,
    /// `github-pull-requests`: how far back the first record looks.
    initial_window: Option<String>,
    /// `github-pull-requests`: record the check runs of each merged head.
    checks: Option<bool>,
    /// `github-repositories`: look for a CODEOWNERS file in each repository.
    codeowners: Option<bool>,
}

fn default_concurrency() -> usize {
    4
}
fn default_max_wait() -> Duration {
    Duration::from_secs(60)
}

/// What a kind's implementation gets from the shared settings.
pub(crate) struct Common {
    /// The organisation login.
    pub org: String,
    /// Repository filter, from `repositories`.
    pub repositories: Option<Vec<String>>,
    /// From `include_archived`.
    pub include_archived: bool,
}

/// Kind-specific settings, parsed by the shared builder.
#[derive(Default)]
pub(crate) struct Extra {
    pub initial_window: Option<Duration>,
    pub checks: Option<bool>,
    pub codeowners: Option<bool>,
}

/// One GitHub evidence kind: what it fetches and how it shapes the payload.
#[async_trait]
pub(crate) trait Kind: Send + Sync + 'static {
    /// Collects the organisation's evidence of this kind.
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError>;
}

/// A configured instance of a GitHub kind.
struct GitHubCollector {
    api: Arc<Api>,
    common: Common,
    kind: Box<dyn Kind>,
}

/// Builds an instance of a kind; `extras` are the kind-specific keys it
/// accepts, `make` turns them into the kind.
pub(crate) fn build_kind(
    settings: &Settings,
    extras: &[&str],
    make: impl FnOnce(Extra) -> Box<dyn Kind>,
) -> Result<Box<dyn Collector>, ConfigError> {
    let s: GitHubSettings = settings.parse()?;
    for (key, given) in [
        ("initial_window", s.initial_window.is_some()),
        ("checks", s.checks.is_some()),
        ("codeowners", s.codeowners.is_some()),
    ] {
        if given && !extras.contains(&key) {
            return Err(settings.error(key, format!("`{key}` does not apply to this kind")));
        }
    }
    if s.org.is_empty() || s.org.contains('/') {
        return Err(settings.error("org", "`org` must be an organisation login"));
    }
    crate::evidence::validate_stream_id(&s.org).map_err(|m| settings.error("org", m))?;
    if s.concurrency == 0 || s.concurrency > 32 {
        return Err(settings.error("concurrency", "`concurrency` must be 1 to 32"));
    }
    let initial_window = match &s.initial_window {
        Some(w) => Some(humantime::parse_duration(w).map_err(|e| {
            settings.error("initial_window", format!("invalid duration `{w}`: {e}"))
        })?),
        None => None,
    };
    let api_url = match s.api_url {
        Some(u) => u,
        None => std::env::var("GITHUB_API_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string()),
    };
    let base: http::Uri = api_url
        .trim_end_matches('/')
        .parse()
        .ok()
        .filter(|u: &http::Uri| u.scheme().is_some() && u.authority().is_some())
        .ok_or_else(|| {
            settings.error(
                "api_url",
                format!("`{api_url}` is not an absolute http(s) URL"),
            )
        })?;
    let auth = auth(
        settings,
        s.token,
        s.app_id,
        s.private_key,
        s.installation_id,
    )?;
    let api = Api::new(base, auth, s.concurrency, s.max_rate_limit_wait);
    let kind = make(Extra {
        initial_window,
        checks: s.checks,
        codeowners: s.codeowners,
    });
    Ok(Box::new(GitHubCollector {
        api: Arc::new(api),
        common: Common {
            org: s.org,
            repositories: s.repositories,
            include_archived: s.include_archived,
        },
        kind,
    }))
}

/// Chooses the credentials: an App when any App key is set (then all three
/// must be), else the configured token, else `GITHUB_TOKEN`.
fn auth(
    settings: &Settings,
    token: Option<String>,
    app_id: Option<u64>,
    private_key: Option<String>,
    installation_id: Option<u64>,
) -> Result<Auth, ConfigError> {
    if app_id.is_some() || private_key.is_some() || installation_id.is_some() {
        if token.is_some() {
            return Err(settings.error(
                "token",
                "give either `token` or the App's `app_id`, `private_key` and `installation_id`, not both",
            ));
        }
        let app_id = app_id.ok_or_else(|| settings.error("app_id", "`app_id` is missing"))?;
        let installation_id = installation_id
            .ok_or_else(|| settings.error("installation_id", "`installation_id` is missing"))?;
        let pem = private_key.ok_or_else(|| {
            settings.error(
                "private_key",
                "`private_key` (or `private_key_file`) is missing",
            )
        })?;
        let key = octocrab::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            settings.error(
                "private_key",
                format!("not an RSA private key in PEM form: {e}"),
            )
        })?;
        return Ok(Auth::App {
            app_id,
            installation_id,
            key,
        });
    }
    let token = match token {
        Some(t) => t,
        None => std::env::var("GITHUB_TOKEN").unwrap_or_default(),
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(settings.error(
            "token",
            "no GitHub credentials: set `token` (or `token_file`), GITHUB_TOKEN, or the App's `app_id`, `private_key` and `installation_id`",
        ));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(settings.error("token", "the token holds whitespace or control characters"));
    }
    Ok(Auth::Token(token.into()))
}

#[async_trait]
impl Collector for GitHubCollector {
    async fn targets(&self, _ctx: &Context) -> Result<Vec<Target>, CollectError> {
        Ok(vec![Target {
            key: self.common.org.clone(),
            source: json!({
                "org": self.common.org,
                "api_url": self.api.base_url(),
            }),
        }])
    }

    async fn collect(
        &self,
        ctx: &Context,
        _target: &Target,
        previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let before = self.api.requests();
        let result = self
            .kind
            .collect(&self.api, &self.common, ctx, previous)
            .await;
        tracing::info!(
            org = %self.common.org,
            requests = self.api.requests() - before,
            "github collection finished"
        );
        result
    }
}

/// Registration of a GitHub kind, for [`KINDS`]; each kind adds the
/// identities of its payload's entities.
pub(crate) const fn spec(
    name: &'static str,
    criteria: &'static [&'static str],
    build: fn(&Settings) -> Result<Box<dyn Collector>, ConfigError>,
) -> KindSpec {
    KindSpec {
        name,
        criteria,
        secrets: SECRETS,
        build,
        windowed: &[],
        identities: &[],
    }
}

/// The repositories a per-repository kind covers: the org's repositories,
/// without archived ones unless asked, narrowed to `repositories` if given.
/// Names in the filter that do not exist are reported as failures.
pub(crate) async fn covered_repos(
    api: &Api,
    common: &Common,
    ctx: &Context,
    failures: &mut Vec<String>,
) -> Result<Vec<types::Repo>, CollectError> {
    let all: Vec<types::Repo> = api
        .paginate(ctx, &format!("/orgs/{}/repos?type=all", common.org))
        .await?;
    let mut repos: Vec<types::Repo> = all
        .into_iter()
        .filter(|r| common.include_archived || !r.archived)
        .filter(|r| {
            common
                .repositories
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(&r.name)))
        })
        .collect();
    if let Some(names) = &common.repositories {
        for n in names {
            if !repos.iter().any(|r| r.name.eq_ignore_ascii_case(n)) {
                failures.push(format!(
                    "repository `{n}` is not in {} (or is archived)",
                    common.org
                ));
            }
        }
    }
    repos.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(repos)
}

/// Runs `f` over `items` with the instance's bounded concurrency, keeping
/// the input order so that payloads are deterministic.
pub(crate) async fn for_each<'a, T, R, F, Fut>(api: &Api, items: &'a [T], f: F) -> Vec<R>
where
    F: Fn(&'a T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    use futures::StreamExt;
    // The futures are made up front so that no closure type is held across
    // an await (which defeats the `Send` proof of async-trait futures).
    let futures: Vec<Fut> = items.iter().map(f).collect();
    futures::stream::iter(futures)
        .buffered(api.concurrency())
        .collect()
        .await
}

/// The outcome of a per-repository call, folded into the payload and the
/// failure list: a repository that cannot be read is named, not dropped.
/// Fatal credential errors end the whole collection.
pub(crate) fn per_repo<T>(
    repo: &str,
    what: &str,
    r: Result<T, api::ApiError>,
    failures: &mut Vec<String>,
) -> Result<Option<T>, CollectError> {
    super::part(|| format!("{repo}: {what}"), r, failures)
}

#[cfg(test)]
mod tests;
