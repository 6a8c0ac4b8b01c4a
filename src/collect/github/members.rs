//! `kind = "github-members"`: everyone in the organisation with their role
//! (owner or member), and which of them have two-factor authentication
//! disabled (`filter=2fa_disabled`, visible to owners only; when it is not
//! visible the record is `partial` and says so).

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde_json::json;

use super::api::{Api, ApiError, seg};
use super::types::User;
use super::{Common, Kind};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Members by login.
    identities: &[&["login"], &["id"]],
    ..super::spec("github-members", &["CC6.1", "CC6.2", "CC6.3"], |s| {
        super::build_kind(s, &[], |_| Box::new(Members))
    })
};

struct Members;

/// Users with 2FA disabled, or why that cannot be known.
pub(crate) async fn two_factor_disabled(
    api: &Api,
    ctx: &Context,
    path: &str,
    failures: &mut Vec<String>,
) -> Result<Option<BTreeSet<String>>, CollectError> {
    match api.paginate::<User>(ctx, path).await {
        Ok(users) => Ok(Some(users.into_iter().map(|u| u.login).collect())),
        Err(e) if e.ends_collection() => Err(e.into()),
        Err(e @ (ApiError::Forbidden { .. } | ApiError::Status { .. })) => {
            failures.push(format!(
                "two-factor status is not visible (only organisation owners can see it): {e}"
            ));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl Kind for Members {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let org = seg(&common.org);
        let admins: Vec<User> = api
            .paginate(ctx, &format!("/orgs/{org}/members?role=admin"))
            .await?;
        let members: Vec<User> = api
            .paginate(ctx, &format!("/orgs/{org}/members?role=member"))
            .await?;
        let mut failures = Vec::new();
        let no_2fa = two_factor_disabled(
            api,
            ctx,
            &format!("/orgs/{org}/members?filter=2fa_disabled"),
            &mut failures,
        )
        .await?;
        let mut rows: Vec<_> = admins
            .iter()
            .map(|u| (u, "owner"))
            .chain(members.iter().map(|u| (u, "member")))
            .map(|(u, role)| {
                json!({
                    "login": u.login,
                    "id": u.id,
                    "role": role,
                    "site_admin": u.site_admin,
                    "two_factor_disabled": no_2fa.as_ref().map(|s| s.contains(&u.login)),
                })
            })
            .collect();
        rows.sort_by(|a, b| a["login"].as_str().cmp(&b["login"].as_str()));
        let payload = json!({
            "org": common.org,
            "counts": {
                "owners": admins.len(),
                "members": members.len(),
                "two_factor_disabled": no_2fa.as_ref().map(|s| s.len()),
            },
            "owners": admins.iter().map(|u| &u.login).collect::<BTreeSet<_>>(),
            "two_factor_disabled": no_2fa,
            "members": rows,
        });
        Ok(Snapshot {
            payload,
            cursor: None,
            failures,
        })
    }
}
