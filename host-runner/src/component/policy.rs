//! The guest's reuse policy, read from its `reprise:reuse-policy` custom
//! section before anything is instantiated.
//!
//! Schema: `docs/src/reference/reuse-policy.md` (version 1). This module only
//! reads and validates; applying the policy as a ceiling over the flags is
//! `config`'s job. It never panics on any input: a malformed section is an
//! error naming the problem, and the caller stops start-up with it.

use std::fmt;

/// Name of the custom section that carries the policy.
pub const SECTION: &str = "reprise:reuse-policy";

/// A guest's declared reuse policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestPolicy {
    /// How the instance may be reused.
    pub reuse: Reuse,
    /// Most requests in flight at once (concurrent reuse only).
    pub max_concurrency: Option<u32>,
    /// Most requests one instance accepts.
    pub max_requests: Option<u64>,
    /// Linear memory past which the guest retires its instance.
    pub max_memory: Option<u64>,
}

/// The `reuse` field of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// One request per instance.
    Never,
    /// Reuse, one request at a time.
    Serial,
    /// Reuse, several requests at once.
    Concurrent,
}

/// As start-up reports it: `concurrent, max_requests 5, max_memory 8MiB`.
impl fmt::Display for GuestPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.reuse {
            Reuse::Never => "never",
            Reuse::Serial => "serial",
            Reuse::Concurrent => "concurrent",
        })?;
        if let Some(n) = self.max_concurrency {
            write!(f, ", max_concurrency {n}")?;
        }
        if let Some(n) = self.max_requests {
            write!(f, ", max_requests {n}")?;
        }
        if let Some(bytes) = self.max_memory {
            write!(f, ", max_memory {}", crate::units::HumanSize(bytes))?;
        }
        Ok(())
    }
}

impl GuestPolicy {
    /// Most requests one instance may accept; `None` for no limit.
    pub fn request_limit(&self) -> Option<u64> {
        match self.reuse {
            Reuse::Never => Some(1),
            Reuse::Serial | Reuse::Concurrent => self.max_requests,
        }
    }

    /// Most requests in flight at once on one instance; `None` for no limit.
    pub fn concurrency_limit(&self) -> Option<u32> {
        match self.reuse {
            Reuse::Never | Reuse::Serial => Some(1),
            Reuse::Concurrent => self.max_concurrency,
        }
    }
}

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

/// Finds and parses the policy section of a component (or core module).
///
/// `Ok(None)` when there is no section: the component was not built with
/// reprise, and the host's own settings apply.
pub fn read(wasm: &[u8]) -> Result<Option<GuestPolicy>, PolicyError> {
    let mut found = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        // Structural errors are for the loader to report; here, stop looking.
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        if section.name() != SECTION {
            continue;
        }
        if found.is_some() {
            return Err(invalid("the component holds more than one"));
        }
        found = Some(parse(section.data())?);
    }
    Ok(found)
}

/// Parses a section payload: schema version 1 JSON.
pub fn parse(payload: &[u8]) -> Result<GuestPolicy, PolicyError> {
    let json: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| invalid(format!("not JSON ({e})")))?;
    let object = json
        .as_object()
        .ok_or_else(|| invalid("expected a JSON object"))?;
    match object.get("version").and_then(serde_json::Value::as_u64) {
        Some(1) => {}
        Some(other) => {
            return Err(invalid(format!(
                "schema version {other} is unknown (this host-runner reads version 1)"
            )));
        }
        None => return Err(invalid("missing integer field `version`")),
    }
    let reuse = match object.get("reuse").and_then(serde_json::Value::as_str) {
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
            None | Some(serde_json::Value::Null) => Ok(None),
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
    Ok(GuestPolicy {
        reuse,
        max_concurrency,
        max_requests: limit("max_requests", 1)?,
        max_memory: limit("max_memory", 0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_field_and_ignores_padding() {
        let policy = parse(
            br#"{"version":1,"reuse":"concurrent","max_concurrency":4,"max_requests":9,"max_memory":1024}   "#,
        )
        .unwrap();
        assert_eq!(policy.concurrency_limit(), Some(4));
        assert_eq!(policy.request_limit(), Some(9));
        assert_eq!(policy.max_memory, Some(1024));
    }

    #[test]
    fn never_and_serial_imply_their_limits() {
        let never = parse(br#"{"version":1,"reuse":"never"}"#).unwrap();
        assert_eq!(
            (never.request_limit(), never.concurrency_limit()),
            (Some(1), Some(1))
        );
        let serial = parse(br#"{"version":1,"reuse":"serial"}"#).unwrap();
        assert_eq!(
            (serial.request_limit(), serial.concurrency_limit()),
            (None, Some(1))
        );
    }

    #[test]
    fn displays_as_start_up_reports_it() {
        let policy =
            parse(br#"{"version":1,"reuse":"concurrent","max_requests":5,"max_memory":8388608}"#)
                .unwrap();
        assert_eq!(
            policy.to_string(),
            "concurrent, max_requests 5, max_memory 8MiB"
        );
        let never = parse(br#"{"version":1,"reuse":"never"}"#).unwrap();
        assert_eq!(never.to_string(), "never");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert!(parse(br#"{"version":1,"reuse":"serial","later":true}"#).is_ok());
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
            let _ = read(&input);
        }
    }
}
