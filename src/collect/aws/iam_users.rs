//! `kind = "aws-iam-users"`: every IAM user with MFA devices, access keys
//! (status, created, last used), console login profile, groups, attached
//! and inline policies (documents decoded), and whether the user has
//! administrator access directly or through a group.
//!
//! Passwords and secret access keys are never returned by these APIs;
//! access key ids are identifiers, not secrets, and are kept so that an
//! auditor can follow a key across records and the credential report.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{self, AwsError, Session};
use super::iam_groups::{attached_view, grants_admin, group_policies, iam_pages};
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Users by ARN; their MFA devices, access keys and policies by
    // their own ids; policy statements by their optional `Sid`.
    identities: &[
        &["arn"],
        &["policy_arn"],
        &["serial_number"],
        &["access_key_id"],
        &["user_name"],
        &["policy_name"],
        &["Sid"],
    ],
    ..super::spec("aws-iam-users", &["CC6.1", "CC6.2", "CC6.3"], |s| {
        super::build_kind(s, Box::new(Users))
    })
};

struct Users;

/// One user's evidence and the parts of it that could not be read.
struct UserView {
    value: Value,
    groups: Vec<String>,
    failures: Vec<String>,
}

/// A part of a user: its value, or null and a named failure.
fn or_null<T>(
    user: &str,
    what: &str,
    r: Result<T, AwsError>,
    failures: &mut Vec<String>,
) -> Result<Option<T>, CollectError> {
    api::part(|| format!("user {user}: {what}"), r, failures)
}

async fn access_keys(
    s: &Session,
    ctx: &Context,
    iam: &aws_sdk_iam::Client,
    user: &str,
) -> Result<Vec<Value>, AwsError> {
    let keys = iam_pages!(
        s,
        ctx,
        "iam:ListAccessKeys",
        |m| iam.list_access_keys().user_name(user).set_marker(m.clone()),
        |out| out.access_key_metadata().to_vec()
    )
    .await?;
    let mut rows = Vec::new();
    for k in keys {
        let id = k.access_key_id().unwrap_or_default();
        let used = s
            .call(
                ctx,
                "iam:GetAccessKeyLastUsed",
                iam.get_access_key_last_used().access_key_id(id).send(),
            )
            .await?;
        let last = used.access_key_last_used();
        rows.push(json!({
            "access_key_id": id,
            "status": k.status().map(|s| s.as_str()),
            "create_date": api::time(k.create_date()),
            "last_used_date": api::time(last.and_then(|l| l.last_used_date())),
            "last_used_service": last.map(|l| l.service_name()).filter(|v| *v != "N/A"),
            "last_used_region": last.map(|l| l.region()).filter(|v| *v != "N/A"),
        }));
    }
    rows.sort_by(|a, b| {
        a["access_key_id"]
            .as_str()
            .cmp(&b["access_key_id"].as_str())
    });
    Ok(rows)
}

async fn login_profile(
    s: &Session,
    ctx: &Context,
    iam: &aws_sdk_iam::Client,
    user: &str,
) -> Result<Value, AwsError> {
    match s
        .call(
            ctx,
            "iam:GetLoginProfile",
            iam.get_login_profile().user_name(user).send(),
        )
        .await
    {
        Ok(out) => Ok(match out.login_profile() {
            Some(p) => json!({
                "create_date": api::time(Some(p.create_date())),
                "password_reset_required": p.password_reset_required(),
            }),
            None => Value::Null,
        }),
        // No console password: a fact, not a failure.
        Err(e) if e.code() == Some("NoSuchEntity") => Ok(Value::Null),
        Err(e) => Err(e),
    }
}

async fn inline_policies(
    s: &Session,
    ctx: &Context,
    iam: &aws_sdk_iam::Client,
    user: &str,
) -> Result<Vec<Value>, AwsError> {
    let names = iam_pages!(
        s,
        ctx,
        "iam:ListUserPolicies",
        |m| iam
            .list_user_policies()
            .user_name(user)
            .set_marker(m.clone()),
        |out| out.policy_names().to_vec()
    )
    .await?;
    let mut rows = Vec::new();
    for name in names {
        let out = s
            .call(
                ctx,
                "iam:GetUserPolicy",
                iam.get_user_policy()
                    .user_name(user)
                    .policy_name(&name)
                    .send(),
            )
            .await?;
        rows.push(json!({
            "policy_name": name,
            "document": api::policy_document(out.policy_document()),
        }));
    }
    Ok(rows)
}

