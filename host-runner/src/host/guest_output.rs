//! Guest stdout and stderr, forwarded to the host's, one whole line at a
//! time, each line labelled with the instance that wrote it and the requests
//! it was serving (`stdout [instance 3 request 7f2a…] :: hello`), or, with
//! `--log-format json`, as one JSON log event per line carrying the same
//! labels.
//!
//! The host cannot tell which of an instance's concurrent requests wrote a
//! line (p3 output streams are not tied to a task), so a line is labelled
//! with every request in flight on the instance when it is written: exact
//! for p2 and serial instances, a short list for concurrent ones, none for
//! output between requests.
//!
//! Lines are buffered per instance and written with a single `write_all`
//! under the host stream's lock, so concurrent instances never interleave
//! mid-line. `check` also keeps the tail of each instance's stderr
//! ([`StderrTail`]), to name the panic behind a trap. This module does not
//! rate-limit guest output, and it never reports a host write failure to the
//! guest: losing a log line is better than trapping a request because the
//! terminal went away.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A line longer than this is written out without waiting for its newline,
/// so a guest cannot grow host memory by never ending a line.
const MAX_PENDING_LINE: usize = 64 * 1024;

/// How much of an instance's stderr [`StderrTail`] keeps: a panic message
/// and its location, with room to spare.
const TAIL_BYTES: usize = 4096;

/// Which host stream the guest's stream goes to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HostStream {
    Stdout,
    Stderr,
}

/// How guest lines are written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputStyle {
    /// As the guest wrote them.
    Bare,
    /// After a `stdout [instance N request ID] :: ` prefix.
    Prefixed,
    /// As `tracing` events (target `guest`), which the JSON log format
    /// writes as one object per line on stderr.
    Events,
}

/// The instance an output stream belongs to and the ids of the requests it
/// is serving, shared by its stdout, its stderr and the worker.
#[derive(Debug)]
pub(crate) struct RequestLabels {
    instance: u64,
    requests: Mutex<Vec<Arc<str>>>,
}

