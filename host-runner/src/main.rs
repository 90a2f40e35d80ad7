//! The `host-runner` command line: parses flags (named like `wasmtime
//! serve`'s), prints the lines scripts look for, and maps failures to exit
//! codes: 0 after a clean shutdown, 1 when the component cannot be served,
//! 2 for bad flags (clap's own).
//!
//! Everything else lives in the library so that tests and benches can drive
//! it directly; this file holds no serving logic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use host_runner::{
    Allocator, HumanDuration, LoadedComponent, ServeOptions, Server, Shutdown, parse_duration,
};

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
    Serve(ServeArgs),
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

    /// Requests handled at the same time across all instances; more wait
    /// [default: no limit].
    #[arg(long, value_name = "N")]
    max_concurrent_requests: Option<usize>,

    /// Client connections open at the same time; more wait to be accepted
    /// [default: no limit].
    #[arg(long, value_name = "N")]
    max_concurrent_connections: Option<usize>,

    /// Environment variable for the component (repeatable). `NAME` alone
    /// passes on the host's value.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    env: Vec<(String, String)>,

    /// Print guest output as is, without the `stdout [instance N] :: ` prefix.
    #[arg(long)]
    no_logging_prefix: bool,

    /// Add `x-reprise-instance` (instance number, from 1) and
    /// `x-reprise-instance-request` (request number on that instance, from
    /// 1) to every response, to observe reuse.
    #[arg(long)]
    debug_headers: bool,

    /// The WebAssembly component to serve (.wasm).
    #[arg(value_name = "COMPONENT")]
    component: PathBuf,
}

impl ServeArgs {
    fn options(&self) -> ServeOptions {
        ServeOptions {
            addr: self.addr,
            shutdown_addr: self.shutdown_addr,
            max_instance_reuse_count: self.max_instance_reuse_count,
            max_instance_concurrent_reuse_count: self.max_instance_concurrent_reuse_count,
            idle_instance_timeout: self.idle_instance_timeout,
            request_timeout: self.request_timeout,
            max_concurrent_requests: self.max_concurrent_requests,
            max_concurrent_connections: self.max_concurrent_connections,
            env: self.env.clone(),
            logging_prefix: !self.no_logging_prefix,
            debug_headers: self.debug_headers,
        }
    }
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, value.to_owned()),
        None => {
            let value = std::env::var(text).map_err(|_| {
                format!("`{text}` is not set in host-runner's environment; pass --env {text}=VALUE")
            })?;
            (text, value)
        }
    };
    if name.is_empty() {
        return Err(format!(
            "`{text}` has no variable name; expected NAME=VALUE"
        ));
    }
    Ok((name.to_owned(), value))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Same convention as Rust's panic handler: set and not "0".
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("error: {error:?}");
            } else {
                eprintln!("error: {}", one_line(&error));
            }
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let options = args.options();
    // Load before starting anything: a component that cannot be served must
    // fail fast, not on its first request.
    let component = LoadedComponent::load(&args.component, options.request_timeout.is_some())?;
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
        let server = Server::bind(component, &options).await?;
        let shutdown_addr = match options.shutdown_addr {
            Some(addr) => Some(shutdown.listen_on(addr).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {addr}: {e}; pick another address with --shutdown-addr"
                )
            })?),
            None => None,
        };
        // Scripts look for the last two lines; keep them last and adjacent.
        describe(&path, allocator, &server);
        if let Some(addr) = shutdown_addr {
            eprintln!("Listening for shutdown on tcp://{addr}/");
        }
        eprintln!("Serving HTTP on http://{}/", server.local_addr());
        server.run(shutdown).await
    });
    // Instances still alive (idle, or abandoned by a forced shutdown) may be
    // running guest code that never yields; do not wait for them forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// One line telling the operator what was loaded and which limits apply.
fn describe(path: &str, allocator: Allocator, server: &Server) {
    let config = server.config();
    let allocator = match allocator {
        Allocator::Pooling => "pooling allocator",
        Allocator::OnDemand => "on-demand allocator",
    };
    let timeout = config
        .request_timeout
        .map_or_else(|| "none".to_owned(), |t| HumanDuration(t).to_string());
    eprintln!(
        "host-runner: {path}: {} component, {allocator}; max-instance-reuse-count {}, max-instance-concurrent-reuse-count {}, idle-instance-timeout {}, request-timeout {timeout}",
        config.world,
        config.max_instance_reuse_count,
        config.max_instance_concurrent_reuse_count,
        HumanDuration(config.idle_instance_timeout),
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
