//! `host-runner check`: a differential test of a component under instance
//! reuse, run through this library (no HTTP server, no sockets).
//!
//! The same request sequence runs three ways: each request on a fresh
//! instance, twice (the reference, and its own non-determinism); all
//! requests one after another on one reused instance (`serial`); and, for
//! p3, each round's requests in flight together on one instance
//! (`concurrent`). The reused modes run several rounds, the first in the
//! given order and the others shuffled from a printed seed. Any answer of a
//! reused instance that differs from the fresh one, outside what already
//! differs between two fresh instances, is a leak; a trap or a missing
//! response only under reuse, and linear memory that keeps growing on one
//! instance, are hazards.
//!
//! The check honours the guest's own reuse decisions: an instance under
//! backpressure gets no new request, and one that retired is replaced.
//! What it cannot see: leaks that need more requests, other inputs or more
//! concurrency than the probes give, and state outside the instance (files,
//! the services it calls). Outgoing calls are answered from the recording
//! the requests came from ([`Outgoing::Replay`]), or made for real; an
//! answer that differs after a call failed, was cancelled or timed out, or
//! found no recorded answer, is reported as such (`outgoing`), not as a
//! leak.
//!
//! Instances see what `serve` would give them with the same flags
//! ([`GuestOptions`]). Every run (each fresh run, each round of a reused
//! mode) starts from the same key-value data, the `-Skeyvalue` seed, and
//! with kv on, each order of requests gets a fresh reference run in that
//! order: data meant to outlive instances is never a leak, while an
//! instance that keeps a copy of it and answers from the stale copy is.

mod body;
mod compare;
mod driver;
mod order;
mod probe;
mod report;
mod runs;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use regex_lite::Regex;

pub use compare::Difference;
use probe::labels;
pub use probe::{Outgoing, Probe, RecordedCalls};
pub use report::{
    Finding, Kind, MemorySeries, Mode, ModeSummary, NonDeterminism, Position, Report,
};

use crate::component::engine::EpochTicker;
use crate::component::{LoadedComponent, World};
use crate::options::GuestOptions;
use compare::{Comparable, Ignore, Mask};
use driver::{Driver, Outcome};
use order::{Shuffler, orders};
use runs::{ModeRuns, fresh_run, reused_run};

/// Headers left out of comparisons unless the caller changes the list:
/// clocks, request ids, host-runner's own debug headers, and
/// `content-length` (the body itself is compared, and may be compared with
/// parts ignored, which a length would not know about).
pub const DEFAULT_IGNORED_HEADERS: [&str; 4] =
    ["content-length", "date", "x-request-id", "x-reprise-*"];

/// Why a pass from the default probes proves little.
const ONLY_DEFAULT_PROBES: &str = "only the default probes ran (GET /, GET /?a=1, POST /), which reach little of a real handler: record real traffic with `host-runner serve --record FILE` and check with --requests FILE, or add paths with --path";

/// Growth in the second half of an instance's requests that counts as
/// still growing: two WebAssembly pages. One page more is an allocator
/// settling (a buffer's capacity rounded up), not a leak.
const MEMORY_GROWTH_MIN: usize = 2 * (64 << 10);

/// A memory series needs this many samples before its trend means anything.
const MEMORY_MIN_SAMPLES: usize = 4;

/// How to run a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Rounds of each reused mode (at least 1).
    pub rounds: usize,
    /// Seed of the shuffled orders; the same seed gives the same orders.
    pub seed: u64,
    /// How long a request may go without an answer, and a batch without
    /// progress, before it counts as never finishing.
    pub request_timeout: Duration,
    /// Response headers left out of comparisons (case-insensitive; a
    /// trailing `*` matches a prefix).
    pub ignore_headers: Vec<String>,
    /// Body parts left out of comparisons: every match is blanked.
    pub ignore_body: Vec<Regex>,
    /// What every instance sees: `--env`, `-S` keyvalue/config, the
    /// outbound allow-list, memory and body limits, as `serve` takes them.
    pub guest: GuestOptions,
    /// Warnings to print with the report (about the requests file).
    pub warnings: Vec<String>,
    /// Whether outgoing calls go out or are answered from a recording.
    pub outgoing: Outgoing,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            rounds: 3,
            seed: 1,
            request_timeout: Duration::from_secs(10),
            ignore_headers: DEFAULT_IGNORED_HEADERS.map(str::to_owned).to_vec(),
            ignore_body: Vec::new(),
            guest: GuestOptions::default(),
            warnings: Vec::new(),
            outgoing: Outgoing::Live,
        }
    }
}

