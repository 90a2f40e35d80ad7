//! Configuration the host gives the component (`wasi:config/store`): values
//! an operator sets per deployment, read-only to the guest.
//!
//! `host-runner serve -Sconfig -Sconfig-var=KEY=VALUE` (and `wasmtime
//! serve` with the same flags) provide it. Unlike environment variables,
//! configuration is an interface of its own, so a component that reads it
//! says so in its imports.
//!
//! This module does not cache or parse values: read them where you need
//! them; the host answers from memory.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit/deps/config",
        world: "wasi:config/imports",
    });
}

use bindings::wasi::config::store;

/// Why the host could not answer: a [`StoreError`](crate::StoreError), the
/// same type as `kv::Error`, which answers `503` with its one line.
pub type Error = crate::StoreError;

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        Error::new(
            "configuration",
            match error {
                store::Error::Upstream(message) | store::Error::Io(message) => message,
            },
        )
    }
}

/// The value of configuration variable `key`, if the host has one.
pub fn get(key: &str) -> Result<Option<String>, Error> {
    Ok(store::get(key)?)
}

/// Every configuration variable the host has, as `(key, value)` pairs.
pub fn get_all() -> Result<Vec<(String, String)>, Error> {
    Ok(store::get_all()?)
}
