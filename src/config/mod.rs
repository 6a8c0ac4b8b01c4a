//! The TOML configuration: typed, with `${ENV}` interpolation, `*_file`
//! indirection for secrets, unknown keys rejected, and every error located
//! by file, line, column and key.
//!
//! The document is parsed once into toml's spanned tree; each part (the
//! agent settings, each collector's common keys, each collector's
//! kind-specific keys) is deserialised from its own sub-tree, so that errors
//! anywhere point at the offending text in the user's file.
//!
//! Configuration is data: each `[[collectors]]` entry becomes a
//! [`CollectorConfig`] whose kind-specific keys are kept as written; the
//! collectors themselves are built from them by the collectors' module
//! (`instance::build_all`), which knows the kinds and depends on this one.
//! This module knows none of them.

mod collector;
mod env;
mod schedule_hint;
mod source;
pub mod suggest;
mod timestamping;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::schedule::Schedule;

pub use collector::{COMMON_KEYS, CollectorConfig, Settings, SettingsError};
pub use env::{REDACTED, Secrets, interpolate_str, redact_url_credentials};
pub use source::{ConfigError, Source};
pub use timestamping::Timestamping;

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
    /// Every `[[collectors]]` entry, in file order, as data; the
    /// collectors' `instance::build_all` builds them.
    pub collectors: Vec<CollectorConfig>,
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

/// Loads and validates a config file: parses, interpolates, checks every
/// section and each collector's common settings. Any error comes back
/// located (the first of them; [`diagnose`] has them all). The
/// collectors' own settings are checked when they are built.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read(path)?;
    parse(path, text)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        key: None,
        message: format!("cannot read the config file: {e}"),
    })
}

/// Parses config text as if read from `path`.
pub fn parse(path: &Path, text: String) -> Result<Config, ConfigError> {
    let d = diagnose_text(path, text);
    match (d.config, d.problems.into_iter().next()) {
        (Some(c), None) => Ok(c),
        (_, Some(e)) => Err(e),
        (None, None) => unreachable!("a config that did not load has a problem"),
    }
}

/// Everything wrong with a config file at once, for `config check`: the
/// config when it loaded, the collectors whose common settings could be
/// read (for their kinds to check), and every problem found, in file
/// order.
#[derive(Debug)]
pub struct Diagnosis {
    /// The config, when nothing is wrong with it.
    pub config: Option<Config>,
    /// Every collector that could be read, even when the config as a whole
    /// could not.
    pub collectors: Vec<CollectorConfig>,
    /// Every problem found.
    pub problems: Vec<ConfigError>,
}

/// Reads and checks the config at `path`, collecting every problem rather
/// than stopping at the first.
pub fn diagnose(path: &Path) -> Diagnosis {
    match read(path) {
        Ok(text) => diagnose_text(path, text),
        Err(e) => Diagnosis {
            config: None,
            collectors: Vec::new(),
            problems: vec![e],
        },
    }
}

/// The sections a config file may have.
const SECTIONS: &[&str] = &[
    "agent",
    "store",
    "admin",
    "log",
    "report",
    "timestamping",
    "collectors",
];

/// Deserialises the section `name` of `root` on its own, so that one
/// section's error does not hide another's; `None` when absent or wrong
/// (the problem is recorded).
fn section<T: serde::de::DeserializeOwned>(
    source: &Source,
    root: &mut DeTable<'_>,
    name: &str,
    problems: &mut Vec<ConfigError>,
) -> Option<T> {
    let value = root.remove(name)?;
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(source.error_at(
            Some(span),
            format!("`{name}` must be a table: write [{name}]"),
        ));
        return None;
    };
    match source.deserialize(Spanned::new(span, table)) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(e);
            None
        }
    }
}

