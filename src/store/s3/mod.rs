//! The S3 store: one object per key under `s3://bucket/prefix/`, written
//! once and locked.
//!
//! Every PUT carries the object's SHA-256 (`x-amz-checksum-sha256`, checked
//! by S3 before it accepts the bytes), `If-None-Match: *` (S3 refuses to
//! replace an existing key) and Object Lock retention in COMPLIANCE mode, so
//! that nobody — the agent's own credentials included — can delete or
//! overwrite evidence until the retention date. Writers check at start-up
//! that the bucket has versioning and Object Lock enabled.
//!
//! Leases (single writer per stream and per agent chain) live beside the
//! evidence (the `lease` module).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, ObjectLockEnabled, ObjectLockMode,
    ServerSideEncryption,
};
use base64::Engine;
use sha2::Digest;

pub use super::S3Options;
use super::{FileWrites, Lease, Store, StoreError, check_key, check_prefix};

mod lease;
mod versions;

pub use versions::ObjectVersion;

/// A store in an S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or ends in `/`.
    prefix: String,
    opts: Arc<S3Options>,
    owner: String,
    /// Set once the bucket's protections were checked, before the first
    /// write.
    checked: Arc<tokio::sync::OnceCell<()>>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Splits `s3://bucket/prefix` into the bucket and a prefix that is empty
/// or ends in `/`.
pub fn parse_url(url: &str) -> Result<(String, String), StoreError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| StoreError::Config(format!("`{url}` is not an s3:// URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StoreError::Config(format!(
            "store `{url}`: the URL names no bucket; write s3://BUCKET/PREFIX"
        )));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
        return Err(StoreError::Config(format!(
            "store `{url}`: invalid prefix `{prefix}`"
        )));
    }
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
}

