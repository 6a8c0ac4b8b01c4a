//! `kind = "git"`: change-management evidence from a local repository.
//!
//! Each record holds the commits since the previous record (or a configured
//! window on the first run): authors, committers, dates, parents (so merges
//! show), signature status, and the tags. The git CLI is used rather than a
//! library so that signature checks follow the user's own git setup.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CollectError, Collector, Context, KindSpec, Previous, Snapshot, Target};
use crate::config::{ConfigError, Settings};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    name: "git",
    criteria: &["CC8.1"],
    secrets: &[],
    build,
    windowed: &["window", "summary", "commits"],
    // Commits by their hash, tags by name.
    identities: &[&["sha"], &["name"]],
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GitSettings {
    /// The repository, relative to the config file.
    repository: PathBuf,
    /// The ref whose history is collected.
    #[serde(default = "default_ref", rename = "ref")]
    reference: String,
    /// How far back the first record looks.
    #[serde(default = "default_since", with = "crate::config::duration")]
    initial_window: Duration,
    /// Most commits in one record; more is recorded as truncated.
    #[serde(default = "default_max")]
    max_commits: usize,
    /// The stream key; the repository's directory name unless given.
    stream_key: Option<String>,
}

fn default_ref() -> String {
    "HEAD".into()
}
fn default_since() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}
fn default_max() -> usize {
    10_000
}

struct GitCollector {
    repo: PathBuf,
    reference: String,
    initial_window: Duration,
    max_commits: usize,
    key: String,
}

fn build(settings: &Settings) -> Result<Box<dyn Collector>, ConfigError> {
    let s: GitSettings = settings.parse()?;
    let repo = settings.base_dir.join(&s.repository);
    let key = match s.stream_key {
        Some(k) => k,
        None => {
            let abs = std::fs::canonicalize(&repo).unwrap_or_else(|_| repo.clone());
            crate::evidence::sanitize_segment(
                &abs.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "repository".into()),
            )
        }
    };
    crate::evidence::validate_stream_id(&key).map_err(|m| settings.error("stream_key", m))?;
    if s.reference.starts_with('-') {
        return Err(settings.error("ref", "a ref may not start with `-`"));
    }
    Ok(Box::new(GitCollector {
        repo,
        reference: s.reference,
        initial_window: s.initial_window,
        max_commits: s.max_commits,
        key,
    }))
}

/// Field and record separators that cannot occur in git's output fields.
const FS: char = '\u{1f}';
const RS: char = '\u{1e}';

