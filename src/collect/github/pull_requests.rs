//! `kind = "github-pull-requests"`: the CC8.1 change population — every
//! pull request merged into a default branch in the window since the
//! previous record (or `initial_window` on the first run), with its
//! author, merger, the approving reviews given by someone other than the
//! author before the merge, and the result of each check the branch
//! requires (check runs and commit statuses on the merged head). A pull
//! request merged without such an approval is flagged, as is one whose
//! required checks did not pass.
//!
//! The window's end is the moment the collection started; the next record
//! starts there. A record with failures does not move the window on, so a
//! repository that could not be read is covered again next time rather
//! than leaving a gap in the population.
//!
//! A pull request whose follow-up calls (the pull itself, its reviews,
//! its checks) fail stays in the population with what could be read and a
//! `missing` list naming what could not; the record is then `partial`. The
//! population is never shorter than the listing because a detail failed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::api::{Api, ApiError, seg};
use super::types::{CheckRuns, CombinedStatus, Protection, Pull, Repo, Review, Rule};
use super::{Common, Kind, per_repo};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // A pull request's number is unique only within its repository; its
    // approvals by review, its check runs by name, its statuses by context.
    identities: &[
        &["repository", "number"],
        &["repository"],
        &["number"],
        &["name"],
        &["review_id"],
        &["context"],
    ],
    windowed: &[
        "window",
        "count",
        "flagged_count",
        "flagged",
        "pull_requests",
    ],
    ..super::spec("github-pull-requests", &["CC8.1"], |s| {
        super::build_kind(s, &["initial_window", "checks"], |x| {
            Box::new(PullRequests {
                initial_window: x
                    .initial_window
                    .unwrap_or(Duration::from_secs(90 * 24 * 3600)),
                checks: x.checks.unwrap_or(true),
            })
        })
    })
};

struct PullRequests {
    initial_window: Duration,
    checks: bool,
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The window's start: the previous record's cursor, else the initial
/// window back from `until`.
fn since(previous: Option<&Previous>, until: DateTime<Utc>, initial: Duration) -> DateTime<Utc> {
    previous
        .and_then(|p| p.cursor.as_ref())
        .and_then(|c| c.get("merged_since")?.as_str().and_then(time))
        .unwrap_or_else(|| until - chrono::Duration::from_std(initial).unwrap_or_default())
}

#[async_trait]
impl Kind for PullRequests {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let until = ctx.now();
        let since = since(previous, until, self.initial_window);
        let mut failures = Vec::new();
        let repos = super::covered_repos(api, common, ctx, &mut failures).await?;
        let results = super::for_each(api, &repos, |r| {
            self.repo(api, common, ctx, r, since, until)
        })
        .await;
        let mut pulls = Vec::new();
        for (r, res) in repos.iter().zip(results) {
            if let Some((mut p, mut missing)) =
                per_repo(&r.name, "pull requests", res, &mut failures)?
            {
                pulls.append(&mut p);
                failures.append(&mut missing);
            }
        }
        let flagged: Vec<String> = pulls
            .iter()
            .filter(|p| p["independent_approval"] == json!(false))
            .map(|p| format!("{}#{}", p["repository"].as_str().unwrap_or(""), p["number"]))
            .collect();
        let next_since = if failures.is_empty() { until } else { since };
        Ok(Snapshot {
            payload: json!({
                "org": common.org,
                "window": { "since": since.to_rfc3339(), "until": until.to_rfc3339() },
                "count": pulls.len(),
                "flagged_count": flagged.len(),
                "flagged": flagged,
                "pull_requests": pulls,
            }),
            cursor: Some(json!({ "merged_since": next_since.to_rfc3339() })),
            failures,
        })
    }
}

/// A follow-up call's value, or `None` with the call named in `missing`;
/// errors that end the whole collection are passed up.
fn follow_up<T>(
    what: &str,
    r: Result<T, ApiError>,
    missing: &mut Vec<String>,
) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.ends_collection() => Err(e),
        Err(e) => {
            missing.push(format!("{what}: {e}"));
            Ok(None)
        }
    }
}

