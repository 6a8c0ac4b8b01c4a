//! The TOML configuration: typed, with `${ENV}` interpolation, `*_file`
//! indirection for secrets, unknown keys rejected, and every error located
//! by file, line, column and key.
//!
//! The document is parsed once into toml's spanned tree; each part (the
//! agent settings, each collector's common keys, each collector's
//! kind-specific keys) is deserialised from its own sub-tree, so that errors
//! anywhere point at the offending text in the user's file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::collect::{self, Collector};
use crate::schedule::Schedule;

/// A configuration error with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted key path, e.g. `collectors[1].schedule`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The source text of a config file, for turning spans into locations.
#[derive(Debug, Clone)]
pub struct Source {
    file: PathBuf,
    text: String,
}

impl Source {
    /// A config source.
    pub fn new(file: PathBuf, text: String) -> Self {
        Source { file, text }
    }

    /// An error at `span`, naming the key found at or before it.
    pub fn error_at(
        &self,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
        let message = message.into();
        let Some(span) = span else {
            return ConfigError {
                file: self.file.clone(),
                line: None,
                column: None,
                key: None,
                message,
            };
        };
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        ConfigError {
            file: self.file.clone(),
            line: Some(line),
            column: Some(column),
            key: self.key_path_at(line_start),
            message,
        }
    }

    /// An error about `key` in the `nth` (0-based) table headed `[header]`
    /// or `[[header]]`, at the key's line when the file sets it there. Values
    /// checked after deserialisation have lost their spans; the text still
    /// knows where they were written.
    pub fn error_for_key(
        &self,
        header: &str,
        nth: usize,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        match self.find_key(header, nth, key) {
            Some(at) => self.error_at(Some(at..at), message),
            None => ConfigError {
                file: self.file.clone(),
                line: None,
                column: None,
                key: Some(format!("{header}.{key}")),
                message: message.into(),
            },
        }
    }

    /// The offset of `key = …` in the `nth` table headed `header`.
    fn find_key(&self, header: &str, nth: usize, key: &str) -> Option<usize> {
        let mut offset = 0;
        let mut seen = 0;
        let mut inside = false;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            if t.starts_with('[') {
                let name = t.trim_start_matches('[').split(']').next().unwrap_or("");
                inside = name.trim() == header && {
                    seen += 1;
                    seen == nth + 1
                };
            } else if inside
                && t.split_once('=')
                    .is_some_and(|(k, _)| k.trim().trim_matches('"') == key)
            {
                return Some(offset + line.len() - line.trim_start().len());
            }
            offset += line.len();
        }
        None
    }

    /// Reconstructs `table.key` for the line starting at `line_start` from
    /// the text: the nearest table header above, and the key on the line.
    fn key_path_at(&self, line_start: usize) -> Option<String> {
        let rest = &self.text[line_start..];
        let line = rest.lines().next().unwrap_or("").trim();
        let header_of = |l: &str| -> Option<(String, bool)> {
            let l = l.trim();
            if let Some(inner) = l.strip_prefix("[[").and_then(|s| s.split("]]").next()) {
                Some((inner.trim().to_string(), true))
            } else {
                l.strip_prefix('[')
                    .and_then(|s| s.split(']').next())
                    .map(|inner| (inner.trim().to_string(), false))
            }
        };
        let key_on_line = |l: &str| -> Option<String> {
            let (k, _) = l.split_once('=')?;
            let k = k.trim().trim_matches('"');
            (!k.is_empty() && !k.starts_with('#')).then(|| k.to_string())
        };
        let before = &self.text[..line_start];
        let mut header: Option<(String, bool)> = None;
        for l in before.lines().rev() {
            if let Some(h) = header_of(l) {
                header = Some(h);
                break;
            }
        }
        let (line_key, header) = match header_of(line) {
            Some(h) => (None, Some(h)),
            None => (key_on_line(line), header),
        };
        let table = header.map(|(name, array)| {
            if array {
                let needle = format!("[[{name}]]");
                let index = before
                    .lines()
                    .filter(|l| l.trim().replace(' ', "") == needle)
                    .count();
                // The header line itself counts when the error is on it.
                let index = if line.replace(' ', "") == needle {
                    index
                } else {
                    index.saturating_sub(1)
                };
                format!("{name}[{index}]")
            } else {
                name
            }
        });
        match (table, line_key) {
            (Some(t), Some(k)) => Some(format!("{t}.{k}")),
            (Some(t), None) => Some(t),
            (None, Some(k)) => Some(k),
            (None, None) => None,
        }
    }

    fn toml_error(&self, e: toml::de::Error) -> ConfigError {
        self.error_at(e.span(), e.message().trim().to_string())
    }

    /// Deserialises a spanned sub-tree; errors point into this source.
    pub fn deserialize<T: DeserializeOwned>(
        &self,
        table: Spanned<DeTable<'_>>,
    ) -> Result<T, ConfigError> {
        T::deserialize(toml::de::Deserializer::from(table)).map_err(|e| self.toml_error(e))
    }
}

