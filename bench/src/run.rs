//! One benchmark run: starts every configured server, warms each up,
//! measures them round-robin, and returns what it measured.
//!
//! All servers stay up for the whole run (idle ones cost nothing), so the
//! rounds can interleave: a burst of load from elsewhere on the machine then
//! lands on every configuration instead of skewing one. This module does not
//! format anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::RunArgs;
use crate::plan::{self, Config, ServerKind, Workload};
use crate::results::{Environment, Peer, Row};
use crate::server::{CommandLine, Running};
use crate::wrk;

/// The peer's release line: the one host-runner embeds (48.0.8, from
/// `just bench-peer`), or the 48.0.2 release binary `just portability`
/// installs. Which one ran is in the report, beside every peer row.
const PEER_LINE: &str = "wasmtime 48.0.";

/// Where to look for the peer when `--wasmtime` is not given: `just
/// bench-peer`'s build first, then `scripts/portability.py`'s release binary.
const PEER_CANDIDATES: [&str; 2] = [
    "target/peer/bin/wasmtime",
    "target/portability/wasmtime-48.0.2/wasmtime",
];

/// Stands for the port a server printed, in the commands the report shows.
const PORT: &str = "$PORT";

/// A configuration with its server up.
struct Live {
    row: Row,
    server: Running,
    url: String,
    /// Where the server's stderr goes.
    log: PathBuf,
}

/// Measures every configuration `args` selects.
pub fn run(args: &RunArgs) -> anyhow::Result<(Environment, Vec<Row>)> {
    let mut environment = environment(args)?;
    if let Err(reason) = &environment.peer {
        eprintln!("reprise-bench: no wasmtime serve rows: {reason}");
    }
    if !environment.metrics {
        eprintln!(
            "reprise-bench: {} has no --metrics-addr: instance counts are left out",
            args.host_runner.display()
        );
    }
    let plan: Vec<Config> = plan::all()
        .into_iter()
        .filter(|config| config.server != ServerKind::Wasmtime || environment.peer.is_ok())
        .filter(|config| selected(config, &args.only))
        .collect();
    if plan.is_empty() {
        bail!("no configuration matches --only {:?}", args.only);
    }
    std::fs::create_dir_all(&args.logs)
        .with_context(|| format!("cannot create {}", args.logs.display()))?;

    // The proxy rows' backend, up for the whole run like the servers.
    let backend = plan
        .iter()
        .any(|config| config.workload == Workload::Proxy)
        .then(|| start_backend(args))
        .transpose()?;
    let backend_url = backend
        .as_ref()
        .map(|backend| format!("http://{}", backend.addr()));
    let mut live = start_all(args, &environment, plan, backend_url.as_deref())?;
    for config in &live {
        warm_up(config, args.warmup)?;
    }
    for round in 1..=args.repeats {
        for config in &mut live {
            measure(config, args.duration, (round, args.repeats))?;
        }
    }
    let rows = live.into_iter().map(finish).collect::<Vec<_>>();
    environment.load_after = load_average();
    Ok((environment, rows))
}

fn selected(config: &Config, only: &[String]) -> bool {
    only.is_empty()
        || only
            .iter()
            .any(|text| config.label().contains(text.as_str()))
}

/// `reprise-bench native --delay-ms 40`: the backend the proxy rows call.
fn start_backend(args: &RunArgs) -> anyhow::Result<Running> {
    let command = CommandLine {
        program: display_path(&std::env::current_exe()?),
        args: vec![
            "native".into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--delay-ms".into(),
            plan::BACKEND_DELAY_MS.to_string(),
        ],
    };
    eprintln!("reprise-bench: starting the proxy backend");
    Running::start(&command, &args.logs.join("proxy-backend.log"))
}

fn start_all(
    args: &RunArgs,
    environment: &Environment,
    plan: Vec<Config>,
    backend: Option<&str>,
) -> anyhow::Result<Vec<Live>> {
    plan.into_iter()
        .map(|config| start(args, environment, config, backend))
        .collect()
}

