//! Counters, gauges and histograms about instances and requests, rendered
//! in Prometheus text format. `endpoint` serves them at `/metrics`
//! (`--metrics-addr`); `threads` holds the per-serving-thread gauges;
//! `text` writes the format both use. The counters know neither the
//! endpoint nor HTTP.
//!
//! Everything is a plain atomic updated where the event happens (the worker
//! module for instances, the server module for requests), so recording costs
//! a few relaxed increments and nothing is aggregated in the background.
//! Every label value is always exposed, zero or not, so a scraper can
//! compare exact counts. This module does not decide what an outcome or a
//! retire reason is; its callers do.

pub(crate) mod endpoint;
mod text;
pub(crate) mod threads;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use text::header;
use threads::ThreadGauges;

/// Why an instance was dropped (`reprise_instances_retired_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetireReason {
    /// It accepted `max-instance-reuse-count` requests.
    ReuseLimit,
    /// It stayed idle for `idle-instance-timeout`.
    Idle,
    /// Guest code trapped (or the worker failed).
    Trap,
    /// A request on it ran past the request timeout.
    Timeout,
    /// The guest stopped taking requests itself: its reuse policy, held
    /// backpressure or `retire()`.
    Guest,
    /// Guest work outlived its requests past the grace (post-response work,
    /// or a request whose client left and that never finished).
    Lingering,
}

impl RetireReason {
    const ALL: [RetireReason; 6] = [
        RetireReason::ReuseLimit,
        RetireReason::Idle,
        RetireReason::Trap,
        RetireReason::Timeout,
        RetireReason::Guest,
        RetireReason::Lingering,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            RetireReason::ReuseLimit => "reuse_limit",
            RetireReason::Idle => "idle",
            RetireReason::Trap => "trap",
            RetireReason::Timeout => "timeout",
            RetireReason::Guest => "guest",
            RetireReason::Lingering => "lingering",
        }
    }
}

/// How a request ended (`reprise_requests_total{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The guest produced a response, whatever its status.
    Ok,
    /// 504: past the request timeout.
    Timeout,
    /// 500: the instance trapped.
    Trap,
    /// 503: `--max-concurrent-requests` were in flight.
    Overload,
    /// 503: no instance could be created (failure or `--max-instances`).
    Instantiation,
    /// 413: the body was over `--max-request-body-size`.
    TooLarge,
    /// 408: the body stopped arriving for `--request-body-idle-timeout`.
    BodyIdle,
    /// 500: any other failure to produce a response.
    Error,
}

impl Outcome {
    const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Timeout,
        Outcome::Trap,
        Outcome::Overload,
        Outcome::Instantiation,
        Outcome::TooLarge,
        Outcome::BodyIdle,
        Outcome::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Trap => "trap",
            Outcome::Overload => "overload",
            Outcome::Instantiation => "instantiation",
            Outcome::TooLarge => "too_large",
            Outcome::BodyIdle => "body_idle",
            Outcome::Error => "error",
        }
    }
}

/// Upper bounds of the latency buckets, in seconds.
const REQUEST_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const INSTANTIATION_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
const REQUESTS_PER_INSTANCE: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Every metric host-runner exposes.
pub(crate) struct Metrics {
    instances_created: AtomicU64,
    instances_live: AtomicI64,
    instances_retired: [AtomicU64; RetireReason::ALL.len()],
    requests: [AtomicU64; Outcome::ALL.len()],
    requests_in_flight: AtomicI64,
    responses_cut_off: AtomicU64,
    /// Requests `--record` could not write (a stalled or full sink).
    record_dropped: AtomicU64,
    instance_requests: Histogram,
    request_duration: Histogram,
    instantiation_duration: Histogram,
    /// Connections and requests per serving thread.
    pub(crate) threads: Arc<ThreadGauges>,
    /// Connections opened for guests' outgoing HTTP (the pool counts).
    pub(crate) outbound_connections_opened: Arc<AtomicU64>,
    /// Bytes of linear memory every live instance holds together (the
    /// `--max-total-memory` budget counts them).
    pub(crate) linear_memory: Arc<AtomicU64>,
    /// Memory growths the `--max-total-memory` budget refused.
    pub(crate) memory_growths_refused: Arc<AtomicU64>,
}

