//! The load generator: runs `wrk --latency` and reads requests/s, p50, p99
//! and errors from its report.
//!
//! It does not decide the load (the plan does) and keeps no history.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::plan::Load;
use crate::server::CommandLine;

/// What one wrk run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Requests completed in the run.
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Socket errors and non-2xx/3xx responses: a run with errors measured
    /// something other than serving.
    pub errors: u64,
}

/// Where the Lua scripts for POST loads go.
const SCRIPTS: &str = "target/bench/wrk";

/// The wrk command for `load` against `url`, for `seconds`. A POST load
/// needs its script: [`write_script`] first.
pub fn command(url: &str, load: &Load, seconds: u64) -> CommandLine {
    let mut args = vec![
        format!("-t{}", load.threads),
        format!("-c{}", load.connections),
        format!("-d{seconds}s"),
        "--latency".into(),
    ];
    if let Some(bytes) = load.post_bytes {
        args.extend(["-s".into(), script_path(bytes).display().to_string()]);
    }
    args.push(url.to_owned());
    CommandLine {
        program: "wrk".into(),
        args,
    }
}

fn script_path(bytes: u32) -> PathBuf {
    Path::new(SCRIPTS).join(format!("post-{bytes}.lua"))
}

/// Writes the Lua script that makes wrk POST `load`'s body, if it has one.
pub fn write_script(load: &Load) -> anyhow::Result<()> {
    let Some(bytes) = load.post_bytes else {
        return Ok(());
    };
    let path = script_path(bytes);
    std::fs::create_dir_all(SCRIPTS).with_context(|| format!("cannot create {SCRIPTS}"))?;
    std::fs::write(&path, script(bytes)).with_context(|| format!("cannot write {}", path.display()))
}

fn script(bytes: u32) -> String {
    format!(
        "-- Written by reprise-bench: POST {bytes} bytes.\n\
         wrk.method = \"POST\"\n\
         wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n\
         wrk.body = string.rep(\"x\", {bytes})\n"
    )
}

/// Runs `command` (from [`command`]) and parses its report.
pub fn run(command: &CommandLine) -> anyhow::Result<Sample> {
    let output = Command::new(&command.program)
        .args(&command.args)
        .output()
        .context("cannot run wrk; `just bench` installs it (scripts/install-bench-tools.sh)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "`{command}` failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&stdout).with_context(|| format!("unexpected output from `{command}`:\n{stdout}"))
}

fn parse(report: &str) -> anyhow::Result<Sample> {
    let value_after = |label: &str| {
        report
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(label))
            .map(str::trim)
    };
    let requests = report
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .context("no `N requests in` line")?
        .0
        .parse()?;
    let requests_per_sec = value_after("Requests/sec:")
        .context("no Requests/sec line")?
        .parse()?;
    let p50 = parse_latency(value_after("50%").context("no 50% line (missing --latency?)")?)?;
    let p99 = parse_latency(value_after("99%").context("no 99% line")?)?;
    let socket_errors: u64 = value_after("Socket errors:").map_or(0, |errors| {
        errors
            .split(',')
            .filter_map(|kind| kind.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    });
    let bad_status: u64 = match value_after("Non-2xx or 3xx responses:") {
        Some(count) => count.parse()?,
        None => 0,
    };
    Ok(Sample {
        requests,
        requests_per_sec,
        p50,
        p99,
        errors: socket_errors + bad_status,
    })
}

/// wrk prints latencies as a number and a unit: `448.00us`, `2.26ms`, `1.02s`.
fn parse_latency(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .context("latency without a unit")?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => bail!("unknown latency unit `{unit}`"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
Running 3s test @ http://127.0.0.1:18080/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.26ms    1.02ms  20.00ms   80.00%
    Req/Sec     6.64k   500.00     7.00k    70.00%
  Latency Distribution
     50%  448.00us
     75%    2.50ms
     90%    3.00ms
     99%    1.02s
  39660 requests in 3.00s, 4.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 12
  Non-2xx or 3xx responses: 5
Requests/sec:  13220.44
Transfer/sec:      1.33MB
";

    #[test]
    fn report_gives_throughput_percentiles_and_errors() {
        let sample = parse(REPORT).unwrap();
        assert_eq!(sample.requests, 39660);
        assert_eq!(sample.requests_per_sec, 13220.44);
        assert_eq!(sample.p50, Duration::from_micros(448));
        assert_eq!(sample.p99, Duration::from_millis(1020));
        assert_eq!(sample.errors, 19);
    }

    #[test]
    fn a_post_load_runs_its_script_and_the_script_sends_the_body() {
        let load = Load {
            threads: 2,
            connections: 16,
            path: "/echo",
            post_bytes: Some(1024),
        };
        let command = command("http://127.0.0.1:1/echo", &load, 3);
        let args = command.args.join(" ");
        assert!(args.contains("-s target/bench/wrk/post-1024.lua"), "{args}");
        assert!(args.ends_with("http://127.0.0.1:1/echo"), "{args}");
        let lua = script(1024);
        assert!(lua.contains("wrk.method = \"POST\""), "{lua}");
        assert!(lua.contains("string.rep(\"x\", 1024)"), "{lua}");
    }

    #[test]
    fn clean_report_has_no_errors() {
        let clean: String = REPORT
            .lines()
            .filter(|line| !line.contains("errors") && !line.contains("Non-2xx"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(parse(&clean).unwrap().errors, 0);
    }

    #[test]
    fn report_without_latency_distribution_is_rejected() {
        let without: String = REPORT
            .lines()
            .filter(|line| !line.contains('%') || line.contains("Stdev"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(parse(&without).is_err());
    }
}
