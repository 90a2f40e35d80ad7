//! The serving options, written once: [`ServeOptions`] is at the same
//! time the command line of `host-runner serve` (a clap struct, as
//! `wasmtime serve`'s is) and the options a library user fills in, with
//! [`Default`] giving exactly the flags' defaults. The flags `check` shares
//! with `serve` sit in a struct of their own ([`GuestOptions`]) that both
//! flatten.
//!
//! Options are kept as given: `None` means "the default for the
//! component's world" or "no limit", and `wasmtime serve`'s spellings stay
//! in their own fields until they are read (see [`wasmtime_flags`]). What
//! the server applies is derived from them in one place,
//! [`EffectiveConfig`](crate::EffectiveConfig), once the component's world
//! and reuse policy are known. This module does not load components and
//! does not apply limits.

pub mod wasmtime_flags;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, ValueEnum};
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

use crate::outbound::{OutboundPolicy, OutboundRule};
use crate::units::{parse_duration, parse_size};
use wasmtime_flags::{WasiList, WasmList, parse_env, parse_header_arg};

/// How `host-runner serve` serves a component: every flag but the
/// component's path, each a field.
#[derive(Args, Clone, Debug)]
pub struct ServeOptions {
    /// Socket address to accept HTTP connections on; port 0 picks a free
    /// port (printed on stderr).
    #[arg(long, value_name = "SOCKADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,

    /// Socket address where a connection starts a graceful shutdown (as do
    /// Ctrl-C and SIGTERM; a second request stops at once).
    #[arg(long, value_name = "SOCKADDR")]
    pub shutdown_addr: Option<SocketAddr>,

    /// Requests sent to one component instance before it is dropped
    /// [default: 128 for p3, 1 for p2].
    #[arg(long, value_name = "N")]
    pub max_instance_reuse_count: Option<usize>,

    /// Requests one component instance handles at the same time
    /// [default: 16 for p3; always 1 for p2, whose handler cannot be called
    /// concurrently].
    #[arg(long, value_name = "N")]
    pub max_instance_concurrent_reuse_count: Option<usize>,

    /// How long to keep an idle instance for reuse before dropping it.
    /// Durations: a number with an ns, us, ms or s suffix; no suffix means
    /// seconds.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub idle_instance_timeout: Duration,

    /// Longest time a request may take to produce its response; it then gets
    /// a 504 and its instance takes no more requests (it is dropped at once
    /// if the guest is stuck). Holds for busy loops and blocking calls too
    /// [default: no limit].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,

    /// Requests handled at the same time across all instances; more wait up
    /// to --request-queue-timeout, then get 503 with Retry-After
    /// [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_concurrent_requests: Option<usize>,

    /// How long a request waits for a slot when --max-concurrent-requests
    /// are in flight before it gets 503; 0 rejects at once.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub request_queue_timeout: Duration,

    /// Component instances alive at the same time, all threads together;
    /// an instance idle (or finishing its last request) on one thread steps
    /// down for a request on another, and a request that needs another while
    /// every instance has a response open gets 503 with Retry-After. Also
    /// sizes the pooling allocator.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_INSTANCES)]
    pub max_instances: u32,

    /// Linear memory all instances together may hold (sizes as for
    /// --max-memory-size); past it a memory cannot grow, which fails inside
    /// the guest (usually a trap: 500 for that instance's requests), and an
    /// instance whose initial memory does not fit is not created (503, Retry-After). 0
    /// for no limit [default: half of the machine's memory, or of the
    /// cgroup's limit if lower].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_total_memory: Option<u64>,

    /// How long a client may take to send a request's headers (and a
    /// keep-alive connection may stay idle) before the connection is
    /// closed; 0 for no limit.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How long a request body may stop arriving, while the component
    /// waits for it, before the request gets 408 and its connection is
    /// closed; 0 for no limit.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub request_body_idle_timeout: Duration,

    /// Client connections open at the same time; more wait to be accepted
    /// [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_concurrent_connections: Option<usize>,

    /// Threads serving connections. Each runs its own instances, so a
    /// request never waits on another thread [default: one per CPU core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub guest: GuestOptions,

