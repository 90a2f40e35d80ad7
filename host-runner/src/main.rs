//! The `host-runner` command line: parses flags (named like `wasmtime
//! serve`'s), prints the lines scripts look for, and maps failures to exit
//! codes. `serve`: 0 after a clean shutdown, 1 when the component cannot be
//! served, 2 for bad flags (clap's own). `check`: 0 clean, 1 leak or hazard
//! found, 2 when the check could not run (bad flags or requests file, a
//! component that cannot be loaded).
//!
//! Everything else lives in the library so that tests and benches can drive
//! it directly; this file holds no serving logic.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};
use host_runner::check::{
    self, CheckOptions, DEFAULT_IGNORED_HEADERS, Outgoing, Probe, RecordedCalls, Report,
};
use host_runner::errors::one_line;
use host_runner::files::read_regular_text;
use host_runner::policy::Described;
use host_runner::{
    Allocator, GuestOptions, HumanDuration, HumanSize, LoadedComponent, ServeOptions, Server,
    Shutdown, parse_duration,
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
    Check(Box<CheckArgs>),
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    options: ServeOptions,

    /// The WebAssembly component to serve (.wasm).
    #[arg(value_name = "COMPONENT")]
    component: PathBuf,
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

    #[command(flatten)]
    guest: GuestOptions,

    /// Let the component's outgoing calls go out for real, instead of
    /// answering them from the calls recorded in --requests FILE (without a
    /// requests file, they always go out).
    #[arg(long)]
    live_outgoing: bool,

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

/// Largest requests file read: a recording of many thousand requests.
const MAX_REQUESTS_FILE: u64 = 256 << 20;

fn parse_probe_path(path: &str) -> Result<Probe, String> {
    Probe::get(path).map_err(|e| format!("{e:#}"))
}

fn parse_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| one_line(&e))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => match args.options.conflicts() {
            Ok(()) => serve(&args),
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
    let mut warnings = Vec::new();
    let mut outgoing = Outgoing::Live;
    let mut probes = match &args.requests {
        Some(file) => {
            let text = read_regular_text(file, MAX_REQUESTS_FILE, "the requests file")?;
            let (probes, cut) =
                Probe::parse_recording(&text).with_context(|| file.display().to_string())?;
            warnings.extend(cut.map(|cut| format!("{}: {cut}", file.display())));
            if !args.live_outgoing {
                let calls =
                    RecordedCalls::parse(&text).with_context(|| file.display().to_string())?;
                outgoing = Outgoing::Replay(calls);
            }
            probes
        }
        None => Probe::defaults(),
    };
    probes.extend(args.paths.iter().cloned());
    // Loaded as serve would load it with the same flags (-S keyvalue and
    // config included); interruptible, so that a guest stuck in a loop
    // counts as a timeout instead of hanging the check.
    let serve_options = ServeOptions {
        guest: args.guest.clone(),
        ..ServeOptions::default()
    };
    let component = LoadedComponent::load_with(&args.component, true, &serve_options)?;
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
        guest: args.guest.clone(),
        warnings,
        outgoing,
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

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let options = &args.options;
    host_runner::logging::init(options.log_format).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        // Load and bind before anything else starts: a component that
        // cannot be served must fail fast, not on its first request.
        let server = Server::bind(&args.component, options).await?;
        let shutdown = Shutdown::new();
        shutdown
            .on_signals()
            .context("cannot install the Ctrl-C/SIGTERM handlers")?;
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
        describe(&server);
        server.run(shutdown).await
    });
    // Instances still alive (idle, or abandoned by a forced shutdown) may be
    // running guest code that never yields; do not wait for them forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// One line telling the operator what was loaded, which limits apply and
/// where the reuse limits came from (flag, default or the guest's policy).
fn describe(server: &Server) {
    let config = server.config();
    let component = server.component();
    let path = component.path().display();
    let declared = component.policy();
    let allocator = match component.allocator() {
        Allocator::Pooling => "pooling allocator",
        Allocator::OnDemand => "on-demand allocator",
    };
    let policy = match (declared, &config.guest_policy) {
        (_, Some(policy)) => format!("guest policy {}", Described(policy)),
        (Some(policy), None) => format!(
            "guest policy {} ignored (--ignore-guest-policy)",
            Described(policy)
        ),
        (None, None) => "no guest policy".to_owned(),
    };
    let or_none = |limit: Option<String>| limit.unwrap_or_else(|| "none".to_owned());
    // What the guest can reach besides WASI cli and http.
    let mut reach = vec![config.outbound.to_string()];
    if config.wasi.keyvalue {
        reach.push(host_runner::keyvalue_location(&config.wasi));
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
        "{path}: {} component, {allocator}, {policy}; {}; max-instance-reuse-count {} ({}), max-instance-concurrent-reuse-count {} ({}), idle-instance-timeout {}, request-timeout {}, max-concurrent-requests {}, max-instances {}, max-memory-size {}, max-total-memory {}, max-request-body-size {}, header-read-timeout {}, threads {}",
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
        or_none(config.max_total_memory.map(|n| HumanSize(n).to_string())),
        HumanSize(config.max_request_body_size),
        or_none(
            config
                .header_read_timeout
                .map(|t| HumanDuration(t).to_string())
        ),
        config.threads,
    );
}
