//! `[[collectors]]` entries as data. Each entry's common keys (name, kind,
//! schedule, …) are read and checked here; its kind-specific keys are kept
//! as written, spans included, for the kind to read when the instance is
//! built (by `instance` in the collectors' module, which depends on this
//! one, never the reverse). Nothing here knows the kinds, so that a whole
//! file can be read, checked and listed without building a collector.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration;
use super::env::{Secrets, interpolate_table, resolve_secret_files};
use super::source::{ConfigError, Source};
use crate::schedule::Schedule;

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

/// The keys every collector instance has, whatever its kind, in the order
/// messages list them.
pub const COMMON_KEYS: &[&str] = &[
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

/// One `[[collectors]]` entry: its common settings, checked, and its
/// kind-specific settings as written, for the kind to read at build time.
#[derive(Clone)]
pub struct CollectorConfig {
    /// Unique instance name; the first segment of its stream ids.
    pub name: String,
    /// The kind, e.g. `git`; not checked against the known kinds here.
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
    /// SOC 2 criteria given in the config; `None` leaves them to the
    /// collector and its kind.
    pub criteria: Option<Vec<String>>,
    /// The directory relative paths resolve against.
    pub base_dir: PathBuf,
    /// The `[agent] id` of the config it is in, as written (before a
    /// replica's `-<index>`): a host-local source names its stream by it.
    pub agent: String,
    source: Source,
    /// The whole entry.
    span: Range<usize>,
    /// Where each common key is written.
    common: BTreeMap<String, Range<usize>>,
    /// The kind-specific keys, as written.
    settings: WrittenTable,
}

impl fmt::Debug for CollectorConfig {
    // The settings may hold secrets: only what identifies the entry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("schedule", &self.schedule.expression())
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl CollectorConfig {
    /// Reads one `[[collectors]]` item: splits the common keys from the
    /// kind's, and checks the common ones (name, schedule). Its `${…}`
    /// are expanded when it is built ([`CollectorConfig::resolve`]).
    pub(super) fn parse(
        source: &Source,
        item: Spanned<DeValue<'_>>,
        base: &Path,
    ) -> Result<Self, ConfigError> {
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
        // A required key that is missing while a near-miss of it is
        // present is a typo of that key, and is named as such at its own
        // line (not as a missing key at the table's).
        for required in ["name", "kind", "schedule"] {
            if common_table.contains_key(required) {
                continue;
            }
            let near = kind_table.iter().find(|(k, _)| {
                super::suggest::nearest(k.get_ref(), COMMON_KEYS.iter().copied()) == Some(required)
            });
            if let Some((k, _)) = near {
                return Err(source.error_at(
                    Some(k.span()),
                    format!(
                        "unknown field `{}`; did you mean `{required}`? Every collector has: {}",
                        k.get_ref(),
                        COMMON_KEYS.join(", ")
                    ),
                ));
            }
        }
        // The common keys are read now (`${…}` expanded); the kind's own
        // are expanded when the collector is built, so that a disabled
        // collector's variables and files are never read.
        interpolate_table(&mut common_table, source)?;
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
        let schedule = super::schedule_hint::parse(&common.schedule)
            .map_err(|m| source.error_at(Some(at("schedule")), m))?;
        Ok(CollectorConfig {
            name: common.name,
            kind: common.kind,
            schedule,
            enabled: common.enabled,
            timeout: common.timeout,
            retries: common.retries,
            retry_backoff: common.retry_backoff,
            criteria: common.criteria,
            base_dir: base.to_path_buf(),
            // Set by the config once `[agent]` is read.
            agent: String::new(),
            source: source.clone(),
            common: common_table
                .iter()
                .map(|(k, v)| (k.get_ref().to_string(), v.span()))
                .collect(),
            settings: WrittenTable::new(&kind_table),
            span,
        })
    }

    /// An error located at the setting `key`, common or the kind's (or at
    /// the entry when the file does not set it).
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let span = self
            .common
            .get(key)
            .cloned()
            .or_else(|| self.settings.span_of(key))
            .unwrap_or_else(|| self.span.clone());
        self.source.error_at(Some(span), message)
    }

    /// The kind-specific settings, for the kind's builder; `secrets` are
    /// the kind's settings that may be given as `<name>_file`, whose files
    /// are read now. Any error is returned as a config error; see
    /// [`CollectorConfig::resolve`] to tell the two kinds apart.
    pub fn settings(&self, secrets: &[&str]) -> Result<Settings<'_>, ConfigError> {
        self.resolve(secrets).map_err(SettingsError::into_inner)
    }

    /// The kind-specific settings with `${…}` expanded and the `*_file`s of
    /// `secrets` read: an unset variable or an unreadable file is
    /// [`SettingsError::Unresolved`] (the environment's fault, not the
    /// file's), anything else [`SettingsError::Invalid`].
    pub fn resolve(&self, secrets: &[&str]) -> Result<Settings<'_>, SettingsError> {
        let mut table = self.settings.de();
        let expansions = interpolate_table(&mut table, &self.source).map_err(|e| {
            // An unset variable is the environment's; a malformed
            // reference is the file's.
            if e.message.starts_with("environment variable `") {
                SettingsError::Unresolved(e)
            } else {
                SettingsError::Invalid(e)
            }
        })?;
        for name in secrets {
            let file_key = format!("{name}_file");
            if table.contains_key(*name) && table.contains_key(file_key.as_str()) {
                return Err(SettingsError::Invalid(self.error(
                    &file_key,
                    format!("give either `{name}` or `{file_key}`, not both"),
                )));
            }
            if let Some(v) = table.get(file_key.as_str())
                && v.get_ref().as_str().is_none()
            {
                return Err(SettingsError::Invalid(
                    self.error(&file_key, format!("`{file_key}` must be a path")),
                ));
            }
        }
        // Every value the environment gave is a secret of this collector,
        // scrubbed from whatever it records.
        let mut found = Secrets::new();
        for e in &expansions {
            found.insert(&e.value);
        }
        let table = resolve_secret_files(&self.source, table, secrets, &self.base_dir, &mut found)
            .map_err(SettingsError::Unresolved)?;
        Ok(Settings {
            source: self.source.clone(),
            table: Spanned::new(self.span.clone(), table),
            base_dir: self.base_dir.clone(),
            name: self.name.clone(),
            agent: self.agent.clone(),
            secrets: std::sync::Mutex::new(found),
        })
    }

    /// The kind-specific keys as written, in file order.
    pub fn kind_keys(&self) -> impl Iterator<Item = &str> {
        self.settings.0.iter().map(|(k, _)| k.get_ref().as_str())
    }

    /// An error located at the key `key` itself (not its value): for a key
    /// that should not be there.
    pub fn error_at_key(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let span = self
            .settings
            .0
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(k, _)| k.span())
            .unwrap_or_else(|| self.span.clone());
        self.source.error_at(Some(span), message)
    }
}

