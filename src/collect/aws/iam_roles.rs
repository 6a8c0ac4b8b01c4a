//! `kind = "aws-iam-roles"`: every IAM role with its trust policy (who can
//! assume it, decoded, and the principals it names), attached and inline
//! policies, permissions boundary, when it was last used, and whether it
//! grants administrator access.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{self, AwsError, Session};
use super::iam_groups::{attached_view, grants_admin, iam_pages};
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Roles by ARN, their policies by ARN or name, statements by `Sid`.
    identities: &[&["arn"], &["policy_arn"], &["policy_name"], &["Sid"]],
    ..super::spec("aws-iam-roles", &["CC6.1", "CC6.2", "CC6.3"], |s| {
        super::build_kind(s, Box::new(Roles))
    })
};

struct Roles;

/// The principals a trust policy lets assume the role, as `type:value`
/// (`AWS:arn:aws:iam::111122223333:root`, `Service:ec2.amazonaws.com`,
/// `Federated:…`, or `*`).
pub(crate) fn trusted_principals(doc: &Value) -> Vec<String> {
    let statements = match doc.get("Statement") {
        Some(Value::Array(s)) => s.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return vec![],
    };
    let mut out = BTreeSet::new();
    for s in statements
        .iter()
        .filter(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow"))
    {
        match s.get("Principal") {
            Some(Value::String(p)) => {
                out.insert(p.clone());
            }
            Some(Value::Object(m)) => {
                for (kind, v) in m {
                    let values = match v {
                        Value::Array(xs) => xs.clone(),
                        x => vec![x.clone()],
                    };
                    for x in values.iter().filter_map(Value::as_str) {
                        out.insert(format!("{kind}:{x}"));
                    }
                }
            }
            _ => {}
        }
    }
    out.into_iter().collect()
}

async fn role_view(
    s: &Session,
    ctx: &Context,
    iam: &aws_sdk_iam::Client,
    listed: &aws_sdk_iam::types::Role,
) -> Result<Value, AwsError> {
    let name = listed.role_name();
    // GetRole adds what the listing leaves out: last use, boundary, tags.
    let got = s
        .call(ctx, "iam:GetRole", iam.get_role().role_name(name).send())
        .await?;
    let r = got.role().unwrap_or(listed);
    let attached = iam_pages!(
        s,
        ctx,
        "iam:ListAttachedRolePolicies",
        |m| iam
            .list_attached_role_policies()
            .role_name(name)
            .set_marker(m.clone()),
        |out| out.attached_policies().iter().map(attached_view)
    )
    .await?;
    let names = iam_pages!(
        s,
        ctx,
        "iam:ListRolePolicies",
        |m| iam
            .list_role_policies()
            .role_name(name)
            .set_marker(m.clone()),
        |out| out.policy_names().to_vec()
    )
    .await?;
    let mut inline = Vec::new();
    for p in names {
        let out = s
            .call(
                ctx,
                "iam:GetRolePolicy",
                iam.get_role_policy().role_name(name).policy_name(&p).send(),
            )
            .await?;
        inline.push(json!({
            "policy_name": p,
            "document": api::policy_document(out.policy_document()),
        }));
    }
    let trust = r
        .assume_role_policy_document()
        .map(api::policy_document)
        .unwrap_or(Value::Null);
    let last = r.role_last_used();
    Ok(json!({
        "role_name": name,
        "arn": r.arn(),
        "role_id": r.role_id(),
        "path": r.path(),
        "create_date": api::time(Some(r.create_date())),
        "description": r.description(),
        "max_session_duration": r.max_session_duration(),
        "trusted_principals": trusted_principals(&trust),
        "trust_policy": trust,
        "attached_policies": attached,
        "inline_policies": inline,
        "is_admin": grants_admin(&attached, &inline),
        "permissions_boundary": r.permissions_boundary().and_then(|b| b.permissions_boundary_arn()),
        "last_used_date": api::time(last.and_then(|l| l.last_used_date())),
        "last_used_region": last.and_then(|l| l.region()),
        "tags": api::tags(r.tags().iter().map(|t| (t.key(), t.value()))),
    }))
}

#[async_trait]
impl Kind for Roles {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let iam = s.iam();
        let roles = iam_pages!(
            s,
            ctx,
            "iam:ListRoles",
            |m| iam.list_roles().set_marker(m.clone()),
            |out| out.roles().to_vec()
        )
        .await?;
        let views = api::for_each(&roles, 32, |r| role_view(s, ctx, &iam, r)).await;
        let mut failures = Vec::new();
        let mut rows = Vec::with_capacity(roles.len());
        for (r, v) in roles.iter().zip(views) {
            match api::part(|| format!("role {}", r.role_name()), v, &mut failures)? {
                Some(v) => rows.push(v),
                None => rows.push(json!({"role_name": r.role_name(), "arn": r.arn(), "error": "not readable; see the record's error"})),
            }
        }
        rows.sort_by(|a, b| a["role_name"].as_str().cmp(&b["role_name"].as_str()));
        let admins: Vec<&Value> = rows
            .iter()
            .filter(|r| r["is_admin"] == true)
            .map(|r| &r["role_name"])
            .collect();
        let mut payload = account_header(s);
        payload.insert("count".into(), json!(rows.len()));
        payload.insert("admin_roles".into(), json!(admins));
        payload.insert("roles".into(), json!(rows));
        Ok(Snapshot::with_failures(Value::Object(payload), failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_principals_are_flattened() {
        let doc = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root"], "Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}
        ]});
        assert_eq!(
            trusted_principals(&doc),
            vec![
                "AWS:arn:aws:iam::111122223333:root".to_string(),
                "Service:ec2.amazonaws.com".to_string()
            ]
        );
    }
}
