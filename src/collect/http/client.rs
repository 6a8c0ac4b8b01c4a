//! Sending one request of an instance: its fixed headers and credential,
//! the instance's bound on requests in flight, the vendor's rate-limit
//! window (a pause for everyone when it is used up), retries of 429 and
//! 5xx answers after `Retry-After` or a backoff, and the classification of
//! what came back. Redirects are followed by the shared HTTP client within
//! their origin only ([`redirect_policy`]), and bodies are read up to the
//! definition's `max_body`, never whole on trust.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::auth::Authenticator;
use super::definition::{Definition, RateLimit};
use super::error::{Failure, redact_url, without_url};
use super::template::{Vars, render};
use crate::collect::Context;

/// Sends the requests of one instance, shared by every target and
/// follow-up of its collections.
pub(super) struct Client {
    /// The instance, for logs.
    name: String,
    /// `Accept` and the definition's `headers`, rendered once.
    headers: HeaderMap,
    auth: Authenticator,
    throttle: Throttle,
    /// The largest response body read, in bytes.
    max_body: u64,
}

/// Redirects followed before a request fails.
const MAX_REDIRECTS: usize = 10;

/// The redirect policy of the shared HTTP client: a redirect is followed
/// only within the origin (scheme, host and port) the request was sent to,
/// and stopped at any other, so that no credential header of any kind (a
/// vendor's `DD-API-KEY` or `X-Api-Key`, not only `Authorization`, which
/// is all the default policy strips) reaches a server it was not meant
/// for. The stopped redirect comes back as its 3xx answer, which fails the
/// request naming where it pointed.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let cross_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() != attempt.url().origin());
        if cross_origin {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

impl Client {
    /// A client of the definition's headers (templates over `vars`) and
    /// rate limits.
    pub(super) fn new(name: String, d: &Definition, vars: &Vars, auth: Authenticator) -> Self {
        Client {
            name,
            headers: fixed_headers(d, vars),
            auth,
            throttle: Throttle::new(d.rate_limit.clone()),
            max_body: d.max_body,
        }
    }

    /// How requests authenticate.
    pub(super) fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// Sends one request, waiting out rate limits and retrying 429/5xx.
    /// Returns the response's headers and its JSON body (null when empty).
    pub(super) async fn send(
        &self,
        ctx: &Context,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(HeaderMap, Value), Failure> {
        let rl = &self.throttle.limits;
        let max_wait = Duration::from_secs(rl.max_wait_secs);
        let path = redact_url(url);
        let mut attempt = 0;
        loop {
            let paused = *self.throttle.paused_until.lock().await;
            if let Some(until) = paused {
                sleep_until(ctx, until).await?;
            }
            let permit = self
                .throttle
                .permits
                .acquire()
                .await
                .map_err(|_| Failure::cancelled())?;
            let mut req = ctx
                .http
                .request(method.parse().unwrap_or(reqwest::Method::GET), url)
                .headers(self.headers.clone());
            req = self.auth.credential(ctx).await?.apply(req);
            if let Some(b) = body {
                req = req.json(b);
            }
            let sent = tokio::select! {
                r = req.send() => r,
                _ = ctx.cancel.cancelled() => return Err(Failure::cancelled()),
            };
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    if attempt < rl.retries {
                        attempt += 1;
                        // Waiting is not work: let other requests go.
                        drop(permit);
                        backoff(ctx, attempt).await?;
                        continue;
                    }
                    return Err(Failure::retryable(format!(
                        "{method} {path}: {}",
                        without_url(&e)
                    )));
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            if let Some(pause) = self.throttle.note(&headers).await {
                tracing::info!(collector = %self.name, wait_ms = pause.as_millis() as u64, "rate-limit window used up; pausing");
            }
            if status.as_u16() == 429 || status.is_server_error() {
                let wait = self.throttle.retry_after(&headers);
                if attempt < rl.retries && wait.is_none_or(|w| w <= max_wait) {
                    attempt += 1;
                    drop(permit);
                    match wait {
                        Some(w) => {
                            tracing::info!(collector = %self.name, url = %path, wait_ms = w.as_millis() as u64, "rate limited; waiting");
                            sleep_until(ctx, Instant::now() + w).await?;
                        }
                        None => backoff(ctx, attempt).await?,
                    }
                    continue;
                }
                return Err(Failure::retryable(format!(
                    "{method} {path}: HTTP {status} after {} tries",
                    attempt + 1
                )));
            }
            if status.is_redirection() {
                let to = headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(redact_url)
                    .unwrap_or_else(|| "nowhere".into());
                return Err(Failure::fatal(format!(
                    "{method} {path}: HTTP {status}: redirected to another origin ({to}); not followed, so that the credentials stay with the server they are for"
                )));
            }
            let bytes = read_body(resp, self.max_body)
                .await
                .map_err(|e| e.failure(method, &path, self.max_body))?;
            if !status.is_success() {
                return Err(Failure::refused(
                    format!(
                        "{method} {path}: HTTP {status}{}",
                        if status.as_u16() == 401 || status.as_u16() == 403 {
                            " (check the credentials and their read scopes)"
                        } else {
                            ""
                        }
                    ),
                    status.as_u16(),
                ));
            }
            let value: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    Failure::retryable(format!("{method} {path}: the response is not JSON: {e}"))
                })?
            };
            return Ok((headers, value));
        }
    }
}