async fn user_view(
    s: &Session,
    ctx: &Context,
    iam: &aws_sdk_iam::Client,
    u: &aws_sdk_iam::types::User,
) -> Result<UserView, CollectError> {
    let name = u.user_name();
    let mut failures = Vec::new();
    let mfa = iam_pages!(
        s,
        ctx,
        "iam:ListMFADevices",
        |m| iam.list_mfa_devices().user_name(name).set_marker(m.clone()),
        |out| {
            out.mfa_devices()
                .iter()
                .map(|d| {
                    json!({
                        "serial_number": d.serial_number(),
                        "enable_date": api::time(Some(d.enable_date())),
                    })
                })
                .collect::<Vec<_>>()
        }
    )
    .await;
    let mfa = or_null(name, "MFA devices", mfa, &mut failures)?;
    let keys = access_keys(s, ctx, iam, name).await;
    let keys = or_null(name, "access keys", keys, &mut failures)?;
    let login = login_profile(s, ctx, iam, name).await;
    let login = or_null(name, "login profile", login, &mut failures)?;
    let groups = iam_pages!(
        s,
        ctx,
        "iam:ListGroupsForUser",
        |m| iam
            .list_groups_for_user()
            .user_name(name)
            .set_marker(m.clone()),
        |out| {
            out.groups()
                .iter()
                .map(|g| g.group_name().to_string())
                .collect::<Vec<_>>()
        }
    )
    .await;
    let groups = or_null(name, "groups", groups, &mut failures)?;
    let attached = iam_pages!(
        s,
        ctx,
        "iam:ListAttachedUserPolicies",
        |m| iam
            .list_attached_user_policies()
            .user_name(name)
            .set_marker(m.clone()),
        |out| out.attached_policies().iter().map(attached_view)
    )
    .await;
    let attached = or_null(name, "attached policies", attached, &mut failures)?;
    let inline = inline_policies(s, ctx, iam, name).await;
    let inline = or_null(name, "inline policies", inline, &mut failures)?;
    let mut groups = groups;
    if let Some(g) = groups.as_mut() {
        g.sort();
    }
    let direct_admin = grants_admin(
        attached.as_deref().unwrap_or_default(),
        inline.as_deref().unwrap_or_default(),
    );
    let value = json!({
        "user_name": name,
        "arn": u.arn(),
        "user_id": u.user_id(),
        "path": u.path(),
        "create_date": api::time(Some(u.create_date())),
        "password_last_used": api::time(u.password_last_used()),
        "console_access": login.as_ref().map(|l| !l.is_null()),
        "login_profile": login,
        "mfa_enabled": mfa.as_ref().map(|d| !d.is_empty()),
        "mfa_devices": mfa,
        "access_keys": keys,
        "groups": groups,
        "attached_policies": attached,
        "inline_policies": inline,
        "permissions_boundary": u.permissions_boundary().and_then(|b| b.permissions_boundary_arn()),
        "is_admin": direct_admin,
    });
    Ok(UserView {
        value,
        groups: groups.unwrap_or_default(),
        failures,
    })
}

#[async_trait]
impl Kind for Users {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let iam = s.iam();
        let mut users = iam_pages!(
            s,
            ctx,
            "iam:ListUsers",
            |m| iam.list_users().set_marker(m.clone()),
            |out| out.users().to_vec()
        )
        .await?;
        users.sort_by(|a, b| a.user_name().cmp(b.user_name()));
        // Each user is a handful of calls; more users in flight than the
        // IAM limit keeps the limit busy without holding every user's
        // evidence in memory half-built.
        let views = api::for_each(&users, 32, |u| user_view(s, ctx, &iam, u)).await;
        let mut failures = Vec::new();
        let mut rows = Vec::with_capacity(views.len());
        let mut member_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for v in views {
            let v = v?;
            failures.extend(v.failures);
            for g in v.groups {
                member_of.entry(g).or_default().push(rows.len());
            }
            rows.push(v.value);
        }
        // Administrator access through a group: each group's policies are
        // read once, whatever its number of members.
        let groups: Vec<String> = member_of.keys().cloned().collect();
        let policies =
            api::for_each(&groups, 8, |g| group_policies(s, ctx, &iam, g.as_str())).await;
        for (g, r) in groups.iter().zip(policies) {
            if let Some((attached, inline)) =
                api::part(|| format!("group {g}: policies"), r, &mut failures)?
                && grants_admin(&attached, &inline)
            {
                for &i in &member_of[g] {
                    rows[i]["is_admin"] = json!(true);
                    if let Some(via) = rows[i]
                        .as_object_mut()
                        .map(|o| o.entry("admin_via_groups").or_insert(json!([])))
                        .and_then(Value::as_array_mut)
                    {
                        via.push(json!(g));
                    }
                }
            }
        }
        let names = |f: &dyn Fn(&Value) -> bool| -> Vec<Value> {
            rows.iter()
                .filter(|u| f(u))
                .map(|u| u["user_name"].clone())
                .collect()
        };
        let without_mfa = names(&|u| u["mfa_enabled"] == false);
        let console_without_mfa =
            names(&|u| u["mfa_enabled"] == false && u["console_access"] == true);
        let admins = names(&|u| u["is_admin"] == true);
        let active_keys: usize = rows
            .iter()
            .filter_map(|u| u["access_keys"].as_array())
            .flatten()
            .filter(|k| k["status"] == "Active")
            .count();
        let mut payload = account_header(s);
        payload.insert(
            "counts".into(),
            json!({
                "users": rows.len(),
                "without_mfa": without_mfa.len(),
                "console_without_mfa": console_without_mfa.len(),
                "admins": admins.len(),
                "active_access_keys": active_keys,
            }),
        );
        payload.insert("users_without_mfa".into(), json!(without_mfa));
        payload.insert(
            "console_users_without_mfa".into(),
            json!(console_without_mfa),
        );
        payload.insert("admins".into(), json!(admins));
        payload.insert("users".into(), json!(rows));
        Ok(Snapshot::with_failures(Value::Object(payload), failures))
    }
}
