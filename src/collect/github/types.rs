//! GitHub's REST responses, as far as the collectors read them. Only the
//! fields recorded as evidence are declared; everything a payload may not
//! hold (webhook secrets, key material) is simply never deserialised.
//! Fields GitHub omits for some tokens or plans are `Option`, so that their
//! absence is recorded as "not visible" rather than failing a collection.
//! `tests.rs` decodes GitHub's documented examples into each of these.

use serde::Deserialize;
use serde_json::Value;

/// A user reference (`simple-user`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    pub login: String,
    pub id: i64,
    #[serde(default)]
    pub site_admin: Option<bool>,
}

/// `GET /orgs/{org}` (`organization-full`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Org {
    pub login: String,
    pub id: i64,
    pub name: Option<String>,
    pub plan: Option<Value>,
    pub two_factor_requirement_enabled: Option<bool>,
    pub default_repository_permission: Option<String>,
    pub members_can_create_repositories: Option<bool>,
    pub members_allowed_repository_creation_type: Option<String>,
    pub members_can_create_public_repositories: Option<bool>,
    pub members_can_create_private_repositories: Option<bool>,
    pub members_can_create_internal_repositories: Option<bool>,
    pub members_can_fork_private_repositories: Option<bool>,
    pub members_can_delete_repositories: Option<bool>,
    pub members_can_change_repo_visibility: Option<bool>,
    pub members_can_invite_outside_collaborators: Option<bool>,
    pub members_can_create_teams: Option<bool>,
    pub members_can_create_pages: Option<bool>,
    pub web_commit_signoff_required: Option<bool>,
    pub advanced_security_enabled_for_new_repositories: Option<bool>,
    pub dependabot_alerts_enabled_for_new_repositories: Option<bool>,
    pub secret_scanning_enabled_for_new_repositories: Option<bool>,
    pub secret_scanning_push_protection_enabled_for_new_repositories: Option<bool>,
    pub deploy_keys_enabled_for_repositories: Option<bool>,
    pub is_verified: Option<bool>,
}

/// `GET /orgs/{org}/invitations` (`organization-invitation`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Invitation {
    pub id: i64,
    pub login: Option<String>,
    pub email: Option<String>,
    pub role: String,
    pub created_at: String,
    pub inviter: Option<User>,
    pub team_count: Option<i64>,
    pub invitation_source: Option<String>,
}

/// `GET /orgs/{org}/teams` (`team`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Team {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub privacy: Option<String>,
    pub permission: Option<String>,
    pub parent: Option<TeamRef>,
}

/// A parent team reference.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TeamRef {
    pub slug: String,
}

/// Repository permissions of the caller, a team or a collaborator.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Permissions {
    pub admin: bool,
    #[serde(default)]
    pub maintain: Option<bool>,
    pub push: bool,
    #[serde(default)]
    pub triage: Option<bool>,
    pub pull: bool,
}

impl Permissions {
    /// The highest role these permissions amount to.
    pub(crate) fn role(&self) -> &'static str {
        if self.admin {
            "admin"
        } else if self.maintain == Some(true) {
            "maintain"
        } else if self.push {
            "write"
        } else if self.triage == Some(true) {
            "triage"
        } else if self.pull {
            "read"
        } else {
            "none"
        }
    }
}

/// `GET /orgs/{org}/teams/{slug}/repos` (`minimal-repository` with the
/// team's permissions).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TeamRepo {
    pub full_name: String,
    pub permissions: Option<Permissions>,
    pub role_name: Option<String>,
}

/// `GET /orgs/{org}/repos` (`minimal-repository`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Repo {
    pub id: i64,
    pub name: String,
    pub private: bool,
    pub visibility: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub disabled: bool,
    pub fork: bool,
    pub default_branch: Option<String>,
    pub allow_merge_commit: Option<bool>,
    pub allow_squash_merge: Option<bool>,
    pub allow_rebase_merge: Option<bool>,
    pub allow_auto_merge: Option<bool>,
    pub delete_branch_on_merge: Option<bool>,
    pub allow_forking: Option<bool>,
    pub web_commit_signoff_required: Option<bool>,
    pub security_and_analysis: Option<Value>,
    pub pushed_at: Option<String>,
    pub created_at: Option<String>,
}

/// `GET /repos/{o}/{r}/branches/{b}/protection` (`branch-protection`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Protection {
    pub required_status_checks: Option<StatusChecks>,
    pub enforce_admins: Option<Enabled>,
    pub required_pull_request_reviews: Option<Reviews>,
    pub restrictions: Option<Value>,
    pub required_linear_history: Option<Enabled>,
    pub allow_force_pushes: Option<Enabled>,
    pub allow_deletions: Option<Enabled>,
    pub required_signatures: Option<Enabled>,
    pub required_conversation_resolution: Option<Enabled>,
    pub lock_branch: Option<Enabled>,
}

