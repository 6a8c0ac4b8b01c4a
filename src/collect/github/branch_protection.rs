//! `kind = "github-branch-protection"`: what protects each repository's
//! default branch — classic branch protection and the rulesets (repository
//! and organisation level) that GitHub says are in effect on it — folded
//! into one `effective` view. A default branch with neither is listed in
//! `unprotected`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{Api, ApiError, seg};
use super::types::{Protection, Repo, Rule};
use super::{Common, Kind, per_repo};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Repositories by name, rules by ruleset and type (a ruleset brings at
    // most one rule of each); the rules' parameters, as GitHub writes them,
    // hold required checks by `context`, workflows by `sha`, and other
    // lists by GitHub's usual `name`, `id` or `key`.
    identities: &[
        &["ruleset_id", "type"],
        &["repository"],
        &["sha"],
        &["name"],
        &["id"],
        &["key"],
        &["context"],
    ],
    ..super::spec("github-branch-protection", &["CC6.1", "CC8.1"], |s| {
        super::build_kind(s, &[], |_| Box::new(BranchProtection))
    })
};

struct BranchProtection;

/// What was read for one repository.
struct Read {
    classic: Result<Option<Protection>, ApiError>,
    rules: Result<Vec<Rule>, ApiError>,
}

#[async_trait]
impl Kind for BranchProtection {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let mut failures = Vec::new();
        let repos = super::covered_repos(api, common, ctx, &mut failures).await?;
        let org = seg(&common.org);
        let reads = super::for_each(api, &repos, |r| {
            let org = org.clone();
            async move {
                let branch = r.default_branch.as_deref()?;
                let base = format!("/repos/{org}/{}", seg(&r.name));
                let classic = api
                    .get_opt::<Protection>(
                        ctx,
                        &format!("{base}/branches/{}/protection", seg(branch)),
                    )
                    .await;
                let rules = api
                    .paginate::<Rule>(ctx, &format!("{base}/rules/branches/{}", seg(branch)))
                    .await;
                Some(Read { classic, rules })
            }
        })
        .await;
        let mut rows = Vec::new();
        let mut unprotected = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        for (r, read) in repos.iter().zip(reads) {
            let Some(read) = read else {
                rows.push(json!({"repository": r.name, "default_branch": null, "protected": null}));
                continue;
            };
            let classic = per_repo(&r.name, "branch protection", read.classic, &mut failures)?;
            let rules = per_repo(&r.name, "rulesets", read.rules, &mut failures)?;
            let row = row(r, classic, rules);
            match row["protected"].as_bool() {
                Some(false) => {
                    unprotected.insert(r.name.clone());
                }
                Some(true) => {}
                None => {
                    unknown.insert(r.name.clone());
                }
            }
            rows.push(row);
        }
        Ok(Snapshot {
            payload: json!({
                "org": common.org,
                "count": rows.len(),
                "unprotected": unprotected,
                "unknown": unknown,
                "repositories": rows,
            }),
            cursor: None,
            failures,
        })
    }
}

/// One repository's record. `classic` is `None` when it could not be read,
/// `Some(None)` when the branch has no classic protection.
fn row(r: &Repo, classic: Option<Option<Protection>>, rules: Option<Vec<Rule>>) -> Value {
    let known = classic.is_some() && rules.is_some();
    let classic = classic.flatten();
    let rules = rules.unwrap_or_default();
    let has_any = classic.is_some() || !rules.is_empty();
    // Protected if anything protects it; unknown only if nothing was seen
    // and something could not be read.
    let protected = if has_any {
        Some(true)
    } else if known {
        Some(false)
    } else {
        None
    };
    json!({
        "repository": r.name,
        "default_branch": r.default_branch,
        "protected": protected,
        "classic": classic.as_ref().map(classic_view),
        "rules": rules.iter().map(|x| json!({
            "type": x.kind,
            "ruleset_id": x.ruleset_id,
            "source_type": x.ruleset_source_type,
            "source": x.ruleset_source,
            "parameters": x.parameters,
        })).collect::<Vec<_>>(),
        "effective": effective(classic.as_ref(), &rules),
    })
}

fn enabled(e: &Option<super::types::Enabled>) -> bool {
    e.as_ref().and_then(|e| e.enabled).unwrap_or(false)
}

