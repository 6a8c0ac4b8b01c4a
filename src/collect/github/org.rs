//! `kind = "github-org"`: the organisation's security settings — whether
//! 2FA is required, the base permission members get on every repository,
//! who may create, delete or change the visibility of repositories and
//! invite outside collaborators, and the defaults for new repositories.
//! Settings GitHub shows only to owners are listed under `not_visible`
//! rather than guessed.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::Api;
use super::types::Org;
use super::{Common, Kind};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = super::spec("github-org", &["CC6.1", "CC6.2"], |s| {
    super::build_kind(s, &[], |_| Box::new(OrgSettings))
});

struct OrgSettings;

#[async_trait]
impl Kind for OrgSettings {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let org: Org = api
            .get(ctx, &format!("/orgs/{}", super::api::seg(&common.org)))
            .await?;
        Ok(Snapshot::new(payload(&org)))
    }
}

fn payload(o: &Org) -> Value {
    let settings = json!({
        "two_factor_requirement_enabled": o.two_factor_requirement_enabled,
        "default_repository_permission": o.default_repository_permission,
        "members_can_create_repositories": o.members_can_create_repositories,
        "members_allowed_repository_creation_type": o.members_allowed_repository_creation_type,
        "members_can_create_public_repositories": o.members_can_create_public_repositories,
        "members_can_create_private_repositories": o.members_can_create_private_repositories,
        "members_can_create_internal_repositories": o.members_can_create_internal_repositories,
        "members_can_fork_private_repositories": o.members_can_fork_private_repositories,
        "members_can_delete_repositories": o.members_can_delete_repositories,
        "members_can_change_repo_visibility": o.members_can_change_repo_visibility,
        "members_can_invite_outside_collaborators": o.members_can_invite_outside_collaborators,
        "members_can_create_teams": o.members_can_create_teams,
        "members_can_create_pages": o.members_can_create_pages,
        "web_commit_signoff_required": o.web_commit_signoff_required,
        "advanced_security_enabled_for_new_repositories": o.advanced_security_enabled_for_new_repositories,
        "dependabot_alerts_enabled_for_new_repositories": o.dependabot_alerts_enabled_for_new_repositories,
        "secret_scanning_enabled_for_new_repositories": o.secret_scanning_enabled_for_new_repositories,
        "secret_scanning_push_protection_enabled_for_new_repositories": o.secret_scanning_push_protection_enabled_for_new_repositories,
        "deploy_keys_enabled_for_repositories": o.deploy_keys_enabled_for_repositories,
    });
    let not_visible: Vec<&String> = settings
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    json!({
        "org": o.login,
        "id": o.id,
        "name": o.name,
        "verified": o.is_verified,
        "plan": o.plan.as_ref().and_then(|p| p.get("name")).cloned(),
        "settings": settings,
        // GitHub returns these only to organisation owners; a null here is
        // "not visible to this token", not "off".
        "not_visible": not_visible,
        // SAML SSO enforcement is not exposed by the REST API; it needs the
        // web UI, the GraphQL API (enterprise owners) or the audit log.
        "not_exposed_by_api": ["saml_sso_enforcement"],
    })
}
