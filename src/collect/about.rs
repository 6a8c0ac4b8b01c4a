//! What `exhibit kinds` tells a newcomer about each kind: what it collects,
//! the settings it cannot do without, and the permissions its credentials
//! need. Kept beside the registry rather than in each kind's `SPEC`, as
//! prose for people; a unit test holds every kind of the registry to
//! having an entry, so a new kind cannot be added without one.

use serde::Serialize;

/// A kind, described for people.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct About {
    /// What its records hold.
    pub collects: &'static str,
    /// Settings it cannot do without (besides the common ones), with
    /// alternatives written `a | b`.
    pub required: &'static [&'static str],
    /// What its credentials must be allowed to do.
    pub permissions: &'static str,
    /// Where it is documented.
    pub docs: &'static str,
}

const AWS_REQUIRED: &[&str] = &[];
const GITHUB_REQUIRED: &[&str] = &[
    "org",
    "token | token_file | app_id + installation_id + private_key (default: $GITHUB_TOKEN)",
];
const AWS_DOCS: &str = "docs/collectors/aws.md";
const GITHUB_DOCS: &str = "docs/collectors/github.md";

/// The description of `kind`, when it has one.
pub fn about(kind: &str) -> Option<About> {
    let a = |collects, required, permissions, docs| {
        Some(About {
            collects,
            required,
            permissions,
            docs,
        })
    };
    let aws = |collects, permissions| a(collects, AWS_REQUIRED, permissions, AWS_DOCS);
    let gh = |collects, permissions| a(collects, GITHUB_REQUIRED, permissions, GITHUB_DOCS);
    match kind {
        "command" => a(
            "a program's output (JSON when it parses, else text), its exit status and the tail of stderr; a non-zero exit is a failed record",
            &["command"],
            "whatever the program needs, as the agent's user; the child sees only the variables in `env` (default PATH)",
            "README.md",
        ),
        "git" => a(
            "commits of a local repository since the previous record (authors, committers, dates, parents, signature status), tags, remotes without credentials",
            &["repository"],
            "read access to the repository directory",
            "README.md",
        ),
        "http" => a(
            "a SaaS API read by a declarative definition (collectors/*.toml): requests, pagination, fields kept and redacted",
            &[
                "definition",
                "the definition's credentials (token, api_key + app_key, username + password, client_id + client_secret, private_key)",
            ],
            "a read-only API credential of the vendor; see the definition's page in docs/collectors/",
            "docs/collectors/http.md",
        ),
        "aws-iam-users" => aws(
            "every IAM user: MFA, access keys and their last use, console access, groups, policies, admin access",
            "iam:ListUsers, iam:ListMFADevices, iam:ListAccessKeys, iam:GetAccessKeyLastUsed, iam:GetLoginProfile, iam:ListGroupsForUser, iam:ListAttachedUserPolicies, iam:ListUserPolicies, iam:GetUserPolicy, iam:ListAttachedGroupPolicies, iam:ListGroupPolicies, iam:GetGroupPolicy",
        ),
        "aws-iam-credential-report" => aws(
            "IAM's credential report, one row per user, and the SHA-256 of the CSV as AWS delivered it",
            "iam:GenerateCredentialReport, iam:GetCredentialReport",
        ),
        "aws-iam-password-policy" => aws(
            "the account password policy (or that none is set)",
            "iam:GetAccountPasswordPolicy",
        ),
        "aws-iam-roles" => aws(
            "every IAM role: trust policy and trusted principals, policies, boundary, last use, admin access",
            "iam:ListRoles, iam:GetRole, iam:ListAttachedRolePolicies, iam:ListRolePolicies, iam:GetRolePolicy",
        ),
        "aws-iam-policies" => aws(
            "every customer-managed policy: default version's document, versions, attachment counts, admin access",
            "iam:ListPolicies, iam:GetPolicyVersion, iam:ListPolicyVersions",
        ),
        "aws-iam-groups" => aws(
            "every IAM group: members, policies, admin access",
            "iam:ListGroups, iam:GetGroup, iam:ListAttachedGroupPolicies, iam:ListGroupPolicies, iam:GetGroupPolicy",
        ),
        "aws-account-summary" => aws(
            "root MFA, root access keys and certificates, account aliases, IAM entity counts and quotas",
            "iam:GetAccountSummary, iam:ListAccountAliases",
        ),
        "aws-s3-buckets" => aws(
            "every bucket: encryption, public access blocks, versioning, logging, policy, ACLs, Object Lock, lifecycle; the account's public access block",
            "s3:ListAllMyBuckets, s3:GetBucketLocation, s3:GetEncryptionConfiguration, s3:GetBucketPublicAccessBlock, s3:GetBucketVersioning, s3:GetBucketLogging, s3:GetBucketPolicy, s3:GetBucketPolicyStatus, s3:GetBucketOwnershipControls, s3:GetBucketAcl, s3:GetBucketObjectLockConfiguration, s3:GetLifecycleConfiguration, s3:GetAccountPublicAccessBlock",
        ),
        "aws-cloudtrail" => aws(
            "every trail: logging, multi-region, validation, encryption, delivery, event selectors; regions without a logging trail",
            "cloudtrail:DescribeTrails, cloudtrail:GetTrailStatus, cloudtrail:GetEventSelectors",
        ),
        "aws-monitoring" => aws(
            "per region: AWS Config recorders and delivery channels, GuardDuty detectors, Security Hub and its standards",
            "config:DescribeConfigurationRecorders, config:DescribeConfigurationRecorderStatus, config:DescribeDeliveryChannels, guardduty:ListDetectors, guardduty:GetDetector, securityhub:DescribeHub, securityhub:GetEnabledStandards",
        ),
        "github-org" => gh(
            "organisation settings: 2FA requirement, base permission, who may create, delete or fork repositories, defaults for new repositories",
            "Organization → Administration (read)",
        ),
        "github-members" => gh(
            "every member with role (owner/member) and 2FA status",
            "Organization → Members (read); 2FA status is shown to owners only",
        ),
        "github-outside-collaborators" => gh(
            "outside collaborators and which have 2FA disabled",
            "Organization → Members (read)",
        ),
        "github-invitations" => gh(
            "pending invitations: invitee, role, inviter, date",
            "Organization → Members (read; owners see invitations)",
        ),
        "github-teams" => gh(
            "teams with members and the repositories each grants, with the permission",
            "Organization → Members, Repository → Metadata (read)",
        ),
        "github-repositories" => gh(
            "visibility, archived, default branch, merge and security settings, CODEOWNERS",
            "Repository → Metadata, Contents (read)",
        ),
        "github-branch-protection" => gh(
            "classic protection and rulesets in effect on each default branch, folded into what is enforced",
            "Repository → Administration, Metadata; Organization → Administration (read)",
        ),
        "github-pull-requests" => gh(
            "pull requests merged in the window with reviews, checks and flags such as merged without independent approval",
            "Repository → Pull requests, Checks, Commit statuses (read)",
        ),
        "github-deploy-keys" => gh(
            "deploy keys per repository: read-only or writable, added by, last used (never the key)",
            "Repository → Administration (read)",
        ),
        "github-webhooks" => gh(
            "organisation and repository webhooks: receiving host, events, TLS verification (never the URL's secrets)",
            "Organization → Webhooks, Repository → Webhooks (read)",
        ),
        "github-actions" => gh(
            "which repositories may run Actions, allowed actions, SHA pinning, default workflow token permissions",
            "Organization → Administration (read)",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kind_of_the_registry_is_described() {
        for k in super::super::kinds() {
            let a = super::about(k.name).unwrap_or_else(|| panic!("{} has no description", k.name));
            assert!(
                !a.collects.is_empty() && !a.permissions.is_empty(),
                "{}",
                k.name
            );
            assert!(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(a.docs)
                    .exists(),
                "{}: {}",
                k.name,
                a.docs
            );
        }
    }
}
