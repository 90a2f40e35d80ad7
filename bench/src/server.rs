//! A server under test as a child process: started, found (from its
//! `Serving HTTP on http://IP:PORT/` stderr line), observed (peak RSS from
//! `/proc`, host-runner's Prometheus counters) and killed.
//!
//! It does not know which server it runs or what load it gets; the run
//! module builds the command line.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long a server may take to load its component and listen; compiling
/// a component without a cache takes seconds on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The line host-runner, `wasmtime serve` and `reprise-bench native` print
/// once they accept connections.
const SERVING: &str = "Serving HTTP on http://";

/// The host-runner counter of instances created.
const INSTANCES_CREATED: &str = "reprise_instances_created_total";

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

/// A running server; killed when dropped.
pub struct Running {
    child: Child,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
}

impl Running {
    /// Starts `command`, copying its stderr to `log`, and waits until it
    /// says where it listens. `metrics` is where it serves `/metrics`, if it
    /// was asked to.
    pub fn start(
        command: &CommandLine,
        log: &Path,
        metrics: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let log_file =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{command}`"))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (found, addr) = mpsc::channel();
        thread::spawn(move || copy_stderr(stderr, log_file, found));
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

    /// The most resident memory the process ever used, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_vm_hwm(&status).with_context(|| format!("no VmHWM line in {path}"))
    }

    /// host-runner's count of instances created so far, if it serves
    /// metrics.
    pub fn instances_created(&self) -> Option<u64> {
        let text = scrape(self.metrics?)
            .inspect_err(|error| eprintln!("reprise-bench: metrics scrape failed: {error:#}"))
            .ok()?;
        parse_counter(&text, INSTANCES_CREATED)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Nothing to flush: the bench only needs the server gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the server's stderr to its log, reporting the listening address
/// once; keeps draining afterwards so a chatty server never blocks on a
/// full pipe.
fn copy_stderr(stderr: impl Read, mut log: File, found: mpsc::Sender<SocketAddr>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        if let Some(addr) = parse_serving_line(&line) {
            let _ = found.send(addr);
        }
    }
}

fn parse_serving_line(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(SERVING)?;
    rest.trim_end().trim_end_matches('/').parse().ok()
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A free port on 127.0.0.1 for a server flag that cannot take port 0 and
/// report back (the metrics address). Another process could take it in
/// between; on a bench machine that does not happen.
pub fn free_local_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_line_gives_the_address() {
        assert_eq!(
            parse_serving_line("Serving HTTP on http://127.0.0.1:41234/"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(parse_serving_line("host-runner: loading"), None);
    }

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        let status =
            "Name:\thost-runner\nVmPeak:\t  999 kB\nVmHWM:\t   51234 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(51234));
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
}