impl Metrics {
    /// Metrics for a server with `threads` serving threads.
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            instances_created: AtomicU64::new(0),
            instances_live: AtomicI64::new(0),
            instances_retired: Default::default(),
            requests: Default::default(),
            requests_in_flight: AtomicI64::new(0),
            responses_cut_off: AtomicU64::new(0),
            record_dropped: AtomicU64::new(0),
            instance_requests: Histogram::new(REQUESTS_PER_INSTANCE),
            request_duration: Histogram::new(REQUEST_SECONDS),
            instantiation_duration: Histogram::new(INSTANTIATION_SECONDS),
            threads: Arc::new(ThreadGauges::new(threads)),
            outbound_connections_opened: Arc::default(),
            linear_memory: Arc::default(),
            memory_growths_refused: Arc::default(),
        }
    }

    /// An instance was created, taking `took` to instantiate.
    pub(crate) fn instance_created(&self, took: Duration) {
        self.instances_created.fetch_add(1, Ordering::Relaxed);
        self.instances_live.fetch_add(1, Ordering::Relaxed);
        self.instantiation_duration.observe(took.as_secs_f64());
    }

    /// Instantiation was attempted and failed after `took`.
    pub(crate) fn instantiation_failed(&self, took: Duration) {
        self.instantiation_duration.observe(took.as_secs_f64());
    }

    /// An instance was dropped after accepting `requests` requests.
    pub(crate) fn instance_retired(&self, reason: RetireReason, requests: usize) {
        self.instances_live.fetch_sub(1, Ordering::Relaxed);
        self.instances_retired[reason as usize].fetch_add(1, Ordering::Relaxed);
        self.instance_requests.observe(requests as f64);
    }

    /// An instance was dropped while the server was shutting down: it is no
    /// longer live, but its end says nothing about the guest.
    pub(crate) fn instance_discarded(&self) {
        self.instances_live.fetch_sub(1, Ordering::Relaxed);
    }

    /// A request arrived on serving thread `thread`; see
    /// [`Metrics::request_done`].
    pub(crate) fn request_started(&self, thread: usize) {
        self.requests_in_flight.fetch_add(1, Ordering::Relaxed);
        self.threads.request_started(thread);
    }

    /// A request is over: its response was sent or cut off (or the client
    /// went away), `took` after it arrived; `outcome` if it got one.
    pub(crate) fn request_done(&self, thread: usize, took: Duration, outcome: Option<Outcome>) {
        self.requests_in_flight.fetch_sub(1, Ordering::Relaxed);
        self.threads.request_done(thread);
        if let Some(outcome) = outcome {
            self.requests[outcome as usize].fetch_add(1, Ordering::Relaxed);
            self.request_duration.observe(took.as_secs_f64());
        }
    }

    /// A response's head went out and its body was then cut off: the
    /// connection was closed mid-body.
    pub(crate) fn response_cut_off(&self) {
        self.responses_cut_off.fetch_add(1, Ordering::Relaxed);
    }

    /// `--record` left a request out: its queue was full or the write
    /// failed.
    pub(crate) fn record_dropped(&self) {
        self.record_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        header(
            &mut out,
            "reprise_instances_created_total",
            "counter",
            "Component instances created.",
        );
        let _ = writeln!(
            out,
            "reprise_instances_created_total {}",
            load(&self.instances_created)
        );
        header(
            &mut out,
            "reprise_instances_live",
            "gauge",
            "Component instances alive now.",
        );
        let _ = writeln!(
            out,
            "reprise_instances_live {}",
            self.instances_live.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "reprise_instances_retired_total",
            "counter",
            "Component instances dropped, by reason.",
        );
        for reason in RetireReason::ALL {
            let _ = writeln!(
                out,
                "reprise_instances_retired_total{{reason=\"{}\"}} {}",
                reason.label(),
                load(&self.instances_retired[reason as usize])
            );
        }
        header(
            &mut out,
            "reprise_requests_total",
            "counter",
            "Requests answered, by outcome.",
        );
        for outcome in Outcome::ALL {
            let _ = writeln!(
                out,
                "reprise_requests_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                load(&self.requests[outcome as usize])
            );
        }
        header(
            &mut out,
            "reprise_requests_in_flight",
            "gauge",
            "Requests arrived and not yet fully answered.",
        );
        let _ = writeln!(
            out,
            "reprise_requests_in_flight {}",
            self.requests_in_flight.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "reprise_responses_cut_off_total",
            "counter",
            "Responses whose body failed after their head was sent; the connection was closed mid-body.",
        );
        let _ = writeln!(
            out,
            "reprise_responses_cut_off_total {}",
            load(&self.responses_cut_off)
        );
        header(
            &mut out,
            "reprise_record_dropped_total",
            "counter",
            "Requests --record left out of its file because the file did not keep up or a write failed.",
        );
        let _ = writeln!(
            out,
            "reprise_record_dropped_total {}",
            load(&self.record_dropped)
        );
        header(
            &mut out,
            "reprise_outbound_connections_opened_total",
            "counter",
            "Plain-HTTP connections opened for guests' outgoing requests (kept alive and reused, see --outbound-idle-timeout).",
        );
        let _ = writeln!(
            out,
            "reprise_outbound_connections_opened_total {}",
            load(&self.outbound_connections_opened)
        );
        header(
            &mut out,
            "reprise_linear_memory_bytes",
            "gauge",
            "Linear memory all live instances hold together, bounded by --max-total-memory.",
        );
        let _ = writeln!(
            out,
            "reprise_linear_memory_bytes {}",
            load(&self.linear_memory)
        );
        header(
            &mut out,
            "reprise_memory_growths_refused_total",
            "counter",
            "Linear memory growths (instantiations included) refused because all instances together would pass --max-total-memory.",
        );
        let _ = writeln!(
            out,
            "reprise_memory_growths_refused_total {}",
            load(&self.memory_growths_refused)
        );
        self.instance_requests.render(
            &mut out,
            "reprise_instance_requests",
            "Requests each dropped instance accepted.",
        );
        self.request_duration.render(
            &mut out,
            "reprise_request_duration_seconds",
            "Time from a request's arrival to the end of its response.",
        );
        self.instantiation_duration.render(
            &mut out,
            "reprise_instantiation_duration_seconds",
            "Time to instantiate the component.",
        );
        self.threads.render(&mut out);
        out
    }
}

