//! The request scope: what belongs to one request and to nothing else.
//!
//! Every request runs inside a scope that the export glue opens on entry. The
//! scope follows the request's futures, not the call stack: whichever future
//! of which request the executor polls, that request's scope is current while
//! it runs. So request-local values never leak into a request that
//! interleaves on the same instance. The scope closes when the last future
//! holding it (the handler, the tasks it spawned, its body stream) is done,
//! and closing it drops the request's values and tells the instance the
//! request ended.
//!
//! This module does not decide anything about reuse; `instance` does, from the
//! start and end events that scopes report.

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Identity and timing of the request being handled.
///
/// ```no_run
/// # async fn handler() {
/// let request = reprise::RequestContext::current();
/// println!("[{}] started {:?} ago", request.id(), request.started().elapsed());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RequestContext {
    id: RequestId,
    started: Instant,
    deadline: Option<Instant>,
}

impl RequestContext {
    /// The context of the request whose code is running.
    ///
    /// # Panics
    /// Outside a request (for example in a `Default` impl), since there is no
    /// request to describe. Use [`RequestContext::try_current`] to test first.
    pub fn current() -> RequestContext {
        Self::try_current().unwrap_or_else(|| panic!("{OUTSIDE}"))
    }

    /// The context of the request whose code is running, or `None` outside a
    /// request.
    pub fn try_current() -> Option<RequestContext> {
        with_current(|scope| scope.map(Scope::context))
    }

    /// The request's id: its `x-request-id` header if the client or a proxy
    /// sent one, otherwise one generated for it (unique on the instance, and
    /// saying nothing about it).
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// When the request arrived at this instance.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When the request runs out of time, if the handler set a
    /// [`deadline`](crate::Handler::deadline).
    ///
    /// At the deadline reprise drops the handler's future and every task
    /// the request spawned, which cancels their outgoing calls, and answers
    /// `504 Gateway Timeout` itself (or, if the response has started, ends
    /// its body with an error). Use it to budget work, e.g. to skip an
    /// optional call when little time is left:
    ///
    /// ```no_run
    /// # async fn handler() {
    /// use std::time::{Duration, Instant};
    /// let left = reprise::RequestContext::current()
    ///     .deadline()
    ///     .map_or(Duration::MAX, |deadline| deadline.saturating_duration_since(Instant::now()));
    /// # }
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// A request's id. Kept inline when short (the 16 characters reprise and
/// host-runner make, a UUID): nearly every request arrives with one, and
/// taking it should cost no allocation.
#[derive(Clone)]
pub(crate) struct RequestId(Repr);

#[derive(Clone)]
enum Repr {
    /// Always whole UTF-8: the first `len` bytes of a `&str`.
    Inline {
        len: u8,
        bytes: [u8; INLINE_ID],
    },
    Shared(Arc<str>),
}

/// The longest id kept inline; with its length, 40 bytes.
const INLINE_ID: usize = 39;

impl RequestId {
    pub(crate) fn new(id: &str) -> RequestId {
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE_ID => {
                let mut bytes = [0; INLINE_ID];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                RequestId(Repr::Inline { len, bytes })
            }
            _ => RequestId(Repr::Shared(id.into())),
        }
    }

    fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `new` copied these bytes whole from a `&str`.
            Repr::Inline { len, bytes } => unsafe {
                std::str::from_utf8_unchecked(&bytes[..usize::from(*len)])
            },
            Repr::Shared(id) => id,
        }
    }
}

