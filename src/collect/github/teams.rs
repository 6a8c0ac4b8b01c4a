//! `kind = "github-teams"`: every team with its members (and maintainers)
//! and the repositories it grants, with the permission it grants on each.
//! A team whose members or repositories cannot be read is named in the
//! record's failures, never silently left out.

use async_trait::async_trait;
use serde_json::json;

use super::api::{Api, seg};
use super::types::{Team, TeamRepo, User};
use super::{Common, Kind, per_repo};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Teams by name; their repositories and members by their own names.
    identities: &[&["repository"], &["login"], &["name"], &["id"]],
    ..super::spec("github-teams", &["CC6.1", "CC6.2", "CC6.3"], |s| {
        super::build_kind(s, &[], |_| Box::new(Teams))
    })
};

struct Teams;

#[async_trait]
impl Kind for Teams {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let org = seg(&common.org);
        let mut teams: Vec<Team> = api.paginate(ctx, &format!("/orgs/{org}/teams")).await?;
        teams.sort_by(|a, b| a.slug.cmp(&b.slug));
        let fetched = super::for_each(api, &teams, |t| {
            let org = org.clone();
            async move {
                let base = format!("/orgs/{org}/teams/{}", seg(&t.slug));
                let maintainers = api
                    .paginate::<User>(ctx, &format!("{base}/members?role=maintainer"))
                    .await;
                let members = api
                    .paginate::<User>(ctx, &format!("{base}/members?role=all"))
                    .await;
                let repos = api
                    .paginate::<TeamRepo>(ctx, &format!("{base}/repos"))
                    .await;
                (maintainers, members, repos)
            }
        })
        .await;
        let mut failures = Vec::new();
        let mut rows = Vec::new();
        for (t, (maintainers, members, repos)) in teams.iter().zip(fetched) {
            let what = format!("team {}", t.slug);
            let maintainers = per_repo(&what, "maintainers", maintainers, &mut failures)?;
            let members = per_repo(&what, "members", members, &mut failures)?;
            let repos = per_repo(&what, "repositories", repos, &mut failures)?;
            let maintainer_logins: Vec<&str> = maintainers
                .iter()
                .flatten()
                .map(|u| u.login.as_str())
                .collect();
            let members = members.map(|ms| {
                let mut v: Vec<_> = ms
                    .iter()
                    .map(|u| {
                        json!({
                            "login": u.login,
                            "role": if maintainer_logins.contains(&u.login.as_str()) { "maintainer" } else { "member" },
                        })
                    })
                    .collect();
                v.sort_by(|a, b| a["login"].as_str().cmp(&b["login"].as_str()));
                v
            });
            let repos = repos.map(|rs| {
                let mut v: Vec<_> = rs
                    .iter()
                    .map(|r| {
                        json!({
                            "repository": r.full_name,
                            "permission": r.role_name.clone().or_else(|| r.permissions.as_ref().map(|p| p.role().to_string())),
                        })
                    })
                    .collect();
                v.sort_by(|a, b| a["repository"].as_str().cmp(&b["repository"].as_str()));
                v
            });
            rows.push(json!({
                "slug": t.slug,
                "name": t.name,
                "id": t.id,
                "privacy": t.privacy,
                "permission": t.permission,
                "parent": t.parent.as_ref().map(|p| &p.slug),
                "members": members,
                "repositories": repos,
            }));
        }
        Ok(Snapshot::with_failures(
            json!({ "org": common.org, "count": rows.len(), "teams": rows }),
            failures,
        ))
    }
}
