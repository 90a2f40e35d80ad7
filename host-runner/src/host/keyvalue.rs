//! `wasi:keyvalue@0.2.0-draft` (store, atomics, batch) backed by one
//! in-memory map that every instance of the server shares, on every serving
//! thread: what one instance writes, the next one reads, after the first
//! was retired.
//!
//! wasmtime's own `wasmtime-wasi-keyvalue` 48 is not used because its
//! in-memory provider gives each `open` a private copy of the seed data:
//! writes vanish with the bucket handle, so nothing could outlive a request.
//! The interface and its WIT (vendored in `wit/deps/keyvalue`) are the same,
//! so a component runs unchanged on either host.
//!
//! Only the store named `""` exists (as in `wasmtime serve`); other names get
//! `no-such-store`. The map holds at most [`CAPACITY`] bytes of keys and
//! values, so a guest cannot grow the host without bound; a write past it
//! fails in the guest with `other`. This module does not persist anything:
//! the data lives as long as the process.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use wasmtime::component::{HasData, Linker, Resource};

use crate::units::HumanSize;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        with: {
            "wasi:keyvalue/store.bucket": crate::host::keyvalue::Bucket,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// Bytes of keys and values the store holds at most.
pub(crate) const CAPACITY: usize = 64 << 20;

/// Keys returned by one `list-keys` call; the cursor pages through the rest.
const KEYS_PER_PAGE: usize = 1000;

/// A handle to the one store; it carries nothing, since there is one map.
#[expect(unreachable_pub, reason = "bindgen's `with` re-exports it")]
pub struct Bucket;

/// The map shared by every instance.
#[derive(Default)]
pub(crate) struct KeyValueStore {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Vec<u8>>,
    /// Bytes of keys and values in `map`.
    bytes: usize,
}

impl Entries {
    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), store::Error> {
        let old = self.map.get(&key).map_or(0, |v| key.len() + v.len());
        let new = key.len() + value.len();
        let bytes = self.bytes - old + new;
        if bytes > CAPACITY {
            return Err(store::Error::Other(format!(
                "the key-value store is full ({} of keys and values); delete keys before writing more",
                HumanSize(CAPACITY as u64)
            )));
        }
        self.bytes = bytes;
        self.map.insert(key, value);
        Ok(())
    }

    fn delete(&mut self, key: &str) {
        if let Some(value) = self.map.remove(key) {
            self.bytes -= key.len() + value.len();
        }
    }
}

impl KeyValueStore {
    /// A store holding `seed` (`-Skeyvalue-in-memory-data`); seed data is
    /// not held to [`CAPACITY`], the operator chose it.
    pub(crate) fn new(seed: &[(String, String)]) -> Self {
        let mut entries = Entries::default();
        for (key, value) in seed {
            entries.delete(key);
            entries.bytes += key.len() + value.len();
            entries.map.insert(key.clone(), value.clone().into_bytes());
        }
        Self {
            entries: Mutex::new(entries),
        }
    }