fn classic_view(p: &Protection) -> Value {
    json!({
        "required_pull_request_reviews": p.required_pull_request_reviews.as_ref().map(|r| json!({
            "required_approving_review_count": r.required_approving_review_count,
            "dismiss_stale_reviews": r.dismiss_stale_reviews,
            "require_code_owner_reviews": r.require_code_owner_reviews,
            "require_last_push_approval": r.require_last_push_approval,
        })),
        "required_status_checks": p.required_status_checks.as_ref().map(|s| json!({
            "strict": s.strict,
            "contexts": contexts(s),
        })),
        "enforce_admins": enabled(&p.enforce_admins),
        "required_signatures": p.required_signatures.as_ref().map(|e| e.enabled),
        "required_linear_history": enabled(&p.required_linear_history),
        "allow_force_pushes": enabled(&p.allow_force_pushes),
        "allow_deletions": enabled(&p.allow_deletions),
        "required_conversation_resolution": enabled(&p.required_conversation_resolution),
        "lock_branch": enabled(&p.lock_branch),
        "push_restrictions": p.restrictions.is_some(),
    })
}

fn contexts(s: &super::types::StatusChecks) -> BTreeSet<String> {
    s.contexts
        .iter()
        .cloned()
        .chain(s.checks.iter().map(|c| c.context.clone()))
        .collect()
}

fn param<'a>(rule: &'a Rule, key: &str) -> Option<&'a Value> {
    rule.parameters.as_ref()?.get(key)
}

/// The status checks a branch requires, from classic protection and from
/// `required_status_checks` rules alike.
pub(crate) fn required_checks(c: Option<&Protection>, rules: &[Rule]) -> BTreeSet<String> {
    let mut checks: BTreeSet<String> = c
        .and_then(|c| c.required_status_checks.as_ref())
        .map(contexts)
        .unwrap_or_default();
    for r in rules.iter().filter(|r| r.kind == "required_status_checks") {
        if let Some(list) = param(r, "required_status_checks").and_then(Value::as_array) {
            checks.extend(
                list.iter()
                    .filter_map(|x| x.get("context")?.as_str().map(str::to_string)),
            );
        }
    }
    checks
}

/// The union of classic protection and rules: a requirement is in effect
/// if either source imposes it (GitHub enforces both, layered).
fn effective(c: Option<&Protection>, rules: &[Rule]) -> Value {
    let of = |t: &'static str| rules.iter().filter(move |r| r.kind == t);
    let reviews = c.and_then(|c| c.required_pull_request_reviews.as_ref());
    let pr_rules: Vec<&Rule> = of("pull_request").collect();
    let rule_flag = |k: &str| {
        pr_rules
            .iter()
            .any(|r| param(r, k).and_then(Value::as_bool) == Some(true))
    };
    let count = pr_rules
        .iter()
        .filter_map(|r| param(r, "required_approving_review_count").and_then(Value::as_i64))
        .chain(reviews.and_then(|r| r.required_approving_review_count))
        .max();
    let checks = required_checks(c, rules);
    let strict = c
        .and_then(|c| c.required_status_checks.as_ref())
        .and_then(|s| s.strict)
        .unwrap_or(false)
        || of("required_status_checks").any(|r| {
            param(r, "strict_required_status_checks_policy").and_then(Value::as_bool) == Some(true)
        });
    json!({
        "pull_request_required": reviews.is_some() || !pr_rules.is_empty(),
        "required_approving_review_count": count.unwrap_or(0),
        "dismiss_stale_reviews": reviews.and_then(|r| r.dismiss_stale_reviews) == Some(true) || rule_flag("dismiss_stale_reviews_on_push"),
        "require_code_owner_reviews": reviews.and_then(|r| r.require_code_owner_reviews) == Some(true) || rule_flag("require_code_owner_review"),
        "require_last_push_approval": reviews.and_then(|r| r.require_last_push_approval) == Some(true) || rule_flag("require_last_push_approval"),
        "required_status_checks": checks,
        "strict_status_checks": strict,
        "signed_commits": c.is_some_and(|c| enabled(&c.required_signatures)) || of("required_signatures").next().is_some(),
        "linear_history": c.is_some_and(|c| enabled(&c.required_linear_history)) || of("required_linear_history").next().is_some(),
        "force_push_blocked": c.is_some_and(|c| !enabled(&c.allow_force_pushes)) || of("non_fast_forward").next().is_some(),
        "deletion_blocked": c.is_some_and(|c| !enabled(&c.allow_deletions)) || of("deletion").next().is_some(),
        // Rulesets express exemptions as bypass actors, which this endpoint
        // does not show; only classic protection says whether admins are held.
        "enforce_admins": c.map(|c| enabled(&c.enforce_admins)),
    })
}
