//! What the server applies ([`EffectiveConfig`]), derived from what the
//! user asked for ([`ServeOptions`]) in this one place.
//!
//! The two are separate because some limits only make sense once the
//! component's world is known: a p2 handler cannot be called concurrently,
//! and the reuse defaults differ per world (they follow `wasmtime serve`).
//! `EffectiveConfig` is the one place where every limit is settled: the
//! guest's declared reuse policy is applied here as a ceiling over the
//! options, and each reuse limit remembers where its value came from
//! ([`Origin`]) so start-up can say so.
//!
//! This module does not parse flags (the options module does), does not
//! read the policy section (the policy module does) and does not validate
//! addresses.

use std::fmt;
use std::time::Duration;

use crate::component::World;
use crate::component::policy::{Reuse, ReusePolicy};
use crate::options::{
    DEFAULT_MAX_REQUEST_BODY_SIZE, LogFormat, RequestHeaders, ServeOptions, WasiOptions,
};
use crate::outbound::OutboundPolicy;

/// `wasmtime serve` 48 defaults, so that switching between the two tools does
/// not change behaviour.
const P3_MAX_INSTANCE_REUSE_COUNT: usize = 128;
const P2_MAX_INSTANCE_REUSE_COUNT: usize = 1;
const P3_MAX_INSTANCE_CONCURRENT_REUSE_COUNT: usize = 16;

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
    /// Largest sum, in bytes, of every instance's linear memory (`None`: no
    /// limit).
    pub max_total_memory: Option<u64>,
    /// Most component instances alive at once (at least 1).
    pub max_instances: u32,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Option<Duration>,
    /// How long a request body may stop arriving while the guest waits.
    pub request_body_idle_timeout: Option<Duration>,
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
            request_timeout: options.request_timeout(),
            max_concurrent_requests: options.max_concurrent_requests.map(|n| n.max(1)),
            request_queue_timeout: options.request_queue_timeout,
            max_concurrent_connections: options.max_concurrent_connections.map(|n| n.max(1)),
            env: options.guest.env.resolve(),
            request_headers: options.request_headers(),
            wasi: options.wasi(),
            outbound: options.outbound(),
            logging_prefix: !options.no_logging_prefix,
            debug_headers: options.debug_headers,
            max_request_body_size: options
                .guest
                .max_request_body_size
                .unwrap_or(DEFAULT_MAX_REQUEST_BODY_SIZE),
            max_memory_size: options.max_memory_size(),
            max_total_memory: options.max_total_memory(),
            max_instances: options.max_instances.max(1),
            // Zero would close every connection before its first byte.
            header_read_timeout: Some(options.header_read_timeout).filter(|t| !t.is_zero()),
            request_body_idle_timeout: Some(options.request_body_idle_timeout)
                .filter(|t| !t.is_zero()),
            log_format: options.log_format,
            threads: options.threads.map_or_else(cores, |n| n as usize).max(1),
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

#[cfg(test)]
mod tests {
    use super::*;

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
