//! The `host-runner` command line: parses flags (named like `wasmtime
//! serve`'s), prints the lines scripts look for, and maps failures to exit
//! codes. `serve`: 0 after a clean shutdown, 1 when the component cannot be
//! served, 2 for bad flags (clap's own). `check`: 0 clean, 1 leak or hazard
//! found, 2 when the check could not run (bad flags or requests file, a
//! component that cannot be loaded).
//!
//! Everything else lives in the library so that tests and benches can drive
//! it directly; this file holds no serving logic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};
use host_runner::check::{self, CheckOptions, DEFAULT_IGNORED_HEADERS, Probe, Report};
use host_runner::config::{
    DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORY_SIZE, DEFAULT_MAX_REQUEST_BODY_SIZE,
};
use host_runner::policy::{Described, ReusePolicy};
use host_runner::wasmtime_flags::{
    self, WasiList, WasmList, guest_env, parse_env, parse_header_arg,
};
use host_runner::{
    Allocator, HumanDuration, HumanSize, LoadedComponent, LogFormat, OutboundPolicy, OutboundRule,
    RequestHeaders, ServeOptions, Server, Shutdown, parse_duration, parse_size,
};
use regex_lite::Regex;

/// Serves WASI HTTP components (p2 and p3) with wasmtime, reusing instances
/// within explicit limits.
#[derive(Parser)]
#[command(name = "host-runner", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a WASI HTTP component over HTTP/1.1.
    Serve(Box<ServeArgs>),
    /// Check that a component answers the same on a reused instance as on
    /// a fresh one (a differential test of instance reuse; no server).
    Check(CheckArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Socket address to accept HTTP connections on; port 0 picks a free
    /// port (printed on stderr).
    #[arg(long, value_name = "SOCKADDR", default_value = "0.0.0.0:8080")]
    addr: SocketAddr,

    /// Socket address where a connection starts a graceful shutdown (as do
    /// Ctrl-C and SIGTERM; a second request stops at once).
    #[arg(long, value_name = "SOCKADDR")]
    shutdown_addr: Option<SocketAddr>,

    /// Requests sent to one component instance before it is dropped
    /// [default: 128 for p3, 1 for p2].
    #[arg(long, value_name = "N")]
    max_instance_reuse_count: Option<usize>,

    /// Requests one component instance handles at the same time
    /// [default: 16 for p3; always 1 for p2, whose handler cannot be called
    /// concurrently].
    #[arg(long, value_name = "N")]
    max_instance_concurrent_reuse_count: Option<usize>,

    /// How long to keep an idle instance for reuse before dropping it.
    /// Durations: a number with an ns, us, ms or s suffix; no suffix means
    /// seconds.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    idle_instance_timeout: Duration,

    /// Longest time a request may take to produce its response; it then gets
    /// a 504 and its instance takes no more requests (it is dropped at once
    /// if the guest is stuck). Holds for busy loops and blocking calls too
    /// [default: no limit].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    request_timeout: Option<Duration>,

    /// Requests handled at the same time across all instances; more wait up
    /// to --request-queue-timeout, then get 503 with Retry-After
    /// [default: no limit].
    #[arg(long, value_name = "N")]
    max_concurrent_requests: Option<usize>,

    /// How long a request waits for a slot when --max-concurrent-requests
    /// are in flight before it gets 503; 0 rejects at once.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    request_queue_timeout: Duration,

    /// Component instances alive at the same time; a request that needs
    /// another gets 503 with Retry-After. Also sizes the pooling allocator.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_INSTANCES)]
    max_instances: u32,

    /// Largest size any one linear memory of an instance may grow to
    /// (sizes: a number of bytes or with KiB, MiB or GiB); growing past it
    /// fails inside the guest, which usually traps (500)
    /// [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory_size: Option<u64>,

    /// Largest request body accepted; larger ones get 413 [default: 16MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_request_body_size: Option<u64>,

    /// How long a client may take to send a request's headers (and a
    /// keep-alive connection may stay idle) before the connection is
    /// closed; 0 for no limit.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,

    /// Client connections open at the same time; more wait to be accepted
    /// [default: no limit].
    #[arg(long, value_name = "N")]
    max_concurrent_connections: Option<usize>,

    /// Threads serving connections. Each runs its own instances, so a
    /// request never waits on another thread [default: one per CPU core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,

    /// Environment variable for the component (repeatable). `NAME` alone
    /// passes on the host's value, or leaves it unset if the host has none.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    env: Vec<(String, Option<String>)>,

    /// Set a request header before the component sees it, replacing the
    /// client's (repeatable): `NAME: VALUE`, or `@FILE` with one header per
    /// line.
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header_arg)]
    headers: Vec<RequestHeaders>,

    /// WASI options, as for `wasmtime serve` (repeatable, comma-separated):
    /// config, config-var=KEY=VALUE, keyvalue,
    /// keyvalue-in-memory-data=KEY=VALUE, http-outgoing-body-buffer-chunks=N,
    /// http-outgoing-body-chunk-size=N; cli, http and p3 are always on.
    #[arg(short = 'S', long = "wasi", value_name = "KEY[=VAL[,..]]", value_parser = WasiList::parse)]
    wasi: Vec<WasiList>,

    /// WebAssembly options, as for `wasmtime serve` (repeatable,
    /// comma-separated): timeout=DURATION (as --request-timeout),
    /// max-memory-size=SIZE (as --max-memory-size).
    #[arg(short = 'W', long = "wasm", value_name = "KEY[=VAL[,..]]", value_parser = WasmList::parse)]
    wasm: Vec<WasmList>,

    /// Let the component send HTTP requests to HOST (repeatable): `HOST`
    /// (any port), `HOST:PORT`, `[IPv6]:PORT`, or `*` for any host; others
    /// are refused with HTTP-request-denied [default: any host].
    #[arg(
        long = "allow-outbound",
        value_name = "HOST[:PORT]",
        conflicts_with = "deny_outbound"
    )]
    allow_outbound: Vec<OutboundRule>,

    /// Refuse every HTTP request the component sends
    /// (HTTP-request-denied).
    #[arg(long)]
    deny_outbound: bool,

    /// Print guest output as is, without the `stdout [instance N request
    /// ID] :: ` prefix (text log format only).
    #[arg(long)]
    no_logging_prefix: bool,

    /// Format of host-runner's log lines on stderr; `json` writes one object
    /// per line, guest output included. Filter with RUST_LOG (default
    /// `info`).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,

    /// Serve Prometheus metrics at http://SOCKADDR/metrics; port 0 picks a
    /// free port (printed on stderr).
    #[arg(long, value_name = "SOCKADDR")]
    metrics_addr: Option<SocketAddr>,

    /// Serve as a host that does not read the component's
    /// reprise:reuse-policy section would, leaving the policy to the guest's
    /// own run-time enforcement (to test that enforcement).
    #[arg(long)]
    ignore_guest_policy: bool,

    /// Add `x-reprise-instance` (instance number, from 1) and
    /// `x-reprise-instance-request` (request number on that instance, from
    /// 1) to every response, to observe reuse.
    #[arg(long)]
    debug_headers: bool,

    /// Append every request served to FILE (method, path, headers, body up
    /// to 64 KiB), one JSON line each: the requests file `host-runner check
    /// --requests FILE` replays.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,

    /// The WebAssembly component to serve (.wasm).
    #[arg(value_name = "COMPONENT")]
    component: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl ServeArgs {
    /// The options the flags ask for; an error names two flags that
    /// disagree (a `-W` option and the flag it stands for).
    fn options(&self) -> Result<ServeOptions, String> {
        let wasm = wasmtime_flags::wasm_options(&self.wasm);
        let request_timeout = one_of(
            self.request_timeout,
            "--request-timeout",
            wasm.timeout,
            "-Wtimeout",
        )?;
        let max_memory_size = one_of(
            self.max_memory_size,
            "--max-memory-size",
            wasm.max_memory_size,
            "-Wmax-memory-size",
        )?;
        Ok(ServeOptions {
            addr: self.addr,
            shutdown_addr: self.shutdown_addr,
            max_instance_reuse_count: self.max_instance_reuse_count,
            max_instance_concurrent_reuse_count: self.max_instance_concurrent_reuse_count,
            idle_instance_timeout: self.idle_instance_timeout,
            request_timeout,
            max_concurrent_requests: self.max_concurrent_requests,
            request_queue_timeout: self.request_queue_timeout,
            max_concurrent_connections: self.max_concurrent_connections,
            env: guest_env(&self.env),
            request_headers: RequestHeaders(
                self.headers
                    .iter()
                    .flat_map(|h| h.0.iter().cloned())
                    .collect(),
            ),
            wasi: wasmtime_flags::wasi_options(&self.wasi),
            outbound: OutboundPolicy::from_flags(self.allow_outbound.clone(), self.deny_outbound),
            logging_prefix: !self.no_logging_prefix,
            debug_headers: self.debug_headers,
            metrics_addr: self.metrics_addr,
            max_request_body_size: self
                .max_request_body_size
                .unwrap_or(DEFAULT_MAX_REQUEST_BODY_SIZE),
            max_memory_size: max_memory_size.unwrap_or(DEFAULT_MAX_MEMORY_SIZE),
            max_instances: self.max_instances,
            header_read_timeout: Some(self.header_read_timeout),
            log_format: match self.log_format {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            },
            threads: self.threads.map(|n| n as usize),
            ignore_guest_policy: self.ignore_guest_policy,
            record: self.record.clone(),
        })
    }
}

