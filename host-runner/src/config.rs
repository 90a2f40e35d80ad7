//! What the user asked for ([`ServeOptions`]) and what the server applies
//! ([`EffectiveConfig`]).
//!
//! The two are separate because some limits only make sense once the
//! component's world is known: a p2 handler cannot be called concurrently,
//! and the reuse defaults differ per world (they follow `wasmtime serve`).
//! `EffectiveConfig` is the one place where every limit is settled: the
//! guest's declared reuse policy is applied here as a ceiling over the
//! options, and each reuse limit remembers where its value came from
//! ([`Origin`]) so start-up can say so.
//!
//! This module does not parse command lines (that is the binary's job), does
//! not read the policy section (the policy module does) and does not validate
//! addresses; it only parses and prints durations and sizes so that flags and
//! messages use the same notation.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

use crate::component::World;
use crate::outbound::OutboundPolicy;
use crate::policy::{Reuse, ReusePolicy};

/// `wasmtime serve` 48 defaults, so that switching between the two tools does
/// not change behaviour.
const P3_MAX_INSTANCE_REUSE_COUNT: usize = 128;
const P2_MAX_INSTANCE_REUSE_COUNT: usize = 1;
const P3_MAX_INSTANCE_CONCURRENT_REUSE_COUNT: usize = 16;

/// How host-runner writes its own log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; guest output keeps its `stdout [instance N …] ::`
    /// prefix on the host's own stdout and stderr.
    #[default]
    Text,
    /// One JSON object per line on stderr, guest output included.
    Json,
}

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
    /// Requests handled at once across all instances; more wait up to
    /// `request_queue_timeout`, then get 503 (no limit when `None`).
    pub max_concurrent_requests: Option<usize>,
    /// How long a request waits for one of the `max_concurrent_requests`
    /// slots before it gets 503; zero rejects at once.
    pub request_queue_timeout: Duration,
    /// Open client connections; more wait in the accept queue (no limit
    /// when `None`).
    pub max_concurrent_connections: Option<usize>,
    /// Environment variables every instance sees.
    pub env: Vec<(String, String)>,
    /// Headers set on every request before the component sees it,
    /// replacing the client's values (`--header`).
    pub request_headers: RequestHeaders,
    /// The WASI interfaces beyond cli and http, and their settings (`-S`).
    pub wasi: WasiOptions,
    /// Which hosts the component may send HTTP requests to.
    pub outbound: OutboundPolicy,
    /// Prefix each line of guest output with `stdout [instance N] :: `.
    pub logging_prefix: bool,
    /// Add `x-reprise-instance` and `x-reprise-instance-request` to
    /// responses, so tests can observe reuse.
    pub debug_headers: bool,
    /// Serve Prometheus metrics at `/metrics` on this address.
    pub metrics_addr: Option<SocketAddr>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_request_body_size: u64,
    /// Largest size, in bytes, any one linear memory of an instance may grow
    /// to; growth past it fails inside the guest.
    pub max_memory_size: u64,
    /// Most component instances alive at once; a request that needs one
    /// more gets 503. Also sizes the pooling allocator.
    pub max_instances: u32,
    /// How long a client may take to send a request's headers; the
    /// connection is closed after that (`None`: no limit).
    pub header_read_timeout: Option<Duration>,
    /// Format of host-runner's log lines.
    pub log_format: LogFormat,
    /// Threads serving connections, each with its own instances (one per
    /// CPU core when `None`).
    pub threads: Option<usize>,
    /// Serve as a host that does not read the `reprise:reuse-policy`
    /// section would, leaving the policy to the guest's own run-time
    /// enforcement (to test that enforcement).
    pub ignore_guest_policy: bool,
    /// Append every request served to this file, in `check`'s requests
    /// format (`check --requests` replays it).
    pub record: Option<PathBuf>,
}

