//! `kind = "github-deploy-keys"`: SSH keys with access to single
//! repositories, whether they can write, and when they were last used. The
//! key material is not recorded.

use async_trait::async_trait;
use serde_json::json;

use super::api::{Api, seg};
use super::types::DeployKey;
use super::{Common, Kind, per_repo};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Keys by repository (usually one each), else by id.
    identities: &[&["repository"], &["id"]],
    ..super::spec("github-deploy-keys", &["CC6.1", "CC6.2"], |s| {
        super::build_kind(s, &[], |_| Box::new(DeployKeys))
    })
};

struct DeployKeys;

#[async_trait]
impl Kind for DeployKeys {
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
        let keys = super::for_each(api, &repos, |r| {
            let path = format!("/repos/{org}/{}/keys", seg(&r.name));
            async move { api.paginate::<DeployKey>(ctx, &path).await }
        })
        .await;
        let mut rows = Vec::new();
        for (r, res) in repos.iter().zip(keys) {
            let Some(mut ks) = per_repo(&r.name, "deploy keys", res, &mut failures)? else {
                continue;
            };
            ks.sort_by_key(|k| k.id);
            for k in ks {
                rows.push(json!({
                    "repository": r.name,
                    "id": k.id,
                    "title": k.title,
                    "read_only": k.read_only,
                    "verified": k.verified,
                    "enabled": k.enabled,
                    "created_at": k.created_at,
                    "added_by": k.added_by,
                    "last_used": k.last_used,
                }));
            }
        }
        let writable = rows
            .iter()
            .filter(|k| k["read_only"] == json!(false))
            .count();
        Ok(Snapshot {
            payload: json!({
                "org": common.org,
                "repositories_checked": repos.len(),
                "count": rows.len(),
                "writable": writable,
                "deploy_keys": rows,
            }),
            cursor: None,
            failures,
        })
    }
}
