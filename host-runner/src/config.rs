//! What the user asked for ([`ServeOptions`]) and what the server applies
//! ([`EffectiveConfig`]).
//!
//! The two are separate because some limits only make sense once the
//! component's world is known: a p2 handler cannot be called concurrently,
//! and the reuse defaults differ per world (they follow `wasmtime serve`).
//! `EffectiveConfig` is the one place where every limit is settled, so a
//! guest-declared reuse policy can later be applied here as a ceiling.
//!
//! This module does not parse command lines (that is the binary's job) and
//! does not validate addresses; it only parses and prints durations so that
//! flags and messages use the same notation.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::component::World;

/// `wasmtime serve` 48 defaults, so that switching between the two tools does
/// not change behaviour.
const P3_MAX_INSTANCE_REUSE_COUNT: usize = 128;
const P2_MAX_INSTANCE_REUSE_COUNT: usize = 1;
const P3_MAX_INSTANCE_CONCURRENT_REUSE_COUNT: usize = 16;

/// Serving options as given by the user; `None` means "the default for the
/// component's world" or "no limit", as documented per field.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to accept HTTP connections on; port 0 picks a free port.
    pub addr: SocketAddr,
    /// A connection to this address starts a graceful shutdown.
    pub shutdown_addr: Option<SocketAddr>,
    /// Requests one instance may accept before it is retired
    /// (default: 128 for p3, 1 for p2).
    pub max_instance_reuse_count: Option<usize>,
    /// Requests one instance may handle at the same time (default: 16 for
    /// p3; always 1 for p2).
    pub max_instance_concurrent_reuse_count: Option<usize>,
    /// How long an idle instance is kept for reuse.
    pub idle_instance_timeout: Duration,
    /// Longest time a request may take to produce its response (no limit
    /// when `None`).
    pub request_timeout: Option<Duration>,
    /// Requests handled at once across all instances; more wait (no limit
    /// when `None`).
    pub max_concurrent_requests: Option<usize>,
    /// Open client connections; more wait in the accept queue (no limit
    /// when `None`).
    pub max_concurrent_connections: Option<usize>,
    /// Environment variables every instance sees.
    pub env: Vec<(String, String)>,
    /// Prefix each line of guest output with `stdout [instance N] :: `.
    pub logging_prefix: bool,
    /// Add `x-reprise-instance` and `x-reprise-instance-request` to
    /// responses, so tests can observe reuse.
    pub debug_headers: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)),
            shutdown_addr: None,
            max_instance_reuse_count: None,
            max_instance_concurrent_reuse_count: None,
            idle_instance_timeout: Duration::from_secs(1),
            request_timeout: None,
            max_concurrent_requests: None,
            max_concurrent_connections: None,
            env: Vec::new(),
            logging_prefix: true,
            debug_headers: false,
        }
    }
}

/// The limits the server applies to one component, with every default
/// resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveConfig {
    /// The world the component was detected as.
    pub world: World,
    /// Requests one instance accepts before it is retired (at least 1).
    pub max_instance_reuse_count: usize,
    /// Requests one instance handles at the same time (at least 1; 1 for p2).
    pub max_instance_concurrent_reuse_count: usize,
    /// How long an idle instance is kept for reuse.
    pub idle_instance_timeout: Duration,
    /// Longest time a request may take to produce its response.
    pub request_timeout: Option<Duration>,
    /// Requests handled at once across all instances.
    pub max_concurrent_requests: Option<usize>,
    /// Open client connections.
    pub max_concurrent_connections: Option<usize>,
    /// Environment variables every instance sees.
    pub env: Vec<(String, String)>,
    /// Prefix guest output lines with the instance id.
    pub logging_prefix: bool,
    /// Add the reuse-observing response headers.
    pub debug_headers: bool,
}