/// Why a collector's own settings could not be had.
#[derive(Debug, Clone)]
pub enum SettingsError {
    /// A `${VAR}` that is not set or a `*_file` that cannot be read: the
    /// collector is configured, but its secret is missing where it runs.
    Unresolved(ConfigError),
    /// The file itself is wrong.
    Invalid(ConfigError),
}

impl SettingsError {
    /// The located error, whichever it is.
    pub fn into_inner(self) -> ConfigError {
        match self {
            SettingsError::Unresolved(e) | SettingsError::Invalid(e) => e,
        }
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
    /// The agent's id as configured ([`CollectorConfig::agent`]).
    pub agent: String,
    /// The secret values seen so far: the entry's expansions, its secret
    /// settings, and what the kind marks.
    secrets: std::sync::Mutex<Secrets>,
}

impl fmt::Debug for Settings<'_> {
    // The settings may hold secrets: only whose they are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("name", &self.name)
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

impl Settings<'static> {
    /// Settings holding only `key = true`, for no collector: building a
    /// kind from them makes its settings struct name the keys it accepts
    /// (serde's "unknown field `key`, expected one of …").
    pub fn probe(key: &'static str) -> Self {
        let source = Source::new(PathBuf::from("(probe)"), String::new());
        let mut table = DeTable::new();
        table.insert(
            Spanned::new(0..0, Cow::Borrowed(key)),
            Spanned::new(0..0, DeValue::Boolean(true)),
        );
        Settings {
            source,
            table: Spanned::new(0..0, table),
            base_dir: PathBuf::from("."),
            name: "probe".into(),
            agent: "probe".into(),
            secrets: std::sync::Mutex::new(Secrets::new()),
        }
    }
}

