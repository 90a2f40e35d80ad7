//! Outgoing HTTP calls kept for hermetic replay: `serve --record` writes
//! each call a component makes, with its answer, into the recording
//! ([`Exchange`] lines), and `check` answers the component's calls from
//! them, so that no service has to be up and a slow one cannot change an
//! answer.
//!
//! A call is known by its method, URL and the SHA-256 of its request body.
//! The recording keeps the answer's status, fields (credentials redacted as
//! in the rest of the recording) and up to [`MAX_RECORDED_RESPONSE_BODY`] of
//! its body. Replay answers the n-th call with a key from the n-th
//! recording of that key (the last one again past the end), counting from
//! [`Replay::reset`]; a call that was never recorded fails in the guest and
//! is named, so `check` reports it as an `outgoing` finding.
//!
//! This module does not decide whether a call may go out (the outbound
//! policy does, before it is consulted), does not write files (the
//! recording's writer does) and does not compare answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use hyper::{Request, Response};
use sha2::{Digest, Sha256};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::pool::{Pool, Sent};
use crate::record_line::{Exchange, ExchangeLine, REDACTED, redact_query};
use crate::watched::{Watch, Watched, keep_up_to};

/// Response body bytes kept per recorded call; past it the body is cut
/// (and marked so), which keeps a recording readable.
pub(crate) const MAX_RECORDED_RESPONSE_BODY: usize = 64 << 10;

/// What the outgoing-HTTP hooks do with a call beside sending it.
#[derive(Clone)]
pub(crate) enum Exchanges {
    /// Send it, and write it with its answer into the recording.
    Record(Arc<ExchangeRecorder>),
    /// Do not send it: answer from a recording.
    Replay(Arc<Replay>),
}

