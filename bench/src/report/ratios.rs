//! The ratios the issue asks for, each with its target if it has one:
//! reprise over raw bindings and over other SDKs, reuse over none,
//! host-runner over `wasmtime serve` and native hyper, and cost as work
//! grows. This module only divides rows it is given.

use std::fmt::Write as _;

use crate::plan::{self, HELLOS, Hellos, Reuse, ServerKind, Workload};
use crate::results::Row;

/// A ratio the issue asks for, with its target if it has one.
struct Ratio {
    name: String,
    value: Option<f64>,
    target: Option<Target>,
}

#[derive(Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(floor) => value >= floor,
            Target::AtMost(ceiling) => value <= ceiling,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(floor) => format!(">= {floor}"),
            Target::AtMost(ceiling) => format!("<= {ceiling}"),
        }
    }
}

/// The table of ratios, in markdown.
pub(super) fn ratios(rows: &[Row]) -> String {
    let mut out = String::from("| Ratio | Value | Target | Met |\n|---|--:|--:|:-:|\n");
    // A partial run (`--only`) cannot compute every ratio; only the ones
    // with a target are worth a line saying so.
    let shown = all_ratios(rows)
        .into_iter()
        .filter(|ratio| ratio.value.is_some() || ratio.target.is_some());
    for ratio in shown {
        let value = ratio.value.map_or("n/a".into(), |v| format!("{v:.2}"));
        let (target, met) = match (ratio.target, ratio.value) {
            (Some(target), Some(value)) => (
                target.describe(),
                if target.met(value) { "yes" } else { "no" },
            ),
            (Some(target), None) => (target.describe(), "n/a"),
            (None, _) => (String::new(), ""),
        };
        let _ = writeln!(out, "| {} | {value} | {target} | {met} |", ratio.name);
    }
    out
}

/// A metric of a row, when the row has it.
type Metric = fn(&Row) -> Option<f64>;

fn requests_per_sec(row: &Row) -> Option<f64> {
    Some(row.requests_per_sec())
}

fn p99_seconds(row: &Row) -> Option<f64> {
    Some(row.p99().as_secs_f64())
}

fn cpu_per_request(row: &Row) -> Option<f64> {
    row.cpu_per_request()
}

/// The row of `component` with `reuse` on `server`, if it was measured.
fn find<'a>(rows: &'a [Row], server: ServerKind, component: &str, reuse: Reuse) -> Option<&'a Row> {
    rows.iter().find(|row| {
        row.config.server == server
            && row.config.component == Some(component)
            && row.config.reuse == reuse
            && row.config.variant.is_none()
    })
}

/// `metric` of one row over `metric` of another.
fn quotient(a: Option<&Row>, b: Option<&Row>, metric: Metric) -> Option<f64> {
    a.and_then(metric)
        .zip(b.and_then(metric))
        .map(|(a, b)| a / b)
}

