//! `kind = "aws-cloudtrail"`: the trails that log the account's API
//! activity, in every configured region — logging status, multi-region and
//! organisation scope, log file validation, KMS encryption, CloudWatch Logs
//! delivery, event selectors and advanced event selectors — and which
//! regions no logging trail covers.
//!
//! Trails are listed in each region with their shadows (a multi-region or
//! organisation trail shows in every region it covers), read once each by
//! ARN in its home region.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{self, Session};
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // Trails by ARN, advanced event selectors by name.
    identities: &[&["arn"], &["name"]],
    ..super::spec("aws-cloudtrail", &["CC7.2", "CC7.3"], |s| {
        super::build_kind(s, Box::new(Trails))
    })
};

struct Trails;

fn selectors(
    out: &aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput,
) -> (Value, Value) {
    let basic: Vec<Value> = out
        .event_selectors()
        .iter()
        .map(|e| {
            json!({
                "read_write_type": e.read_write_type().map(|t| t.as_str()),
                "include_management_events": e.include_management_events(),
                "exclude_management_event_sources": e.exclude_management_event_sources(),
                "data_resources": e.data_resources().iter().map(|d| json!({
                    "type": d.r#type(),
                    "values": d.values(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let advanced: Vec<Value> = out
        .advanced_event_selectors()
        .iter()
        .map(|a| {
            json!({
                "name": a.name(),
                "field_selectors": a.field_selectors().iter().map(|f| json!({
                    "field": f.field(),
                    "equals": f.equals(),
                    "starts_with": f.starts_with(),
                    "ends_with": f.ends_with(),
                    "not_equals": f.not_equals(),
                    "not_starts_with": f.not_starts_with(),
                    "not_ends_with": f.not_ends_with(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    (json!(basic), json!(advanced))
}

async fn trail_view(
    s: &Session,
    ctx: &Context,
    t: &aws_sdk_cloudtrail::types::Trail,
    fallback_region: &str,
) -> Result<(Value, Vec<String>), CollectError> {
    let arn = t.trail_arn().unwrap_or_default();
    let home = t.home_region().unwrap_or(fallback_region);
    let client = s.cloudtrail(home);
    let mut failures = Vec::new();
    let status = s
        .call(
            ctx,
            "cloudtrail:GetTrailStatus",
            client.get_trail_status().name(arn).send(),
        )
        .await;
    let status = api::part(|| format!("trail {arn}: status"), status, &mut failures)?;
    let sel = s
        .call(
            ctx,
            "cloudtrail:GetEventSelectors",
            client.get_event_selectors().trail_name(arn).send(),
        )
        .await
        .map(|o| selectors(&o));
    let sel = api::part(
        || format!("trail {arn}: event selectors"),
        sel,
        &mut failures,
    )?;
    let st = status.as_ref();
    let view = json!({
        "name": t.name(),
        "arn": arn,
        "home_region": home,
        "is_logging": st.and_then(|s| s.is_logging()),
        "is_multi_region_trail": t.is_multi_region_trail(),
        "is_organization_trail": t.is_organization_trail(),
        "log_file_validation_enabled": t.log_file_validation_enabled(),
        "include_global_service_events": t.include_global_service_events(),
        "s3_bucket_name": t.s3_bucket_name(),
        "s3_key_prefix": t.s3_key_prefix(),
        "kms_key_id": t.kms_key_id(),
        "encrypted": t.kms_key_id().is_some(),
        "cloud_watch_logs_log_group_arn": t.cloud_watch_logs_log_group_arn(),
        "sns_topic_arn": t.sns_topic_arn(),
        "latest_delivery_time": api::time(st.and_then(|s| s.latest_delivery_time())),
        "latest_delivery_error": st.and_then(|s| s.latest_delivery_error()),
        "latest_digest_delivery_time": api::time(st.and_then(|s| s.latest_digest_delivery_time())),
        "latest_cloud_watch_logs_delivery_time": api::time(st.and_then(|s| s.latest_cloud_watch_logs_delivery_time())),
        "start_logging_time": api::time(st.and_then(|s| s.start_logging_time())),
        "stop_logging_time": api::time(st.and_then(|s| s.stop_logging_time())),
        "event_selectors": sel.as_ref().map(|s| &s.0),
        "advanced_event_selectors": sel.as_ref().map(|s| &s.1),
    });
    Ok((view, failures))
}

#[async_trait]
impl Kind for Trails {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let listed = api::for_each(&s.regions, 8, |region| {
            let client = s.cloudtrail(region);
            async move {
                s.call(
                    ctx,
                    "cloudtrail:DescribeTrails",
                    client.describe_trails().include_shadow_trails(true).send(),
                )
                .await
            }
        })
        .await;
        let mut failures = Vec::new();
        // ARN → (trail, a region it was listed in); region → ARNs covering it.
        let mut trails: BTreeMap<String, (aws_sdk_cloudtrail::types::Trail, String)> =
            BTreeMap::new();
        let mut covering: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
        for (region, r) in s.regions.iter().zip(listed) {
            match api::part(|| format!("region {region}: trails"), r, &mut failures)? {
                Some(out) => {
                    let arns = covering
                        .entry(region.clone())
                        .or_insert_with(|| Some(BTreeSet::new()));
                    for t in out.trail_list() {
                        let arn = t.trail_arn().unwrap_or_default().to_string();
                        if let Some(a) = arns.as_mut() {
                            a.insert(arn.clone());
                        }
                        trails
                            .entry(arn)
                            .or_insert_with(|| (t.clone(), region.clone()));
                    }
                }
                None => {
                    covering.insert(region.clone(), None);
                }
            }
        }
        let list: Vec<_> = trails.values().collect();
        let views = api::for_each(&list, 8, |(t, region)| trail_view(s, ctx, t, region)).await;
        let mut rows = Vec::with_capacity(views.len());
        let mut logging = BTreeSet::new();
        for v in views {
            let (v, f) = v?;
            failures.extend(f);
            if v["is_logging"] == true {
                logging.insert(v["arn"].as_str().unwrap_or_default().to_string());
            }
            rows.push(v);
        }
        let regions: BTreeMap<&String, Value> = covering
            .iter()
            .map(|(r, arns)| {
                let v = match arns {
                    Some(a) => json!({
                        "trails": a,
                        "logging": a.iter().any(|x| logging.contains(x)),
                    }),
                    None => json!({"trails": null, "logging": null}),
                };
                (r, v)
            })
            .collect();
        let uncovered: Vec<&String> = regions
            .iter()
            .filter(|(_, v)| v["logging"] == false)
            .map(|(r, _)| *r)
            .collect();
        let mut payload = account_header(s);
        payload.insert("count".into(), json!(rows.len()));
        payload.insert("regions_without_logging_trail".into(), json!(uncovered));
        payload.insert("trails".into(), json!(rows));
        payload.insert("regions".into(), json!(regions));
        Ok(Snapshot::with_failures(Value::Object(payload), failures))
    }
}
