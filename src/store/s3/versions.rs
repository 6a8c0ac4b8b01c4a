//! The version history of the evidence under the store's prefix
//! (ListObjectVersions), so that `verify` can name what was deleted or
//! overwritten. Object Lock stops both for the retention period, but a
//! delete without a version id still lays a delete marker over an object
//! (hiding it from a plain listing), and a bucket without Object Lock keeps
//! the old versions only if versioning is on: either way the history shows
//! it.

use aws_sdk_s3::primitives::DateTime as SdkDateTime;

use super::{S3Store, StoreError};

/// One version of an object, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The store key (the prefix removed).
    pub key: String,
    /// The version id (`null` in a bucket that never had versioning).
    pub version_id: String,
    /// Whether this is the current version of the key.
    pub is_latest: bool,
    /// Whether this is a delete marker rather than object bytes.
    pub delete_marker: bool,
    /// When it was written, RFC 3339.
    pub last_modified: Option<String>,
}

impl S3Store {
    /// Every version and delete marker under the store's prefix, keys in
    /// order and each key's versions newest first (as S3 lists them).
    pub async fn versions(&self) -> Result<Vec<ObjectVersion>, StoreError> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        let when = |t: Option<&SdkDateTime>| {
            t.and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok())
        };
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| self.remote_error("listing object versions", &e))?;
            let strip = |k: Option<&str>| {
                k.and_then(|k| k.strip_prefix(self.prefix.as_str()))
                    .map(str::to_string)
            };
            for v in page.versions() {
                if let Some(key) = strip(v.key()) {
                    out.push(ObjectVersion {
                        key,
                        version_id: v.version_id().unwrap_or("null").to_string(),
                        is_latest: v.is_latest().unwrap_or(false),
                        delete_marker: false,
                        last_modified: when(v.last_modified()),
                    });
                }
            }
            for m in page.delete_markers() {
                if let Some(key) = strip(m.key()) {
                    out.push(ObjectVersion {
                        key,
                        version_id: m.version_id().unwrap_or("null").to_string(),
                        is_latest: m.is_latest().unwrap_or(false),
                        delete_marker: true,
                        last_modified: when(m.last_modified()),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() && version_marker.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| {
            a.key
                .cmp(&b.key)
                .then_with(|| b.last_modified.cmp(&a.last_modified))
        });
        Ok(out)
    }
}
