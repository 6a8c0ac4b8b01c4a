//! Collector instances: a configured collector built by its kind, ready to
//! run. The config reads each `[[collectors]]` entry as data
//! ([`CollectorConfig`]); building it here is where the kind is looked up
//! (an unknown kind is refused, naming the known ones), its keys are
//! checked against those the kind accepts, its `${VAR}`s and secret
//! settings' `*_file`s are read, and its own settings are checked. Only
//! enabled collectors are built; a disabled one is checked for typos and
//! nothing more.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::{CollectError, Collector, Context, KindSpec, Previous, Snapshot, Target};
use crate::config::{
    COMMON_KEYS, CollectorConfig, Config, ConfigError, Secrets, Settings, SettingsError, suggest,
};
use crate::schedule::Schedule;

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
    /// Its secret values (`${NAME}` expansions, secret settings, a
    /// command's `set_env`): the runner scrubs them from everything the
    /// collector returns before it is written or logged.
    pub secrets: Secrets,
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

/// The kind `c` names, or an error naming the nearest known kind and
/// every kind of this build.
fn kind_of(c: &CollectorConfig) -> Result<&'static KindSpec, ConfigError> {
    super::kind(&c.kind).ok_or_else(|| {
        let known: Vec<_> = super::kinds().map(|k| k.name).collect();
        let hint = suggest::nearest(&c.kind, known.iter().copied())
            .map(|n| format!("did you mean `{n}`? "))
            .unwrap_or_default();
        c.error(
            "kind",
            format!(
                "unknown collector kind `{}`; {hint}known kinds: {}",
                c.kind,
                known.join(", ")
            ),
        )
    })
}

/// Each kind's accepted keys, once asked.
type KeyCache = HashMap<&'static str, Option<Vec<String>>>;

/// The settings a kind accepts besides the common ones (`<secret>_file`
/// included), asked of its own settings struct; `None` when the kind does
/// not say (it then checks its keys itself, when built).
pub fn kind_keys(spec: &KindSpec) -> Option<Vec<String>> {
    static KEYS: OnceLock<Mutex<KeyCache>> = OnceLock::new();
    let mut cache = KEYS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry(spec.name)
        .or_insert_with(|| {
            const PROBE: &str = "__exhibit_probe__";
            let e = (spec.build)(&Settings::probe(PROBE)).err()?;
            let mut keys = suggest::valid_keys_in(&e.message)?;
            keys.extend(spec.secrets.iter().map(|s| format!("{s}_file")));
            Some(keys)
        })
        .clone()
}

/// Checks what can be checked of a collector without building it: its
/// kind exists and each of its keys is one the kind accepts. Nothing of
/// the environment is read: a disabled collector is checked this way only.
pub fn check_keys(c: &CollectorConfig) -> Vec<ConfigError> {
    let spec = match kind_of(c) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let Some(valid) = kind_keys(spec) else {
        return Vec::new();
    };
    let common: Vec<String> = COMMON_KEYS.iter().map(|k| k.to_string()).collect();
    c.kind_keys()
        .filter(|k| !valid.iter().any(|v| v == k))
        .map(|k| {
            c.error_at_key(
                k,
                suggest::unknown_key(
                    k,
                    &[
                        ("every collector", common.as_slice()),
                        (spec.name, valid.as_slice()),
                    ],
                ),
            )
        })
        .collect()
}

/// Builds one configured collector. Errors are located in the config file
/// like the config's own. A secret that cannot be resolved where the agent
/// runs (an unset `${VAR}`, an unreadable `*_file`) does not fail the
/// build: the instance is built to fail each collection, naming the
/// variable or the file, so that the other collectors run and the gap is
/// recorded.
pub fn build(c: &CollectorConfig) -> Result<CollectorInstance, ConfigError> {
    let spec = kind_of(c)?;
    if let Some(e) = check_keys(c).into_iter().next() {
        return Err(e);
    }
    let criteria = |collector: Option<&dyn Collector>| {
        c.criteria
            .clone()
            .or_else(|| collector.and_then(|x| x.criteria()))
            .unwrap_or_else(|| spec.criteria.iter().map(|s| s.to_string()).collect())
    };
    let (collector, secrets): (Box<dyn Collector>, Secrets) = match c.resolve(spec.secrets) {
        Ok(settings) => {
            // Building may add secrets (a command's `set_env`).
            let collector = (spec.build)(&settings)?;
            (collector, settings.secrets())
        }
        Err(SettingsError::Invalid(e)) => return Err(e),
        Err(SettingsError::Unresolved(e)) => {
            tracing::warn!(collector = %c.name, error = %e, "collector cannot run: a setting it needs is missing where the agent runs");
            let unresolved = Unresolved {
                message: format!("the collector's settings cannot be resolved: {e}"),
            };
            (Box::new(unresolved), Secrets::new())
        }
    };
    Ok(CollectorInstance {
        secrets,
        name: c.name.clone(),
        kind: c.kind.clone(),
        schedule: c.schedule.clone(),
        enabled: c.enabled,
        timeout: c.timeout,
        retries: c.retries,
        retry_backoff: c.retry_backoff,
        criteria: criteria(Some(collector.as_ref())),
        collector,
    })
}

