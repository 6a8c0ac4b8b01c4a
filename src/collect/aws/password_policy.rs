//! `kind = "aws-iam-password-policy"`: the account's password policy for
//! IAM users. An account without one is evidence too: the payload says
//! `configured: false` (AWS's defaults then apply), it is not a failure.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::Session;
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = super::spec("aws-iam-password-policy", &["CC6.1"], |s| {
    super::build_kind(s, Box::new(PasswordPolicy))
});

struct PasswordPolicy;

#[async_trait]
impl Kind for PasswordPolicy {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let iam = s.iam();
        let policy = match s
            .call(
                ctx,
                "iam:GetAccountPasswordPolicy",
                iam.get_account_password_policy().send(),
            )
            .await
        {
            Ok(out) => out.password_policy().map(|p| {
                json!({
                    "minimum_password_length": p.minimum_password_length(),
                    "require_symbols": p.require_symbols(),
                    "require_numbers": p.require_numbers(),
                    "require_uppercase_characters": p.require_uppercase_characters(),
                    "require_lowercase_characters": p.require_lowercase_characters(),
                    "allow_users_to_change_password": p.allow_users_to_change_password(),
                    "expire_passwords": p.expire_passwords(),
                    "max_password_age": p.max_password_age(),
                    "password_reuse_prevention": p.password_reuse_prevention(),
                    "hard_expiry": p.hard_expiry(),
                })
            }),
            Err(e) if e.code() == Some("NoSuchEntity") => None,
            Err(e) => return Err(e.into()),
        };
        let mut payload = account_header(s);
        payload.insert("configured".into(), json!(policy.is_some()));
        payload.insert(
            "status".into(),
            json!(if policy.is_some() { "set" } else { "none set" }),
        );
        payload.insert("password_policy".into(), policy.unwrap_or(Value::Null));
        Ok(Snapshot::new(Value::Object(payload)))
    }
}
