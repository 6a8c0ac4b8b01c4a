//! `kind = "http"`: declarative SaaS collectors. The engine here reads a
//! definition (see [`definition`]) and turns it into requests, pages,
//! follow-ups and a payload; the knowledge of each vendor lives in the
//! definition files under `collectors/`, which users can copy and adapt
//! without a new release.
//!
//! Failure policy: a request whose pages cannot all be fetched makes the
//! record `partial` and its payload section says so (`complete: false` and
//! the error); only when nothing at all could be collected does the
//! collection fail. A list is never silently shorter than the source's.

pub mod definition;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use serde_json_path::JsonPath;
use tokio::sync::{Mutex, Semaphore};

use super::{CollectError, Collector, Context, KindSpec, Previous, Snapshot, Target};
use crate::config::{ConfigError, Settings};
use definition::{Auth, Definition, Pagination, Request};

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

/// The credentials of one instance; kept apart so that they are only ever
/// placed in request headers.
#[derive(Clone, Default)]
struct Secrets {
    values: BTreeMap<&'static str, String>,
}

impl Secrets {
    /// Every secret value, for the final "no secret in evidence" sweep.
    fn all(&self) -> impl Iterator<Item = &str> {
        self.values
            .values()
            .map(|s| s.as_str())
            .filter(|s| s.len() >= 4)
    }
}

struct HttpCollector {
    name: String,
    definition: Arc<Definition>,
    definition_name: String,
    /// Whether the definition is the built-in one or the user's, and its
    /// SHA-256, for the record's source identity.
    definition_builtin: bool,
    definition_sha256: String,
    base_url: String,
    vars: BTreeMap<String, String>,
    secrets: Secrets,
    username: Option<String>,
    client_id: Option<String>,
    google: Option<GoogleKey>,
    /// Whether requests use `{window_minutes}` (recorded in the payload).
    uses_window: bool,
    /// Bounds requests in flight, shared by every target and follow-up.
    permits: Arc<Semaphore>,
    /// When the vendor's window is exhausted, no request starts before this.
    paused_until: Arc<Mutex<Option<tokio::time::Instant>>>,
    /// OAuth2 access token of the current collection.
    oauth_token: Arc<Mutex<Option<String>>>,
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
    reqwest::Url::parse(&base_url)
        .map_err(|e| settings.error("base_url", format!("`{base_url}` is not a URL: {e}")))?;

