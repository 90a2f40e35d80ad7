//! Runs probes on component instances, without HTTP: each instance is a
//! store and instance from the host module, and requests go straight to the
//! guest's export through `wasmtime_wasi_http`'s `Prepared`, the same call
//! path `ProxyHandler` uses.
//!
//! A batch of requests runs inside one `run_concurrent` event loop on one
//! instance. Calls start one at a time: the next starts once the guest has
//! run as far as it can (every task blocked, as `ProxyHandler` does before
//! accepting another request) and only if the instance is not under
//! backpressure. So a batch of several requests really interleaves on one
//! instance, a guest that asks for serial reuse gets it, and a guest that
//! retires its instance is left alone: the rest of the batch is handed back
//! for a new instance.
//!
//! A watchdog outside the event loop ends a batch that makes no progress for
//! the request timeout, even when guest code loops without yielding (the
//! epoch ticker makes it yield). This module does not decide which requests
//! to run where (the check module) and does not compare responses.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::channel::oneshot;
use futures::stream::{FuturesUnordered, StreamExt as _};
use tokio::time::Instant;
use wasmtime::component::{Accessor, Func};
use wasmtime::{AsContextMut as _, Store, Trap};
use wasmtime_wasi_http::handler::{Prepared, Proxy};
use wasmtime_wasi_http::{WasiBody, WasiHttpView as _};

use super::CheckOptions;
use super::body::{LongBody, read_response};
use super::probe::{Outgoing, Probe};
use crate::component::LoadedComponent;
use crate::errors::one_line;
use crate::exchange::{Exchanges, Replay};
use crate::host::guest_output::HostStream;
use crate::host::{Host, HostServices};
use crate::instance::config::EffectiveConfig;
use crate::instance::store;
use crate::units::HumanDuration;

/// What became of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The guest answered (body read to the end).
    Response {
        status: u16,
        /// Lower-case names, in the order the guest sent them.
        headers: Vec<(String, String)>,
        /// The body, or its first `KEPT_BODY_BYTES` when it is longer…
        body: Vec<u8>,
        /// …and then the whole of it summed up.
        long: Option<LongBody>,
    },
    /// The instance trapped while the request was in flight; `message` says
    /// whether this request's own call trapped.
    Trap(String),
    /// No response (or no end of body) within the request timeout.
    Timeout,
    /// The guest returned an error, or never produced a response.
    Failed(String),
}

impl Outcome {
    fn from_error(error: &wasmtime::Error) -> Self {
        // The trap's kind is the useful part; its guest backtrace is long.
        // A panic's message is added from the guest's stderr (`run_batch`).
        match error.downcast_ref::<Trap>() {
            Some(trap) => Outcome::Trap(trap.to_string()),
            None => Outcome::Failed(one_line(error)),
        }
    }
}

/// One component instance under test.
pub(crate) struct Instance {
    id: u64,
    store: Store<Host>,
    proxy: Proxy,
    /// Requests started on it so far.
    started: usize,
}

impl Instance {
    /// Instances are numbered 1, 2, 3… over the whole check.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Requests started on this instance so far.
    pub(crate) fn started(&self) -> usize {
        self.started
    }

    /// Current size of the instance's linear memory, in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.store.data().linear_memory_bytes()
    }

    /// The guest export every request calls; the runtime tracks backpressure
    /// per instance, and this is how to name the instance when asking.
    fn handler(&self) -> Func {
        match &self.proxy {
            Proxy::P3(guest) => *guest.wasi_http_handler().func_handle().func(),
            Proxy::P2(guest) => *guest.wasi_http_incoming_handler().func_handle().func(),
        }
    }
}

/// How a batch ended, which says whether the instance can take more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Every request finished; the instance takes more.
    Open,
    /// The instance is under backpressure with nothing running: it retired
    /// (reuse policy, `retire()`), so the rest goes to a new instance.
    Retired,
    /// The instance trapped, or made no progress for the request timeout;
    /// it must not be used again.
    Dead,
}