    /// Puts the store back to holding only `seed`, as [`KeyValueStore::new`]
    /// made it: `check` starts every arm from the same data.
    pub(crate) fn reset(&self, seed: &[(String, String)]) {
        let fresh = Self::new(seed);
        *self.entries() = fresh
            .entries
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the map half-updated
        // in a way that matters more than losing the server.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds `wasi:keyvalue/{store,atomics,batch}` to `linker`, served from the
/// store `get` returns.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &KeyValueStore,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasKeyValue>(linker, get)?;
    atomics::add_to_linker::<T, HasKeyValue>(linker, get)?;
    batch::add_to_linker::<T, HasKeyValue>(linker, get)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = &'a KeyValueStore;
}

impl store::Host for &KeyValueStore {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, store::Error> {
        match identifier.as_str() {
            "" => Ok(Resource::new_own(0)),
            _ => Err(store::Error::NoSuchStore),
        }
    }
}

impl store::HostBucket for &KeyValueStore {
    fn get(&mut self, _: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, store::Error> {
        Ok(self.entries().map.get(&key).cloned())
    }

    fn set(
        &mut self,
        _: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        self.entries().set(key, value)
    }

    fn delete(&mut self, _: Resource<Bucket>, key: String) -> Result<(), store::Error> {
        self.entries().delete(&key);
        Ok(())
    }

    fn exists(&mut self, _: Resource<Bucket>, key: String) -> Result<bool, store::Error> {
        Ok(self.entries().map.contains_key(&key))
    }

    fn list_keys(
        &mut self,
        _: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, store::Error> {
        // Sorted, so that a cursor (an offset) means the same thing from one
        // call to the next as long as no key is added or removed meanwhile.
        let mut keys: Vec<String> = self.entries().map.keys().cloned().collect();
        keys.sort_unstable();
        let start = usize::try_from(cursor.unwrap_or(0))
            .unwrap_or(usize::MAX)
            .min(keys.len());
        let total = keys.len();
        let end = start.saturating_add(KEYS_PER_PAGE).min(total);
        Ok(store::KeyResponse {
            keys: keys.drain(start..end).collect(),
            cursor: (end < total).then_some(end as u64),
        })
    }

    fn drop(&mut self, _: Resource<Bucket>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl atomics::Host for &KeyValueStore {
    fn increment(
        &mut self,
        _: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, store::Error> {
        let mut entries = self.entries();
        // Counters are stored as decimal text, as `wasmtime serve` stores
        // them, so a guest can also read one with `get`.
        let current = match entries.map.get(&key) {
            None => 0,
            Some(value) => std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| {
                    store::Error::Other(format!(
                        "`{key}` does not hold a counter (a decimal number), so it cannot be incremented"
                    ))
                })?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| store::Error::Other(format!("incrementing `{key}` overflows a u64")))?;
        entries.set(key, next.to_string().into_bytes())?;
        Ok(next)
    }
}

impl batch::Host for &KeyValueStore {
    fn get_many(
        &mut self,
        _: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, store::Error> {
        let entries = self.entries();
        Ok(keys
            .into_iter()
            .map(|key| {
                let value = entries.map.get(&key)?.clone();
                Some((key, value))
            })
            .collect())
    }

    fn set_many(
        &mut self,
        _: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        let mut entries = self.entries();
        for (key, value) in key_values {
            entries.set(key, value)?;
        }
        Ok(())
    }

    fn delete_many(&mut self, _: Resource<Bucket>, keys: Vec<String>) -> Result<(), store::Error> {
        let mut entries = self.entries();
        for key in keys {
            entries.delete(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomics::Host as _;
    use store::{Host as _, HostBucket as _};

    fn bucket() -> Resource<Bucket> {
        Resource::new_own(0)
    }

    #[test]
    fn writes_are_seen_through_any_later_handle() {
        let kv = KeyValueStore::new(&[("seeded".into(), "yes".into())]);
        let mut view = &kv;
        let first = view.open(String::new()).expect("the default store");
        view.set(first, "k".into(), b"v".to_vec()).ok();
        let second = view.open(String::new()).expect("the default store");
        assert_eq!(view.get(second, "k".into()).ok(), Some(Some(b"v".to_vec())));
        assert_eq!(
            view.get(bucket(), "seeded".into()).ok(),
            Some(Some(b"yes".to_vec()))
        );
        assert!(matches!(
            view.open("other".into()),
            Err(store::Error::NoSuchStore)
        ));
    }

    #[test]
    fn the_store_refuses_writes_past_its_capacity_and_counts_deletes() {
        let kv = KeyValueStore::new(&[]);
        let mut view = &kv;
        let big = vec![0; CAPACITY / 2];
        assert!(view.set(bucket(), "a".into(), big.clone()).is_ok());
        assert!(matches!(
            view.set(bucket(), "b".into(), big.clone()),
            Err(store::Error::Other(message)) if message.contains("full")
        ));
        // Overwriting a key counts only the difference.
        assert!(view.set(bucket(), "a".into(), big.clone()).is_ok());
        assert!(view.delete(bucket(), "a".into()).is_ok());
        assert!(view.set(bucket(), "b".into(), big).is_ok());
    }

    #[test]
    fn keys_come_sorted_in_pages_that_the_cursor_walks() {
        let kv = KeyValueStore::new(&[]);
        let mut view = &kv;
        for i in 0..(KEYS_PER_PAGE + 5) {
            view.set(bucket(), format!("k{i:05}"), Vec::new()).ok();
        }
        let first = view.list_keys(bucket(), None).expect("keys");
        assert_eq!(first.keys.len(), KEYS_PER_PAGE);
        assert_eq!(first.keys[0], "k00000");
        let rest = view.list_keys(bucket(), first.cursor).expect("keys");
        assert_eq!(rest.keys.len(), 5);
        assert_eq!(rest.cursor, None);
        assert!(view.list_keys(bucket(), Some(u64::MAX)).is_ok());
    }

    #[test]
    fn counters_are_decimal_text_and_refuse_other_values() {
        let kv = KeyValueStore::new(&[("text".into(), "hello".into())]);
        let mut view = &kv;
        assert_eq!(view.increment(bucket(), "n".into(), 2).ok(), Some(2));
        assert_eq!(view.increment(bucket(), "n".into(), 3).ok(), Some(5));
        assert_eq!(
            view.get(bucket(), "n".into()).ok(),
            Some(Some(b"5".to_vec()))
        );
        assert!(view.increment(bucket(), "text".into(), 1).is_err());
    }
}
