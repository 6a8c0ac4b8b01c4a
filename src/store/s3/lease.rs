//! Leases of the S3 store: small JSON objects under `<prefix>/.leases/`,
//! outside the evidence layout. Each one names its owner and an expiry; it
//! is renewed while held and taken over only once expired (or by the same
//! owner, i.e. the same agent restarted). Lease objects carry their own
//! short COMPLIANCE retention (until the lease's expiry), which overrides a
//! bucket's default retention: otherwise every renewal would leave a
//! version locked for years.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Body, Condition, PutError, S3Store};
use crate::store::{Lease, StoreError};

/// Where lease objects live, relative to the store prefix. The leading dot
/// keeps them out of every evidence listing.
const LEASE_DIR: &str = ".leases/";

/// What a lease object says.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseBody {
    owner: String,
    holder: String,
    expires_at: DateTime<Utc>,
}

/// A held S3 lease; a background task renews it, and dropping it stops the
/// renewal and deletes the lease object (best effort: an agent that dies
/// leaves a lease that simply expires).
#[derive(Debug)]
struct S3Lease {
    renew: tokio::task::JoinHandle<()>,
    store: S3Store,
    object_key: String,
}

impl Lease for S3Lease {}

impl Drop for S3Lease {
    fn drop(&mut self) {
        self.renew.abort();
        let store = self.store.clone();
        let key = std::mem::take(&mut self.object_key);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = store
                    .client
                    .delete_object()
                    .bucket(&store.bucket)
                    .key(key)
                    .send()
                    .await;
            });
        }
    }
}

impl S3Store {
    fn lease_body(&self) -> Vec<u8> {
        let body = LeaseBody {
            owner: self.owner.clone(),
            holder: format!(
                "pid {} on {}",
                std::process::id(),
                hostname::get()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "unknown host".into())
            ),
            expires_at: Utc::now()
                + chrono::Duration::from_std(self.opts.lease_ttl).expect("lease ttl fits"),
        };
        serde_json::to_vec(&body).expect("lease bodies serialise")
    }

    async fn claim(&self, name: &str, object_key: &str) -> Result<String, StoreError> {
        // Twice at most: a lease that vanished between read and write is
        // simply claimed anew.
        for _ in 0..2 {
            let current = self.get_object(object_key).await?;
            let condition = match &current {
                None => Condition::New,
                Some((bytes, etag)) => {
                    let theirs: Option<LeaseBody> = serde_json::from_slice(bytes).ok();
                    if let Some(t) = &theirs
                        && t.owner != self.owner
                        && t.expires_at > Utc::now()
                    {
                        return Err(StoreError::Locked {
                            what: name.to_string(),
                            detail: format!(
                                "lease s3://{}/{object_key} held by {} (agent {}) until {}",
                                self.bucket,
                                t.holder,
                                t.owner,
                                t.expires_at.to_rfc3339()
                            ),
                        });
                    }
                    match etag {
                        Some(etag) => Condition::Replace(etag),
                        None => Condition::New,
                    }
                }
            };
            match self
                .put(
                    object_key,
                    Body::Bytes(&self.lease_body()),
                    condition,
                    self.opts.lease_ttl,
                )
                .await
            {
                Ok(etag) => return Ok(etag.unwrap_or_default()),
                // Someone else wrote the lease between our read and write.
                Err(PutError::Precondition | PutError::Conflict(_)) => continue,
                Err(PutError::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Locked {
            what: name.to_string(),
            detail: format!(
                "lease s3://{}/{object_key} is being claimed concurrently by another agent",
                self.bucket
            ),
        })
    }
}

/// Claims `name` for the owner of `this` store, and renews the claim in
/// the background while the lease is held.
pub(super) async fn take(this: &S3Store, name: &str) -> Result<Box<dyn Lease>, StoreError> {
    let object_key = this.object_key(&format!("{LEASE_DIR}{name}.json"));
    let mut etag = this.claim(name, &object_key).await?;
    let store = this.clone();
    let key = object_key.clone();
    let name = name.to_string();
    // Renewed three times per lifetime, so that one failed renewal does
    // not let the lease lapse.
    let every = this.opts.lease_ttl / 3;
    let renew = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match store
                .put(
                    &key,
                    Body::Bytes(&store.lease_body()),
                    Condition::Replace(&etag),
                    store.opts.lease_ttl,
                )
                .await
            {
                Ok(t) => etag = t.unwrap_or_default(),
                Err(PutError::Precondition) => {
                    tracing::error!(lease = %name, "lease was taken over by another agent; this agent no longer holds it");
                    return;
                }
                Err(PutError::Store(e) | PutError::Conflict(e)) => {
                    tracing::warn!(lease = %name, error = %e, "cannot renew lease; retrying");
                }
            }
        }
    });
    Ok(Box::new(S3Lease {
        renew,
        store: this.clone(),
        object_key,
    }))
}
