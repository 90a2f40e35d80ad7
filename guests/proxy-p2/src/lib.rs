//! The `proxy-p3` sample's handler, unchanged, exported for WASIp2: reprise
//! runs it on its own executor, one request per instance at a time.

#[path = "../../proxy-p3/src/proxy.rs"]
mod proxy;

reprise::export_p2!(proxy::Proxy);
