//! The WASIp2 half: `wasi:http/incoming-handler@0.2` driven by a small
//! executor of reprise's own.
//!
//! A p2 export is a synchronous call, one request at a time. reprise runs the
//! same async handler inside it on a single-threaded executor that sleeps in
//! `wasi:io/poll.poll` until a pollable (a timer, a stream) is ready. The call
//! returns once the handler, the body and every task the request spawned are
//! done, so post-response work still finishes inside the request. Outgoing
//! calls go through `wasi:http/outgoing-handler`; dropping one drops its
//! `future-incoming-response`, and the host closes the connection.

use super::{Runtime, world_conversions};
use crate::body::{BodyError, NextFrame, Source};
use crate::handler::Serve;
use crate::scope::Scope;
use crate::{Body, ReusePolicy};
use http_body::Frame;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use wasip2::http::types::{
    Fields, FutureTrailers, IncomingBody as WasiIncomingBody, IncomingRequest, OutgoingBody,
    OutgoingRequest, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::poll::Pollable;
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

world_conversions!(wasip2::http::types, OutgoingRequest);

/// The p2 runtime. `RETIRES` says whether the exported policy can retire an
/// instance (never, request or memory limits).
///
/// A p2 call is never concurrent, so retiring is the only policy work that
/// needs backpressure. Without it, `policy_backpressure` is a no-op and the
/// component holds no `backpressure.inc`/`.dec` built-ins, which keeps it
/// loadable on hosts without component-model async support (unless the app
/// itself calls [`retire`](crate::retire) or [`hold`](crate::backpressure::hold)).
struct P2<const RETIRES: bool>;

impl<const RETIRES: bool> Runtime for P2<RETIRES> {
    fn sleep(&self, duration: Duration) -> super::LocalFuture {
        let timer = wasip2::clocks::monotonic_clock::subscribe_duration(super::nanos(duration));
        Box::pin(executor::ready(timer))
    }

    fn spawn(&self, task: super::LocalFuture) {
        executor::spawn(task);
    }

    fn send(
        &self,
        request: crate::Request,
    ) -> super::LocalFuture<Result<crate::Response, crate::client::Error>> {
        Box::pin(send(request))
    }

    fn policy_backpressure(&self, raise: bool) {
        if RETIRES {
            crate::backpressure::adjust(raise);
        }
    }
}

/// Handles one request for the handler (made by `make`) that
/// [`export_p2!`](crate::export_p2) exported.
#[doc(hidden)]
pub fn handle<H: Serve, const RETIRES: bool>(
    policy: &'static ReusePolicy,
    make: fn() -> H,
    request: IncomingRequest,
    out: ResponseOutparam,
) {
    let handler = crate::instance::handler(make, policy, || super::install(&P2::<RETIRES>));
    executor::run(async move {
        let (request, id) = match into_http(request) {
            Ok(converted) => converted,
            Err(code) => return ResponseOutparam::set(out, Err(code)),
        };
        let scope = Scope::open(id, handler.deadline(&request));
        let response = scope.respond(handler, request).await;
        scope.enter(respond(response, out)).await;
    });
}

/// The request as `http` has it, and the id it came with.
fn into_http(request: IncomingRequest) -> Result<(crate::Request, Option<Arc<str>>), ErrorCode> {
    let method = method(request.method()).map_err(error_code)?;
    let scheme = request.scheme();
    let authority = request.authority();
    let path = request.path_with_query();
    let headers = request.headers().entries();
    let hint = super::announced_size(&headers);
    let id = super::request_id(&headers).map(Arc::from);
    let request = super::build_request(
        method,
        scheme.as_ref().map(self::scheme),
        authority,
        path,
        headers,
        Body::from_source(IncomingBody::Unread(move || request.consume()), hint),
    )
    .map_err(error_code)?;
    Ok((request, id))
}

async fn respond(response: crate::Response, out: ResponseOutparam) {
    let (parts, body) = response.into_parts();
    let fields = match Fields::from_list(&super::response_fields(&parts.headers, &body)) {
        Ok(fields) => fields,
        Err(e) => {
            let message = format!("response header rejected: {e:?}");
            return ResponseOutparam::set(out, Err(internal_error(message)));
        }
    };
    let response = OutgoingResponse::new(fields);
    // A new response is 200 already; most stay so, and skip the call.
    if parts.status != http::StatusCode::OK
        && response.set_status_code(parts.status.as_u16()).is_err()
    {
        let message = format!("status {} rejected", parts.status);
        return ResponseOutparam::set(out, Err(internal_error(message)));
    }
    let outgoing = response
        .body()
        .expect("a new response's body is taken once");
    ResponseOutparam::set(out, Ok(response));
    stream_out(outgoing, body).await;
}

/// Writes `body` into a WASI outgoing body (a response's or an outgoing
/// request's) and finishes it. A streamed body is held to the current
/// request's deadline; a whole one is not, as it needs no more work from
/// the app (and the SDK's own 504 is written after the deadline).
async fn stream_out(outgoing: OutgoingBody, mut body: Body) {
    let stream = outgoing.write().expect("a new body's stream is taken once");
    let complete = match body.as_full() {
        Some(bytes) if bytes.is_empty() => Ok(None),
        // What the host must accept at once: one call instead of a round of
        // check-write, write, flush and poll.
        Some(bytes) if bytes.len() <= SMALL_BODY => {
            stream.blocking_write_and_flush(bytes).map(|()| None)
        }
        Some(_) => write_body(&stream, &mut body).await,
        None => {
            let deadline = Scope::current().and_then(|scope| scope.deadline());
            crate::deadline::within(deadline, write_body(&stream, &mut body))
                .await
                .unwrap_or(Err(StreamError::Closed))
        }
    };
    drop(stream);
    if let Ok(trailers) = complete {
        let trailers = trailers.and_then(|map| Fields::from_list(&super::fields(&map)).ok());
        let _ = OutgoingBody::finish(outgoing, trailers);
    }
    // Otherwise dropping `outgoing` unfinished tells the host the body is
    // incomplete, so the other side does not take a truncated body as whole.
}

/// Sends an outgoing request with `wasi:http/outgoing-handler`.
async fn send(request: crate::Request) -> Result<crate::Response, crate::client::Error> {
    let (parts, body) = request.into_parts();
    let target = super::Target::of(&parts.uri);
    let fields = Fields::from_list(&super::response_fields(&parts.headers, &body))
        .map_err(|_| super::invalid_request("headers", &target))?;
    let request = OutgoingRequest::new(fields);
    address(&request, &parts.method, &target)?;
    let outgoing = request.body().expect("a new request's body is taken once");
    let pending = wasip2::http::outgoing_handler::handle(request, options(&parts))
        .map_err(|code| client_error(code, &target.authority))?;
    // The body goes out while the response is awaited: a backend may answer
    // only once it has read the whole upload.
    spawn_scoped(stream_out(outgoing, body));
    let response = loop {
        if let Some(response) = pending.get() {
            break response;
        }
        executor::ready(pending.subscribe()).await;
    };
    let response = response
        .expect("a future-incoming-response is read once")
        .map_err(|code| client_error(code, &target.authority))?;
    let status = response.status();
    let headers = response.headers().entries();
    let hint = super::announced_size(&headers);
    let body = Body::from_source(IncomingBody::Unread(move || response.consume()), hint);
    super::build_response(status, headers, body, &target.authority)
}

/// Runs `task` beside the current one, in the current request's scope when
/// there is one (the scope then lasts until the task ends).
fn spawn_scoped(task: impl Future<Output = ()> + 'static) {
    match Scope::current() {
        Some(scope) => executor::spawn(Box::pin(scope.enter(task))),
        None => executor::spawn(Box::pin(task)),
    }
}

/// Largest body written with one `blocking-write-and-flush`: 4096 bytes,
/// the most that call takes.
const SMALL_BODY: usize = 4096;

/// Writes the body's data and returns its trailers, if it has any.
async fn write_body(
    stream: &OutputStream,
    body: &mut Body,
) -> Result<Option<http::HeaderMap>, StreamError> {
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame.map_err(|_| StreamError::Closed)?.into_data() {
            Ok(bytes) => write_all(stream, &bytes).await?,
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    flush(stream).await.map(|()| trailers)
}

async fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let permitted = stream.check_write()?;
        if permitted == 0 {
            executor::ready(stream.subscribe()).await;
            continue;
        }
        let n = bytes
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        stream.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    Ok(())
}

async fn flush(stream: &OutputStream) -> Result<(), StreamError> {
    stream.flush()?;
    executor::ready(stream.subscribe()).await;
    stream.check_write().map(drop)
}

/// An incoming request's body or an outgoing call's response body, as the
/// host streams it. `C` opens it: `consume` of the request or response.
enum IncomingBody<C> {
    /// Not read yet. Opening the body costs host calls that a handler
    /// which never reads it should not pay.
    Unread(C),
    Reading {
        // Declared before `body`: a stream must be dropped before its body.
        stream: InputStream,
        body: WasiIncomingBody,
    },
    Ended,
}

const READ_SIZE: u64 = 16 * 1024;

impl<C: FnOnce() -> Result<WasiIncomingBody, ()>> IncomingBody<C> {
    /// Opens the body stream, on the first read.
    fn open(&mut self) -> Result<(), BodyError> {
        match std::mem::replace(self, IncomingBody::Ended) {
            IncomingBody::Unread(consume) => {
                let (stream, body) = consume()
                    .and_then(|body| Ok((body.stream()?, body)))
                    .map_err(|()| BodyError::new("body already taken"))?;
                *self = IncomingBody::Reading { stream, body };
            }
            opened => *self = opened,
        }
        Ok(())
    }
}

impl<C> Source for IncomingBody<C>
where
    C: FnOnce() -> Result<WasiIncomingBody, ()> + Unpin + 'static,
{
    fn next_frame(&mut self) -> NextFrame<'_> {
        Box::pin(async move {
            if let Err(error) = self.open() {
                return Some(Err(error));
            }
            let IncomingBody::Reading { stream, .. } = self else {
                return None;
            };
            let failed = loop {
                match stream.read(READ_SIZE) {
                    Ok(bytes) if bytes.is_empty() => executor::ready(stream.subscribe()).await,
                    Ok(bytes) => return Some(Ok(Frame::data(bytes.into()))),
                    Err(StreamError::Closed) => break None,
                    Err(StreamError::LastOperationFailed(error)) => {
                        break Some(error.to_debug_string());
                    }
                }
            };
            let IncomingBody::Reading { stream, body } =
                std::mem::replace(self, IncomingBody::Ended)
            else {
                return None;
            };
            drop(stream); // before its body
            if let Some(message) = failed {
                return Some(Err(BodyError::new(format!("body failed: {message}"))));
            }
            trailers(WasiIncomingBody::finish(body)).await
        })
    }
}