/// Sends `request`, or answers it from a recording, as `exchanges` says;
/// the error of an unrecorded call names it.
pub(crate) async fn send(
    exchanges: Option<Exchanges>,
    pool: Option<Arc<Pool>>,
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Sent, Error> {
    let tap = match &exchanges {
        Some(Exchanges::Replay(replay)) => {
            let response = replay
                .answer(request)
                .await
                .map_err(|why| Error::InternalError(Some(why)))?;
            return Ok((response, Box::new(async { Ok(()) })));
        }
        Some(Exchanges::Record(recorder)) => Some(recorder.clone()),
        None => None,
    };
    let (request, call) = match &tap {
        Some(recorder) => {
            let (request, call) = recorder.tap(request);
            (request, Some(call))
        }
        None => (request, None),
    };
    let (response, io) = crate::pool::send(pool, request, options).await?;
    let response = match call {
        Some(call) => call.answered(response),
        None => response,
    };
    Ok((response, io))
}

/// The streamed SHA-256 of a request body, as `sha256:HEX`.
#[derive(Default)]
struct BodyDigest(Sha256);

impl BodyDigest {
    fn hex(&self) -> String {
        let digest = self.0.clone().finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

/// Writes calls into the recording of `serve --record`.
pub(crate) struct ExchangeRecorder {
    /// Queues one line for the recording's writer (never blocks).
    append: Box<dyn Fn(String) + Send + Sync>,
    /// Whether a response field's value is written as `REDACTED`.
    redact: Box<dyn Fn(&HeaderName) -> bool + Send + Sync>,
    /// `--record-raw`: the URL's secret query fields too are kept.
    raw: bool,
}

impl ExchangeRecorder {
    pub(crate) fn new(
        append: impl Fn(String) + Send + Sync + 'static,
        redact: impl Fn(&HeaderName) -> bool + Send + Sync + 'static,
        raw: bool,
    ) -> Self {
        Self {
            append: Box::new(append),
            redact: Box::new(redact),
            raw,
        }
    }

    /// `request` with a body that hashes what is sent, and the call being
    /// recorded.
    fn tap(self: &Arc<Self>, request: Request<WasiBody>) -> (Request<WasiBody>, Call) {
        let url = request.uri().to_string();
        let digest = Arc::new(Mutex::new(BodyDigest::default()));
        let call = Call {
            recorder: self.clone(),
            method: request.method().to_string(),
            url: match self.raw {
                true => url,
                false => redact_query(&url),
            },
            digest: digest.clone(),
        };
        let request =
            request.map(|body| Tap::new(move |data| lock(&digest).0.update(data)).on(body));
        (request, call)
    }
}

/// A call being recorded.
struct Call {
    recorder: Arc<ExchangeRecorder>,
    method: String,
    url: String,
    digest: Arc<Mutex<BodyDigest>>,
}

impl Call {
    /// `response` with a body that keeps a copy of what the guest reads;
    /// the call is written once that body ends or is dropped.
    fn answered(self, response: Response<WasiBody>) -> Response<WasiBody> {
        let (parts, body) = response.into_parts();
        let headers = (parts.headers.iter())
            .filter_map(|(name, value)| {
                let value = match (self.recorder.redact)(name) {
                    true => REDACTED,
                    false => value.to_str().ok()?,
                };
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect();
        let kept = Arc::new(Mutex::new(Kept {
            call: Some(self),
            status: parts.status.as_u16(),
            headers,
            body: Vec::new(),
            cut: false,
        }));
        let copy = kept.clone();
        let body = Tap::new(move |data| {
            let kept = &mut *lock(&copy);
            kept.cut |= keep_up_to(&mut kept.body, data, MAX_RECORDED_RESPONSE_BODY);
        })
        .on_end(move |whole| {
            let mut kept = lock(&kept);
            kept.cut |= !whole;
            kept.write();
        })
        .on(body);
        Response::from_parts(parts, body)
    }
}

/// An answer being copied into the recording.
struct Kept {
    /// Taken when written, so a call is written once.
    call: Option<Call>,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut: bool,
}

impl Kept {
    fn write(&mut self) {
        let Some(call) = self.call.take() else { return };
        let body = std::mem::take(&mut self.body);
        let (body, body_base64) = match String::from_utf8(body) {
            Ok(text) => (text, None),
            Err(e) => (
                String::new(),
                Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
            ),
        };
        let line = ExchangeLine {
            outgoing: Exchange {
                body_sha256: lock(&call.digest).hex(),
                method: call.method,
                url: call.url,
                status: self.status,
                headers: std::mem::take(&mut self.headers),
                body,
                body_base64,
                body_cut: self.cut,
            },
        };
        (call.recorder.append)(line.to_line());
    }
}

/// Shows each data frame of a body to `data` as it passes, and tells `end`
/// once whether the body was read to its end (`false`: dropped before).
struct Tap {
    data: Box<dyn FnMut(&Bytes) + Send>,
    end: Option<Box<dyn FnOnce(bool) + Send>>,
}

impl Tap {
    fn new(data: impl FnMut(&Bytes) + Send + 'static) -> Self {
        Self {
            data: Box::new(data),
            end: None,
        }
    }

    fn on_end(mut self, end: impl FnOnce(bool) + Send + 'static) -> Self {
        self.end = Some(Box::new(end));
        self
    }

    /// `body`, tapped.
    fn on(self, body: WasiBody) -> WasiBody {
        Watched::new(body, self).boxed_unsync()
    }
}

impl Watch for Tap {
    fn frame(&mut self, frame: &Frame<Bytes>) -> Result<(), Error> {
        if let Some(data) = frame.data_ref() {
            (self.data)(data);
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), Error> {
        self.dropped(true);
        Ok(())
    }

    fn dropped(&mut self, at_end: bool) {
        if let Some(end) = self.end.take() {
            end(at_end);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A call's key: method, URL, request body digest.
type Key = (String, String, String);

/// Answers calls from the exchanges of a recording.
pub(crate) struct Replay {
    recorded: HashMap<Key, Vec<Exchange>>,
    /// Calls answered per key since the last reset.
    answered: Mutex<HashMap<Key, usize>>,
}

impl Replay {
    pub(crate) fn new(exchanges: Vec<Exchange>) -> Self {
        let mut recorded = HashMap::<Key, Vec<Exchange>>::new();
        for exchange in exchanges {
            let key = (
                exchange.method.clone(),
                exchange.url.clone(),
                exchange.body_sha256.clone(),
            );
            recorded.entry(key).or_default().push(exchange);
        }
        Self {
            recorded,
            answered: Mutex::default(),
        }
    }

    /// Starts every key's count again: the next call is answered with the
    /// first recording of it.
    pub(crate) fn reset(&self) {
        lock(&self.answered).clear();
    }

    /// The recorded answer to `request`, or why there is none.
    async fn answer(&self, request: Request<WasiBody>) -> Result<Response<WasiBody>, String> {
        let (parts, mut body) = request.into_parts();
        // Hashed as it streams: the body is never held whole.
        let mut digest = BodyDigest::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("the request body failed: {e}"))?;
            if let Some(data) = frame.data_ref() {
                digest.0.update(data);
            }
        }
        let url = parts.uri.to_string();
        let (method, digest) = (parts.method.to_string(), digest.hex());
        // A recording made without --record-raw has the URL's secrets
        // redacted.
        let key = [url.clone(), redact_query(&url)]
            .into_iter()
            .map(|url| (method.clone(), url, digest.clone()))
            .find(|key| self.recorded.contains_key(key))
            .ok_or_else(|| {
                "no answer to this call in the recording (a call not made while recording, or with another body): record it again, or check with --live-outgoing".to_owned()
            })?;
        let recorded = &self.recorded[&key];
        let nth = {
            let mut answered = lock(&self.answered);
            let count = answered.entry(key.clone()).or_default();
            *count += 1;
            *count - 1
        };
        let exchange = &recorded[nth.min(recorded.len() - 1)];
        replayed(exchange)
    }
}

/// The response a recorded exchange holds.
fn replayed(exchange: &Exchange) -> Result<Response<WasiBody>, String> {
    let body = match &exchange.body_base64 {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("the recorded body of {} is not base64: {e}", exchange.url))?,
        None => exchange.body.clone().into_bytes(),
    };
    let mut response = Response::builder().status(exchange.status);
    for (name, value) in &exchange.headers {
        // A cut body is shorter than its recorded length says.
        if exchange.body_cut && name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        response = response.header(name, value);
    }
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    response
        .body(body)
        .map_err(|e| format!("the recorded answer to {} is invalid: {e}", exchange.url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(url: &str, body: &str) -> Exchange {
        Exchange {
            method: "GET".into(),
            url: url.into(),
            body_sha256: BodyDigest::default().hex(),
            status: 200,
            headers: vec![("x-n".into(), body.into())],
            body: body.into(),
            body_base64: None,
            body_cut: false,
        }
    }

    fn get(url: &str) -> Request<WasiBody> {
        let body = Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync();
        Request::get(url).body(body).expect("a request")
    }

    async fn answer(replay: &Replay, url: &str) -> Result<String, String> {
        let response = replay.answer(get(url)).await?;
        let body = response.into_body().collect().await.expect("body");
        Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
    }

    #[tokio::test]
    async fn repeats_are_answered_in_recorded_order_from_each_reset_and_the_last_one_again() {
        let replay = Replay::new(vec![
            exchange("http://127.0.0.1:9/x", "1"),
            exchange("http://127.0.0.1:9/y", "y"),
            exchange("http://127.0.0.1:9/x", "2"),
        ]);
        for _ in 0..2 {
            assert_eq!(
                answer(&replay, "http://127.0.0.1:9/x").await.as_deref(),
                Ok("1")
            );
            assert_eq!(
                answer(&replay, "http://127.0.0.1:9/x").await.as_deref(),
                Ok("2")
            );
            assert_eq!(
                answer(&replay, "http://127.0.0.1:9/x").await.as_deref(),
                Ok("2")
            );
            assert_eq!(
                answer(&replay, "http://127.0.0.1:9/y").await.as_deref(),
                Ok("y")
            );
            replay.reset();
        }
        let missing = answer(&replay, "http://127.0.0.1:9/z")
            .await
            .expect_err("unrecorded");
        assert!(missing.contains("--live-outgoing"), "{missing}");
    }

    #[tokio::test]
    async fn a_url_recorded_with_its_secrets_redacted_still_matches() {
        let redacted = format!("http://127.0.0.1:9/x?token={REDACTED}&a=1");
        let replay = Replay::new(vec![exchange(&redacted, "ok")]);
        let answer = answer(&replay, "http://127.0.0.1:9/x?token=t0p&a=1").await;
        assert_eq!(answer.as_deref(), Ok("ok"));
    }
}