impl EffectiveConfig {
    /// Settles `options` for a component of the given `world`.
    ///
    /// Counts of 0 are raised to 1: a limit of 0 would make the server hang
    /// or create and drop instances forever without serving anything.
    pub fn resolve(options: &ServeOptions, world: World) -> Self {
        let (default_reuse, default_concurrent) = match world {
            World::P3 => (
                P3_MAX_INSTANCE_REUSE_COUNT,
                P3_MAX_INSTANCE_CONCURRENT_REUSE_COUNT,
            ),
            World::P2 => (P2_MAX_INSTANCE_REUSE_COUNT, 1),
        };
        let concurrent = match world {
            World::P3 => options
                .max_instance_concurrent_reuse_count
                .unwrap_or(default_concurrent),
            // A p2 `incoming-handler.handle` call is synchronous: a second
            // call cannot start before the first returns.
            World::P2 => 1,
        };
        Self {
            world,
            max_instance_reuse_count: options
                .max_instance_reuse_count
                .unwrap_or(default_reuse)
                .max(1),
            max_instance_concurrent_reuse_count: concurrent.max(1),
            idle_instance_timeout: options.idle_instance_timeout,
            request_timeout: options.request_timeout,
            max_concurrent_requests: options.max_concurrent_requests.map(|n| n.max(1)),
            max_concurrent_connections: options.max_concurrent_connections.map(|n| n.max(1)),
            env: options.env.clone(),
            logging_prefix: options.logging_prefix,
            debug_headers: options.debug_headers,
        }
    }
}

/// Parses a duration the way `wasmtime` flags do: a number with an `ns`,
/// `us` (or `μs`), `ms` or `s` suffix; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        format!(
            "invalid duration `{text}`: expected a whole number with an optional unit, e.g. 100us, 250ms or 5s"
        )
    };
    let value: u64 = number.parse().map_err(|_| invalid())?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "us" | "μs" => Ok(Duration::from_micros(value)),
        "ns" => Ok(Duration::from_nanos(value)),
        _ => Err(invalid()),
    }
}

/// Displays a duration in the notation [`parse_duration`] reads, using the
/// largest unit that keeps it exact, so messages echo what the user typed
/// (`100us`, not `0.0001s`).
#[derive(Clone, Copy, Debug)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        for (unit, per) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
            if nanos != 0 && nanos.is_multiple_of(per) {
                return write!(f, "{}{unit}", nanos / per);
            }
        }
        write!(f, "{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_wasmtime_flags() {
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("9ns"), Ok(Duration::from_nanos(9)));
        for bad in ["banana", "", "ms", "1.5s", "-1s", "10m", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_print_in_the_unit_the_user_would_type() {
        let show = |d| HumanDuration(d).to_string();
        assert_eq!(show(Duration::from_micros(100)), "100us");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_secs(5)), "5s");
        assert_eq!(show(Duration::from_nanos(7)), "7ns");
        assert_eq!(show(Duration::ZERO), "0ns");
    }

    #[test]
    fn reuse_defaults_follow_wasmtime_serve_per_world() {
        let options = ServeOptions::default();
        let p3 = EffectiveConfig::resolve(&options, World::P3);
        assert_eq!(p3.max_instance_reuse_count, 128);
        assert_eq!(p3.max_instance_concurrent_reuse_count, 16);
        let p2 = EffectiveConfig::resolve(&options, World::P2);
        assert_eq!(p2.max_instance_reuse_count, 1);
        assert_eq!(p2.max_instance_concurrent_reuse_count, 1);
    }

    #[test]
    fn p2_is_never_called_concurrently_whatever_the_flag_says() {
        let options = ServeOptions {
            max_instance_reuse_count: Some(50),
            max_instance_concurrent_reuse_count: Some(8),
            ..ServeOptions::default()
        };
        let p2 = EffectiveConfig::resolve(&options, World::P2);
        assert_eq!(p2.max_instance_reuse_count, 50);
        assert_eq!(p2.max_instance_concurrent_reuse_count, 1);
    }

    #[test]
    fn zero_counts_are_raised_to_one() {
        let options = ServeOptions {
            max_instance_reuse_count: Some(0),
            max_instance_concurrent_reuse_count: Some(0),
            ..ServeOptions::default()
        };
        let p3 = EffectiveConfig::resolve(&options, World::P3);
        assert_eq!(p3.max_instance_reuse_count, 1);
        assert_eq!(p3.max_instance_concurrent_reuse_count, 1);
    }
}
