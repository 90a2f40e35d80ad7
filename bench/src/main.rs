//! `reprise-bench`: the numbers behind `docs/benchmarks.md`.
//!
//! `reprise-bench run` starts every server under test (host-runner, the
//! optional `wasmtime serve` peer, a native hyper server) as its own process
//! on 127.0.0.1, drives each with `wrk`, and writes the table and the chart.
//! `reprise-bench native` is that native server.
//!
//! It builds nothing (the justfile does), installs nothing, and asserts no
//! speed: it measures and reports.

mod chart;
mod native;
mod plan;
mod report;
mod results;
mod run;
mod server;
mod wrk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Benchmarks reprise components on host-runner, wasmtime serve and native
/// hyper.
#[derive(Parser)]
#[command(name = "reprise-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark matrix; print the table and write the report and
    /// chart.
    Run(RunArgs),
    /// Serve `Hello, WASI!` with plain hyper: the ceiling of the HTTP stack,
    /// and (with --delay-ms) the backend of the proxy rows.
    Native {
        /// Socket address to listen on; port 0 picks a free one (printed on
        /// stderr like host-runner does).
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Answer each request after this many milliseconds, as a backend
        /// that waits on its own I/O would.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        delay_ms: u64,
    },
}

/// Where things are and how long to measure.
#[derive(Args)]
struct RunArgs {
    /// Seconds of each measured wrk run.
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    duration: u64,
    /// Seconds of load each server gets before its first measured run.
    #[arg(long, default_value = "2s", value_parser = parse_seconds)]
    warmup: u64,
    /// Measured runs per configuration; the median is reported. Runs go
    /// round-robin over the configurations so that a burst of load on the
    /// machine hits them all alike.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// Only run configurations whose label contains this text (repeatable).
    #[arg(long, value_name = "TEXT")]
    only: Vec<String>,
    /// The host-runner binary.
    #[arg(long, default_value = "target/release/host-runner")]
    host_runner: PathBuf,
    /// The `wasmtime` binary for the peer rows (a 48.0.x release)
    /// [default: target/peer/bin/wasmtime from `just bench-peer`, else
    /// target/portability/wasmtime-48.0.2/wasmtime from `just portability`;
    /// no peer rows when neither exists].
    #[arg(long)]
    wasmtime: Option<PathBuf>,
    /// Where the guests' .wasm files are.
    #[arg(long, default_value = "target/wasm32-wasip2/release")]
    guests: PathBuf,
    /// Markdown report to update (between its `reprise-bench` markers).
    #[arg(long, default_value = "docs/benchmarks.md")]
    report: PathBuf,
    /// SVG chart to write.
    #[arg(long, default_value = "docs/src/benchmarks.svg")]
    chart: PathBuf,
    /// Where servers' stderr goes, one file per configuration.
    #[arg(long, default_value = "target/bench/logs")]
    logs: PathBuf,
    /// A smoke run to see every row render: 1 s warm-up, one run of 2 s
    /// each, and the report and chart written under target/bench/quick/
    /// instead of docs/. Overrides --duration, --warmup, --repeats,
    /// --report and --chart.
    #[arg(long)]
    quick: bool,
}

impl RunArgs {
    /// The arguments with `--quick` applied.
    fn resolved(mut self) -> Self {
        if self.quick {
            self.duration = 2;
            self.warmup = 1;
            self.repeats = 1;
            self.report = PathBuf::from("target/bench/quick/benchmarks.md");
            self.chart = PathBuf::from("target/bench/quick/benchmarks.svg");
        }
        self
    }
}

/// Whole seconds, as wrk takes them: `10s` or `10`.
fn parse_seconds(text: &str) -> Result<u64, String> {
    text.strip_suffix('s')
        .unwrap_or(text)
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of seconds, e.g. 10s"))
}

/// Measures, prints the table, and writes the report and the chart.
fn run_and_report(args: &RunArgs) -> anyhow::Result<()> {
    let (environment, rows) = run::run(args)?;
    println!("{}", report::table(&rows));
    report::write(&args.report, &args.chart, &environment, &rows)?;
    chart::write(&args.chart, &rows)?;
    eprintln!(
        "reprise-bench: wrote {} and {}",
        args.report.display(),
        args.chart.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run(args) => run_and_report(&args.resolved()),
        Command::Native { addr, delay_ms } => {
            native::serve(addr, std::time::Duration::from_millis(delay_ms))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("reprise-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_runs_short_and_leaves_docs_alone() {
        let Command::Run(args) = Cli::parse_from(["reprise-bench", "run", "--quick"]).command
        else {
            unreachable!("parsed as run")
        };
        let args = args.resolved();
        assert_eq!((args.duration, args.warmup, args.repeats), (2, 1, 1));
        assert!(args.report.starts_with("target/bench/quick"));
        assert!(args.chart.starts_with("target/bench/quick"));
    }

    #[test]
    fn seconds_read_with_or_without_suffix() {
        assert_eq!(parse_seconds("10s"), Ok(10));
        assert_eq!(parse_seconds("2"), Ok(2));
        assert!(parse_seconds("1.5s").is_err());
        assert!(parse_seconds("500ms").is_err());
    }
}