/// The value given by either of two spellings of one setting; both may be
/// given only if they agree.
fn one_of<T: PartialEq>(
    flag: Option<T>,
    flag_name: &str,
    wasmtime: Option<T>,
    wasmtime_name: &str,
) -> Result<Option<T>, String> {
    match (flag, wasmtime) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "{flag_name} and {wasmtime_name} set the same limit to different values; keep one"
        )),
        (a, b) => Ok(a.or(b)),
    }
}

#[derive(Args)]
struct CheckArgs {
    /// Requests to send, one JSON object per line:
    /// {"method":"GET","path":"/x","headers":{"k":"v"},"body":"..."}, all but
    /// path optional [default: GET /, GET /?a=1, and POST / with a small
    /// body].
    #[arg(long, value_name = "FILE")]
    requests: Option<PathBuf>,

    /// Also send `GET PATH` (repeatable), e.g. --path '/?user=ann'.
    #[arg(long = "path", value_name = "PATH", value_parser = parse_probe_path)]
    paths: Vec<Probe>,

    /// Rounds of each reused mode; the first sends the requests in the
    /// given order, the others in shuffled orders.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,

    /// Seed of the shuffled orders; the report prints it, so a finding can
    /// be reproduced.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,

    /// Longest a request may go without a response (and a batch without
    /// progress) before it counts as never finishing. Durations as for
    /// serve.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,

