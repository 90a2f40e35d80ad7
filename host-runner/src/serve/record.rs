//! `serve --record FILE`: every request served is appended to a file in
//! `check`'s requests format (`record_line`), so that `check --requests
//! FILE` replays the traffic a component really gets.
//!
//! A request is queued for writing when the guest has answered it, as the
//! guest received it: request id included, hop-by-hop headers and
//! `content-length` left out (`check` sets its own), and the body as far as
//! the guest had read it, up to [`MAX_RECORDED_BODY`]. A body cut there, or
//! one that is not UTF-8 text, is written with a `#` comment saying so,
//! which `check` skips. Requests refused before reaching the guest (413,
//! 503) are not recorded.
//!
//! The file is safe to keep: it is created (or narrowed to) mode 0600, and
//! secrets are written as `REDACTED` unless `--record-raw` asks for them:
//! the values of `authorization`, `cookie`, `proxy-authorization`,
//! `set-cookie`, of every header the operator sets with `--header` and of
//! each `--record-redact NAME`; and, in a query string or an
//! `application/x-www-form-urlencoded` body, the value of every field whose
//! name contains `password`, `passwd`, `secret` or `token`. Other bodies
//! (JSON, multipart) are written as they are.
//!
//! Writing never touches the serving path: a line goes into a bounded queue
//! and one thread of its own writes it, whole or not at all (a write that
//! fails half-way is cut back off the file, so a full disk never leaves a
//! partial line for the next one to be glued to). When the queue is full (a
//! stalled sink) or a write fails (a full disk), the request is left out,
//! counted in `reprise_record_dropped_total`, and the first time, one
//! warning line says so. At shutdown the queue gets a moment to drain, never
//! more. This module does not replay anything (the check module does), and
//! it never fails or delays a request.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderName};
use wasmtime_wasi_http::WasiBody;

use crate::exchange::ExchangeRecorder;
use crate::files;
use crate::metrics::Metrics;
use crate::record_line::{ProbeLine, REDACTED, redact_fields, redact_query};
use crate::watched::{Watch, Watched, keep_up_to};

/// Request body bytes kept per recorded request; `check` sends bodies as
/// text in one JSON line, so this keeps the file readable.
pub(crate) const MAX_RECORDED_BODY: usize = 64 << 10;

/// Lines waiting for the writer thread; past this, requests are dropped
/// rather than held in memory or waited for.
const QUEUE_LINES: usize = 1024;

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

/// Headers whose values are credentials, always redacted.
const CREDENTIALS: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "set-cookie",
];

/// What to leave out of a recording, and whether to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redaction {
    /// Header names whose values are written as `REDACTED`, beyond the
    /// credentials (the operator's `--header`s and `--record-redact`).
    pub(crate) headers: Vec<HeaderName>,
    /// `--record-raw`: write everything as received.
    pub(crate) raw: bool,
}

impl Redaction {
    fn header(&self, name: &HeaderName) -> bool {
        !self.raw
            && (CREDENTIALS.contains(&name.as_str()) || self.headers.iter().any(|h| h == name))
    }

    /// `pairs` (`a=1&b=2`) with the values of secret fields redacted.
    fn fields(&self, pairs: &str) -> String {
        match self.raw {
            true => pairs.to_owned(),
            false => redact_fields(pairs),
        }
    }

    fn path(&self, path: &str) -> String {
        match self.raw {
            true => path.to_owned(),
            false => redact_query(path),
        }
    }
}

/// What the writer thread is asked to do.
enum Message {
    Line(String),
    /// Answer once every line before this one is written.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The file requests are appended to, shared by every serving thread: the
/// sending end of the writer thread's queue.
pub(crate) struct Recorder {
    queue: SyncSender<Message>,
    redaction: Redaction,
    dropped: Arc<Dropped>,
}

/// Counts requests left out, and warns once.
struct Dropped {
    metrics: Arc<Metrics>,
    warned: AtomicBool,
    path: String,
}

impl Dropped {
    fn one(&self, why: &str) {
        self.metrics.record_dropped();
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "--record {}: a request was left out ({why}); serving goes on, and every request left out is counted in reprise_record_dropped_total",
                self.path
            );
        }
    }
}

