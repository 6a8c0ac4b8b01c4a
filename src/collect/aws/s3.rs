//! `kind = "aws-s3-buckets"`: every bucket of the account with its region,
//! default encryption, public access block, versioning and MFA delete,
//! access logging, bucket policy (decoded) and policy status, object
//! ownership and ACL grants, Object Lock configuration and lifecycle
//! rules; plus the account-level public access block (S3 Control).
//!
//! S3 answers "not configured" with an error (NoSuchBucketPolicy,
//! ServerSideEncryptionConfigurationNotFoundError, …); those are facts,
//! recorded as `null`, never failures.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{self, AwsError, Session};
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Buckets by name, policy statements by `Sid`, lifecycle rules by id.
    identities: &[&["name"], &["Sid"], &["id"]],
    ..super::spec("aws-s3-buckets", &["CC6.1", "CC6.7", "A1.2"], |s| {
        super::build_kind(s, Box::new(Buckets))
    })
};

struct Buckets;

/// `Ok(None)` when the error is one of the codes that mean "not
/// configured".
fn absent<T>(r: Result<T, AwsError>, codes: &[&str]) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code().is_some_and(|c| codes.contains(&c)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn pab(c: &aws_sdk_s3::types::PublicAccessBlockConfiguration) -> Value {
    json!({
        "block_public_acls": c.block_public_acls(),
        "ignore_public_acls": c.ignore_public_acls(),
        "block_public_policy": c.block_public_policy(),
        "restrict_public_buckets": c.restrict_public_buckets(),
    })
}

/// The region of a `LocationConstraint` (empty is us-east-1, `EU` is
/// eu-west-1: S3's two historical spellings).
fn location_region(constraint: Option<&str>) -> String {
    match constraint {
        None | Some("") => "us-east-1".into(),
        Some("EU") => "eu-west-1".into(),
        Some(r) => r.to_string(),
    }
}

/// Versioning: (status, MFA delete). Some S3-compatible servers name the
/// root element of this answer differently, which the SDK refuses to
/// parse; the two fields are unambiguous in the raw body, so they are read
/// from it then (as the S3 store does).
async fn versioning(
    s: &Session,
    ctx: &Context,
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Value, AwsError> {
    let fut = async {
        match client.get_bucket_versioning().bucket(bucket).send().await {
            Ok(o) => Ok((
                o.status().map(|s| s.as_str().to_string()),
                o.mfa_delete().map(|m| m.as_str().to_string()),
            )),
            Err(e) => {
                let body = e
                    .raw_response()
                    .filter(|r| r.status().is_success())
                    .and_then(|r| r.body().bytes())
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map(str::to_string);
                match body {
                    Some(b) => Ok((xml_field(&b, "Status"), xml_field(&b, "MfaDelete"))),
                    None => Err(e),
                }
            }
        }
    };
    let (status, mfa) = s.call(ctx, "s3:GetBucketVersioning", fut).await?;
    Ok(json!({
        "status": status,
        "mfa_delete": mfa,
        "enabled": status.as_deref() == Some("Enabled"),
    }))
}

/// The text of `<name>…</name>` in a small XML answer.
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

async fn bucket_view(
    s: &Session,
    ctx: &Context,
    b: &aws_sdk_s3::types::Bucket,
    home: &aws_sdk_s3::Client,
) -> Result<(Value, Vec<String>), CollectError> {
    let name = b.name().unwrap_or_default();
    let mut failures = Vec::new();
    let what = |w: &str| format!("bucket {name}: {w}");
    let region = match b.bucket_region() {
        Some(r) => Some(r.to_string()),
        None => api::part(
            || what("location"),
            s.call(
                ctx,
                "s3:GetBucketLocation",
                home.get_bucket_location().bucket(name).send(),
            )
            .await
            .map(|o| location_region(o.location_constraint().map(|c| c.as_str()))),
            &mut failures,
        )?,
    };
    let client = match &region {
        Some(r) if r != &s.home_region => s.s3(r),
        _ => home.clone(),
    };
    let c = &client;
    let encryption = absent(
        s.call(
            ctx,
            "s3:GetBucketEncryption",
            c.get_bucket_encryption().bucket(name).send(),
        )
        .await,
        &["ServerSideEncryptionConfigurationNotFoundError"],
    )
    .map(|o| {
        o.and_then(|o| {
            o.server_side_encryption_configuration().map(|conf| {
                let rules: Vec<Value> = conf
                    .rules()
                    .iter()
                    .map(|r| {
                        let d = r.apply_server_side_encryption_by_default();
                        json!({
                            "sse_algorithm": d.map(|d| d.sse_algorithm().as_str()),
                            "kms_master_key_id": d.and_then(|d| d.kms_master_key_id()),
                            "bucket_key_enabled": r.bucket_key_enabled(),
                        })
                    })
                    .collect();
                json!({ "rules": rules })
            })
        })
    });
    let encryption = api::part(|| what("encryption"), encryption, &mut failures)?;
    let public_access_block = absent(
        s.call(
            ctx,
            "s3:GetBucketPublicAccessBlock",
            c.get_public_access_block().bucket(name).send(),
        )
        .await,
        &["NoSuchPublicAccessBlockConfiguration"],
    )
    .map(|o| o.and_then(|o| o.public_access_block_configuration().map(pab)));
    let public_access_block = api::part(
        || what("public access block"),
        public_access_block,
        &mut failures,
    )?;
    let versioning = versioning(s, ctx, c, name).await;
    let versioning = api::part(|| what("versioning"), versioning, &mut failures)?;
    let logging = s
        .call(
            ctx,
            "s3:GetBucketLogging",
            c.get_bucket_logging().bucket(name).send(),
        )
        .await
        .map(|o| {
            o.logging_enabled().map(
                |l| json!({"target_bucket": l.target_bucket(), "target_prefix": l.target_prefix()}),
            )
        });
    let logging = api::part(|| what("logging"), logging, &mut failures)?;
    let policy = absent(
        s.call(
            ctx,
            "s3:GetBucketPolicy",
            c.get_bucket_policy().bucket(name).send(),
        )
        .await,
        &["NoSuchBucketPolicy"],
    )
    .map(|o| o.and_then(|o| o.policy().map(api::policy_document)));
    let policy = api::part(|| what("policy"), policy, &mut failures)?;
    let policy_status = absent(
        s.call(
            ctx,
            "s3:GetBucketPolicyStatus",
            c.get_bucket_policy_status().bucket(name).send(),
        )
        .await,
        &["NoSuchBucketPolicy"],
    )
    .map(|o| {
        o.and_then(|o| {
            o.policy_status()
                .map(|p| json!({"is_public": p.is_public()}))
        })
    });
    let policy_status = api::part(|| what("policy status"), policy_status, &mut failures)?;
    let ownership = absent(
        s.call(
            ctx,
            "s3:GetBucketOwnershipControls",
            c.get_bucket_ownership_controls().bucket(name).send(),
        )
        .await,
        &["OwnershipControlsNotFoundError"],
    )
    .map(|o| {
        o.and_then(|o| {
            o.ownership_controls()
                .and_then(|c| c.rules().first())
                .map(|r| json!(r.object_ownership().as_str()))
        })
    });
    let ownership = api::part(|| what("ownership controls"), ownership, &mut failures)?;
    let acl = s
        .call(
            ctx,
            "s3:GetBucketAcl",
            c.get_bucket_acl().bucket(name).send(),
        )
        .await
        .map(|o| {
            let grants: Vec<Value> = o
                .grants()
                .iter()
                .map(|g| {
                    let e = g.grantee();
                    json!({
                        "grantee_type": e.map(|e| e.r#type().as_str()),
                        "grantee_id": e.and_then(|e| e.id()),
                        "grantee_uri": e.and_then(|e| e.uri()),
                        "permission": g.permission().map(|p| p.as_str()),
                    })
                })
                .collect();
            let public = grants.iter().any(|g| {
                g["grantee_uri"].as_str().is_some_and(|u| {
                    u.ends_with("/global/AllUsers") || u.ends_with("/global/AuthenticatedUsers")
                })
            });
            json!({
                "owner_id": o.owner().and_then(|o| o.id()),
                "grants": grants,
                "grants_to_everyone": public,
            })
        });
    let acl = api::part(|| what("ACL"), acl, &mut failures)?;
    let object_lock = absent(
        s.call(
            ctx,
            "s3:GetBucketObjectLockConfiguration",
            c.get_object_lock_configuration().bucket(name).send(),
        )
        .await,
        &["ObjectLockConfigurationNotFoundError"],
    )
    .map(|o| {
        o.and_then(|o| {
            o.object_lock_configuration().map(|l| {
                let d = l.rule().and_then(|r| r.default_retention());
                json!({
                    "enabled": l.object_lock_enabled().map(|e| e.as_str()) == Some("Enabled"),
                    "default_mode": d.and_then(|d| d.mode()).map(|m| m.as_str()),
                    "default_days": d.and_then(|d| d.days()),
                    "default_years": d.and_then(|d| d.years()),
                })
            })
        })
    });
    let object_lock = api::part(|| what("object lock"), object_lock, &mut failures)?;
    let lifecycle = absent(
        s.call(
            ctx,
            "s3:GetLifecycleConfiguration",
            c.get_bucket_lifecycle_configuration().bucket(name).send(),
        )
        .await,
        &["NoSuchLifecycleConfiguration"],
    )
    .map(|o| {
        o.map(|o| {
            let rules: Vec<Value> = o
                .rules()
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id(),
                        "status": r.status().as_str(),
                        "expiration_days": r.expiration().and_then(|e| e.days()),
                        "noncurrent_version_expiration_days": r
                            .noncurrent_version_expiration()
                            .and_then(|e| e.noncurrent_days()),
                        "transitions": r.transitions().len(),
                    })
                })
                .collect();
            json!({ "rules": rules })
        })
    });
    let lifecycle = api::part(|| what("lifecycle"), lifecycle, &mut failures)?;
    let default_encryption = encryption.as_ref().and_then(|e| {
        e.as_ref()
            .and_then(|e| e["rules"].get(0))
            .and_then(|r| r["sse_algorithm"].as_str())
            .map(str::to_string)
    });
    let view = json!({
        "name": name,
        "region": region,
        "creation_date": api::time(b.creation_date()),
        "encrypted": encryption.as_ref().map(|e| e.is_some()),
        "default_encryption": default_encryption,
        "encryption": encryption,
        "public_access_block": public_access_block,
        "versioning": versioning,
        "logging": logging,
        "logging_enabled": logging.as_ref().map(|l| l.is_some()),
        "policy": policy,
        "policy_status": policy_status,
        "object_ownership": ownership,
        "acl": acl,
        "object_lock": object_lock,
        "lifecycle": lifecycle,
    });
    Ok((view, failures))
}

