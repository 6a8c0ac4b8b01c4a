//! An in-memory store: the same contract as the others, for tests and
//! property tests that need thousands of throw-away stores.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Lease, Store, StoreError, check_key, check_prefix};

/// A store held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    objects: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    leases: Arc<Mutex<BTreeSet<String>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every object, to tamper with.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects.lock().expect("store lock").clone()
    }

    /// A store holding exactly `objects`.
    pub fn from_objects(objects: BTreeMap<String, Vec<u8>>) -> Self {
        MemStore {
            objects: Arc::new(Mutex::new(objects)),
            leases: Default::default(),
        }
    }
}

#[derive(Debug)]
struct MemLease {
    name: String,
    leases: Arc<Mutex<BTreeSet<String>>>,
}

impl Lease for MemLease {}

impl Drop for MemLease {
    fn drop(&mut self) {
        self.leases.lock().expect("lease lock").remove(&self.name);
    }
}

#[async_trait]
impl Store for MemStore {
    async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        let mut objects = self.objects.lock().expect("store lock");
        if objects.contains_key(key) {
            return Err(StoreError::Exists(key.to_string()));
        }
        objects.insert(key.to_string(), bytes.to_vec());
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        Ok(self.objects.lock().expect("store lock").get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        check_prefix(prefix)?;
        Ok(self
            .objects
            .lock()
            .expect("store lock")
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        Ok(self.objects.lock().expect("store lock").contains_key(key))
    }

    async fn lease(&self, name: &str) -> Result<Box<dyn Lease>, StoreError> {
        if !self
            .leases
            .lock()
            .expect("lease lock")
            .insert(name.to_string())
        {
            return Err(StoreError::Locked {
                what: name.to_string(),
                detail: "held in this process".into(),
            });
        }
        Ok(Box::new(MemLease {
            name: name.to_string(),
            leases: self.leases.clone(),
        }))
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
