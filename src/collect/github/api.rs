//! The HTTP layer every GitHub kind shares: one octocrab client per
//! instance, pagination by `Link` headers, and GitHub's rate limits.
//!
//! This is the only retry loop for a single request: octocrab's own retry
//! layer is compiled out, and the runner's retries restart a whole
//! collection rather than repeat a call. A rate-limit wait short enough
//! (`max_rate_limit_wait`) is taken in place; a longer one ends the call
//! with [`ApiError::RateLimited`], which the runner honours as
//! `retry_after`, or which a per-repository step records as a failure so
//! that the record keeps what was collected and says what was not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, StatusCode, Uri};
use octocrab::Octocrab;
use octocrab::secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::collect::{CollectError, Context};

/// How an instance authenticates.
pub(crate) enum Auth {
    /// A personal access token (classic or fine-grained).
    Token(SecretString),
    /// A GitHub App installation: octocrab signs a JWT with the key and
    /// exchanges it for short-lived installation tokens.
    App {
        app_id: u64,
        installation_id: u64,
        key: octocrab::EncodingKey,
    },
}

/// The media type GitHub documents for its REST API (v3 JSON).
const MEDIA_TYPE: &str = "application/vnd.github.v3+json";
/// Items per page: GitHub's maximum, so that an org of 1,000 repositories
/// is listed in 10 requests.
const PER_PAGE: u32 = 100;
/// Tries of one request on a 5xx or a transport error.
const SERVER_TRIES: u32 = 3;
/// Waits taken in place for one request's rate limits.
const RATE_LIMIT_TRIES: u32 = 3;
/// GitHub's advice when a secondary limit names no time: wait a minute.
const SECONDARY_DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// Longest `retry_after` handed to the runner; a later reset fails the
/// attempt instead of holding `exhibit collect` (or a daemon slot) for up
/// to an hour.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Pages followed for one listing before giving up on a looping server.
const MAX_PAGES: usize = 10_000;

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ApiError {
    /// 404: the resource does not exist (or is invisible to the token).
    #[error("GET {path}: not found (404)")]
    NotFound { path: String },
    /// 401: the credentials were rejected.
    #[error("GitHub rejected the credentials (401): {message}")]
    Unauthorized { message: String },
    /// 403 that is not a rate limit: the token lacks a permission.
    #[error("GET {path}: forbidden (403): {message}")]
    Forbidden { path: String, message: String },
    /// A rate limit whose wait is longer than the instance takes in place.
    #[error("GET {path}: rate limited by GitHub; retry in {}s", retry_after.as_secs())]
    RateLimited { path: String, retry_after: Duration },
    /// 5xx after retries.
    #[error("GET {path}: GitHub answered {status} after {SERVER_TRIES} tries: {message}")]
    Server {
        path: String,
        status: u16,
        message: String,
    },
    /// Any other unexpected status.
    #[error("GET {path}: unexpected status {status}: {message}")]
    Status {
        path: String,
        status: u16,
        message: String,
    },
    /// No HTTP answer at all, after retries.
    #[error("GET {path}: {message}")]
    Transport { path: String, message: String },
    /// An answer that is not the documented JSON.
    #[error("GET {path}: unreadable response: {message}")]
    Decode { path: String, message: String },
    /// The agent is shutting down or the attempt timed out.
    #[error("cancelled")]
    Cancelled,
}

impl ApiError {
    /// Whether no further call of this collection can succeed either.
    pub(crate) fn ends_collection(&self) -> bool {
        matches!(self, ApiError::Unauthorized { .. } | ApiError::Cancelled)
    }
}

impl From<ApiError> for CollectError {
    fn from(e: ApiError) -> Self {
        match e {
            // A reset further away than a retry should wait (an hour for a
            // spent primary budget) ends the attempt now, saying when the
            // budget returns; the next scheduled run collects again.
            ApiError::RateLimited { retry_after, .. } if retry_after > LONGEST_RETRY_AFTER => {
                CollectError::fatal(format!(
                    "{e} (GitHub's rate limit resets at {}; not retried before the next run)",
                    (Utc::now() + chrono::Duration::from_std(retry_after).unwrap_or_default())
                        .format("%Y-%m-%dT%H:%M:%SZ")
                ))
            }
            ApiError::RateLimited { retry_after, .. } => CollectError::Retryable {
                message: e.to_string(),
                retry_after: Some(retry_after),
            },
            ApiError::Server { .. } | ApiError::Transport { .. } | ApiError::Decode { .. } => {
                CollectError::retryable(e.to_string())
            }
            ApiError::Cancelled => CollectError::Cancelled,
            _ => CollectError::fatal(e.to_string()),
        }
    }
}

