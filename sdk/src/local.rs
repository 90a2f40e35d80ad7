//! `Local<T>`: a value of the instance's one thread, marked `Send` so that
//! reprise's bodies and futures fit `Send`-bound ecosystems (axum, tower).
//!
//! Only what cannot be `Send` goes in here (WASI resources, wit-bindgen
//! streams, the runtime's boxed futures); everything else in the SDK is
//! `Send` on its own. It does not make anything `Sync`, and it is no licence
//! to move values across threads: it states that there is only one.

use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A value that is only ever used on the thread that created it.
pub(crate) struct Local<T> {
    value: ManuallyDrop<T>,
    owner: thread::Thread,
}

// SAFETY: a wasm32-wasip2 component instance has exactly one thread, so a
// `Local` can never be reached from another thread (wstd marks its bodies
// `Send` for the same reason). Anywhere threads exist (the SDK's native unit
// and doc tests, a wasm target with atomics), each use checks the thread and
// panics on a foreign one, and a drop there leaks, so the claim holds too.
unsafe impl<T> Send for Local<T> {}

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
mod thread {
    pub(super) type Thread = ();
    pub(super) fn current() -> Thread {}
    pub(super) fn is_current(_: &Thread) -> bool {
        true
    }
}

#[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
mod thread {
    pub(super) type Thread = std::thread::ThreadId;
    pub(super) fn current() -> Thread {
        std::thread::current().id()
    }
    pub(super) fn is_current(thread: &Thread) -> bool {
        *thread == current()
    }
}

impl<T> Local<T> {
    pub(crate) fn new(value: T) -> Self {
        Local {
            value: ManuallyDrop::new(value),
            owner: thread::current(),
        }
    }

    pub(crate) fn value_mut(&mut self) -> &mut T {
        self.check();
        &mut self.value
    }

    fn value(&self) -> &T {
        self.check();
        &self.value
    }

    fn check(&self) {
        assert!(
            thread::is_current(&self.owner),
            "reprise: a WASI value was used on a thread other than its own"
        );
    }
}

impl<T> Drop for Local<T> {
    fn drop(&mut self) {
        // On a foreign thread the value is leaked: running its destructor
        // there is exactly what `Send` must not allow.
        if thread::is_current(&self.owner) {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}

impl<F: Future + Unpin> Future for Local<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(self.value_mut()).poll(cx)
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Local<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(self.value_mut()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.value().is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.value().size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::rc::Rc;

    #[test]
    fn a_local_sent_to_another_thread_refuses_use_there_and_leaks_instead_of_dropping() {
        let shared = Rc::new(());
        let mut local = Local::new(shared.clone());
        std::thread::spawn(move || {
            let used = catch_unwind(AssertUnwindSafe(|| drop(local.value_mut().clone())));
            assert!(used.is_err(), "a foreign thread must not reach the value");
            drop(local);
        })
        .join()
        .unwrap();
        // Neither the clone nor the drop touched the count from the other thread.
        assert_eq!(Rc::strong_count(&shared), 2);
    }
}
