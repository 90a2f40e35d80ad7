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
//! the services it calls). Outgoing calls are made for real; an answer that
//! differs after one of them failed is reported as such, not as a leak.

mod compare;
mod driver;
mod probe;
mod report;

pub(crate) use probe::ProbeLine;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use regex_lite::Regex;

pub use compare::Difference;
pub use probe::Probe;
pub use report::{
    Finding, Kind, MemorySeries, Mode, ModeSummary, NonDeterminism, Position, Report,
};

use crate::component::engine::EpochTicker;
use crate::component::{LoadedComponent, World};
use compare::{Comparable, Ignore, Mask};
use driver::{Driver, End, Instance, Outcome};

/// Headers left out of comparisons unless the caller changes the list:
/// clocks, request ids, host-runner's own debug headers, and
/// `content-length` (the body itself is compared, and may be compared with
/// parts ignored, which a length would not know about).
pub const DEFAULT_IGNORED_HEADERS: [&str; 4] =
    ["content-length", "date", "x-request-id", "x-reprise-*"];

/// Why a request never ran: the instance refused it from the start.
const NO_REQUEST_TAKEN: &str =
    "a new instance took no request: it was under backpressure from the start";

/// Why a pass from the default probes proves little.
const ONLY_DEFAULT_PROBES: &str = "only the default probes ran (GET /, GET /?a=1, POST /), which reach little of a real handler: record real traffic with `host-runner serve --record FILE` and check with --requests FILE, or add paths with --path";

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
    /// Environment variables every instance sees.
    pub env: Vec<(String, String)>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            rounds: 3,
            seed: 1,
            request_timeout: Duration::from_secs(10),
            ignore_headers: DEFAULT_IGNORED_HEADERS.map(str::to_owned).to_vec(),
            ignore_body: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// One run of a probe on a reused instance.
struct Run {
    probe: usize,
    round: usize,
    nth: usize,
    in_flight: usize,
    after: Option<usize>,
    outcome: Outcome,
    failed_calls: Vec<String>,
}

/// Each probe once on its own new instance: the outcomes, and the outgoing
/// calls that failed for each.
struct FreshRun {
    outcomes: Vec<Outcome>,
    failed_calls: Vec<Vec<String>>,
}

/// Everything one reused mode did.
#[derive(Default)]
struct ModeRuns {
    runs: Vec<Run>,
    instances: u64,
    most_in_flight: usize,
    memory: Vec<(u64, Vec<usize>)>,
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
    let mut driver = Driver::new(component, probes, &options.env, options.request_timeout);

    let [first, second] = [fresh_run(&mut driver).await?, fresh_run(&mut driver).await?];
    // Failures from either fresh run taint the reference of their probe.
    let fresh_failed_calls: Vec<Vec<String>> = (first.failed_calls.into_iter())
        .zip(second.failed_calls)
        .map(|(mut a, b)| {
            a.extend(b);
            a
        })
        .collect();
    let fresh = [first.outcomes, second.outcomes];
    let fresh_instances = driver.instances_created();

    let mut shuffler = Shuffler::new(options.seed);
    let serial_orders = orders(probes.len(), rounds, &mut shuffler);
    let concurrent_orders = orders(probes.len(), rounds, &mut shuffler);
    let serial = reused_run(&mut driver, &serial_orders, Mode::Serial).await?;
    let concurrent = match component.world() {
        World::P3 => Some(reused_run(&mut driver, &concurrent_orders, Mode::Concurrent).await?),
        World::P2 => None,
    };

