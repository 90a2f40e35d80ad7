//! The reverse proxy of `proxy-common`, unchanged, exported for WASIp2:
//! reprise runs it on its own executor, one request per instance at a time.

reprise::export_p2!(proxy_common::Proxy);
