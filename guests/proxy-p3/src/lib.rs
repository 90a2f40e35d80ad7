//! The reverse proxy of `proxy-common`, exported for WASIp3: requests that
//! wait on the backend share one instance, many at a time.

reprise::export_p3!(proxy_common::Proxy);