    let ignore = Ignore::new(&options.ignore_headers, &options.ignore_body);
    let labels = labels(probes);
    let reference: Vec<Comparable> = fresh[0].iter().map(|o| ignore.comparable(o)).collect();
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
        requests: 2 * probes.len(),
        instances: fresh_instances,
        most_in_flight: 1,
        skipped: None,
    }];
    for (mode, runs) in [
        (Mode::Serial, Some(&serial)),
        (Mode::Concurrent, concurrent.as_ref()),
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
            outcomes: &fresh[0],
            reference: &reference,
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
            Outcome::Trapped(message) => format!("traps ({message})"),
            Outcome::TimedOut => "gets no response in time".to_owned(),
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

    let mut warnings = Vec::new();
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

/// Each probe on its own new instance.
async fn fresh_run(driver: &mut Driver<'_>) -> anyhow::Result<FreshRun> {
    let mut run = FreshRun {
        outcomes: Vec::new(),
        failed_calls: Vec::new(),
    };
    for probe in 0..driver.probe_count() {
        let mut instance = driver.instantiate().await?;
        let mut batch = driver.run_batch(&mut instance, &[probe]).await;
        let (outcome, failed_calls) = match batch.finished.pop() {
            Some(finished) => (finished.outcome, finished.failed_calls),
            None => (Outcome::Failed(NO_REQUEST_TAKEN.to_owned()), Vec::new()),
        };
        run.outcomes.push(outcome);
        run.failed_calls.push(failed_calls);
    }
    Ok(run)
}

/// The probes in `orders`, round after round, on as few instances as the
/// component allows: one request at a time (serial) or a round at a time
/// (concurrent). A retired, trapped or stuck instance is replaced.
async fn reused_run(
    driver: &mut Driver<'_>,
    orders: &[Vec<usize>],
    mode: Mode,
) -> anyhow::Result<ModeRuns> {
    let mut result = ModeRuns::default();
    // The instance in use, and the probe it served last.
    let mut current: Option<(Instance, Option<usize>)> = None;
    for (round, order) in orders.iter().enumerate() {
        let mut pending = order.clone();
        while !pending.is_empty() {
            let (mut instance, mut last) = match current.take() {
                Some(current) => current,
                None => {
                    let instance = driver.instantiate().await?;
                    result.instances += 1;
                    result.memory.push((instance.id(), Vec::new()));
                    (instance, None)
                }
            };
            let take = match mode {
                Mode::Concurrent => pending.len(),
                Mode::Serial | Mode::Fresh => 1,
            };
            let batch: Vec<usize> = pending.drain(..take).collect();
            let was_new = instance.started() == 0;
            let outcome = driver.run_batch(&mut instance, &batch).await;
            for finished in &outcome.finished {
                result.most_in_flight = result.most_in_flight.max(finished.in_flight);
                result.runs.push(Run {
                    probe: finished.probe,
                    round: round + 1,
                    nth: finished.nth,
                    in_flight: finished.in_flight,
                    after: match mode {
                        Mode::Serial => last,
                        Mode::Concurrent | Mode::Fresh => None,
                    },
                    outcome: finished.outcome.clone(),
                    failed_calls: finished.failed_calls.clone(),
                });
                last = Some(finished.probe);
            }
            if was_new && outcome.finished.is_empty() {
                // A brand-new instance that takes nothing would be replaced
                // forever; record the requests as failed instead.
                for probe in outcome.unstarted {
                    result.runs.push(Run {
                        probe,
                        round: round + 1,
                        nth: 0,
                        in_flight: 0,
                        after: None,
                        outcome: Outcome::Failed(NO_REQUEST_TAKEN.to_owned()),
                        failed_calls: Vec::new(),
                    });
                }
            } else {
                pending.splice(0..0, outcome.unstarted);
            }
            if outcome.end == End::Open {
                if let Some((_, samples)) = result.memory.last_mut() {
                    samples.push(instance.memory_bytes());
                }
                current = Some((instance, last));
            }
        }
    }
    Ok(result)
}

/// What the reused modes are compared with, per probe.
struct Fresh<'a> {
    outcomes: &'a [Outcome],
    reference: &'a [Comparable],
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
        let differences = compare::differences(
            &fresh.reference[run.probe],
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
            (Outcome::Trapped(_), _) => Kind::Trap,
            (Outcome::TimedOut, _) => Kind::Timeout,
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
                fresh_body: body_text(&fresh.outcomes[run.probe]),
                reused_body: body_text(&run.outcome),
            });
    }
    found.into_values().collect()
}

/// Whether an instance's memory samples look like a leak: still growing in
/// the second half of its requests, when a clean handler has levelled off
/// after its first. Growth in steps (a buffer doubling its capacity) still
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
    if last <= middle {
        return None;
    }
    let unit = match mode {
        Mode::Concurrent => "round",
        Mode::Serial | Mode::Fresh => "request",
    };
    Some(format!(
        "linear memory grew from {} after the first {unit} to {} after {} {unit}s, and still grew in the second half (likely a leak; a clean handler levels off)",
        mib(first),
        mib(last),
        bytes.len(),
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

/// `METHOD /path` per probe, numbered when two probes look the same.
fn labels(probes: &[Probe]) -> Vec<String> {
    let plain: Vec<String> = probes.iter().map(Probe::to_string).collect();
    plain
        .iter()
        .enumerate()
        .map(
            |(index, label)| match plain.iter().filter(|l| *l == label).count() {
                1 => label.clone(),
                _ => format!("{label} #{}", index + 1),
            },
        )
        .collect()
}

/// The probe orders of each round: as given first, then shuffled.
fn orders(count: usize, rounds: usize, shuffler: &mut Shuffler) -> Vec<Vec<usize>> {
    (0..rounds)
        .map(|round| {
            let mut order: Vec<usize> = (0..count).collect();
            if round > 0 {
                shuffler.shuffle(&mut order);
            }
            order
        })
        .collect()
}

/// SplitMix64: a tiny, well-mixed generator, enough for reproducible
/// shuffles without a dependency.
struct Shuffler(u64);

impl Shuffler {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_orders_and_round_one_keeps_the_given_order() {
        let a = orders(5, 3, &mut Shuffler::new(7));
        let b = orders(5, 3, &mut Shuffler::new(7));
        assert_eq!(a, b);
        assert_eq!(a[0], vec![0, 1, 2, 3, 4]);
        for order in &a {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        }
        assert_ne!(orders(5, 3, &mut Shuffler::new(8)), a);
    }

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
        let doubling = [17, 18, 19, 19, 21, 21, 21, 21, 25].map(|pages| pages * page);
        assert!(memory_growth(&doubling, Mode::Serial).is_some());
        assert_eq!(
            memory_growth(&[page, 2 * page, 3 * page], Mode::Serial),
            None
        );
    }
}
