//! `kind = "github-repositories"`: every repository with its visibility,
//! archival, default branch, merge settings, security and analysis
//! settings, and whether a CODEOWNERS file is present (and valid).

use async_trait::async_trait;
use serde_json::json;

use super::api::{Api, seg};
use super::types::{CodeownersErrors, Repo};
use super::{Common, Kind, per_repo};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Repositories by name.
    identities: &[&["name"], &["id"]],
    ..super::spec("github-repositories", &["CC6.1", "CC8.1"], |s| {
        super::build_kind(s, &["codeowners"], |x| {
            Box::new(Repositories {
                codeowners: x.codeowners.unwrap_or(true),
            })
        })
    })
};

struct Repositories {
    codeowners: bool,
}

#[async_trait]
impl Kind for Repositories {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let mut failures = Vec::new();
        let repos = super::covered_repos(api, common, ctx, &mut failures).await?;
        let owners = if self.codeowners {
            // One call per repository: the endpoint is 404 without a
            // CODEOWNERS file in any of its three places, and lists the
            // file's errors otherwise.
            super::for_each(api, &repos, |r| async move {
                api.get_opt::<CodeownersErrors>(
                    ctx,
                    &format!(
                        "/repos/{}/{}/codeowners/errors",
                        seg(&common.org),
                        seg(&r.name)
                    ),
                )
                .await
            })
            .await
        } else {
            Vec::new()
        };
        let mut rows = Vec::new();
        for (i, r) in repos.iter().enumerate() {
            let codeowners = match owners.get(i).cloned() {
                None => json!(null),
                Some(res) => match per_repo(&r.name, "CODEOWNERS", res, &mut failures)? {
                    Some(Some(e)) => json!({"present": true, "errors": e.errors.len()}),
                    Some(None) => json!({"present": false}),
                    None => json!(null),
                },
            };
            rows.push(row(r, codeowners));
        }
        let public = repos.iter().filter(|r| !r.private).count();
        Ok(Snapshot {
            payload: json!({
                "org": common.org,
                "count": rows.len(),
                "public": public,
                "archived": repos.iter().filter(|r| r.archived).count(),
                "repositories": rows,
            }),
            cursor: None,
            failures,
        })
    }
}

fn row(r: &Repo, codeowners: serde_json::Value) -> serde_json::Value {
    json!({
        "name": r.name,
        "id": r.id,
        "visibility": r.visibility.clone().unwrap_or_else(|| if r.private { "private".into() } else { "public".into() }),
        "private": r.private,
        "archived": r.archived,
        "disabled": r.disabled,
        "fork": r.fork,
        "default_branch": r.default_branch,
        "merge": {
            "allow_merge_commit": r.allow_merge_commit,
            "allow_squash_merge": r.allow_squash_merge,
            "allow_rebase_merge": r.allow_rebase_merge,
            "allow_auto_merge": r.allow_auto_merge,
            "delete_branch_on_merge": r.delete_branch_on_merge,
        },
        "allow_forking": r.allow_forking,
        "web_commit_signoff_required": r.web_commit_signoff_required,
        "security_and_analysis": r.security_and_analysis,
        "codeowners": codeowners,
        "created_at": r.created_at,
        "pushed_at": r.pushed_at,
    })
}
