//! `kind = "aws-account-summary"`: the root user's MFA and access keys, the
//! account aliases, and IAM's entity counts and quotas (GetAccountSummary).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::Session;
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = super::spec("aws-account-summary", &["CC6.1", "CC6.2", "CC6.3"], |s| {
    super::build_kind(s, Box::new(Summary))
});

struct Summary;

/// `AccountMFAEnabled` → `account_mfa_enabled`.
fn snake(key: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

#[async_trait]
impl Kind for Summary {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let iam = s.iam();
        let summary = s
            .call(
                ctx,
                "iam:GetAccountSummary",
                iam.get_account_summary().send(),
            )
            .await?;
        let map: BTreeMap<String, i32> = summary
            .summary_map()
            .map(|m| m.iter().map(|(k, v)| (snake(k.as_str()), *v)).collect())
            .unwrap_or_default();
        let mut aliases = Vec::new();
        let mut marker = None;
        loop {
            let out = s
                .call(
                    ctx,
                    "iam:ListAccountAliases",
                    iam.list_account_aliases().set_marker(marker).send(),
                )
                .await?;
            aliases.extend(out.account_aliases().iter().cloned());
            marker = out.marker().map(str::to_string);
            if !out.is_truncated() || marker.is_none() {
                break;
            }
        }
        aliases.sort();
        let flag = |k: &str| map.get(k).map(|v| *v > 0);
        let mut payload = account_header(s);
        payload.insert("aliases".into(), json!(aliases));
        payload.insert(
            "root_mfa_enabled".into(),
            json!(flag("account_mfa_enabled")),
        );
        payload.insert(
            "root_access_keys_present".into(),
            json!(flag("account_access_keys_present")),
        );
        payload.insert(
            "root_signing_certificates_present".into(),
            json!(flag("account_signing_certificates_present")),
        );
        payload.insert("summary".into(), json!(map));
        Ok(Snapshot::new(Value::Object(payload)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn summary_keys_become_snake_case() {
        assert_eq!(super::snake("AccountMFAEnabled"), "account_mfa_enabled");
        assert_eq!(
            super::snake("AccountAccessKeysPresent"),
            "account_access_keys_present"
        );
        assert_eq!(super::snake("PoliciesQuota"), "policies_quota");
        assert_eq!(super::snake("MFADevicesInUse"), "mfa_devices_in_use");
    }
}