    /// Set a request header before the component sees it, replacing the
    /// client's (repeatable): `NAME: VALUE`, or `@FILE` with one header per
    /// line.
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header_arg)]
    pub headers: Vec<RequestHeaders>,

    /// WebAssembly options, as for `wasmtime serve` (repeatable,
    /// comma-separated): timeout=DURATION (as --request-timeout),
    /// max-memory-size=SIZE (as --max-memory-size).
    #[arg(short = 'W', long = "wasm", value_name = "KEY[=VAL[,..]]", value_parser = WasmList::parse)]
    pub wasm: Vec<WasmList>,

    /// Print guest output as is, without the `stdout [instance N request
    /// ID] :: ` prefix (text log format only).
    #[arg(long)]
    pub no_logging_prefix: bool,

    /// Format of host-runner's log lines on stderr; `json` writes one object
    /// per line, guest output included. Filter with RUST_LOG (default
    /// `info`).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve Prometheus metrics on SOCKADDR, at the path /metrics; port 0 picks a
    /// free port (printed on stderr).
    #[arg(long, value_name = "SOCKADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve as a host that does not read the component's
    /// reprise:reuse-policy section would, leaving the policy to the guest's
    /// own run-time enforcement (to test that enforcement).
    #[arg(long)]
    pub ignore_guest_policy: bool,

    /// Add `x-reprise-instance` (instance number, from 1) and
    /// `x-reprise-instance-request` (request number on that instance, from
    /// 1) to every response, to observe reuse.
    #[arg(long)]
    pub debug_headers: bool,

    /// Append every request served to FILE (method, path, headers, body up
    /// to 64 KiB), one JSON line each: the requests file `host-runner check
    /// --requests FILE` replays. A regular file, created 0600; credentials
    /// are written as REDACTED (see --record-redact, --record-raw).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Also write this request header's value as REDACTED in --record's
    /// file (repeatable), beyond authorization, cookie,
    /// proxy-authorization, set-cookie and every --header.
    #[arg(long = "record-redact", value_name = "NAME", value_parser = parse_header_name)]
    pub record_redact: Vec<HeaderName>,

    /// Write credentials into --record's file as received instead of
    /// REDACTED (for a file that never leaves this machine).
    #[arg(long)]
    pub record_raw: bool,

    /// Keep a connection a guest's outgoing HTTP request used open this long
    /// for the next request to the same origin, from any instance; 0 closes
    /// each after its request. Below common servers' keep-alive (5 s) so
    /// that host-runner, not the backend, closes idle connections.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = parse_duration)]
    pub outbound_idle_timeout: Duration,
}

impl Default for ServeOptions {
    /// The options of `host-runner serve` given no flags: the defaults are
    /// the flags' own, written once in their attributes.
    fn default() -> Self {
        #[derive(Parser)]
        struct NoFlags {
            #[command(flatten)]
            options: ServeOptions,
        }
        NoFlags::try_parse_from(["host-runner"])
            .expect("every serve flag has a default or is optional")
            .options
    }
}

impl ServeOptions {
    /// Longest time a request may take: `--request-timeout` or `-Wtimeout`.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
            .or(wasmtime_flags::wasm_options(&self.wasm).timeout)
    }

    /// Largest size of any one linear memory: `--max-memory-size` or
    /// `-Wmax-memory-size`, else [`DEFAULT_MAX_MEMORY_SIZE`].
    pub fn max_memory_size(&self) -> u64 {
        self.guest
            .max_memory_size
            .or(wasmtime_flags::wasm_options(&self.wasm).max_memory_size)
            .unwrap_or(DEFAULT_MAX_MEMORY_SIZE)
    }

    /// Largest sum of every instance's linear memory, in bytes:
    /// `--max-total-memory` (`0` for none), else
    /// [`default_max_total_memory`]; `None` for no limit.
    pub fn max_total_memory(&self) -> Option<u64> {
        match self.max_total_memory {
            Some(0) => None,
            Some(limit) => Some(limit),
            None => default_max_total_memory(),
        }
    }

    /// The WASI interfaces beyond cli and http that the `-S` lists ask for.
    pub fn wasi(&self) -> WasiOptions {
        wasmtime_flags::wasi_options(&self.guest.wasi)
    }

    /// The headers every `--header` sets, in the order given.
    pub fn request_headers(&self) -> RequestHeaders {
        RequestHeaders(
            self.headers
                .iter()
                .flat_map(|h| h.0.iter().cloned())
                .collect(),
        )
    }

    /// Which hosts the component may send HTTP requests to.
    pub fn outbound(&self) -> OutboundPolicy {
        OutboundPolicy::from_flags(self.guest.allow_outbound.clone(), self.guest.deny_outbound)
    }

    /// An error naming two spellings of one setting (a `-W` option and the
    /// flag it stands for) that were given different values.
    pub fn conflicts(&self) -> Result<(), String> {
        let wasm = wasmtime_flags::wasm_options(&self.wasm);
        one_of(
            self.request_timeout,
            "--request-timeout",
            wasm.timeout,
            "-Wtimeout",
        )?;
        one_of(
            self.guest.max_memory_size,
            "--max-memory-size",
            wasm.max_memory_size,
            "-Wmax-memory-size",
        )
    }
}

fn parse_header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name; expected e.g. x-api-key"))
}

/// Both spellings of one setting may be given only if they agree.
fn one_of<T: PartialEq>(
    flag: Option<T>,
    flag_name: &str,
    wasmtime: Option<T>,
    wasmtime_name: &str,
) -> Result<(), String> {
    match (flag, wasmtime) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "{flag_name} and {wasmtime_name} set the same limit to different values; keep one"
        )),
        _ => Ok(()),
    }
}

