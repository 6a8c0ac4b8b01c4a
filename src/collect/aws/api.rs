//! The layer every AWS kind shares: one [`Session`] per account (its SDK
//! configuration, identity and regions), the clients built from it, the
//! single wrapper every SDK call goes through ([`Session::call`]), and the
//! helpers that turn SDK values into evidence.
//!
//! [`Session::call`] holds a permit of the service's concurrency limit for
//! the duration of the call and turns the SDK's error into an [`AwsError`]
//! that says which IAM action failed and why. Retries are the SDK's own
//! (adaptive mode: it also slows the client down when throttled); Exhibit
//! does not retry a call on top of them.
//!
//! Every client carries the [`Journal`] interceptor, which logs the IAM
//! action of each operation it executes (once per operation, not per
//! retry) (target `exhibit::aws::action`, at
//! debug level). The action is derived from the operation the SDK actually
//! runs, not from a label, so the least-privilege policy shipped in
//! `deploy/aws/` is tested against the truth.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub(crate) use super::error::AwsError;
use crate::collect::{CollectError, Context};

/// The services the collectors read, each with its own concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Service {
    Account,
    CloudTrail,
    Config,
    GuardDuty,
    Iam,
    Organizations,
    S3,
    SecurityHub,
    Sts,
}

impl Service {
    const ALL: [Service; 9] = [
        Service::Account,
        Service::CloudTrail,
        Service::Config,
        Service::GuardDuty,
        Service::Iam,
        Service::Organizations,
        Service::S3,
        Service::SecurityHub,
        Service::Sts,
    ];

    /// The service of an IAM action (`iam:ListUsers` → IAM).
    fn of(action: &str) -> Service {
        match action.split(':').next().unwrap_or("") {
            "account" => Service::Account,
            "cloudtrail" => Service::CloudTrail,
            "config" => Service::Config,
            "guardduty" => Service::GuardDuty,
            "iam" => Service::Iam,
            "organizations" => Service::Organizations,
            "s3" => Service::S3,
            "securityhub" => Service::SecurityHub,
            _ => Service::Sts,
        }
    }
}

/// The per-service concurrency limits of one collector instance.
#[derive(Debug)]
pub(crate) struct Limits {
    per_service: HashMap<Service, Semaphore>,
}

impl Limits {
    pub(crate) fn new(concurrency: usize) -> Self {
        let per_service = Service::ALL
            .into_iter()
            .map(|s| (s, Semaphore::new(concurrency)))
            .collect();
        Limits { per_service }
    }

    fn of(&self, s: Service) -> &Semaphore {
        &self.per_service[&s]
    }
}

/// Logs the IAM action of every operation a client executes.
#[derive(Debug)]
pub(crate) struct Journal;

impl Intercept for Journal {
    fn name(&self) -> &'static str {
        "exhibit-action-journal"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            tracing::debug!(
                target: "exhibit::aws::action",
                action = %iam_action(m.service(), m.name()),
                "aws call"
            );
        }
        Ok(())
    }
}

/// The IAM action that authorises an SDK operation. Almost always
/// `<prefix>:<operation>`; S3 names a few of its actions differently from
/// the operations they authorise.
pub(crate) fn iam_action(service: &str, operation: &str) -> String {
    let prefix = match service {
        "IAM" => "iam",
        "STS" => "sts",
        "S3" | "S3 Control" => "s3",
        "CloudTrail" => "cloudtrail",
        "Organizations" => "organizations",
        "Config Service" => "config",
        "GuardDuty" => "guardduty",
        "SecurityHub" => "securityhub",
        "Account" => "account",
        other => return format!("{}:{operation}", other.to_ascii_lowercase()),
    };
    let op = match (service, operation) {
        ("S3", "ListBuckets") => "ListAllMyBuckets",
        ("S3", "GetBucketEncryption") => "GetEncryptionConfiguration",
        ("S3", "GetPublicAccessBlock") => "GetBucketPublicAccessBlock",
        ("S3", "GetObjectLockConfiguration") => "GetBucketObjectLockConfiguration",
        ("S3", "GetBucketLifecycleConfiguration") => "GetLifecycleConfiguration",
        ("S3 Control", "GetPublicAccessBlock") => "GetAccountPublicAccessBlock",
        (_, op) => op,
    };
    format!("{prefix}:{op}")
}