impl S3Store {
    /// Connects to `s3://bucket/prefix` with the SDK's standard credential
    /// chain. Nothing is sent until the first request.
    pub async fn connect(url: &str, opts: S3Options) -> Result<Self, StoreError> {
        let (bucket, prefix) = parse_url(url)?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(crate::aws_http::https_client())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    // A 100 MB payload over a slow link still fits.
                    .operation_attempt_timeout(Duration::from_secs(300))
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3));
        if let Some(r) = &opts.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(e) = &opts.endpoint {
            loader = loader.endpoint_url(e.clone());
        }
        let shared = loader.load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            // S3 needs a region to sign; us-east-1 is what S3-compatible
            // stores accept when none is given.
            conf = conf.region(aws_config::Region::new("us-east-1"));
        }
        // Custom endpoints rarely serve virtual-host buckets.
        let custom_endpoint =
            opts.endpoint.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
        conf = conf.force_path_style(custom_endpoint);
        let client = Client::from_conf(conf.build());
        let owner = opts
            .owner
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        Ok(S3Store {
            client,
            bucket,
            prefix,
            opts: Arc::new(opts),
            owner,
            checked: Default::default(),
        })
    }

    /// The SDK client (for tests and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key of a store key.
    pub fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Checks that the bucket keeps every version and has Object Lock
    /// enabled, once per process; names what is missing. With
    /// `allow_without_object_lock`, a missing protection is logged as an
    /// error instead. Writes do not start before the check passed.
    pub async fn check_bucket(&self) -> Result<(), StoreError> {
        self.checked
            .get_or_try_init(|| self.check_bucket_now())
            .await
            .map(|_| ())
    }

    async fn check_bucket_now(&self) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        let versioning = match self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => out.status() == Some(&BucketVersioningStatus::Enabled),
            // Some S3-compatible servers (moto among them) name the root
            // element of this answer differently, which the SDK refuses to
            // parse; the status itself is unambiguous in the raw body.
            Err(e) if e.raw_response().is_some_and(|r| r.status().is_success()) => e
                .raw_response()
                .expect("checked")
                .body()
                .bytes()
                .and_then(|b| std::str::from_utf8(b).ok())
                .is_some_and(|t| t.contains("<Status>Enabled</Status>")),
            Err(e) if e.code() == Some("NoSuchBucket") => {
                return Err(StoreError::Config(format!(
                    "bucket `{}` does not exist (create it with Object Lock enabled: docs/store-s3.md)",
                    self.bucket
                )));
            }
            Err(e) => return Err(self.remote_error("checking bucket versioning", &e)),
        };
        if !versioning {
            missing.push("versioning is not enabled");
        }
        match self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => {
                let enabled = out
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    == Some(&ObjectLockEnabled::Enabled);
                if !enabled {
                    missing.push("Object Lock is not enabled");
                }
            }
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => {
                missing.push("Object Lock is not enabled (it can only be turned on when the bucket is created, or by AWS support)");
            }
            Err(e) => return Err(self.remote_error("checking Object Lock", &e)),
        }
        if missing.is_empty() {
            return Ok(());
        }
        let message = format!(
            "bucket `{}` cannot hold evidence immutably: {}; see docs/store-s3.md (or set [store] allow_without_object_lock = true to run anyway, without protection)",
            self.bucket,
            missing.join(", ")
        );
        if self.opts.allow_without_object_lock {
            tracing::error!(bucket = %self.bucket, "{message}; continuing because allow_without_object_lock is set: evidence can be deleted or overwritten");
            Ok(())
        } else {
            Err(StoreError::Config(message))
        }
    }

    fn remote_error<E>(&self, what: &str, e: &SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let hint = match e.code() {
            Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken") => {
                " — the AWS credentials were rejected; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            }
            Some("AccessDenied") => {
                " — the credentials lack a permission (docs/store-s3.md lists them)"
            }
            Some("NoSuchBucket") => " — the bucket does not exist",
            _ => "",
        };
        StoreError::Remote {
            what: format!("s3://{}/{}: {what}", self.bucket, self.prefix),
            message: format!("{}{hint}", brief(e)),
        }
    }

    fn retain_until(&self, ttl: Duration) -> aws_sdk_s3::primitives::DateTime {
        let until = std::time::SystemTime::now() + ttl;
        aws_sdk_s3::primitives::DateTime::from(until)
    }

    async fn put(
        &self,
        object_key: &str,
        body: Body<'_>,
        condition: Condition<'_>,
        retain: Duration,
    ) -> Result<Option<String>, PutError> {
        let (sha, body) = match body {
            Body::Bytes(bytes) => (
                sha2::Sha256::digest(bytes).to_vec(),
                ByteStream::from(bytes.to_vec()),
            ),
            // Hashed first, then streamed: S3 checks the whole-object
            // checksum against the bytes it received, and the payload is
            // never in memory whole. (A single PUT takes up to 5 GB; a
            // multipart upload would record only a checksum of part
            // checksums, which no auditor can recompute with sha256sum.)
            Body::File(path) => {
                let p = path.to_path_buf();
                let (hex_sha, _) = tokio::task::spawn_blocking(move || super::hash_file(&p))
                    .await
                    .expect("hashing does not panic")
                    .map_err(|e| PutError::Store(StoreError::io(path.display().to_string(), e)))?;
                let stream = ByteStream::from_path(path).await.map_err(|e| {
                    PutError::Store(StoreError::Remote {
                        what: format!("writing {object_key}"),
                        message: format!("reading {}: {e}", path.display()),
                    })
                })?;
                (hex::decode(hex_sha).expect("hex from hash_file"), stream)
            }
        };
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(object_key)
            .body(body)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(sha))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(self.retain_until(retain));
        req = match condition {
            Condition::New => req.if_none_match("*"),
            Condition::Replace(etag) => req.if_match(etag),
        };
        if let Some(k) = &self.opts.sse_kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        match req.send().await {
            Ok(out) => Ok(out.e_tag().map(str::to_string)),
            Err(e) if status(&e) == Some(412) || e.code() == Some("PreconditionFailed") => {
                Err(PutError::Precondition)
            }
            Err(e) if e.code() == Some("ConditionalRequestConflict") => Err(PutError::Conflict(
                self.remote_error(&format!("writing {object_key}"), &e),
            )),
            Err(e) => Err(PutError::Store(
                self.remote_error(&format!("writing {object_key}"), &e),
            )),
        }
    }

    async fn get_object(
        &self,
        object_key: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object_key)
            .send()
            .await
        {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_string);
                let body = out.body.collect().await.map_err(|e| StoreError::Remote {
                    what: format!("s3://{}/{object_key}", self.bucket),
                    message: format!("reading the body: {e}"),
                })?;
                Ok(Some((Vec::from(body.into_bytes()), etag)))
            }
            Err(e) if e.code() == Some("NoSuchKey") || status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.remote_error(&format!("reading {object_key}"), &e)),
        }
    }

    /// Writes a new evidence object, locked for the retention period.
    async fn put_evidence(&self, key: &str, body: Body<'_>) -> Result<(), StoreError> {
        check_key(key)?;
        self.check_bucket().await?;
        let object_key = self.object_key(key);
        let mut attempt = 0;
        loop {
            match self
                .put(&object_key, body, Condition::New, self.opts.retention)
                .await
            {
                Ok(_) => return Ok(()),
                Err(PutError::Precondition) => return Err(StoreError::Exists(key.to_string())),
                // A write racing another write of the key may be answered
                // 409 while the other is under way; asked again, S3 names
                // the winner.
                Err(PutError::Conflict(_)) if attempt < 4 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(PutError::Conflict(e) | PutError::Store(e)) => return Err(e),
            }
        }
    }

    /// The SHA-256 (base64) S3 recorded for a key, from HeadObject.
    pub async fn checksum(&self, key: &str) -> Result<Option<String>, StoreError> {
        let object_key = self.object_key(key);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => Ok(out.checksum_sha256().map(str::to_string)),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.remote_error(&format!("reading {object_key}"), &e)),
        }
    }
}

