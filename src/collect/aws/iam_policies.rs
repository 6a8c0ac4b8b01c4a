//! `kind = "aws-iam-policies"`: every customer-managed policy with its
//! default version's document (decoded), its versions, how many
//! principals it is attached to, and whether it grants administrator
//! access. AWS-managed policies are AWS's own and are named, not copied,
//! where they are attached (in the users, groups and roles kinds).

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{self, AwsError, Session};
use super::iam_groups::iam_pages;
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Policies by ARN, their versions by id, statements by `Sid`.
    identities: &[&["arn"], &["policy_name"], &["version_id"], &["Sid"]],
    ..super::spec("aws-iam-policies", &["CC6.1", "CC6.2", "CC6.3"], |s| {
        super::build_kind(s, Box::new(Policies))
    })
};

struct Policies;

async fn policy_view(
    s: &Session,
    ctx: &Context,
    iam: &aws_sdk_iam::Client,
    p: &aws_sdk_iam::types::Policy,
) -> Result<Value, AwsError> {
    let arn = p.arn().unwrap_or_default();
    let default = p.default_version_id().unwrap_or("v1");
    let version = s
        .call(
            ctx,
            "iam:GetPolicyVersion",
            iam.get_policy_version()
                .policy_arn(arn)
                .version_id(default)
                .send(),
        )
        .await?;
    let document = version
        .policy_version()
        .and_then(|v| v.document())
        .map(api::policy_document)
        .unwrap_or(Value::Null);
    let versions = iam_pages!(
        s,
        ctx,
        "iam:ListPolicyVersions",
        |m| iam
            .list_policy_versions()
            .policy_arn(arn)
            .set_marker(m.clone()),
        |out| {
            out.versions()
                .iter()
                .map(|v| {
                    json!({
                        "version_id": v.version_id(),
                        "is_default_version": v.is_default_version(),
                        "create_date": api::time(v.create_date()),
                    })
                })
                .collect::<Vec<_>>()
        }
    )
    .await?;
    Ok(json!({
        "policy_name": p.policy_name(),
        "arn": arn,
        "policy_id": p.policy_id(),
        "path": p.path(),
        "description": p.description(),
        "create_date": api::time(p.create_date()),
        "update_date": api::time(p.update_date()),
        "attachment_count": p.attachment_count(),
        "permissions_boundary_usage_count": p.permissions_boundary_usage_count(),
        "is_attachable": p.is_attachable(),
        "default_version_id": default,
        "document": document,
        "is_admin": api::allows_everything(&document),
        "versions": versions,
    }))
}

#[async_trait]
impl Kind for Policies {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let iam = s.iam();
        let policies = iam_pages!(
            s,
            ctx,
            "iam:ListPolicies",
            |m| iam
                .list_policies()
                .scope(aws_sdk_iam::types::PolicyScopeType::Local)
                .set_marker(m.clone()),
            |out| out.policies().to_vec()
        )
        .await?;
        let views = api::for_each(&policies, 32, |p| policy_view(s, ctx, &iam, p)).await;
        let mut failures = Vec::new();
        let mut rows = Vec::with_capacity(policies.len());
        for (p, v) in policies.iter().zip(views) {
            let name = p.policy_name().unwrap_or_default();
            match api::part(|| format!("policy {name}"), v, &mut failures)? {
                Some(v) => rows.push(v),
                None => rows.push(json!({"policy_name": name, "arn": p.arn(), "error": "not readable; see the record's error"})),
            }
        }
        rows.sort_by(|a, b| a["arn"].as_str().cmp(&b["arn"].as_str()));
        let admin: Vec<&Value> = rows
            .iter()
            .filter(|p| p["is_admin"] == true)
            .map(|p| &p["policy_name"])
            .collect();
        let mut payload = account_header(s);
        payload.insert("count".into(), json!(rows.len()));
        payload.insert("admin_policies".into(), json!(admin));
        payload.insert("policies".into(), json!(rows));
        Ok(Snapshot::with_failures(Value::Object(payload), failures))
    }
}