    let mut vars = d.vars.clone();
    for (k, v) in &s.vars {
        if !vars.contains_key(k) {
            return Err(settings.error(
                "vars",
                format!(
                    "definition `{}` has no variable `{k}`; it has: {}",
                    s.definition,
                    d.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        vars.insert(k.clone(), v.clone());
    }
    vars.insert("base_url".into(), base_url.clone());
    // Filled per collection; declared here so that templates may use it.
    vars.insert("window_minutes".into(), String::new());
    vars.insert(
        "host".into(),
        reqwest::Url::parse(&base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default(),
    );
    // Every template must resolve now, not at 3 a.m.
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
        for var in template_vars(t) {
            if !var.starts_with("item.") && !vars.contains_key(var) {
                return Err(loaded.source.error_at(
                    None,
                    format!("template `{t}` uses `{{{var}}}`, which is not a variable of this definition (declare it under [vars])"),
                ));
            }
        }
    }

    let mut secrets = Secrets::default();
    for (name, value) in [
        ("token", &s.token),
        ("api_key", &s.api_key),
        ("app_key", &s.app_key),
        ("password", &s.password),
        ("client_secret", &s.client_secret),
    ] {
        if let Some(v) = value {
            secrets.values.insert(name, v.clone());
        }
    }
    let need = |key: &str| -> Result<(), ConfigError> {
        if secrets.values.contains_key(key) {
            Ok(())
        } else {
            Err(settings.error(
                key,
                format!(
                    "definition `{}` authenticates with `{key}`: set `{key}` (or `{key}_file`, or `{key} = \"${{ENV_VAR}}\"`)",
                    s.definition
                ),
            ))
        }
    };
    match &d.auth {
        Auth::Bearer(_) => need("token")?,
        Auth::Headers(h) => {
            for t in h.headers.values() {
                for var in template_vars(t) {
                    need(var)?;
                }
            }
        }
        Auth::Basic(_) => {
            need("password")?;
            if s.username.is_none() {
                return Err(settings.error("username", "basic authentication needs `username`"));
            }
        }
        Auth::Oauth2ClientCredentials(_) => {
            need("client_secret")?;
            if s.client_id.is_none() {
                return Err(settings.error("client_id", "OAuth2 needs `client_id`"));
            }
        }
        Auth::GoogleServiceAccount(_) => {}
        Auth::None(_) => {}
    }
    let google = match &d.auth {
        Auth::GoogleServiceAccount(_) => {
            let key = s.private_key.as_deref().ok_or_else(|| {
                settings.error(
                    "private_key",
                    "a Google service account needs its JSON key: set `private_key_file`",
                )
            })?;
            let subject = s.subject.clone().ok_or_else(|| {
                settings.error(
                    "subject",
                    "set `subject` to the admin the service account acts as (domain-wide delegation)",
                )
            })?;
            let key =
                GoogleKey::parse(key, subject).map_err(|m| settings.error("private_key", m))?;
            secrets.values.insert("private_key", key.pem.clone());
            Some(key)
        }
        _ => None,
    };
    Ok(Box::new(HttpCollector {
        google,
        uses_window,
        name: settings.name.clone(),
        permits: Arc::new(Semaphore::new(d.rate_limit.concurrency)),
        definition: d,
        definition_name: s.definition,
        definition_builtin: builtin,
        definition_sha256: loaded.sha256.clone(),
        base_url,
        vars,
        secrets,
        username: s.username,
        client_id: s.client_id,
        paused_until: Arc::new(Mutex::new(None)),
        oauth_token: Arc::new(Mutex::new(None)),
    }))
}

/// The `{names}` a template refers to.
fn template_vars(t: &str) -> impl Iterator<Item = &str> {
    t.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// A Google service account's JSON key, checked at load.
struct GoogleKey {
    client_email: String,
    token_uri: String,
    subject: String,
    pem: String,
    encoding: jsonwebtoken::EncodingKey,
}

impl GoogleKey {
    fn parse(json_key: &str, subject: String) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct KeyFile {
            client_email: String,
            private_key: String,
            token_uri: Option<String>,
        }
        let k: KeyFile = serde_json::from_str(json_key).map_err(|e| {
            format!("not a service-account JSON key (client_email, private_key): {e}")
        })?;
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(k.private_key.as_bytes())
            .map_err(|e| format!("the key's private_key is not an RSA PEM key: {e}"))?;
        Ok(GoogleKey {
            client_email: k.client_email,
            token_uri: k
                .token_uri
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            subject,
            pem: k.private_key,
            encoding,
        })
    }
}

/// Fills `{name}` from `vars`, and `{item.a.b}` from the item's fields.
fn render(t: &str, vars: &BTreeMap<String, String>, item: Option<&Value>) -> String {
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

/// An error of one HTTP exchange, already classified.
struct Failure {
    message: String,
    retryable: bool,
    /// The HTTP status, when the server answered with a refusal.
    status: Option<u16>,
}

impl Failure {
    fn into_collect_error(self) -> CollectError {
        if self.retryable {
            CollectError::retryable(self.message)
        } else {
            CollectError::fatal(self.message)
        }
    }
}

/// The outcome of one request with all its pages.
struct Fetched {
    items: Vec<Value>,
    pages: u32,
    /// Set when some pages are missing: what went wrong.
    error: Option<Failure>,
}

impl HttpCollector {
    /// Sends one request, waiting out rate limits and retrying 429/5xx.
    async fn send(
        &self,
        ctx: &Context,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::header::HeaderMap, Value), Failure> {
        let rl = &self.definition.rate_limit;
        let max_wait = Duration::from_secs(rl.max_wait_secs);
        let mut attempt = 0;
        loop {
            let paused = *self.paused_until.lock().await;
            if let Some(until) = paused {
                self.sleep_until(ctx, until).await?;
            }
            let permit = self.permits.acquire().await.map_err(|_| Failure {
                message: "cancelled".into(),
                retryable: false,
                status: None,
            })?;
            let mut req = ctx
                .http
                .request(method.parse().unwrap_or(reqwest::Method::GET), url)
                .headers(self.fixed_headers());
            req = self.authenticate(ctx, req).await?;
            if let Some(b) = body {
                req = req.json(b);
            }
            let sent = tokio::select! {
                r = req.send() => r,
                _ = ctx.cancel.cancelled() => return Err(Failure { message: "cancelled".into(), retryable: false, status: None }),
            };
            let path = redact_url(url);
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    if attempt < rl.retries {
                        attempt += 1;
                        // Waiting is not work: let other requests go.
                        drop(permit);
                        self.backoff(ctx, attempt).await?;
                        continue;
                    }
                    return Err(Failure {
                        message: format!("{method} {path}: {}", without_url(&e)),
                        retryable: true,
                        status: None,
                    });
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            self.note_rate_limit(&headers).await;
            if status.as_u16() == 429 || status.is_server_error() {
                let wait = self.retry_after(&headers);
                if attempt < rl.retries && wait.is_none_or(|w| w <= max_wait) {
                    attempt += 1;
                    drop(permit);
                    match wait {
                        Some(w) => {
                            tracing::info!(collector = %self.name, url = %path, wait_ms = w.as_millis() as u64, "rate limited; waiting");
                            self.sleep_until(ctx, tokio::time::Instant::now() + w)
                                .await?;
                        }
                        None => self.backoff(ctx, attempt).await?,
                    }
                    continue;
                }
                return Err(Failure {
                    message: format!("{method} {path}: HTTP {status} after {} tries", attempt + 1),
                    retryable: true,
                    status: None,
                });
            }
            let bytes = resp.bytes().await.map_err(|e| Failure {
                message: format!("{method} {path}: reading the body: {}", without_url(&e)),
                retryable: true,
                status: None,
            })?;
            if !status.is_success() {
                return Err(Failure {
                    message: format!(
                        "{method} {path}: HTTP {status}{}",
                        if status.as_u16() == 401 || status.as_u16() == 403 {
                            " (check the credentials and their read scopes)"
                        } else {
                            ""
                        }
                    ),
                    retryable: false,
                    status: Some(status.as_u16()),
                });
            }
            let value: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| Failure {
                    message: format!("{method} {path}: the response is not JSON: {e}"),
                    retryable: true,
                    status: None,
                })?
            };
            return Ok((headers, value));
        }
    }

    /// `Accept: application/json` unless the definition says otherwise,
    /// and the definition's own headers (set, not appended).
    fn fixed_headers(&self) -> reqwest::header::HeaderMap {
        use reqwest::header::{HeaderName, HeaderValue};
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in &self.definition.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&render(value, &self.vars, None)),
            ) {
                h.insert(n, v);
            }
        }
        h
    }