/// The trailers that end a request body, as its last frame.
async fn trailers(future: FutureTrailers) -> Option<Result<Frame<bytes::Bytes>, BodyError>> {
    executor::ready(future.subscribe()).await;
    match future.get() {
        Some(Ok(Ok(Some(trailers)))) => {
            Some(super::trailer_map(trailers.entries()).map(Frame::trailers))
        }
        Some(Ok(Ok(None))) => None,
        Some(Ok(Err(code))) => Some(Err(BodyError::new(format!("body failed: {code:?}")))),
        // Ready, so never `None`; taken once, so never `Err`.
        Some(Err(())) | None => None,
    }
}

/// A single-threaded executor for one p2 call.
mod executor {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    thread_local! {
        static TASKS: RefCell<Vec<Option<super::super::LocalFuture>>> = const { RefCell::new(Vec::new()) };
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static RUNNABLE: RefCell<VecDeque<usize>> = const { RefCell::new(VecDeque::new()) };
        /// Pollables that pending tasks wait on, with the waker to call.
        static WAITING: RefCell<Vec<(Rc<Pollable>, Waker)>> = const { RefCell::new(Vec::new()) };
    }

    struct TaskWaker(usize);

    impl Wake for TaskWaker {
        fn wake(self: Arc<Self>) {
            RUNNABLE.with_borrow_mut(|runnable| runnable.push_back(self.0));
        }
    }

    pub(super) fn spawn(task: super::super::LocalFuture) {
        let id = TASKS.with_borrow_mut(|tasks| {
            tasks.push(Some(task));
            tasks.len() - 1
        });
        LIVE.set(LIVE.get() + 1);
        RUNNABLE.with_borrow_mut(|runnable| runnable.push_back(id));
    }

    /// Runs `main` and everything it spawns to completion.
    pub(super) fn run(main: impl Future<Output = ()> + 'static) {
        spawn(Box::pin(main));
        loop {
            while let Some(id) = RUNNABLE.with_borrow_mut(VecDeque::pop_front) {
                poll_task(id);
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
        let Some(mut task) = TASKS.with_borrow_mut(|tasks| tasks[id].take()) else {
            return; // finished already; a stale wake-up
        };
        let waker = Waker::from(Arc::new(TaskWaker(id)));
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
}
