//! The library serves a component without the binary: what benches and
//! embedding tests rely on.

mod common;

use std::thread;
use std::time::Duration;

use common::{HttpConnection, guest_wasm};
use host_runner::{ServeOptions, Server, Shutdown, World};

#[test]
fn library_serves_a_component_until_shutdown_is_triggered() {
    let options = ServeOptions {
        addr: "127.0.0.1:0".parse().expect("valid address"),
        debug_headers: true,
        ..ServeOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let server = runtime
        .block_on(Server::bind(&guest_wasm("hello_p3"), &options))
        .expect("loads hello_p3 and binds 127.0.0.1:0");
    assert_eq!(server.component().world(), World::P3);
    let addr = server.local_addr();
    assert_eq!(server.config().max_instance_reuse_count, 128);
    let shutdown = Shutdown::new();
    let serving = thread::spawn({
        let shutdown = shutdown.clone();
        move || runtime.block_on(server.run(shutdown))
    });

    let mut connection = HttpConnection::open(addr).expect("connects");
    for nth in 1..=3 {
        let response = connection.get("/").expect("GET /");
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "Hello, WASI!");
        assert_eq!(response.instance(), Some(1));
        assert_eq!(response.instance_request(), Some(nth));
    }
    drop(connection);

    shutdown.trigger();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !serving.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not stop within 10 s of the shutdown trigger"
        );
        thread::sleep(Duration::from_millis(20));
    }
    serving
        .join()
        .expect("the server thread did not panic")
        .expect("the server stopped cleanly");
}