impl PullRequests {
    /// The merged pull requests of one repository in the window, and what
    /// could not be read of them (`repo#N: what: error`).
    async fn repo(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        r: &Repo,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(Vec<Value>, Vec<String>), ApiError> {
        let Some(branch) = r.default_branch.as_deref() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let base = format!("/repos/{}/{}", seg(&common.org), seg(&r.name));
        // Sorted by last update, newest first: a pull request merged in the
        // window was updated at or after `since`, so the listing can stop
        // at the first page that reaches past it.
        let listed: Vec<Pull> = api
            .paginate_while(
                ctx,
                &format!(
                    "{base}/pulls?state=closed&base={}&sort=updated&direction=desc",
                    seg(branch)
                ),
                |page: &[Pull]| {
                    page.last()
                        .and_then(|p| time(&p.updated_at))
                        .is_some_and(|t| t >= since)
                },
            )
            .await?;
        let mut merged: Vec<&Pull> = listed
            .iter()
            .filter(|p| {
                p.merged_at
                    .as_deref()
                    .and_then(time)
                    .is_some_and(|m| m >= since && m < until)
            })
            .collect();
        merged.sort_by_key(|p| p.number);
        let mut failures = Vec::new();
        if merged.is_empty() {
            return Ok((Vec::new(), failures));
        }
        // The checks the branch requires now (GitHub keeps no history of
        // its protection); read only when there is something to judge.
        let required = if self.checks {
            let mut missing = Vec::new();
            let required = follow_up(
                "required checks",
                required_checks(api, ctx, &base, branch).await,
                &mut missing,
            )?;
            failures.extend(missing.iter().map(|m| format!("{}: {m}", r.name)));
            required.flatten()
        } else {
            None
        };
        let mut out = Vec::new();
        for p in merged {
            let mut missing = Vec::new();
            // The listing leaves out who merged; the single pull has it.
            let full: Option<Pull> = follow_up(
                "pull request",
                api.get(ctx, &format!("{base}/pulls/{}", p.number)).await,
                &mut missing,
            )?;
            let reviews: Option<Vec<Review>> = follow_up(
                "reviews",
                api.paginate(ctx, &format!("{base}/pulls/{}/reviews", p.number))
                    .await,
                &mut missing,
            )?;
            let pull = full.as_ref().unwrap_or(p);
            let checks = if self.checks {
                let sha = seg(&pull.head.sha);
                let runs = follow_up(
                    "check runs",
                    api.get(
                        ctx,
                        &format!("{base}/commits/{sha}/check-runs?per_page=100"),
                    )
                    .await,
                    &mut missing,
                )?;
                let statuses = follow_up(
                    "commit statuses",
                    api.get(ctx, &format!("{base}/commits/{sha}/status?per_page=100"))
                        .await,
                    &mut missing,
                )?;
                runs.zip(statuses).map(|(runs, statuses)| Checks {
                    runs,
                    statuses,
                    required: required.clone(),
                })
            } else {
                None
            };
            let mut v = judge(&r.name, pull, reviews.as_deref(), checks.as_ref());
            if !missing.is_empty() {
                failures.extend(
                    missing
                        .iter()
                        .map(|m| format!("{}#{}: {m}", r.name, p.number)),
                );
                v["missing"] = json!(missing);
            }
            out.push(v);
        }
        Ok((out, failures))
    }
}

/// The status checks `branch` requires, from classic protection and
/// rulesets; `None` when the token may not read the protection (it needs
/// administration read access), which the payload then shows as unknown.
async fn required_checks(
    api: &Api,
    ctx: &Context,
    base: &str,
    branch: &str,
) -> Result<Option<BTreeSet<String>>, ApiError> {
    let classic = match api
        .get_opt::<Protection>(ctx, &format!("{base}/branches/{}/protection", seg(branch)))
        .await
    {
        Ok(c) => c,
        Err(ApiError::Forbidden { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let rules: Vec<Rule> = api
        .paginate(ctx, &format!("{base}/rules/branches/{}", seg(branch)))
        .await?;
    Ok(Some(super::branch_protection::required_checks(
        classic.as_ref(),
        &rules,
    )))
}

/// What the checks of a merged head said.
pub(crate) struct Checks {
    pub runs: CheckRuns,
    pub statuses: CombinedStatus,
    /// The branch's required checks, when visible.
    pub required: Option<BTreeSet<String>>,
}

impl Checks {
    /// The result of one required check: a check run of that name, else a
    /// commit status of that context, else `missing`.
    fn result(&self, name: &str) -> (String, bool) {
        if let Some(r) = self.runs.check_runs.iter().find(|r| r.name == name) {
            let c = r.conclusion.clone().unwrap_or_else(|| r.status.clone());
            let ok = r.status == "completed"
                && matches!(
                    r.conclusion.as_deref(),
                    Some("success" | "neutral" | "skipped")
                );
            return (c, ok);
        }
        if let Some(s) = self.statuses.statuses.iter().find(|s| s.context == name) {
            return (s.state.clone(), s.state == "success");
        }
        ("missing".into(), false)
    }

    fn view(&self) -> (Value, bool) {
        let required = self.required.as_ref().map(|req| {
            req.iter()
                .map(|name| {
                    let (result, passed) = self.result(name);
                    (name.clone(), json!({"result": result, "passed": passed}))
                })
                .collect::<serde_json::Map<_, _>>()
        });
        let failing = required
            .as_ref()
            .is_some_and(|m| m.values().any(|v| v["passed"] == json!(false)));
        let v = json!({
            "required": required,
            "runs_total": self.runs.total_count,
            "runs": self.runs.check_runs.iter().map(|r| json!({"name": r.name, "status": r.status, "conclusion": r.conclusion})).collect::<Vec<_>>(),
            "statuses": self.statuses.statuses.iter().map(|s| json!({"context": s.context, "state": s.state})).collect::<Vec<_>>(),
            "combined_status": self.statuses.state,
        });
        (v, failing)
    }
}

/// The evidence for one merged pull request, and its flags.
#[cfg(test)]
pub(crate) fn assess(repo: &str, p: &Pull, reviews: &[Review], checks: Option<&Checks>) -> Value {
    judge(repo, p, Some(reviews), checks)
}

/// [`assess`], with reviews that may not have been read: then approval is
/// unknown (null), neither given nor missing, and no approval flag is
/// raised on a guess.
fn judge(repo: &str, p: &Pull, reviews: Option<&[Review]>, checks: Option<&Checks>) -> Value {
    let known = reviews.is_some();
    let reviews = reviews.unwrap_or_default();
    let author = p.user.as_ref().map(|u| u.login.as_str());
    let merged_at = p.merged_at.as_deref().and_then(time);
    // Each reviewer's last decisive review before the merge: a later
    // "changes requested", or a dismissal, cancels an earlier approval.
    let mut last: BTreeMap<&str, &Review> = BTreeMap::new();
    for r in reviews {
        let (Some(user), Some(at)) = (r.user.as_ref(), r.submitted_at.as_deref().and_then(time))
        else {
            continue;
        };
        if Some(user.login.as_str()) == author || merged_at.is_none_or(|m| at > m) {
            continue;
        }
        if matches!(
            r.state.as_str(),
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
        ) {
            last.insert(user.login.as_str(), r);
        }
    }
    let approvals: Vec<&Review> = last
        .values()
        .copied()
        .filter(|r| r.state == "APPROVED")
        .collect();
    let merged_by = p.merged_by.as_ref().map(|u| u.login.as_str());
    let mut flags = Vec::new();
    if known && approvals.is_empty() {
        flags.push("merged_without_independent_approval");
    }
    if merged_by.is_some() && merged_by == author {
        flags.push("self_merged");
    }
    let on_head = approvals
        .iter()
        .any(|r| r.commit_id.as_deref() == Some(p.head.sha.as_str()));
    if !approvals.is_empty() && !on_head {
        flags.push("approved_before_last_push");
    }
    let checks = checks.map(Checks::view).map(|(v, failing)| {
        if failing {
            flags.push("required_checks_not_passing");
        }
        v
    });
    let unknown_or = |v: Value| if known { v } else { Value::Null };
    json!({
        "repository": repo,
        "number": p.number,
        "title": p.title,
        "url": p.html_url,
        "author": author,
        "merged_by": merged_by,
        "merged_at": p.merged_at,
        "base": p.base.name,
        "head_sha": p.head.sha,
        "merge_commit_sha": p.merge_commit_sha,
        "approvals": unknown_or(json!(approvals.iter().map(|r| json!({
            "review_id": r.id,
            "reviewer": r.user.as_ref().map(|u| &u.login),
            "author_association": r.author_association,
            "submitted_at": r.submitted_at,
            "commit_id": r.commit_id,
        })).collect::<Vec<_>>())),
        "reviews_before_merge": unknown_or(json!(reviews.iter().filter(|r| r.submitted_at.as_deref().and_then(time).zip(merged_at).is_some_and(|(a, m)| a <= m)).count())),
        "independent_approval": unknown_or(json!(!approvals.is_empty())),
        "checks": checks,
        "flags": flags,
    })
}
