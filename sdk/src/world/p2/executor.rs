//! A single-threaded executor for one p2 call: it polls the request's tasks
//! until each waits, then sleeps in `wasi:io/poll.poll` on the pollables
//! they wait for. It does not outlive the call: what is left when the last
//! task ends is cleared. p3 needs none; wit-bindgen's runtime is its own.

use crate::runtime::LocalFuture;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use wasip2::io::poll::Pollable;

thread_local! {
    static TASKS: RefCell<Vec<Option<LocalFuture>>> = const { RefCell::new(Vec::new()) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static RUNNABLE: RefCell<VecDeque<usize>> = const { RefCell::new(VecDeque::new()) };
    /// Pollables that pending tasks wait on, with the waker to call.
    static WAITING: RefCell<Vec<(Rc<Pollable>, Waker)>> = const { RefCell::new(Vec::new()) };
}

/// The id of the call's main future, which `run` polls where it lies
/// instead of boxing it into `TASKS`.
const MAIN: usize = usize::MAX;

/// A task's waker: its id is the whole of it, so making one allocates
/// nothing, however often a task is polled. Waking queues the id on this
/// thread, the instance's only one.
fn waker(id: usize) -> Waker {
    fn clone(id: *const ()) -> RawWaker {
        RawWaker::new(id, &VTABLE)
    }
    fn wake(id: *const ()) {
        RUNNABLE.with_borrow_mut(|runnable| runnable.push_back(id as usize));
    }
    fn drop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);
    // SAFETY: the vtable's functions keep `RawWaker`'s contract: the data
    // is a plain number that is never dereferenced, so cloning copies it,
    // dropping does nothing, and waking only queues it.
    unsafe { Waker::from_raw(RawWaker::new(id as *const (), &VTABLE)) }
}

pub(super) fn spawn(task: LocalFuture) {
    let id = TASKS.with_borrow_mut(|tasks| {
        tasks.push(Some(task));
        tasks.len() - 1
    });
    LIVE.set(LIVE.get() + 1);
    RUNNABLE.with_borrow_mut(|runnable| runnable.push_back(id));
}

/// Runs the future `main` makes, and everything it spawns, to completion.
///
/// Made here rather than passed in, and polled where it lies rather than
/// boxed: the request's largest future is then never moved.
pub(super) fn run<F: Future<Output = ()>>(main: impl FnOnce() -> F) {
    let mut main = std::pin::pin!(main());
    let mut main_done = false;
    LIVE.set(LIVE.get() + 1);
    RUNNABLE.with_borrow_mut(|runnable| runnable.push_back(MAIN));
    loop {
        while let Some(id) = RUNNABLE.with_borrow_mut(VecDeque::pop_front) {
            if id != MAIN {
                poll_task(id);
            } else if !main_done {
                let waker = waker(MAIN);
                if main
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready()
                {
                    main_done = true;
                    LIVE.set(LIVE.get() - 1);
                }
            }
        }
        if LIVE.get() == 0 {
            break;
        }
        wait_for_pollables();
    }
    TASKS.with_borrow_mut(Vec::clear);
    WAITING.with_borrow_mut(Vec::clear);
}

fn poll_task(id: usize) {
    // Taken out while polling: the task may spawn, which pushes to TASKS.
    let Some(mut task) = TASKS.with_borrow_mut(|tasks| tasks.get_mut(id).and_then(Option::take))
    else {
        return; // finished already, or a previous call's: a stale wake-up
    };
    let waker = waker(id);
    match task.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(()) => LIVE.set(LIVE.get() - 1),
        Poll::Pending => TASKS.with_borrow_mut(|tasks| tasks[id] = Some(task)),
    }
}

/// Blocks in `wasi:io/poll.poll` until some awaited pollable is ready.
fn wait_for_pollables() {
    let waiting = WAITING.take();
    assert!(
        !waiting.is_empty(),
        "reprise: every task of this request waits, and nothing can wake them"
    );
    let pollables: Vec<&Pollable> = waiting.iter().map(|(pollable, _)| &**pollable).collect();
    let mut ready = vec![false; waiting.len()];
    for index in wasip2::io::poll::poll(&pollables) {
        ready[index as usize] = true;
    }
    drop(pollables);
    for ((pollable, waker), ready) in waiting.into_iter().zip(ready) {
        if ready {
            waker.wake();
        } else {
            WAITING.with_borrow_mut(|waiting| waiting.push((pollable, waker)));
        }
    }
}

/// Resolves once `pollable` is ready.
pub(super) fn ready(pollable: Pollable) -> Ready {
    Ready(Rc::new(pollable))
}

pub(super) struct Ready(Rc<Pollable>);

impl Future for Ready {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.ready() {
            return Poll::Ready(());
        }
        let entry = (self.0.clone(), cx.waker().clone());
        WAITING.with_borrow_mut(|waiting| waiting.push(entry));
        Poll::Pending
    }
}

impl Drop for Ready {
    /// Forgets the pollable, so that an abandoned wait neither keeps the
    /// executor asleep nor outlives the stream it belongs to (a child
    /// pollable must be dropped before its stream).
    fn drop(&mut self) {
        WAITING.with_borrow_mut(|waiting| waiting.retain(|(p, _)| !Rc::ptr_eq(p, &self.0)));
    }
}
