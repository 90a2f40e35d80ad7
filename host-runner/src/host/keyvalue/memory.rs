//! The in-memory backend: fresh on every start, as `wasmtime serve -Skeyvalue`
//! is, and reset to its seed by `host-runner check` before every arm.
//!
//! Keys are listed in the order they were first written, through an ordered
//! index of positions, so a page costs its own size and the lock is held
//! for that long only. The quota counts what an entry costs the host, not
//! just its bytes: [`ENTRY_OVERHEAD`] per key covers the two index slots and
//! the shared key. This module does not persist anything.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{Backend, Budget, Error, KeyResponse, Quota, next_counter, page};

/// What one entry costs the host beyond its key and value bytes: a hash
/// slot, an index slot, two `Arc` headers and allocator rounding.
pub(super) const ENTRY_OVERHEAD: u64 = 128;

pub(super) struct MemoryStore {
    data: RwLock<Arc<Data>>,
}

#[derive(Clone, Default)]
struct Data {
    entries: HashMap<Arc<str>, Entry>,
    /// Keys by the position they were first written at: the listing order.
    order: BTreeMap<u64, Arc<str>>,
    next_position: u64,
    /// What the entries cost, as the quota counts it.
    bytes: u64,
}

#[derive(Clone)]
struct Entry {
    position: u64,
    value: Arc<[u8]>,
}

fn cost(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + ENTRY_OVERHEAD
}

impl Data {
    fn insert(&mut self, key: String, value: Vec<u8>) {
        let added = cost(&key, &value);
        match self.entries.get_mut(key.as_str()) {
            Some(entry) => {
                self.bytes = self.bytes - cost(&key, &entry.value) + added;
                entry.value = value.into();
            }
            None => {
                let key: Arc<str> = key.into();
                let position = self.next_position;
                self.next_position += 1;
                self.order.insert(position, key.clone());
                let value = value.into();
                self.entries.insert(key, Entry { position, value });
                self.bytes += added;
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some((key, entry)) = self.entries.remove_entry(key) {
            self.order.remove(&entry.position);
            self.bytes -= cost(&key, &entry.value);
        }
    }
}

impl MemoryStore {
    pub(super) fn new(seed: &[(String, String)]) -> Self {
        let mut data = Data::default();
        for (key, value) in seed {
            data.insert(key.clone(), value.clone().into_bytes());
        }
        Self {
            data: RwLock::new(Arc::new(data)),
        }
    }

    // A panic while holding the lock leaves each entry whole (updates are
    // single inserts and removes), so the data stays usable.
    fn read(&self) -> RwLockReadGuard<'_, Arc<Data>> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Arc<Data>> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for MemoryStore {
    fn get_many(
        &self,
        keys: &[String],
        budget: &mut Budget,
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        // Handles first (cheap), the lock released before any copy: other
        // readers and writers never wait for a large value to be copied.
        let found: Vec<Option<Arc<[u8]>>> = {
            let data = self.read();
            keys.iter()
                .map(|key| data.entries.get(key.as_str()).map(|e| e.value.clone()))
                .collect()
        };
        let total = found.iter().flatten().map(|value| value.len() as u64).sum();
        budget.take_values(keys, total)?;
        Ok(found
            .into_iter()
            .map(|value| value.map(|value| value.to_vec()))
            .collect())
    }

    fn set_many(&self, entries: Vec<(String, Vec<u8>)>, quota: &Quota) -> Result<(), Error> {
        let mut guard = self.write();
        quota.admit_writes(
            (guard.bytes, guard.entries.len() as u64),
            entries
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_slice())),
            cost,
            |key| Ok(guard.entries.get(key).map(|e| cost(key, &e.value))),
        )?;
        let data = Arc::make_mut(&mut guard);
        for (key, value) in entries {
            data.insert(key, value);
        }
        Ok(())
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        let mut guard = self.write();
        let data = Arc::make_mut(&mut guard);
        for key in keys {
            data.remove(key);
        }
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        Ok(self.read().entries.contains_key(key))
    }

    fn list_keys(
        &self,
        cursor: u64,
        limit: usize,
        budget: &mut Budget,
    ) -> Result<KeyResponse, Error> {
        let data = self.read();
        let keys = data.order.range(cursor..);
        let Ok(page) = page(
            keys.map(|(&position, key)| Ok::<_, Infallible>((position, key))),
            limit,
            budget,
        );
        page
    }

    fn increment(&self, key: &str, delta: u64, quota: &Quota) -> Result<u64, Error> {
        let mut guard = self.write();
        let old = guard.entries.get(key).map(|e| e.value.clone());
        let next = next_counter(key, old.as_deref(), delta)?;
        let value = next.to_string().into_bytes();
        quota.admit_writes(
            (guard.bytes, guard.entries.len() as u64),
            [(key, value.as_slice())],
            cost,
            |_| Ok(old.as_deref().map(|old| cost(key, old))),
        )?;
        Arc::make_mut(&mut guard).insert(key.to_owned(), value);
        Ok(next)
    }

    fn reset(&self, seed: &[(String, String)]) -> bool {
        *self.write() = Self::new(seed).read().clone();
        true
    }
}