/// One line for an SDK error: the service's code and message, or the
/// transport failure's innermost cause (the SDK's own rendering is a page of
/// debug output).
fn brief<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            format!(
                "{} (HTTP {status}): {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("no message")
            )
        }
        SdkError::TimeoutError(_) => "the request timed out".to_string(),
        other => {
            let mut cause: &dyn std::error::Error = other;
            let mut text = other.to_string();
            while let Some(next) = cause.source() {
                text = next.to_string();
                cause = next;
            }
            format!("cannot reach the store: {text}")
        }
    }
}

/// What a PUT sends.
#[derive(Clone, Copy)]
enum Body<'a> {
    Bytes(&'a [u8]),
    File(&'a std::path::Path),
}

enum Condition<'a> {
    New,
    Replace(&'a str),
}

enum PutError {
    /// The condition failed: the key exists, or the lease changed.
    Precondition,
    /// Another conditional write of the key is under way (HTTP 409).
    Conflict(StoreError),
    Store(StoreError),
}

fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

#[async_trait]
impl Store for S3Store {
    async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        // `If-None-Match: *` makes S3 itself refuse an existing key (AWS
        // since 2024, and moto, which the tests run against). There is no
        // check-then-put here: it would double the requests and still race.
        // Servers that ignore the condition are covered by the lease, which
        // guarantees one writer per stream, and by content addressing
        // (a blob's key is its hash).
        self.put_evidence(key, Body::Bytes(bytes)).await
    }

    async fn hash(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        check_key(key)?;
        let object_key = self.object_key(key);
        let what = || format!("s3://{}/{object_key}", self.bucket);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.code() == Some("NoSuchKey") || status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.remote_error(&format!("reading {object_key}"), &e)),
        };
        // The body is hashed as it arrives: what S3 holds, not what it says
        // it holds (its recorded checksum is the writer's word).
        let mut body = out.body;
        let mut hasher = sha2::Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreError::Remote {
                what: what(),
                message: format!("reading the body: {e}"),
            })?;
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        Ok(Some((hex::encode(hasher.finalize()), len)))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        Ok(self
            .get_object(&self.object_key(key))
            .await?
            .map(|(b, _)| b))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        check_prefix(prefix)?;
        let full = self.object_key(prefix);
        let mut out = Vec::new();
        // One page (up to 1,000 keys) in memory at a time besides the keys.
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.remote_error(&format!("listing {full}"), &e))?;
            for o in page.contents() {
                let Some(k) = o.key() else { continue };
                let Some(k) = k.strip_prefix(&self.prefix) else {
                    continue;
                };
                // Lease objects and anything else hidden are not evidence.
                if k.split('/').any(|s| s.starts_with('.')) {
                    continue;
                }
                out.push(k.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let object_key = self.object_key(key);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.remote_error(&format!("reading {object_key}"), &e)),
        }
    }

    async fn lease(&self, name: &str) -> Result<Box<dyn Lease>, StoreError> {
        lease::take(self, name).await
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[async_trait]
impl FileWrites for S3Store {
    async fn put_new_from_path(&self, key: &str, path: &std::path::Path) -> Result<(), StoreError> {
        self.put_evidence(key, Body::File(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_url("s3://b/a/b/").unwrap(),
            ("b".into(), "a/b/".into())
        );
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(parse_url("s3:///x").is_err());
        assert!(parse_url("s3://b/../x").is_err());
    }
}
