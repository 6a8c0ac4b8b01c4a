//! `kind = "aws-monitoring"`: the detective controls of each configured
//! region — AWS Config recorders (what they record, whether recording) and
//! delivery channels, GuardDuty detectors, and Security Hub enablement and
//! the standards subscribed to. A service that is simply not set up in a
//! region is a fact (`enabled: false`, empty lists), not a failure.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api::{self, AwsError, Session};
use super::{Kind, account_header};
use crate::collect::{CollectError, Context, KindSpec, Snapshot};

/// Registration of the kind.
pub const SPEC: KindSpec = KindSpec {
    // GuardDuty detectors by id; Config recorders and channels by name.
    identities: &[&["detector_id"], &["name"]],
    ..super::spec("aws-monitoring", &["CC7.2", "CC7.3"], |s| {
        super::build_kind(s, Box::new(Monitoring))
    })
};

struct Monitoring;

async fn config(s: &Session, ctx: &Context, region: &str) -> Result<Value, AwsError> {
    let c = s.config(region);
    let recorders = s
        .call(
            ctx,
            "config:DescribeConfigurationRecorders",
            c.describe_configuration_recorders().send(),
        )
        .await?;
    let status = s
        .call(
            ctx,
            "config:DescribeConfigurationRecorderStatus",
            c.describe_configuration_recorder_status().send(),
        )
        .await?;
    let channels = s
        .call(
            ctx,
            "config:DescribeDeliveryChannels",
            c.describe_delivery_channels().send(),
        )
        .await?;
    let recorders: Vec<Value> = recorders
        .configuration_recorders()
        .iter()
        .map(|r| {
            let st = status
                .configuration_recorders_status()
                .iter()
                .find(|x| x.name() == r.name());
            let g = r.recording_group();
            json!({
                "name": r.name(),
                "role_arn": r.role_arn(),
                "all_supported": g.map(|g| g.all_supported()),
                "include_global_resource_types": g.map(|g| g.include_global_resource_types()),
                "resource_types": g.map(|g| g.resource_types().iter().map(|t| t.as_str()).collect::<Vec<_>>()),
                "recording": st.map(|s| s.recording()),
                "last_status": st.and_then(|s| s.last_status()).map(|s| s.as_str()),
                "last_start_time": api::time(st.and_then(|s| s.last_start_time())),
                "last_stop_time": api::time(st.and_then(|s| s.last_stop_time())),
                "last_error_code": st.and_then(|s| s.last_error_code()),
            })
        })
        .collect();
    let channels: Vec<Value> = channels
        .delivery_channels()
        .iter()
        .map(|d| {
            json!({
                "name": d.name(),
                "s3_bucket_name": d.s3_bucket_name(),
                "s3_key_prefix": d.s3_key_prefix(),
                "sns_topic_arn": d.sns_topic_arn(),
                "delivery_frequency": d.config_snapshot_delivery_properties()
                    .and_then(|p| p.delivery_frequency())
                    .map(|f| f.as_str()),
            })
        })
        .collect();
    let recording = recorders.iter().any(|r| r["recording"] == true);
    Ok(json!({
        "enabled": recording,
        "recorders": recorders,
        "delivery_channels": channels,
    }))
}

async fn guardduty(s: &Session, ctx: &Context, region: &str) -> Result<Value, AwsError> {
    let c = s.guardduty(region);
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let out = s
            .call(
                ctx,
                "guardduty:ListDetectors",
                c.list_detectors().set_next_token(token).send(),
            )
            .await?;
        ids.extend(out.detector_ids().iter().cloned());
        token = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    ids.sort();
    let mut detectors = Vec::new();
    for id in ids {
        let d = s
            .call(
                ctx,
                "guardduty:GetDetector",
                c.get_detector().detector_id(&id).send(),
            )
            .await?;
        detectors.push(json!({
            "detector_id": id,
            "status": d.status().map(|s| s.as_str()),
            "finding_publishing_frequency": d.finding_publishing_frequency().map(|f| f.as_str()),
            "created_at": d.created_at(),
            "updated_at": d.updated_at(),
        }));
    }
    let enabled = detectors.iter().any(|d| d["status"] == "ENABLED");
    Ok(json!({ "enabled": enabled, "detectors": detectors }))
}

