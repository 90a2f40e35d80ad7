//! The requests `check` sends: read from a JSON-lines file (written by hand
//! or by `serve --record`, in the format of `record_line`), or the default probe
//! set plus the paths the user lists, and turned into the `http::Request`s a
//! guest receives.
//!
//! Everything a user typed is validated here, when the file is read, so that
//! building a request later cannot fail. This module does not send requests
//! (driver module) and does not compare responses (compare module).

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use wasmtime_wasi_http::WasiBody;

use crate::record_line::{Exchange, ExchangeLine, ProbeLine};

/// One request of the sequence `check` runs, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Probe {
    /// `GET path`.
    pub fn get(path: &str) -> anyhow::Result<Self> {
        Self::new("GET", path, &BTreeMap::new(), String::new())
    }

    /// The probes used without a requests file: `GET /`, `GET /?a=1` and a
    /// `POST /` with a small body.
    pub fn defaults() -> Vec<Self> {
        [
            (Method::GET, "/", ""),
            (Method::GET, "/?a=1", ""),
            (Method::POST, "/", "reprise check probe\n"),
        ]
        .into_iter()
        .map(|(method, path, body)| Probe {
            method,
            uri: Uri::from_static(path),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        })
        .collect()
    }

    /// Reads a requests file: one JSON object per line,
    /// `{"method":"GET","path":"/x","headers":{"k":"v"},"body":"..."}`, all
    /// but `path` optional. Blank lines and lines starting with `#` are
    /// skipped. Errors name the line.
    pub fn parse_lines(text: &str) -> anyhow::Result<Vec<Self>> {
        Ok(Self::parse_recording(text)?.0)
    }

    /// [`Probe::parse_lines`] for a file that may have been cut while it
    /// was written (a crash, a full disk): a last line without its newline
    /// that does not parse is left out, with the warning returned beside the
    /// probes, instead of refusing the whole file.
    pub fn parse_recording(text: &str) -> anyhow::Result<(Vec<Self>, Option<String>)> {
        let mut probes = Vec::new();
        let mut warning = None;
        let last = text.lines().count();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || ExchangeLine::is_one(line) {
                continue;
            }
            let number = index + 1;
            let parsed: ProbeLine = match serde_json::from_str(line) {
                Ok(parsed) => parsed,
                Err(e) if e.is_eof() && number == last && !text.ends_with('\n') => {
                    warning = Some(format!(
                        "line {number} is cut short (no end of line, {} bytes that are not a whole request): it was left out; the file was probably cut while it was written",
                        line.len()
                    ));
                    continue;
                }
                Err(e) => anyhow::bail!("line {number}: {}", without_position(&e)),
            };
            let probe = Self::new(
                parsed.method.as_deref().unwrap_or("GET"),
                &parsed.path,
                &parsed.headers,
                parsed.body,
            )
            .with_context(|| format!("line {number}"))?;
            probes.push(probe);
        }
        if probes.is_empty() {
            bail!("no requests in it; write one JSON object per line, e.g. {{\"path\":\"/\"}}");
        }
        Ok((probes, warning))
    }

    fn new(
        method: &str,
        path: &str,
        headers: &BTreeMap<String, String>,
        body: String,
    ) -> anyhow::Result<Self> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| anyhow::anyhow!("`{method}` is not an HTTP method"))?;
        if !path.starts_with('/') {
            bail!("path `{path}` must start with `/` (a path and query, e.g. /items?id=1)");
        }
        let uri: Uri = path
            .parse()
            .map_err(|e| anyhow::anyhow!("path `{path}` is not a valid request target: {e}"))?;
        let mut header_map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("`{name}` is not a valid header name"))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                anyhow::anyhow!("the value of header `{name}` is not a valid header value")
            })?;
            header_map.append(name, value);
        }
        Ok(Self {
            method,
            uri,
            headers: header_map,
            body: Bytes::from(body),
        })
    }

    /// Bytes in the request's body.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// The request as the guest receives it. Like a client would, it adds
    /// `host: localhost` and a `content-length` for a body when the probe
    /// does not set them (p2 guests cannot be called without a host).
    pub(crate) fn to_request(&self) -> Request<WasiBody> {
        let mut request = Request::new(
            Full::new(self.body.clone())
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        *headers = self.headers.clone();
        if !headers.contains_key(HOST) {
            headers.insert(HOST, HeaderValue::from_static("localhost"));
        }
        let sends_body = !self.body.is_empty()
            || matches!(self.method, Method::POST | Method::PUT | Method::PATCH);
        if sends_body && !headers.contains_key(CONTENT_LENGTH) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        request
    }
}

/// How `check` answers the component's outgoing calls.
#[derive(Clone, Debug, Default)]
pub enum Outgoing {
    /// They go out for real (`--live-outgoing`, or no recording to answer
    /// from).
    #[default]
    Live,
    /// They are answered from the calls of a recording, and never go out.
    Replay(RecordedCalls),
}