/// `{"enabled": bool}` settings of branch protection.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Enabled {
    pub enabled: Option<bool>,
}

/// Required status checks of branch protection.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StatusChecks {
    pub strict: Option<bool>,
    #[serde(default)]
    pub contexts: Vec<String>,
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// A required check, with the app it must come from.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Check {
    pub context: String,
}

/// Required pull request reviews of branch protection.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Reviews {
    pub dismiss_stale_reviews: Option<bool>,
    pub require_code_owner_reviews: Option<bool>,
    pub required_approving_review_count: Option<i64>,
    pub require_last_push_approval: Option<bool>,
}

/// `GET /repos/{o}/{r}/rules/branches/{b}`: one effective rule, with the
/// ruleset (repository or organisation) it comes from.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Rule {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub parameters: Option<Value>,
    pub ruleset_source_type: Option<String>,
    pub ruleset_source: Option<String>,
    pub ruleset_id: Option<i64>,
}

/// `GET /repos/{o}/{r}/pulls` and `/pulls/{n}` (`pull-request-simple`,
/// `pull-request`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Pull {
    pub number: i64,
    pub title: String,
    pub user: Option<User>,
    pub merged_at: Option<String>,
    pub updated_at: String,
    pub merge_commit_sha: Option<String>,
    pub head: GitRef,
    pub base: GitRef,
    #[serde(default)]
    pub merged_by: Option<User>,
    pub html_url: Option<String>,
}

/// The head or base of a pull request.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GitRef {
    #[serde(rename = "ref")]
    pub name: String,
    pub sha: String,
}

/// `GET /repos/{o}/{r}/pulls/{n}/reviews` (`pull-request-review`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Review {
    pub id: i64,
    pub user: Option<User>,
    pub state: String,
    pub submitted_at: Option<String>,
    pub commit_id: Option<String>,
    pub author_association: Option<String>,
}

/// `GET /repos/{o}/{r}/commits/{sha}/check-runs`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CheckRuns {
    pub total_count: i64,
    pub check_runs: Vec<CheckRun>,
}

/// One check run.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CheckRun {
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
}

/// `GET /repos/{o}/{r}/keys` (`deploy-key`); the key itself is not read.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DeployKey {
    pub id: i64,
    pub title: String,
    pub read_only: bool,
    pub verified: Option<bool>,
    pub created_at: Option<String>,
    pub added_by: Option<String>,
    pub last_used: Option<String>,
    pub enabled: Option<bool>,
}

/// `GET /orgs/{org}/hooks`, `/repos/{o}/{r}/hooks` (`org-hook`, `hook`).
/// Of `config`, only the URL and TLS setting are read: `config.secret`
/// never enters memory as evidence.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Hook {
    pub id: i64,
    pub name: String,
    pub active: bool,
    #[serde(default)]
    pub events: Vec<String>,
    pub config: HookConfig,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// The parts of a webhook's config that are evidence.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HookConfig {
    pub url: Option<String>,
    pub content_type: Option<String>,
    /// `"0"` or `"1"` (GitHub also documents a number).
    pub insecure_ssl: Option<Value>,
}

/// `GET /orgs/{org}/actions/permissions`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ActionsPermissions {
    pub enabled_repositories: String,
    pub allowed_actions: Option<String>,
    pub sha_pinning_required: Option<bool>,
}

/// `GET /orgs/{org}/actions/permissions/selected-actions`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SelectedActions {
    pub github_owned_allowed: Option<bool>,
    pub verified_allowed: Option<bool>,
    #[serde(default)]
    pub patterns_allowed: Vec<String>,
}

/// `GET /orgs/{org}/actions/permissions/workflow`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WorkflowPermissions {
    pub default_workflow_permissions: String,
    pub can_approve_pull_request_reviews: bool,
}

/// `GET /repos/{o}/{r}/codeowners/errors`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CodeownersErrors {
    pub errors: Vec<Value>,
}

/// `GET /repos/{o}/{r}/commits/{ref}/status`: the combined legacy commit
/// statuses (required checks may be statuses rather than check runs).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CombinedStatus {
    pub state: String,
    #[serde(default)]
    pub statuses: Vec<CommitStatus>,
}

/// One commit status.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CommitStatus {
    pub context: String,
    pub state: String,
}
