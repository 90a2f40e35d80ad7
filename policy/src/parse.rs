//! Reading the section back, for hosts (feature `parse`).
//!
//! It validates as strictly as the `const` builder asserts, so a policy that
//! parses is one a guest could have declared. It never panics on any input:
//! a malformed section is a [`PolicyError`] naming the problem, for the host
//! to stop start-up with. Finding the section among a component's custom
//! sections is left to the host's WebAssembly parser.

use crate::{Reuse, ReusePolicy, SECTION};
use serde_json::Value;
use std::fmt;

/// Why a component's policy section could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{SECTION}` section: {}", self.0)
    }
}

impl std::error::Error for PolicyError {}

fn invalid(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

impl ReusePolicy {
    /// The policy of a component, given the payloads of its custom sections
    /// named [`SECTION`] (nested ones included).
    ///
    /// `Ok(None)` when there are none: the component was not built with
    /// reprise, and the host's own settings apply. More than one is an error.
    pub fn from_sections<'a>(
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Option<ReusePolicy>, PolicyError> {
        let mut found = None;
        for payload in payloads {
            if found.is_some() {
                return Err(invalid("the component holds more than one"));
            }
            found = Some(Self::parse(payload)?);
        }
        Ok(found)
    }

    /// Parses one section payload: schema version 1 JSON.
    ///
    /// ```
    /// use reprise_policy::ReusePolicy;
    ///
    /// let section = ReusePolicy::serial().max_requests(10).to_section();
    /// assert_eq!(
    ///     ReusePolicy::parse(&section),
    ///     Ok(ReusePolicy::serial().max_requests(10))
    /// );
    /// ```
    pub fn parse(payload: &[u8]) -> Result<ReusePolicy, PolicyError> {
        let json: Value =
            serde_json::from_slice(payload).map_err(|e| invalid(format!("not JSON ({e})")))?;
        let object = json
            .as_object()
            .ok_or_else(|| invalid("expected a JSON object"))?;
        // A JSON map keeps the last of two equal keys; which one a reader
        // honours must not depend on the reader.
        if let Some(key) = duplicate_key(payload) {
            return Err(invalid(format!("field `{key}` is given twice")));
        }
        match object.get("version").and_then(Value::as_u64) {
            Some(1) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "schema version {other} is unknown (this host reads version 1)"
                )));
            }
            None => return Err(invalid("missing integer field `version`")),
        }
        let reuse = match object.get("reuse").and_then(Value::as_str) {
            Some("never") => Reuse::Never,
            Some("serial") => Reuse::Serial,
            Some("concurrent") => Reuse::Concurrent,
            _ => {
                return Err(invalid(
                    "field `reuse` must be \"never\", \"serial\" or \"concurrent\"",
                ));
            }
        };
        let limit = |name: &str, min: u64| -> Result<Option<u64>, PolicyError> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => match value.as_u64() {
                    Some(n) if n >= min => Ok(Some(n)),
                    _ => Err(invalid(format!(
                        "field `{name}` must be an integer >= {min}"
                    ))),
                },
            }
        };
        let max_concurrency = limit("max_concurrency", 1)?
            .map(|n| u32::try_from(n).map_err(|_| invalid("field `max_concurrency` is too large")))
            .transpose()?;
        if max_concurrency.is_some() && reuse != Reuse::Concurrent {
            return Err(invalid(
                "field `max_concurrency` applies to concurrent reuse only",
            ));
        }
        Ok(ReusePolicy {
            reuse,
            max_concurrency,
            max_requests: limit("max_requests", 1)?,
            // 0 is valid: the instance retires after every request.
            max_memory: limit("max_memory", 0)?,
        })
    }
}

