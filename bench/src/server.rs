//! A server under test as a child process: started, found (from its
//! `Serving HTTP on http://IP:PORT/` stderr line, and host-runner's
//! `Metrics on http://IP:PORT/metrics`), observed (peak RSS from `/proc`,
//! host-runner's Prometheus counters) and killed.
//!
//! It does not know which server it runs or what load it gets; the run
//! module builds the command line.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long a server may take to load its component and listen; compiling
/// a component without a cache takes seconds on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The line host-runner, `wasmtime serve` and `reprise-bench native` print
/// once they accept connections.
const SERVING: &str = "Serving HTTP on http://";

/// The line host-runner prints when it serves `/metrics`.
const METRICS: &str = "Metrics on http://";

/// The host-runner counter of instances created.
const INSTANCES_CREATED: &str = "reprise_instances_created_total";

/// The host-runner gauge of instances alive now.
const INSTANCES_LIVE: &str = "reprise_instances_live";

/// The host-runner counter of connections opened for guests' outgoing
/// HTTP.
const OUTBOUND_OPENED: &str = "reprise_outbound_connections_opened_total";

/// The host-runner counter of requests each serving thread received.
const THREAD_REQUESTS: &str = "reprise_thread_requests_total";

/// A program and its arguments, printable as the shell command that runs it.
#[derive(Clone, Debug)]
pub struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.display())?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

/// host-runner's counters at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Counters {
    pub instances_created: u64,
    /// Instances alive at the moment (a gauge); `None` from a host-runner
    /// without it.
    pub instances_live: Option<u64>,
    /// `None` from a host-runner without the counter.
    pub outbound_opened: Option<u64>,
    /// Requests received by each serving thread, in thread order.
    pub thread_requests: Vec<u64>,
}

/// A running server; killed when dropped.
pub struct Running {
    child: Child,
    addr: SocketAddr,
    /// Where it serves `/metrics`, once it said so.
    metrics: Arc<OnceLock<SocketAddr>>,
}

impl Running {
    /// Starts `command`, copying its stderr to `log`, and waits until it
    /// says where it listens.
    pub fn start(command: &CommandLine, log: &Path) -> anyhow::Result<Self> {
        let log_file =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(&command.program)
            .args(&command.args)
            // Every server as in production: with `RUST_BACKTRACE` set,
            // wasmtime captures a backtrace whenever an instance is dropped
            // (about 3x the instructions per request without reuse).
            .env_remove("RUST_BACKTRACE")
            .env_remove("WASMTIME_BACKTRACE_DETAILS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{command}`"))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (found, addr) = mpsc::channel();
        let metrics = Arc::new(OnceLock::new());
        let metrics_found = metrics.clone();
        thread::spawn(move || copy_stderr(stderr, log_file, found, &metrics_found));
        let addr = match addr.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "`{command}` did not print \"{SERVING}…\" (see {})",
                    log.display()
                );
            }
        };
        Ok(Self {
            child,
            addr,
            metrics,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How the server ended, if it is no longer running.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// CPU time the process used so far, user and system, all threads.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let ticks = parse_cpu_ticks(&stat).with_context(|| format!("unexpected {path}"))?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / CLOCK_TICKS_PER_SECOND,
        ))
    }

    /// The most resident memory the process ever used, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmHWM:")
    }

    /// The resident memory the process uses now, in KiB (VmRSS).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmRSS:")
    }

    /// A `/proc/PID/status` line such as `VmHWM:`, in KiB.
    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_status_kib(&status, field).with_context(|| format!("no {field} line in {path}"))
    }

    /// host-runner's counters so far, if it serves metrics.
    pub fn counters(&self) -> Option<Counters> {
        let text = scrape(*self.metrics.get()?)
            .inspect_err(|error| eprintln!("reprise-bench: metrics scrape failed: {error:#}"))
            .ok()?;
        Some(Counters {
            instances_created: parse_counter(&text, INSTANCES_CREATED)?,
            instances_live: parse_counter(&text, INSTANCES_LIVE),
            outbound_opened: parse_counter(&text, OUTBOUND_OPENED),
            thread_requests: parse_per_label(&text, THREAD_REQUESTS),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Nothing to flush: the bench only needs the server gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the server's stderr to its log, reporting the listening and
/// metrics addresses; keeps draining afterwards so a chatty server never
/// blocks on a full pipe.
fn copy_stderr(
    stderr: impl Read,
    mut log: File,
    found: mpsc::Sender<SocketAddr>,
    metrics: &OnceLock<SocketAddr>,
) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        if let Some(addr) = address_after(&line, SERVING, "/") {
            let _ = found.send(addr);
        } else if let Some(addr) = address_after(&line, METRICS, "/metrics") {
            let _ = metrics.set(addr);
        }
    }
}

/// The address in `…{prefix}IP:PORT{suffix}`.
fn address_after(line: &str, prefix: &str, suffix: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(prefix)?;
    rest.trim_end().strip_suffix(suffix)?.parse().ok()
}

/// `USER_HZ`: what Linux counts `/proc/PID/stat` times in, 100 on every
/// architecture the bench runs on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime from `/proc/PID/stat`; fields are counted after the
/// command name, which may itself hold spaces and parentheses.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line; the state (field 3) comes first
    // here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `GET /metrics` over HTTP/1.0, so the server closes when done and the
/// whole response is just "read to the end".
fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    anyhow::ensure!(
        head.contains(" 200 "),
        "{}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_owned())
}

/// The sum of a Prometheus counter over all its label sets.
fn parse_counter(text: &str, name: &str) -> Option<u64> {
    let samples: Vec<f64> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            // Exactly this metric: next comes labels or the value, not
            // more of a longer name.
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            let value = rest.rsplit_once('}').map_or(rest, |(_, value)| value);
            value.split_whitespace().next()?.parse().ok()
        })
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum::<f64>() as u64)
}