impl From<&str> for RequestId {
    fn from(id: &str) -> RequestId {
        RequestId::new(id)
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

pub(crate) const OUTSIDE: &str = "reprise: request-scoped state used outside a request; it exists only \
     while a handler (or a task it spawned) runs";

/// One request's scope. Cloning shares it; the last clone dropped ends it.
#[derive(Clone)]
pub(crate) struct Scope(Rc<ScopeInner>);

struct ScopeInner {
    /// The id the request came with, or one generated from `sequence` the
    /// first time anyone asks: most requests never do, and should not pay
    /// for hashing and formatting one.
    id: OnceCell<RequestId>,
    sequence: u64,
    started: Instant,
    deadline: Option<Instant>,
    locals: RefCell<Vec<(usize, Rc<dyn Any>)>>,
    /// The instance had retired when the request arrived: answer `503`, not
    /// the handler (see `instance`).
    refused: bool,
}

impl Scope {
    /// Opens a scope and reports the request's start to the instance.
    /// `request_id` is the id the request came with, if any; `limit` is how
    /// long the request may take, from now.
    pub(crate) fn open(request_id: Option<RequestId>, limit: Option<Duration>) -> Scope {
        let refused = !crate::instance::request_started();
        let id = OnceCell::new();
        if let Some(given) = request_id {
            let _ = id.set(given);
        }
        let started = Instant::now();
        Scope(Rc::new(ScopeInner {
            id,
            sequence: next_sequence(),
            started,
            deadline: limit.and_then(|limit| started.checked_add(limit)),
            locals: RefCell::default(),
            refused,
        }))
    }

    fn context(&self) -> RequestContext {
        let inner = &self.0;
        RequestContext {
            id: inner.id.get_or_init(|| generate_id(inner.sequence)).clone(),
            started: inner.started,
            deadline: inner.deadline,
        }
    }

    /// The scope whose code is running, if any.
    pub(crate) fn current() -> Option<Scope> {
        with_current(|scope| scope.cloned())
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.0.deadline
    }

    /// Runs the handler for `request` in this scope, within the request's
    /// deadline: past it the handler's future is dropped (cancelling what it
    /// awaits) and the answer is `504`.
    ///
    /// A plain function around one `async` block, not an `async fn`: each
    /// layer of future would move the request (some 250 bytes) once more.
    pub(crate) fn respond<H: crate::handler::Serve>(
        &self,
        handler: &'static H,
        request: crate::Request,
    ) -> impl Future<Output = crate::Response> + use<H> {
        let (deadline, started, refused) = (self.deadline(), self.0.started, self.0.refused);
        // All in the scope, the 504 too: errors read the request's
        // preference for JSON from it.
        self.enter(async move {
            if refused {
                // Before `negotiate`: a refusal is plain text, as ever.
                return crate::instance::refused();
            }
            crate::error::negotiate(&request);
            // Without a deadline, no timer to wrap the handler's future in
            // (and no move of it into one).
            let Some(deadline) = deadline else {
                return handler.serve(request).await;
            };
            match crate::deadline::within(Some(deadline), handler.serve(request)).await {
                Ok(response) => response,
                Err(_) => crate::deadline::missed(deadline.saturating_duration_since(started)),
            }
        })
    }

    /// The request's value for the request-local at `key`, made by `init`
    /// on first use.
    pub(crate) fn local(&self, key: usize, init: impl FnOnce() -> Rc<dyn Any>) -> Rc<dyn Any> {
        let existing = self
            .0
            .locals
            .borrow()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| value.clone());
        existing.unwrap_or_else(|| {
            // Initialise without holding the borrow: `init` may use other
            // request-locals.
            let value = init();
            self.0.locals.borrow_mut().push((key, value.clone()));
            value
        })
    }

    /// Runs `future` with this scope current whenever it is polled.
    pub(crate) fn enter<F: Future>(&self, future: F) -> Scoped<F> {
        Scoped {
            scope: self.clone(),
            future,
        }
    }
}

impl Drop for ScopeInner {
    fn drop(&mut self) {
        // Drop the request's values first: their destructors belong to the
        // request, and the instance may retire right after it hears the end.
        self.locals.get_mut().clear();
        crate::instance::request_finished();
    }
}

thread_local! {
    static CURRENT: Cell<Option<Scope>> = const { Cell::new(None) };
}

fn with_current<R>(f: impl FnOnce(Option<&Scope>) -> R) -> R {
    CURRENT.with(|current| {
        let scope = current.take();
        let result = f(scope.as_ref());
        current.set(scope);
        result
    })
}

/// A future that makes its request's scope current while it is polled.
pub(crate) struct Scoped<F> {
    scope: Scope,
    /// Pinned in place (no box of its own): every request wraps several
    /// futures this way, and each box was an allocation per request.
    future: F,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: `Scoped` never moves it
        // out, has no `Drop` impl, and is `Unpin` only when `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let outer = CURRENT.replace(Some(this.scope.clone()));
        let poll = future.poll(cx);
        CURRENT.set(outer);
        poll
    }
}

/// Runs `future` concurrently with the current request, inside its scope.
///
/// ```no_run
/// # async fn handler() -> reprise::Response {
/// reprise::spawn(async {
///     // Runs after the response went back; still part of this request.
///     println!("audit log for {}", reprise::RequestContext::current().id());
/// });
/// reprise::Response::new("done".into())
/// # }
/// ```
///
/// The task sees the request's request-local values, and the request does not
/// end (for its values, and for the instance's reuse policy) until the task
/// finishes. Use it for work after the response, such as streaming a body.
///
/// The task ends with the request's [deadline](RequestContext::deadline)
/// at the latest: it is dropped there, unfinished.
///
/// There is no handle to cancel or join the task, and no instance-level
/// background task: work that outlives every request would keep an instance
/// busy that the host wants to drop, so every task belongs to a request.
///
/// # Panics
/// Outside a request.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    let scope = Scope::current().unwrap_or_else(|| panic!("{OUTSIDE}"));
    let deadline = scope.deadline();
    crate::runtime::spawn(Box::pin(scope.enter(async move {
        let _ = crate::deadline::within(deadline, future).await;
    })));
}