fn start(
    args: &RunArgs,
    environment: &Environment,
    config: Config,
    backend: Option<&str>,
) -> anyhow::Result<Live> {
    if let Some(file) = config.wasm_file() {
        let path = args.guests.join(&file);
        anyhow::ensure!(
            path.exists(),
            "{} is missing; `just bench` builds it (`just build` reprise's guests, bench/sdks the other SDKs')",
            path.display()
        );
    }
    let metrics = config.server == ServerKind::HostRunner && environment.metrics;
    let mut command = server_command(args, environment, &config, metrics)?;
    wrk::write_script(&config.load)?;
    if config.workload == Workload::Proxy {
        let backend = backend.expect("the backend starts before the proxy rows");
        // Before the component, which comes last.
        let at = command.args.len() - 1;
        command.args.insert(at, format!("BACKEND={backend}"));
        command.args.insert(at, "--env".into());
    }
    let log = args
        .logs
        .join(format!("{}.log", config.label().replace(' ', "_")));
    eprintln!("reprise-bench: starting {}", config.label());
    let server = Running::start(&command, &log)?;
    let url = format!("http://{}{}", server.addr(), config.load.path);
    let shown_url = format!("http://127.0.0.1:{PORT}{}", config.load.path);
    let server_name = match (&config.server, &environment.peer) {
        (ServerKind::Wasmtime, Ok(peer)) => format!("{} {}", config.server, peer.release()),
        (server, _) => server.to_string(),
    };
    let row = Row {
        wrk_command: wrk::command(&shown_url, &config.load, args.duration),
        server_command: command,
        server_name,
        config,
        samples: Vec::new(),
        cpu_per_request: Vec::new(),
        instances: Vec::new(),
        outbound_per_1000: Vec::new(),
        busiest_thread_share: Vec::new(),
        peak_rss_kib: None,
        rss_kib_mid_run: Vec::new(),
        live_instances_mid_run: Vec::new(),
    };
    Ok(Live {
        row,
        server,
        url,
        log,
    })
}

/// The command that serves `config`, asking host-runner for `/metrics` on a
/// free port when `metrics`.
fn server_command(
    args: &RunArgs,
    environment: &Environment,
    config: &Config,
    metrics: bool,
) -> anyhow::Result<CommandLine> {
    let component = || {
        let file = config
            .wasm_file()
            .expect("WebAssembly servers run a component");
        display_path(&args.guests.join(file))
    };
    let mut command = match config.server {
        ServerKind::HostRunner => CommandLine {
            program: display_path(&args.host_runner),
            args: vec!["serve".into()],
        },
        ServerKind::Wasmtime => CommandLine {
            program: display_path(
                &environment
                    .peer
                    .as_ref()
                    .map_err(|reason| anyhow::anyhow!("{reason}"))?
                    .path,
            ),
            args: vec!["serve".into(), "-Scli".into()],
        },
        ServerKind::Native => CommandLine {
            program: display_path(&std::env::current_exe()?),
            args: vec!["native".into()],
        },
    };
    command.args.extend(["--addr".into(), "127.0.0.1:0".into()]);
    command
        .args
        .extend(config.flags.iter().map(|&flag| flag.to_owned()));
    if metrics {
        command
            .args
            .extend(["--metrics-addr".into(), "127.0.0.1:0".into()]);
    }
    if config.server != ServerKind::Native {
        command.args.push(component().display().to_string());
    }
    Ok(command)
}

/// `path` relative to the working directory when it is inside it, so the
/// report's commands work from a checkout.
fn display_path(path: &Path) -> PathBuf {
    let Ok(cwd) = std::env::current_dir() else {
        return path.to_path_buf();
    };
    path.strip_prefix(&cwd).unwrap_or(path).to_path_buf()
}

fn warm_up(live: &Live, seconds: u64) -> anyhow::Result<()> {
    if seconds == 0 {
        return Ok(());
    }
    eprintln!("reprise-bench: warming up {}", live.row.config.label());
    wrk::run(&wrk::command(&live.url, &live.row.config.load, seconds)).map(drop)
}

fn measure(live: &mut Live, seconds: u64, (round, rounds): (u32, u32)) -> anyhow::Result<()> {
    let before = live.server.counters();
    let cpu_before = live.server.cpu_time()?;
    let command = wrk::command(&live.url, &live.row.config.load, seconds);
    let (sample, mid_run) = std::thread::scope(|scope| {
        let load = scope.spawn(|| wrk::run(&command));
        // Half-way through: the memory the server holds under this load,
        // and (host-runner) how many instances hold it.
        std::thread::sleep(Duration::from_secs(seconds) / 2);
        let mid_run = (
            live.server.rss_kib().ok(),
            live.server
                .counters()
                .and_then(|counters| counters.instances_live),
        );
        (load.join().expect("the wrk thread does not panic"), mid_run)
    });
    let sample = sample.map_err(|error| match live.server.exit_status() {
        Some(status) => anyhow::anyhow!(
            "{} stopped ({status}) before its run {round}; its stderr is in {}",
            live.row.config.label(),
            live.log.display()
        ),
        None => error,
    })?;
    let cpu = live.server.cpu_time()? - cpu_before;
    live.row.rss_kib_mid_run.extend(mid_run.0);
    live.row.live_instances_mid_run.extend(mid_run.1);
    if let (Some(before), Some(after)) = (before, live.server.counters()) {
        live.row
            .instances
            .push(after.instances_created - before.instances_created);
        if let (Some(before), Some(after), true) = (
            before.outbound_opened,
            after.outbound_opened,
            sample.requests > 0,
        ) {
            let opened = (after - before) as f64;
            live.row
                .outbound_per_1000
                .push(opened * 1000.0 / sample.requests as f64);
        }
        if let Some(share) = busiest_share(&before.thread_requests, &after.thread_requests) {
            live.row.busiest_thread_share.push(share);
        }
    }
    if sample.requests > 0 {
        let micros = cpu.as_secs_f64() * 1e6 / sample.requests as f64;
        live.row.cpu_per_request.push(micros);
    }
    eprintln!(
        "reprise-bench: [{round}/{rounds}] {:<40} {:>9.0} req/s  p50 {:>9.2?}  p99 {:>9.2?}{}",
        live.row.config.label(),
        sample.requests_per_sec,
        sample.p50,
        sample.p99,
        match sample.errors {
            0 => String::new(),
            errors => format!("  {errors} errors"),
        }
    );
    live.row.samples.push(sample);
    Ok(())
}

