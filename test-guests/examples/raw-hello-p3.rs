//! `hello-p3` without reprise: the response is returned at once and a
//! spawned task writes its body, exactly the work `hello-p3` asks of the SDK.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

struct Hello;

impl wasip3::exports::http::handler::Guest for Hello {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let (mut body, contents) = wit_stream::new();
        let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
        drop(trailers_writer);
        let (response, _transmitted) = Response::new(Fields::new(), Some(contents), trailers);
        wasip3::spawn_local(async move {
            body.write_all(b"Hello, WASI!".to_vec()).await;
        });
        Ok(response)
    }
}

wasip3::http::service::export!(Hello);