/// A collector whose secret is missing where the agent runs: each
/// collection fails, saying which variable or file, and is recorded so.
struct Unresolved {
    message: String,
}

#[async_trait::async_trait]
impl Collector for Unresolved {
    async fn targets(&self, _ctx: &Context) -> Result<Vec<Target>, CollectError> {
        Err(CollectError::fatal(self.message.clone()))
    }

    async fn collect(
        &self,
        _ctx: &Context,
        _target: &Target,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        Err(CollectError::fatal(self.message.clone()))
    }
}

/// Builds the enabled collectors of the config, in file order, after
/// checking every collector's kind and keys (a disabled one is checked,
/// never built: its variables and files are not read). The first error
/// stops it; [`check_all`] lists them all.
pub fn build_all(config: &Config) -> Result<Vec<CollectorInstance>, ConfigError> {
    for c in &config.collectors {
        if let Some(e) = check_keys(c).into_iter().next() {
            return Err(e);
        }
    }
    config
        .collectors
        .iter()
        .filter(|c| c.enabled)
        .map(build)
        .collect()
}

/// Every problem of these collectors at once, for `config check`: unknown
/// kinds and keys of all of them, and for the enabled ones, secrets that
/// cannot be resolved and settings their kind refuses.
pub fn check_all(collectors: &[CollectorConfig]) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for c in collectors {
        let found = check_keys(c);
        if !found.is_empty() {
            problems.extend(found);
            continue;
        }
        if !c.enabled {
            continue;
        }
        let Ok(spec) = kind_of(c) else { continue };
        match c.resolve(spec.secrets) {
            Ok(settings) => {
                if let Err(e) = (spec.build)(&settings) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(e.into_inner()),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const OK: &str = r#"
[agent]
id = "test"

[[collectors]]
name = "uptime"
kind = "command"
schedule = "@hourly"
command = ["uptime"]
"#;

    fn parse_str(text: &str) -> Result<Vec<CollectorInstance>, ConfigError> {
        build_all(&crate::config::parse(
            Path::new("conf/exhibit.toml"),
            text.to_string(),
        )?)
    }

    #[test]
    fn a_valid_collector_builds_with_its_kind_s_criteria() {
        let text = OK.replace("kind = \"command\"", "kind = \"git\"\nrepository = \".\"");
        let text = text.replace("command = [\"uptime\"]\n", "");
        let built = parse_str(&text).unwrap();
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].criteria, ["CC8.1"]);
        assert_eq!(built[0].retries, 3);
        let text = text.replace("@hourly\"", "@hourly\"\ncriteria = [\"CC7.2\"]");
        assert_eq!(parse_str(&text).unwrap()[0].criteria, ["CC7.2"]);
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
    fn unknown_kind_key_is_located() {
        let text = format!(
            "{OK}\n[[collectors]]\nname = \"b\"\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"true\"]\ntimeout_secs = 4\n"
        );
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("collectors[1].timeout_secs"), "{e}");
        assert_eq!(e.line, Some(16), "{e}");
    }

    #[test]
    fn an_unknown_kind_is_located_and_the_known_ones_named() {
        let text = OK.replace("kind = \"command\"", "kind = \"comand\"");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(
            (e.line, e.column, e.key.as_deref()),
            (Some(7), Some(8), Some("collectors[0].kind")),
            "{e}"
        );
        let known: Vec<&str> = super::super::kinds().map(|k| k.name).collect();
        assert_eq!(
            e.message,
            format!(
                "unknown collector kind `comand`; did you mean `command`? known kinds: {}",
                known.join(", ")
            )
        );
        assert_eq!(known[..2], ["command", "git"], "{known:?}");
        assert!(known.contains(&"http"), "{known:?}");
    }

    #[test]
    fn an_instance_carries_its_own_secrets_only() {
        // SAFETY: only this test reads these variables.
        unsafe {
            std::env::set_var("EXHIBIT_INSTANCE_TEST_A", "s3cret-of-a");
            std::env::set_var("EXHIBIT_INSTANCE_TEST_B", "s3cret-of-b");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pd.token"), "t0ken-from-file\n").unwrap();
        let text = "[[collectors]]\nname = \"a\"\nkind = \"command\"\nschedule = \"@daily\"\n\
                    command = [\"echo\", \"--key=${EXHIBIT_INSTANCE_TEST_A}\"]\n\
                    set_env = { PLAIN = \"literal-set-env\" }\n\
                    [[collectors]]\nname = \"b\"\nkind = \"http\"\nschedule = \"@daily\"\n\
                    definition = \"pagerduty\"\ntoken_file = \"pd.token\"\n\
                    base_url = \"https://${EXHIBIT_INSTANCE_TEST_B}\"\n";
        let config = crate::config::parse(&dir.path().join("exhibit.toml"), text.into()).unwrap();
        let built = build_all(&config).unwrap();
        let a = &built[0].secrets;
        assert_eq!(
            a.scrub("s3cret-of-a literal-set-env s3cret-of-b t0ken-from-file"),
            "[redacted] [redacted] s3cret-of-b t0ken-from-file"
        );
        let b = &built[1].secrets;
        assert_eq!(
            b.scrub("s3cret-of-a s3cret-of-b t0ken-from-file"),
            "s3cret-of-a [redacted] [redacted]"
        );
    }

    #[test]
    fn a_kind_s_secret_files_are_read_when_it_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exhibit.toml");
        let text = "[[collectors]]\nname = \"s\"\nkind = \"http\"\nschedule = \"@daily\"\ndefinition = \"pagerduty\"\ntoken_file = \"pd.token\"\n";
        let config = crate::config::parse(&file, text.to_string()).unwrap();
        // `config check` names the file; a run builds the collector to fail
        // each collection with the same words, and runs the others.
        let e = check_all(&config.collectors).remove(0);
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(6), Some("collectors[0].token_file")),
            "{e}"
        );
        assert!(e.message.starts_with("cannot read the secret file"), "{e}");
        let built = build_all(&config).unwrap();
        let ctx = Context::new(reqwest::Client::new(), Default::default());
        let failed = futures::executor::block_on(built[0].collector.targets(&ctx)).unwrap_err();
        assert!(failed.to_string().contains("pd.token"), "{failed}");
        std::fs::write(dir.path().join("pd.token"), "t0ken\n").unwrap();
        build_all(&config).unwrap();
        assert!(check_all(&config.collectors).is_empty());
        let both = text.replace("token_file", "token = \"x\"\ntoken_file");
        let e = build_all(&crate::config::parse(&file, both).unwrap()).unwrap_err();
        assert_eq!(e.message, "give either `token` or `token_file`, not both");
    }

    #[test]
    fn a_disabled_collector_is_checked_for_typos_and_never_built() {
        let text = format!(
            "{OK}\n[[collectors]]\nname = \"off\"\nkind = \"http\"\nschedule = \"@daily\"\nenabled = false\ndefinition = \"pagerduty\"\ntoken = \"${{EXHIBIT_TEST_SURELY_UNSET}}\"\nprivate_key_file = \"/surely/not/here.pem\"\n"
        );
        let built = parse_str(&text).unwrap();
        assert_eq!(built.len(), 1, "only the enabled one is built");
        let config = crate::config::parse(Path::new("conf/exhibit.toml"), text.clone()).unwrap();
        assert!(check_all(&config.collectors).is_empty());
        let typo = text.replace("definition =", "definiton =");
        let e = parse_str(&typo).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("collectors[1].definiton"), "{e}");
        assert!(
            e.message
                .starts_with("unknown field `definiton`; did you mean `definition`?"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_names_every_key_valid_there() {
        let text = OK.replace("@hourly\"", "@hourly\"\ntimout = \"5m\"");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("collectors[0].timout"), "{e}");
        assert!(
            e.message
                .starts_with("unknown field `timout`; did you mean `timeout`?"),
            "{e}"
        );
        for k in [
            "timeout", "retries", "criteria", "schedule", "command", "shell", "env",
        ] {
            assert!(e.message.contains(k), "{k} missing: {e}");
        }
    }

    #[test]
    fn every_kind_names_the_keys_it_accepts() {
        for k in super::super::kinds() {
            let keys = kind_keys(k).unwrap_or_else(|| panic!("{} says no keys", k.name));
            assert!(!keys.is_empty(), "{}", k.name);
        }
    }
}