/// What the last responses said about the primary rate limit. GitHub
/// counts it per credential, so every instance using the same credentials
/// against the same server shares one (see [`shared_budget`]), and none of
/// their calls spends budget that is known to be gone.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Budget {
    remaining: Option<u64>,
    reset: Option<DateTime<Utc>>,
}

/// A GitHub REST client for one collector instance.
pub(crate) struct Api {
    base: Uri,
    auth: Auth,
    client: tokio::sync::OnceCell<Octocrab>,
    concurrency: usize,
    max_wait: Duration,
    budget: Arc<Mutex<Budget>>,
    requests: AtomicU64,
}

/// The budget of one credential on one server, shared across instances.
pub(crate) fn shared_budget(base: &Uri, auth: &Auth) -> Arc<Mutex<Budget>> {
    type Budgets = Mutex<HashMap<String, Arc<Mutex<Budget>>>>;
    static BUDGETS: OnceLock<Budgets> = OnceLock::new();
    // The token itself is not kept as a key, only a digest of it.
    let who = match auth {
        Auth::Token(t) => format!(
            "token:{}",
            hex::encode(&Sha256::digest(t.expose_secret().as_bytes())[..16])
        ),
        Auth::App {
            app_id,
            installation_id,
            ..
        } => format!("app:{app_id}:{installation_id}"),
    };
    BUDGETS
        .get_or_init(Default::default)
        .lock()
        .expect("budgets lock")
        .entry(format!("{base}|{who}"))
        .or_default()
        .clone()
}

impl Api {
    /// A client for `base` (e.g. `https://api.github.com`); nothing is
    /// connected until the first call.
    pub(crate) fn new(base: Uri, auth: Auth, concurrency: usize, max_wait: Duration) -> Self {
        Api {
            budget: shared_budget(&base, &auth),
            base,
            auth,
            client: tokio::sync::OnceCell::new(),
            concurrency,
            max_wait,
            requests: AtomicU64::new(0),
        }
    }

    /// The API base URL, as recorded in the source identity.
    pub(crate) fn base_url(&self) -> String {
        self.base.to_string().trim_end_matches('/').to_string()
    }

    /// Bound on concurrent per-repository calls.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Requests sent so far (for logs and the benchmark).
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The octocrab client, built on first use: octocrab's service stack
    /// spawns a worker on the current tokio runtime, which does not exist
    /// yet when the config is loaded.
    async fn client(&self) -> Result<&Octocrab, ApiError> {
        self.client
            .get_or_try_init(|| async {
                let mut b = Octocrab::builder()
                    .base_uri(self.base.clone())
                    .map_err(|e| transport("client", e))?
                    .add_header(ACCEPT, MEDIA_TYPE.to_string())
                    .set_connect_timeout(Some(Duration::from_secs(15)))
                    .set_read_timeout(Some(Duration::from_secs(60)));
                match &self.auth {
                    // GitHub accepts `token` and `Bearer` alike for tokens;
                    // `token` is what its own recorded fixtures use. octocrab
                    // leaves the header alone when given no auth of its own.
                    Auth::Token(t) => {
                        b = b.add_header(AUTHORIZATION, format!("token {}", t.expose_secret()));
                    }
                    Auth::App { app_id, key, .. } => {
                        b = b.app(octocrab::models::AppId(*app_id), key.clone());
                    }
                }
                let client = b.build().map_err(|e| transport("client", e))?;
                match &self.auth {
                    Auth::Token(_) => Ok(client),
                    Auth::App {
                        installation_id, ..
                    } => client
                        .installation(octocrab::models::InstallationId(*installation_id))
                        .map_err(|e| transport("app installation", e)),
                }
            })
            .await
    }

