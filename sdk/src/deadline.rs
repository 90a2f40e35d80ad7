//! Time limits: [`timeout`] for one future, and the request's deadline.
//!
//! Both work the same way: a future that runs out of time is dropped, which
//! cancels whatever it was waiting for (an outgoing call, a body read, a
//! sleep). Nothing here can interrupt code that never awaits: a busy loop
//! runs until the host's own request timeout stops the instance.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::Elapsed;

/// Runs `future` for at most `duration`; past that it is dropped and the
/// result is [`Elapsed`].
///
/// Dropping the future cancels what it awaits, so a timed-out
/// [`client::send`](crate::client::send) closes its connection.
///
/// ```no_run
/// # async fn handler() -> Result<(), reprise::Elapsed> {
/// use std::time::Duration;
/// let answer = reprise::timeout(Duration::from_millis(200), async { 42 }).await?;
/// # Ok(()) }
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let mut timer = pin!(crate::runtime::sleep(duration));
    poll_fn(|cx| {
        // The future goes first: one that is ready at the limit still counts.
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        timer.as_mut().poll(cx).map(|()| Err(Elapsed(duration)))
    })
    .await
}

/// Runs `future` until `deadline`, or without limit when there is none.
pub(crate) async fn within<F: Future>(
    deadline: Option<Instant>,
    future: F,
) -> Result<F::Output, Elapsed> {
    match deadline {
        Some(deadline) => timeout(deadline.saturating_duration_since(Instant::now()), future).await,
        None => Ok(future.await),
    }
}

/// The answer the SDK gives when a handler misses the request's deadline.
pub(crate) fn missed(limit: Duration) -> crate::Response {
    let message = format!(
        "deadline of {} ms passed before the response was ready",
        limit.as_millis()
    );
    crate::error::respond(http::StatusCode::GATEWAY_TIMEOUT, &message)
}
