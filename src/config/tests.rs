//! The config's unit tests: locations of errors in every section, defaults,
//! interpolation, `[timestamping]`.

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
fn missing_env_var_is_located_when_the_collector_is_resolved() {
    let text = OK.replace(
        "[\"uptime\"]",
        "[\"echo\", \"${EXHIBIT_TEST_SURELY_UNSET}\"]",
    );
    // A collector's own variables are read when it is built, not when the
    // file is loaded: a disabled one's are never read.
    let c = parse_str(&text).unwrap();
    let Err(SettingsError::Unresolved(e)) = c.collectors[0].resolve(&[]) else {
        panic!("an unset variable is unresolved, not invalid");
    };
    assert!(e.message.contains("EXHIBIT_TEST_SURELY_UNSET"), "{e}");
    assert_eq!(e.key.as_deref(), Some("collectors[0].command"), "{e}");
    // Elsewhere in the file it is a config error at once.
    let e = parse_str(&format!(
        "{OK}\n[admin]\nlisten = \"${{EXHIBIT_TEST_SURELY_UNSET}}\"\n"
    ))
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("admin.listen"), "{e}");
}

#[test]
fn every_problem_of_a_file_is_listed_at_once() {
    let text = format!(
        "{OK}\n[[collectors]]\nname = \"b\"\nkind = \"git\"\nschedul = \"@daily\"\n\n[[collectors]]\nname = \"c\"\nkind = \"git\"\nschedule = \"@dayly\"\n\n[agent2]\nid = \"x\"\n"
    );
    let d = diagnose_text(Path::new("exhibit.toml"), text);
    assert!(d.config.is_none());
    let messages: Vec<String> = d.problems.iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(
        messages[0].contains(
            ":14:1: key `collectors[1].schedul`: unknown field `schedul`; did you mean `schedule`?"
        ),
        "{messages:#?}"
    );
    assert!(messages[1].contains("key `collectors[2].schedule`: unknown schedule shortcut `@dayly`; did you mean `@daily`?"), "{messages:#?}");
    assert!(
        messages[2].contains("unknown field `agent2`; did you mean `agent`?"),
        "{messages:#?}"
    );
    assert_eq!(
        d.collectors.len(),
        1,
        "the collector that could be read is kept"
    );
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

#[test]
fn a_collector_s_own_settings_are_data_until_built() {
    // Nothing here knows the kinds: an unknown kind, or a key no kind
    // takes, is the builder's to refuse (with these locations).
    let text = OK.replace("kind = \"command\"", "kind = \"nope\"\nlevel = 0x1F");
    let c = parse_str(&text).unwrap();
    let entry = &c.collectors[0];
    assert_eq!(entry.kind, "nope");
    let e = entry.error("kind", "unknown");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(7), Some("collectors[0].kind")),
        "{e}"
    );
    let e = entry.error("level", "bad");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(8), Some("collectors[0].level")),
        "{e}"
    );
    let e = entry.error("absent", "missing");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(5), Some("collectors[0]")),
        "{e}"
    );
}

#[test]
fn a_collector_s_settings_read_back_as_written() {
    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Kind {
        command: Vec<String>,
        hex: i64,
        octal: i64,
        binary: i64,
        negative: i64,
        big: i64,
        ratio: f64,
        exp: f64,
        inf: f64,
        on: bool,
        at: toml::value::Datetime,
        nested: std::collections::BTreeMap<String, Vec<i64>>,
        rows: Vec<std::collections::BTreeMap<String, String>>,
    }
    let text = format!(
        "{OK}hex = 0xDEAD_beef\noctal = 0o17\nbinary = 0b101\nnegative = -42\nbig = 1_000_000\nratio = -0.5\nexp = 1e3\ninf = +inf\non = true\nat = 2026-01-02T03:04:05Z\nnested = {{ a = [1, 2] }}\n[[collectors.rows]]\nx = \"y\"\n"
    );
    let c = parse_str(&text).unwrap();
    let k: Kind = c.collectors[0].settings(&[]).unwrap().parse().unwrap();
    assert_eq!(k.command, ["uptime"]);
    assert_eq!(
        (k.hex, k.octal, k.binary, k.negative, k.big),
        (0xDEAD_BEEF, 0o17, 0b101, -42, 1_000_000)
    );
    assert_eq!((k.ratio, k.exp, k.inf), (-0.5, 1000.0, f64::INFINITY));
    assert!(k.on);
    assert_eq!(k.at.to_string(), "2026-01-02T03:04:05Z");
    assert_eq!(k.nested["a"], [1, 2]);
    assert_eq!(k.rows[0]["x"], "y");

    // An error of the kind's points at the user's text.
    let bad = text.replace("octal = 0o17", "octal = \"seventeen\"");
    let e = parse_str(&bad).unwrap().collectors[0]
        .settings(&[])
        .unwrap()
        .parse::<Kind>()
        .unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(11), Some("collectors[0].octal")),
        "{e}"
    );
}

#[test]
fn secret_files_are_read_when_the_settings_are() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Kind {
        #[allow(dead_code)]
        command: Vec<String>,
        token: String,
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exhibit.toml");
    let text = format!("{OK}token_file = \"token.txt\"\n");
    // Parsing reads no secret file: this one does not exist yet.
    let c = parse(&file, text).unwrap();
    let e = c.collectors[0].settings(&["token"]).unwrap_err();
    assert!(e.message.contains("cannot read the secret file"), "{e}");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(10), Some("collectors[0].token_file")),
        "{e}"
    );
    std::fs::write(dir.path().join("token.txt"), "s3cret\n").unwrap();
    let k: Kind = c.collectors[0]
        .settings(&["token"])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(k.token, "s3cret");
    // For a kind without that secret, `token_file` is just an unknown key.
    let e = c.collectors[0]
        .settings(&[])
        .unwrap()
        .parse::<Kind>()
        .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("collectors[0].token_file"), "{e}");
}
