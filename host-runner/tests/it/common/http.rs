//! A small HTTP/1.1 client for tests that must control the connection:
//! keep-alive, raw bytes, responses read head first and chunk by chunk,
//! bodies cut off after their head reported as such. It knows nothing of
//! host-runner beyond its debug headers.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Default read timeout of [`HttpConnection`]: long enough for slow CI,
/// short enough that a hung server fails the test.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A response as the client received it.
#[derive(Clone, Debug)]
pub(crate) struct HttpResponse {
    pub status: u16,
    /// Header names are lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `x-reprise-instance` (needs `--debug-headers`).
    pub(crate) fn instance(&self) -> Option<u64> {
        self.header("x-reprise-instance")?.parse().ok()
    }

    /// `x-reprise-instance-request` (needs `--debug-headers`).
    pub(crate) fn instance_request(&self) -> Option<u64> {
        self.header("x-reprise-instance-request")?.parse().ok()
    }
}

/// A minimal HTTP/1.1 client connection with keep-alive, for tests that need
/// to control which requests share a connection. Understands
/// `Content-Length`, chunked and read-to-close bodies.
pub(crate) struct HttpConnection {
    reader: BufReader<TcpStream>,
    host: String,
    /// The server announced `Connection: close` or closed the stream.
    closed: bool,
}

impl HttpConnection {
    pub(crate) fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            host: addr.to_string(),
            closed: false,
        })
    }

    /// Changes how long a read may block before the request fails.
    pub(crate) fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(timeout))
    }

    /// Whether the server ended the connection (no further requests).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn get(&mut self, path: &str) -> io::Result<HttpResponse> {
        self.request("GET", path, &[], &[])
    }

    /// Writes `bytes` as they are: a hand-made request, several pipelined
    /// ones, or half of one.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Reads the next response (to a request sent with
    /// [`HttpConnection::send_raw`]).
    pub(crate) fn read_next_response(&mut self) -> io::Result<HttpResponse> {
        self.read_response(false)
    }

    /// Waits for the server to close the connection, discarding anything it
    /// sends first; fails if the read timeout passes while it stays open.
    pub(crate) fn wait_closed(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => Ok(rest),
            // A reset is the server closing too, abruptly.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(rest),
            Err(e) => Err(e),
        }
    }

    /// Sends one request and reads its response.
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<HttpResponse> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server closed this connection",
            ));
        }
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        self.read_response(method == "HEAD")
    }

    fn read_response(&mut self, head_only: bool) -> io::Result<HttpResponse> {
        let mut response = self.read_head()?;
        let status = response.status;
        if head_only || status < 200 || status == 204 || status == 304 {
            return Ok(response);
        }
        response.body = self
            .read_body(&response)
            .map_err(|error| cut_off(status, error))?;
        Ok(response)
    }

    /// Reads the next response's status line and headers only, leaving its
    /// body on the connection (read it with [`HttpConnection::read_chunk`]),
    /// for tests that watch a body arrive while the request is still open.
    pub(crate) fn read_head(&mut self) -> io::Result<HttpResponse> {
        let status_line = self.read_line()?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.closed = true;
        }
        Ok(response)
    }

    fn read_body(&mut self, response: &HttpResponse) -> io::Result<Vec<u8>> {
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return self.read_chunked();
        }
        let mut body = Vec::new();
        if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| invalid(format!("bad content-length {length:?}")))?;
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        } else {
            self.reader.read_to_end(&mut body)?;
            self.closed = true;
        }
        Ok(body)
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(chunk) = self.read_chunk()? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Reads one chunk of a chunked body; `None` at its last (empty) chunk,
    /// after which the trailers have been read too.
    pub(crate) fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let size_line = self.read_line()?;
        let size = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers, then the empty line ending the message.
            while !self.read_line()?.is_empty() {}
            return Ok(None);
        }
        let mut chunk = vec![0; size];
        self.reader.read_exact(&mut chunk)?;
        if !self.read_line()?.is_empty() {
            return Err(invalid("chunk not followed by CRLF".into()));
        }
        Ok(Some(chunk))
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            self.closed = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// The error for a response whose head arrived but whose body did not: the
/// only way HTTP/1.1 can report a failure after the status went out.
fn cut_off(status: u16, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("{CUT_OFF} (status {status}): {error}"),
    )
}

/// Raw bytes of one response as they came off the connection: the head (as
/// text, up to and without the blank line) and whatever followed it.
pub(crate) fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete head in {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            )
        });
    (
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        &raw[end + 4..],
    )
}

/// How [`HttpConnection`]'s errors start when the body was cut off.
pub(crate) const CUT_OFF: &str = "cut off after its head";

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