/// The share of a run's requests that its busiest serving thread received,
/// from the per-thread counters before and after it.
fn busiest_share(before: &[u64], after: &[u64]) -> Option<f64> {
    let served: Vec<u64> = after
        .iter()
        .zip(before.iter().chain(std::iter::repeat(&0)))
        .map(|(after, before)| after - before)
        .collect();
    let total: u64 = served.iter().sum();
    let busiest = *served.iter().max()?;
    (served.len() > 1 && total > 0).then(|| busiest as f64 / total as f64)
}

fn finish(mut live: Live) -> Row {
    live.row.peak_rss_kib = live
        .server
        .peak_rss_kib()
        .inspect_err(|error| eprintln!("reprise-bench: {error:#}"))
        .ok();
    live.row
}

fn environment(args: &RunArgs) -> anyhow::Result<Environment> {
    let host_runner = first_line_of(&args.host_runner, &["--version"]).with_context(|| {
        format!(
            "cannot run {}; build it with `just build`",
            args.host_runner.display()
        )
    })?;
    let help = first_lines_of(&args.host_runner, &["serve", "--help"]).unwrap_or_default();
    Ok(Environment {
        date: first_line_of(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        load_before: load_average(),
        load_after: String::new(),
        host_runner,
        peer: find_peer(args.wasmtime.as_deref()),
        wrk: wrk_version()?,
        metrics: help.contains("--metrics-addr"),
        duration: args.duration,
        warmup: args.warmup,
        repeats: args.repeats,
    })
}

/// `wrk debian/4.1.0-3+b2`, without the copyright that follows.
fn wrk_version() -> anyhow::Result<String> {
    let line = first_line_of(Path::new("wrk"), &["--version"])
        .context("cannot run wrk; install it with scripts/install-bench-tools.sh")?;
    Ok(line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

/// The `wasmtime` for the peer rows: `--wasmtime` if given, else the first
/// of [`PEER_CANDIDATES`] that exists.
fn find_peer(wasmtime: Option<&Path>) -> Result<Peer, String> {
    let path = match wasmtime {
        Some(path) if !path.exists() => {
            return Err(format!("{} is missing", path.display()));
        }
        Some(path) => path.to_path_buf(),
        None => PEER_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .ok_or_else(|| {
                format!(
                    "neither {} nor {} exists; `just bench-peer` builds 48.0.8 (about 15 minutes, \
                     once), `just portability` installs the 48.0.2 release binary",
                    PEER_CANDIDATES[0], PEER_CANDIDATES[1]
                )
            })?,
    };
    let version = first_line_of(&path, &["--version"]).map_err(|e| format!("{e:#}"))?;
    if !version.starts_with(PEER_LINE) {
        return Err(format!(
            "{} is `{version}`, not {PEER_LINE}x; rerun `just bench-peer`",
            path.display()
        ));
    }
    Ok(Peer { path, version })
}

fn first_line_of(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    let text = first_lines_of(program, args)?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Stdout of a short command (stderr too: wrk prints its version there).
fn first_lines_of(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(text)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busiest_share_counts_only_the_run() {
        assert_eq!(busiest_share(&[100, 0], &[160, 40]), Some(0.6));
        assert_eq!(busiest_share(&[], &[30, 10]), Some(0.75));
        // One thread, or nothing served: no spread to speak of.
        assert_eq!(busiest_share(&[5], &[9]), None);
        assert_eq!(busiest_share(&[5, 5], &[5, 5]), None);
    }

    #[test]
    fn only_filters_by_label_text() {
        let config = &plan::all()[0];
        assert!(selected(config, &[]));
        assert!(selected(config, &["hello-p3".into()]));
        assert!(!selected(config, &["native".into()]));
    }
}
