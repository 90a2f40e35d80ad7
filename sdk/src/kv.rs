//! The host's key-value store: state that must outlive a request or an
//! instance.
//!
//! There are three places for state, with one rule each:
//! - **request scope** ([`request_local!`](crate::request_local)): this
//!   request only;
//! - **instance state** (your [`Handler`](crate::Handler)'s fields): a cache
//!   the host may drop at any time, with the instance;
//! - **the host's store** (this module): what must survive both. A value
//!   [`Store::set`] writes is read by any later request, on any instance.
//!
//! It speaks `wasi:keyvalue@0.2.0-draft` (`store`, `atomics`, `batch`), so
//! the host must provide it: `host-runner serve -Skeyvalue` keeps one store
//! for the whole server, in a file that survives restarts (or in Redis, or
//! in memory; see the guide's state page for what each host does). (`wasmtime
//! serve -Skeyvalue` 48 links the same interface, but there each
//! [`Store::open`] starts from the seed data again: writes do not outlive
//! the handle.)
//!
//! [`Error`] is [`StoreError`](crate::StoreError), an
//! [`IntoResponse`](crate::IntoResponse): a handler returning `Result<_,
//! kv::Error>` (or `?` into one) answers `503` with the error's one line.
//! Values can be JSON ([`Store::get_json`], [`Store::set_json`], feature
//! `json`). Keys are listed a page at a time ([`Store::list`]), by prefix.
//!
//! What this module deliberately does not do: transactions, expiry, or
//! compare-and-swap (the `atomics` interface of `0.2.0-draft`, the version
//! wasmtime 48 implements, has `increment` only). Requests that interleave
//! may run between your `get` and your `set`; count with
//! [`Store::increment`], which is atomic.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// The host's key-value store; open it where you need it (opening is
/// cheap), or once per instance.
pub struct Store {
    bucket: store::Bucket,
}

/// Why the store could not do what was asked: a
/// [`StoreError`](crate::StoreError), which answers `503` with its one line.
pub type Error = crate::StoreError;

/// A store error with `message`.
fn error(message: impl Into<String>) -> Error {
    Error::new("key-value store", message)
}

/// One page of [`Store::list`]: the keys it found, and where the next page
/// starts (`None`: this was the last).
#[derive(Debug, Default)]
pub struct Page {
    /// Keys with the prefix asked for, in the order the host lists them
    /// (host-runner: the order they were first written).
    pub keys: Vec<String>,
    /// The cursor to pass to [`Store::list`] for the next page.
    pub next: Option<u64>,
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        error(match e {
            store::Error::NoSuchStore => "the host has no such store".to_owned(),
            store::Error::AccessDenied => "access denied".to_owned(),
            store::Error::Other(message) => message,
        })
    }
}

impl Store {
    /// Opens the host's default store (the one named `""`).
    pub fn open() -> Result<Self, Error> {
        Ok(Self {
            bucket: store::open("")?,
        })
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.bucket.get(key)?)
    }

    /// The value of `key` as text; a value that is not UTF-8 is an error.
    pub fn get_string(&self, key: &str) -> Result<Option<String>, Error> {
        self.get(key)?
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|_| error(format!("`{key}` does not hold text")))
            })
            .transpose()
    }

    /// Sets `key` to `value`, replacing any value it had.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        Ok(self.bucket.set(key, value.as_ref())?)
    }

    /// Removes `key`; removing a missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        Ok(self.bucket.delete(key)?)
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        Ok(self.bucket.exists(key)?)
    }

    /// One page of the keys that start with `prefix`, from `cursor` on
    /// (`None`: the first page). Each call reads one page of the host's
    /// listing, so it costs the same however large the store is; a page
    /// may hold fewer keys than the host's page size (even none) while
    /// [`Page::next`] is set, when other keys sit between.
    pub fn list(&self, prefix: &str, cursor: Option<u64>) -> Result<Page, Error> {
        let page = self.bucket.list_keys(cursor)?;
        Ok(Page {
            keys: page
                .keys
                .into_iter()
                .filter(|key| key.starts_with(prefix))
                .collect(),
            // A host that hands back the cursor it was given would loop.
            next: page.cursor.filter(|next| Some(*next) != cursor),
        })
    }

    /// The values of `keys`, in one call to the host; the host refuses a
    /// call whose values would not fit in this instance's memory.
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        Ok(batch::get_many(&self.bucket, &keys)?
            .into_iter()
            .map(|found| found.map(|(_, value)| value))
            .collect())
    }

    /// The value of `key` read as JSON into a `T`.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get(key)?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| error(format!("`{key}` does not hold this type as JSON ({e})")))
            })
            .transpose()
    }

    /// Sets `key` to `value` written as JSON.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn set_json<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            error(format!(
                "`{key}`: the value cannot be written as JSON ({e})"
            ))
        })?;
        self.set(key, bytes)
    }

    /// Every key in the store (following the host's pages): fine for a
    /// small store; [`Store::list`] reads one page at a time.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.bucket.list_keys(cursor)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) if cursor != Some(next) => cursor = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    /// Atomically adds `delta` to the counter at `key` (a missing key counts
    /// as 0) and returns the new value. Counters are stored as decimal text.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
        Ok(atomics::increment(&self.bucket, key, delta)?)
    }
}
