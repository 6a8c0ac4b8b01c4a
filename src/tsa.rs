//! The agent's side of RFC 3161 timestamps: after each checkpoint is
//! written, ask a Time-Stamp Authority to timestamp its bytes and store the
//! token beside it (`<run id>.tsr`). A TSA that cannot be reached does not
//! stop anything: the checkpoint is already written, the gap is counted in
//! metrics, and the token is fetched later — at the next start or run, and
//! by the daemon every `retry_interval` — as long as a token would still
//! corroborate the checkpoint's time (`max_delay`).
//!
//! Every token is checked as `verify` will check it (imprint, signature,
//! chain to the configured TSA certificates, nonce, policy) before it is
//! stored: a misconfigured or impersonated TSA is a failed request, not a
//! stored token that fails every audit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::config::Timestamping;
use crate::evidence::checkpoint::CheckpointPredicate;
use crate::evidence::layout;
use crate::evidence::record::peek;
use crate::evidence::timestamp::{self, TokenError, Verified};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Largest reply accepted; real tokens are a few kilobytes.
const MAX_REPLY: usize = 1 << 20;

/// Why a checkpoint has no token (yet).
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    /// No TSA gave a usable token; each one's failure, in order.
    #[error("no TSA gave a token: {0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Requests, checks and stores tokens for one agent's checkpoints.
pub struct Timestamper {
    cfg: Timestamping,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    agent: String,
    /// Checkpoints lacking a token, with their finish times.
    pending: Mutex<BTreeMap<String, DateTime<Utc>>>,
}

impl std::fmt::Debug for Timestamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timestamper")
            .field("tsas", &self.cfg.urls.iter().map(host).collect::<Vec<_>>())
            .field("agent", &self.agent)
            .finish()
    }
}

/// A URL reduced to host and port: URLs of commercial TSAs may carry
/// credentials, which never reach a log line or a metric label.
fn host(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "?".into(),
    }
}