    /// Response header to leave out of comparisons (repeatable), in
    /// addition to content-length, date, x-request-id and x-reprise-*; a
    /// trailing `*` matches a prefix.
    #[arg(long = "ignore-header", value_name = "NAME")]
    ignore_headers: Vec<String>,

    /// Regular expression for parts of response bodies to leave out of
    /// comparisons (repeatable), e.g. 'served=\d+'.
    #[arg(long = "ignore-body", value_name = "REGEX", value_parser = parse_regex)]
    ignore_body: Vec<Regex>,

    /// Environment variable for the component (repeatable). `NAME` alone
    /// passes on the host's value, or leaves it unset if the host has none.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    env: Vec<(String, Option<String>)>,

    /// Report format: lines for people, or JSON for CI.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// The WebAssembly component to check (.wasm).
    #[arg(value_name = "COMPONENT")]
    component: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn parse_probe_path(path: &str) -> Result<Probe, String> {
    Probe::get(path).map_err(|e| format!("{e:#}"))
}

fn parse_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| one_line(&e.into()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => match args.options() {
            Ok(options) => serve(&args, options),
            Err(conflict) => Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, conflict)
                .exit(),
        },
        Command::Check(args) => return check(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&error);
            ExitCode::FAILURE
        }
    }
}

fn print_error(error: &anyhow::Error) {
    // Same convention as Rust's panic handler: set and not "0".
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        eprintln!("error: {error:?}");
    } else {
        eprintln!("error: {}", one_line(error));
    }
}

/// Prints the report on stdout; the exit code tells CI a finding (1) from a
/// check that could not run (2).
fn check(args: &CheckArgs) -> ExitCode {
    let report = match run_check(args) {
        Ok(report) => report,
        Err(error) => {
            print_error(&error);
            return ExitCode::from(2);
        }
    };
    match args.format {
        Format::Text => print!("{report}"),
        Format::Json => println!("{}", report.to_json()),
    }
    match report.is_clean() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

fn run_check(args: &CheckArgs) -> anyhow::Result<Report> {
    let mut probes = match &args.requests {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                anyhow::anyhow!("cannot read the requests file {}: {e}", file.display())
            })?;
            Probe::parse_lines(&text).with_context(|| file.display().to_string())?
        }
        None => Probe::defaults(),
    };
    probes.extend(args.paths.iter().cloned());
    // Interruptible: a guest stuck in a loop must count as a timeout, not
    // hang the check.
    let component = LoadedComponent::load(&args.component, true)?;
    let options = CheckOptions {
        rounds: usize::from(args.rounds),
        seed: args.seed,
        request_timeout: args.request_timeout,
        ignore_headers: DEFAULT_IGNORED_HEADERS
            .iter()
            .map(|name| name.to_string())
            .chain(args.ignore_headers.iter().cloned())
            .collect(),
        ignore_body: args.ignore_body.clone(),
        env: guest_env(&args.env),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(check::check(&component, &probes, &options));
    // A guest stuck in a loop may still hold a runtime thread.
    runtime.shutdown_timeout(Duration::from_secs(1));
    report
}