    async fn sleep_until(&self, ctx: &Context, until: tokio::time::Instant) -> Result<(), Failure> {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => Ok(()),
            _ = ctx.cancel.cancelled() => Err(Failure { message: "cancelled".into(), retryable: false, status: None }),
        }
    }

    /// Exponential backoff with jitter, so that parallel collectors do not
    /// retry in lockstep.
    async fn backoff(&self, ctx: &Context, attempt: u32) -> Result<(), Failure> {
        let base = 250u64 << attempt.min(6);
        let jitter = rand::random_range(0..=base / 2);
        self.sleep_until(
            ctx,
            tokio::time::Instant::now() + Duration::from_millis(base + jitter),
        )
        .await
    }

    /// The wait a 429/503 asks for: `Retry-After` (seconds), else the
    /// definition's reset header.
    fn retry_after(&self, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        if let Some(s) = header_u64(headers, "retry-after") {
            return Some(Duration::from_secs(s));
        }
        self.reset_delay(headers)
    }

    fn reset_delay(&self, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        let rl = &self.definition.rate_limit;
        let reset = header_u64(headers, rl.reset_header.as_deref()?)?;
        if rl.reset_is_delay {
            return Some(Duration::from_secs(reset));
        }
        let now = chrono::Utc::now().timestamp() as u64;
        // A reset in the past (clock skew, replayed responses) means "now".
        Some(Duration::from_secs(reset.saturating_sub(now)))
    }

    /// Pauses everyone when the window is used up, instead of burning the
    /// next requests on 429s.
    async fn note_rate_limit(&self, headers: &reqwest::header::HeaderMap) {
        let Some(name) = &self.definition.rate_limit.remaining_header else {
            return;
        };
        if header_u64(headers, name) != Some(0) {
            return;
        }
        if let Some(delay) = self.reset_delay(headers) {
            let delay = delay.min(Duration::from_secs(
                self.definition.rate_limit.max_wait_secs,
            ));
            tracing::info!(collector = %self.name, wait_ms = delay.as_millis() as u64, "rate-limit window used up; pausing");
            *self.paused_until.lock().await = Some(tokio::time::Instant::now() + delay);
        }
    }

    async fn authenticate(
        &self,
        ctx: &Context,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let secret = |k: &str| self.secrets.values.get(k).cloned().unwrap_or_default();
        Ok(match &self.definition.auth {
            Auth::Bearer(_) => req.bearer_auth(secret("token")),
            Auth::Headers(h) => {
                let vars: BTreeMap<String, String> = self
                    .secrets
                    .values
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                let mut req = req;
                for (name, t) in &h.headers {
                    req = req.header(name, render(t, &vars, None));
                }
                req
            }
            Auth::Basic(_) => req.basic_auth(
                self.username.clone().unwrap_or_default(),
                Some(secret("password")),
            ),
            Auth::Oauth2ClientCredentials(o) => {
                let mut cached = self.oauth_token.lock().await;
                if cached.is_none() {
                    *cached = Some(self.oauth2_token(ctx, o).await?);
                }
                req.bearer_auth(cached.clone().unwrap_or_default())
            }
            Auth::GoogleServiceAccount(g) => {
                let mut cached = self.oauth_token.lock().await;
                if cached.is_none() {
                    *cached = Some(self.google_token(ctx, &g.scopes).await?);
                }
                req.bearer_auth(cached.clone().unwrap_or_default())
            }
            Auth::None(_) => req,
        })
    }

    /// Google's two-legged OAuth for service accounts (RFC 7523 JWT bearer
    /// grant), with `sub` for domain-wide delegation.
    async fn google_token(&self, ctx: &Context, scopes: &[String]) -> Result<String, Failure> {
        let Some(key) = &self.google else {
            return Err(Failure {
                message: "no service account key".into(),
                retryable: false,
                status: None,
            });
        };
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": key.client_email,
            "sub": key.subject,
            "scope": scopes.join(" "),
            "aud": key.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key.encoding,
        )
        .map_err(|e| Failure {
            message: format!("signing the service-account JWT: {e}"),
            retryable: false,
            status: None,
        })?;
        let body = format!(
            "grant_type={}&assertion={assertion}",
            urlencode("urn:ietf:params:oauth:grant-type:jwt-bearer")
        );
        let (status, v) = token_request(ctx, &key.token_uri, None, body, "Google").await?;
        match v.get("access_token").and_then(Value::as_str) {
            Some(t) if status.is_success() => Ok(t.to_string()),
            _ => Err(Failure {
                message: format!(
                    "Google token request: HTTP {status} ({}); check domain-wide delegation of the scopes to the service account's client id",
                    v.get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("no access_token")
                ),
                retryable: status.is_server_error(),
                status: None,
            }),
        }
    }

    async fn oauth2_token(
        &self,
        ctx: &Context,
        o: &definition::OAuth2Auth,
    ) -> Result<String, Failure> {
        let url = render(&o.token_url, &self.vars, None);
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        if !o.scopes.is_empty() {
            form.push(("scope", o.scopes.join(" ")));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.client_id.clone().unwrap_or_default(),
            self.secrets
                .values
                .get("client_secret")
                .cloned()
                .unwrap_or_default()
        ));
        let (status, v) =
            token_request(ctx, &url, Some(format!("Basic {basic}")), body, "OAuth2").await?;
        match v.get("access_token").and_then(Value::as_str) {
            Some(t) if status.is_success() => Ok(t.to_string()),
            _ => Err(Failure {
                message: format!("OAuth2 token request: HTTP {status}, no access_token"),
                retryable: status.is_server_error(),
                status: None,
            }),
        }
    }

    /// Runs one request through all its pages.
    async fn fetch(
        &self,
        ctx: &Context,
        vars: &BTreeMap<String, String>,
        r: &Request,
        item: Option<&Value>,
    ) -> Fetched {
        let mut url =
            match reqwest::Url::parse(&format!("{}{}", self.base_url, render(&r.path, vars, item)))
            {
                Ok(u) => u,
                Err(e) => {
                    return Fetched {
                        items: vec![],
                        pages: 0,
                        error: Some(Failure {
                            message: format!("request `{}`: bad URL: {e}", r.name),
                            retryable: false,
                            status: None,
                        }),
                    };
                }
            };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &r.query {
                q.append_pair(k, &render(v, vars, item));
            }
        }
        if let Pagination::Page { param, start, .. } = &r.pagination {
            // Name the first page too: some APIs default to another one.
            set_query(&mut url, param, &start.to_string());
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let body = r
            .body
            .as_ref()
            .map(|b| render_json(&toml_to_json(b), vars, item));
        let items_path = r
            .items
            .as_ref()
            .and_then(|p| JsonPath::parse(p.get_ref()).ok());
        let mut out = Fetched {
            items: Vec::new(),
            pages: 0,
            error: None,
        };
        let mut seen = std::collections::HashSet::new();
        let mut offset = 0u64;
        let mut page_no = match &r.pagination {
            Pagination::Page { start, .. } => *start,
            _ => 0,
        };
        loop {
            if out.pages >= r.max_pages {
                out.error = Some(Failure {
                    message: format!(
                        "request `{}`: still more pages after {} pages (max_pages); the rest is missing",
                        r.name, r.max_pages
                    ),
                    retryable: false,
                    status: None,
                });
                return out;
            }
            if !seen.insert(url.to_string()) {
                out.error = Some(Failure {
                    message: format!(
                        "request `{}`: the server sent the same next page twice ({}); stopped",
                        r.name,
                        redact_url(url.as_str())
                    ),
                    retryable: false,
                    status: None,
                });
                return out;
            }
            let (headers, body_value) = match self
                .send(ctx, &r.method, url.as_str(), body.as_ref())
                .await
            {
                Ok(x) => x,
                Err(f) if out.pages == 0 && f.status.is_some_and(|s| r.empty_on.contains(&s)) => {
                    return out;
                }
                Err(mut f) => {
                    if out.pages > 0 {
                        f.message = format!(
                            "request `{}`: page {} failed, later pages are missing: {}",
                            r.name,
                            out.pages + 1,
                            f.message
                        );
                    }
                    out.error = Some(f);
                    return out;
                }
            };
            out.pages += 1;
            let page_items: Vec<Value> = match &items_path {
                Some(p) => p
                    .query(&body_value)
                    .all()
                    .into_iter()
                    .flat_map(|v| match v {
                        // `$.users` selects the array itself; its elements are the items.
                        Value::Array(a)
                            if r.items
                                .as_ref()
                                .is_some_and(|i| !i.get_ref().ends_with("[*]")) =>
                        {
                            a.clone()
                        }
                        other => vec![other.clone()],
                    })
                    .collect(),
                None => vec![body_value.clone()],
            };
            let n = page_items.len() as u64;
            out.items.extend(page_items);
            let next: Option<reqwest::Url> = match &r.pagination {
                Pagination::None {} => None,
                Pagination::LinkHeader {} => next_link(&headers).and_then(|l| url.join(&l).ok()),
                Pagination::Cursor { cursor, param } => {
                    first_string(&body_value, cursor).map(|c| {
                        let mut u = url.clone();
                        set_query(&mut u, param, &c);
                        u
                    })
                }
                Pagination::NextUrl { next } => {
                    first_string(&body_value, next).and_then(|n| url.join(&n).ok())
                }
                Pagination::Offset { param, more } => {
                    offset += n;
                    let more = match more {
                        Some(m) => JsonPath::parse(m)
                            .ok()
                            .and_then(|p| p.query(&body_value).first().and_then(Value::as_bool))
                            .unwrap_or(false),
                        None => n > 0,
                    };
                    more.then(|| {
                        let mut u = url.clone();
                        set_query(&mut u, param, &offset.to_string());
                        u
                    })
                }
                Pagination::Page {
                    param, size_param, ..
                } => {
                    let size = size_param.as_ref().and_then(|sp| {
                        url.query_pairs()
                            .find(|(k, _)| k == sp.as_str())
                            .and_then(|(_, v)| v.parse::<u64>().ok())
                    });
                    (n > 0 && size.is_none_or(|size| n >= size)).then(|| {
                        page_no += 1;
                        let mut u = url.clone();
                        set_query(&mut u, param, &page_no.to_string());
                        u
                    })
                }
            };
            match next {
                // Credentials go to the configured host only: a next link
                // elsewhere (a misrecorded or hostile response) is not
                // followed, and the list is marked incomplete.
                Some(n) if n.origin() != url.origin() => {
                    out.error = Some(Failure {
                        message: format!(
                            "request `{}`: the next page is on another host ({}); not followed, later pages are missing",
                            r.name,
                            n.origin().ascii_serialization()
                        ),
                        retryable: false,
                        status: None,
                    });
                    return out;
                }
                Some(n) => url = n,
                None => return out,
            }
        }
    }

    /// Fetches a request, shapes its items and runs its follow-ups.
    /// Returns the section and the failures met.
    fn section<'a>(
        &'a self,
        ctx: &'a Context,
        vars: &'a BTreeMap<String, String>,
        r: &'a Request,
        parent: Option<&'a Value>,
    ) -> futures::future::BoxFuture<'a, (Value, Vec<String>, bool)> {
        Box::pin(async move {
            let fetched = self.fetch(ctx, vars, r, parent).await;
            let mut failures = Vec::new();
            let mut retryable = false;
            if let Some(f) = &fetched.error {
                failures.push(f.message.clone());
                retryable = f.retryable;
            }
            let redact = &self.redactions();
            let keep = &Keep::new(r);
            let shaped = futures::future::join_all(fetched.items.iter().map(|raw| async move {
                let mut kept = shape(raw, keep, redact);
                let mut fails = Vec::new();
                for e in &r.each {
                    let (sub, f, _) = self.section(ctx, vars, e, Some(raw)).await;
                    let who = raw
                        .get("id")
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_default();
                    fails.extend(f.into_iter().map(|m| format!("{} of {who}: {m}", e.name)));
                    if let Value::Object(o) = &mut kept {
                        o.insert(e.name.clone(), sub);
                    }
                }
                (kept, fails)
            }))
            .await;
            let mut items = Vec::with_capacity(shaped.len());
            for (v, f) in shaped {
                items.push(v);
                failures.extend(f);
            }
            let section = if parent.is_some() && fetched.error.is_none() {
                Value::Array(items)
            } else {
                let mut m = Map::new();
                m.insert("complete".into(), Value::Bool(fetched.error.is_none()));
                m.insert("pages".into(), json!(fetched.pages));
                m.insert("count".into(), json!(items.len()));
                if let Some(f) = &fetched.error {
                    m.insert("error".into(), Value::String(f.message.clone()));
                }
                m.insert("items".into(), Value::Array(items));
                Value::Object(m)
            };
            (section, failures, retryable)
        })
    }

    fn redactions(&self) -> Vec<String> {
        self.definition
            .redact_fields
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect()
    }
}

