//! `kind = "github-invitations"`: pending invitations to the organisation —
//! access that is about to be granted, with who granted it.

use async_trait::async_trait;
use serde_json::json;

use super::api::{Api, seg};
use super::types::Invitation;
use super::{Common, Kind};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Invitations by invitee (a login, else an email), else by id.
    identities: &[&["login"], &["email"], &["id"]],
    ..super::spec("github-invitations", &["CC6.2"], |s| {
        super::build_kind(s, &[], |_| Box::new(Invitations))
    })
};

struct Invitations;

#[async_trait]
impl Kind for Invitations {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let mut inv: Vec<Invitation> = api
            .paginate(ctx, &format!("/orgs/{}/invitations", seg(&common.org)))
            .await?;
        inv.sort_by_key(|i| i.id);
        let rows: Vec<_> = inv
            .iter()
            .map(|i| {
                json!({
                    "id": i.id,
                    "login": i.login,
                    "email": i.email,
                    "role": i.role,
                    "created_at": i.created_at,
                    "inviter": i.inviter.as_ref().map(|u| &u.login),
                    "team_count": i.team_count,
                    "source": i.invitation_source,
                })
            })
            .collect();
        Ok(Snapshot::new(json!({
            "org": common.org,
            "count": rows.len(),
            "invitations": rows,
        })))
    }
}