/// Why a body could not be read.
pub(super) enum BodyError {
    /// It is (or says it is) larger than the cap.
    TooLarge,
    /// The connection failed while reading it.
    Transport(reqwest::Error),
}

impl BodyError {
    /// The failure of the request, naming the cap when it was hit. A body
    /// over the cap would be over it again: not worth retrying.
    pub(super) fn failure(self, method: &str, path: &str, max: u64) -> Failure {
        match self {
            BodyError::TooLarge => Failure::fatal(format!(
                "{method} {path}: the response body is larger than max_body ({max} bytes); not read further"
            )),
            BodyError::Transport(e) => Failure::retryable(format!(
                "{method} {path}: reading the body: {}",
                without_url(&e)
            )),
        }
    }
}

/// A response's body, read chunk by chunk up to `max` bytes (after any
/// decoding): a `Content-Length` over the cap is refused before reading,
/// and a body that keeps coming is cut off at the cap, so that memory
/// stays bounded whatever the server sends.
pub(super) async fn read_body(mut resp: reqwest::Response, max: u64) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge);
    }
    // A declared length is a hint, not a promise: the first allocation
    // stays small either way.
    let hint = resp.content_length().unwrap_or(0).min(max).min(1 << 20);
    let mut body = Vec::with_capacity(hint as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Accept: application/json` unless the definition says otherwise, and
/// the definition's own headers (set, not appended; invalid ones skipped).
fn fixed_headers(d: &Definition, vars: &Vars) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in &d.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&render(value, vars, None)),
        ) {
            h.insert(n, v);
        }
    }
    h
}

/// The instance's pace: requests in flight, and the vendor's window.
struct Throttle {
    limits: RateLimit,
    /// Bounds requests in flight, shared by every target and follow-up.
    permits: Semaphore,
    /// When the vendor's window is exhausted, no request starts before this.
    paused_until: Mutex<Option<Instant>>,
}

impl Throttle {
    fn new(limits: RateLimit) -> Self {
        Throttle {
            permits: Semaphore::new(limits.concurrency),
            paused_until: Mutex::new(None),
            limits,
        }
    }

    /// Pauses everyone when the window is used up, instead of burning the
    /// next requests on 429s. Returns the pause it set.
    async fn note(&self, headers: &HeaderMap) -> Option<Duration> {
        let name = self.limits.remaining_header.as_deref()?;
        if header_u64(headers, name) != Some(0) {
            return None;
        }
        let delay = self
            .reset_delay(headers, now_epoch())?
            .min(Duration::from_secs(self.limits.max_wait_secs));
        *self.paused_until.lock().await = Some(Instant::now() + delay);
        Some(delay)
    }

    /// The wait a 429/503 asks for: `Retry-After` (seconds), else the
    /// definition's reset header.
    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        if let Some(s) = header_u64(headers, "retry-after") {
            return Some(Duration::from_secs(s));
        }
        self.reset_delay(headers, now_epoch())
    }

    /// The time until the window resets, by the definition's reset header.
    fn reset_delay(&self, headers: &HeaderMap, now: u64) -> Option<Duration> {
        let reset = header_u64(headers, self.limits.reset_header.as_deref()?)?;
        if self.limits.reset_is_delay {
            return Some(Duration::from_secs(reset));
        }
        // A reset in the past (clock skew, replayed responses) means "now".
        Some(Duration::from_secs(reset.saturating_sub(now)))
    }
}

fn now_epoch() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

async fn sleep_until(ctx: &Context, until: Instant) -> Result<(), Failure> {
    tokio::select! {
        _ = tokio::time::sleep_until(until) => Ok(()),
        _ = ctx.cancel.cancelled() => Err(Failure::cancelled()),
    }
}

/// Exponential backoff with jitter, so that parallel collectors do not
/// retry in lockstep.
async fn backoff(ctx: &Context, attempt: u32) -> Result<(), Failure> {
    let base = 250u64 << attempt.min(6);
    let jitter = rand::random_range(0..=base / 2);
    sleep_until(ctx, Instant::now() + Duration::from_millis(base + jitter)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(toml: &str) -> Throttle {
        Throttle::new(toml::from_str(toml).unwrap())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn retry_after_wins_over_the_reset_header() {
        let t = throttle("reset_header = 'x-rate-limit-reset'");
        let h = headers(&[("retry-after", " 7 "), ("x-rate-limit-reset", "0")]);
        assert_eq!(t.retry_after(&h), Some(Duration::from_secs(7)));
        // An HTTP-date Retry-After is not understood: the reset header decides.
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(t.retry_after(&h), None);
    }

    #[test]
    fn reset_headers_are_epoch_times_or_delays() {
        let epoch = throttle("reset_header = 'x-rate-limit-reset'");
        let h = headers(&[("x-rate-limit-reset", "1000")]);
        assert_eq!(epoch.reset_delay(&h, 990), Some(Duration::from_secs(10)));
        // A reset in the past is now.
        assert_eq!(epoch.reset_delay(&h, 2000), Some(Duration::ZERO));
        let delay = throttle("reset_header = 'x-rate-limit-reset'\nreset_is_delay = true");
        assert_eq!(delay.reset_delay(&h, 990), Some(Duration::from_secs(1000)));
        assert_eq!(throttle("").reset_delay(&h, 990), None);
    }

    #[tokio::test]
    async fn an_exhausted_window_pauses_for_at_most_max_wait() {
        let t = throttle(
            "remaining_header = 'x-rate-limit-remaining'\nreset_header = 'x-reset'\nreset_is_delay = true\nmax_wait_secs = 30",
        );
        let left = headers(&[("x-rate-limit-remaining", "3"), ("x-reset", "60")]);
        assert_eq!(t.note(&left).await, None);
        assert!(t.paused_until.lock().await.is_none());
        let used_up = headers(&[("x-rate-limit-remaining", "0"), ("x-reset", "60")]);
        assert_eq!(t.note(&used_up).await, Some(Duration::from_secs(30)));
        assert!(t.paused_until.lock().await.is_some());
    }

    #[test]
    fn fixed_headers_default_accept_and_render_the_definition_s() {
        let d = crate::collect::http::definition::parse(
            std::path::Path::new("d.toml"),
            "description = \"x\"\ncriteria = []\nauth = { type = \"none\" }\n[headers]\nAccept = \"application/vnd.x+json\"\nX-Org = \"{org}\"\n\"bad name\" = \"v\"\n[[requests]]\nname = \"a\"\npath = \"/\"\n".into(),
        )
        .unwrap();
        let h = fixed_headers(&d.definition, &Vars::from([("org".into(), "acme".into())]));
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["accept"], "application/vnd.x+json");
        assert_eq!(h["x-org"], "acme");
        assert_eq!(fixed_headers(&d.definition, &Vars::new())["x-org"], "");
    }
}