/// Default for [`ServeOptions::max_request_body_size`]: 16 MiB.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 16 << 20;
/// Default for [`ServeOptions::max_memory_size`]: 256 MiB per linear memory.
pub const DEFAULT_MAX_MEMORY_SIZE: u64 = 256 << 20;
/// Default for [`ServeOptions::max_instances`] (wasmtime's pooling default).
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;
/// Default for [`ServeOptions::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ServeOptions::request_queue_timeout`].
pub const DEFAULT_REQUEST_QUEUE_TIMEOUT: Duration = Duration::from_millis(100);

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
            request_queue_timeout: DEFAULT_REQUEST_QUEUE_TIMEOUT,
            max_concurrent_connections: None,
            env: Vec::new(),
            request_headers: RequestHeaders::default(),
            wasi: WasiOptions::default(),
            outbound: OutboundPolicy::default(),
            logging_prefix: true,
            debug_headers: false,
            metrics_addr: None,
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
            max_memory_size: DEFAULT_MAX_MEMORY_SIZE,
            max_instances: DEFAULT_MAX_INSTANCES,
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            log_format: LogFormat::Text,
            threads: None,
            ignore_guest_policy: false,
            record: None,
        }
    }
}

/// The WASI interfaces `serve` provides beyond all of WASI cli and http
/// (which it always links), as `wasmtime serve`'s `-S` options set them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasiOptions {
    /// Link `wasi:config/store@0.2.0-rc.1` (`-Sconfig`).
    pub config: bool,
    /// The variables `wasi:config` answers with (`-Sconfig-var=KEY=VALUE`).
    pub config_vars: Vec<(String, String)>,
    /// Link `wasi:keyvalue@0.2.0-draft` (store, atomics, batch) to one
    /// in-memory store shared by every instance (`-Skeyvalue`).
    pub keyvalue: bool,
    /// What the store holds at start-up
    /// (`-Skeyvalue-in-memory-data=KEY=VALUE`).
    pub keyvalue_data: Vec<(String, String)>,
    /// Writes to a p2 outgoing body's stream that are buffered
    /// (`-Shttp-outgoing-body-buffer-chunks`; wasmtime's default when `None`).
    pub http_outgoing_body_buffer_chunks: Option<usize>,
    /// Largest single write to a p2 outgoing body's stream
    /// (`-Shttp-outgoing-body-chunk-size`; wasmtime's default when `None`).
    pub http_outgoing_body_chunk_size: Option<usize>,
}

/// Headers that replace the client's on every request (`--header`), in the
/// order given; a name given twice keeps both values, as in `wasmtime
/// serve`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeaders(pub Vec<(HeaderName, HeaderValue)>);

impl RequestHeaders {
    /// Removes every client value of each configured name, then adds the
    /// configured values.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for (name, _) in &self.0 {
            headers.remove(name);
        }
        for (name, value) in &self.0 {
            headers.append(name, value.clone());
        }
    }
}

/// The limits the server applies to one component, with every default
/// resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveConfig {
    /// The world the component was detected as.
    pub world: World,
    /// The reuse policy the component declared, if it has one (and it was
    /// not ignored).
    pub guest_policy: Option<ReusePolicy>,
    /// Requests one instance accepts before it is retired (at least 1).
    pub max_instance_reuse_count: usize,
    /// Where `max_instance_reuse_count` came from.
    pub max_instance_reuse_count_origin: Origin,
    /// Requests one instance handles at the same time (at least 1; 1 for p2).
    pub max_instance_concurrent_reuse_count: usize,
    /// Where `max_instance_concurrent_reuse_count` came from.
    pub max_instance_concurrent_reuse_count_origin: Origin,
    /// How long an idle instance is kept for reuse.
    pub idle_instance_timeout: Duration,
    /// Longest time a request may take to produce its response.
    pub request_timeout: Option<Duration>,
    /// Requests handled at once across all instances.
    pub max_concurrent_requests: Option<usize>,
    /// How long a request waits for a request slot before it gets 503.
    pub request_queue_timeout: Duration,
    /// Open client connections.
    pub max_concurrent_connections: Option<usize>,
    /// Environment variables every instance sees.
    pub env: Vec<(String, String)>,
    /// Headers set on every request before the component sees it.
    pub request_headers: RequestHeaders,
    /// The WASI interfaces beyond cli and http, and their settings.
    pub wasi: WasiOptions,
    /// Which hosts the component may send HTTP requests to.
    pub outbound: OutboundPolicy,
    /// Prefix guest output lines with the instance id.
    pub logging_prefix: bool,
    /// Add the reuse-observing response headers.
    pub debug_headers: bool,
    /// Largest request body accepted, in bytes.
    pub max_request_body_size: u64,
    /// Largest size, in bytes, of any one linear memory of an instance.
    pub max_memory_size: u64,
    /// Most component instances alive at once (at least 1).
    pub max_instances: u32,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Option<Duration>,
    /// Format of host-runner's log lines (and of guest output in JSON).
    pub log_format: LogFormat,
    /// Threads serving connections, each with its own instances (at least 1).
    pub threads: usize,
}