/// The outgoing calls of a recording (`{"outgoing":…}` lines), with their
/// answers.
#[derive(Clone, Debug, Default)]
pub struct RecordedCalls(pub(crate) Vec<Exchange>);

impl RecordedCalls {
    /// The outgoing calls of a requests file; request lines are left to
    /// [`Probe::parse_recording`], a cut last line to its warning.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut calls = Vec::new();
        let last = text.lines().count();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if !ExchangeLine::is_one(line) {
                continue;
            }
            let number = index + 1;
            match serde_json::from_str::<ExchangeLine>(line) {
                Ok(parsed) => calls.push(parsed.outgoing),
                Err(e) if e.is_eof() && number == last && !text.ends_with('\n') => {}
                Err(e) => bail!("line {number}: outgoing call: {}", without_position(&e)),
            }
        }
        Ok(Self(calls))
    }

    /// How many calls there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `METHOD /path` per probe, numbered when two probes look the same.
pub(super) fn labels(probes: &[Probe]) -> Vec<String> {
    let plain: Vec<String> = probes.iter().map(Probe::to_string).collect();
    plain
        .iter()
        .enumerate()
        .map(
            |(index, label)| match plain.iter().filter(|l| *l == label).count() {
                1 => label.clone(),
                _ => format!("{label} #{}", index + 1),
            },
        )
        .collect()
}

/// `GET /path?query`: how a probe is named in reports.
impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.uri)
    }
}

/// Each line is parsed on its own, so serde's "at line 1 column N" would
/// mislead; the caller names the line.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rsplit_once(" at line ") {
        Some((message, _)) => format!("{message} (column {})", error.column()),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_take_defaults_and_skip_comments() {
        let probes = Probe::parse_lines(
            "# the probes\n\n{\"path\":\"/a\"}\n{\"method\":\"POST\",\"path\":\"/b?x=1\",\"headers\":{\"x-user\":\"ann\"},\"body\":\"hi\"}\n",
        )
        .unwrap();
        assert_eq!(probes.len(), 2);
        assert_eq!(probes[0].to_string(), "GET /a");
        assert_eq!(probes[1].to_string(), "POST /b?x=1");
        let request = probes[1].to_request();
        assert_eq!(request.headers()["x-user"], "ann");
        assert_eq!(request.headers()[HOST], "localhost");
        assert_eq!(request.headers()[CONTENT_LENGTH], "2");
    }

    #[test]
    fn bad_request_lines_are_refused_with_their_line_number() {
        let error = |text: &str| format!("{:#}", Probe::parse_lines(text).unwrap_err());
        assert_eq!(
            error("{\"path\":\"/\"}\n{\"method\":\"GET\"}"),
            "line 2: missing field `path` (column 16)"
        );
        assert!(error("{\"path\":\"x\"}").starts_with("line 1: path `x` must start with `/`"));
        assert!(error("{\"path\":\"/\",\"verb\":\"GET\"}").contains("unknown field `verb`"));
        assert!(error("{\"path\":\"/\",\"method\":\"G T\"}").contains("not an HTTP method"));
        assert!(error("# nothing\n").starts_with("no requests"));
    }

    #[test]
    fn a_cut_last_line_is_left_out_with_a_warning_and_a_cut_middle_line_is_refused() {
        let (probes, warning) =
            Probe::parse_recording("{\"path\":\"/a\"}\n{\"path\":\"/b\",\"hea").unwrap();
        assert_eq!(probes.len(), 1);
        assert!(warning.unwrap().starts_with("line 2 is cut short"));
        let whole = Probe::parse_recording("{\"path\":\"/a\"}\n").unwrap();
        assert_eq!(whole.1, None);
        assert!(Probe::parse_recording("{\"path\":\"/b\",\"hea\n{\"path\":\"/a\"}\n").is_err());
    }

    #[test]
    fn outgoing_call_lines_sit_beside_requests_and_are_read_apart() {
        let call = r#"{"outgoing":{"method":"GET","url":"http://127.0.0.1:9/x","body_sha256":"sha256:0","status":200,"headers":[["x","1"]],"body":"hi"}}"#;
        let text = format!("{{\"path\":\"/a\"}}\n{call}\n");
        assert_eq!(Probe::parse_lines(&text).unwrap().len(), 1);
        let calls = RecordedCalls::parse(&text).unwrap();
        assert_eq!((calls.len(), calls.0[0].body.as_str()), (1, "hi"));
        let error = RecordedCalls::parse("{\"outgoing\":{\"url\":1}}\n").unwrap_err();
        assert!(
            format!("{error}").starts_with("line 1: outgoing call: "),
            "{error}"
        );
        assert!(
            RecordedCalls::parse("{\"path\":\"/a\"}\n")
                .unwrap()
                .is_empty()
        );
    }
}
