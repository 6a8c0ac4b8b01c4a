//! `kind = "github-webhooks"`: where the organisation and its repositories
//! send events — the receiving host (never the full URL, which may carry
//! credentials, and never the shared secret), the events, whether active,
//! and whether TLS verification is off.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{Api, seg};
use super::types::Hook;
use super::{Common, Kind, per_repo};
use crate::collect::{CollectError, Context, KindSpec, Previous, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Hooks by name (`web` for all: unique only alone), else by id.
    identities: &[&["name"], &["id"]],
    ..super::spec("github-webhooks", &["CC6.1", "CC6.6", "CC7.2"], |s| {
        super::build_kind(s, &[], |_| Box::new(Webhooks))
    })
};

struct Webhooks;

/// The host (and port) of a hook URL; userinfo, path and query are
/// dropped, since tokens are often embedded there.
pub(crate) fn host(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let a = uri.authority()?;
    Some(match a.port_u16() {
        Some(p) => format!("{}:{p}", a.host()),
        None => a.host().to_string(),
    })
}

fn view(scope: &str, h: &Hook) -> Value {
    let insecure = match &h.config.insecure_ssl {
        Some(Value::String(s)) => Some(s == "1"),
        Some(Value::Number(n)) => Some(n.as_u64() == Some(1)),
        _ => None,
    };
    let mut events = h.events.clone();
    events.sort();
    json!({
        "scope": scope,
        "id": h.id,
        "name": h.name,
        "active": h.active,
        "events": events,
        "host": h.config.url.as_deref().and_then(host),
        "https": h.config.url.as_deref().map(|u| u.starts_with("https://")),
        "insecure_ssl": insecure,
        "content_type": h.config.content_type,
        "created_at": h.created_at,
        "updated_at": h.updated_at,
    })
}

#[async_trait]
impl Kind for Webhooks {
    async fn collect(
        &self,
        api: &Api,
        common: &Common,
        ctx: &Context,
        _previous: Option<&Previous>,
    ) -> Result<Snapshot, CollectError> {
        let mut failures = Vec::new();
        let org = seg(&common.org);
        let org_hooks = api
            .paginate::<Hook>(ctx, &format!("/orgs/{org}/hooks"))
            .await;
        let mut rows = Vec::new();
        if let Some(mut hs) = per_repo(
            &common.org,
            "organisation webhooks",
            org_hooks,
            &mut failures,
        )? {
            hs.sort_by_key(|h| h.id);
            rows.extend(hs.iter().map(|h| view("organization", h)));
        }
        let repos = super::covered_repos(api, common, ctx, &mut failures).await?;
        let hooks = super::for_each(api, &repos, |r| {
            let path = format!("/repos/{org}/{}/hooks", seg(&r.name));
            async move { api.paginate::<Hook>(ctx, &path).await }
        })
        .await;
        for (r, res) in repos.iter().zip(hooks) {
            if let Some(mut hs) = per_repo(&r.name, "webhooks", res, &mut failures)? {
                hs.sort_by_key(|h| h.id);
                rows.extend(hs.iter().map(|h| view(&r.name, h)));
            }
        }
        let insecure = rows
            .iter()
            .filter(|h| h["insecure_ssl"] == json!(true) || h["https"] == json!(false))
            .count();
        Ok(Snapshot {
            payload: json!({
                "org": common.org,
                "repositories_checked": repos.len(),
                "count": rows.len(),
                "without_tls_verification": insecure,
                "webhooks": rows,
            }),
            cursor: None,
            failures,
        })
    }
}