/// Every sample of a labelled Prometheus counter, in exposition order.
fn parse_per_label(text: &str, name: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (_, value) = rest.rsplit_once('}')?;
            value.trim().parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_and_metrics_lines_give_their_addresses() {
        let addr = Some("127.0.0.1:41234".parse().unwrap());
        let serving = "Serving HTTP on http://127.0.0.1:41234/";
        assert_eq!(address_after(serving, SERVING, "/"), addr);
        let metrics = "Metrics on http://127.0.0.1:41234/metrics";
        assert_eq!(address_after(metrics, METRICS, "/metrics"), addr);
        assert_eq!(address_after(metrics, SERVING, "/"), None);
        assert_eq!(address_after("host-runner: loading", SERVING, "/"), None);
    }

    #[test]
    fn cpu_ticks_are_user_plus_system_time() {
        let stat = "4242 (host (runner)) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 5 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
    }

    #[test]
    fn peak_and_current_rss_are_read_from_vm_hwm_and_vm_rss() {
        let status =
            "Name:\thost-runner\nVmPeak:\t  999 kB\nVmHWM:\t   51234 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(51234));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(40000));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn counters_sum_over_labels_and_ignore_longer_names() {
        let text = "# TYPE reprise_instances_created_total counter\n\
                    reprise_instances_created_total 12\n\
                    reprise_instances_created_total_extra 99\n";
        assert_eq!(parse_counter(text, INSTANCES_CREATED), Some(12));
        let labelled = "reprise_instances_created_total{world=\"p3\"} 3\n\
                        reprise_instances_created_total{world=\"p2\"} 4\n";
        assert_eq!(parse_counter(labelled, INSTANCES_CREATED), Some(7));
        assert_eq!(parse_counter("other 1\n", INSTANCES_CREATED), None);
    }

    #[test]
    fn per_thread_counters_come_in_thread_order() {
        let text = "# TYPE reprise_thread_requests_total counter\n\
                    reprise_thread_requests_total{thread=\"0\"} 120\n\
                    reprise_thread_requests_total{thread=\"1\"} 80\n\
                    reprise_thread_requests_in_flight{thread=\"0\"} 3\n";
        assert_eq!(parse_per_label(text, THREAD_REQUESTS), [120, 80]);
    }
}