fn all_ratios(rows: &[Row]) -> Vec<Ratio> {
    let hr = ServerKind::HostRunner;
    let on_host_runner = |component: &str, reuse| find(rows, hr, component, reuse);
    let ratio = |name: String, value: Option<f64>, target| Ratio {
        name,
        value,
        target,
    };
    let mut out = Vec::new();
    for component in HELLOS.iter().flat_map(Hellos::all) {
        let target = (component == "hello-p3").then_some(Target::AtLeast(3.0));
        out.push(ratio(
            format!("requests/s, reuse / no reuse, {component} on host-runner"),
            quotient(
                on_host_runner(component, Reuse::On),
                on_host_runner(component, Reuse::Off),
                requests_per_sec,
            ),
            target,
        ));
    }
    for hellos in HELLOS {
        for reuse in [Reuse::On, Reuse::Off] {
            let reprise = on_host_runner(hellos.reprise, reuse);
            out.push(ratio(
                format!(
                    "CPU/request, reprise / raw bindings, {} with {reuse} on host-runner",
                    hellos.reprise
                ),
                quotient(reprise, on_host_runner(hellos.raw, reuse), cpu_per_request),
                None,
            ));
            if let Some(raw_head) = hellos.raw_head {
                out.push(ratio(
                    format!(
                        "CPU/request, reprise / raw bindings reading the head, {} with {reuse} on host-runner",
                        hellos.reprise
                    ),
                    quotient(reprise, on_host_runner(raw_head, reuse), cpu_per_request),
                    (reuse == Reuse::On).then_some(Target::AtMost(1.05)),
                ));
            }
            out.push(ratio(
                format!(
                    "CPU/request, reprise / {}, {} with {reuse} on host-runner",
                    hellos.other_sdk, hellos.reprise
                ),
                quotient(
                    reprise,
                    on_host_runner(hellos.other, reuse),
                    cpu_per_request,
                ),
                (reuse == Reuse::On).then_some(Target::AtMost(1.05)),
            ));
        }
    }
    let native = rows
        .iter()
        .find(|row| row.config.server == ServerKind::Native);
    out.push(ratio(
        "CPU/request, host-runner hello-p3 with reuse / native hyper".into(),
        quotient(
            on_host_runner("hello-p3", Reuse::On),
            native,
            cpu_per_request,
        ),
        Some(Target::AtMost(5.0)),
    ));
    out.push(ratio(
        "requests/s, host-runner hello-p3 with reuse / native hyper".into(),
        quotient(
            on_host_runner("hello-p3", Reuse::On),
            native,
            requests_per_sec,
        ),
        None,
    ));
    out.extend(io_bound_ratios(
        rows,
        Workload::IoBound,
        "sleep-p3 40 ms, 200 connections",
    ));
    out.extend(io_bound_ratios(
        rows,
        Workload::Proxy,
        "proxy-p3 to a 40 ms backend, 200 connections",
    ));
    out.extend(scaling_ratios(rows));
    let no_pool = rows
        .iter()
        .find(|row| row.config.server == hr && row.config.variant == Some("no pool"));
    for (name, metric) in [
        ("CPU/request", cpu_per_request as Metric),
        ("requests/s", requests_per_sec),
    ] {
        out.push(ratio(
            format!("proxy-p3: {name}, outbound pool / no pool (one connection per call)"),
            quotient(on_host_runner("proxy-p3", Reuse::On), no_pool, metric),
            None,
        ));
    }
    out
}

