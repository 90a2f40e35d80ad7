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

/// Query and form fields whose values are secrets: a name containing one
/// of these (case-insensitive).
const SECRET_FIELDS: [&str; 4] = ["password", "passwd", "secret", "token"];

/// `pairs` (`a=1&b=2`) with the values of secret fields written as
/// [`REDACTED`].
pub(crate) fn redact_fields(pairs: &str) -> String {
    pairs
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_field(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A path or URL with the secret fields of its query redacted.
pub(crate) fn redact_query(target: &str) -> String {
    match target.split_once('?') {
        Some((path, query)) => format!("{path}?{}", redact_fields(query)),
        None => target.to_owned(),
    }
}

fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_FIELDS.iter().any(|secret| name.contains(secret))
}

/// A line of a recording that holds an outgoing call instead of a request:
/// `{"outgoing":{…}}`. Recordings without such lines (older ones, or written
/// by hand) stay valid.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExchangeLine {
    pub(crate) outgoing: Exchange,
}

/// One outgoing HTTP call a component made, and the answer it got.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Exchange {
    pub(crate) method: String,
    /// The URL as the component wrote it (secret query fields redacted).
    pub(crate) url: String,
    /// `sha256:` and the hex SHA-256 of the request body as sent.
    pub(crate) body_sha256: String,
    pub(crate) status: u16,
    /// The response's fields, in order, credentials redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) headers: Vec<(String, String)>,
    /// The response body when it is UTF-8 text…
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) body: String,
    /// …or in base64 when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body_base64: Option<String>,
    /// The body was longer than the recording keeps, or was not read to
    /// its end: it holds the part kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) body_cut: bool,
}

impl ExchangeLine {
    /// Whether `line` (trimmed) is an outgoing call rather than a request.
    pub(crate) fn is_one(line: &str) -> bool {
        line.strip_prefix('{')
            .is_some_and(|rest| rest.trim_start().starts_with("\"outgoing\""))
    }

    /// The line as one line of JSON, newline included.
    pub(crate) fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}
