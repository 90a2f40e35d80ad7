//! `--max-instances` across the serving threads: the slots instances hold
//! while they live, and the reclaiming of idle ones. Each thread's
//! `ProxyHandler` keeps its own instances, so an instance idle on one
//! thread is no use to a request on another; when every slot is taken and
//! some instance sits idle elsewhere, that instance is asked to step down
//! (it ends as if its idle timeout had passed) and the request waits for
//! its slot, instead of getting 503 while capacity sits unused.
//!
//! This module does not create or drop instances (`instance/mod.rs` and
//! `ProxyHandler` do); it only counts them and wakes idle ones.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Notify;

/// How long a request waits for an idle instance elsewhere to step down.
/// An idle instance ends at its next poll, in well under this; the bound is
/// for a reclaimed instance that took a request in the meantime.
const RECLAIM_WAIT: Duration = Duration::from_secs(1);

/// The server's instance slots, shared by every thread.
pub(crate) struct Slots {
    max: u32,
    taken: AtomicU32,
    /// Numbers the requests that wait for a slot.
    next_waiter: AtomicU64,
    /// Who waits, and who could step down for them.
    books: Mutex<Books>,
    /// Notified whenever a slot is given back.
    freed: Notify,
}

#[derive(Default)]
struct Books {
    /// Requests waiting for an idle instance to step down, each of which
    /// one instance takes up; a request that got a slot otherwise takes
    /// its own back.
    wanted: Vec<u64>,
    /// The instances idle now, by id: woken when a slot is wanted.
    idle: HashMap<u64, Waker>,
}

/// `--max-instances` instances are alive and none of them is idle: no
/// instance can be created until one is dropped.
#[derive(Debug)]
pub(crate) struct InstanceLimitError {
    max: u32,
}

impl fmt::Display for InstanceLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all {} instances allowed by --max-instances are in use",
            self.max
        )
    }
}

impl std::error::Error for InstanceLimitError {}

/// One slot, given back when dropped (with the worker that holds it, or
/// with a failed instantiation).
pub(crate) struct InstanceSlot(Arc<Slots>);

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_waiters();
    }
}

impl Slots {
    pub(crate) fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            taken: AtomicU32::new(0),
            next_waiter: AtomicU64::new(0),
            books: Mutex::new(Books::default()),
            freed: Notify::new(),
        })
    }

    fn try_take(self: &Arc<Self>) -> Option<InstanceSlot> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < self.max).then_some(taken + 1)
            })
            .ok()
            .map(|_| InstanceSlot(self.clone()))
    }

    /// A slot for a new instance: a free one, or the one an idle instance
    /// gives up when asked; an error when every instance is busy.
    pub(crate) async fn take(self: &Arc<Self>) -> Result<InstanceSlot, InstanceLimitError> {
        let limit = || InstanceLimitError { max: self.max };
        if let Some(slot) = self.try_take() {
            return Ok(slot);
        }
        let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let idle = {
            let mut books = self.books();
            if books.idle.is_empty() {
                return Err(limit());
            }
            books.wanted.push(waiter);
            books.idle.values().cloned().collect::<Vec<_>>()
        };
        for waker in idle {
            waker.wake();
        }
        let waited = tokio::time::timeout(RECLAIM_WAIT, async {
            loop {
                let freed = self.freed.notified();
                if let Some(slot) = self.try_take() {
                    return slot;
                }
                freed.await;
            }
        })
        .await;
        // Still listed if no idle instance took it up (another one ended).
        self.books().wanted.retain(|w| *w != waiter);
        waited.map_err(|_| limit())
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by an idle instance's expiry at each poll: whether it should
    /// step down now for a request that needs its slot. Otherwise it is
    /// listed as idle, to be woken with `waker` when a slot is wanted.
    pub(crate) fn step_down(&self, instance: u64, waker: &Waker) -> bool {
        let mut books = self.books();
        let asked = books.wanted.pop().is_some();
        if asked {
            books.idle.remove(&instance);
        } else {
            books.idle.insert(instance, waker.clone());
        }
        asked
    }

    /// The instance is busy or gone: no longer one to ask.
    pub(crate) fn not_idle(&self, instance: u64) {
        self.books().idle.remove(&instance);
    }
}