/// Where an effective reuse limit came from, as start-up reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The world's default, the same as `wasmtime serve`'s.
    Default,
    /// The option (command-line flag) as given.
    Flag,
    /// Fixed by the world: a p2 handler takes one call at a time.
    P2Handler,
    /// The guest's reuse policy, stricter than what the flag or default
    /// asked for.
    GuestPolicy {
        /// The part of the policy that set the limit, e.g. `never` or
        /// `max_requests 5`.
        rule: String,
        /// What the flag or default asked for.
        asked: usize,
        /// Whether `asked` came from the flag rather than the default.
        from_flag: bool,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Flag => f.write_str("flag"),
            Origin::P2Handler => f.write_str("p2 handlers take one call at a time"),
            Origin::GuestPolicy {
                rule,
                asked,
                from_flag,
            } => {
                let said = if *from_flag { "flag said" } else { "default" };
                write!(f, "guest policy: {rule}; {said} {asked}")
            }
        }
    }
}

impl EffectiveConfig {
    /// Settles `options` for a component of the given `world` that declares
    /// no reuse policy; see [`EffectiveConfig::resolve_with_policy`].
    pub fn resolve(options: &ServeOptions, world: World) -> Self {
        Self::resolve_with_policy(options, world, None)
    }

    /// Settles `options` for a component of the given `world` with the
    /// reuse policy it declared, if any.
    ///
    /// The policy is a ceiling: each reuse limit is the flag's value (or the
    /// world's default) unless the policy is stricter, so flags can tighten
    /// a policy but never loosen it. `options.ignore_guest_policy` drops the
    /// policy altogether.
    ///
    /// Counts of 0 are raised to 1: a limit of 0 would make the server hang
    /// or create and drop instances forever without serving anything.
    pub fn resolve_with_policy(
        options: &ServeOptions,
        world: World,
        policy: Option<&ReusePolicy>,
    ) -> Self {
        let policy = policy.filter(|_| !options.ignore_guest_policy);
        let (default_reuse, default_concurrent) = match world {
            World::P3 => (
                P3_MAX_INSTANCE_REUSE_COUNT,
                P3_MAX_INSTANCE_CONCURRENT_REUSE_COUNT,
            ),
            World::P2 => (P2_MAX_INSTANCE_REUSE_COUNT, 1),
        };
        let reuse_ceiling = policy.and_then(|policy| {
            let limit = policy.request_limit()?;
            let rule = match policy.reuse() {
                Reuse::Never => "never".to_owned(),
                Reuse::Serial | Reuse::Concurrent => format!("max_requests {limit}"),
            };
            Some((limit, rule))
        });
        let (max_instance_reuse_count, max_instance_reuse_count_origin) = ceiling(
            options.max_instance_reuse_count,
            default_reuse,
            reuse_ceiling,
        );
        let (max_instance_concurrent_reuse_count, max_instance_concurrent_reuse_count_origin) =
            match world {
                World::P3 => {
                    let concurrency_ceiling = policy.and_then(|policy| {
                        let limit = policy.concurrency_limit()?;
                        let rule = match policy.reuse() {
                            Reuse::Never | Reuse::Serial => policy.reuse().name().to_owned(),
                            Reuse::Concurrent => format!("max_concurrency {limit}"),
                        };
                        Some((u64::from(limit), rule))
                    });
                    ceiling(
                        options.max_instance_concurrent_reuse_count,
                        default_concurrent,
                        concurrency_ceiling,
                    )
                }
                // A p2 `incoming-handler.handle` call is synchronous: a
                // second call cannot start before the first returns, so no
                // flag or policy can change this.
                World::P2 => (1, Origin::P2Handler),
            };
        Self {
            world,
            guest_policy: policy.copied(),
            max_instance_reuse_count,
            max_instance_reuse_count_origin,
            max_instance_concurrent_reuse_count,
            max_instance_concurrent_reuse_count_origin,
            idle_instance_timeout: options.idle_instance_timeout,
            request_timeout: options.request_timeout,
            max_concurrent_requests: options.max_concurrent_requests.map(|n| n.max(1)),
            request_queue_timeout: options.request_queue_timeout,
            max_concurrent_connections: options.max_concurrent_connections.map(|n| n.max(1)),
            env: options.env.clone(),
            request_headers: options.request_headers.clone(),
            wasi: options.wasi.clone(),
            outbound: options.outbound.clone(),
            logging_prefix: options.logging_prefix,
            debug_headers: options.debug_headers,
            max_request_body_size: options.max_request_body_size,
            max_memory_size: options.max_memory_size,
            max_instances: options.max_instances.max(1),
            // Zero would close every connection before its first byte.
            header_read_timeout: options.header_read_timeout.filter(|t| !t.is_zero()),
            log_format: options.log_format,
            threads: options.threads.unwrap_or_else(cores).max(1),
        }
    }
}

