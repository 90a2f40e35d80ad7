//! Per-serving-thread gauges for `/metrics`: how many connections each
//! thread holds, how many requests it has in flight, and how many it served.
//!
//! Requests never move between threads (a connection, its requests and the
//! instances serving them stay on the thread that accepted it), so these
//! show at a glance whether the cores share the work. They are plain
//! atomics, one set per thread; this module does not decide which thread a
//! connection goes to (the listeners module does).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::text::header;

/// The gauges of every serving thread, indexed by thread number.
pub(crate) struct ThreadGauges {
    threads: Box<[Gauges]>,
}

#[derive(Default)]
struct Gauges {
    connections_open: AtomicI64,
    requests_in_flight: AtomicI64,
    requests: AtomicU64,
}

impl ThreadGauges {
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            threads: (0..threads).map(|_| Gauges::default()).collect(),
        }
    }

    /// Thread `thread` accepted a connection; it counts as open until the
    /// returned guard is dropped.
    pub(crate) fn connection_opened(self: &Arc<Self>, thread: usize) -> OpenConnection {
        if let Some(gauges) = self.threads.get(thread) {
            gauges.connections_open.fetch_add(1, Ordering::Relaxed);
        }
        OpenConnection {
            gauges: self.clone(),
            thread,
        }
    }

    /// A request arrived on thread `thread`.
    pub(crate) fn request_started(&self, thread: usize) {
        if let Some(gauges) = self.threads.get(thread) {
            gauges.requests_in_flight.fetch_add(1, Ordering::Relaxed);
            gauges.requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request on thread `thread` is over.
    pub(crate) fn request_done(&self, thread: usize) {
        if let Some(gauges) = self.threads.get(thread) {
            gauges.requests_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn render(&self, out: &mut String) {
        let metrics: [Series; 3] = [
            (
                "reprise_thread_connections_open",
                "gauge",
                "Connections open on each serving thread.",
                |g| g.connections_open.load(Ordering::Relaxed),
            ),
            (
                "reprise_thread_requests_in_flight",
                "gauge",
                "Requests in flight on each serving thread.",
                |g| g.requests_in_flight.load(Ordering::Relaxed),
            ),
            (
                "reprise_thread_requests_total",
                "counter",
                "Requests each serving thread received.",
                |g| g.requests.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, kind, help, value) in metrics {
            header(out, name, kind, help);
            for (thread, gauges) in self.threads.iter().enumerate() {
                let _ = writeln!(out, "{name}{{thread=\"{thread}\"}} {}", value(gauges));
            }
        }
    }
}

/// A per-thread series: name, type, help, and how to read it from a thread.
type Series = (&'static str, &'static str, &'static str, fn(&Gauges) -> i64);

/// A connection counted in `reprise_thread_connections_open` until dropped.
pub(crate) struct OpenConnection {
    gauges: Arc<ThreadGauges>,
    thread: usize,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(gauges) = self.gauges.threads.get(self.thread) {
            gauges.connections_open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_has_its_own_line_and_guards_close_connections() {
        let gauges = Arc::new(ThreadGauges::new(2));
        let open = gauges.connection_opened(1);
        let _also_open = gauges.connection_opened(1);
        gauges.request_started(1);
        gauges.request_started(0);
        gauges.request_done(0);
        drop(open);
        let mut text = String::new();
        gauges.render(&mut text);
        for line in [
            "reprise_thread_connections_open{thread=\"0\"} 0",
            "reprise_thread_connections_open{thread=\"1\"} 1",
            "reprise_thread_requests_in_flight{thread=\"0\"} 0",
            "reprise_thread_requests_in_flight{thread=\"1\"} 1",
            "reprise_thread_requests_total{thread=\"0\"} 1",
            "reprise_thread_requests_total{thread=\"1\"} 1",
            "# TYPE reprise_thread_requests_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
