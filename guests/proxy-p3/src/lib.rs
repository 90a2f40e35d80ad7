//! The reverse proxy of `proxy.rs`, exported for WASIp3: requests that
//! wait on the backend share one instance, many at a time.

mod proxy;

reprise::export_p3!(proxy::Proxy);