impl Settings<'_> {
    /// Deserialises the kind's settings struct (which should deny unknown
    /// fields).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.source.deserialize(self.table.clone())
    }

    /// Marks a value as secret: it is scrubbed from everything the
    /// instance produces (for settings the kind's `secrets` list cannot
    /// name, such as the values of a command's `set_env` table).
    pub fn mark_secret(&self, value: &str) {
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(value);
    }

    /// Every secret value of the instance: the `${NAME}` expansions of its
    /// entry, its secret settings and the values its kind marked.
    pub fn secrets(&self) -> Secrets {
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

/// A TOML table as the file wrote it, owned: toml's spanned tree borrows
/// the text it was parsed from, and a collector's settings outlive that
/// parse until the instance is built. Spans are kept, so that the kind's
/// errors point at the user's text.
#[derive(Clone)]
struct WrittenTable(Vec<(Spanned<String>, Spanned<Written>)>);

/// A value of a [`WrittenTable`].
#[derive(Clone)]
enum Written {
    String(String),
    /// An integer or a float, as TOML writes it (`0x1F`, `-3`, `1e3`),
    /// read back into toml's own number when the kind reads its settings.
    Number(String),
    Boolean(bool),
    Datetime(toml::value::Datetime),
    Array(Vec<Spanned<Written>>),
    Table(WrittenTable),
}

impl WrittenTable {
    fn new(t: &DeTable<'_>) -> Self {
        WrittenTable(
            t.iter()
                .map(|(k, v)| {
                    (
                        Spanned::new(k.span(), k.get_ref().to_string()),
                        Spanned::new(v.span(), Written::new(v.get_ref())),
                    )
                })
                .collect(),
        )
    }

    /// Where the value of `key` is written.
    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.0
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v.span())
    }

    /// toml's tree again, borrowing from this one.
    fn de(&self) -> DeTable<'_> {
        let mut out = DeTable::new();
        for (k, v) in &self.0 {
            out.insert(
                Spanned::new(k.span(), Cow::Borrowed(k.get_ref().as_str())),
                Spanned::new(v.span(), v.get_ref().de()),
            );
        }
        out
    }
}

impl Written {
    fn new(v: &DeValue<'_>) -> Self {
        match v {
            DeValue::String(s) => Written::String(s.to_string()),
            // Display puts the radix prefix back (`0x`, `0o`, `0b`).
            DeValue::Integer(i) => Written::Number(i.to_string()),
            DeValue::Float(f) => Written::Number(f.to_string()),
            DeValue::Boolean(b) => Written::Boolean(*b),
            DeValue::Datetime(d) => Written::Datetime(*d),
            DeValue::Array(a) => Written::Array(
                a.iter()
                    .map(|x| Spanned::new(x.span(), Written::new(x.get_ref())))
                    .collect(),
            ),
            DeValue::Table(t) => Written::Table(WrittenTable::new(t)),
        }
    }

    fn de(&self) -> DeValue<'_> {
        match self {
            Written::String(s) => DeValue::String(Cow::Borrowed(s)),
            Written::Number(n) => DeValue::parse(n)
                .expect("a number as toml writes it reads back")
                .into_inner(),
            Written::Boolean(b) => DeValue::Boolean(*b),
            Written::Datetime(d) => DeValue::Datetime(*d),
            Written::Array(a) => DeValue::Array(
                a.iter()
                    .map(|x| Spanned::new(x.span(), x.get_ref().de()))
                    .collect(),
            ),
            Written::Table(t) => DeValue::Table(t.de()),
        }
    }
}
