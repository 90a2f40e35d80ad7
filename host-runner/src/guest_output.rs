//! Guest stdout and stderr, forwarded to the host's, one whole line at a
//! time, each line prefixed with the instance that wrote it
//! (`stdout [instance 3] :: hello`).
//!
//! Lines are buffered per instance and written with a single `write_all`
//! under the host stream's lock, so concurrent instances never interleave
//! mid-line. This module does not rate-limit or capture guest output, and it
//! never reports a host write failure to the guest: losing a log line is
//! better than trapping a request because the terminal went away.

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

/// Which host stream the guest's stream goes to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HostStream {
    Stdout,
    Stderr,
}

/// One guest stream (stdout or stderr of one instance).
///
/// Clones share the pending partial line: WASI hands out several handles to
/// the same stream, and they must all behave as one.
#[derive(Clone)]
pub(crate) struct GuestOutput(Arc<LineBuffer>);

struct LineBuffer {
    stream: HostStream,
    prefix: String,
    pending: Mutex<Vec<u8>>,
}

impl GuestOutput {
    /// `prefix` is written before every line; empty for no prefix.
    pub(crate) fn new(stream: HostStream, prefix: String) -> Self {
        Self(Arc::new(LineBuffer {
            stream,
            prefix,
            pending: Mutex::new(Vec::new()),
        }))
    }

    fn write(&self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

impl LineBuffer {
    fn write(&self, bytes: &[u8]) {
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
        let mut out = Vec::with_capacity(lines.len() + self.prefix.len() * 4);
        for line in lines.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(self.prefix.as_bytes());
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