/// One account as the collectors see it: credentials (the base identity's,
/// or a role assumed in the account), who that is, and which regions to
/// read.
pub(crate) struct Session {
    /// The 12-digit account id (from STS GetCallerIdentity).
    pub account_id: String,
    /// `aws`, `aws-cn`, `aws-us-gov`…
    pub partition: String,
    /// The identity the collectors act as.
    pub arn: String,
    /// The role assumed to get there, if any.
    pub role_arn: Option<String>,
    /// The regions regional services are read in.
    pub regions: Vec<String>,
    /// The region of global services' calls (IAM, S3 listing, Organizations).
    pub home_region: String,
    sdk: SdkConfig,
    limits: Arc<Limits>,
    path_style: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account_id", &self.account_id)
            .field("arn", &self.arn)
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

/// Builds a client of an SDK crate from the session's configuration, in
/// `region`, with the journal.
macro_rules! client {
    ($sdk:ident, $session:expr, $region:expr) => {{
        let s: &Session = $session;
        $sdk::Client::from_conf(
            $sdk::config::Builder::from(s.sdk())
                .region($sdk::config::Region::new($region.to_string()))
                .interceptor(Journal)
                .build(),
        )
    }};
}

impl Session {
    /// A session from an SDK configuration whose identity was checked.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        sdk: SdkConfig,
        limits: Arc<Limits>,
        path_style: bool,
        account_id: String,
        arn: String,
        role_arn: Option<String>,
        regions: Vec<String>,
        home_region: String,
    ) -> Self {
        let partition = partition_of(&arn);
        Session {
            account_id,
            partition,
            arn,
            role_arn,
            regions,
            home_region,
            sdk,
            limits,
            path_style,
        }
    }

    pub(crate) fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    /// The source identity recorded with every record of the account.
    pub(crate) fn source(&self) -> Value {
        json!({
            "account_id": self.account_id,
            "partition": self.partition,
            "arn": self.arn,
            "role_arn": self.role_arn,
            "regions": self.regions,
        })
    }

    /// Runs one SDK call under the service's concurrency limit; the error
    /// names `action`.
    pub(crate) async fn call<T, E, F>(
        &self,
        ctx: &Context,
        action: &'static str,
        fut: F,
    ) -> Result<T, AwsError>
    where
        F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        call(&self.limits, ctx, action, fut).await
    }

    pub(crate) fn iam(&self) -> aws_sdk_iam::Client {
        client!(aws_sdk_iam, self, self.home_region)
    }

    pub(crate) fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(self.sdk())
                .region(aws_sdk_s3::config::Region::new(region.to_string()))
                .force_path_style(self.path_style)
                .interceptor(Journal)
                .build(),
        )
    }

    pub(crate) fn s3control(&self) -> aws_sdk_s3control::Client {
        aws_sdk_s3control::Client::from_conf(
            aws_sdk_s3control::config::Builder::from(self.sdk())
                .region(aws_sdk_s3control::config::Region::new(
                    self.home_region.clone(),
                ))
                .endpoint_resolver(S3ControlResolver::default())
                .interceptor(Journal)
                .build(),
        )
    }

    pub(crate) fn cloudtrail(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        client!(aws_sdk_cloudtrail, self, region)
    }

    pub(crate) fn config(&self, region: &str) -> aws_sdk_config::Client {
        client!(aws_sdk_config, self, region)
    }

    pub(crate) fn guardduty(&self, region: &str) -> aws_sdk_guardduty::Client {
        client!(aws_sdk_guardduty, self, region)
    }

    pub(crate) fn securityhub(&self, region: &str) -> aws_sdk_securityhub::Client {
        client!(aws_sdk_securityhub, self, region)
    }
}

/// [`Session::call`] for code that has no session yet (resolving one).
pub(crate) async fn call<T, E, F>(
    limits: &Limits,
    ctx: &Context,
    action: &'static str,
    fut: F,
) -> Result<T, AwsError>
where
    F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let semaphore = limits.of(Service::of(action));
    let _permit = tokio::select! {
        p = semaphore.acquire() => p.expect("the semaphore is never closed"),
        _ = ctx.cancel.cancelled() => return Err(AwsError::Cancelled),
    };
    tokio::select! {
        r = fut => r.map_err(|e| AwsError::from_sdk(action, e)),
        _ = ctx.cancel.cancelled() => Err(AwsError::Cancelled),
    }
}

/// The partition of an ARN (`arn:aws-cn:…` → `aws-cn`).
pub(crate) fn partition_of(arn: &str) -> String {
    arn.split(':').nth(1).unwrap_or("aws").to_string()
}

/// The S3 Control endpoint rules put the account id in front of the host
/// (`123456789012.s3-control.…`). With an endpoint override that is an IP
/// address or `localhost` (an emulator, a local proxy), that name cannot
/// resolve; the request goes to the endpoint as given instead, which still
/// names the account in its `x-amz-account-id` header. Every other
/// endpoint, PrivateLink's included, keeps the SDK's rules.
#[derive(Debug, Default)]
struct S3ControlResolver(aws_sdk_s3control::config::endpoint::DefaultResolver);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for S3ControlResolver {
    fn resolve_endpoint<'a>(
        &'a self,
        params: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_smithy_runtime_api::client::endpoint::EndpointFuture<'a> {
        let inner = self.0.resolve_endpoint(params);
        aws_smithy_runtime_api::client::endpoint::EndpointFuture::new(async move {
            let ep = inner.await?;
            Ok(match unprefixed_local_url(ep.url()) {
                Some(url) => ep.into_builder().url(url).build(),
                None => ep,
            })
        })
    }
}