impl Recorder {
    /// Opens `path` for appending (a regular file only, created 0600) and
    /// starts the thread that writes to it.
    pub(crate) fn open(
        path: &Path,
        redaction: Redaction,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let file = files::append_private(path, "--record")?;
        // A file past the process's size limit (`ulimit -f`) must fail its
        // write (EFBIG, handled as a full disk) instead of killing the server
        // with SIGXFSZ: a handler replaces the default action. Without a
        // runtime (a library user outside one), the default stays.
        if tokio::runtime::Handle::try_current().is_ok() {
            let signal = tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ);
            let _ = tokio::signal::unix::signal(signal);
        }
        Self::start(file, path.display().to_string(), redaction, metrics)
    }

    /// A recorder writing to `sink` from a thread of its own.
    fn start(
        sink: impl Sink,
        path: String,
        redaction: Redaction,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let dropped = Arc::new(Dropped {
            metrics,
            warned: AtomicBool::new(false),
            path,
        });
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE_LINES);
        let writer = dropped.clone();
        std::thread::Builder::new()
            .name("host-runner-record".to_owned())
            .spawn(move || write_lines(sink, &lines, &writer))
            .map_err(|e| anyhow::anyhow!("cannot start the thread that writes --record: {e}"))?;
        Ok(Self {
            queue,
            redaction,
            dropped,
        })
    }

    /// Waits up to `wait` for the lines queued so far to be written; a
    /// stalled sink is not waited for longer.
    pub(crate) fn flush(&self, wait: Duration) {
        let (done, written) = std::sync::mpsc::channel();
        if self.queue.try_send(Message::Flush(done)).is_ok() {
            let _ = written.recv_timeout(wait);
        }
    }

    /// `request` with a body that keeps a copy of what the guest reads, and
    /// the recording, queued when it is dropped.
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
            let value = match self.redaction.header(name) {
                true => REDACTED,
                false => value,
            };
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(value);
                })
                .or_insert_with(|| value.to_owned());
        }
        let form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let line = ProbeLine {
            method: Some(parts.method.to_string()),
            path: self
                .redaction
                .path(parts.uri.path_and_query().map_or("/", |path| path.as_str())),
            headers,
            body: String::new(),
        };
        let pending = Arc::new(Mutex::new(Some(Pending {
            line,
            body: Vec::new(),
            cut: false,
            form,
            recorder: self.clone(),
        })));
        let body = Watched::new(body, Copy(pending.clone())).boxed_unsync();
        (Request::from_parts(parts, body), Recording(pending))
    }

    /// Where the outgoing calls of the requests served are written: the
    /// same file and queue, response fields redacted as request ones.
    pub(super) fn exchanges(self: &Arc<Self>) -> ExchangeRecorder {
        let (append, redact) = (self.clone(), self.clone());
        ExchangeRecorder::new(
            move |line| append.append(line),
            move |name| redact.redaction.header(name),
            self.redaction.raw,
        )
    }

    fn append(&self, text: String) {
        match self.queue.try_send(Message::Line(text)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self
                .dropped
                .one("the file is not keeping up: a stalled disk or sink"),
            Err(TrySendError::Disconnected(_)) => self.dropped.one("its writer stopped"),
        }
    }
}

/// Where the writer thread writes.
trait Sink: Write + Send + 'static {
    /// Bytes in it now.
    fn len(&self) -> u64;
    /// Cuts it back to `len` bytes, dropping the part of a line that got out.
    fn cut_back(&mut self, len: u64);
}

impl Sink for File {
    fn len(&self) -> u64 {
        self.metadata().map_or(0, |m| m.len())
    }

    fn cut_back(&mut self, len: u64) {
        let _ = self.set_len(len);
    }
}