/// CPU cores this process may run on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The flag's value (or `default`) unless the policy's limit is stricter.
fn ceiling(flag: Option<usize>, default: usize, policy: Option<(u64, String)>) -> (usize, Origin) {
    let (asked, origin) = match flag {
        Some(n) => (n.max(1), Origin::Flag),
        None => (default, Origin::Default),
    };
    match policy {
        Some((limit, rule)) if limit < asked as u64 => (
            // `limit < asked`, so it fits in a usize.
            usize::try_from(limit).unwrap_or(asked),
            Origin::GuestPolicy {
                rule,
                asked,
                from_flag: flag.is_some(),
            },
        ),
        _ => (asked, origin),
    }
}

/// Parses a duration the way `wasmtime` flags do: a number with an `ns`,
/// `us` (or `μs`), `ms` or `s` suffix; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration `{}`: expected a whole number with an optional unit, e.g. 100us, 250ms or 5s",
            text.trim()
        )
    };
    let (value, unit) = number_and_unit(text).ok_or_else(invalid)?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "us" | "μs" => Ok(Duration::from_micros(value)),
        "ns" => Ok(Duration::from_nanos(value)),
        _ => Err(invalid()),
    }
}

/// The whole number that `text` starts with and the unit after it, as in
/// `250ms` or `64KiB`; `None` when it does not start with one that fits a
/// `u64`.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit))
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

/// Parses a size in bytes: a whole number with an optional binary unit,
/// `K`/`KiB`, `M`/`MiB` or `G`/`GiB` (powers of 1024), or `B`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size `{}`: expected a whole number of bytes with an optional unit, e.g. 4096, 64KiB, 8MiB or 1GiB",
            text.trim()
        )
    };
    let (value, unit) = number_and_unit(text).ok_or_else(invalid)?;
    let shift = match unit {
        "" | "B" => 0,
        "K" | "k" | "KiB" => 10,
        "M" | "m" | "MiB" => 20,
        "G" | "g" | "GiB" => 30,
        _ => return Err(invalid()),
    };
    value.checked_mul(1 << shift).ok_or_else(invalid)
}

