//! Real HTTP/1.1 backends on 127.0.0.1 for guests that call out:
//! [`Backend`], for the tests of outgoing calls, is a std `TcpListener` with
//! one thread per connection (kept alive) and a few routes, that records
//! which calls the caller abandoned (closed its connection) before the
//! answer was complete, and counts connections and requests;
//! [`FixedBackend`], for the tests of the outbound allow-list, answers one
//! fixed body and counts the connections that reached it.
//!
//! It is deliberately small and strict: HTTP/1.1 only, `content-length` or
//! chunked request bodies, no TLS. Every wait is bounded.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Longest a route waits for anything (a slow answer, a held body).
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// A running backend; stops accepting (its port refuses) when dropped.
///
/// Routes:
/// - `/echo…`: answers 200 with the request body, and the method, path with
///   query and `x-test` header it saw in `x-method`, `x-path`, `x-test`;
/// - `/stream?bytes=N`: answers N bytes of [`pattern`], chunked;
/// - `/slow?ms=N`: answers after N ms, unless the caller closes first;
/// - `/hold`: sends the head and a chunk at once, then a chunk every 50 ms
///   for [`LONGEST_WAIT`], unless the caller closes first;
/// - `/fails-after?n=N`: answers `ok` to the first N calls, then closes
///   each connection without an answer (a backend that goes down);
/// - `/slow-after?n=N&ms=M`: answers `ok` at once to the first N calls,
///   then after M ms (a backend that slows down), unless the caller closes
///   first; its calls count together with `/fails-after`'s;
/// - `/head`: answers with the request's head, as it arrived, as the body,
///   and with hop-by-hop fields of its own (`connection: x-hop-back`,
///   `x-hop-back`, `keep-alive`) beside an end-to-end `x-end`;
/// - `/short?announce=N&send=M`: announces `content-length: N` and
///   `connection: close`, sends M bytes of [`pattern`] and closes (a
///   backend that dies mid-body; the `connection: close` keeps the next
///   call off this connection, which the pool would otherwise take back
///   when M = N and lose a race with the close).
pub(crate) struct Backend {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    abandoned: Mutex<Receiver<String>>,
    counts: Arc<Counts>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

/// What a [`Backend`] saw, for tests of connection reuse.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    requests: AtomicUsize,
    /// Connections the caller closed between requests.
    closed_by_caller: AtomicUsize,
}

impl Backend {
    pub(crate) fn start() -> Backend {
        Self::closing_idle_after(LONGEST_WAIT)
    }

