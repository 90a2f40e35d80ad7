//! Reading a guest's response to its end for `check`: status, headers and
//! body as an [`Outcome`].
//!
//! A body of any size is read: its first [`KEPT_BODY_BYTES`] are kept (to
//! compare as text and to show where two bodies differ), and a longer one
//! is also summed up as it streams by its length and a SHA-256 per
//! [`BLOCK_BYTES`] block ([`LongBody`]), so comparing it costs 32 bytes per
//! MiB of memory and still says in which MiB two bodies first differ. A
//! guest that streams forever is stopped by the request timeout. This module
//! does not compare outcomes.

use http_body_util::BodyExt;
use hyper::Response;
use sha2::{Digest, Sha256};
use wasmtime_wasi_http::WasiBody;

use super::driver::Outcome;

/// Bytes of a body kept as they are.
pub(crate) const KEPT_BODY_BYTES: usize = 1 << 20;

/// Bytes summed up by each digest of a [`LongBody`].
pub(crate) const BLOCK_BYTES: usize = 1 << 20;

/// A body longer than [`KEPT_BODY_BYTES`], summed up whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LongBody {
    pub(crate) len: u64,
    /// SHA-256 of each [`BLOCK_BYTES`] block from the start, the last one
    /// possibly shorter.
    pub(crate) blocks: Vec<[u8; 32]>,
}

/// Sums up a body as it streams.
#[derive(Default)]
struct Summing {
    len: u64,
    in_block: usize,
    block: Sha256,
    blocks: Vec<[u8; 32]>,
}

impl Summing {
    fn add(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while !data.is_empty() {
            let take = data.len().min(BLOCK_BYTES - self.in_block);
            self.block.update(&data[..take]);
            self.in_block += take;
            data = &data[take..];
            if self.in_block == BLOCK_BYTES {
                self.end_block();
            }
        }
    }

    fn end_block(&mut self) {
        let block = std::mem::take(&mut self.block);
        self.blocks.push(block.finalize().into());
        self.in_block = 0;
    }

    fn finish(mut self) -> LongBody {
        if self.in_block > 0 {
            self.end_block();
        }
        LongBody {
            len: self.len,
            blocks: self.blocks,
        }
    }
}

/// The response as an outcome, its body read to the end (trailers are
/// not compared).
pub(super) async fn read_response(response: Response<WasiBody>) -> Outcome {
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    let mut summing = Summing::default();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                // Trailers are not compared.
                if let Ok(data) = frame.into_data() {
                    summing.add(&data);
                    let room = KEPT_BODY_BYTES.saturating_sub(bytes.len());
                    bytes.extend_from_slice(&data[..data.len().min(room)]);
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
        long: (summing.len > KEPT_BODY_BYTES as u64).then(|| summing.finish()),
        body: bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summed(chunks: &[&[u8]]) -> LongBody {
        let mut summing = Summing::default();
        for chunk in chunks {
            summing.add(chunk);
        }
        summing.finish()
    }

    #[test]
    fn blocks_do_not_depend_on_how_the_body_was_chunked_and_name_the_first_difference() {
        let body = vec![7u8; 2 * BLOCK_BYTES + 10];
        let whole = summed(&[&body]);
        let (a, b) = body.split_at(BLOCK_BYTES - 3);
        assert_eq!(summed(&[a, b]), whole);
        assert_eq!((whole.len, whole.blocks.len()), (body.len() as u64, 3));
        let mut other = body.clone();
        other[BLOCK_BYTES + 5] = 8;
        let other = summed(&[&other]);
        let first = (whole.blocks.iter().zip(&other.blocks)).position(|(a, b)| a != b);
        assert_eq!(first, Some(1));
    }
}
