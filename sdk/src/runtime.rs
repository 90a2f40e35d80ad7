//! The one point where the core meets a world: the [`Runtime`] trait, which
//! the world layer (`world::p2`, `world::p3`) implements and installs at an
//! instance's first request.
//!
//! Core code (sleep, spawn, the client, the reuse policy) calls the world
//! only through here, so it never names a binding and never imports the
//! world layer. What it does not do: pick a world. Only the half an export
//! macro names is linked, so a component imports one world's interfaces.

use std::cell::Cell;
use std::pin::Pin;
use std::time::Duration;

pub(crate) type LocalFuture<T = ()> = Pin<Box<dyn Future<Output = T>>>;

/// What world-neutral code needs from the world that runs it.
pub(crate) trait Runtime {
    fn sleep(&self, duration: Duration) -> LocalFuture;
    fn spawn(&self, task: LocalFuture);
    /// Sends an outgoing request through the world's HTTP client.
    fn send(
        &self,
        request: crate::Request,
    ) -> LocalFuture<Result<crate::Response, crate::client::Error>>;
    /// Raises or lowers backpressure on behalf of the reuse policy.
    fn policy_backpressure(&self, raise: bool);
}

thread_local! {
    static RUNTIME: Cell<Option<&'static dyn Runtime>> = const { Cell::new(None) };
}

/// Installs the world's runtime; the instance's first request does it, once.
pub(crate) fn install(runtime: &'static dyn Runtime) {
    RUNTIME.set(Some(runtime));
}

fn runtime() -> &'static dyn Runtime {
    RUNTIME.get().expect(
        "reprise: no runtime; sleep and spawn work inside a handler exported with \
         reprise::export_p2! or reprise::export_p3!",
    )
}

/// Waits for `duration` without blocking other requests on this instance.
///
/// On WASIp3 other requests run meanwhile; on WASIp2 (one request per call)
/// the request's own spawned tasks do. `Duration::MAX` waits forever. The
/// future is `Send`, so it can be awaited inside an axum handler.
///
/// ```no_run
/// # async fn handler() {
/// reprise::sleep(std::time::Duration::from_millis(40)).await;
/// # }
/// ```
pub fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
    // The timer is made at the first poll, like an `async fn`'s body runs.
    let timer: LocalFuture = Box::pin(async move { runtime().sleep(duration).await });
    crate::local::Local::new(timer)
}

pub(crate) fn spawn(task: LocalFuture) {
    runtime().spawn(task)
}

pub(crate) fn send(
    request: crate::Request,
) -> LocalFuture<Result<crate::Response, crate::client::Error>> {
    runtime().send(request)
}

pub(crate) fn policy_backpressure(raise: bool) {
    runtime().policy_backpressure(raise)
}

/// A runtime for the SDK's native unit tests, where neither world exists:
/// it records the backpressure the reuse policy asks for, and nothing else.
#[cfg(test)]
pub(crate) mod native {
    use super::{LocalFuture, Runtime};
    use std::cell::Cell;
    use std::time::Duration;

    struct Recorder;

    thread_local! {
        static BACKPRESSURE: Cell<i32> = const { Cell::new(0) };
    }

    impl Runtime for Recorder {
        fn sleep(&self, _: Duration) -> LocalFuture {
            panic!("native unit tests have no clock to sleep on")
        }
        fn spawn(&self, _: LocalFuture) {
            panic!("native unit tests have no executor to spawn on")
        }
        fn send(
            &self,
            _: crate::Request,
        ) -> LocalFuture<Result<crate::Response, crate::client::Error>> {
            panic!("native unit tests have no HTTP client")
        }
        fn policy_backpressure(&self, raise: bool) {
            BACKPRESSURE.set(BACKPRESSURE.get() + if raise { 1 } else { -1 });
        }
    }

    /// Installs the recorder for this test's thread.
    pub(crate) fn install() {
        super::install(&Recorder);
    }

    /// Backpressure the policy holds on the instance now: raises minus lowers.
    pub(crate) fn backpressure() -> i32 {
        BACKPRESSURE.get()
    }
}