/// Runs the check of `component` with `probes`.
///
/// The component must have been loaded as interruptible, so that a guest
/// stuck in a loop counts as a timeout instead of hanging the check.
pub async fn check(
    component: &LoadedComponent,
    probes: &[Probe],
    options: &CheckOptions,
) -> anyhow::Result<Report> {
    anyhow::ensure!(!probes.is_empty(), "no requests to check with");
    anyhow::ensure!(
        component.interruptible(),
        "check needs the component loaded as interruptible"
    );
    let _ticker = EpochTicker::start(
        component.engine().clone(),
        EpochTicker::period_for(options.request_timeout),
    )
    .context("cannot start the thread that enforces the request timeout")?;
    let rounds = options.rounds.max(1);
    let body_limit = (options.guest.max_request_body_size)
        .unwrap_or(crate::options::DEFAULT_MAX_REQUEST_BODY_SIZE);
    if let Some(probe) = probes.iter().find(|p| p.body_len() as u64 > body_limit) {
        anyhow::bail!(
            "{probe} has a body of {} bytes, over --max-request-body-size ({body_limit} bytes): serve would answer 413 without calling the component; raise the limit or leave the request out",
            probe.body_len()
        );
    }
    let mut driver = Driver::new(component, probes, options);

    let mut shuffler = Shuffler::new(options.seed);
    let serial_orders = orders(probes.len(), rounds, &mut shuffler);
    let concurrent_orders = orders(probes.len(), rounds, &mut shuffler);
    let given = &serial_orders[0];
    let [first, second] = [
        fresh_run(&mut driver, given).await?,
        fresh_run(&mut driver, given).await?,
    ];
    // Failures from any fresh run taint the reference of their probe.
    let mut fresh_failed_calls: Vec<Vec<String>> = (first.failed_calls.into_iter())
        .zip(second.failed_calls)
        .map(|(mut a, b)| {
            a.extend(b);
            a
        })
        .collect();
    let fresh = [first.outcomes, second.outcomes];
    // With state shared between instances (kv), an answer depends on the
    // requests before it, so each order gets a fresh reference of its own,
    // run in that order from the same seed.
    let mut reference_orders = vec![given.clone()];
    let mut reference_outcomes = vec![fresh[0].clone()];
    if driver.shares_state() {
        for order in serial_orders.iter().chain(&concurrent_orders) {
            if !reference_orders.contains(order) {
                let run = fresh_run(&mut driver, order).await?;
                for (all, these) in fresh_failed_calls.iter_mut().zip(run.failed_calls) {
                    all.extend(these);
                }
                reference_orders.push(order.clone());
                reference_outcomes.push(run.outcomes);
            }
        }
    }
    let fresh_requests = (reference_orders.len() + 1) * probes.len();
    let fresh_instances = driver.instances_created();
    let serial = reused_run(&mut driver, &serial_orders, Mode::Serial).await?;
    let concurrent = match component.world() {
        World::P3 => Some(reused_run(&mut driver, &concurrent_orders, Mode::Concurrent).await?),
        World::P2 => None,
    };

    let ignore = Ignore::new(&options.ignore_headers, &options.ignore_body);
    let labels = labels(probes);
    let references: Vec<Reference> = reference_outcomes
        .iter()
        .map(|outcomes| Reference {
            comparable: outcomes.iter().map(|o| ignore.comparable(o)).collect(),
            outcomes,
        })
        .collect();
    let reference_of = |orders: &[Vec<usize>]| -> Vec<usize> {
        (orders.iter())
            .map(|order| (reference_orders.iter().position(|o| o == order)).unwrap_or(0))
            .collect()
    };
    let masks: Vec<Mask> = fresh[0]
        .iter()
        .zip(&fresh[1])
        .map(|(a, b)| Mask::learn(&ignore.comparable(a), &ignore.comparable(b)))
        .collect();

    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let mut memory = Vec::new();
    let mut modes = vec![ModeSummary {
        mode: Mode::Fresh,
        requests: fresh_requests,
        instances: fresh_instances,
        most_in_flight: 1,
        skipped: None,
    }];
    for (mode, runs, orders) in [
        (Mode::Serial, Some(&serial), &serial_orders),
        (Mode::Concurrent, concurrent.as_ref(), &concurrent_orders),
    ] {
        let Some(runs) = runs else {
            modes.push(ModeSummary {
                mode,
                requests: 0,
                instances: 0,
                most_in_flight: 0,
                skipped: Some("a p2 handler cannot be called concurrently".to_owned()),
            });
            continue;
        };
        modes.push(ModeSummary {
            mode,
            requests: runs.runs.len(),
            instances: runs.instances,
            most_in_flight: runs.most_in_flight,
            skipped: None,
        });
        let fresh = Fresh {
            references: &references,
            by_round: reference_of(orders),
            masks: &masks,
            failed_calls: &fresh_failed_calls,
        };
        findings.extend(compare_runs(mode, runs, &fresh, &ignore, &labels));
        for (instance, bytes) in &runs.memory {
            if let Some(detail) = memory_growth(bytes, mode) {
                findings.push(Finding {
                    kind: Kind::Memory,
                    mode,
                    request: None,
                    occurrences: 1,
                    runs: 1,
                    first: None,
                    differences: Vec::new(),
                    detail: Some(format!("instance {instance}: {detail}")),
                    fresh_body: None,
                    reused_body: None,
                });
            }
            memory.push(MemorySeries {
                mode,
                instance: *instance,
                bytes: bytes.clone(),
            });
        }
        if runs.runs.len() > 1 && runs.runs.iter().all(|run| run.nth <= 1) {
            notes.push(format!(
                "{mode}: no instance served more than one request (each retired, trapped or timed out), so this mode tested no reuse"
            ));
        }
    }
    findings.sort_by_key(|f| (f.kind, f.mode as u8, f.request.clone()));

    for (index, outcome) in fresh[0].iter().enumerate() {
        let what = match outcome {
            Outcome::Response { .. } => continue,
            Outcome::Trap(message) => format!("traps ({message})"),
            Outcome::Timeout => "gets no response in time".to_owned(),
            Outcome::Failed(message) => format!("fails ({message})"),
        };
        notes.push(format!(
            "{} {what} on a fresh instance too: not a reuse problem, but nothing to compare",
            labels[index]
        ));
    }
    let not_compared = (0..probes.len())
        .filter(|&index| {
            masks[index].covers_everything() || !matches!(fresh[0][index], Outcome::Response { .. })
        })
        .count();
    let nondeterministic = masks
        .iter()
        .enumerate()
        .filter(|(_, mask)| !mask.is_empty())
        .map(|(index, mask)| NonDeterminism {
            request: labels[index].clone(),
            parts: mask.parts(),
        })
        .collect();

    let mut warnings = options.warnings.clone();
    if probes == Probe::defaults() {
        warnings.push(ONLY_DEFAULT_PROBES.to_owned());
    }
    // One line for all of them: a service that is down fails every call.
    let failing: Vec<(&String, &String)> = (labels.iter().zip(&fresh_failed_calls))
        .filter_map(|(label, calls)| Some((label, calls.first()?)))
        .collect();
    if let Some((label, call)) = failing.first() {
        let more = match failing.len() - 1 {
            0 => String::new(),
            1 => " and 1 more request".to_owned(),
            n => format!(" and {n} more requests"),
        };
        warnings.push(format!(
            "an outgoing call failed on a fresh instance for {label}{more} ({call}), so those answers were compared to a failure: make the services the component calls reachable and check again"
        ));
    }

    Ok(Report {
        component: component.path().display().to_string(),
        world: match component.world() {
            World::P2 => "p2",
            World::P3 => "p3",
        },
        seed: options.seed,
        rounds,
        requests: labels,
        modes,
        findings,
        nondeterministic,
        not_compared,
        notes,
        warnings,
        memory,
    })
}

