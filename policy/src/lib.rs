//! The reuse policy a reprise component declares, and its wire form: the
//! `reprise:reuse-policy` custom section.
//!
//! This crate is the contract between the two halves of reprise. A guest
//! builds a [`ReusePolicy`] in a `const` and the export macro writes
//! [`ReusePolicy::to_section`] into the component; a host reads the section
//! back with [`ReusePolicy::from_sections`] (feature `parse`) before it
//! instantiates anything. Because both use this one type, the limits a host
//! derives ([`ReusePolicy::concurrency_limit`] and friends) are the very
//! limits the guest enforces. Schema: `docs/src/reference/reuse-policy.md` in
//! reprise's guide (version 1).
//!
//! It only describes, encodes and decodes. Enforcing a policy is the SDK's
//! job (through backpressure), applying it as a ceiling over host settings is
//! the host's, and finding custom sections in a component is the host's
//! WebAssembly parser's. Without `parse` the crate has no dependencies, so a
//! guest pays nothing for the host's half.
//!
//! One more fact both halves share lives here: [`hop_by_hop`], the header
//! fields a connection owns, which the SDK's client and host-runner both
//! keep from crossing it.

/// Name of the custom section that carries the policy.
pub const SECTION: &str = "reprise:reuse-policy";

/// How a component instance may be reused: declared once, at the export.
///
/// ```
/// use reprise_policy::ReusePolicy;
///
/// // One request at a time, and a fresh instance after 1000 requests or
/// // once linear memory passes 64 MiB.
/// const POLICY: ReusePolicy = ReusePolicy::serial()
///     .max_requests(1000)
///     .max_memory(64 << 20);
/// assert_eq!(POLICY.concurrency_limit(), Some(1));
/// ```
///
/// In a reprise component it goes to the export macro:
/// `reprise::export_p3!(MyHandler, policy = POLICY);`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReusePolicy {
    reuse: Reuse,
    max_concurrency: Option<u32>,
    max_requests: Option<u64>,
    max_memory: Option<u64>,
}

/// The kind of reuse a [`ReusePolicy`] allows: its `reuse` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// One request per instance.
    Never,
    /// Reuse, one request at a time.
    Serial,
    /// Reuse, several requests at once.
    Concurrent,
}

impl ReusePolicy {
    /// Reuse freely, as many requests at once as the host sends. The default.
    pub const fn concurrent() -> Self {
        ReusePolicy {
            reuse: Reuse::Concurrent,
            max_concurrency: None,
            max_requests: None,
            max_memory: None,
        }
    }

    /// Reuse the instance, but never for two requests at once.
    pub const fn serial() -> Self {
        ReusePolicy {
            reuse: Reuse::Serial,
            ..Self::concurrent()
        }
    }

    /// One request per instance: a fresh instance for every request.
    pub const fn never() -> Self {
        ReusePolicy {
            reuse: Reuse::Never,
            ..Self::concurrent()
        }
    }

    /// At most `n` requests in flight on one instance (concurrent reuse only).
    ///
    /// A request counts as in flight until its scope closes: until its body is
    /// written and every task it spawned is done, not merely until it returns
    /// a response. That is stricter than a host's own concurrency setting
    /// (`--max-instance-concurrent-reuse-count`), which stops counting at the
    /// response.
    pub const fn max_concurrency(self, n: u32) -> Self {
        assert!(n >= 1, "max_concurrency must be at least 1");
        assert!(
            matches!(self.reuse, Reuse::Concurrent),
            "max_concurrency applies to concurrent reuse only"
        );
        ReusePolicy {
            max_concurrency: Some(n),
            ..self
        }
    }

    /// Retire an instance once it has accepted `n` requests.
    pub const fn max_requests(self, n: u64) -> Self {
        assert!(n >= 1, "max_requests must be at least 1");
        ReusePolicy {
            max_requests: Some(n),
            ..self
        }
    }

    /// Retire an instance once its linear memory has grown past `bytes`.
    ///
    /// Checked when each request ends. Linear memory never shrinks, so this
    /// bounds what a slow leak or a high-water mark can cost.
    pub const fn max_memory(self, bytes: u64) -> Self {
        assert!(bytes >= 1, "max_memory must be at least 1 byte");
        ReusePolicy {
            max_memory: Some(bytes),
            ..self
        }
    }

    /// The kind of reuse this policy allows.
    pub const fn reuse(&self) -> Reuse {
        self.reuse
    }

    /// Most requests in flight at once on one instance; `None` for no limit.
    pub const fn concurrency_limit(&self) -> Option<u32> {
        match self.reuse {
            Reuse::Never | Reuse::Serial => Some(1),
            Reuse::Concurrent => self.max_concurrency,
        }
    }