/// A Prometheus histogram with fixed buckets.
struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // No atomic f64 add in std; the retry only spins under contention.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        let mut cumulative = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match self.bounds.get(index) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lists_every_label_and_cumulative_buckets() {
        let metrics = Metrics::new(1);
        metrics.instance_created(Duration::from_millis(3));
        metrics.request_started(0);
        metrics.request_done(0, Duration::from_millis(20), Some(Outcome::Ok));
        metrics.instance_retired(RetireReason::Idle, 1);
        let text = metrics.render();
        for line in [
            "reprise_instances_created_total 1",
            "reprise_instances_live 0",
            "reprise_instances_retired_total{reason=\"idle\"} 1",
            "reprise_instances_retired_total{reason=\"guest\"} 0",
            "reprise_requests_total{outcome=\"ok\"} 1",
            "reprise_requests_total{outcome=\"too_large\"} 0",
            "reprise_requests_total{outcome=\"body_idle\"} 0",
            "reprise_requests_in_flight 0",
            "reprise_responses_cut_off_total 0",
            "reprise_linear_memory_bytes 0",
            "reprise_memory_growths_refused_total 0",
            "reprise_instance_requests_bucket{le=\"1\"} 1",
            "reprise_instance_requests_bucket{le=\"+Inf\"} 1",
            "reprise_instance_requests_count 1",
            "reprise_request_duration_seconds_bucket{le=\"0.01\"} 0",
            "reprise_request_duration_seconds_bucket{le=\"0.025\"} 1",
            "reprise_request_duration_seconds_count 1",
            "reprise_instantiation_duration_seconds_bucket{le=\"0.005\"} 1",
            "# TYPE reprise_instance_requests histogram",
            "reprise_thread_requests_total{thread=\"0\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