/// Durations in config: `"30s"`, `"5m"`, `"1h 30m"`.
pub mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Deserialises a humane duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration `{s}`: {e}")))
    }
}

/// `[agent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Names this agent's checkpoint chain; agents sharing a store need
    /// distinct ids.
    pub id: String,
    /// The Ed25519 signing key (PKCS#8 PEM), created on first use.
    pub key: PathBuf,
    /// How many collections may run at once across all collectors.
    pub concurrency: usize,
    /// How long in-flight runs may take to finish after SIGTERM.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Run each collector once at start-up when slots were missed.
    pub catch_up: bool,
    /// Replicas sharing these collectors (each stream has one owner).
    pub shards: u32,
    /// This replica's index; when omitted with `shards > 1`, the ordinal at
    /// the end of the host name (a StatefulSet pod, `exhibit-2`).
    pub shard_index: Option<u32>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            id: "default".into(),
            key: PathBuf::from("exhibit.key"),
            concurrency: 4,
            shutdown_grace: Duration::from_secs(30),
            catch_up: true,
            shards: 1,
            shard_index: None,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// A directory (relative to the config file) or `s3://bucket/prefix`.
    pub location: String,
    /// S3: the region (else the SDK's: `AWS_REGION`, the profile).
    pub region: Option<String>,
    /// S3: a custom endpoint (MinIO, Ceph, R2); path-style addressing.
    pub endpoint: Option<String>,
    /// S3: encrypt with this KMS key (SSE-KMS).
    pub sse_kms_key_id: Option<String>,
    /// S3: how long each object is locked in COMPLIANCE mode.
    #[serde(default = "default_retention", with = "duration")]
    pub retention: Duration,
    /// S3: run against a bucket without versioning or Object Lock.
    #[serde(default)]
    pub allow_without_object_lock: bool,
    /// S3: how long a stream lease lasts without renewal.
    #[serde(default = "default_lease_ttl", with = "duration")]
    pub lease_ttl: Duration,
    /// S3: the local spool directory (relative to the config file).
    #[serde(default = "default_spool")]
    pub spool: PathBuf,
    /// S3: how long `exhibit collect` waits for the spool to drain.
    #[serde(default = "default_flush_timeout", with = "duration")]
    pub flush_timeout: Duration,
}

fn default_retention() -> Duration {
    crate::store::S3Options::default().retention
}
fn default_lease_ttl() -> Duration {
    crate::store::S3Options::default().lease_ttl
}
fn default_spool() -> PathBuf {
    PathBuf::from("spool")
}
fn default_flush_timeout() -> Duration {
    Duration::from_secs(30)
}