impl GitCollector {
    async fn git(&self, ctx: &Context, args: &[&str]) -> Result<String, CollectError> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("-C")
            .arg(&self.repo)
            .args(["-c", "core.quotepath=off", "-c", "log.showSignature=false"])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .kill_on_drop(true);
        let out = tokio::select! {
            r = cmd.output() => r.map_err(|e| CollectError::fatal(format!("cannot run git: {e}")))?,
            _ = ctx.cancel.cancelled() => return Err(CollectError::Cancelled),
        };
        if !out.status.success() {
            return Err(CollectError::fatal(format!(
                "git {} in {}: {}",
                args.first().copied().unwrap_or(""),
                self.repo.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn is_empty_repository(&self, ctx: &Context) -> bool {
        self.git(ctx, &["rev-parse", "--git-dir"]).await.is_ok()
            && self
                .git(ctx, &["rev-list", "-n1", "--all"])
                .await
                .is_ok_and(|s| s.trim().is_empty())
    }

    async fn is_ancestor(&self, ctx: &Context, old: &str, new: &str) -> bool {
        self.git(ctx, &["merge-base", "--is-ancestor", old, new])
            .await
            .is_ok()
    }
}

#[async_trait]
impl Collector for GitCollector {
    async fn targets(&self, _ctx: &Context) -> Result<Vec<Target>, CollectError> {
        Ok(vec![Target {
            key: self.key.clone(),
            source: json!({
                "host": crate::host_name(),
                "repository": self.repo.display().to_string(),
            }),
        }])
    }

    async fn collect(
        &self,
        ctx: &Context,
        _target: &Target,
        previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let head = match self
            .git(
                ctx,
                &[
                    "rev-parse",
                    "--verify",
                    &format!("{}^{{commit}}", self.reference),
                ],
            )
            .await
        {
            Ok(h) => h.trim().to_string(),
            // A repository without commits yet is a fact, not a failure.
            Err(_) if self.is_empty_repository(ctx).await => {
                return Ok(Snapshot::new(json!({
                    "repository": {"path": self.repo.display().to_string(), "ref": self.reference, "head": null},
                    "summary": {"commits": 0, "merges": 0, "unsigned": 0, "truncated": false},
                    "commits": [],
                    "tags": [],
                })));
            }
            Err(e) => return Err(e),
        };
        let prev_head = previous
            .and_then(|p| p.cursor.as_ref())
            .and_then(|c| c.get("head"))
            .and_then(Value::as_str)
            .map(str::to_string);

        let format = format!(
            "--format=%H{FS}%P{FS}%an{FS}%ae{FS}%aI{FS}%cn{FS}%ce{FS}%cI{FS}%G?{FS}%GK{FS}%s{RS}"
        );
        let max = format!("--max-count={}", self.max_commits + 1);
        let (window, log) = match prev_head {
            Some(p) if self.is_ancestor(ctx, &p, &head).await => {
                let range = format!("{p}..{head}");
                let log = self.git(ctx, &["log", &format, &max, &range, "--"]).await?;
                (
                    json!({"kind": "since_previous_record", "from_commit": p, "to_commit": head}),
                    log,
                )
            }
            other => {
                let since =
                    ctx.now() - chrono::Duration::from_std(self.initial_window).unwrap_or_default();
                let since_arg = format!("--since={}", since.to_rfc3339());
                let log = self
                    .git(ctx, &["log", &format, &max, &since_arg, &head, "--"])
                    .await?;
                let kind = if other.is_some() {
                    // History was rewritten under the previous record: say so.
                    "previous_head_not_an_ancestor"
                } else {
                    "initial_window"
                };
                (
                    json!({"kind": kind, "since": since.to_rfc3339(), "to_commit": head, "previous_head": other}),
                    log,
                )
            }
        };

        let mut commits: Vec<Value> = log
            .split(RS)
            .map(|r| r.trim_start_matches('\n'))
            .filter(|r| !r.is_empty())
            .filter_map(parse_commit)
            .collect();
        let truncated = commits.len() > self.max_commits;
        commits.truncate(self.max_commits);
        let merges = commits
            .iter()
            .filter(|c| c["parents"].as_array().is_some_and(|p| p.len() > 1))
            .count();
        let unsigned = commits
            .iter()
            .filter(|c| c["signature"]["status"] == "none")
            .count();

        let tags_raw = self
            .git(ctx, &[
                "for-each-ref",
                "refs/tags",
                &format!("--format=%(refname:short){FS}%(objectname){FS}%(*objectname){FS}%(taggername){FS}%(taggerdate:iso-strict){FS}%(creatordate:iso-strict)"),
            ])
            .await?;
        let tags: Vec<Value> = tags_raw
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(FS).collect();
                let get = |i: usize| f.get(i).copied().filter(|s| !s.is_empty());
                json!({
                    "name": get(0),
                    "commit": get(2).or(get(1)),
                    "annotated": get(2).is_some(),
                    "tagger": get(3),
                    "date": get(4).or(get(5)),
                })
            })
            .collect();
        let branch = self
            .git(ctx, &["rev-parse", "--abbrev-ref", &self.reference])
            .await
            .map(|s| s.trim().to_string())
            .ok();
        let remotes = self.git(ctx, &["remote", "-v"]).await.unwrap_or_default();
        let mut remote_urls: Vec<String> = remotes
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(redact_url)
            .collect();
        remote_urls.dedup();

        let summary = json!({
            "commits": commits.len(),
            "merges": merges,
            "unsigned": unsigned,
            "truncated": truncated,
        });
        Ok(Snapshot {
            payload: json!({
                "repository": {
                    "path": self.repo.display().to_string(),
                    "ref": self.reference,
                    "branch": branch,
                    "head": head,
                    "remotes": remote_urls,
                },
                "window": window,
                "summary": summary,
                "commits": commits,
                "tags": tags,
            }),
            cursor: Some(json!({ "head": head })),
            failures: Vec::new(),
        })
    }
}

fn parse_commit(record: &str) -> Option<Value> {
    let f: Vec<&str> = record.split(FS).collect();
    if f.len() < 11 {
        return None;
    }
    let status = match f[8] {
        "G" => "good",
        "U" => "good_untrusted",
        "X" | "Y" => "good_expired",
        "R" => "revoked_key",
        "B" => "bad",
        "E" => "unverifiable",
        _ => "none",
    };
    Some(json!({
        "sha": f[0],
        "parents": f[1].split_whitespace().collect::<Vec<_>>(),
        "author": {"name": f[2], "email": f[3], "date": f[4]},
        "committer": {"name": f[5], "email": f[6], "date": f[7]},
        "signature": {"status": status, "key": (!f[9].is_empty()).then_some(f[9])},
        "subject": f[10].trim_end(),
    }))
}

/// Drops credentials from a remote URL (`https://user:token@host/…`).
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some((_, host)) = authority.rsplit_once('@') {
            let sep = if rest.contains('/') { "/" } else { "" };
            return format!("{scheme}://{host}{sep}{path}");
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_remote_urls() {
        assert_eq!(
            redact_url("https://x-access-token:ghp_secret@github.com/acme/app.git"),
            "https://github.com/acme/app.git"
        );
        assert_eq!(
            redact_url("git@github.com:acme/app.git"),
            "git@github.com:acme/app.git"
        );
        assert_eq!(redact_url("https://host/path"), "https://host/path");
    }
}
