//! One line of a requests file: the JSON-lines format `serve --record`
//! writes and `check --requests` reads (people write it by hand too), kept
//! here, below both, so that neither imports the other.
//!
//! This module only says what a line holds and how it is written; checking
//! what a line asks for (a valid method, path, headers) is `check`'s, and
//! deciding what to record is `serve`'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a recording writes in place of a secret (a credential header's
/// value, a password field of a form).
pub(crate) const REDACTED: &str = "REDACTED";

/// A line of a requests file, as written.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProbeLine {
    #[serde(default)]
    pub(crate) method: Option<String>,
    pub(crate) path: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) body: String,
}

impl ProbeLine {
    /// The line as one line of JSON, newline included.
    pub(crate) fn to_line(&self) -> String {
        // Strings and a map of strings always serialize.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}