/// One request of a batch that ran.
pub(crate) struct Finished {
    /// Index of the probe.
    pub(crate) probe: usize,
    /// The request's position among those started on its instance, from 1.
    pub(crate) nth: usize,
    /// Most requests in flight on the instance while this one was.
    pub(crate) in_flight: usize,
    pub(crate) outcome: Outcome,
    /// Outgoing calls that failed on the instance during the batch (this
    /// request's own, when it ran alone).
    pub(crate) failed_calls: Vec<String>,
}

/// The result of [`Driver::run_batch`].
pub(crate) struct Batch {
    pub(crate) finished: Vec<Finished>,
    /// Probes never started because the instance stopped taking requests,
    /// in their original order.
    pub(crate) unstarted: Vec<usize>,
    pub(crate) end: End,
}

/// Where a batch's requests stand; kept outside the event loop so that a
/// batch abandoned by the watchdog still says what happened.
#[derive(Default)]
struct Progress {
    /// Per batch slot: the request's position on the instance once started.
    started: Vec<Option<usize>>,
    outcomes: Vec<Option<Outcome>>,
    /// Per batch slot: most requests in flight while it ran.
    in_flight: Vec<usize>,
    running: usize,
    /// When a request last started or finished.
    last_change: Option<Instant>,
}

impl Progress {
    fn start(&mut self, slot: usize, nth: usize) {
        self.started[slot] = Some(nth);
        self.running += 1;
        self.last_change = Some(Instant::now());
        let running = self.running;
        for (slot, outcome) in self.outcomes.iter().enumerate() {
            if self.started[slot].is_some() && outcome.is_none() {
                self.in_flight[slot] = self.in_flight[slot].max(running);
            }
        }
    }

    fn finish(&mut self, slot: usize, outcome: Outcome) {
        self.outcomes[slot] = Some(outcome);
        self.running -= 1;
        self.last_change = Some(Instant::now());
    }
}

/// Why the event loop of a batch stopped.
enum Stop {
    Done,
    Retired,
    Trap,
}

/// Creates instances of one component and runs batches of probes on them.
pub(crate) struct Driver<'a> {
    component: &'a LoadedComponent,
    probes: &'a [Probe],
    config: EffectiveConfig,
    services: Arc<HostServices>,
    request_timeout: Duration,
    /// Answers outgoing calls, when they are replayed.
    replay: Option<Arc<Replay>>,
    next_id: u64,
}

impl<'a> Driver<'a> {
    /// A driver whose instances see what `options.guest` gives them, as
    /// `serve` with the same flags would, and whose outgoing calls go out or
    /// are answered from a recording as `options.outgoing` says.
    pub(crate) fn new(
        component: &'a LoadedComponent,
        probes: &'a [Probe],
        options: &CheckOptions,
    ) -> Self {
        let serve_options = crate::ServeOptions {
            guest: options.guest.clone(),
            ..crate::ServeOptions::default()
        };
        let config = EffectiveConfig::resolve(&serve_options, component.world());
        let services = HostServices::new(&config.wasi, config.max_memory_size);
        let replay = match &options.outgoing {
            Outgoing::Live => None,
            Outgoing::Replay(calls) => {
                let replay = Arc::new(Replay::new(calls.0.clone()));
                services.set_exchanges(Exchanges::Replay(replay.clone()));
                Some(replay)
            }
        };
        Self {
            component,
            probes,
            services,
            config,
            request_timeout: options.request_timeout,
            replay,
            next_id: 1,
        }
    }

    /// Whether instances share state that outlives them (`-Skeyvalue`), so
    /// that the order of requests matters even on fresh instances.
    pub(crate) fn shares_state(&self) -> bool {
        self.config.wasi.keyvalue
    }