    /// Most requests one instance accepts; `None` for no limit.
    pub const fn request_limit(&self) -> Option<u64> {
        match self.reuse {
            Reuse::Never => Some(1),
            Reuse::Serial | Reuse::Concurrent => self.max_requests,
        }
    }

    /// Linear memory size past which an instance retires; `None` for no limit.
    pub const fn memory_limit(&self) -> Option<u64> {
        self.max_memory
    }

    /// Whether the policy can retire an instance on its own (as opposed to
    /// only limiting concurrency).
    #[doc(hidden)]
    pub const fn retires_instances(&self) -> bool {
        self.request_limit().is_some() || self.max_memory.is_some()
    }

    /// The policy as the section holds it: schema version 1 JSON, padded
    /// with spaces to a fixed length (JSON ignores trailing whitespace) so
    /// that it can be built in a `const`.
    #[doc(hidden)]
    pub const fn to_section(&self) -> [u8; SECTION_LEN] {
        let mut json = ConstWriter {
            buf: [b' '; SECTION_LEN],
            len: 0,
        };
        json.push(b"{\"version\":1,\"reuse\":\"");
        json.push(self.reuse.name().as_bytes());
        json.push(b"\"");
        if let Some(n) = self.max_concurrency {
            json.push(b",\"max_concurrency\":");
            json.push_number(n as u64);
        }
        if let Some(n) = self.max_requests {
            json.push(b",\"max_requests\":");
            json.push_number(n);
        }
        if let Some(n) = self.max_memory {
            json.push(b",\"max_memory\":");
            json.push_number(n);
        }
        json.push(b"}");
        json.buf
    }
}

impl Default for ReusePolicy {
    fn default() -> Self {
        Self::concurrent()
    }
}

impl Reuse {
    /// The value of the section's `reuse` field.
    pub const fn name(self) -> &'static str {
        match self {
            Reuse::Never => "never",
            Reuse::Serial => "serial",
            Reuse::Concurrent => "concurrent",
        }
    }
}

/// Room for the longest policy: every field, every number at `u64::MAX`.
#[doc(hidden)]
pub const SECTION_LEN: usize = 160;

struct ConstWriter {
    buf: [u8; SECTION_LEN],
    len: usize,
}

impl ConstWriter {
    const fn push(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            self.buf[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
    }

    const fn push_number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while count > 0 {
            count -= 1;
            self.buf[self.len] = digits[count];
            self.len += 1;
        }
    }
}

pub mod hop_by_hop;
#[cfg(feature = "parse")]
mod parse;
#[cfg(feature = "parse")]
pub use parse::PolicyError;

#[cfg(test)]
mod tests {
    use super::*;

    fn section(policy: ReusePolicy) -> String {
        String::from_utf8(policy.to_section().to_vec())
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn section_holds_only_the_fields_that_are_set() {
        assert_eq!(
            section(ReusePolicy::concurrent()),
            r#"{"version":1,"reuse":"concurrent"}"#
        );
        assert_eq!(
            section(ReusePolicy::never()),
            r#"{"version":1,"reuse":"never"}"#
        );
        assert_eq!(
            section(ReusePolicy::serial().max_requests(10).max_memory(1)),
            r#"{"version":1,"reuse":"serial","max_requests":10,"max_memory":1}"#
        );
    }

    #[test]
    fn longest_policy_fits_the_section() {
        let longest = ReusePolicy::concurrent()
            .max_concurrency(u32::MAX)
            .max_requests(u64::MAX)
            .max_memory(u64::MAX);
        assert!(section(longest).ends_with(":18446744073709551615}"));
    }

    #[test]
    fn never_and_serial_imply_their_limits() {
        assert_eq!(ReusePolicy::never().request_limit(), Some(1));
        assert_eq!(ReusePolicy::never().concurrency_limit(), Some(1));
        assert_eq!(ReusePolicy::serial().request_limit(), None);
        assert_eq!(ReusePolicy::serial().concurrency_limit(), Some(1));
        assert_eq!(ReusePolicy::concurrent().concurrency_limit(), None);
    }

    #[test]
    fn only_limits_that_end_an_instance_retire_it() {
        assert!(ReusePolicy::never().retires_instances());
        assert!(ReusePolicy::serial().max_memory(1).retires_instances());
        assert!(!ReusePolicy::serial().retires_instances());
        assert!(
            !ReusePolicy::concurrent()
                .max_concurrency(4)
                .retires_instances()
        );
    }
}