/// A request's `keep` selection, compiled once per request rather than
/// once per item.
struct Keep(Vec<(String, JsonPath, bool)>);

impl Keep {
    fn new(r: &Request) -> Self {
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

/// Keeps the selected fields of an item, minus redacted ones.
fn shape(raw: &Value, keep: &Keep, redact: &[String]) -> Value {
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
    redact_fields(&mut v, redact);
    v
}

/// Whether a JSONPath selects at most one node (RFC 9535 "singular
/// query": names and indexes only).
fn is_singular(path: &str) -> bool {
    !(path.contains('*') || path.contains("..") || path.contains('?') || path.contains(':'))
}

fn redact_fields(v: &mut Value, redact: &[String]) {
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
                    !redact.contains(&k)
                }
            });
            for x in m.values_mut() {
                redact_fields(x, redact);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_fields(x, redact)),
        _ => {}
    }
}

/// Replaces any secret that made it into a string (an API echoing a token
/// in a URL, say) so that it never reaches the store.
fn scrub(v: &mut Value, secrets: &Secrets) -> usize {
    match v {
        Value::String(s) => {
            let mut n = 0;
            for secret in secrets.all() {
                if s.contains(secret) {
                    *s = s.replace(secret, "[redacted]");
                    n += 1;
                }
            }
            n
        }
        Value::Array(a) => a.iter_mut().map(|x| scrub(x, secrets)).sum(),
        Value::Object(m) => m.values_mut().map(|x| scrub(x, secrets)).sum(),
        _ => 0,
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn render_json(v: &Value, vars: &BTreeMap<String, String>, item: Option<&Value>) -> Value {
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

fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The `rel="next"` target of RFC 8288 `Link` headers (there may be several
/// headers, each with several links).
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for h in headers.get_all(reqwest::header::LINK) {
        let Ok(h) = h.to_str() else { continue };
        for link in h.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return Some(
                    target
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string(),
                );
            }
        }
    }
    None
}

fn first_string(body: &Value, path: &str) -> Option<String> {
    let p = JsonPath::parse(path).ok()?;
    match p.query(body).first()? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn set_query(url: &mut reqwest::Url, name: &str, value: &str) {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(name, value);
}

fn urlencode(s: &str) -> String {
    reqwest::Url::parse_with_params("x:", [("v", s)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_string()))
        .unwrap_or_default()
}

/// A URL for messages: without its query, which may carry keys.
fn redact_url(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// A reqwest error's text with the URL it embeds cut at the query, which
/// may carry keys (`?api_key=`, `?access_token=`).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    // reqwest's own line says only "error sending request"; the cause
    // (refused, TLS handshake, DNS, reset) is what an operator acts on.
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), &redact_url(u.as_str()));
    }
    if e.is_timeout() {
        s.push_str(" (timeout)");
    }
    s
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
        *self.oauth_token.lock().await = None;
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
        let sections = futures::future::join_all(
            self.definition
                .requests
                .iter()
                .map(|r| self.section(ctx, &vars, r, None)),
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
        for (r, (section, f, retryable)) in self.definition.requests.iter().zip(sections) {
            let complete = section.get("complete").and_then(Value::as_bool) == Some(true);
            let pages = section.get("pages").and_then(Value::as_u64).unwrap_or(0);
            if complete || pages > 0 {
                all_failed = false;
            } else if first_error.is_none() {
                first_error = Some(Failure {
                    message: f.first().cloned().unwrap_or_default(),
                    retryable,
                    status: None,
                });
            }
            failures.extend(f);
            payload.insert(r.name.clone(), section);
        }
        if all_failed && let Some(e) = first_error {
            return Err(e.into_collect_error());
        }
        if !failures.is_empty() {
            payload.insert("missing".into(), json!(failures));
        }
        let mut payload = Value::Object(payload);
        // The short-lived access token of this collection is a secret too.
        let mut secrets = self.secrets.clone();
        if let Some(t) = self.oauth_token.lock().await.clone() {
            secrets.values.insert("access_token", t);
        }
        let scrubbed = scrub(&mut payload, &secrets);
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

/// POSTs a form to a token endpoint; returns the status and the JSON body
/// (null when the body is not JSON). Only a failure to reach the endpoint is
/// an error here: callers judge the answer.
async fn token_request(
    ctx: &Context,
    url: &str,
    authorization: Option<String>,
    body: String,
    what: &str,
) -> Result<(reqwest::StatusCode, Value), Failure> {
    let mut req = ctx.http.post(url).header(
        reqwest::header::CONTENT_TYPE,
        "application/x-www-form-urlencoded",
    );
    if let Some(a) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    let resp = req.body(body).send().await.map_err(|e| Failure {
        message: format!("{what} token request: {}", without_url(&e)),
        retryable: true,
        status: None,
    })?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    Ok((status, v))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn link_header_next_is_found_among_several() {
        let mut h = reqwest::header::HeaderMap::new();
        h.append(
            "link",
            "<https://x/api?after=1>; rel=\"self\", <https://x/api?after=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/api?after=2"));
        assert_eq!(next_link(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn secret_fields_are_dropped_at_any_depth() {
        let r: Request = toml::from_str("name='x'\npath='/'").unwrap();
        let v = shape(
            &json!({"a": 1, "pin": "1234", "token": "t", "credentials": {
                "password": {"minLength": 8, "secret": "s"}, "client_secret": "s", "apiKey": "k"}}),
            &Keep::new(&r),
            &["pin".into()],
        );
        // `password` the object stays (a policy's settings are evidence);
        // secret-named strings and the definition's own fields go.
        assert_eq!(
            v,
            json!({"a": 1, "credentials": {"password": {"minLength": 8}}})
        );
    }

    #[test]
    fn misspelt_keys_are_rejected_even_inside_tagged_tables() {
        let base = "description = \"x\"\ncriteria = []\nauth = { type = \"bearer\" }\n[[requests]]\nname = \"a\"\npath = \"/\"\n";
        for extra in [
            "pagination = { type = \"cursor\", cursor = \"$.n\", parm = \"p\" }",
            "pagination = { type = \"link_header\", next = \"x\" }",
            "itmes = \"$[*]\"",
        ] {
            let text = format!("{base}{extra}\n");
            let e = definition::parse(std::path::Path::new("d.toml"), text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {extra}"));
            assert!(e.to_string().contains("unknown field"), "{e}");
        }
        let bad_auth = "description = \"x\"\ncriteria = []\nauth = { type = \"bearer\", token = \"t\" }\n[[requests]]\nname = \"a\"\npath = \"/\"\n";
        assert!(definition::parse(std::path::Path::new("d.toml"), bad_auth.into()).is_err());
    }

    #[test]
    fn pagination_paths_and_methods_are_checked() {
        let base = "description = \"x\"\ncriteria = []\nauth = { type = \"bearer\" }\n[[requests]]\nname = \"a\"\npath = \"/\"\n";
        let e = definition::parse(
            std::path::Path::new("d.toml"),
            format!("{base}pagination = {{ type = \"next_url\", next = \"links.next\" }}\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("JSONPath"), "{e}");
        let e = definition::parse(
            std::path::Path::new("d.toml"),
            format!("{base}method = \"DELETE\"\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("only read"), "{e}");
    }

    #[test]
    fn every_builtin_definition_parses() {
        for (name, text) in definition::BUILTIN {
            definition::parse(std::path::Path::new(name), text.to_string())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn the_published_schema_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/collectors/http-definition.schema.json"
        );
        let want = serde_json::to_string_pretty(&definition::json_schema()).unwrap() + "\n";
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