/// The answers of fresh instances to the probes run in one order.
struct Reference<'a> {
    /// Indexed by probe.
    outcomes: &'a [Outcome],
    comparable: Vec<Comparable>,
}

/// What a reused mode is compared with, per probe.
struct Fresh<'a> {
    references: &'a [Reference<'a>],
    /// Per round of the mode: the index of its order's reference.
    by_round: Vec<usize>,
    /// What differs between two fresh instances.
    masks: &'a [Mask],
    failed_calls: &'a [Vec<String>],
}

/// The findings of one reused mode: its runs that differ from the fresh
/// reference, one finding per request and kind.
fn compare_runs(
    mode: Mode,
    runs: &ModeRuns,
    fresh: &Fresh<'_>,
    ignore: &Ignore,
    labels: &[String],
) -> Vec<Finding> {
    let mut found: BTreeMap<(usize, Kind), Finding> = BTreeMap::new();
    let mut counts = vec![0; labels.len()];
    for run in &runs.runs {
        counts[run.probe] += 1;
    }
    for run in &runs.runs {
        let mask = &fresh.masks[run.probe];
        if mask.covers_everything() {
            continue;
        }
        let reference = &fresh.references[fresh.by_round[run.round - 1]];
        let differences = compare::differences(
            &reference.comparable[run.probe],
            &ignore.comparable(&run.outcome),
            mask,
        );
        if differences.is_empty() {
            continue;
        }
        // An answer to a failed call differs for a reason outside the
        // instance; a trap or a timeout is the instance's own doing.
        let failed_call = match (
            run.failed_calls.first(),
            fresh.failed_calls[run.probe].first(),
        ) {
            (Some(call), _) => Some(format!(
                "; after a failed outgoing call on the reused instance: {call}"
            )),
            (None, Some(call)) => Some(format!(
                "; after a failed outgoing call on a fresh instance: {call}"
            )),
            (None, None) => None,
        };
        let kind = match (&run.outcome, &failed_call) {
            (Outcome::Trap(_), _) => Kind::Trap,
            (Outcome::Timeout, _) => Kind::Timeout,
            (Outcome::Response { .. } | Outcome::Failed(_), Some(_)) => Kind::Outgoing,
            (Outcome::Response { .. } | Outcome::Failed(_), None) => Kind::Leak,
        };
        found
            .entry((run.probe, kind))
            .and_modify(|finding| finding.occurrences += 1)
            .or_insert_with(|| Finding {
                kind,
                mode,
                request: Some(labels[run.probe].clone()),
                occurrences: 1,
                runs: counts[run.probe],
                first: Some(Position {
                    round: run.round,
                    on_instance: run.nth,
                    after: run.after.map(|probe| labels[probe].clone()),
                    in_flight: run.in_flight,
                }),
                differences,
                detail: failed_call,
                fresh_body: body_text(&reference.outcomes[run.probe]),
                reused_body: body_text(&run.outcome),
            });
    }
    found.into_values().collect()
}