/// The flags that shape what a component sees, shared by `serve` and
/// `check` (each flattens this struct, so a flag is defined once): its
/// environment, the WASI interfaces beyond cli and http, where it may send
/// HTTP, how far its memory may grow and the largest request body it gets.
#[derive(Args, Clone, Debug, Default)]
pub struct GuestOptions {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub env: GuestEnv,

    /// Largest size any one linear memory of an instance may grow to
    /// (sizes: a number of bytes or with KiB, MiB or GiB); growing past it
    /// fails inside the guest, which usually traps (500)
    /// [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory_size: Option<u64>,

    /// Largest request body accepted; larger ones get 413 [default: 16MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_request_body_size: Option<u64>,

    /// WASI options, as for `wasmtime serve` (repeatable, comma-separated):
    /// config, config-var=KEY=VALUE, keyvalue,
    /// keyvalue-in-memory-data=KEY=VALUE, keyvalue-in-memory,
    /// keyvalue-path=PATH, keyvalue-redis=URL, keyvalue-max-bytes=SIZE,
    /// keyvalue-max-keys=N, http-outgoing-body-buffer-chunks=N,
    /// http-outgoing-body-chunk-size=N; cli, http and p3 are always on.
    #[arg(short = 'S', long = "wasi", value_name = "KEY[=VAL[,..]]", value_parser = WasiList::parse)]
    pub wasi: Vec<WasiList>,

    /// Let the component send HTTP requests to HOST (repeatable): `HOST`
    /// (any port), `HOST:PORT`, `[IPv6]:PORT`, or `*` for any host; others
    /// are refused with HTTP-request-denied [default: any host].
    #[arg(
        long = "allow-outbound",
        value_name = "HOST[:PORT]",
        conflicts_with = "deny_outbound"
    )]
    pub allow_outbound: Vec<OutboundRule>,

    /// Refuse every HTTP request the component sends
    /// (HTTP-request-denied).
    #[arg(long)]
    pub deny_outbound: bool,
}

/// `--env`: the guest's environment.
#[derive(Args, Clone, Debug, Default)]
pub struct GuestEnv {
    /// Environment variable for the component (repeatable). `NAME` alone
    /// passes on the host's value, or leaves it unset if the host has none.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    pub vars: Vec<(String, Option<String>)>,
}

impl GuestEnv {
    /// The variables the guest sees (see [`wasmtime_flags::guest_env`]).
    pub fn resolve(&self) -> Vec<(String, String)> {
        wasmtime_flags::guest_env(&self.vars)
    }
}

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

/// By hand rather than derived: derived, the variants' docs would become
/// per-value help and change `--help`'s layout.
impl ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[LogFormat::Text, LogFormat::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }))
    }
}

/// What `--max-request-body-size` is when not given: 16 MiB.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 16 << 20;
/// What `--max-memory-size` is when not given: 256 MiB per linear memory.
pub const DEFAULT_MAX_MEMORY_SIZE: u64 = 256 << 20;
/// Default for `--max-instances` (wasmtime's pooling default).
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// What `--max-total-memory` is when not given: half of the memory this
/// process may use, the machine's (`MemTotal` in `/proc/meminfo`) or its
/// cgroup's (`memory.max`) if lower, so that instances run out of room
/// before the OOM killer wakes and the host keeps the other half. `None`
/// (no limit) where neither can be read.
pub fn default_max_total_memory() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
            let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
            kib.checked_mul(1024)
        });
    // "max" (no limit) does not parse, and leaves the machine's.
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|max| max.trim().parse::<u64>().ok());
    let usable = match (machine, cgroup) {
        (Some(machine), Some(cgroup)) => machine.min(cgroup),
        (one, other) => one.or(other)?,
    };
    // Whole MiB, so start-up prints it as one.
    Some((usable / 2) & !((1 << 20) - 1))
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
    /// store shared by every instance (`-Skeyvalue`): a file on disk unless
    /// one of the options below says otherwise.
    pub keyvalue: bool,
    /// What an in-memory store holds at start-up
    /// (`-Skeyvalue-in-memory-data=KEY=VALUE`; implies in memory).
    pub keyvalue_data: Vec<(String, String)>,
    /// Keep the store in memory, fresh on every start, as `wasmtime serve`
    /// does (`-Skeyvalue-in-memory`).
    pub keyvalue_in_memory: bool,
    /// The store's file (`-Skeyvalue-path=PATH`).
    pub keyvalue_path: Option<std::path::PathBuf>,
    /// A Redis server holding the store (`-Skeyvalue-redis=URL`).
    pub keyvalue_redis: Option<String>,
    /// Bytes the store may hold (`-Skeyvalue-max-bytes=SIZE`).
    pub keyvalue_max_bytes: Option<u64>,
    /// Keys the store may hold (`-Skeyvalue-max-keys=N`).
    pub keyvalue_max_keys: Option<u64>,
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
