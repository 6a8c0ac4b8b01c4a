//! The AWS collectors: identity and access (IAM, CC6.1–CC6.3), data
//! protection (S3, CC6.1/CC6.7/A1.2), and logging and monitoring
//! (CloudTrail, Config, GuardDuty, Security Hub: CC7.2/CC7.3), read with
//! the AWS SDK.
//!
//! Every kind shares this module's settings and the account and region
//! resolution: the SDK's standard credential chain (environment, profile,
//! SSO, web identity, instance metadata), optionally a role assumed first
//! (`role_arn`, `external_id`), then one stream per account, either the
//! credentials' own account, each of `accounts`, or every active account of
//! the organisation (`organization = true`), a role (`role_name`) being
//! assumed in each. Regional data sits inside the account's payload, per
//! region. Each kind lives in its own file; [`api`] is the shared layer
//! every SDK call goes through.

pub(crate) mod api;
mod cloudtrail;
mod credential_report;
mod error;
mod iam_groups;
mod iam_policies;
mod iam_roles;
mod iam_users;
mod monitoring;
mod password_policy;
mod s3;
mod summary;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use serde::Deserialize;
use serde_json::json;

use super::{CollectError, Collector, Context, KindSpec, Previous, Snapshot, Target};
use crate::config::{ConfigError, Settings};
use api::{AwsError, Journal, Limits, Session, call};

/// Every AWS kind, for [`super::kinds`]: a new kind is its file and one
/// line here.
pub const KINDS: &[KindSpec] = &[
    iam_users::SPEC,
    credential_report::SPEC,
    password_policy::SPEC,
    iam_roles::SPEC,
    iam_policies::SPEC,
    iam_groups::SPEC,
    summary::SPEC,
    s3::SPEC,
    cloudtrail::SPEC,
    monitoring::SPEC,
];

/// Settings that may be given as `<name>_file`. The external id is not a
/// secret to AWS, but some organisations treat it as one.
const SECRETS: &[&str] = &["external_id"];

/// The session name of every role the collectors assume; it shows in the
/// account's CloudTrail as who read what.
const SESSION_NAME: &str = "exhibit";

/// The settings every AWS kind accepts (one struct for all of them, so
/// that the config is uniform).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsSettings {
    /// A named profile of the shared config files; else `AWS_PROFILE`.
    profile: Option<String>,
    /// The region of global services' calls; else the SDK's (`AWS_REGION`,
    /// the profile), else us-east-1.
    region: Option<String>,
    /// Regions that regional services are read in; `["all"]` for every
    /// region enabled in the account. Default: `region`.
    regions: Option<Vec<String>>,
    /// A role assumed with the base credentials before anything else.
    role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    external_id: Option<String>,
    /// Accounts to read, assuming `role_name` in each.
    accounts: Option<Vec<String>>,
    /// Read every active account of the organisation, assuming
    /// `role_name` in each.
    #[serde(default)]
    organization: bool,
    /// With `organization`: accounts to leave out.
    #[serde(default)]
    exclude_accounts: Vec<String>,
    /// The role assumed in each account of `accounts` or the organisation.
    role_name: Option<String>,
    /// Calls in flight at once, per service.
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    /// Attempts per call, for the SDK's adaptive retries.
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
}

fn default_concurrency() -> usize {
    8
}
fn default_max_attempts() -> u32 {
    6
}

/// Which accounts an instance covers.
#[derive(Debug, Clone)]
enum Accounts {
    /// The account of the (possibly assumed) credentials.
    Own,
    /// These, assuming the role in each.
    Listed(Vec<String>, String),
    /// The organisation's active accounts, but these, assuming the role.
    Organization(Vec<String>, String),
}

/// The checked settings.
#[derive(Debug, Clone)]
struct Resolved {
    profile: Option<String>,
    region: Option<String>,
    regions: Option<Vec<String>>,
    role_arn: Option<String>,
    external_id: Option<String>,
    accounts: Accounts,
    concurrency: usize,
    max_attempts: u32,
}

/// One AWS evidence kind.
#[async_trait]
pub(crate) trait Kind: Send + Sync + 'static {
    /// Collects one account's evidence of this kind.
    async fn collect(&self, session: &Session, ctx: &Context) -> Result<Snapshot, CollectError>;
}