/// Whether an instance's memory samples look like a leak: still growing in
/// the second half of its requests by at least [`MEMORY_GROWTH_MIN`], when a
/// clean handler has levelled off after its first. Growth in steps (a buffer doubling its capacity) still
/// shows, as every doubling of the request count crosses one.
fn memory_growth(bytes: &[usize], mode: Mode) -> Option<String> {
    if bytes.len() < MEMORY_MIN_SAMPLES {
        return None;
    }
    let (first, middle, last) = (
        bytes[0],
        bytes[(bytes.len() - 1) / 2],
        bytes[bytes.len() - 1],
    );
    if last < middle + MEMORY_GROWTH_MIN {
        return None;
    }
    let unit = match mode {
        Mode::Concurrent => "round",
        Mode::Serial | Mode::Fresh => "request",
    };
    Some(format!(
        "linear memory grew from {} after the first {unit} to {} after {} {unit}s, and by {} KiB in the second half (likely a leak; a clean handler levels off)",
        mib(first),
        mib(last),
        bytes.len(),
        (last - middle) >> 10,
    ))
}

/// A response's whole body as text, for the JSON report.
fn body_text(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Response { body, .. } => Some(String::from_utf8_lossy(body).into_owned()),
        _ => None,
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_that_levels_off_is_fine_and_memory_that_keeps_growing_is_not() {
        let page = 64 << 10;
        let level = [
            17 * page,
            18 * page,
            18 * page,
            18 * page,
            18 * page,
            18 * page,
        ];
        assert_eq!(memory_growth(&level, Mode::Serial), None);
        let one_page_more = [17, 17, 17, 17, 17, 18].map(|pages| pages * page);
        assert_eq!(memory_growth(&one_page_more, Mode::Serial), None);
        let doubling = [17, 18, 19, 19, 21, 21, 21, 21, 25].map(|pages| pages * page);
        assert!(memory_growth(&doubling, Mode::Serial).is_some());
        assert_eq!(
            memory_growth(&[page, 2 * page, 3 * page], Mode::Serial),
            None
        );
    }
}