    /// Puts what instances share (the key-value store) back to its seed,
    /// under every instance alive, and replays outgoing calls from the
    /// start: each arm starts from the same data and the same answers.
    pub(crate) fn reset_shared_state(&self) {
        self.services.reset_keyvalue(&self.config.wasi);
        if let Some(replay) = &self.replay {
            replay.reset();
        }
    }

    /// How many probes there are.
    pub(crate) fn probe_count(&self) -> usize {
        self.probes.len()
    }

    /// Instances created so far.
    pub(crate) fn instances_created(&self) -> u64 {
        self.next_id - 1
    }

    /// A new instance.
    pub(crate) async fn instantiate(&mut self) -> anyhow::Result<Instance> {
        let id = self.next_id;
        self.next_id += 1;
        // Guest stdout goes to the host's stderr (stdout is the report's);
        // the tail of its stderr is kept so that a trap can be reported with
        // the guest's panic message, and failed outgoing calls so that they
        // are not taken for leaks.
        let kept = store::Kept {
            stderr_tail: Some(Arc::default()),
            failed_calls: Some(Arc::default()),
        };
        let mut store = store::store(
            self.component.engine(),
            id,
            &self.config,
            &self.services,
            HostStream::Stderr,
            kept,
        );
        let instantiation = self.component.pre().instantiate_async(&mut store);
        let proxy = match tokio::time::timeout(self.request_timeout, instantiation).await {
            Ok(Ok(proxy)) => proxy,
            Ok(Err(error)) => anyhow::bail!(
                "{}: instance {id} could not be created: {}",
                self.component.path().display(),
                one_line(&error)
            ),
            Err(_) => anyhow::bail!(
                "{}: instantiating took longer than the request timeout ({})",
                self.component.path().display(),
                HumanDuration(self.request_timeout)
            ),
        };
        Ok(Instance {
            id,
            store,
            proxy,
            started: 0,
        })
    }