fn serve(args: &ServeArgs, options: ServeOptions) -> anyhow::Result<()> {
    host_runner::logging::init(options.log_format).map_err(anyhow::Error::msg)?;
    // Load before starting anything: a component that cannot be served must
    // fail fast, not on its first request.
    let component = LoadedComponent::load_for(&args.component, &options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let shutdown = Shutdown::new();
        shutdown
            .on_signals()
            .context("cannot install the Ctrl-C/SIGTERM handlers")?;
        let allocator = component.allocator();
        let path = component.path().display().to_string();
        let declared = component.policy().copied();
        let server = Server::bind(component, &options).await?;
        let shutdown_addr = match options.shutdown_addr {
            Some(addr) => Some(shutdown.listen_on(addr).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {addr}: {e}; pick another address with --shutdown-addr"
                )
            })?),
            None => None,
        };
        // The first lines, as `wasmtime serve` prints them: scripts (and
        // wasmtime's own test harness) read the addresses from there.
        if let Some(addr) = shutdown_addr {
            eprintln!("Listening for shutdown on tcp://{addr}/");
        }
        eprintln!("Serving HTTP on http://{}/", server.local_addr());
        if let Some(addr) = server.metrics_addr() {
            eprintln!("Metrics on http://{addr}/metrics");
        }
        describe(&path, allocator, declared, &server);
        server.run(shutdown).await
    });
    // Instances still alive (idle, or abandoned by a forced shutdown) may be
    // running guest code that never yields; do not wait for them forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// One line telling the operator what was loaded, which limits apply and
/// where the reuse limits came from (flag, default or the guest's policy).
fn describe(path: &str, allocator: Allocator, declared: Option<ReusePolicy>, server: &Server) {
    let config = server.config();
    let allocator = match allocator {
        Allocator::Pooling => "pooling allocator",
        Allocator::OnDemand => "on-demand allocator",
    };
    let policy = match (declared, &config.guest_policy) {
        (_, Some(policy)) => format!("guest policy {}", Described(policy)),
        (Some(policy), None) => format!(
            "guest policy {} ignored (--ignore-guest-policy)",
            Described(&policy)
        ),
        (None, None) => "no guest policy".to_owned(),
    };
    let or_none = |limit: Option<String>| limit.unwrap_or_else(|| "none".to_owned());
    // What the guest can reach besides WASI cli and http.
    let mut reach = vec![config.outbound.to_string()];
    if config.wasi.keyvalue {
        reach.push(format!(
            "wasi:keyvalue in memory, shared by all instances ({} keys seeded)",
            config.wasi.keyvalue_data.len()
        ));
    }
    if config.wasi.config {
        reach.push(format!(
            "wasi:config ({} variables)",
            config.wasi.config_vars.len()
        ));
    }
    if !config.request_headers.0.is_empty() {
        reach.push(format!(
            "{} request headers replaced (--header)",
            config.request_headers.0.len()
        ));
    }
    tracing::info!(
        "{path}: {} component, {allocator}, {policy}; {}; max-instance-reuse-count {} ({}), max-instance-concurrent-reuse-count {} ({}), idle-instance-timeout {}, request-timeout {}, max-concurrent-requests {}, max-instances {}, max-memory-size {}, max-request-body-size {}, header-read-timeout {}, threads {}",
        config.world,
        reach.join(", "),
        config.max_instance_reuse_count,
        config.max_instance_reuse_count_origin,
        config.max_instance_concurrent_reuse_count,
        config.max_instance_concurrent_reuse_count_origin,
        HumanDuration(config.idle_instance_timeout),
        or_none(config.request_timeout.map(|t| HumanDuration(t).to_string())),
        or_none(config.max_concurrent_requests.map(|n| n.to_string())),
        config.max_instances,
        HumanSize(config.max_memory_size),
        HumanSize(config.max_request_body_size),
        or_none(
            config
                .header_read_timeout
                .map(|t| HumanDuration(t).to_string())
        ),
        config.threads,
    );
}

/// Errors are printed on one line; causes are joined the way `{:#}` does,
/// and any line breaks inside them are folded.
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