#[async_trait]
impl Kind for Buckets {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let home = s.s3(&s.home_region);
        let mut buckets = Vec::new();
        let mut token = None;
        loop {
            let out = s
                .call(
                    ctx,
                    "s3:ListAllMyBuckets",
                    home.list_buckets()
                        .max_buckets(1000)
                        .set_continuation_token(token)
                        .send(),
                )
                .await?;
            buckets.extend(out.buckets().iter().cloned());
            token = out.continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        buckets.sort_by(|a, b| a.name().cmp(&b.name()));
        let mut failures = Vec::new();
        let control = s.s3control();
        let account_pab = absent(
            s.call(
                ctx,
                "s3:GetAccountPublicAccessBlock",
                control
                    .get_public_access_block()
                    .account_id(&s.account_id)
                    .send(),
            )
            .await,
            &["NoSuchPublicAccessBlockConfiguration"],
        )
        .map(|o| {
            o.and_then(|o| {
                o.public_access_block_configuration().map(|c| {
                    json!({
                        "block_public_acls": c.block_public_acls(),
                        "ignore_public_acls": c.ignore_public_acls(),
                        "block_public_policy": c.block_public_policy(),
                        "restrict_public_buckets": c.restrict_public_buckets(),
                    })
                })
            })
        });
        let account_pab = api::part(
            || "account public access block".to_string(),
            account_pab,
            &mut failures,
        )?;
        // Ten calls per bucket: a few buckets in flight keep the S3 limit
        // busy.
        let views = api::for_each(&buckets, 8, |b| bucket_view(s, ctx, b, &home)).await;
        let mut rows = Vec::with_capacity(views.len());
        for v in views {
            let (v, f) = v?;
            failures.extend(f);
            rows.push(v);
        }
        let names = |f: &dyn Fn(&Value) -> bool| -> Vec<Value> {
            rows.iter()
                .filter(|b| f(b))
                .map(|b| b["name"].clone())
                .collect()
        };
        let unencrypted = names(&|b| b["encrypted"] == false);
        let without_pab = names(&|b| b["public_access_block"].is_null());
        let public = names(&|b| {
            b["policy_status"]["is_public"] == true || b["acl"]["grants_to_everyone"] == true
        });
        let mut payload = account_header(s);
        payload.insert(
            "account_public_access_block".into(),
            json!(account_pab.flatten()),
        );
        payload.insert("count".into(), json!(rows.len()));
        payload.insert("unencrypted".into(), json!(unencrypted));
        payload.insert("without_public_access_block".into(), json!(without_pab));
        payload.insert("public".into(), json!(public));
        payload.insert("buckets".into(), json!(rows));
        Ok(Snapshot::with_failures(Value::Object(payload), failures))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn location_constraints_name_regions() {
        assert_eq!(super::location_region(None), "us-east-1");
        assert_eq!(super::location_region(Some("EU")), "eu-west-1");
        assert_eq!(super::location_region(Some("ap-south-1")), "ap-south-1");
    }

    #[test]
    fn versioning_is_read_from_xml_the_sdk_refuses() {
        let body = "<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>";
        assert_eq!(super::xml_field(body, "Status").as_deref(), Some("Enabled"));
        assert_eq!(
            super::xml_field(body, "MfaDelete").as_deref(),
            Some("Disabled")
        );
        assert_eq!(super::xml_field(body, "Nope"), None);
    }
}