/// Security Hub; the standards are a part of their own, so that an
/// account where they cannot be read still records the hub.
async fn security_hub(
    s: &Session,
    ctx: &Context,
    region: &str,
    failures: &mut Vec<String>,
) -> Result<Value, CollectError> {
    let c = s.securityhub(region);
    let hub = match s
        .call(ctx, "securityhub:DescribeHub", c.describe_hub().send())
        .await
    {
        Ok(h) => h,
        // "Account is not subscribed to AWS Security Hub".
        Err(e) if e.code() == Some("InvalidAccessException") => {
            return Ok(json!({"enabled": false, "hub_arn": null, "standards": []}));
        }
        Err(e) => {
            return api::part::<()>(
                || format!("region {region}: Security Hub"),
                Err(e),
                failures,
            )
            .map(|_| Value::Null);
        }
    };
    let mut standards = Vec::new();
    let mut token = None;
    let read = loop {
        match s
            .call(
                ctx,
                "securityhub:GetEnabledStandards",
                c.get_enabled_standards().set_next_token(token).send(),
            )
            .await
        {
            Ok(out) => {
                standards.extend(out.standards_subscriptions().iter().map(|x| {
                    json!({
                        "standards_arn": x.standards_arn(),
                        "standards_subscription_arn": x.standards_subscription_arn(),
                        "status": x.standards_status().map(|s| s.as_str()),
                    })
                }));
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    let read = api::part(
        || format!("region {region}: Security Hub standards"),
        read,
        failures,
    )?;
    Ok(json!({
        "enabled": true,
        "hub_arn": hub.hub_arn(),
        "subscribed_at": hub.subscribed_at(),
        "auto_enable_controls": hub.auto_enable_controls(),
        "standards": read.map(|_| standards),
    }))
}

async fn region_view(
    s: &Session,
    ctx: &Context,
    region: &str,
) -> Result<(Value, Vec<String>), CollectError> {
    let mut failures = Vec::new();
    let cfg = config(s, ctx, region).await;
    let cfg = api::part(
        || format!("region {region}: AWS Config"),
        cfg,
        &mut failures,
    )?;
    let gd = guardduty(s, ctx, region).await;
    let gd = api::part(|| format!("region {region}: GuardDuty"), gd, &mut failures)?;
    let hub = security_hub(s, ctx, region, &mut failures).await?;
    Ok((
        json!({
            "config": cfg,
            "guardduty": gd,
            "security_hub": hub,
        }),
        failures,
    ))
}

#[async_trait]
impl Kind for Monitoring {
    async fn collect(&self, s: &Session, ctx: &Context) -> Result<Snapshot, CollectError> {
        let views = api::for_each(&s.regions, 8, |r| region_view(s, ctx, r)).await;
        let mut failures = Vec::new();
        let mut regions = BTreeMap::new();
        for (r, v) in s.regions.iter().zip(views) {
            let (v, f) = v?;
            failures.extend(f);
            regions.insert(r.clone(), v);
        }
        let without = |svc: &str| -> Vec<&String> {
            regions
                .iter()
                .filter(|(_, v)| v[svc]["enabled"] == false)
                .map(|(r, _)| r)
                .collect()
        };
        let mut payload = account_header(s);
        payload.insert("regions_without_config".into(), json!(without("config")));
        payload.insert(
            "regions_without_guardduty".into(),
            json!(without("guardduty")),
        );
        payload.insert(
            "regions_without_security_hub".into(),
            json!(without("security_hub")),
        );
        payload.insert("regions".into(), json!(regions));
        Ok(Snapshot::with_failures(Value::Object(payload), failures))
    }
}
