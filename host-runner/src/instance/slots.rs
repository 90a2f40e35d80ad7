//! `--max-instances` across the serving threads: the slots instances hold
//! while they live, their numbers, and the reclaiming of idle ones. Each
//! thread's `ProxyHandler` keeps its own instances, so an instance idle on
//! one thread is no use to a request on another; when every slot is taken
//! and some instance elsewhere is idle, or quiet (every response it gave is
//! over, and its guest is finishing up: it will be idle in a moment), that
//! instance is asked to step down once idle (it ends as if its idle timeout
//! had passed) and the request waits for its slot, up to [`RECLAIM_WAIT`],
//! instead of getting 503 while capacity sits unused. When every instance
//! has a response open, nothing is about to be released: the request gets
//! its 503 at once.
//!
//! A slot is given back the moment its instance is dropped, whatever ended
//! it (a trap included), and a request waiting for one takes it then.
//!
//! This module does not create or drop instances (`instance/mod.rs` and
//! `ProxyHandler` do); it only counts them, knows which are quiet or idle,
//! and wakes idle ones.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Notify;

/// How long a request waits for a quiet or idle instance elsewhere to step
/// down. An idle instance ends at its next poll and a quiet one is idle as
/// soon as its guest returns, both in well under this; the bound is for an
/// instance whose guest keeps working after its last response, or that
/// took a request in the meantime.
const RECLAIM_WAIT: Duration = Duration::from_secs(1);

/// The server's instance slots, shared by every thread.
pub(crate) struct Slots {
    max: u32,
    taken: AtomicU32,
    /// The next instance's number: instances are numbered 1, 2, 3… in
    /// creation order.
    next_id: AtomicU64,
    /// Numbers the requests that wait for a slot.
    next_waiter: AtomicU64,
    /// Who waits, and who could step down for them.
    books: Mutex<Books>,
    /// Notified whenever a slot is given back.
    freed: Notify,
}

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots")
            .field("max", &self.max)
            .field("taken", &self.taken)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Books {
    /// Requests waiting for an instance to step down, each of which one
    /// instance takes up; a request that got a slot otherwise takes its
    /// own back.
    wanted: Vec<u64>,
    /// Every instance holding a slot, by id.
    instances: HashMap<u64, Standing, BuildHasherDefault<IdHasher>>,
}

/// Whether an instance could give its slot up soon.
/// Hashes instance ids for the books, which are looked up several times a
/// request. The ids are a counter this process hands out, not input anyone
/// can choose, so std's collision-resistant SipHash buys nothing here; a
/// multiply by an odd constant spreads consecutive ids over the table.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[derive(Default)]
struct Standing {
    /// None of its responses is open: it is idle, or will be once its
    /// guest returns.
    quiet: bool,
    /// Set while it is idle: wakes its expiry, to step down.
    idle: Option<Waker>,
}

impl Books {
    /// Whether some instance is idle or about to be: worth waiting for.
    fn any_releasing(&self) -> bool {
        self.instances
            .values()
            .any(|standing| standing.quiet || standing.idle.is_some())
    }
}

/// `--max-instances` instances are alive and every one has a response
/// open: no instance can be created until one is dropped.
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

/// One slot and the number of the instance it is for, given back when
/// dropped (with the worker that holds it, or with a failed
/// instantiation).
pub(crate) struct InstanceSlot {
    slots: Arc<Slots>,
    id: u64,
}

impl InstanceSlot {
    /// The number of the instance holding this slot.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        // Under the books' lock, so that a request looking for a slot sees
        // either the instance still listed or its slot free, never neither.
        let mut books = self.slots.books();
        books.instances.remove(&self.id);
        self.slots.taken.fetch_sub(1, Ordering::AcqRel);
        drop(books);
        self.slots.freed.notify_waiters();
    }
}

impl Slots {
    pub(crate) fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            taken: AtomicU32::new(0),
            next_id: AtomicU64::new(1),
            next_waiter: AtomicU64::new(0),
            books: Mutex::new(Books::default()),
            freed: Notify::new(),
        })
    }

    /// A free slot, listed in `books` for the instance about to hold it.
    fn try_take(self: &Arc<Self>, books: &mut Books) -> Option<InstanceSlot> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < self.max).then_some(taken + 1)
            })
            .ok()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        books.instances.insert(id, Standing::default());
        Some(InstanceSlot {
            slots: self.clone(),
            id,
        })
    }

    /// A slot for a new instance: a free one, or the one a quiet or idle
    /// instance gives up when asked; an error when every instance has a
    /// response open, or none gave its slot up within [`RECLAIM_WAIT`].
    pub(crate) async fn take(self: &Arc<Self>) -> Result<InstanceSlot, InstanceLimitError> {
        let limit = || InstanceLimitError { max: self.max };
        let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let idle = {
            let mut books = self.books();
            if let Some(slot) = self.try_take(&mut books) {
                return Ok(slot);
            }
            if !books.any_releasing() {
                return Err(limit());
            }
            books.wanted.push(waiter);
            books
                .instances
                .values()
                .filter_map(|standing| standing.idle.clone())
                .collect::<Vec<_>>()
        };
        for waker in idle {
            waker.wake();
        }
        let waited = tokio::time::timeout(RECLAIM_WAIT, async {
            loop {
                let freed = self.freed.notified();
                if let Some(slot) = self.try_take(&mut self.books()) {
                    return slot;
                }
                freed.await;
            }
        })
        .await;
        // Still listed if no instance took it up (another one ended).
        self.books().wanted.retain(|w| *w != waiter);
        waited.map_err(|_| limit())
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether every response of the instance is over (`true`) or one is
    /// open (`false`).
    pub(crate) fn quiet(&self, instance: u64, quiet: bool) {
        if let Some(standing) = self.books().instances.get_mut(&instance) {
            standing.quiet = quiet;
        }
    }

    /// Called by an idle instance's expiry at each poll: whether it should
    /// step down now for a request that needs its slot. Otherwise it is
    /// listed as idle, to be woken with `waker` when a slot is wanted.
    pub(crate) fn step_down(&self, instance: u64, waker: &Waker) -> bool {
        let mut books = self.books();
        let asked = books.wanted.pop().is_some();
        if let Some(standing) = books.instances.get_mut(&instance) {
            standing.idle = (!asked).then(|| waker.clone());
        }
        asked
    }

    /// The instance is busy: no longer one to wake.
    pub(crate) fn not_idle(&self, instance: u64) {
        if let Some(standing) = self.books().instances.get_mut(&instance) {
            standing.idle = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_is_refused_at_once_when_every_instance_has_a_response_open() {
        let slots = Slots::new(1);
        let _busy = slots.take().await.unwrap();
        assert!(slots.take().await.is_err());
    }

    #[tokio::test]
    async fn a_quiet_instance_steps_down_once_idle_and_the_waiting_request_takes_its_slot() {
        let slots = Slots::new(1);
        let first = slots.take().await.unwrap();
        slots.quiet(first.id(), true);
        assert!(
            !slots.step_down(first.id(), Waker::noop()),
            "nobody needs its slot yet"
        );
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await.map(|slot| slot.id()) }
        });
        while !slots.step_down(first.id(), Waker::noop()) {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert_eq!(waiting.await.unwrap().unwrap(), 2);
    }
}