/// A configured instance of an AWS kind.
struct AwsCollector {
    settings: Resolved,
    limits: Arc<Limits>,
    /// The base SDK configuration, loaded on first use (it needs a tokio
    /// runtime, which does not exist yet when the config is loaded).
    base: tokio::sync::OnceCell<SdkConfig>,
    /// The sessions resolved by the latest `targets`, by account id; an
    /// account whose role could not be assumed keeps its error, which its
    /// stream then records.
    sessions: Mutex<HashMap<String, Result<Arc<Session>, CollectError>>>,
    kind: Box<dyn Kind>,
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Builds an instance of a kind.
pub(crate) fn build_kind(
    settings: &Settings,
    kind: Box<dyn Kind>,
) -> Result<Box<dyn Collector>, ConfigError> {
    let s: AwsSettings = settings.parse()?;
    if let Some(r) = &s.region
        && !is_region(r)
    {
        return Err(settings.error("region", format!("`{r}` is not a region name")));
    }
    if let Some(rs) = &s.regions {
        if rs.is_empty() {
            return Err(settings.error("regions", "`regions` is empty; give [\"all\"] or names"));
        }
        let all = rs.iter().any(|r| r == "all");
        if all && rs.len() > 1 {
            return Err(settings.error("regions", "\"all\" stands alone in `regions`"));
        }
        if let Some(bad) = rs.iter().find(|r| *r != "all" && !is_region(r)) {
            return Err(settings.error("regions", format!("`{bad}` is not a region name")));
        }
    }
    if let Some(arn) = &s.role_arn {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "iam"
            && is_account_id(parts[4])
            && parts[5].starts_with("role/");
        if !ok {
            return Err(settings.error(
                "role_arn",
                format!("`{arn}` is not a role ARN (arn:aws:iam::123456789012:role/NAME)"),
            ));
        }
    }
    if s.external_id.is_some() && s.role_arn.is_none() && s.role_name.is_none() {
        return Err(settings.error(
            "external_id",
            "`external_id` needs a role to assume: set `role_arn` or `role_name`",
        ));
    }
    let accounts = match (&s.accounts, s.organization) {
        (Some(_), true) => {
            return Err(settings.error(
                "organization",
                "give either `accounts` or `organization = true`, not both",
            ));
        }
        (Some(list), false) => {
            if list.is_empty() {
                return Err(settings.error("accounts", "`accounts` is empty"));
            }
            if let Some(bad) = list.iter().find(|a| !is_account_id(a)) {
                return Err(
                    settings.error("accounts", format!("`{bad}` is not a 12-digit account id"))
                );
            }
            let role = role_name(settings, &s)?;
            let mut list = list.clone();
            list.sort();
            list.dedup();
            Accounts::Listed(list, role)
        }
        (None, true) => {
            if let Some(bad) = s.exclude_accounts.iter().find(|a| !is_account_id(a)) {
                return Err(settings.error(
                    "exclude_accounts",
                    format!("`{bad}` is not a 12-digit account id"),
                ));
            }
            Accounts::Organization(s.exclude_accounts.clone(), role_name(settings, &s)?)
        }
        (None, false) => {
            if s.role_name.is_some() {
                return Err(settings.error(
                    "role_name",
                    "`role_name` is assumed in each of `accounts` or of the organisation; for one account, give `role_arn`",
                ));
            }
            if !s.exclude_accounts.is_empty() {
                return Err(settings.error(
                    "exclude_accounts",
                    "`exclude_accounts` applies with `organization = true`",
                ));
            }
            Accounts::Own
        }
    };
    if s.concurrency == 0 || s.concurrency > 64 {
        return Err(settings.error("concurrency", "`concurrency` must be 1 to 64"));
    }
    if s.max_attempts == 0 || s.max_attempts > 20 {
        return Err(settings.error("max_attempts", "`max_attempts` must be 1 to 20"));
    }
    Ok(Box::new(AwsCollector {
        limits: Arc::new(Limits::new(s.concurrency)),
        settings: Resolved {
            profile: s.profile,
            region: s.region,
            regions: s.regions,
            role_arn: s.role_arn,
            external_id: s.external_id,
            accounts,
            concurrency: s.concurrency,
            max_attempts: s.max_attempts,
        },
        base: tokio::sync::OnceCell::new(),
        sessions: Mutex::new(HashMap::new()),
        kind,
    }))
}

fn role_name(settings: &Settings, s: &AwsSettings) -> Result<String, ConfigError> {
    match &s.role_name {
        Some(r)
            if !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b)) =>
        {
            Ok(r.trim_matches('/').to_string())
        }
        Some(r) => Err(settings.error("role_name", format!("`{r}` is not a role name"))),
        None => Err(settings.error(
            "role_name",
            "`role_name` is missing: the role the collector assumes in each account",
        )),
    }
}

/// Whether an endpoint override is configured, in which case S3 is
/// addressed path-style (emulators and S3-compatible stores rarely serve
/// bucket host names).
fn endpoint_overridden(sdk: &SdkConfig) -> bool {
    sdk.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty())
}

