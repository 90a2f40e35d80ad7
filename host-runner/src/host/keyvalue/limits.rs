//! The two limits every backend keeps alike: the [`Quota`] on what the
//! store may hold, checked before a write, and the [`Budget`] of bytes one
//! call may copy out, taken before a copy; and [`page`], a `list-keys`
//! page cut to both its length and the budget.
//!
//! This module counts and refuses; it does not read or write any store.

use std::collections::HashMap;

use super::{DEFAULT_MAX_BYTES, DEFAULT_MAX_KEYS, Error, KeyResponse, WasiOptions};
use crate::units::HumanSize;

/// How much a store may hold: bytes of keys and values (plus, in memory,
/// what each entry costs the host beyond them) and keys.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quota {
    pub(crate) max_bytes: u64,
    pub(crate) max_keys: u64,
}

impl Quota {
    pub(crate) fn from_options(wasi: &WasiOptions) -> Self {
        Self {
            max_bytes: wasi.keyvalue_max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            max_keys: wasi.keyvalue_max_keys.unwrap_or(DEFAULT_MAX_KEYS),
        }
    }

    /// Refuses a write that would leave the store with `bytes` and `keys`
    /// past the quota.
    pub(super) fn admit(&self, bytes: u64, keys: u64) -> Result<(), Error> {
        if bytes > self.max_bytes || keys > self.max_keys {
            return Err(Error::Other(format!(
                "the key-value store is full (it may hold {} in {} keys); delete keys before writing more, or raise -Skeyvalue-max-bytes / -Skeyvalue-max-keys",
                HumanSize(self.max_bytes),
                self.max_keys
            )));
        }
        Ok(())
    }

    /// Admits writing `entries` into a store that holds `bytes` in `keys`,
    /// and returns what it will hold then, counted before anything is
    /// written so that a refused batch writes nothing. `cost` prices an
    /// entry; `stored` is the cost of the entry a key holds already, asked
    /// once a key (a key written twice in one batch counts once).
    pub(super) fn admit_writes<'a>(
        &self,
        (mut bytes, mut keys): (u64, u64),
        entries: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        cost: fn(&str, &[u8]) -> u64,
        mut stored: impl FnMut(&str) -> Result<Option<u64>, Error>,
    ) -> Result<(u64, u64), Error> {
        let mut seen: HashMap<&str, u64> = HashMap::new();
        for (key, value) in entries {
            let old = match seen.get(key) {
                Some(old) => Some(*old),
                None => stored(key)?,
            };
            match old {
                Some(old) => bytes -= old,
                None => keys += 1,
            }
            let new = cost(key, value);
            bytes += new;
            seen.insert(key, new);
        }
        self.admit(bytes, keys)?;
        Ok((bytes, keys))
    }
}

/// One page of `list-keys` from `keys` (each with its position, in listing
/// order from the cursor on): up to `limit` of them, as many as fit in
/// `budget` but at least one (or the error saying it does not fit), and
/// the position the next page starts at. A key is copied only once it fits.
/// The outer error is the backend's, met while reading `keys`.
pub(super) fn page<K: AsRef<str>, E>(
    keys: impl IntoIterator<Item = Result<(u64, K), E>>,
    limit: usize,
    budget: &mut Budget,
) -> Result<Result<KeyResponse, Error>, E> {
    let mut page = Vec::new();
    for entry in keys {
        let (position, key) = entry?;
        let key = key.as_ref();
        if page.len() == limit || (!page.is_empty() && !budget.fits(key.len() as u64)) {
            return Ok(Ok(KeyResponse {
                keys: page,
                cursor: Some(position),
            }));
        }
        if let Err(refused) = budget.take(key, key.len() as u64) {
            return Ok(Err(refused));
        }
        page.push(key.to_owned());
    }
    Ok(Ok(KeyResponse {
        keys: page,
        cursor: None,
    }))
}

/// Bytes one call may still copy out of the store: the room left in the
/// calling instance's memory, which the result has to fit in anyway. A
/// backend takes from it before it copies a value, so a call asking for
/// more than the guest could hold fails instead of growing the host.
pub(crate) struct Budget {
    pub(super) left: u64,
}

impl Budget {
    pub(crate) fn new(bytes: u64) -> Self {
        Self { left: bytes }
    }

    /// Takes `bytes` for `key`, or refuses with an error the guest sees.
    pub(super) fn take(&mut self, key: &str, bytes: u64) -> Result<(), Error> {
        self.take_for(format_args!("`{}`", Shortened(key)), bytes)
    }

    /// Takes `bytes` for the values of `keys`.
    pub(super) fn take_values(&mut self, keys: &[String], bytes: u64) -> Result<(), Error> {
        match keys {
            [key] => self.take(key, bytes),
            _ => self.take_for(format_args!("{} values", keys.len()), bytes),
        }
    }

    pub(super) fn take_for(
        &mut self,
        what: std::fmt::Arguments<'_>,
        bytes: u64,
    ) -> Result<(), Error> {
        if bytes > self.left {
            return Err(Error::Other(format!(
                "reading {what} ({}) would copy more than this call may ({} left, the room in the instance's memory); read fewer or smaller values at once",
                Rounded(bytes),
                Rounded(self.left)
            )));
        }
        self.left -= bytes;
        Ok(())
    }

    /// Whether `bytes` more would fit, without taking them.
    pub(super) fn fits(&self, bytes: u64) -> bool {
        bytes <= self.left
    }
}

/// A size as a person reads it: `254.9MiB`, not `267321320B` (the room
/// left in an instance is rarely a round number).
struct Rounded(u64);

impl std::fmt::Display for Rounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match [("GiB", 30), ("MiB", 20), ("KiB", 10)]
            .into_iter()
            .find(|(_, shift)| self.0 >= 1 << shift)
        {
            Some((unit, shift)) => write!(f, "{:.1}{unit}", self.0 as f64 / (1u64 << shift) as f64),
            None => write!(f, "{}B", self.0),
        }
    }
}

/// A key as an error message names it: at most 64 characters of it.
pub(super) struct Shortened<'a>(pub(super) &'a str);

impl std::fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(64) {
            Some((end, _)) => write!(f, "{}…", &self.0[..end]),
            None => f.write_str(self.0),
        }
    }
}
