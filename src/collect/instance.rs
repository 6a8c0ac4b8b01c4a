//! Collector instances: a configured collector built by its kind, ready to
//! run. The config reads each `[[collectors]]` entry as data
//! ([`CollectorConfig`]); building it here is where the kind is looked up
//! (an unknown kind is refused, naming the known ones), its secret
//! settings' `*_file`s are read, and its own settings are checked.

use std::fmt;
use std::time::Duration;

use super::Collector;
use crate::config::{CollectorConfig, Config, ConfigError, Secrets};
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

/// Builds one configured collector. Errors are located in the config file
/// like the config's own.
pub fn build(c: &CollectorConfig) -> Result<CollectorInstance, ConfigError> {
    let Some(spec) = super::kind(&c.kind) else {
        let known: Vec<_> = super::kinds().map(|k| k.name).collect();
        return Err(c.error(
            "kind",
            format!(
                "unknown collector kind `{}`; known kinds: {}",
                c.kind,
                known.join(", ")
            ),
        ));
    };
    let settings = c.settings(spec.secrets)?;
    let collector = (spec.build)(&settings)?;
    let secrets = settings.secrets();
    Ok(CollectorInstance {
        secrets,
        name: c.name.clone(),
        kind: c.kind.clone(),
        schedule: c.schedule.clone(),
        enabled: c.enabled,
        timeout: c.timeout,
        retries: c.retries,
        retry_backoff: c.retry_backoff,
        criteria: c
            .criteria
            .clone()
            .or_else(|| collector.criteria())
            .unwrap_or_else(|| spec.criteria.iter().map(|s| s.to_string()).collect()),
        collector,
    })
}

/// Builds every collector of the config, in file order; the first error
/// stops it.
pub fn build_all(config: &Config) -> Result<Vec<CollectorInstance>, ConfigError> {
    config.collectors.iter().map(build).collect()
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
                "unknown collector kind `comand`; known kinds: {}",
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
        let e = build_all(&config).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(6), Some("collectors[0].token_file")),
            "{e}"
        );
        assert!(e.message.starts_with("cannot read the secret file"), "{e}");
        std::fs::write(dir.path().join("pd.token"), "t0ken\n").unwrap();
        build_all(&config).unwrap();
        let both = text.replace("token_file", "token = \"x\"\ntoken_file");
        let e = build_all(&crate::config::parse(&file, both).unwrap()).unwrap_err();
        assert_eq!(e.message, "give either `token` or `token_file`, not both");
    }
}
