//! `kind = "github-actions"`: the organisation's GitHub Actions policy —
//! which repositories may run workflows, which actions they may use, and
//! the default permissions of the workflow token (write access and
//! whether workflows may approve pull requests, which would let a change
//! approve itself).

use async_trait::async_trait;
use serde_json::json;

use super::api::{Api, seg};
use super::types::{ActionsPermissions, SelectedActions, WorkflowPermissions};
use super::{Common, Kind};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = super::spec("github-actions", &["CC6.1", "CC8.1"], |s| {
    super::build_kind(s, &[], |_| Box::new(Actions))
});

struct Actions;

#[async_trait]
impl Kind for Actions {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let base = format!("/orgs/{}/actions/permissions", seg(&common.org));
        let perms: ActionsPermissions = api.get(ctx, &base).await?;
        let selected = if perms.allowed_actions.as_deref() == Some("selected") {
            Some(
                api.get::<SelectedActions>(ctx, &format!("{base}/selected-actions"))
                    .await?,
            )
        } else {
            None
        };
        let workflow: WorkflowPermissions = api.get(ctx, &format!("{base}/workflow")).await?;
        Ok(Snapshot::new(json!({
            "org": common.org,
            "enabled_repositories": perms.enabled_repositories,
            "allowed_actions": perms.allowed_actions,
            "sha_pinning_required": perms.sha_pinning_required,
            "selected_actions": selected.map(|s| json!({
                "github_owned_allowed": s.github_owned_allowed,
                "verified_allowed": s.verified_allowed,
                "patterns_allowed": s.patterns_allowed,
            })),
            "workflow_token": {
                "default_permissions": workflow.default_workflow_permissions,
                "can_approve_pull_request_reviews": workflow.can_approve_pull_request_reviews,
            },
        })))
    }
}