/// The first key that occurs twice in the top-level object of `payload`,
/// which must be valid JSON. Keys are compared decoded (`"\u0076ersion"`
/// is `version`).
fn duplicate_key(payload: &[u8]) -> Option<String> {
    let mut seen = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < payload.len() {
        match payload[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i;
                i += 1;
                while i < payload.len() && payload[i] != b'"' {
                    // Skips the escaped byte, a quote included.
                    i += if payload[i] == b'\\' { 2 } else { 1 };
                }
                let rest = payload.get(i + 1..).unwrap_or_default();
                let is_key = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':');
                if depth == 1
                    && is_key
                    && let Some(raw) = payload.get(start..=i)
                    && let Ok(key) = serde_json::from_slice::<String>(raw)
                {
                    if seen.contains(&key) {
                        return Some(key);
                    }
                    seen.push(key);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: &[u8]) -> Result<ReusePolicy, PolicyError> {
        ReusePolicy::parse(payload)
    }

    #[test]
    fn every_policy_a_guest_declares_reads_back_unchanged() {
        for policy in [
            ReusePolicy::concurrent(),
            ReusePolicy::serial(),
            ReusePolicy::never(),
            ReusePolicy::concurrent()
                .max_concurrency(u32::MAX)
                .max_requests(u64::MAX)
                .max_memory(u64::MAX),
            ReusePolicy::serial().max_requests(1).max_memory(64 << 20),
        ] {
            assert_eq!(parse(&policy.to_section()), Ok(policy));
        }
    }

    #[test]
    fn reads_every_field_and_ignores_padding() {
        let policy = parse(
            br#"{"version":1,"reuse":"concurrent","max_concurrency":4,"max_requests":9,"max_memory":1024}   "#,
        )
        .unwrap();
        assert_eq!(policy.concurrency_limit(), Some(4));
        assert_eq!(policy.request_limit(), Some(9));
        assert_eq!(policy.memory_limit(), Some(1024));
    }

    #[test]
    fn a_field_given_twice_is_refused_by_name() {
        let error =
            parse(br#"{"version":1,"reuse":"concurrent","max_requests":5,"max_requests":1}"#)
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `reprise:reuse-policy` section: field `max_requests` is given twice"
        );
        let error =
            parse(br#"{"version":1,"reuse":"never","\u0072euse":"concurrent"}"#).unwrap_err();
        assert!(error.to_string().contains("field `reuse` is given twice"));
        // Equal keys in a nested value, or a key's text inside a string,
        // are not duplicates.
        assert!(
            parse(br#"{"version":1,"reuse":"serial","x":{"a":1,"a":2},"y":"\"reuse\":"}"#).is_ok()
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert!(parse(br#"{"version":1,"reuse":"serial","later":true}"#).is_ok());
    }

    #[test]
    fn a_component_without_the_section_has_no_policy_and_one_with_two_is_refused() {
        assert_eq!(ReusePolicy::from_sections([]), Ok(None));
        let section = ReusePolicy::never().to_section();
        assert_eq!(
            ReusePolicy::from_sections([&section[..]]),
            Ok(Some(ReusePolicy::never()))
        );
        let error = ReusePolicy::from_sections([&section[..], &section[..]]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `reprise:reuse-policy` section: the component holds more than one"
        );
    }

    #[test]
    fn malformed_sections_are_named_errors() {
        let error = |payload: &[u8]| parse(payload).unwrap_err().to_string();
        assert!(error(b"not json").contains("not JSON"));
        assert!(error(b"[1]").contains("expected a JSON object"));
        assert!(error(br#"{"reuse":"never"}"#).contains("missing integer field `version`"));
        assert!(error(br#"{"version":2,"reuse":"never"}"#).contains("schema version 2 is unknown"));
        assert!(error(br#"{"version":1,"reuse":"sometimes"}"#).contains("field `reuse`"));
        assert!(
            error(br#"{"version":1,"reuse":"concurrent","max_concurrency":0}"#).contains(">= 1")
        );
        assert!(
            error(br#"{"version":1,"reuse":"serial","max_concurrency":2}"#)
                .contains("concurrent reuse only")
        );
        assert!(
            error(br#"{"version":1,"reuse":"never","max_requests":-3}"#).contains("max_requests")
        );
    }

    #[test]
    fn no_input_makes_the_parser_panic() {
        // A cheap deterministic sweep over byte soup and near-miss JSON; the
        // soak suite fuzzes harder.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pieces: [&[u8]; 12] = [
            b"{",
            b"}",
            b"\"version\":",
            b"1",
            b"\"reuse\":",
            b"\"never\"",
            b",",
            b"\"max_requests\":",
            b"-1",
            b"18446744073709551616",
            b"null",
            b"\xff",
        ];
        for _ in 0..20_000 {
            let mut input = Vec::new();
            for _ in 0..next() % 12 {
                input.extend_from_slice(pieces[(next() % 12) as usize]);
            }
            let _ = parse(&input);
        }
    }
}
