//! `kind = "aws-iam-groups"`: every IAM group with its members, attached
//! managed policies and inline policies (documents decoded), and whether
//! it grants administrator access. Also the IAM paging helper the other
//! IAM kinds use.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{self, AwsError, Session};
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Groups by ARN, their policies by ARN or name, statements by `Sid`.
    identities: &[&["arn"], &["policy_arn"], &["policy_name"], &["Sid"]],
    ..super::spec("aws-iam-groups", &["CC6.1", "CC6.2", "CC6.3"], |s| {
        super::build_kind(s, Box::new(Groups))
    })
};

struct Groups;

/// Reads every page of an IAM listing (`Marker` / `IsTruncated`): an
/// async block that yields `Result<Vec<item>, AwsError>`.
macro_rules! iam_pages {
    ($session:expr, $ctx:expr, $action:literal, |$marker:ident| $request:expr, |$out:ident| $items:expr) => {
        async {
            let mut all = Vec::new();
            let mut $marker: Option<String> = None;
            loop {
                let $out = $session.call($ctx, $action, $request.send()).await?;
                all.extend($items);
                $marker = $out.marker().map(str::to_string);
                if !$out.is_truncated() || $marker.is_none() {
                    break;
                }
            }
            Ok::<_, AwsError>(all)
        }
    };
}
pub(crate) use iam_pages;

/// An attached managed policy.
pub(crate) fn attached_view(p: &aws_sdk_iam::types::AttachedPolicy) -> Value {
    json!({"policy_name": p.policy_name(), "policy_arn": p.policy_arn()})
}

/// Whether attached policies or inline documents grant administrator
/// access: AWS's `AdministratorAccess`, or any statement allowing every
/// action on every resource.
pub(crate) fn grants_admin(attached: &[Value], inline: &[Value]) -> bool {
    attached
        .iter()
        .any(|p| p["policy_name"] == "AdministratorAccess")
        || inline
            .iter()
            .any(|p| api::allows_everything(&p["document"]))
}

/// A group's policies: (attached, inline with documents).
pub(crate) async fn group_policies(
    s: &Session,
    ctx: &Context,
    iam: &aws_sdk_iam::Client,
    group: &str,
) -> Result<(Vec<Value>, Vec<Value>), AwsError> {
    let attached = iam_pages!(
        s,
        ctx,
        "iam:ListAttachedGroupPolicies",
        |m| iam
            .list_attached_group_policies()
            .group_name(group)
            .set_marker(m.clone()),
        |out| out.attached_policies().iter().map(attached_view)
    )
    .await?;
    let names = iam_pages!(
        s,
        ctx,
        "iam:ListGroupPolicies",
        |m| iam
            .list_group_policies()
            .group_name(group)
            .set_marker(m.clone()),
        |out| out.policy_names().to_vec()
    )
    .await?;
    let mut inline = Vec::new();
    for name in names {
        let out = s
            .call(
                ctx,
                "iam:GetGroupPolicy",
                iam.get_group_policy()
                    .group_name(group)
                    .policy_name(&name)
                    .send(),
            )
            .await?;
        inline.push(json!({
            "policy_name": name,
            "document": api::policy_document(out.policy_document()),
        }));
    }
    Ok((attached, inline))
}

async fn group_view(
    s: &Session,
    ctx: &Context,
    iam: &aws_sdk_iam::Client,
    g: &aws_sdk_iam::types::Group,
) -> Result<Value, AwsError> {
    let name = g.group_name();
    let members = iam_pages!(
        s,
        ctx,
        "iam:GetGroup",
        |m| iam.get_group().group_name(name).set_marker(m.clone()),
        |out| {
            out.users()
                .iter()
                .map(|u| u.user_name().to_string())
                .collect::<Vec<_>>()
        }
    )
    .await?;
    let mut members = members;
    members.sort();
    let (attached, inline) = group_policies(s, ctx, iam, name).await?;
    Ok(json!({
        "group_name": name,
        "arn": g.arn(),
        "group_id": g.group_id(),
        "path": g.path(),
        "create_date": api::time(Some(g.create_date())),
        "members": members,
        "attached_policies": attached,
        "inline_policies": inline,
        "is_admin": grants_admin(&attached, &inline),
    }))
}

#[async_trait]
impl Kind for Groups {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let iam = s.iam();
        let groups = iam_pages!(
            s,
            ctx,
            "iam:ListGroups",
            |m| iam.list_groups().set_marker(m.clone()),
            |out| out.groups().to_vec()
        )
        .await?;
        let views = api::for_each(&groups, 16, |g| group_view(s, ctx, &iam, g)).await;
        let mut failures = Vec::new();
        let mut rows = Vec::new();
        for (g, r) in groups.iter().zip(views) {
            match api::part(|| format!("group {}", g.group_name()), r, &mut failures)? {
                Some(v) => rows.push(v),
                None => rows.push(json!({
                    "group_name": g.group_name(),
                    "arn": g.arn(),
                    "error": "not readable; see the record's error",
                })),
            }
        }
        rows.sort_by(|a, b| a["group_name"].as_str().cmp(&b["group_name"].as_str()));
        let admins: Vec<&Value> = rows
            .iter()
            .filter(|g| g["is_admin"] == true)
            .map(|g| &g["group_name"])
            .collect();
        let mut payload = account_header(s);
        payload.insert("count".into(), json!(rows.len()));
        payload.insert("admin_groups".into(), json!(admins));
        payload.insert("groups".into(), json!(rows));
        Ok(Snapshot::with_failures(Value::Object(payload), failures))
    }
}