/// `http://123456789012.127.0.0.1:5000/x` → `http://127.0.0.1:5000/x`;
/// `None` for any other URL.
fn unprefixed_local_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (label, host_and_more) = rest.split_once('.')?;
    if label.is_empty() || !label.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let host_end = host_and_more
        .find(['/', '?'])
        .unwrap_or(host_and_more.len());
    let authority = &host_and_more[..host_end];
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok();
    local.then(|| format!("{scheme}://{host_and_more}"))
}

/// An SDK timestamp as RFC 3339 (UTC, seconds).
pub(crate) fn time(t: Option<&aws_smithy_types::DateTime>) -> Value {
    match t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()) {
        Some(s) => Value::String(s),
        None => Value::Null,
    }
}

/// A policy document as JSON. IAM returns documents URL-encoded (RFC
/// 3986); other services return them as plain JSON. A document that is
/// neither is kept as text, so that nothing is lost.
pub(crate) fn policy_document(raw: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(raw) {
        return v;
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    match serde_json::from_str::<Value>(&decoded) {
        Ok(v) => v,
        Err(_) => json!({ "unparsed": decoded }),
    }
}

/// Whether a policy document allows every action on every resource.
pub(crate) fn allows_everything(doc: &Value) -> bool {
    let statements = match doc.get("Statement") {
        Some(Value::Array(s)) => s.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return false,
    };
    let has_star = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s == "*",
        Some(Value::Array(xs)) => xs.iter().any(|x| x == "*"),
        _ => false,
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && s.get("NotAction").is_none()
            && has_star(s.get("Action"))
            && has_star(s.get("Resource"))
    })
}

/// Tags as a sorted object.
pub(crate) fn tags<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let m: std::collections::BTreeMap<&str, &str> = pairs.into_iter().collect();
    json!(m)
}

/// Runs `f` over `items`, at most `limit` at once (the service semaphore
/// bounds the requests; this bounds the futures held), keeping the input
/// order so that payloads are deterministic.
pub(crate) async fn for_each<'a, T, R, F, Fut>(items: &'a [T], limit: usize, f: F) -> Vec<R>
where
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = R>,
{
    use futures::StreamExt;
    let futures: Vec<Fut> = items.iter().map(f).collect();
    futures::stream::iter(futures)
        .buffered(limit.max(1))
        .collect()
        .await
}

/// Folds the outcome of one part of a collection into the failure list:
/// a part that cannot be read is named, not dropped; errors that end the
/// collection are passed up.
pub(crate) fn part<T>(
    what: impl FnOnce() -> String,
    r: Result<T, AwsError>,
    failures: &mut Vec<String>,
) -> Result<Option<T>, CollectError> {
    crate::collect::part(what, r, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_iam_names() {
        assert_eq!(iam_action("IAM", "ListUsers"), "iam:ListUsers");
        assert_eq!(iam_action("S3", "ListBuckets"), "s3:ListAllMyBuckets");
        assert_eq!(
            iam_action("S3 Control", "GetPublicAccessBlock"),
            "s3:GetAccountPublicAccessBlock"
        );
        assert_eq!(
            iam_action("S3", "GetPublicAccessBlock"),
            "s3:GetBucketPublicAccessBlock"
        );
        assert_eq!(
            iam_action("Config Service", "DescribeDeliveryChannels"),
            "config:DescribeDeliveryChannels"
        );
    }

    #[test]
    fn account_prefix_is_dropped_only_before_local_hosts() {
        assert_eq!(
            unprefixed_local_url("http://123456789012.127.0.0.1:5000").as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(
            unprefixed_local_url("http://123456789012.localhost:5000/v20180820").as_deref(),
            Some("http://localhost:5000/v20180820")
        );
        assert_eq!(
            unprefixed_local_url("https://123456789012.s3-control.us-east-1.amazonaws.com"),
            None
        );
        assert_eq!(
            unprefixed_local_url(
                "https://123456789012.control.vpce-1a2b.s3.us-east-1.vpce.amazonaws.com"
            ),
            None
        );
    }

    #[test]
    fn policy_documents_are_decoded() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
        let doc = policy_document(encoded);
        assert_eq!(doc["Version"], "2012-10-17");
        assert!(allows_everything(&doc));
        let plain = r#"{"Statement":{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"*"}}"#;
        assert!(!allows_everything(&policy_document(plain)));
        assert_eq!(policy_document("not json")["unparsed"], "not json");
    }
}
