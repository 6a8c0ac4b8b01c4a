//! The failure of one HTTP exchange, classified where it happens (worth
//! retrying or not, refused with which status) and turned into a
//! [`CollectError`] only when it ends the collection. Also owns the rule
//! that an error text never carries a URL's query, where keys travel
//! (`?api_key=`, `?access_token=`).

use crate::collect::CollectError;

/// An error of one HTTP exchange, already classified.
#[derive(Debug)]
pub(super) struct Failure {
    /// What went wrong, for the record's `missing` list and the logs.
    pub(super) message: String,
    /// Whether trying the collection again later may succeed.
    pub(super) retryable: bool,
    /// The HTTP status, when the server answered with a refusal (so that a
    /// request's `empty_on` can turn it into an empty list).
    pub(super) status: Option<u16>,
}

impl Failure {
    /// A failure without a refusal status.
    pub(super) fn new(message: impl Into<String>, retryable: bool) -> Self {
        Failure {
            message: message.into(),
            retryable,
            status: None,
        }
    }

    /// A failure that trying again later may cure (timeouts, 5xx, 429).
    pub(super) fn retryable(message: impl Into<String>) -> Self {
        Self::new(message, true)
    }

    /// A failure that trying again will not cure.
    pub(super) fn fatal(message: impl Into<String>) -> Self {
        Self::new(message, false)
    }

    /// The server's refusal with `status` (401, 404…).
    pub(super) fn refused(message: impl Into<String>, status: u16) -> Self {
        Failure {
            status: Some(status),
            ..Self::fatal(message)
        }
    }

    /// The collection was cancelled while waiting or sending.
    pub(super) fn cancelled() -> Self {
        Self::fatal("cancelled")
    }
}

impl From<Failure> for CollectError {
    fn from(f: Failure) -> Self {
        if f.retryable {
            CollectError::retryable(f.message)
        } else {
            CollectError::fatal(f.message)
        }
    }
}

/// A URL for messages: without its query, which may carry keys, and
/// without credentials (`https://user:pass@host`).
pub(super) fn redact_url(url: &str) -> String {
    let no_query = url.split('?').next().unwrap_or(url);
    crate::config::redact_url_credentials(no_query).into_owned()
}

/// A reqwest error's text with the URL it embeds cut at the query, which
/// may carry keys (`?api_key=`, `?access_token=`).
pub(super) fn without_url(e: &reqwest::Error) -> String {
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
    crate::config::redact_url_credentials(&s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_retryable_or_fatal_collect_errors() {
        let e: CollectError = Failure::retryable("GET /x: HTTP 503").into();
        assert!(
            matches!(&e, CollectError::Retryable { message, retry_after: None } if message == "GET /x: HTTP 503"),
            "{e:?}"
        );
        let e: CollectError = Failure::refused("GET /x: HTTP 401", 401).into();
        assert!(
            matches!(&e, CollectError::Fatal(m) if m == "GET /x: HTTP 401"),
            "{e:?}"
        );
        assert_eq!(Failure::refused("x", 404).status, Some(404));
        assert_eq!(Failure::cancelled().message, "cancelled");
    }

    #[test]
    fn urls_in_messages_lose_their_query() {
        assert_eq!(
            redact_url("https://x.example/api/v1?api_key=k&a=1"),
            "https://x.example/api/v1"
        );
        assert_eq!(redact_url("/users"), "/users");
        assert_eq!(
            redact_url("https://bob:hunter22@x.example/api?k=1"),
            "https://[redacted]@x.example/api"
        );
    }

    #[tokio::test]
    async fn transport_errors_name_the_cause_without_the_query() {
        // Nothing listens on port 1: the connection is refused at once.
        let e = reqwest::Client::new()
            .get("http://127.0.0.1:1/api?api_key=SECRETKEY")
            .send()
            .await
            .unwrap_err();
        let s = without_url(&e);
        assert!(!s.contains("SECRETKEY"), "{s}");
        assert!(s.contains("http://127.0.0.1:1/api"), "{s}");
        // reqwest's own line does not say why; the appended cause does.
        assert!(!e.to_string().contains("refused"), "{e}");
        assert!(s.contains("refused"), "{s}");
    }
}
