//! `serve --record FILE`: every request served is appended to a file in
//! `check`'s requests format, so that `check --requests FILE` replays the
//! traffic a component really gets.
//!
//! A request is written when the guest has answered it, before the response
//! goes out (a client that has its answer finds its request in the file),
//! as the guest received it: request id included, hop-by-hop headers and
//! `content-length` left out (`check` sets its own), and the body as far as
//! the guest had read it, up to [`MAX_RECORDED_BODY`]. A body cut there, or
//! one that is not UTF-8 text, is written with a `#` comment saying so,
//! which `check` skips. Requests refused before reaching the guest (413,
//! 503) are not recorded. This module does not replay anything (the check
//! module does), and it never fails a request: a line that cannot be
//! written is logged and skipped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::Request;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::WasiBody;

use crate::check::ProbeLine;

/// Request body bytes kept per recorded request; `check` sends bodies as
/// text in one JSON line, so this keeps the file readable.
pub(crate) const MAX_RECORDED_BODY: usize = 64 << 10;

/// Headers left out of a recording: hop-by-hop ones describe a connection,
/// not the request, and `check` sets its own `content-length`.
const NOT_RECORDED: [&str; 7] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// The file requests are appended to, shared by every serving thread.
pub(crate) struct Recorder {
    file: Mutex<File>,
    path: String,
}

impl Recorder {
    /// Opens `path` for appending, creating it if needed.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} to record requests in: {e}; pick another file with --record",
                    path.display()
                )
            })?;
        Ok(Self {
            file: Mutex::new(file),
            path: path.display().to_string(),
        })
    }

    /// `request` with a body that keeps a copy of what the guest reads, and
    /// the recording, written when it is dropped.
    pub(crate) fn tap(
        self: &Arc<Self>,
        request: Request<WasiBody>,
    ) -> (Request<WasiBody>, Recording) {
        let (parts, body) = request.into_parts();
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in &parts.headers {
            if NOT_RECORDED.contains(&name.as_str()) {
                continue;
            }
            // A value that is not text could not be replayed from JSON.
            let Ok(value) = value.to_str() else { continue };
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(value);
                })
                .or_insert_with(|| value.to_owned());
        }
        let line = ProbeLine {
            method: Some(parts.method.to_string()),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), ToString::to_string),
            headers,
            body: String::new(),
        };
        let pending = Arc::new(Mutex::new(Some(Pending {
            line,
            body: Vec::new(),
            cut: false,
            recorder: self.clone(),
        })));
        let body = RecordingBody {
            inner: body,
            pending: pending.clone(),
        };
        (
            Request::from_parts(parts, WasiBody::new(body)),
            Recording(pending),
        )
    }

    fn append(&self, text: &str) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = file.write_all(text.as_bytes()) {
            tracing::warn!("cannot record a request in {}: {error}", self.path);
        }
    }
}

/// One request being recorded; dropping it writes the line.
pub(crate) struct Recording(Arc<Mutex<Option<Pending>>>);

impl Drop for Recording {
    fn drop(&mut self) {
        let pending = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(pending) = pending {
            pending.write();
        }
    }
}

/// A request waiting to be written.
struct Pending {
    line: ProbeLine,
    body: Vec<u8>,
    cut: bool,
    recorder: Arc<Recorder>,
}

impl Pending {
    fn write(mut self) {
        let mut comment = String::new();
        match String::from_utf8(std::mem::take(&mut self.body)) {
            Ok(text) => self.line.body = text,
            Err(error) => {
                comment = format!(
                    "# the next request's body ({} bytes) is not UTF-8 text and was left out\n",
                    error.as_bytes().len()
                )
            }
        }
        if self.cut {
            comment.push_str(&format!(
                "# the next request's body was longer than {} KiB and was cut there\n",
                MAX_RECORDED_BODY >> 10
            ));
        }
        self.recorder.append(&(comment + &self.line.to_line()));
    }
}

/// A request body that copies what the guest reads into its recording,
/// until the recording is written.
struct RecordingBody {
    inner: WasiBody,
    pending: Arc<Mutex<Option<Pending>>>,
}

impl Body for RecordingBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
            && let Some(data) = data
            && let Some(pending) = self
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
        {
            let room = MAX_RECORDED_BODY - pending.body.len();
            pending.cut |= data.len() > room;
            pending
                .body
                .extend_from_slice(&data[..data.len().min(room)]);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
