//! `wasi:keyvalue@0.2.0-draft` (store, atomics, batch) over one store that
//! every instance of the server shares: what one instance writes, the next
//! one reads, after the first was retired, and (with the file or Redis
//! backend) after host-runner itself restarted.
//!
//! Three backends sit behind one [`Backend`] trait, one file each:
//! - `file`: SQLite in WAL mode, the default (`-Skeyvalue`), durable;
//! - `memory`: an in-memory map, fresh on every start (`-Skeyvalue-in-memory`
//!   or `-Skeyvalue-in-memory-data`, as `wasmtime serve` behaves), which
//!   `host-runner check` resets so every arm starts from the seed;
//! - `redis`: a Redis server several host-runner processes share.
//!
//! This module owns what no request may break, the same for every backend:
//! every byte copied out of the store counts against a per-call [`Budget`]
//! (the room left in the calling instance's memory, which the result must
//! fit in anyway) *before* it is copied, and writes are held to a
//! [`Quota`] of bytes and keys. `list-keys` pages by a cursor that is a
//! position in the order keys were first written, so a page costs its own
//! size. wasmtime's `wasmtime-wasi-keyvalue` is not used: its in-memory
//! provider gives each `open` a private copy of the seed data, so writes
//! would vanish with the bucket handle. The WIT is the same (vendored in
//! `wit/deps/keyvalue`), so a component runs unchanged on either host.
//!
//! Only the store named `""` exists (as in `wasmtime serve`); other names get
//! `no-such-store`. This module does not offer compare-and-swap: the
//! vendored `atomics` interface has `increment` only.

use std::path::{Path, PathBuf};

use wasmtime::component::{HasData, Linker, Resource};

use crate::options::WasiOptions;

mod file;
mod limits;
mod memory;
mod redis;

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

use store::KeyResponse;

pub(crate) use limits::{Budget, Quota};
pub(crate) use store::Error;

use limits::{Shortened, page};

/// Default for `-Skeyvalue-max-bytes`.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Default for `-Skeyvalue-max-keys`.
pub(crate) const DEFAULT_MAX_KEYS: u64 = 1_000_000;
/// Where the store's file is without `-Skeyvalue-path`: beside where
/// host-runner runs, as Spin keeps `.spin/sqlite_key_value.db` beside the
/// app.
pub(crate) const DEFAULT_PATH: &str = ".host-runner/keyvalue.sqlite3";

/// Keys returned by one `list-keys` call at most; the cursor pages through
/// the rest.
const KEYS_PER_PAGE: usize = 1000;

/// A handle to the one store; it carries nothing, since there is one store.
#[expect(unreachable_pub, reason = "bindgen's `with` re-exports it")]
pub struct Bucket;

/// What a store does; each backend implements it once, and this module
/// keeps the budget and the quota the same for all of them.
trait Backend: Send + Sync {
    /// The values of `keys`, in order: their sizes are summed and taken
    /// from `budget` before any value is copied, so a call that asks for
    /// too much copies nothing.
    fn get_many(&self, keys: &[String], budget: &mut Budget)
    -> Result<Vec<Option<Vec<u8>>>, Error>;
    /// Writes every entry, or none when the quota refuses one.
    fn set_many(&self, entries: Vec<(String, Vec<u8>)>, quota: &Quota) -> Result<(), Error>;
    fn delete_many(&self, keys: &[String]) -> Result<(), Error>;
    fn exists(&self, key: &str) -> Result<bool, Error>;
    /// Up to `limit` keys from position `cursor` on (0: the start), as many
    /// as fit in `budget`, and the cursor of the next page if there is one.
    fn list_keys(
        &self,
        cursor: u64,
        limit: usize,
        budget: &mut Budget,
    ) -> Result<KeyResponse, Error>;
    /// Adds `delta` to the counter at `key`, atomically.
    fn increment(&self, key: &str, delta: u64, quota: &Quota) -> Result<u64, Error>;
    /// Puts the contents back to `seed` alone, if the backend keeps them
    /// in memory (false: a file or Redis is never wiped).
    fn reset(&self, seed: &[(String, String)]) -> bool;
}

/// The store every instance of a server shares, with its quota.
pub(crate) struct KeyValueStore {
    backend: Box<dyn Backend>,
    quota: Quota,
}

impl KeyValueStore {
    /// An in-memory store holding `seed` (`-Skeyvalue-in-memory-data`);
    /// seed data is not held to the quota, the operator chose it.
    pub(crate) fn in_memory(seed: &[(String, String)], quota: Quota) -> Self {
        Self {
            backend: Box::new(memory::MemoryStore::new(seed)),
            quota,
        }
    }

    /// The store the `-S` options ask for (see [`Location::chosen`]).
    pub(crate) fn open(wasi: &WasiOptions) -> anyhow::Result<Self> {
        let quota = Quota::from_options(wasi);
        let location = Location::chosen(wasi)?;
        let backend: Box<dyn Backend> = match &location {
            Location::Memory => return Ok(Self::in_memory(&wasi.keyvalue_data, quota)),
            Location::File(path) => Box::new(file::FileStore::open(path)?),
            Location::Redis(url) => Box::new(redis::RedisStore::connect(url)?),
        };
        Ok(Self { backend, quota })
    }

    /// Puts an in-memory store back to holding only `seed`, under every
    /// instance that uses it (`host-runner check` starts every run from the
    /// same data); a file or Redis store is left as it is.
    pub(crate) fn reset(&self, seed: &[(String, String)]) {
        let reset = self.backend.reset(seed);
        debug_assert!(reset, "only check resets a store, and check's is in memory");
    }
}

/// Where the `-S` options put the store.
pub(crate) enum Location {
    Memory,
    File(PathBuf),
    Redis(String),
}