impl Timestamper {
    /// A timestamper for `agent`'s checkpoints.
    pub fn new(
        cfg: Timestamping,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
        agent: &str,
    ) -> Self {
        Timestamper {
            cfg,
            http,
            metrics,
            agent: agent.to_string(),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &Timestamping {
        &self.cfg
    }

    /// Checkpoints known to lack a token.
    pub fn pending(&self) -> usize {
        self.pending.lock().expect("pending lock").len()
    }

    fn set_pending(&self, key: &str, finished_at: Option<DateTime<Utc>>) {
        let mut p = self.pending.lock().expect("pending lock");
        match finished_at {
            Some(t) => {
                p.insert(key.to_string(), t);
            }
            None => {
                p.remove(key);
            }
        }
        self.metrics.untimestamped(p.len());
    }

    /// Publishes the trusted TSA certificates into the store's `tsa/`
    /// (never overwriting: each is named by its own hash).
    pub async fn publish_trust(&self, store: &dyn Store) -> Result<(), StoreError> {
        for (sha, pem) in self.cfg.trust.pems() {
            match store.put_new(&layout::tsa_cert(&sha), pem.as_bytes()).await {
                Ok(()) | Err(StoreError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Timestamps the checkpoint stored at `key` as `bytes`, and stores the
    /// token. On failure the checkpoint is remembered for a later try.
    pub async fn stamp(
        &self,
        store: &dyn Store,
        key: &str,
        bytes: &[u8],
        finished_at: DateTime<Utc>,
    ) -> Result<Verified, StampError> {
        let sha: [u8; 32] = <sha2_010::Sha256 as sha2_010::Digest>::digest(bytes).into();
        let (reply, verified) = match self.fetch(&sha).await {
            Ok(r) => r,
            Err(e) => {
                self.set_pending(key, Some(finished_at));
                return Err(e);
            }
        };
        let token_key = layout::token(key);
        match store.put_new(&token_key, &reply).await {
            Ok(()) | Err(StoreError::Exists(_)) => {}
            Err(e) => {
                self.set_pending(key, Some(finished_at));
                return Err(e.into());
            }
        }
        self.set_pending(key, None);
        tracing::info!(checkpoint = %key, token = %token_key, gen_time = %verified.gen_time.to_rfc3339(), tsa = %verified.signer, "checkpoint timestamped");
        Ok(verified)
    }

    /// Asks each TSA in turn; the first usable token wins.
    async fn fetch(&self, sha: &[u8; 32]) -> Result<(Vec<u8>, Verified), StampError> {
        let req = timestamp::request(sha, self.cfg.policy);
        let mut failures = Vec::new();
        for url in &self.cfg.urls {
            let tsa = host(url);
            match self.ask(url, &req, sha).await {
                Ok(r) => {
                    self.metrics.tsa_request(&tsa, "ok");
                    let skew = r.1.gen_time - Utc::now();
                    if skew.abs().to_std().unwrap_or_default() > self.cfg.tolerance {
                        tracing::warn!(tsa = %tsa, skew_seconds = skew.num_seconds(), "the TSA's clock and this agent's differ by more than the tolerance; verify will flag the records' times");
                    }
                    return Ok(r);
                }
                Err((result, message)) => {
                    self.metrics.tsa_request(&tsa, result);
                    tracing::debug!(tsa = %tsa, result, error = %message, "TSA request failed");
                    failures.push(format!("{tsa}: {message}"));
                }
            }
        }
        Err(StampError::Unavailable(failures.join("; ")))
    }

    /// One TSA: the reply and its verification, or (metric result, why).
    async fn ask(
        &self,
        url: &reqwest::Url,
        req: &timestamp::Request,
        sha: &[u8; 32],
    ) -> Result<(Vec<u8>, Verified), (&'static str, String)> {
        let resp = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/timestamp-query")
            .header(reqwest::header::ACCEPT, "application/timestamp-reply")
            .timeout(self.cfg.timeout)
            .body(req.der.clone())
            .send()
            .await
            .map_err(|e| ("unreachable", e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(("http_error", format!("answered {}", resp.status())));
        }
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        // `timestamp-response` is what some TSAs send, after a draft name.
        if !ctype.starts_with("application/timestamp-reply")
            && !ctype.starts_with("application/timestamp-response")
        {
            return Err((
                "http_error",
                format!("answered with `{ctype}`, not application/timestamp-reply"),
            ));
        }
        if resp.content_length().is_some_and(|n| n > MAX_REPLY as u64) {
            return Err(("http_error", "the reply is too large".into()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ("unreachable", e.without_url().to_string()))?;
        if body.len() > MAX_REPLY {
            return Err(("http_error", "the reply is too large".into()));
        }
        let v = timestamp::verify(&body, sha, &self.cfg.trust).map_err(|e| match e {
            TokenError::Rejected(m) => ("rejected", m),
            e => ("invalid", format!("{}: {e}", e.code())),
        })?;
        if v.nonce.as_deref() != Some(req.nonce.as_slice()) {
            return Err((
                "invalid",
                "the token does not carry this request's nonce (a replayed reply?)".into(),
            ));
        }
        if let Some(p) = &self.cfg.policy
            && v.policy != p.to_string()
        {
            return Err((
                "invalid",
                format!("the token is under policy {}, not {p}", v.policy),
            ));
        }
        Ok((body.to_vec(), v))
    }

    /// Finds this agent's checkpoints that lack a token and are recent
    /// enough (within `max_delay`) for one to corroborate their time.
    pub async fn scan(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<(), StoreError> {
        let keys = store.list(layout::CHECKPOINTS).await?;
        let have: std::collections::HashSet<&str> = keys.iter().map(String::as_str).collect();
        let horizon = now - chrono::Duration::from_std(self.cfg.max_delay).unwrap_or_default();
        // Keys start with their finish day: older days need not be read.
        let horizon_day = layout::checkpoint(horizon, "");
        let horizon_day = horizon_day.trim_end_matches(".json");
        let mut too_old = 0usize;
        for key in keys.iter().filter(|k| layout::is_checkpoint(k)) {
            if have.contains(layout::token(key).as_str()) {
                continue;
            }
            if key.as_str() < horizon_day {
                too_old += 1;
                continue;
            }
            let Some(bytes) = store.get(key).await? else {
                continue;
            };
            let Ok(st) = peek::<CheckpointPredicate>(&bytes) else {
                continue;
            };
            if st.predicate.agent != self.agent {
                continue;
            }
            if st.predicate.finished_at < horizon {
                too_old += 1;
                continue;
            }
            self.set_pending(key, Some(st.predicate.finished_at));
        }
        if too_old > 0 {
            tracing::warn!(
                checkpoints = too_old,
                max_delay = ?self.cfg.max_delay,
                "checkpoints written more than max_delay ago have no RFC 3161 token; a token now would not corroborate their times, so none is requested"
            );
        }
        self.metrics.untimestamped(self.pending());
        Ok(())
    }

    /// Tries again for every pending checkpoint still within `max_delay`;
    /// stops at the first TSA failure (they are all down: the next round
    /// tries again). Returns how many are still pending.
    pub async fn retry_pending(&self, store: &dyn Store, now: DateTime<Utc>) -> usize {
        let horizon = now - chrono::Duration::from_std(self.cfg.max_delay).unwrap_or_default();
        let due: Vec<(String, DateTime<Utc>)> = self
            .pending
            .lock()
            .expect("pending lock")
            .iter()
            .map(|(k, t)| (k.clone(), *t))
            .collect();
        for (key, finished_at) in due {
            if finished_at < horizon {
                tracing::warn!(checkpoint = %key, "giving up on an RFC 3161 token for this checkpoint: more than max_delay has passed since it was written");
                self.set_pending(&key, None);
                continue;
            }
            match store.exists(&layout::token(&key)).await {
                Ok(true) => {
                    self.set_pending(&key, None);
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(checkpoint = %key, error = %e, "cannot check for a token");
                    break;
                }
            }
            let bytes = match store.get(&key).await {
                Ok(Some(b)) => b,
                Ok(None) => {
                    self.set_pending(&key, None);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(checkpoint = %key, error = %e, "cannot read the checkpoint to timestamp it");
                    break;
                }
            };
            if let Err(e) = self.stamp(store, &key, &bytes, finished_at).await {
                tracing::warn!(checkpoint = %key, error = %e, "checkpoint still not timestamped; trying again later");
                break;
            }
        }
        self.pending()
    }
}