    /// A backend that closes a connection idle for `idle` between requests,
    /// as servers' keep-alive timeouts do.
    pub(crate) fn closing_idle_after(idle: Duration) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind the backend");
        let addr = listener.local_addr().expect("backend address");
        let (abandoned, receiver) = mpsc::channel();
        let calls_to_fail_after = Arc::new(AtomicUsize::new(0));
        let counts = Arc::new(Counts::default());
        let seen = counts.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                if stopped.load(Ordering::SeqCst) {
                    break; // drops the listener: the port refuses from now on
                }
                seen.accepted.fetch_add(1, Ordering::SeqCst);
                let abandoned = abandoned.clone();
                let calls = calls_to_fail_after.clone();
                let seen = seen.clone();
                thread::spawn(move || serve(stream, abandoned, &calls, &seen, idle));
            }
        });
        Backend {
            url: format!("http://{addr}"),
            abandoned: Mutex::new(receiver),
            counts,
            addr,
            stop,
        }
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Requests read so far, on all connections.
    pub(crate) fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }

    /// Connections the caller closed between requests so far.
    pub(crate) fn closed_by_caller(&self) -> usize {
        self.counts.closed_by_caller.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` for the caller to abandon a request whose path
    /// starts with `path`, and says whether it did.
    pub(crate) fn saw_abandoned(&self, path: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let receiver = self.abandoned.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match receiver.recv_timeout(left) {
                Ok(seen) if seen.starts_with(path) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A URL on 127.0.0.1 where nothing listens: connecting is refused.
pub(crate) fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a probe port");
    let addr = listener.local_addr().expect("probe address");
    drop(listener);
    format!("http://{addr}")
}

/// The bytes `/stream` sends, and that tests upload: position-dependent, so
/// a lost or reordered chunk shows.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

struct Request {
    /// The request line and header lines, as they arrived.
    head: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn serve(
    stream: TcpStream,
    abandoned: Sender<String>,
    calls_to_fail_after: &AtomicUsize,
    counts: &Counts,
    idle: Duration,
) {
    let mut reader = BufReader::new(stream);
    // Keep-alive: one request after another until the caller closes or the
    // connection is idle for `idle`.
    loop {
        let _ = reader.get_mut().set_read_timeout(Some(idle));
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => {
                counts.closed_by_caller.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(_) => return,
        };
        counts.requests.fetch_add(1, Ordering::SeqCst);
        let stream = reader.get_mut();
        let _ = stream.set_read_timeout(Some(LONGEST_WAIT));
        let finished = match request.path.split('?').next().unwrap_or_default() {
            "/echo" => echo(stream, &request),
            "/stream" => send_stream(stream, query(&request.path, "bytes")),
            "/slow" => slow(
                stream,
                Duration::from_millis(query(&request.path, "ms") as u64),
            ),
            "/hold" => hold(stream),
            "/head" => respond(
                stream,
                "200 OK",
                &[
                    ("connection", "x-hop-back"),
                    ("x-hop-back", "backend-secret"),
                    ("keep-alive", "timeout=5"),
                    ("x-end", "kept"),
                ],
                request.head.as_bytes(),
            ),
            "/short" => {
                let (announce, send) = (
                    query(&request.path, "announce"),
                    query(&request.path, "send"),
                );
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {announce}\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&pattern(send));
                return; // closes the connection mid-body
            }
            "/fails-after" => {
                if calls_to_fail_after.fetch_add(1, Ordering::SeqCst) >= query(&request.path, "n") {
                    return; // closes the connection unanswered
                }
                respond(stream, "200 OK", &[], b"ok\n")
            }
            "/slow-after" => {
                let calls = calls_to_fail_after.fetch_add(1, Ordering::SeqCst);
                match calls >= query(&request.path, "n") {
                    true => slow(
                        stream,
                        Duration::from_millis(query(&request.path, "ms") as u64),
                    ),
                    false => respond(stream, "200 OK", &[], b"ok\n"),
                }
            }
            _ => respond(stream, "404 Not Found", &[], b"no such route\n"),
        };
        if !finished.unwrap_or(false) {
            let _ = abandoned.send(request.path);
            return;
        }
    }
}

fn query(path: &str, name: &str) -> usize {
    path.split_once('?')
        .and_then(|(_, query)| {
            query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key == name).then(|| value.parse().ok())?
            })
        })
        .unwrap_or(0)
}

fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("/"),
    );
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut head = line.clone();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        head.push_str(&line);
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, then the blank line.
                while reader.read_line(&mut line)? > 2 {
                    line.clear();
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request {
        head,
        method,
        path,
        headers,
        body,
    }))
}

/// Writes a whole response; `Ok(true)` once it is out.
fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<bool> {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    Ok(true)
}

fn echo(stream: &mut TcpStream, request: &Request) -> io::Result<bool> {
    let test = request
        .headers
        .iter()
        .find(|(name, _)| name == "x-test")
        .map_or("", |(_, value)| value.as_str());
    let headers = [
        ("x-method", request.method.as_str()),
        ("x-path", request.path.as_str()),
        ("x-test", test),
    ];
    respond(stream, "200 OK", &headers, &request.body)
}

fn send_stream(stream: &mut TcpStream, bytes: usize) -> io::Result<bool> {
    stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")?;
    for chunk in pattern(bytes).chunks(64 * 1024) {
        write_chunk(stream, chunk)?;
    }
    stream.write_all(b"0\r\n\r\n")?;
    Ok(true)
}

fn write_chunk(stream: &mut TcpStream, chunk: &[u8]) -> io::Result<()> {
    stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
    stream.write_all(chunk)?;
    stream.write_all(b"\r\n")?;
    stream.flush()
}

/// Waits `wait`, watching the connection: `Ok(false)` if the caller
/// closed it meanwhile.
fn caller_stays(stream: &mut TcpStream, wait: Duration) -> io::Result<bool> {
    stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
    let mut byte = [0; 1];
    let stays = match stream.read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true, // a pipelined request; not expected here
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            true
        }
        Err(_) => false,
    };
    stream.set_read_timeout(Some(LONGEST_WAIT))?;
    Ok(stays)
}

fn slow(stream: &mut TcpStream, wait: Duration) -> io::Result<bool> {
    if !caller_stays(stream, wait.min(LONGEST_WAIT))? {
        return Ok(false);
    }
    respond(stream, "200 OK", &[], b"slow\n")
}

fn hold(stream: &mut TcpStream) -> io::Result<bool> {
    stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")?;
    write_chunk(stream, b"partial\n")?;
    let until = Instant::now() + LONGEST_WAIT;
    while Instant::now() < until {
        if !caller_stays(stream, Duration::from_millis(50))? {
            return Ok(false);
        }
        write_chunk(stream, b"tick\n")?;
    }
    stream.write_all(b"0\r\n\r\n")?;
    Ok(true)
}

/// A small HTTP/1.1 backend on 127.0.0.1 that answers every request with
/// `200` and a fixed body, then closes the connection: the far end for
/// guests that call out. It counts the connections it accepted, so a test
/// can tell that a refused call never reached the network. It serves at
/// most [`FixedBackend::MAX_CONNECTIONS`] and stops when dropped.
pub(crate) struct FixedBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FixedBackend {
    /// Connections served before the backend stops on its own.
    pub(crate) const MAX_CONNECTIONS: usize = 100;

    /// Starts a backend answering `body`.
    pub(crate) fn start(body: &'static str) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind a backend port");
        let addr = listener.local_addr().expect("a bound address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let (accepted, stop) = (accepted.clone(), stop.clone());
            move || {
                for stream in listener.incoming().take(Self::MAX_CONNECTIONS) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(mut stream) = stream else { continue };
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_read_timeout(Some(super::http::READ_TIMEOUT));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => break,
                        }
                    }
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        });
        Self {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for FixedBackend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
