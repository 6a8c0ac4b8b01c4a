//! The first hour: configuration messages, newcomer commands, the review
//! report and the deployment files, as a new user meets them.

mod docs;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{Workspace, code, git, root, text};

/// A command collector printing `file` of the workspace.
fn cat(name: &str, file: &str, schedule: &str) -> String {
    format!(
        "[[collectors]]\nname = \"{name}\"\nkind = \"command\"\nschedule = \"{schedule}\"\ncommand = [\"cat\", \"{file}\"]\nretries = 0\n"
    )
}

#[test]
fn a_disabled_collector_s_variables_and_files_are_never_read() {
    let config = format!(
        "{}\n[[collectors]]\nname = \"pagerduty\"\nkind = \"http\"\nschedule = \"@daily\"\nenabled = false\ndefinition = \"pagerduty\"\ntoken = \"${{EXHIBIT_FH_SURELY_UNSET}}\"\n\n[[collectors]]\nname = \"gh-app\"\nkind = \"http\"\nschedule = \"@daily\"\nenabled = false\ndefinition = \"google-workspace-directory\"\nprivate_key_file = \"/run/secrets/surely-not-here.pem\"\n",
        cat("users", "users.json", "@daily")
    );
    let ws = Workspace::new(&config);
    std::fs::write(ws.path().join("users.json"), r#"{"users": ["alice"]}"#).unwrap();
    let out = ws.run(&["config", "check"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("(disabled)"), "{}", text(&out));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("ok       users/"), "{}", text(&out));
    // Named, a disabled collector runs, and only it is built.
    let out = ws.run(&["collect", "users"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn an_enabled_collector_without_its_secret_fails_alone_and_says_which() {
    let config = format!(
        "{}\n[[collectors]]\nname = \"pagerduty\"\nkind = \"http\"\nschedule = \"@daily\"\nretries = 0\ndefinition = \"pagerduty\"\ntoken = \"${{EXHIBIT_FH_PD_TOKEN}}\"\n\n[[collectors]]\nname = \"okta\"\nkind = \"http\"\nschedule = \"@daily\"\nretries = 0\ndefinition = \"okta-users\"\nbase_url = \"https://acme.okta.com\"\ntoken_file = \"okta.token\"\n",
        cat("users", "users.json", "@daily")
    );
    let ws = Workspace::new(&config);
    std::fs::write(ws.path().join("users.json"), r#"{"users": ["alice"]}"#).unwrap();
    // `config check` lists both problems at once, and exits 2.
    let out = ws.run(&["config", "check"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains(
            "key `collectors[1].token`: environment variable `EXHIBIT_FH_PD_TOKEN` is not set"
        ),
        "{t}"
    );
    assert!(
        t.contains("key `collectors[2].token_file`: cannot read the secret file")
            && t.contains("okta.token"),
        "{t}"
    );
    assert!(t.contains("2 problem(s)"), "{t}");
    // A collection runs the others, and records the two failures, naming
    // the variable and the file.
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("ok       users/"), "{t}");
    let failed: Vec<&str> = t.lines().filter(|l| l.starts_with("failed")).collect();
    assert_eq!(failed.len(), 2, "{t}");
    assert!(
        failed.iter().any(|l| l.contains("EXHIBIT_FH_PD_TOKEN")),
        "{t}"
    );
    assert!(failed.iter().any(|l| l.contains("okta.token")), "{t}");
    let out = ws.run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn misspelt_keys_kinds_and_schedules_are_named_with_what_was_meant() {
    let config = "\
[agent]
id = \"typos\"

[[collectors]]
name = \"a\"
kind = \"command\"
schedul = \"@daily\"
command = [\"true\"]

[[collectors]]
name = \"b\"
kind = \"command\"
schedule = \"@daily\"
timout = \"5m\"
command = [\"true\"]

[[collectors]]
name = \"c\"
kind = \"command\"
schedule = \"@dayly\"
command = [\"true\"]

[[collectors]]
name = \"d\"
kind = \"comand\"
schedule = \"0 25 * * *\"
";
    let ws = Workspace::new(config);
    let out = ws.run(&["config", "check"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let t = text(&out);
    let errors: Vec<&str> = t.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 4, "every problem at once: {t}");
    assert!(
        errors[0].contains("exhibit.toml:7:1: key `collectors[0].schedul`: unknown field `schedul`; did you mean `schedule`?"),
        "{t}"
    );
    assert!(!t.contains("missing field"), "{t}");
    assert!(
        errors[1].contains(
            ":14:1: key `collectors[1].timout`: unknown field `timout`; did you mean `timeout`?"
        ),
        "{t}"
    );
    for k in [
        "timeout", "retries", "criteria", "schedule", "command", "shell", "env",
    ] {
        assert!(errors[1].contains(k), "`{k}` not listed: {}", errors[1]);
    }
    assert!(
        errors[2].contains("key `collectors[2].schedule`: unknown schedule shortcut `@dayly`; did you mean `@daily`?"),
        "{t}"
    );
    assert!(
        errors[3].contains("key `collectors[3].schedule`")
            && errors[3].contains("the hour field is `25`"),
        "{t}"
    );
    // The kind is checked once the schedule is right.
    let ws = Workspace::new(&config.replace("0 25 * * *", "@daily"));
    let t = text(&ws.run(&["config", "check"]));
    assert!(
        t.contains(
            "key `collectors[3].kind`: unknown collector kind `comand`; did you mean `command`?"
        ),
        "{t}"
    );
    // `collect` refuses the same file (exit 2), naming a problem.
    assert_eq!(code(&ws.run(&["collect"])), 2);
}

/// The environment variables a shipped config's header names
/// (`NAME=value` in its opening comment).
fn header_variables(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
    {
        for word in line.split_whitespace() {
            if let Some((k, v)) = word.split_once('=')
                && !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

/// A Google service account's JSON key, made with openssl.
fn service_account_key(dir: &Path) -> std::path::PathBuf {
    let pem = dir.join("sa.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{out:?}");
    let key = dir.join("sa.json");
    std::fs::write(
        &key,
        serde_json::json!({
            "client_email": "exhibit@acme-audit.iam.gserviceaccount.com",
            "private_key": std::fs::read_to_string(&pem).unwrap(),
        })
        .to_string(),
    )
    .unwrap();
    key
}

/// `config check` of `config` with only `vars` in the environment.
fn check_with_only(config: &Path, vars: &[(String, String)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exhibit"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .arg("--config")
        .arg(config)
        .args(["config", "check"]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("the exhibit binary runs")
}

#[test]
fn every_shipped_config_loads_with_only_the_variables_its_header_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root().join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let vars: Vec<(String, String)> = header_variables(&text)
            .into_iter()
            .map(|(k, v)| {
                if k.ends_with("_FILE") {
                    let key = service_account_key(dir.path());
                    (k, key.display().to_string())
                } else {
                    (k, format!("test-value-of-{}", v.len()))
                }
            })
            .collect();
        let out = check_with_only(file, &vars);
        assert_eq!(
            code(&out),
            0,
            "{} with only {:?}:\n{}",
            file.display(),
            vars.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            text_of(&out)
        );
        assert!(text_of(&out).contains(": OK"), "{}", text_of(&out));
        checked.push(file.file_name().unwrap().to_string_lossy().to_string());
    }
    assert_eq!(
        checked,
        ["aws.toml", "github.toml", "local.toml", "saas.toml"]
    );

    // The Helm chart's default config needs no variable at all.
    let values = std::fs::read_to_string(root().join("deploy/helm/exhibit/values.yaml")).unwrap();
    let chart_config: String = values
        .lines()
        .skip_while(|l| !l.starts_with("config: |"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("  "))
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    assert!(chart_config.contains("[agent]"), "{chart_config}");
    let path = dir.path().join("chart.toml");
    std::fs::write(&path, &chart_config).unwrap();
    let out = check_with_only(&path, &[]);
    assert_eq!(code(&out), 0, "{}", text_of(&out));
    assert!(text_of(&out).contains("1 enabled"), "{}", text_of(&out));
}

fn text_of(o: &std::process::Output) -> String {
    text(o)
}

#[test]
fn init_then_check_then_collect_then_verify_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exhibit.toml");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_exhibit"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("EXHIBIT_STORE")
            .env_remove("EXHIBIT_CONFIG")
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .output()
            .expect("the exhibit binary runs")
    };
    let out = run(&["init"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("# [[collectors]]\n# name = \"iam-users\""),
        "cloud sections commented"
    );
    // It never overwrites.
    let out = run(&["init"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("never overwrites"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);

    let out = run(&["config", "check"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = run(&["collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("ok       shell-accounts/") && t.contains("ok       os-release/"),
        "{t}"
    );
    let out = run(&["verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("INTACT"), "{}", text(&out));
    let out = run(&[
        "show",
        "--json",
        &format!("shell-accounts/{}", stream_key(&t, "shell-accounts")),
    ]);
    let shown: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    let accounts = shown["payload"]["output"]
        .as_array()
        .expect("the accounts, as JSON");
    assert!(
        accounts.iter().any(|a| a["uid"] == 0),
        "root is a login account: {accounts:?}"
    );
}

/// The key of `collector`'s stream in `collect`'s output.
fn stream_key(out: &str, collector: &str) -> String {
    let prefix = format!("{collector}/");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {collector} stream in {out}"))
        .to_string()
}

#[test]
fn kinds_lists_every_kind_of_the_registry() {
    let ws = Workspace::new("");
    let out = ws.run(&["kinds", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    let registry: Vec<&str> = exhibit::collect::kinds().map(|k| k.name).collect();
    assert_eq!(names, registry);
    for k in &listed {
        assert!(k["collects"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
        assert!(
            k["permissions"].as_str().is_some_and(|s| !s.is_empty()),
            "{k}"
        );
        assert!(!k["settings"].as_array().unwrap().is_empty(), "{k}");
    }
    let git = listed.iter().find(|k| k["kind"] == "git").unwrap();
    assert_eq!(git["criteria"], serde_json::json!(["CC8.1"]));
    assert_eq!(git["required"], serde_json::json!(["repository"]));
    let http = listed.iter().find(|k| k["kind"] == "http").unwrap();
    assert!(
        http["definitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "pagerduty")
    );
    let out = ws.run(&["kinds"]);
    assert_eq!(code(&out), 0);
    assert!(text(&out).contains("permissions"), "{}", text(&out));
}

#[test]
fn completions_and_the_manual_page_name_the_subcommands() {
    let ws = Workspace::new("");
    for shell in ["bash", "zsh", "fish"] {
        let out = ws.run(&["completions", shell]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in ["collect", "verify", "report", "kinds", "init"] {
            assert!(script.contains(sub), "{shell}: {sub} missing");
        }
    }
    let out = ws.run(&["completions", "bash"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("complete -F"),
        "a bash completion"
    );
    let out = ws.run(&["man"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH exhibit"),
        "{page}"
    );
    assert!(page.contains("verify") && page.contains("config"), "{page}");
}

#[test]
fn check_connect_reaches_each_source_and_names_the_one_that_fails() {
    let config = format!(
        "{}\n[[collectors]]\nname = \"broken\"\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"sh\", \"-c\", \"echo refused >&2; exit 3\"]\n",
        cat("users", "users.json", "@daily")
    );
    let ws = Workspace::new(&config);
    std::fs::write(ws.path().join("users.json"), "{}").unwrap();
    let out = ws.run(&["config", "check"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = ws.run(&["config", "check", "--connect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let t = text(&out);
    assert!(
        t.lines()
            .any(|l| l.trim_start().starts_with("ok") && l.contains("users")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.contains("FAILED") && l.contains("broken")),
        "{t}"
    );
    assert!(!ws.store().exists(), "nothing is recorded");
}

#[test]
fn the_review_counts_coverage_as_verify_does() {
    let ws = Workspace::new(&cat("minutely", "users.json", "* * * * *"));
    std::fs::write(ws.path().join("users.json"), r#"{"users": ["alice"]}"#).unwrap();
    assert_eq!(code(&ws.run(&["collect"])), 0);
    let out = ws.run(&["verify", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = ws.run(&["report", "--json", "--since", "24h"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    let verify_cov = &verdict["streams"][0]["coverage"];
    let review_cov = &review["streams"][0]["coverage"];
    // Both periods end now (the two commands ran moments apart), and a
    // stream inside a run's grace owes nothing yet: verify says so with no
    // coverage, the review with zero counts. Every count is the same.
    let counts = |c: &Value| {
        [
            "expected",
            "ok",
            "partial",
            "failed",
            "missed",
            "unaccounted",
        ]
        .map(|k| c[k].as_u64().unwrap_or(0))
    };
    assert_eq!(
        counts(review_cov),
        counts(verify_cov),
        "the review and verify agree: {review_cov} {verdict:#}"
    );
    // A minute-old stream owes no slots of the day before.
    assert!(counts(review_cov)[0] <= 2, "{review_cov}");
}

#[test]
fn the_review_leads_with_what_matters_and_folds_repeats() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "First commit"],
    );
    let config = format!(
        "{}\n{}\n[[collectors]]\nname = \"changes\"\nkind = \"git\"\nschedule = \"@daily\"\nrepository = \"{}\"\n",
        cat("accounts", "passwd.json", "@daily"),
        cat("flaky", "missing.json", "@daily"),
        repo.path().display()
    );
    let ws = Workspace::new(&config);
    let passwd = |extra: &str| {
        std::fs::write(
            ws.path().join("passwd.json"),
            format!(r#"{{"accounts": [{{"user": "root", "uid": 0}}, {{"user": "alice", "uid": 1000}}{extra}]}}"#),
        )
        .unwrap()
    };
    passwd("");
    for _ in 0..3 {
        ws.run(&["collect"]);
    }
    passwd(r#", {"user": "toor", "uid": 0}"#);
    git(
        repo.path(),
        &[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "Turn off the audit log retention policy for the billing database cluster",
        ],
    );
    assert_eq!(code(&ws.run(&["collect"])), 1, "flaky fails");
    let out = ws.run(&["report", "--format", "md"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let md = String::from_utf8(out.stdout).unwrap();
    let highlights: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("## Highlights"))
        .filter(|l| l.starts_with("- **"))
        .collect();
    assert!(
        highlights[0].starts_with("- **high**")
            && highlights
                .iter()
                .take_while(|h| h.starts_with("- **high**"))
                .any(|h| h.contains("uid 0") && h.contains("toor")),
        "a new uid-0 account is high, among the first: {highlights:#?}"
    );
    let severities: Vec<bool> = highlights
        .iter()
        .map(|h| h.starts_with("- **high**"))
        .collect();
    let mut sorted = severities.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(severities, sorted, "high before medium: {highlights:#?}");
    let flaky: Vec<&&str> = highlights
        .iter()
        .filter(|h| h.contains("missing.json"))
        .collect();
    assert_eq!(
        flaky.len(),
        1,
        "one highlight for a repeated error: {highlights:#?}"
    );
    assert!(flaky[0].contains("4 collections failed"), "{flaky:?}");
    assert!(
        md.contains("\"subject\":\"Turn off the audit log retention policy for the billing database cluster\""),
        "the commit's subject is shown whole: {md}"
    );

    // A directory gets a new dated page each time, never overwritten.
    let reports = ws.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    for _ in 0..2 {
        let out = ws.run(&["report", "--out", reports.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", text(&out));
    }
    let mut pages: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    pages.sort();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(
        pages[0].starts_with("exhibit-review-") && pages[0].ends_with(".html"),
        "{pages:?}"
    );
}