/// Displays a size in bytes in the notation [`parse_size`] reads, using the
/// largest binary unit that keeps it exact (`8MiB`, `1536KiB`, `100B`).
#[derive(Clone, Copy, Debug)]
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if bytes != 0 && bytes.trailing_zeros() >= shift {
                return write!(f, "{}{unit}", bytes >> shift);
            }
        }
        write!(f, "{bytes}B")
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
    fn sizes_read_binary_units_and_print_back_the_same_way() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "-1",
            "10TB",
            "1 MiB",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        let show = |n| HumanSize(n).to_string();
        assert_eq!(show(8 << 20), "8MiB");
        assert_eq!(show(1536 << 10), "1536KiB");
        assert_eq!(show(1 << 30), "1GiB");
        assert_eq!(show(100), "100B");
        assert_eq!(show(0), "0B");
    }

    fn policy(json: &str) -> ReusePolicy {
        ReusePolicy::parse(json.as_bytes()).expect("a valid policy")
    }

    #[test]
    fn never_policy_caps_reuse_at_one_whatever_the_flag_says() {
        let options = ServeOptions {
            max_instance_reuse_count: Some(128),
            ..ServeOptions::default()
        };
        let never = policy(r#"{"version":1,"reuse":"never"}"#);
        let config = EffectiveConfig::resolve_with_policy(&options, World::P3, Some(&never));
        assert_eq!(config.max_instance_reuse_count, 1);
        assert_eq!(
            config.max_instance_reuse_count_origin.to_string(),
            "guest policy: never; flag said 128"
        );
        assert_eq!(config.max_instance_concurrent_reuse_count, 1);
        assert_eq!(
            config
                .max_instance_concurrent_reuse_count_origin
                .to_string(),
            "guest policy: never; default 16"
        );
    }

    #[test]
    fn serial_policy_caps_concurrency_at_one_over_a_looser_flag() {
        let options = ServeOptions {
            max_instance_concurrent_reuse_count: Some(16),
            ..ServeOptions::default()
        };
        let serial = policy(r#"{"version":1,"reuse":"serial"}"#);
        let config = EffectiveConfig::resolve_with_policy(&options, World::P3, Some(&serial));
        assert_eq!(config.max_instance_concurrent_reuse_count, 1);
        assert_eq!(config.max_instance_reuse_count, 128);
        assert_eq!(config.max_instance_reuse_count_origin, Origin::Default);
    }

    #[test]
    fn flags_may_tighten_a_policy_but_never_loosen_it() {
        let limits =
            policy(r#"{"version":1,"reuse":"concurrent","max_concurrency":8,"max_requests":5}"#);
        let loose = ServeOptions {
            max_instance_reuse_count: Some(1000),
            max_instance_concurrent_reuse_count: Some(64),
            ..ServeOptions::default()
        };
        let config = EffectiveConfig::resolve_with_policy(&loose, World::P3, Some(&limits));
        assert_eq!(
            (
                config.max_instance_reuse_count,
                config.max_instance_concurrent_reuse_count
            ),
            (5, 8)
        );
        assert_eq!(
            config.max_instance_reuse_count_origin.to_string(),
            "guest policy: max_requests 5; flag said 1000"
        );
        let tight = ServeOptions {
            max_instance_reuse_count: Some(2),
            max_instance_concurrent_reuse_count: Some(3),
            ..ServeOptions::default()
        };
        let config = EffectiveConfig::resolve_with_policy(&tight, World::P3, Some(&limits));
        assert_eq!(
            (
                config.max_instance_reuse_count,
                config.max_instance_concurrent_reuse_count
            ),
            (2, 3)
        );
        assert_eq!(config.max_instance_reuse_count_origin, Origin::Flag);
    }

    #[test]
    fn a_policy_without_limits_leaves_the_defaults_and_can_be_ignored() {
        let concurrent = policy(r#"{"version":1,"reuse":"concurrent"}"#);
        let config = EffectiveConfig::resolve_with_policy(
            &ServeOptions::default(),
            World::P3,
            Some(&concurrent),
        );
        assert_eq!(config.max_instance_reuse_count, 128);
        assert_eq!(config.max_instance_concurrent_reuse_count, 16);
        assert_eq!(config.guest_policy, Some(concurrent));

        let never = policy(r#"{"version":1,"reuse":"never"}"#);
        let ignoring = ServeOptions {
            ignore_guest_policy: true,
            ..ServeOptions::default()
        };
        let config = EffectiveConfig::resolve_with_policy(&ignoring, World::P3, Some(&never));
        assert_eq!(config.max_instance_reuse_count, 128);
        assert_eq!(config.guest_policy, None);
    }

    #[test]
    fn p2_concurrency_is_one_whatever_the_policy() {
        let concurrent = policy(r#"{"version":1,"reuse":"concurrent","max_concurrency":4}"#);
        let config = EffectiveConfig::resolve_with_policy(
            &ServeOptions::default(),
            World::P2,
            Some(&concurrent),
        );
        assert_eq!(config.max_instance_concurrent_reuse_count, 1);
        assert_eq!(
            config.max_instance_concurrent_reuse_count_origin,
            Origin::P2Handler
        );
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