impl StoreConfig {
    /// The store at `location` with every other setting at its default.
    pub fn at(location: &str) -> Self {
        StoreConfig {
            location: location.to_string(),
            region: None,
            endpoint: None,
            sse_kms_key_id: None,
            retention: default_retention(),
            allow_without_object_lock: false,
            lease_ttl: default_lease_ttl(),
            spool: default_spool(),
            flush_timeout: default_flush_timeout(),
        }
    }

    /// How to open this store; `write` for the commands that collect.
    pub fn open_options(&self, write: bool) -> crate::store::OpenOptions {
        crate::store::OpenOptions {
            write,
            spool: Some(self.spool.clone()),
            s3: crate::store::S3Options {
                region: self.region.clone(),
                endpoint: self.endpoint.clone(),
                sse_kms_key_id: self.sse_kms_key_id.clone(),
                retention: self.retention,
                allow_without_object_lock: self.allow_without_object_lock,
                lease_ttl: self.lease_ttl,
                owner: None,
            },
        }
    }
}

/// `[admin]`: the health and metrics endpoint of `exhibit run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address; loopback by default, since metrics name the sources.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9464".parse().expect("valid address"),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `exhibit=debug`.
    pub level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    #[serde(default)]
    agent: AgentConfig,
    store: Option<StoreConfig>,
    #[serde(default)]
    admin: AdminConfig,
    #[serde(default)]
    log: LogConfig,
    report: Option<ReportConfig>,
    timestamping: Option<TimestampingToml>,
}

/// `[timestamping]` as written: locations kept, so that a bad URL or
/// certificate file is reported at its line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimestampingToml {
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

/// `[report]`: the nightly review, made by the daemon on a schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// When to make it (UTC cron), e.g. `"0 7 * * *"`.
    pub schedule: String,
    /// The window it covers.
    #[serde(default = "default_report_window", with = "duration")]
    pub since: Duration,
    /// Where to write the HTML page (relative to the config file).
    pub out: Option<PathBuf>,
    /// A Slack-compatible webhook for the summary.
    pub webhook: Option<String>,
}

fn default_report_window() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// The keys every collector instance has, whatever its kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonSettings {
    name: String,
    kind: String,
    schedule: String,
    #[serde(default = "default_enabled")]
    enabled: bool,
    #[serde(default = "default_timeout", with = "duration")]
    timeout: Duration,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_backoff", with = "duration")]
    retry_backoff: Duration,
    criteria: Option<Vec<String>>,
}

const COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "schedule",
    "enabled",
    "timeout",
    "retries",
    "retry_backoff",
    "criteria",
];

fn default_enabled() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_retries() -> u32 {
    3
}
fn default_backoff() -> Duration {
    Duration::from_secs(2)
}

/// One configured collector instance, built and ready to run.
pub struct CollectorInstance {
    /// Unique instance name; the first segment of its stream ids.
    pub name: String,
    /// The kind, e.g. `git`.
    pub kind: String,
    /// When it runs (UTC).
    pub schedule: Schedule,
    /// Whether `run` schedules it (and `collect` runs it without naming it).
    pub enabled: bool,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries after the first attempt, for retryable errors.
    pub retries: u32,
    /// First backoff; doubles per retry, with jitter.
    pub retry_backoff: Duration,
    /// SOC 2 criteria its evidence supports.
    pub criteria: Vec<String>,
    /// The collector.
    pub collector: Box<dyn Collector>,
}

impl fmt::Debug for CollectorInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorInstance")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("schedule", &self.schedule.expression())
            .finish_non_exhaustive()
    }
}

