//! The guest's reuse policy, read from its `reprise:reuse-policy` custom
//! section before anything is instantiated.
//!
//! The schema, its limits and its parser live once, in the `reprise-policy`
//! crate that the SDK writes the section with; this module only finds the
//! section in a component and says how start-up prints it. Applying the
//! policy as a ceiling over the flags is `instance::config`'s job.

use std::fmt;

pub use reprise_policy::{PolicyError, Reuse, ReusePolicy, SECTION};

/// Finds and parses the policy section of a component (or core module).
///
/// `Ok(None)` when there is no section: the component was not built with
/// reprise, and the host's own settings apply.
pub fn read(wasm: &[u8]) -> Result<Option<ReusePolicy>, PolicyError> {
    let sections = wasmparser::Parser::new(0)
        .parse_all(wasm)
        // Structural errors are for the loader to report; here, stop looking.
        .map_while(Result::ok)
        .filter_map(|payload| match payload {
            wasmparser::Payload::CustomSection(section) if section.name() == SECTION => {
                Some(section.data())
            }
            _ => None,
        });
    ReusePolicy::from_sections(sections)
}

/// A policy as start-up reports it: `concurrent, max_requests 5, max_memory 8MiB`.
pub struct Described<'a>(pub &'a ReusePolicy);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy = self.0;
        f.write_str(policy.reuse().name())?;
        if let (Reuse::Concurrent, Some(n)) = (policy.reuse(), policy.concurrency_limit()) {
            write!(f, ", max_concurrency {n}")?;
        }
        if let (Reuse::Serial | Reuse::Concurrent, Some(n)) =
            (policy.reuse(), policy.request_limit())
        {
            write!(f, ", max_requests {n}")?;
        }
        if let Some(bytes) = policy.memory_limit() {
            write!(f, ", max_memory {}", crate::units::HumanSize(bytes))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_start_up_reports_it() {
        let policy = ReusePolicy::concurrent()
            .max_requests(5)
            .max_memory(8 << 20);
        assert_eq!(
            Described(&policy).to_string(),
            "concurrent, max_requests 5, max_memory 8MiB"
        );
        assert_eq!(Described(&ReusePolicy::never()).to_string(), "never");
    }

    #[test]
    fn bytes_that_are_not_wasm_hold_no_policy() {
        for bytes in [
            &b""[..],
            b"\0asm",
            b"\0asm\x01\0\0\0\xff",
            b"not wasm at all",
        ] {
            assert_eq!(read(bytes), Ok(None));
        }
    }
}
