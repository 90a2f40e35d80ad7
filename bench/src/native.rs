//! The native limit: a plain hyper server answering `Hello, WASI!`, set up
//! like host-runner's front end (multi-threaded tokio, HTTP/1.1 keep-alive,
//! no Nagle) but with no WebAssembly behind it.
//!
//! It is the ceiling of the HTTP stack on the machine and, answering after
//! a delay, the backend the proxy rows call; nothing more: no routing, no
//! limits, no graceful shutdown (the bench kills it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The body every hello component answers with.
const BODY: &[u8] = b"Hello, WASI!";

/// Serves until killed, answering each request after `delay`, and printing
/// the same `Serving HTTP on` line as host-runner and `wasmtime serve` so
/// the bench finds the port alike.
pub fn serve(addr: SocketAddr, delay: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("Serving HTTP on http://{}/", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                // A failed connection concerns one client; keep serving.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(|_| hello(delay)))
                    .await;
            });
        }
    })
}

async fn hello(delay: Duration) -> Result<Response<Full<Bytes>>, Infallible> {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}