/// A loaded configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[agent]`, with `key` resolved against the config's directory.
    pub agent: AgentConfig,
    /// The store location (a directory or URL), defaulting to `evidence`
    /// beside the config file.
    pub store: String,
    /// `[store]` in full: the location above and the S3 and spool settings.
    pub store_settings: StoreConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[report]`, with its schedule parsed and `out` resolved.
    pub report: Option<(Schedule, ReportConfig)>,
    /// Every collector instance, in file order.
    pub collectors: Vec<CollectorInstance>,
    /// This agent's share of the streams.
    pub shard: crate::shard::Shard,
    /// `[timestamping]`, when RFC 3161 timestamps are configured.
    pub timestamping: Option<Timestamping>,
}

impl Config {
    /// The directory that relative paths in the config resolve against.
    pub fn base_dir(&self) -> PathBuf {
        base_dir(&self.path)
    }
}

fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What a collector kind's builder gets: its own keys, as a spanned tree,
/// and the means to report errors at them.
pub struct Settings<'a> {
    source: Source,
    table: Spanned<DeTable<'a>>,
    /// The directory relative paths resolve against.
    pub base_dir: PathBuf,
    /// The instance name.
    pub name: String,
}

impl Settings<'_> {
    /// Deserialises the kind's settings struct (which should deny unknown
    /// fields).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.source.deserialize(self.table.clone())
    }

    /// An error located at the setting `key` (or the collector table).
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let span = self
            .table
            .get_ref()
            .get(key)
            .map(|v| v.span())
            .unwrap_or_else(|| self.table.span());
        self.source.error_at(Some(span), message)
    }
}

/// Loads and validates a config file: parses, interpolates, builds every
/// collector. Any error comes back located.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        key: None,
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(path, text)
}

/// Parses config text as if read from `path`.
pub fn parse(path: &Path, text: String) -> Result<Config, ConfigError> {
    let source = Source::new(path.to_path_buf(), text.clone());
    let mut root = DeTable::parse(&text).map_err(|e| source.toml_error(e))?;
    interpolate_table(root.get_mut(), &source)?;

    let collectors_value = root.get_mut().remove("collectors");
    let top: TopLevel = source.deserialize(root)?;
    let base = base_dir(path);

    let mut collectors = Vec::new();
    if let Some(value) = collectors_value {
        let span = value.span();
        let items = match value.into_inner() {
            DeValue::Array(a) => a,
            _ => {
                return Err(source.error_at(
                    Some(span),
                    "`collectors` must be an array of tables: write [[collectors]]",
                ));
            }
        };
        for item in items.iter() {
            collectors.push(build_collector(&source, item.clone(), &base)?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in collectors.iter().enumerate() {
        if !seen.insert(c.name.clone()) {
            return Err(source.error_for_key(
                "collectors",
                i,
                "name",
                format!(
                    "two collectors are named `{}`; names must be unique",
                    c.name
                ),
            ));
        }
    }

    let report = match top.report {
        Some(mut r) => {
            let schedule = Schedule::parse(&r.schedule)
                .map_err(|m| source.error_for_key("report", 0, "schedule", m))?;
            r.out = r.out.map(|o| base.join(o));
            Some((schedule, r))
        }
        None => None,
    };
    let mut agent = top.agent;
    // Container deployments mount the key where the orchestrator puts it.
    if let Some(k) = std::env::var_os("EXHIBIT_KEY") {
        agent.key = PathBuf::from(k);
    }
    if agent.key.is_relative() {
        agent.key = base.join(&agent.key);
    }
    if agent.concurrency == 0 {
        return Err(source.error_for_key("agent", 0, "concurrency", "must be at least 1"));
    }
    crate::evidence::validate_stream_id(&agent.id)
        .map_err(|m| source.error_for_key("agent", 0, "id", m))?;
    let shard_error = |m: String| source.error_for_key("agent", 0, "shard_index", m);
    // The environment wins, so that one config serves every replica:
    // EXHIBIT_SHARD=INDEX/COUNT, or EXHIBIT_SHARD_COUNT=N with the index
    // taken from the host name (a StatefulSet pod).
    if let Ok(n) = std::env::var("EXHIBIT_SHARD_COUNT") {
        agent.shards = n
            .trim()
            .parse()
            .map_err(|_| shard_error(format!("EXHIBIT_SHARD_COUNT: `{n}` is not a number")))?;
        agent.shard_index = None;
    }
    let shard = match std::env::var("EXHIBIT_SHARD") {
        Ok(v) => crate::shard::Shard::parse(&v)
            .map_err(|m| shard_error(format!("EXHIBIT_SHARD: {m}")))?,
        Err(_) if agent.shards <= 1 => crate::shard::Shard::default(),
        Err(_) => {
            let index =
                match agent.shard_index {
                    Some(i) => i,
                    None => crate::shard::Shard::index_from_hostname(&crate::host_name()).map_err(
                        |m| shard_error(format!("{m}; set agent.shard_index or EXHIBIT_SHARD")),
                    )?,
                };
            crate::shard::Shard::new(index, agent.shards).map_err(shard_error)?
        }
    };
    if shard.count > 1 {
        // Each replica has its own checkpoint chain.
        agent.id = format!("{}-{}", agent.id, shard.index);
    }
    let store_settings = top.store.unwrap_or_else(|| StoreConfig::at("evidence"));
    if store_settings.lease_ttl < Duration::from_secs(3) {
        return Err(source.error_for_key("store", 0, "lease_ttl", "must be at least 3s"));
    }
    let timestamping = match top.timestamping {
        Some(t) => Some(build_timestamping(&source, t, &base)?),
        None => None,
    };
    Ok(Config {
        timestamping,
        path: path.to_path_buf(),
        agent,
        store: store_settings.location.clone(),
        store_settings,
        admin: top.admin,
        log: top.log,
        report,
        collectors,
        shard,
    })
}

/// Checks `[timestamping]`: every URL usable, every certificate file
/// readable PEM. Errors name the element (`timestamping.tsa_urls[1]`).
fn build_timestamping(
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
        return Err(ConfigError {
            file: source.file.clone(),
            line: None,
            column: None,
            key: Some("timestamping.tsa_urls".into()),
            message: "give at least one TSA URL".into(),
        });
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
        return Err(ConfigError {
            file: source.file.clone(),
            line: None,
            column: None,
            key: Some("timestamping.tsa_certs".into()),
            message:
                "give the TSA's certificate or its CA's (PEM), which tokens are checked against"
                    .into(),
        });
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

fn build_collector(
    source: &Source,
    item: Spanned<DeValue<'_>>,
    base: &Path,
) -> Result<CollectorInstance, ConfigError> {
    let span = item.span();
    let DeValue::Table(table) = item.into_inner() else {
        return Err(source.error_at(Some(span), "each collector must be a table"));
    };
    let mut common_table = DeTable::new();
    let mut kind_table = DeTable::new();
    for (k, v) in table {
        if COMMON_KEYS.contains(&k.get_ref().as_ref()) {
            common_table.insert(k, v);
        } else {
            kind_table.insert(k, v);
        }
    }
    let common: CommonSettings =
        source.deserialize(Spanned::new(span.clone(), common_table.clone()))?;
    let at = |key: &str| {
        common_table
            .get(key)
            .map(|v| v.span())
            .unwrap_or_else(|| span.clone())
    };
    crate::evidence::validate_stream_id(&common.name)
        .map_err(|m| source.error_at(Some(at("name")), m))?;
    if common.name.contains('/') {
        return Err(source.error_at(Some(at("name")), "collector names may not contain `/`"));
    }
    let schedule =
        Schedule::parse(&common.schedule).map_err(|m| source.error_at(Some(at("schedule")), m))?;
    let Some(spec) = collect::kind(&common.kind) else {
        let known: Vec<_> = collect::kinds().iter().map(|k| k.name).collect();
        return Err(source.error_at(
            Some(at("kind")),
            format!(
                "unknown collector kind `{}`; known kinds: {}",
                common.kind,
                known.join(", ")
            ),
        ));
    };
    let settings = Settings {
        source: source.clone(),
        table: Spanned::new(
            span.clone(),
            resolve_secret_files(source, kind_table, spec.secrets, base)?,
        ),
        base_dir: base.to_path_buf(),
        name: common.name.clone(),
    };
    let collector = (spec.build)(&settings)?;
    Ok(CollectorInstance {
        name: common.name,
        kind: common.kind,
        schedule,
        enabled: common.enabled,
        timeout: common.timeout,
        retries: common.retries,
        retry_backoff: common.retry_backoff,
        criteria: common
            .criteria
            .or_else(|| collector.criteria())
            .unwrap_or_else(|| spec.criteria.iter().map(|s| s.to_string()).collect()),
        collector,
    })
}

/// For each secret setting `x` of a kind, `x_file = "path"` stands for
/// `x = <the file's contents>` (trailing newline removed), as container
/// secrets are mounted as files.
fn resolve_secret_files<'a>(
    source: &Source,
    mut table: DeTable<'a>,
    secrets: &[&str],
    base: &Path,
) -> Result<DeTable<'a>, ConfigError> {
    for name in secrets {
        let file_key = format!("{name}_file");
        let Some((k, v)) = table.remove_entry(file_key.as_str()) else {
            continue;
        };
        if table.contains_key(*name) {
            return Err(source.error_at(
                Some(k.span()),
                format!("give either `{name}` or `{file_key}`, not both"),
            ));
        }
        let Some(p) = v.get_ref().as_str() else {
            return Err(source.error_at(Some(v.span()), format!("`{file_key}` must be a path")));
        };
        let path = base.join(p);
        let contents = std::fs::read_to_string(&path).map_err(|e| {
            source.error_at(
                Some(v.span()),
                format!("cannot read the secret file {}: {e}", path.display()),
            )
        })?;
        let value = contents.trim_end_matches(['\n', '\r']).to_string();
        table.insert(
            Spanned::new(k.span(), DeString::Owned(name.to_string())),
            Spanned::new(v.span(), DeValue::String(DeString::Owned(value))),
        );
    }
    Ok(table)
}