    /// Runs the probes in `batch` (indices, in start order) on `instance`,
    /// starting each as soon as the instance takes it; see the module docs.
    pub(crate) async fn run_batch(&self, instance: &mut Instance, batch: &[usize]) -> Batch {
        let progress = RefCell::new(Progress {
            started: vec![None; batch.len()],
            outcomes: vec![None; batch.len()],
            in_flight: vec![0; batch.len()],
            ..Progress::default()
        });
        // Set from outside the event loop when it has nothing left to run:
        // every guest task is blocked, so the next call may start.
        let settled = Cell::new(true);
        let handler = instance.handler();
        let first_nth = instance.started;
        let probes = self.probes;
        let Instance { store, proxy, .. } = &mut *instance;
        let proxy = &*proxy;

        let stopped = {
            let event_loop = store.run_concurrent(async |accessor: &Accessor<Host>| {
                let mut running = FuturesUnordered::new();
                let mut next = 0;
                poll_fn(|cx| {
                    loop {
                        if let Poll::Ready(Some((slot, outcome))) = running.poll_next_unpin(cx) {
                            let own_trap = matches!(outcome, Outcome::Trap(_));
                            progress.borrow_mut().finish(slot, outcome);
                            if own_trap {
                                return Poll::Ready(Stop::Trap);
                            }
                            continue;
                        }
                        if next == batch.len() {
                            return match running.is_empty() {
                                true => Poll::Ready(Stop::Done),
                                false => Poll::Pending,
                            };
                        }
                        if !settled.get() {
                            return Poll::Pending;
                        }
                        if accessor
                            .poll_ready_for_concurrent_call(handler, cx)
                            .is_ready()
                        {
                            let slot = next;
                            next += 1;
                            settled.set(false);
                            progress.borrow_mut().start(slot, first_nth + slot + 1);
                            let request = probes[batch[slot]].to_request();
                            running.push(serve(accessor, proxy, request, slot));
                            continue;
                        }
                        if running.is_empty() && accessor.poll_no_interesting_tasks(cx).is_ready() {
                            return Poll::Ready(Stop::Retired);
                        }
                        return Poll::Pending;
                    }
                })
                .await
            });

            let mut event_loop = pin!(event_loop);
            let mut watchdog = pin!(tokio::time::sleep(self.request_timeout));
            poll_fn(|cx| {
                let mut poll = event_loop.as_mut().poll(cx);
                // Pending means every task is blocked (or guest code yielded at
                // an epoch tick): let the loop start the next call, once.
                if poll.is_pending() && !settled.replace(true) {
                    poll = event_loop.as_mut().poll(cx);
                }
                if poll.is_pending() {
                    let since = progress.borrow().last_change.unwrap_or_else(Instant::now);
                    let deadline = since + self.request_timeout;
                    if watchdog.deadline() != deadline {
                        watchdog.as_mut().reset(deadline);
                    }
                    if watchdog.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                }
                poll.map(Some)
            })
            .await
        };

        let progress = progress.into_inner();
        // A trap only says `unreachable`; the panic the guest printed just
        // before it says why, so it goes into the trapping request's outcome.
        let panic = instance.store.data().take_panic_message();
        let failed_calls = instance.store.data().take_failed_calls();
        let with_panic = |outcome: Outcome| match (outcome, &panic) {
            (Outcome::Trap(trap), Some(panic)) => Outcome::Trap(format!("panic {panic} ({trap})")),
            (outcome, _) => outcome,
        };
        let (end, unfinished) = match stopped {
            Some(Ok(Stop::Done)) => (End::Open, None),
            Some(Ok(Stop::Retired)) => (End::Retired, None),
            Some(Ok(Stop::Trap)) => (
                End::Dead,
                Some(Outcome::Trap(
                    "the instance trapped in another request while this one was in flight"
                        .to_owned(),
                )),
            ),
            Some(Err(error)) => (End::Dead, Some(with_panic(Outcome::from_error(&error)))),
            None => (End::Dead, Some(Outcome::Timeout)),
        };
        let mut batch_result = Batch {
            finished: Vec::new(),
            unstarted: Vec::new(),
            end,
        };
        for (slot, &probe) in batch.iter().enumerate() {
            let Some(nth) = progress.started[slot] else {
                batch_result.unstarted.push(probe);
                continue;
            };
            let outcome = match (&progress.outcomes[slot], &unfinished) {
                (Some(outcome), _) => with_panic(outcome.clone()),
                (None, Some(outcome)) => outcome.clone(),
                (None, None) => Outcome::Failed("the request was abandoned".to_owned()),
            };
            batch_result.finished.push(Finished {
                probe,
                nth,
                in_flight: progress.in_flight[slot],
                outcome,
                failed_calls: failed_calls.clone(),
            });
        }
        instance.started = first_nth + progress.started.iter().flatten().count();
        batch_result
    }
}

/// Calls the guest with one request and reads the whole response.
async fn serve(
    accessor: &Accessor<Host>,
    proxy: &Proxy,
    request: hyper::Request<WasiBody>,
    slot: usize,
) -> (usize, Outcome) {
    let (tx, rx) = oneshot::channel();
    let prepared = accessor
        .with(|mut access| Prepared::new(access.as_context_mut(), proxy, request, Host::http, tx));
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return (slot, Outcome::from_error(&error)),
    };
    // The response comes through `rx` while the call may still be running
    // (a p2 handler writes its body before it returns), so both are polled
    // together. Expiry is the batch watchdog's job, hence `pending`.
    let call = prepared.run(accessor, std::future::pending());
    let response = async {
        match rx.await {
            Ok(Ok(response)) => read_response(response).await,
            Ok(Err(error)) => Outcome::from_error(&error),
            Err(_) => Outcome::Failed("the guest produced no response".to_owned()),
        }
    };
    let (called, outcome) = futures::join!(call, response);
    match called {
        Err(error) if matches!(outcome, Outcome::Failed(_)) => (slot, Outcome::from_error(&error)),
        _ => (slot, outcome),
    }
}