/// host-runner over `wasmtime serve`, component by component: the same
/// component and flags on both, in the same run.
pub(super) fn versus_peer(rows: &[Row]) -> String {
    let columns: [(&str, Metric, Option<Target>); 3] = [
        ("Requests/s", requests_per_sec, Some(Target::AtLeast(1.5))),
        ("p99", p99_seconds, Some(Target::AtMost(1.0))),
        ("CPU/request", cpu_per_request, None),
    ];
    let mut out = String::from(
        "host-runner / `wasmtime serve`, same component and flags:

| Component | Reuse |",
    );
    for (name, _, target) in &columns {
        let _ = write!(
            out,
            " {name}{} |",
            target.map_or(String::new(), |t| format!(" ({})", t.describe()))
        );
    }
    out.push_str("\n|---|---|--:|--:|--:|\n");
    let mut any = false;
    for component in HELLOS.iter().flat_map(Hellos::all) {
        for reuse in [Reuse::On, Reuse::Off] {
            let ours = find(rows, ServerKind::HostRunner, component, reuse);
            let peer = find(rows, ServerKind::Wasmtime, component, reuse);
            if ours.is_none() || peer.is_none() {
                continue;
            }
            any = true;
            let _ = write!(out, "| {component} | {reuse} |");
            for (_, metric, target) in &columns {
                let cell = match (quotient(ours, peer, *metric), target) {
                    (None, _) => "n/a".to_owned(),
                    (Some(value), None) => format!("{value:.2}"),
                    (Some(value), Some(target)) => format!(
                        "{value:.2} ({})",
                        if target.met(value) { "met" } else { "not met" }
                    ),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }
    if any { out } else { String::new() }
}

/// The row of `server` with `variant`, if it was measured.
fn variant<'a>(rows: &'a [Row], server: ServerKind, variant: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|row| row.config.server == server && row.config.variant == Some(variant))
}

/// Cost as work grows: 16 → 256 connections, 1 → 2 serving threads, and
/// memory per live instance.
fn scaling_ratios(rows: &[Row]) -> Vec<Ratio> {
    let metrics: [(&str, Metric); 3] = [
        ("requests/s", requests_per_sec),
        ("p99", p99_seconds),
        ("CPU/request", cpu_per_request),
    ];
    let [(_, few), (_, many)] = plan::CONNECTIONS;
    let [(_, one), (_, two)] = plan::THREADS;
    let mut out = Vec::new();
    for server in [ServerKind::HostRunner, ServerKind::Wasmtime] {
        for (name, metric) in metrics {
            out.push(Ratio {
                name: format!("hello-p3 on {server}: {name}, {many} / {few}"),
                value: quotient(
                    variant(rows, server, many),
                    variant(rows, server, few),
                    metric,
                ),
                target: None,
            });
        }
    }
    let hr = ServerKind::HostRunner;
    for (name, metric) in metrics {
        out.push(Ratio {
            name: format!("hello-p3 on host-runner: {name}, {two} / {one}"),
            value: quotient(variant(rows, hr, two), variant(rows, hr, one), metric),
            target: None,
        });
    }
    // RSS half-way through the 200-connection serial sleep-p3 run against
    // the one-connection run, over the difference in live instances.
    let busy = rows.iter().find(|row| {
        row.config.server == hr
            && row.config.workload == Workload::IoBound
            && row.config.reuse == Reuse::Serial
            && row.config.variant.is_none()
    });
    let idle = variant(rows, hr, plan::ONE_CONNECTION);
    let per_instance = busy.zip(idle).and_then(|(busy, idle)| {
        let rss = busy.rss_kib_mid_run()? - idle.rss_kib_mid_run()?;
        let live = busy.live_instances_mid_run()? - idle.live_instances_mid_run()?;
        (live > 0.0).then(|| rss / live)
    });
    out.push(Ratio {
        name: "sleep-p3 serial reuse: KiB of RSS per live instance \
               ((RSS at 200 connections - at 1) / (live instances at 200 - at 1))"
            .into(),
        value: per_instance,
        target: None,
    });
    out
}

/// Reuse against no reuse for one I/O-bound workload on host-runner.
fn io_bound_ratios(rows: &[Row], workload: Workload, title: &str) -> Vec<Ratio> {
    let io = |reuse| {
        rows.iter().find(|row| {
            row.config.server == ServerKind::HostRunner
                && row.config.workload == workload
                && row.config.reuse == reuse
                && row.config.variant.is_none()
        })
    };
    let of = |reuse, metric: fn(&Row) -> Option<f64>| io(reuse).and_then(metric);
    let instances = |row: &Row| row.instances();
    let p99 = |row: &Row| Some(row.p99().as_secs_f64());
    let rps = |row: &Row| Some(row.requests_per_sec());
    let ratio = |name: &str, a: Option<f64>, b: Option<f64>, target| Ratio {
        name: format!("{title}: {name}"),
        value: a.zip(b).map(|(a, b)| a / b),
        target,
    };
    vec![
        ratio(
            "instances, reuse / no reuse",
            of(Reuse::On, instances),
            of(Reuse::Off, instances),
            Some(Target::AtMost(0.1)),
        ),
        ratio(
            "instances, serial reuse / no reuse",
            of(Reuse::Serial, instances),
            of(Reuse::Off, instances),
            None,
        ),
        ratio(
            "p99, reuse / no reuse",
            of(Reuse::On, p99),
            of(Reuse::Off, p99),
            Some(Target::AtMost(1.0)),
        ),
        ratio(
            "requests/s, reuse / no reuse",
            of(Reuse::On, rps),
            of(Reuse::Off, rps),
            None,
        ),
    ]
}