/// A random-looking id that says nothing about the instance: not how many
/// requests it served, not which instance it is. A counter keeps ids
/// distinct within the instance; hashing it with a key drawn at random per
/// instance (std's `RandomState`, seeded from `wasi:random`) hides it. Fixed
/// width and one alphanumeric run, so `host-runner check` masks it as one
/// token that varies by itself, never as a leak.
fn generate_id(sequence: u64) -> RequestId {
    use std::hash::{BuildHasher, RandomState};
    thread_local! {
        static KEY: RandomState = RandomState::new();
    }
    RequestId::new(&format!("{:016x}", KEY.with(|key| key.hash_one(sequence))))
}

/// The request's number on this instance, from 1: what its id is made of.
fn next_sequence() -> u64 {
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(0) };
    }
    NEXT.with(|next| {
        next.set(next.get() + 1);
        next.get()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_fixed_width_and_not_a_sequence() {
        let ids: Vec<String> = (0..100)
            .map(|_| generate_id(next_sequence()).as_str().to_owned())
            .collect();
        for id in &ids {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        // Consecutive ids share no prefix the way a counter's would.
        let shared = ids
            .windows(2)
            .filter(|pair| pair[0][..8] == pair[1][..8])
            .count();
        assert_eq!(shared, 0, "{ids:?}");
    }

    /// Polls `future` once, as an executor would when it is woken.
    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    /// Pending once, then ready: where another request may run in between.
    async fn interleave() {
        let mut yielded = false;
        std::future::poll_fn(|_| {
            if std::mem::replace(&mut yielded, true) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn request() -> Scope {
        Scope::open(None, None)
    }

    crate::request_local! {
        static VISITS: Cell<u32> = Cell::new(0);
        static MARKER: Rc<()> = Rc::new(());
    }

    #[test]
    fn interleaved_requests_each_see_their_own_request_locals() {
        let visit = |times: u32| async move {
            for _ in 0..times {
                VISITS.with(|visits| visits.set(visits.get() + 1));
                interleave().await;
            }
            VISITS.with(Cell::get)
        };
        let (a, b) = (request(), request());
        let mut first = std::pin::pin!(a.enter(visit(2)));
        let mut second = std::pin::pin!(b.enter(visit(3)));
        for _ in 0..2 {
            assert!(poll_once(first.as_mut()).is_pending());
            assert!(poll_once(second.as_mut()).is_pending());
        }
        assert_eq!(poll_once(first.as_mut()), Poll::Ready(2));
        assert!(poll_once(second.as_mut()).is_pending());
        assert_eq!(poll_once(second.as_mut()), Poll::Ready(3));
        // Between polls no request is current, so nothing leaks out either.
        assert_eq!(VISITS.try_with(Cell::get), None);
    }

    #[test]
    fn a_request_ends_when_its_last_holder_does_and_takes_its_values_along() {
        let scope = request();
        // A handle on the request's value, to watch it from outside.
        let value = {
            let mut read = std::pin::pin!(scope.enter(async { MARKER.with(Rc::clone) }));
            match poll_once(read.as_mut()) {
                Poll::Ready(value) => value,
                Poll::Pending => unreachable!("reading a request-local does not wait"),
            }
        };
        let task = scope.clone(); // as a spawned task or a body writer holds it
        drop(scope);
        assert_eq!(Rc::strong_count(&value), 2, "the request is still open");
        assert_eq!(crate::instance::stats().in_flight, 1);
        drop(task);
        assert_eq!(Rc::strong_count(&value), 1, "the request's value is gone");
        assert_eq!(crate::instance::stats().in_flight, 0);
    }

    #[test]
    fn a_request_keeps_the_id_it_came_with_and_otherwise_gets_its_own() {
        let id = |scope: &Scope| {
            let mut read =
                std::pin::pin!(scope.enter(async { RequestContext::current().id().to_owned() }));
            match poll_once(read.as_mut()) {
                Poll::Ready(id) => id,
                Poll::Pending => unreachable!("reading the id does not wait"),
            }
        };
        let given = Scope::open(Some("trace-7".into()), None);
        assert_eq!(id(&given), "trace-7");
        // Longer than is kept inline, and multi-byte at the edge.
        let long = format!("{}é", "t".repeat(INLINE_ID - 1));
        assert_eq!(id(&Scope::open(Some(long.as_str().into()), None)), long);
        let (a, b) = (request(), request());
        assert_eq!(id(&a), id(&a), "an id, once made, stays");
        assert_ne!(id(&a), id(&b));
        assert_eq!(id(&b).len(), 16);
    }

    #[test]
    fn nothing_request_scoped_exists_outside_a_request() {
        assert!(RequestContext::try_current().is_none());
        assert_eq!(VISITS.try_with(Cell::get), None);
        let _open = request(); // open, but not current: no future of it runs
        assert!(RequestContext::try_current().is_none());
    }
}
