//! [`Mutex`]: instance state that a request may keep locked across `.await`.
//!
//! On WASIp3 the requests of one instance interleave at every `.await`, so a
//! `RefCell` borrow held across one panics ("already borrowed") the moment a
//! second request wants it, and the panic traps every request on the
//! instance. An async lock makes that second request wait instead. This
//! module offers nothing else (no read-write lock, no semaphore): for state
//! that is never held across an `.await`, `Cell` and `RefCell` stay the
//! cheaper choice.

use std::cell::UnsafeCell;
use std::future::poll_fn;
use std::ops::{Deref, DerefMut};
use std::task::{Poll, Waker};

/// An async lock for instance state: [`lock`](Mutex::lock) waits (without
/// blocking the instance) while another request holds it.
///
/// ```no_run
/// use reprise::{Handler, IntoResponse, Mutex, Request};
/// use std::collections::HashMap;
///
/// #[derive(Default)]
/// struct App {
///     cache: Mutex<HashMap<String, String>>,
/// }
///
/// # async fn fetch(key: &str) -> String { key.into() }
/// impl Handler for App {
///     async fn handle(&self, request: Request) -> impl IntoResponse {
///         let key = request.uri().path().to_owned();
///         let mut cache = self.cache.lock().await;
///         if !cache.contains_key(&key) {
///             // Other requests run here; one that wants the cache waits.
///             let value = fetch(&key).await;
///             cache.insert(key.clone(), value);
///         }
///         cache[&key].clone()
///     }
/// }
/// ```
///
/// Its guard is `Send` (for `T: Send`), so it can be held across an
/// `.await` inside an axum handler too.
#[derive(Default)]
pub struct Mutex<T: ?Sized> {
    state: std::sync::Mutex<State>,
    value: UnsafeCell<T>,
}

#[derive(Default)]
struct State {
    locked: bool,
    /// Requests waiting for the lock. All are woken when it is released, so
    /// one that gave up waiting cannot strand the others.
    waiting: Vec<Waker>,
}

// SAFETY: `value` is reached only through a `MutexGuard`, and `state.locked`
// (itself behind a real lock) lets at most one guard exist at a time.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Access to a [`Mutex`]'s value; dropping it releases the lock.
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// A lock around `value`.
    pub const fn new(value: T) -> Self {
        Mutex {
            state: std::sync::Mutex::new(State {
                locked: false,
                waiting: Vec::new(),
            }),
            value: UnsafeCell::new(value),
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits until no other request holds the lock, then takes it.
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        poll_fn(|cx| {
            let mut state = self.state();
            if state.locked {
                state.waiting.push(cx.waker().clone());
                Poll::Pending
            } else {
                state.locked = true;
                Poll::Ready(MutexGuard { mutex: self })
            }
        })
        .await
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing can panic while `state` is held: poisoning cannot mean an
        // inconsistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `Sync` above).
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.mutex.state();
            state.locked = false;
            std::mem::take(&mut state.waiting)
        };
        waiting.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::Context;

    #[test]
    fn a_second_locker_waits_until_the_first_guard_is_dropped() {
        let mutex = Mutex::new(0);
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = pin!(mutex.lock());
        let Poll::Ready(mut guard) = first.as_mut().poll(&mut cx) else {
            panic!("an unlocked mutex locks at once");
        };
        let mut second = pin!(mutex.lock());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        *guard += 1;
        drop(guard);
        let Poll::Ready(guard) = second.as_mut().poll(&mut cx) else {
            panic!("a released mutex locks at once");
        };
        assert_eq!(*guard, 1);
    }

    #[test]
    fn guards_are_send_so_axum_handlers_may_hold_them() {
        fn send<T: Send>(_: &T) {}
        let mutex = Mutex::new(String::new());
        send(&mutex.lock());
    }
}