impl AwsCollector {
    /// The SDK configuration of the base identity: the standard chain, the
    /// adaptive retry mode, and the first role if one is configured.
    async fn base(&self) -> &SdkConfig {
        self.base
            .get_or_init(|| async {
                let s = &self.settings;
                // One client for the whole SDK configuration: otherwise each
                // service client would build its own connection pool.
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(crate::aws_http::https_client())
                    .retry_config(
                        aws_config::retry::RetryConfig::adaptive()
                            .with_max_attempts(s.max_attempts),
                    )
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(Duration::from_secs(60))
                            .build(),
                    );
                if let Some(p) = &s.profile {
                    loader = loader.profile_name(p);
                }
                if let Some(r) = &s.region {
                    loader = loader.region(aws_config::Region::new(r.clone()));
                }
                let mut sdk = loader.load().await;
                if sdk.region().is_none() {
                    sdk = sdk
                        .into_builder()
                        .region(aws_config::Region::new("us-east-1"))
                        .build();
                }
                match &s.role_arn {
                    Some(arn) => assume(&sdk, arn, s.external_id.as_deref()).await,
                    None => sdk,
                }
            })
            .await
    }

    fn home_region(sdk: &SdkConfig) -> String {
        sdk.region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into())
    }

    /// Who the credentials of `sdk` are: (account id, ARN).
    async fn identity(&self, ctx: &Context, sdk: &SdkConfig) -> Result<(String, String), AwsError> {
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(sdk)
                .interceptor(Journal)
                .build(),
        );
        let out = call(
            &self.limits,
            ctx,
            "sts:GetCallerIdentity",
            sts.get_caller_identity().send(),
        )
        .await?;
        Ok((
            out.account().unwrap_or_default().to_string(),
            out.arn().unwrap_or_default().to_string(),
        ))
    }

    /// The regions to read in an account.
    async fn regions(&self, ctx: &Context, sdk: &SdkConfig) -> Result<Vec<String>, AwsError> {
        match &self.settings.regions {
            None => Ok(vec![Self::home_region(sdk)]),
            Some(rs) if rs.iter().any(|r| r == "all") => {
                use aws_sdk_account::types::RegionOptStatus;
                let client = aws_sdk_account::Client::from_conf(
                    aws_sdk_account::config::Builder::from(sdk)
                        .interceptor(Journal)
                        .build(),
                );
                let mut regions = Vec::new();
                let mut token = None;
                loop {
                    let out = call(
                        &self.limits,
                        ctx,
                        "account:ListRegions",
                        client
                            .list_regions()
                            .region_opt_status_contains(RegionOptStatus::Enabled)
                            .region_opt_status_contains(RegionOptStatus::EnabledByDefault)
                            .max_results(50)
                            .set_next_token(token)
                            .send(),
                    )
                    .await?;
                    regions.extend(
                        out.regions()
                            .iter()
                            .filter_map(|r| r.region_name().map(str::to_string)),
                    );
                    token = out.next_token().map(str::to_string);
                    if token.is_none() {
                        break;
                    }
                }
                regions.sort();
                regions.dedup();
                Ok(regions)
            }
            Some(rs) => Ok(rs.clone()),
        }
    }

    /// The organisation's active accounts, read with the base identity.
    async fn organization_accounts(
        &self,
        ctx: &Context,
        sdk: &SdkConfig,
    ) -> Result<Vec<String>, AwsError> {
        let client = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(sdk)
                .interceptor(Journal)
                .build(),
        );
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let out = call(
                &self.limits,
                ctx,
                "organizations:ListAccounts",
                client.list_accounts().set_next_token(token).send(),
            )
            .await?;
            for a in out.accounts() {
                #[allow(deprecated)]
                let active = match a.state() {
                    Some(s) => s.as_str() == "ACTIVE",
                    None => a.status().is_none_or(|s| s.as_str() == "ACTIVE"),
                };
                if active && let Some(id) = a.id() {
                    ids.push(id.to_string());
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// A session in one account: assumes the role (if any), checks who it
    /// is, and finds the regions.
    async fn session(
        &self,
        ctx: &Context,
        base: &SdkConfig,
        account: Option<(&str, &str, &str)>,
        path_style: bool,
    ) -> Result<Session, AwsError> {
        let (sdk, role_arn) = match account {
            Some((id, role, partition)) => {
                let arn = format!("arn:{partition}:iam::{id}:role/{role}");
                (
                    assume(base, &arn, self.settings.external_id.as_deref()).await,
                    Some(arn),
                )
            }
            None => (base.clone(), self.settings.role_arn.clone()),
        };
        let (account_id, arn) = self.identity(ctx, &sdk).await?;
        if let Some((id, _, _)) = account
            && id != account_id
        {
            return Err(AwsError::Credentials {
                action: "sts:GetCallerIdentity",
                message: format!("the role assumed for account {id} is in account {account_id}"),
            });
        }
        let regions = self.regions(ctx, &sdk).await?;
        let home = Self::home_region(&sdk);
        Ok(Session::new(
            sdk,
            self.limits.clone(),
            path_style,
            account_id,
            arn,
            role_arn,
            regions,
            home,
        ))
    }
}

/// `sdk` with its credentials replaced by a role assumed with them.
async fn assume(sdk: &SdkConfig, role_arn: &str, external_id: Option<&str>) -> SdkConfig {
    let mut b = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(SESSION_NAME)
        .configure(sdk);
    if let Some(id) = external_id {
        b = b.external_id(id);
    }
    let provider = b.build().await;
    sdk.to_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build()
}

#[async_trait]
impl Collector for AwsCollector {
    async fn targets(&self, ctx: &Context) -> Result<Vec<Target>, CollectError> {
        let base = self.base().await;
        let path_style = endpoint_overridden(base);
        let accounts: Vec<(String, Option<String>)> = match &self.settings.accounts {
            Accounts::Own => vec![],
            Accounts::Listed(ids, role) => ids
                .iter()
                .map(|i| (i.clone(), Some(role.clone())))
                .collect(),
            Accounts::Organization(excluded, role) => self
                .organization_accounts(ctx, base)
                .await?
                .into_iter()
                .filter(|i| !excluded.contains(i))
                .map(|i| (i, Some(role.clone())))
                .collect(),
        };
        let mut sessions = HashMap::new();
        let mut targets = Vec::new();
        if accounts.is_empty() {
            if let Accounts::Organization(..) = self.settings.accounts {
                return Err(CollectError::fatal(
                    "the organisation lists no active account to read",
                ));
            }
            let s = self.session(ctx, base, None, path_style).await?;
            targets.push(Target {
                key: s.account_id.clone(),
                source: s.source(),
            });
            sessions.insert(s.account_id.clone(), Ok(Arc::new(s)));
        } else {
            // The roles' ARNs are in the base identity's partition.
            let (_, base_arn) = self.identity(ctx, base).await?;
            let partition = api::partition_of(&base_arn);
            let resolved = api::for_each(&accounts, self.settings.concurrency, |(id, role)| {
                let role = role.clone().unwrap_or_default();
                let partition = partition.as_str();
                async move {
                    self.session(ctx, base, Some((id, &role, partition)), path_style)
                        .await
                }
            })
            .await;
            for ((id, role), r) in accounts.iter().zip(resolved) {
                match r {
                    Ok(s) => {
                        targets.push(Target {
                            key: id.clone(),
                            source: s.source(),
                        });
                        sessions.insert(id.clone(), Ok(Arc::new(s)));
                    }
                    Err(AwsError::Cancelled) => return Err(CollectError::Cancelled),
                    Err(e) => {
                        tracing::warn!(account = %id, error = %e, "cannot open a session in the account");
                        targets.push(Target {
                            key: id.clone(),
                            source: json!({
                                "account_id": id,
                                "role_name": role,
                                "regions": self.settings.regions,
                            }),
                        });
                        let e = CollectError::from(e);
                        sessions.insert(id.clone(), Err(e));
                    }
                }
            }
        }
        *self.sessions.lock().expect("sessions lock") = sessions;
        Ok(targets)
    }

    async fn collect(
        &self,
        ctx: &Context,
        target: &Target,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let session = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(&target.key)
            .cloned()
            .unwrap_or_else(|| {
                Err(CollectError::fatal(format!(
                    "account {} was not resolved",
                    target.key
                )))
            })?;
        let started = std::time::Instant::now();
        let result = self.kind.collect(&session, ctx).await;
        tracing::info!(
            account = %session.account_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "aws collection finished"
        );
        result
    }

    /// The account the settings name, when they name exactly one: the
    /// account of `role_arn`, or the only one of `accounts`.
    fn known_key(&self) -> Option<String> {
        match &self.settings.accounts {
            Accounts::Own => self
                .settings
                .role_arn
                .as_deref()
                .and_then(|arn| arn.split(':').nth(4))
                .filter(|id| is_account_id(id))
                .map(str::to_string),
            Accounts::Listed(ids, _) if ids.len() == 1 => Some(ids[0].clone()),
            _ => None,
        }
    }
}

/// Registration of an AWS kind, for [`KINDS`]; each kind adds the
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

/// The account part every payload starts with.
pub(crate) fn account_header(s: &Session) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("account_id".into(), json!(s.account_id));
    m.insert("partition".into(), json!(s.partition));
    m
}

#[cfg(test)]
mod tests;
