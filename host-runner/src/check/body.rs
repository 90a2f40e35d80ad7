//! Reading a guest's response to its end for `check`: status, headers and
//! body as an [`Outcome`].
//!
//! Bodies over [`MAX_BODY_BYTES`] are not compared: the request is
//! reported as failed, so a guest streaming forever cannot fill the host's
//! memory. (Issue 23 item 3, comparing bodies of any size by a streamed
//! digest, is not done yet.) This module does not compare outcomes.

use http_body_util::BodyExt;
use hyper::Response;
use wasmtime_wasi_http::WasiBody;

use super::driver::Outcome;

/// Response bodies longer than this are cut off and the request reported as
/// failed, so a guest streaming forever cannot fill the host's memory.
const MAX_BODY_BYTES: usize = 16 << 20;

/// The response as an outcome, its body read to the end (trailers are
/// not compared).
pub(super) async fn read_response(response: Response<WasiBody>) -> Outcome {
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                // Trailers are not compared.
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > MAX_BODY_BYTES {
                        return Outcome::Failed(format!(
                            "the response body is longer than {} MiB",
                            MAX_BODY_BYTES >> 20
                        ));
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            Err(error) => {
                return Outcome::Failed(format!("the response body failed: {error}"));
            }
        }
    }
    Outcome::Response {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: bytes,
    }
}
