//! Reads the whole request body and answers how many bytes arrived
//! (`read 1024 bytes`), or, when the upload breaks off (the client went
//! away, the host cut it at its size limit), says so with a 400. It exists
//! so that host-runner's tests have a guest that consumes request bodies.

use reprise::{Handler, IntoResponse, Request, Response, http::StatusCode};

#[derive(Default)]
struct Upload;

impl Handler for Upload {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        match request.into_body().bytes().await {
            Ok(bytes) => Response::new(format!("read {} bytes\n", bytes.len()).into()),
            Err(error) => {
                let mut response = Response::new(format!("{error}\n").into());
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response
            }
        }
    }
}

reprise::export_p3!(Upload);
