//! Running the probes: each on fresh instances (the reference), and round
//! after round on reused ones. Every run starts from the same shared state
//! (the key-value store's seed), so data meant to outlive instances is
//! never taken for a leak. This module does not compare outcomes.

use super::driver::{Driver, End, Instance, Outcome};
use super::report::Mode;

/// Why a request never ran: the instance refused it from the start.
pub(super) const NO_REQUEST_TAKEN: &str =
    "a new instance took no request: it was under backpressure from the start";

/// One run of a probe on a reused instance.
pub(super) struct Run {
    pub(super) probe: usize,
    pub(super) round: usize,
    pub(super) nth: usize,
    pub(super) in_flight: usize,
    pub(super) after: Option<usize>,
    pub(super) outcome: Outcome,
    pub(super) failed_calls: Vec<String>,
}

/// Each probe once on its own new instance: the outcomes, and the outgoing
/// calls that failed for each, indexed by probe.
pub(super) struct FreshRun {
    pub(super) outcomes: Vec<Outcome>,
    pub(super) failed_calls: Vec<Vec<String>>,
}

/// Everything one reused mode did.
#[derive(Default)]
pub(super) struct ModeRuns {
    pub(super) runs: Vec<Run>,
    pub(super) instances: u64,
    pub(super) most_in_flight: usize,
    pub(super) memory: Vec<(u64, Vec<usize>)>,
}

/// Each probe on its own new instance, in `order`, from the shared state's
/// seed; the outcomes are indexed by probe.
pub(super) async fn fresh_run(
    driver: &mut Driver<'_>,
    order: &[usize],
) -> anyhow::Result<FreshRun> {
    driver.reset_shared_state();
    let count = driver.probe_count();
    let mut run = FreshRun {
        outcomes: vec![Outcome::Failed(NO_REQUEST_TAKEN.to_owned()); count],
        failed_calls: vec![Vec::new(); count],
    };
    for &probe in order {
        let mut instance = driver.instantiate().await?;
        let mut batch = driver.run_batch(&mut instance, &[probe]).await;
        if let Some(finished) = batch.finished.pop() {
            run.outcomes[probe] = finished.outcome;
            run.failed_calls[probe] = finished.failed_calls;
        }
    }
    Ok(run)
}

/// The probes in `orders`, round after round, on as few instances as the
/// component allows: one request at a time (serial) or a round at a time
/// (concurrent). A retired, trapped or stuck instance is replaced.
pub(super) async fn reused_run(
    driver: &mut Driver<'_>,
    orders: &[Vec<usize>],
    mode: Mode,
) -> anyhow::Result<ModeRuns> {
    let mut result = ModeRuns::default();
    // The instance in use, and the probe it served last.
    let mut current: Option<(Instance, Option<usize>)> = None;
    for (round, order) in orders.iter().enumerate() {
        // The instance in use keeps its own state: a cache of shared data
        // that the reset makes stale shows as a difference.
        driver.reset_shared_state();
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