impl RequestLabels {
    pub(crate) fn new(instance: u64) -> Arc<Self> {
        Arc::new(Self {
            instance,
            requests: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn request_started(&self, id: Arc<str>) {
        self.lock().push(id);
    }

    pub(crate) fn request_finished(&self, id: &str) {
        let mut requests = self.lock();
        if let Some(index) = requests.iter().position(|r| &**r == id) {
            requests.swap_remove(index);
        }
    }

    /// The ids of the requests in flight on the instance.
    pub(crate) fn in_flight(&self) -> Vec<Arc<str>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<str>>> {
        // The list stays consistent even if a holder panicked.
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The last few KiB one instance wrote to stderr. A Rust guest that panics
/// prints the message there just before it traps, and the trap itself only
/// says `unreachable`: this is how `check` tells the user what went wrong.
#[derive(Default)]
pub(crate) struct StderrTail(Mutex<Vec<u8>>);

impl StderrTail {
    fn record(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tail.extend_from_slice(bytes);
        let excess = tail.len().saturating_sub(TAIL_BYTES);
        tail.drain(..excess);
    }

    /// The last panic printed, as `"MESSAGE" at FILE:LINE:COL`, forgotten
    /// once taken so that it is pinned on one trap only.
    pub(crate) fn take_panic(&self) -> Option<String> {
        let mut tail = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&tail).into_owned();
        let found = panic_message(&text);
        if found.is_some() {
            tail.clear();
        }
        found
    }
}

/// Finds the last panic in std's format: `thread 'NAME' panicked at
/// LOCATION:` then the message, up to the `note:` about backtraces.
fn panic_message(text: &str) -> Option<String> {
    let start = text.rfind("panicked at ")?;
    let rest = &text[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n")?;
    let message: Vec<&str> = message
        .lines()
        .take_while(|line| !line.starts_with("note: "))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    Some(format!("{:?} at {location}", message.join(" ")))
}

/// One guest stream (stdout or stderr of one instance).
///
/// Clones share the pending partial line: WASI hands out several handles to
/// the same stream, and they must all behave as one.
#[derive(Clone)]
pub(crate) struct GuestOutput(Arc<LineBuffer>);

struct LineBuffer {
    stream: HostStream,
    /// The guest stream's name (`stdout`, `stderr`) for labels; the host
    /// stream it goes to may differ.
    name: &'static str,
    style: OutputStyle,
    labels: Arc<RequestLabels>,
    pending: Mutex<Vec<u8>>,
    tail: Option<Arc<StderrTail>>,
}

impl GuestOutput {
    /// Output of the guest stream `name`, written to the host's `stream`,
    /// and also kept in `tail` when there is one.
    pub(crate) fn new(
        stream: HostStream,
        name: &'static str,
        style: OutputStyle,
        labels: Arc<RequestLabels>,
        tail: Option<Arc<StderrTail>>,
    ) -> Self {
        Self(Arc::new(LineBuffer {
            stream,
            name,
            style,
            labels,
            pending: Mutex::new(Vec::new()),
            tail,
        }))
    }

    fn write(&self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

impl LineBuffer {
    fn write(&self, bytes: &[u8]) {
        if let Some(tail) = &self.tail {
            tail.record(bytes);
        }
        // A poisoned lock only means another writer panicked mid-append; the
        // bytes are still worth printing.
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.extend_from_slice(bytes);
        let complete = match pending.iter().rposition(|&b| b == b'\n') {
            Some(last_newline) => last_newline + 1,
            None if pending.len() >= MAX_PENDING_LINE => {
                pending.push(b'\n');
                pending.len()
            }
            None => return,
        };
        let lines: Vec<u8> = pending.drain(..complete).collect();
        drop(pending);
        self.emit(&lines);
    }

    /// Writes complete lines (each ending in `\n`) with one call, so that
    /// the host stream's own lock keeps them together.
    fn emit(&self, lines: &[u8]) {
        let prefix = match self.style {
            OutputStyle::Bare => String::new(),
            OutputStyle::Prefixed => {
                let requests = self.labels.in_flight();
                let (noun, ids) = match requests.len() {
                    0 => ("", String::new()),
                    1 => (" request ", requests.join(",")),
                    _ => (" requests ", requests.join(",")),
                };
                format!(
                    "{} [instance {}{noun}{ids}] :: ",
                    self.name, self.labels.instance
                )
            }
            OutputStyle::Events => {
                let requests = self.labels.in_flight().join(",");
                for line in lines.split_inclusive(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(line);
                    tracing::info!(
                        target: "guest",
                        stream = self.name,
                        instance = self.labels.instance,
                        request_id = requests,
                        "{}",
                        line.trim_end_matches(['\r', '\n'])
                    );
                }
                return;
            }
        };
        let mut out = Vec::with_capacity(lines.len() + prefix.len() * 4);
        for line in lines.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(line);
        }
        let _ = match self.stream {
            HostStream::Stdout => io::stdout().lock().write_all(&out),
            HostStream::Stderr => io::stderr().lock().write_all(&out),
        };
    }
}

impl Drop for LineBuffer {
    /// An instance that exits mid-line still gets its last words printed,
    /// terminated so the next line starts cleanly.
    fn drop(&mut self) {
        let pending = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if !pending.is_empty() {
            pending.push(b'\n');
            let lines = std::mem::take(pending);
            self.emit(&lines);
        }
    }
}

impl IsTerminal for GuestOutput {
    /// Prefixed, line-buffered output is not a terminal, whatever the host's
    /// stream is: guests must not send it cursor movements or colours
    /// expecting them to land as-is.
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// Overrides the default adapter, which would copy writes through an
    /// extra buffer and task; this stream never blocks, so p2 can write to it
    /// directly.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        GuestOutput::write(self, &bytes);
        Ok(())
    }

    /// Partial lines are held back on purpose (see the module docs), so
    /// flushing has nothing to do.
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_PENDING_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_panic_in_the_tail_is_named_with_its_location_once() {
        let tail = StderrTail::default();
        tail.record(b"starting\nthread '<unnamed>' panicked at src/lib.rs:3:9:\nfirst\n");
        tail.record(b"thread '<unnamed>' panicked at src/lib.rs:21:38:\nRefCell already borrowed\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
        assert_eq!(
            tail.take_panic().as_deref(),
            Some("\"RefCell already borrowed\" at src/lib.rs:21:38")
        );
        assert_eq!(tail.take_panic(), None);
    }

    #[test]
    fn the_tail_keeps_only_its_last_bytes() {
        let tail = StderrTail::default();
        tail.record(&vec![b'x'; 3 * TAIL_BYTES]);
        tail.record(b"thread 'main' panicked at a.rs:1:1:\nboom\n");
        assert_eq!(tail.0.lock().unwrap().len(), TAIL_BYTES);
        assert_eq!(tail.take_panic().as_deref(), Some("\"boom\" at a.rs:1:1"));
    }
}
