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
//! It speaks `wasi:keyvalue/store@0.2.0-draft` (and `atomics`), so the host
//! must provide it: `host-runner serve -Skeyvalue` keeps one in-memory store
//! for the whole server, as long as the server runs. (`wasmtime serve
//! -Skeyvalue` 48 links the same interface, but there each [`Store::open`]
//! starts from the seed data again: writes do not outlive the handle.)
//!
//! What this module deliberately does not do: transactions, expiry, or
//! serialisation. Requests that interleave may run between your `get` and
//! your `set`; count with [`Store::increment`], which is atomic.

use core::fmt;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
    });
}

use bindings::wasi::keyvalue::{atomics, store};

/// The host's key-value store; open it where you need it (opening is
/// cheap), or once per instance.
pub struct Store {
    bucket: store::Bucket,
}

/// Why the store could not do what was asked; displays as one line.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key-value store: {}", self.0)
    }
}

impl std::error::Error for Error {}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        Error(match error {
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
                String::from_utf8(bytes).map_err(|_| Error(format!("`{key}` does not hold text")))
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

    /// Every key in the store (following the host's pages).
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