/// The writer thread: each line whole or not at all.
fn write_lines(mut file: impl Sink, lines: &Receiver<Message>, dropped: &Dropped) {
    let mut len = file.len();
    for message in lines {
        let line = match message {
            Message::Line(line) => line,
            Message::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        match file.write_all(line.as_bytes()) {
            Ok(()) => len += line.len() as u64,
            Err(error) => {
                // Cut back what part of the line got out, so the file stays
                // whole lines and the next one starts on its own.
                file.cut_back(len);
                dropped.one(&format!("cannot write: {error}"));
            }
        }
    }
}

/// One request being recorded; dropping it queues the line.
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
    /// The body is a form, whose secret fields are redacted.
    form: bool,
    recorder: Arc<Recorder>,
}

impl Pending {
    fn write(mut self) {
        let mut comment = String::new();
        match String::from_utf8(std::mem::take(&mut self.body)) {
            Ok(text) if self.form => self.line.body = self.recorder.redaction.fields(&text),
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
        self.recorder.append(comment + &self.line.to_line());
    }
}

/// Copies what the guest reads of a request body into its recording, until
/// the recording is written.
struct Copy(Arc<Mutex<Option<Pending>>>);

impl Watch for Copy {
    fn frame(&mut self, frame: &Frame<Bytes>) -> Result<(), wasmtime_wasi_http::Error> {
        if let Some(data) = frame.data_ref()
            && let Some(pending) = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
        {
            pending.cut |= keep_up_to(&mut pending.body, data, MAX_RECORDED_BODY);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::PipeWriter;
    use std::time::Instant;

    /// A pipe nobody reads: a sink that stalls once its buffer is full.
    impl Sink for PipeWriter {
        fn len(&self) -> u64 {
            0
        }

        fn cut_back(&mut self, _: u64) {}
    }

    #[test]
    fn a_stalled_sink_drops_lines_and_counts_them_instead_of_blocking_the_caller() {
        let (_reader, writer) = std::io::pipe().expect("a pipe");
        let metrics = Arc::new(Metrics::new(1));
        let recorder =
            Recorder::start(writer, "pipe".into(), Redaction::default(), metrics.clone())
                .expect("recorder");
        // Far more than the pipe's buffer and the queue hold together.
        let line = format!("{}\n", "x".repeat(1000));
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..5000 {
                recorder.append(line.clone());
            }
            recorder.flush(Duration::from_millis(100));
            let _ = done.send(());
        });
        // A liveness bound, not a speed claim: blocked appends never finish.
        let started = Instant::now();
        finished
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "appends blocked on a stalled sink ({:?})",
                    started.elapsed()
                )
            });
        let dropped = metrics
            .render()
            .lines()
            .find_map(|l| {
                l.strip_prefix("reprise_record_dropped_total ")?
                    .parse::<u64>()
                    .ok()
            })
            .expect("the counter");
        assert!(dropped >= 1000, "dropped {dropped}");
    }

    #[test]
    fn credentials_operator_headers_and_secret_fields_are_redacted_unless_raw() {
        let redaction = Redaction {
            headers: vec![HeaderName::from_static("x-api-key")],
            raw: false,
        };
        for name in [
            "authorization",
            "cookie",
            "proxy-authorization",
            "set-cookie",
            "x-api-key",
        ] {
            assert!(redaction.header(&HeaderName::from_static(name)), "{name}");
        }
        assert!(!redaction.header(&HeaderName::from_static("accept")));
        assert_eq!(
            redaction.fields("user=ann&Password=hunter2&api_token=t&x"),
            format!("user=ann&Password={REDACTED}&api_token={REDACTED}&x")
        );
        assert_eq!(
            redaction.path("/a?b=1&secret=2"),
            format!("/a?b=1&secret={REDACTED}")
        );
        let raw = Redaction {
            raw: true,
            ..redaction
        };
        assert!(!raw.header(&HeaderName::from_static("authorization")));
        assert_eq!(raw.fields("password=p"), "password=p");
    }
}
