//! What a run measured: one [`Row`] per configuration with its raw samples,
//! and the [`Environment`] they were taken in; medians on demand.
//!
//! The run module fills these in, the report and the chart read them; none
//! of the three imports another. This module measures and formats nothing.

use std::path::PathBuf;
use std::time::Duration;

use crate::plan::Config;
use crate::server::CommandLine;
use crate::wrk::Sample;

/// Everything measured about one configuration.
pub struct Row {
    pub config: Config,
    /// The server as the table names it, with its version where it can
    /// differ between runs (`wasmtime serve 48.0.2`).
    pub server_name: String,
    /// The server command as the report shows it.
    pub server_command: CommandLine,
    /// The wrk command as the report shows it (port as `$PORT`).
    pub wrk_command: CommandLine,
    pub samples: Vec<Sample>,
    /// Server CPU time per request in each measured run, in microseconds.
    pub cpu_per_request: Vec<f64>,
    /// Instances created during each measured run (host-runner with
    /// metrics only).
    pub instances: Vec<u64>,
    /// Outgoing connections host-runner opened per 1,000 requests in each
    /// measured run (host-runner with metrics only).
    pub outbound_per_1000: Vec<f64>,
    /// The share of each measured run's requests that the busiest serving
    /// thread got (host-runner with metrics only; 0.5 is an even split on
    /// two threads).
    pub busiest_thread_share: Vec<f64>,
    pub peak_rss_kib: Option<u64>,
    /// Resident memory (VmRSS) half-way through each measured run, in KiB.
    pub rss_kib_mid_run: Vec<u64>,
    /// Live instances half-way through each measured run (host-runner with
    /// metrics only): what that RSS held.
    pub live_instances_mid_run: Vec<u64>,
}

/// Where and how the numbers were taken.
pub struct Environment {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub load_before: String,
    pub load_after: String,
    pub host_runner: String,
    /// The `wasmtime serve` of the peer rows, or why there are none.
    pub peer: Result<Peer, String>,
    pub wrk: String,
    /// Whether host-runner served `/metrics` (instance counts).
    pub metrics: bool,
    pub duration: u64,
    pub warmup: u64,
    pub repeats: u32,
}

/// The `wasmtime` binary of the peer rows.
pub struct Peer {
    pub path: PathBuf,
    /// Its `--version` line, e.g. `wasmtime 48.0.2 (… 2025-…)`.
    pub version: String,
}

impl Peer {
    /// The release alone, e.g. `48.0.2`.
    pub fn release(&self) -> &str {
        self.version.split_whitespace().nth(1).unwrap_or("?")
    }
}

impl Row {
    pub fn requests_per_sec(&self) -> f64 {
        median(self.samples.iter().map(|s| s.requests_per_sec))
    }

    pub fn p50(&self) -> Duration {
        Duration::from_secs_f64(median(self.samples.iter().map(|s| s.p50.as_secs_f64())))
    }

    pub fn p99(&self) -> Duration {
        Duration::from_secs_f64(median(self.samples.iter().map(|s| s.p99.as_secs_f64())))
    }

    pub fn errors(&self) -> u64 {
        self.samples.iter().map(|s| s.errors).sum()
    }

    /// Median server CPU time per request, in microseconds.
    pub fn cpu_per_request(&self) -> Option<f64> {
        (!self.cpu_per_request.is_empty()).then(|| median(self.cpu_per_request.iter().copied()))
    }

    pub fn busiest_thread_share(&self) -> Option<f64> {
        (!self.busiest_thread_share.is_empty())
            .then(|| median(self.busiest_thread_share.iter().copied()))
    }

    pub fn outbound_per_1000(&self) -> Option<f64> {
        (!self.outbound_per_1000.is_empty()).then(|| median(self.outbound_per_1000.iter().copied()))
    }

    /// Median RSS half-way through the measured runs, in KiB.
    pub fn rss_kib_mid_run(&self) -> Option<f64> {
        (!self.rss_kib_mid_run.is_empty())
            .then(|| median(self.rss_kib_mid_run.iter().map(|&kib| kib as f64)))
    }

    /// Median live instances half-way through the measured runs.
    pub fn live_instances_mid_run(&self) -> Option<f64> {
        (!self.live_instances_mid_run.is_empty())
            .then(|| median(self.live_instances_mid_run.iter().map(|&n| n as f64)))
    }

    pub fn instances(&self) -> Option<f64> {
        (!self.instances.is_empty()).then(|| median(self.instances.iter().map(|&n| n as f64)))
    }
}

/// The median; the mean of the middle two for an even count.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert!(median(std::iter::empty()).is_nan());
    }
}