/// Replaces `${NAME}` in every string value with the environment variable
/// NAME; `$${` stands for a literal `${`. A missing variable is an error at
/// the value.
fn interpolate_table(table: &mut DeTable<'_>, source: &Source) -> Result<(), ConfigError> {
    for (_, v) in table.iter_mut() {
        interpolate_value(v, source)?;
    }
    Ok(())
}

fn interpolate_value(v: &mut Spanned<DeValue<'_>>, source: &Source) -> Result<(), ConfigError> {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) if s.contains('$') => {
            let out = interpolate_str(s).map_err(|m| source.error_at(Some(span), m))?;
            *s = DeString::Owned(out);
        }
        DeValue::Array(a) => {
            for item in a.iter_mut() {
                interpolate_value(item, source)?;
            }
        }
        DeValue::Table(t) => interpolate_table(t, source)?,
        _ => {}
    }
    Ok(())
}

/// Expands `${NAME}` from the environment.
pub fn interpolate_str(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` in value".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable reference"));
            }
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("conf/exhibit.toml"), text.to_string())
    }

    const OK: &str = r#"
[agent]
id = "test"

[[collectors]]
name = "uptime"
kind = "command"
schedule = "@hourly"
command = ["uptime"]
"#;

    #[test]
    fn a_valid_config_loads_with_defaults() {
        let c = parse_str(OK).unwrap();
        assert_eq!(c.agent.id, "test");
        assert_eq!(c.agent.key, PathBuf::from("conf/exhibit.key"));
        assert_eq!(c.store, "evidence");
        assert_eq!(c.collectors.len(), 1);
        assert_eq!(c.collectors[0].retries, 3);
        assert_eq!(c.collectors[0].timeout, Duration::from_secs(300));
    }

    #[test]
    fn unknown_common_key_is_located() {
        let text = OK.replace(
            "schedule = \"@hourly\"",
            "schedule = \"@hourly\"\nschedul = \"x\"",
        );
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert_eq!(e.key.as_deref(), Some("collectors[0].schedul"), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn s3_store_settings_parse_and_misspelt_keys_are_located() {
        let text = format!(
            "{OK}\n[store]\nlocation = \"s3://b/p\"\nregion = \"eu-west-1\"\nretention = \"400d\"\nspool = \"/var/spool/exhibit\"\n"
        );
        let c = parse_str(&text).unwrap();
        assert_eq!(c.store, "s3://b/p");
        assert_eq!(
            c.store_settings.retention,
            Duration::from_secs(400 * 86_400)
        );
        assert_eq!(c.store_settings.region.as_deref(), Some("eu-west-1"));
        assert!(!c.store_settings.allow_without_object_lock);
        let o = c.store_settings.open_options(true);
        assert!(o.write);
        assert_eq!(o.s3.retention, Duration::from_secs(400 * 86_400));

        let bad = text.replace("retention =", "retension =");
        let e = parse_str(&bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("store.retension"), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
        let bad = text.replace("\"400d\"", "\"a while\"");
        let e = parse_str(&bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("store.retention"), "{e}");
    }

    #[test]
    fn unknown_kind_key_is_located() {
        let text = format!(
            "{OK}\n[[collectors]]\nname = \"b\"\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"true\"]\ntimeout_secs = 4\n"
        );
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("collectors[1].timeout_secs"), "{e}");
        assert_eq!(e.line, Some(16), "{e}");
    }

    #[test]
    fn bad_cron_is_located() {
        let text = OK.replace("@hourly", "61 * * * *");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("collectors[0].schedule"), "{e}");
        assert_eq!(e.line, Some(8));
    }

    #[test]
    fn syntax_error_is_located() {
        let e = parse_str("[agent]\nid = \"x\nkey = 3\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn missing_env_var_is_located() {
        let text = OK.replace(
            "[\"uptime\"]",
            "[\"echo\", \"${EXHIBIT_TEST_SURELY_UNSET}\"]",
        );
        let e = parse_str(&text).unwrap_err();
        assert!(e.message.contains("EXHIBIT_TEST_SURELY_UNSET"), "{e}");
        assert_eq!(e.key.as_deref(), Some("collectors[0].command"), "{e}");
    }

    #[test]
    fn interpolation_expands_and_escapes() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("EXHIBIT_TEST_VAR", "v") };
        assert_eq!(interpolate_str("a${EXHIBIT_TEST_VAR}b").unwrap(), "avb");
        assert_eq!(interpolate_str("$${NOT}").unwrap(), "${NOT}");
        assert_eq!(interpolate_str("cost $5").unwrap(), "cost $5");
        assert!(interpolate_str("${bad-name}").is_err());
    }

    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBiTCCAS+gAwIBAgIUFwQydbg3PBF34b83fhBlStdnzcwwCgYIKoZIzj0EAwIw\nGTEXMBUGA1UEAwwOQ29uZmlnIFRlc3QgQ0EwIBcNMjYxMjAzMTAyNDI4WhgPMjEy\nNjExMDkxMDI0MjhaMBkxFzAVBgNVBAMMDkNvbmZpZyBUZXN0IENBMFkwEwYHKoZI\nzj0CAQYIKoZIzj0DAQcDQgAE0HoJNHt/WNUu2q0Ni1iSxEgM691IY/r2n5xAIIM4\nYS62fvCS0XVRYEw09HkUxIMK3e0AlBSByN8988gIaROubqNTMFEwHQYDVR0OBBYE\nFEK18/fDxKIRamf9ex5y85EG6fhJMB8GA1UdIwQYMBaAFEK18/fDxKIRamf9ex5y\n85EG6fhJMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgI1HUX7Iw\nDyiPMgNN78m88I4VtngVccMFUg/KsNjEXgMCIQDHpB1O8+ara3Dl/OFLLmu1kwaP\nxx9ba9mEoU/LrFyviQ==\n-----END CERTIFICATE-----\n";

    fn with_ca(extra: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tsa-ca.pem"), TEST_CA).unwrap();
        let text = format!(
            "{OK}\n[timestamping]\ntsa_urls = [\"http://tsa.example/\", \"https://backup.example/tsr\"]\ntsa_certs = [\"tsa-ca.pem\"]\n{extra}"
        );
        (dir, text)
    }

    #[test]
    fn timestamping_loads_its_urls_and_certificates() {
        let (dir, text) = with_ca("max_delay = \"6h\"\npolicy = \"1.2.3.4\"\n");
        let c = parse(&dir.path().join("exhibit.toml"), text).unwrap();
        let t = c.timestamping.expect("configured");
        assert_eq!(t.urls.len(), 2);
        assert_eq!(t.urls[1].host_str(), Some("backup.example"));
        assert_eq!(t.trust.subjects(), vec!["CN=Config Test CA".to_string()]);
        assert_eq!(t.max_delay, Duration::from_secs(6 * 3600));
        assert_eq!(t.tolerance, Timestamping::DEFAULT_TOLERANCE);
        assert_eq!(t.timeout, Duration::from_secs(10));
        assert_eq!(t.policy.unwrap().to_string(), "1.2.3.4");
        assert!(parse_str(OK).unwrap().timestamping.is_none());
    }

    #[test]
    fn timestamping_errors_name_the_key() {
        let (dir, text) = with_ca("");
        let file = dir.path().join("exhibit.toml");
        let bad = text.replace("https://backup.example/tsr", "ftp://backup.example/");
        let e = parse(&file, bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("timestamping.tsa_urls[1]"), "{e}");
        assert_eq!(e.line, Some(12), "{e}");
        let bad = text.replace("\"http://tsa.example/\"", "\"not a url\"");
        let e = parse(&file, bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("timestamping.tsa_urls[0]"), "{e}");
        let bad = text.replace("tsa-ca.pem", "missing.pem");
        let e = parse(&file, bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("timestamping.tsa_certs[0]"), "{e}");
        assert!(e.message.contains("missing.pem"), "{e}");
        std::fs::write(dir.path().join("tsa-ca.pem"), "not a certificate").unwrap();
        let e = parse(&file, text.clone()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("timestamping.tsa_certs[0]"), "{e}");
        let bad = text.replace("tsa_urls", "tsa_url");
        let e = parse(&file, bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("timestamping.tsa_url"), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let text = format!(
            "{OK}\n[[collectors]]\nname = \"uptime\"\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"true\"]\n"
        );
        let e = parse_str(&text).unwrap_err();
        assert!(e.message.contains("two collectors"), "{e}");
        // The second `name = "uptime"`, in the second [[collectors]].
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "name = \"uptime\"")
            .last()
            .unwrap()
            .0
            + 1;
        assert_eq!(e.line, Some(line), "{e}");
        assert_eq!(e.key.as_deref(), Some("collectors[1].name"), "{e}");
    }

    #[test]
    fn values_checked_after_parsing_are_located_too() {
        let text = OK.replace("id = \"test\"", "id = \"test\"\nconcurrency = 0");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("agent.concurrency")),
            "{e}"
        );

        let text = format!("{OK}\n[report]\nschedule = \"every night\"\n");
        let e = parse_str(&text).unwrap_err();
        let line = text
            .lines()
            .position(|l| l.starts_with("schedule = \"every"))
            .unwrap()
            + 1;
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(line), Some("report.schedule")),
            "{e}"
        );

        // A value the file does not set (here: the id, from its default
        // table) still names its key.
        let text = OK.replace("id = \"test\"", "id = \"no/slashes here\"");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("agent.id"), "{e}");
    }
}