    /// GETs `path` and decodes its JSON.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        ctx: &Context,
        path: &str,
    ) -> Result<T, ApiError> {
        let (body, _) = self.get_raw(ctx, path).await?;
        decode(path, &body)
    }

    /// GETs `path`; a 404 is `None`.
    pub(crate) async fn get_opt<T: DeserializeOwned>(
        &self,
        ctx: &Context,
        path: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.get(ctx, path).await {
            Ok(v) => Ok(Some(v)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GETs every page of a listing (100 per page), following `Link:
    /// rel="next"` until there is none.
    pub(crate) async fn paginate<T: DeserializeOwned>(
        &self,
        ctx: &Context,
        path: &str,
    ) -> Result<Vec<T>, ApiError> {
        self.paginate_while(ctx, path, |_: &[T]| true).await
    }

    /// Like [`Api::paginate`], but stops after a page for which `more`
    /// says there is nothing further of interest (e.g. a listing sorted by
    /// time that has gone past the window).
    pub(crate) async fn paginate_while<T: DeserializeOwned>(
        &self,
        ctx: &Context,
        path: &str,
        more: impl Fn(&[T]) -> bool,
    ) -> Result<Vec<T>, ApiError> {
        let mut next = Some(with_per_page(path));
        let mut all = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(p) = next.take() {
            if !seen.insert(p.clone()) || seen.len() > MAX_PAGES {
                return Err(ApiError::Decode {
                    path: p,
                    message: "pagination does not end (a page links back to a page already read)"
                        .into(),
                });
            }
            let (body, link) = self.get_raw(ctx, &p).await?;
            let page: Vec<T> = decode(&p, &body)?;
            let go_on = more(&page);
            all.extend(page);
            if go_on {
                next = link.map(|l| self.relative(&p, &l)).transpose()?;
            }
        }
        Ok(all)
    }

    /// Turns a `Link` URL into a request path on the configured host;
    /// a link to any other host is refused, as following it would send the
    /// token there.
    fn relative(&self, from: &str, link: &str) -> Result<String, ApiError> {
        let uri: Uri = link.parse().map_err(|_| ApiError::Decode {
            path: from.to_string(),
            message: format!("invalid Link URL `{link}`"),
        })?;
        if uri.authority().is_some() && uri.authority() != self.base.authority() {
            return Err(ApiError::Decode {
                path: from.to_string(),
                message: format!("the next page is on another host (`{link}`); not followed"),
            });
        }
        Ok(uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()))
    }

    /// Waits while the primary budget is known to be spent, if the reset is
    /// near enough; otherwise fails the call at once.
    async fn wait_for_budget(&self, ctx: &Context, path: &str) -> Result<(), ApiError> {
        let b = *self.budget.lock().expect("budget lock");
        if let (Some(0), Some(reset)) = (b.remaining, b.reset) {
            let wait = (reset - Utc::now()).to_std().unwrap_or_default();
            if wait.is_zero() {
                return Ok(());
            }
            if wait > self.max_wait {
                return Err(ApiError::RateLimited {
                    path: path.to_string(),
                    retry_after: wait,
                });
            }
            tracing::warn!(
                wait_s = wait.as_secs(),
                "GitHub rate limit spent; waiting for its reset"
            );
            sleep(ctx, wait).await?;
            self.budget.lock().expect("budget lock").remaining = None;
        }
        Ok(())
    }

    fn note_budget(&self, headers: &HeaderMap) {
        let remaining = header_u64(headers, "x-ratelimit-remaining");
        let reset = header_u64(headers, "x-ratelimit-reset").and_then(epoch);
        if remaining.is_some() {
            *self.budget.lock().expect("budget lock") = Budget { remaining, reset };
        }
    }

    /// One GET with the rate-limit and server-error handling described in
    /// the module docs. Returns the body and the `rel="next"` link.
    pub(crate) async fn get_raw(
        &self,
        ctx: &Context,
        path: &str,
    ) -> Result<(String, Option<String>), ApiError> {
        let client = self.client().await?;
        let uri: Uri = path.parse().map_err(|_| ApiError::Decode {
            path: path.to_string(),
            message: "not a valid request path".into(),
        })?;
        let mut server_tries = 0;
        let mut rate_tries = 0;
        loop {
            self.wait_for_budget(ctx, path).await?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let sent = tokio::select! {
                r = client._get(uri.clone()) => r,
                _ = ctx.cancel.cancelled() => return Err(ApiError::Cancelled),
            };
            let response = match sent {
                Ok(r) => r,
                // An answer from GitHub inside octocrab itself: the App's
                // token exchange was refused.
                Err(octocrab::Error::GitHub { source, .. })
                    if source.status_code == StatusCode::UNAUTHORIZED
                        || source.status_code == StatusCode::FORBIDDEN
                        || source.status_code == StatusCode::NOT_FOUND =>
                {
                    return Err(ApiError::Unauthorized {
                        message: format!(
                            "the GitHub App installation token was refused ({}): {}",
                            source.status_code, source.message
                        ),
                    });
                }
                Err(e) => {
                    server_tries += 1;
                    if server_tries < SERVER_TRIES {
                        tracing::debug!(path, error = %e, "GitHub request failed; retrying");
                        sleep(ctx, Duration::from_millis(500 << server_tries)).await?;
                        continue;
                    }
                    return Err(transport(path, e));
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            self.note_budget(&headers);
            let body = tokio::select! {
                r = client.body_to_string(response) => r.map_err(|e| transport(path, e)),
                _ = ctx.cancel.cancelled() => return Err(ApiError::Cancelled),
            };
            if status.is_success() {
                return Ok((body?, next_link(&headers)));
            }
            let body = body.unwrap_or_default();
            let message = error_message(&body);
            if let Some(wait) = rate_limit_wait(status, &headers, &message) {
                rate_tries += 1;
                if wait <= self.max_wait && rate_tries <= RATE_LIMIT_TRIES {
                    tracing::warn!(
                        path,
                        status = status.as_u16(),
                        wait_s = wait.as_secs_f64(),
                        "GitHub rate limit; waiting"
                    );
                    sleep(ctx, wait).await?;
                    continue;
                }
                return Err(ApiError::RateLimited {
                    path: path.to_string(),
                    retry_after: wait,
                });
            }
            let path = path.to_string();
            return Err(match status {
                StatusCode::NOT_FOUND => ApiError::NotFound { path },
                StatusCode::UNAUTHORIZED => ApiError::Unauthorized { message },
                StatusCode::FORBIDDEN => ApiError::Forbidden { path, message },
                s if s.is_server_error() => {
                    server_tries += 1;
                    if server_tries < SERVER_TRIES {
                        tracing::debug!(path, status = s.as_u16(), "GitHub server error; retrying");
                        sleep(ctx, Duration::from_millis(500 << server_tries)).await?;
                        continue;
                    }
                    ApiError::Server {
                        path,
                        status: s.as_u16(),
                        message,
                    }
                }
                s => ApiError::Status {
                    path,
                    status: s.as_u16(),
                    message,
                },
            });
        }
    }
}

fn transport(path: &str, e: impl std::error::Error) -> ApiError {
    // octocrab's errors say little at the top ("GitHub", "Service"); the
    // cause is further down the chain.
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    ApiError::Transport {
        path: path.to_string(),
        message: message.replace('\n', " "),
    }
}

async fn sleep(ctx: &Context, d: Duration) -> Result<(), ApiError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = ctx.cancel.cancelled() => Err(ApiError::Cancelled),
    }
}

/// Decodes a JSON body; the error names the path and serde's reason, never
/// the body (which could be anything a proxy sent).
pub(crate) fn decode<T: DeserializeOwned>(path: &str, body: &str) -> Result<T, ApiError> {
    serde_json::from_str(body).map_err(|e| ApiError::Decode {
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// Adds `per_page=100` unless the path sets it.
fn with_per_page(path: &str) -> String {
    if path.contains("per_page=") {
        path.to_string()
    } else if path.contains('?') {
        format!("{path}&per_page={PER_PAGE}")
    } else {
        format!("{path}?per_page={PER_PAGE}")
    }
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `X-RateLimit-Reset` is in epoch seconds; values that can only be
/// milliseconds (as in some recorded fixtures) are read as such.
fn epoch(v: u64) -> Option<DateTime<Utc>> {
    let secs = if v > 100_000_000_000 { v / 1000 } else { v };
    Utc.timestamp_opt(i64::try_from(secs).ok()?, 0).single()
}

/// How long GitHub asks us to wait, if this response is a rate limit:
/// 429, or 403 with `Retry-After`, a spent primary budget, or a message
/// saying so (secondary limits). `Retry-After` wins; then the primary
/// reset; then GitHub's documented one minute.
pub(crate) fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
) -> Option<Duration> {
    let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
    let spent = header_u64(headers, "x-ratelimit-remaining") == Some(0);
    let says_so = message.to_ascii_lowercase().contains("rate limit");
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (retry_after.is_some() || spent || says_so));
    if !limited {
        return None;
    }
    if let Some(d) = retry_after {
        return Some(d);
    }
    if spent && let Some(reset) = header_u64(headers, "x-ratelimit-reset").and_then(epoch) {
        return Some((reset - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1));
    }
    Some(SECONDARY_DEFAULT_WAIT)
}

/// GitHub's `{"message": …}`, shortened; anything else, shortened.
fn error_message(body: &str) -> String {
    let m = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    let mut m: String = m.chars().filter(|c| !c.is_control()).take(300).collect();
    if m.is_empty() {
        m = "(no message)".into();
    }
    m
}

/// Percent-encodes a path segment (branch names may hold `/`, `#`, …).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl crate::collect::PartError for ApiError {
    fn ends_collection(&self) -> bool {
        ApiError::ends_collection(self)
    }
}