fn diagnose_text(path: &Path, text: String) -> Diagnosis {
    let mut problems = Vec::new();
    let source = Source::new(path.to_path_buf(), text);
    let text = source.text();
    let mut root = match DeTable::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            return Diagnosis {
                config: None,
                collectors: Vec::new(),
                problems: vec![source.toml_error(e)],
            };
        }
    };
    // Collectors expand their own `${…}`: a disabled one's are never read.
    let collectors_value = root.get_mut().remove("collectors");
    if let Err(e) = env::interpolate_table(root.get_mut(), &source) {
        problems.push(e);
    }
    let root = root.get_mut();
    let valid: Vec<String> = SECTIONS.iter().map(|s| s.to_string()).collect();
    for (k, _) in root.iter() {
        if !SECTIONS.contains(&k.get_ref().as_ref()) {
            problems.push(source.error_at(
                Some(k.span()),
                suggest::unknown_key(k.get_ref(), &[("", valid.as_slice())]),
            ));
        }
    }
    let agent: Option<AgentConfig> = section(&source, root, "agent", &mut problems);
    let store: Option<StoreConfig> = section(&source, root, "store", &mut problems);
    let admin: Option<AdminConfig> = section(&source, root, "admin", &mut problems);
    let log: Option<LogConfig> = section(&source, root, "log", &mut problems);
    let report: Option<ReportConfig> = section(&source, root, "report", &mut problems);
    let timestamping: Option<timestamping::TimestampingToml> =
        section(&source, root, "timestamping", &mut problems);
    let base = base_dir(path);

    let mut collectors = Vec::new();
    if let Some(value) = collectors_value {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match CollectorConfig::parse(&source, item.clone(), &base) {
                        Ok(c) => collectors.push(c),
                        Err(e) => problems.push(e),
                    }
                }
            }
            _ => problems.push(source.error_at(
                Some(span),
                "`collectors` must be an array of tables: write [[collectors]]",
            )),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for c in &collectors {
        if !seen.insert(c.name.clone()) {
            problems.push(c.error(
                "name",
                format!(
                    "two collectors are named `{}`; names must be unique",
                    c.name
                ),
            ));
        }
    }

    let report = match report {
        Some(mut r) => match schedule_hint::parse(&r.schedule) {
            Ok(schedule) => {
                r.out = r.out.map(|o| base.join(o));
                Some((schedule, r))
            }
            Err(m) => {
                problems.push(source.error_for_key("report", 0, "schedule", m));
                None
            }
        },
        None => None,
    };
    let mut agent = agent.unwrap_or_default();
    // Container deployments mount the key where the orchestrator puts it.
    if let Some(k) = std::env::var_os("EXHIBIT_KEY") {
        agent.key = PathBuf::from(k);
    }
    if agent.key.is_relative() {
        agent.key = base.join(&agent.key);
    }
    // The chart sets the grace period of the pod and of the agent from one
    // value.
    if let Ok(g) = std::env::var("EXHIBIT_SHUTDOWN_GRACE") {
        match humantime::parse_duration(g.trim()) {
            Ok(d) => agent.shutdown_grace = d,
            Err(e) => problems.push(source.unlocated(
                Some("agent.shutdown_grace".into()),
                format!("EXHIBIT_SHUTDOWN_GRACE: invalid duration `{g}`: {e}"),
            )),
        }
    }
    if agent.concurrency == 0 {
        problems.push(source.error_for_key("agent", 0, "concurrency", "must be at least 1"));
    }
    if let Err(m) = crate::evidence::validate_stream_id(&agent.id) {
        problems.push(source.error_for_key("agent", 0, "id", m));
    }
    // The id as written, before a replica's own suffix: one stream per
    // host-local source and deployment, which the replica owning it writes.
    for c in &mut collectors {
        c.agent = agent.id.clone();
    }
    let shard = match shard_of(&source, &mut agent) {
        Ok(s) => s,
        Err(e) => {
            problems.push(e);
            crate::shard::Shard::default()
        }
    };
    let store_settings = store.unwrap_or_else(|| StoreConfig::at("evidence"));
    if store_settings.lease_ttl < Duration::from_secs(3) {
        problems.push(source.error_for_key("store", 0, "lease_ttl", "must be at least 3s"));
    }
    let timestamping = match timestamping {
        Some(t) => match timestamping::build(&source, t, &base) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(e);
                None
            }
        },
        None => None,
    };
    problems.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    let config = problems.is_empty().then(|| Config {
        timestamping,
        path: path.to_path_buf(),
        agent,
        store: store_settings.location.clone(),
        store_settings,
        admin: admin.unwrap_or_default(),
        log: log.unwrap_or_default(),
        report,
        collectors: collectors.clone(),
        shard,
    });
    Diagnosis {
        config,
        collectors,
        problems,
    }
}

/// This agent's share of the streams, from the environment or `[agent]`;
/// with more than one shard, the agent id names the replica.
fn shard_of(source: &Source, agent: &mut AgentConfig) -> Result<crate::shard::Shard, ConfigError> {
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
    Ok(shard)
}

#[cfg(test)]
mod tests;
