//! `kind = "github-outside-collaborators"`: people with access to some of
//! the organisation's repositories without being members, and which of
//! them have 2FA disabled.

use async_trait::async_trait;
use serde_json::json;

use super::api::{Api, seg};
use super::types::User;
use super::{Common, Kind};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Collaborators by login.
    identities: &[&["login"], &["id"]],
    ..super::spec("github-outside-collaborators", &["CC6.1", "CC6.2"], |s| {
        super::build_kind(s, &[], |_| Box::new(Outside))
    })
};

struct Outside;

#[async_trait]
impl Kind for Outside {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let org = seg(&common.org);
        let mut users: Vec<User> = api
            .paginate(ctx, &format!("/orgs/{org}/outside_collaborators"))
            .await?;
        users.sort_by(|a, b| a.login.cmp(&b.login));
        let mut failures = Vec::new();
        let no_2fa = super::members::two_factor_disabled(
            api,
            ctx,
            &format!("/orgs/{org}/outside_collaborators?filter=2fa_disabled"),
            &mut failures,
        )
        .await?;
        let rows: Vec<_> = users
            .iter()
            .map(|u| {
                json!({
                    "login": u.login,
                    "id": u.id,
                    "two_factor_disabled": no_2fa.as_ref().map(|s| s.contains(&u.login)),
                })
            })
            .collect();
        Ok(Snapshot {
            payload: json!({
                "org": common.org,
                "count": users.len(),
                "two_factor_disabled": no_2fa,
                "outside_collaborators": rows,
            }),
            cursor: None,
            failures,
        })
    }
}