impl Location {
    /// Redis with `-Skeyvalue-redis`, memory with `-Skeyvalue-in-memory` or
    /// seed data (so scripts written for `wasmtime serve`, which seed and
    /// expect a fresh store, get one), else a file: `-Skeyvalue-path` or
    /// [`DEFAULT_PATH`].
    pub(crate) fn chosen(wasi: &WasiOptions) -> anyhow::Result<Self> {
        let in_memory = wasi.keyvalue_in_memory || !wasi.keyvalue_data.is_empty();
        let conflict = |other: &str| {
            anyhow::anyhow!(
                "-Skeyvalue-{other} and an in-memory store (-Skeyvalue-in-memory or -Skeyvalue-in-memory-data) cannot go together; drop one of them"
            )
        };
        match (&wasi.keyvalue_redis, &wasi.keyvalue_path) {
            (Some(_), Some(_)) => anyhow::bail!(
                "-Skeyvalue-redis and -Skeyvalue-path cannot go together: the store is either in Redis or in a file; drop one of them"
            ),
            (Some(_), None) if in_memory => Err(conflict("redis")),
            (None, Some(_)) if in_memory => Err(conflict("path")),
            _ if in_memory => Ok(Self::Memory),
            (Some(url), None) => Ok(Self::Redis(url.clone())),
            (None, path) => Ok(Self::File(
                path.clone().unwrap_or_else(|| DEFAULT_PATH.into()),
            )),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("in memory, fresh on every start"),
            Self::File(path) => write!(
                f,
                "in the file {} (SQLite, each write on disk before it returns)",
                path.display()
            ),
            // Only the address: the URL may carry a password.
            Self::Redis(url) => match redis::address(url) {
                Some(address) => write!(
                    f,
                    "in Redis at {address} (shared with every host-runner given its URL)"
                ),
                None => f.write_str("in Redis (shared with every host-runner given its URL)"),
            },
        }
    }
}

/// The counter after adding `delta` to `current`. Counters are decimal
/// text, as `wasmtime serve` stores them, so a guest can also `get` one.
fn next_counter(key: &str, current: Option<&[u8]>, delta: u64) -> Result<u64, Error> {
    let current = match current {
        None => 0,
        Some(value) => std::str::from_utf8(value)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| {
                Error::Other(format!(
                    "`{}` does not hold a counter (a decimal number), so it cannot be incremented",
                    Shortened(key)
                ))
            })?,
    };
    current
        .checked_add(delta)
        .ok_or_else(|| Error::Other(format!("incrementing `{}` overflows a u64", Shortened(key))))
}

/// A backend failure (a disk error, a lost Redis connection) as the guest
/// sees it: one line naming the store.
fn failed(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Other(format!("the key-value store failed to {what}: {error}"))
}

/// Makes the directory a store file goes in.
fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            anyhow::anyhow!(
                "cannot create {} for the key-value store: {e}; pick another place with -Skeyvalue-path",
                parent.display()
            )
        })?;
    }
    Ok(())
}

/// What a host call sees: the shared store and the bytes it may copy.
pub(crate) struct KeyValueView<'a> {
    pub(crate) store: &'a KeyValueStore,
    pub(crate) budget: u64,
}

/// Adds `wasi:keyvalue/{store,atomics,batch}` to `linker`, served from the
/// view `get` returns.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasKeyValue>(linker, get)?;
    atomics::add_to_linker::<T, HasKeyValue>(linker, get)?;
    batch::add_to_linker::<T, HasKeyValue>(linker, get)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

impl KeyValueView<'_> {
    fn backend(&self) -> &dyn Backend {
        &*self.store.backend
    }
}

impl store::Host for KeyValueView<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
        match identifier.as_str() {
            "" => Ok(Resource::new_own(0)),
            _ => Err(Error::NoSuchStore),
        }
    }
}

impl store::HostBucket for KeyValueView<'_> {
    fn get(&mut self, _: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, Error> {
        let mut values = self
            .backend()
            .get_many(&[key], &mut Budget::new(self.budget))?;
        Ok(values.pop().flatten())
    }

    fn set(&mut self, _: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.backend()
            .set_many(vec![(key, value)], &self.store.quota)
    }

    fn delete(&mut self, _: Resource<Bucket>, key: String) -> Result<(), Error> {
        self.backend().delete_many(&[key])
    }

    fn exists(&mut self, _: Resource<Bucket>, key: String) -> Result<bool, Error> {
        self.backend().exists(&key)
    }

    fn list_keys(
        &mut self,
        _: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, Error> {
        self.backend().list_keys(
            cursor.unwrap_or(0),
            KEYS_PER_PAGE,
            &mut Budget::new(self.budget),
        )
    }

    fn drop(&mut self, _: Resource<Bucket>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    fn increment(&mut self, _: Resource<Bucket>, key: String, delta: u64) -> Result<u64, Error> {
        self.backend().increment(&key, delta, &self.store.quota)
    }
}

impl batch::Host for KeyValueView<'_> {
    fn get_many(
        &mut self,
        _: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, Error> {
        // One budget for the whole call: the same key asked for N times
        // costs N times, since the result holds N copies (and the keys
        // again).
        let mut budget = Budget::new(self.budget);
        let key_bytes = keys.iter().map(|key| key.len() as u64).sum();
        budget.take_for(format_args!("{} keys", keys.len()), key_bytes)?;
        let values = self.backend().get_many(&keys, &mut budget)?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    fn set_many(
        &mut self,
        _: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        self.backend().set_many(key_values, &self.store.quota)
    }

    fn delete_many(&mut self, _: Resource<Bucket>, keys: Vec<String>) -> Result<(), Error> {
        self.backend().delete_many(&keys)
    }
}

#[cfg(test)]
mod tests;
