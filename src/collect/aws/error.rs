//! Why an AWS call failed, in words an operator can act on: the IAM action
//! refused, the service's own code and message, or the transport's failure;
//! and whether the failure ends a collection or only one part of it.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::collect::CollectError;

/// Why an AWS call failed.
#[derive(Debug, Clone)]
pub(crate) enum AwsError {
    /// The service answered with an error (after the SDK's retries).
    Service {
        action: &'static str,
        code: Option<String>,
        message: String,
        status: Option<u16>,
    },
    /// Throttled, and the SDK's retries ran out.
    Throttled {
        action: &'static str,
        message: String,
    },
    /// The credentials were refused, or could not be assumed.
    Credentials {
        action: &'static str,
        message: String,
    },
    /// No credentials were found: every source the SDK looks in was empty.
    NoCredentials {
        action: &'static str,
        /// The sources looked in, in words.
        tried: Vec<String>,
    },
    /// No answer: connection refused, timeout, an unreadable response.
    Transport {
        action: &'static str,
        message: String,
    },
    /// The agent is shutting down.
    Cancelled,
}

/// Error codes that mean "slow down".
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes that mean the credentials themselves are bad: nothing else
/// will work either.
const BAD_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "AuthFailure",
    "IncompleteSignature",
];

impl AwsError {
    /// Classifies an SDK error of the call `action`.
    pub(crate) fn from_sdk<E>(action: &'static str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if let Some(tried) = credentials_not_found(&e) {
            return AwsError::NoCredentials { action, tried };
        }
        let message = one_line(&DisplayErrorContext(&e).to_string());
        match &e {
            SdkError::ServiceError(s) => {
                let code = s.err().code().map(str::to_string);
                let status = s.raw().status().as_u16();
                // Without a code or message the body was not an AWS error
                // answer (a proxy's page, an emulator's 404); the SDK's
                // own description then quotes the raw response, which says
                // nothing more and does not belong in evidence.
                let text = match (s.err().message(), &code) {
                    (Some(m), _) => one_line(m),
                    (None, Some(_)) => String::from("(no message)"),
                    (None, None) => String::from(
                        "not an AWS error answer (does this endpoint implement the operation?)",
                    ),
                };
                match code.as_deref() {
                    Some(c) if THROTTLING.contains(&c) => AwsError::Throttled {
                        action,
                        message: format!("{c}: {text}"),
                    },
                    Some(c) if BAD_CREDENTIALS.contains(&c) => AwsError::Credentials {
                        action,
                        message: format!("{c}: {text}"),
                    },
                    _ if status == 429 => AwsError::Throttled {
                        action,
                        message: text,
                    },
                    _ => AwsError::Service {
                        action,
                        code,
                        message: text,
                        status: Some(status),
                    },
                }
            }
            // Credentials that cannot be loaded or assumed fail before the
            // request is sent, as a dispatch or construction failure.
            _ if message.contains("credentials") || message.contains("Credentials") => {
                AwsError::Credentials { action, message }
            }
            _ => AwsError::Transport { action, message },
        }
    }

    /// The service's error code, if it answered with one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Whether the error ends the whole collection rather than one part of
    /// it: nothing further would work (credentials, no connection), or the
    /// account is being throttled and the attempt should be made again
    /// later as a whole.
    pub(crate) fn ends_collection(&self) -> bool {
        !matches!(self, AwsError::Service { .. })
    }

    /// Whether the answer was "access denied" (a permission missing from
    /// the collector's role, recorded as such).
    pub(crate) fn is_access_denied(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "AccessDenied"
                    | "AccessDeniedException"
                    | "UnauthorizedOperation"
                    | "AuthorizationError"
            )
        )
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AwsError::Service {
                action,
                code,
                message,
                status,
            } => {
                write!(f, "{action}: ")?;
                if let Some(c) = code {
                    write!(f, "{c}: ")?;
                }
                write!(f, "{message}")?;
                if let Some(s) = status {
                    write!(f, " (HTTP {s})")?;
                }
                Ok(())
            }
            AwsError::Throttled { action, message } => {
                write!(
                    f,
                    "{action}: throttled, and the SDK's retries ran out: {message}"
                )
            }
            AwsError::Credentials { action, message } => {
                write!(f, "{action}: the AWS credentials were refused: {message}")
            }
            AwsError::NoCredentials { action, tried } if tried.is_empty() => {
                write!(f, "{action}: no AWS credentials found")
            }
            AwsError::NoCredentials { action, tried } => write!(
                f,
                "{action}: no AWS credentials found (tried: {})",
                tried.join(", ")
            ),
            AwsError::Transport { action, message } => write!(f, "{action}: {message}"),
            AwsError::Cancelled => write!(f, "cancelled"),
        }
    }
}

impl From<AwsError> for CollectError {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::Cancelled => CollectError::Cancelled,
            AwsError::Credentials { .. } | AwsError::NoCredentials { .. } => {
                CollectError::fatal(e.to_string())
            }
            AwsError::Service { .. } if e.is_access_denied() => CollectError::fatal(e.to_string()),
            _ => CollectError::retryable(e.to_string()),
        }
    }
}

/// When `e` failed because no credentials could be loaded (as opposed to
/// credentials the service refused), the sources the SDK tried, in words:
/// the provider chain's own list of attempts, read from the error's causes.
fn credentials_not_found(e: &(dyn std::error::Error + 'static)) -> Option<Vec<String>> {
    use aws_config::meta::ProviderChainError;
    use aws_credential_types::provider::error::CredentialsError;
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(CredentialsError::CredentialsNotLoaded(_)) =
            c.downcast_ref::<CredentialsError>()
        {
            let chain = std::iter::successors(c.source(), |c| c.source())
                .find_map(|c| c.downcast_ref::<ProviderChainError<CredentialsError>>());
            return Some(
                chain
                    .map(|chain| {
                        chain
                            .attempts()
                            .iter()
                            .map(|a| provider_in_words(a.name()))
                            .collect()
                    })
                    .unwrap_or_default(),
            );
        }
        cause = c.source();
    }
    None
}

/// The SDK's name of a credentials provider, as an operator knows it.
fn provider_in_words(name: &str) -> String {
    match name {
        "Environment" => "environment variables (AWS_ACCESS_KEY_ID)",
        "Profile" => "shared config and credentials files (AWS_PROFILE)",
        "WebIdentityToken" => "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
        "EcsContainer" => "container credentials endpoint",
        "Ec2InstanceMetadata" => "EC2 instance metadata",
        other => other,
    }
    .to_string()
}

/// `s` on one line, at most about 500 characters; a longer text is cut
/// between words and says so.
fn one_line(s: &str) -> String {
    const MAX: usize = 500;
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let cut: String = s.chars().take(MAX).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{} …", cut.trim_end())
}

impl crate::collect::PartError for AwsError {
    fn ends_collection(&self) -> bool {
        AwsError::ends_collection(self)
    }
}
