//! `[timestamping]`: the RFC 3161 authorities that timestamp checkpoints,
//! read as written (locations kept) and checked into [`Timestamping`]:
//! every URL usable, every certificate file readable PEM, errors naming the
//! element (`timestamping.tsa_urls[1]`).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration;
use super::source::{ConfigError, Source};

/// `[timestamping]` as written: locations kept, so that a bad URL or
/// certificate file is reported at its line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TimestampingToml {
    tsa_urls: Vec<Spanned<String>>,
    tsa_certs: Vec<Spanned<String>>,
    #[serde(default = "default_tsa_timeout", with = "duration")]
    timeout: Duration,
    #[serde(default = "default_tsa_tolerance", with = "duration")]
    tolerance: Duration,
    #[serde(default = "default_tsa_max_delay", with = "duration")]
    max_delay: Duration,
    #[serde(default = "default_tsa_retry", with = "duration")]
    retry_interval: Duration,
    policy: Option<Spanned<String>>,
}

fn default_tsa_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_tsa_tolerance() -> Duration {
    Timestamping::DEFAULT_TOLERANCE
}
fn default_tsa_max_delay() -> Duration {
    Timestamping::DEFAULT_MAX_DELAY
}
fn default_tsa_retry() -> Duration {
    Duration::from_secs(300)
}

/// `[timestamping]`: RFC 3161 timestamps of checkpoints, loaded and checked.
#[derive(Debug, Clone)]
pub struct Timestamping {
    /// The TSAs, tried in order; the first that answers wins.
    pub urls: Vec<reqwest::Url>,
    /// The certificates trusted to sign tokens (TSA certificates or their
    /// CAs), from the `tsa_certs` files.
    pub trust: crate::evidence::timestamp::TrustAnchors,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How far a record's time may lie after its token's time (clock skew
    /// between the agent and the TSA).
    pub tolerance: Duration,
    /// How long after a record finished its checkpoint's token may be made
    /// before the record counts as back-dated; also how long the agent keeps
    /// trying to fetch a missing token.
    pub max_delay: Duration,
    /// How often the daemon retries checkpoints still lacking a token.
    pub retry_interval: Duration,
    /// The TSA policy to ask for, and to require of tokens.
    pub policy: Option<der::asn1::ObjectIdentifier>,
}

impl Timestamping {
    /// Default clock-skew allowance.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(120);
    /// Default longest gap between a record and its token.
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(24 * 3600);
}

/// Checks `[timestamping]`: every URL usable, every certificate file
/// readable PEM. Errors name the element (`timestamping.tsa_urls[1]`).
pub(super) fn build(
    source: &Source,
    t: TimestampingToml,
    base: &Path,
) -> Result<Timestamping, ConfigError> {
    let at = |span: std::ops::Range<usize>, key: String, message: String| {
        let mut e = source.error_at(Some(span), message);
        e.key = Some(key);
        e
    };
    let mut urls = Vec::new();
    for (i, u) in t.tsa_urls.iter().enumerate() {
        let key = format!("timestamping.tsa_urls[{i}]");
        let url = reqwest::Url::parse(u.get_ref()).map_err(|e| {
            at(
                u.span(),
                key.clone(),
                // The value itself is not repeated: a TSA URL may carry
                // credentials.
                format!("not a URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(at(
                u.span(),
                key,
                "a TSA URL is http:// or https:// with a host".to_string(),
            ));
        }
        urls.push(url);
    }
    if urls.is_empty() {
        return Err(source.unlocated(
            Some("timestamping.tsa_urls".into()),
            "give at least one TSA URL",
        ));
    }
    let mut trust = crate::evidence::timestamp::TrustAnchors::default();
    for (i, c) in t.tsa_certs.iter().enumerate() {
        let key = format!("timestamping.tsa_certs[{i}]");
        let path = base.join(c.get_ref());
        let bytes = std::fs::read(&path).map_err(|e| {
            at(
                c.span(),
                key.clone(),
                format!(
                    "cannot read the TSA certificate file {}: {e}",
                    path.display()
                ),
            )
        })?;
        let certs = crate::evidence::timestamp::TrustAnchors::from_pem(&bytes)
            .map_err(|e| at(c.span(), key.clone(), format!("{}: {e}", path.display())))?;
        trust.extend(certs);
    }
    if trust.is_empty() {
        return Err(source.unlocated(
            Some("timestamping.tsa_certs".into()),
            "give the TSA's certificate or its CA's (PEM), which tokens are checked against",
        ));
    }
    let policy = match &t.policy {
        Some(p) => Some(
            p.get_ref()
                .parse::<der::asn1::ObjectIdentifier>()
                .map_err(|e| {
                    at(
                        p.span(),
                        "timestamping.policy".into(),
                        format!("`{}` is not an OID: {e}", p.get_ref()),
                    )
                })?,
        ),
        None => None,
    };
    Ok(Timestamping {
        urls,
        trust,
        timeout: t.timeout,
        tolerance: t.tolerance,
        max_delay: t.max_delay,
        retry_interval: t.retry_interval.max(Duration::from_secs(1)),
        policy,
    })
}
